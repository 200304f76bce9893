#!/usr/bin/env python3
# 49-privsep.t - the split between smap's territory and smapd's holds when
# smap is compromised, and smapd refuses what an earlier compromise planted.
#
#  - A compromised smap: code running as the smap user inside smap's
#    chroot (spool/incoming), without the seccomp filter, so that only
#    owners and modes stand in its way, tries to open, create, rename,
#    unlink, link and symlink every smapd directory and every path
#    outside its territory. Every attempt fails; what it may still do
#    (write files in tmp/ and new/) smapd re-checks: planted links and
#    FIFOs are quarantined, a forged envelope that relays from outside
#    mynetworks is quarantined, and exactly the messages smap accepted
#    are delivered, with nothing outside the spool written.
#  - Symbolic and hard links planted (as root) in quarantine/, state/ and
#    hold/: smapd refuses each, logs it, and never writes through one.
#  - smap -t and smapd -t refuse one user for both programs, and a spool
#    of the old layout, naming the path and the fix; smapd -P moves the
#    old layout's messages into place and none is lost.
import errno
import json
import os
import pwd
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, SMAP_BIN, SMAPD_BIN, lines, msg, make_spool, smapd_ids  # noqa: E402
from postfix import read_maildir, header  # noqa: E402
from smtpfake import FakeSMTP  # noqa: E402
from smapdtest import (smapd_maildir, Smapd, send, new_id, spool_bytes, place, queue_ids, quarantined,  # noqa: E402
                       spool_path, state, smapd_log, wait_until, listdir)
import subprocess  # noqa: E402

SMAPD_DIRS = ("queue", "state", "hold", "quarantine")


def good(tag):
    return (b"From: a@b.example\r\nTo: u@example.com\r\nSubject: " + tag.encode() +
            b"\r\nMessage-ID: <" + tag.encode() + b"@b.example>\r\n\r\nbody of " + tag.encode() + b"\r\n")


def delivered(md):
    return sorted(header(d, "Message-ID") for _, d in read_maildir(md))



# --------------------------------------------------------------------------
# the attacker: runs in a child, as smap, chrooted like smap

def attempts():
    """(description, callable) pairs that must all fail inside the jail."""
    outside = ["/" + d + "/" for d in SMAPD_DIRS] + ["/../" + d + "/" for d in SMAPD_DIRS]
    out = []
    for d in outside:
        out.append(("create %sX" % d, lambda d=d: os.open(d + "6B0000000000A", os.O_WRONLY | os.O_CREAT, 0o600)))
        out.append(("list %s" % d, lambda d=d: os.listdir(d)))
        out.append(("mkdir %s" % d, lambda d=d: os.mkdir(d.rstrip("/"))))
        out.append(("symlink %s" % d, lambda d=d: os.symlink("/new", d.rstrip("/"))))
    for p in ("/x", "/incoming", "/etc", "/../x", "/../../etc/passwd"):
        out.append(("create %s" % p, lambda p=p: os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)))
    out += [
        ("symlink in the chroot's root", lambda: os.symlink("/etc/passwd", "/passwd")),
        ("hard link into the chroot's root", lambda: os.link("/new", "/newlink")),
        ("rename new/ away", lambda: os.rename("/new", "/old-new")),
        ("rename tmp/ away", lambda: os.rename("/tmp", "/old-tmp")),
        ("remove new/", lambda: os.rmdir("/new")),
        ("replace the chroot's root by a symlink", lambda: os.symlink("/tmp", "/new2")),
        ("chown new/ to root", lambda: os.chown("/new", 0, 0)),
        ("chmod new/ (smapd's) 0700", lambda: os.chmod("/new", 0o700)),
        ("chmod tmp/ (smapd's) 0777", lambda: os.chmod("/tmp", 0o777)),
        ("make a device", lambda: os.mknod("/tmp/dev", 0o600 | 0o20000, os.makedev(1, 3))),
        ("open the spool above the chroot by ..", lambda: os.open("/../../../../queue", os.O_RDONLY)),
        ("chdir out with ..", lambda: (os.chdir("/.."), os.listdir(".").index("queue"))),
        ("open /proc", lambda: os.listdir("/proc")),
    ]
    return out


def plant(newdir_ids):
    """What a compromised smap can still write: hostile entries in new/."""
    link_id, hard_id, fifo_id, relay_id, legit_id = newdir_ids
    os.symlink("/etc/passwd", "/new/" + link_id)
    fd = os.open("/tmp/" + hard_id, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, spool_bytes(hard_id, good("hard-link")))
    os.close(fd)
    os.link("/tmp/" + hard_id, "/new/" + hard_id)     # two links: refused
    os.mkfifo("/new/" + fifo_id, 0o640)
    for sid, client, tag in ((relay_id, "203.0.113.5 4711", "forged-relay"),
                             (legit_id, "127.0.0.1 4711", "written-by-smap")):
        fd = os.open("/tmp/" + sid, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, spool_bytes(sid, good(tag), client=client,
                                 rcpts=("<u@example.com>" if tag == "written-by-smap" else
                                        "<victim@elsewhere.example>",)))
        os.fchmod(fd, 0o644)
        os.fsync(fd)
        os.close(fd)
        os.rename("/tmp/" + sid, "/new/" + sid)


def attacker(jail, ids, wfd):
    """Fork; in the child become smap in smap's chroot, attack, report."""
    pw = pwd.getpwnam("smap")
    acts = attempts()
    pid = os.fork()
    if pid:
        return pid
    res = {"ok": [], "failed": [], "error": None}
    try:
        os.chroot(jail)
        os.chdir("/")
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
        res["uid"] = os.getuid()
        for desc, fn in acts:
            try:
                fn()
                res["ok"].append(desc)
            except (OSError, ValueError) as e:
                res["failed"].append([desc, errno.errorcode.get(getattr(e, "errno", 0) or 0, str(e))])
        plant(ids)
    except BaseException as e:  # noqa: BLE001 - report everything to the parent
        res["error"] = "%s: %s" % (type(e).__name__, e)
    os.write(wfd, json.dumps(res).encode())
    os._exit(0)


def test_compromised(t):
    conf = {"relay_domains": "example.com", "mynetworks": "127.0.0.0/8"}
    with Server(t, name="privsep-attack", conf=conf) as srv:
        md = smapd_maildir(srv)
        canary = os.path.join(srv.dir, "canary")
        with open(canary, "wb") as f:
            f.write(b"outside the spool\n")
        passwd = open("/etc/passwd", "rb").read()
        d = Smapd(t, srv, conf={"default_transport": "maildir:" + md, "relay_domains": "example.com"},
                  name="smapd-attack")
        accepted = send(srv, [(["u@example.com"], good("accepted-%d" % i)) for i in range(3)])
        ids = [new_id() for _ in range(5)]
        r, w = os.pipe()
        pid = attacker(os.path.join(srv.spool, "incoming"), ids, w)
        os.close(w)
        data = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
        os.close(r)
        os.waitpid(pid, 0)
        res = json.loads(data.decode() or "{}")
        t.is_(res.get("error"), None, "the compromised smap ran to the end as uid %s" % res.get("uid"))
        t.ok(res.get("ok") == [], "every attempt on smapd's directories and outside the territory failed",
             "succeeded: %r" % res.get("ok"))
        t.ok(len(res.get("failed", [])) == len(attempts()),
             "%d attempts made, each refused by the kernel" % len(res.get("failed", [])),
             json.dumps(res.get("failed"))[:2000])
        for sub in SMAPD_DIRS:
            t.is_(listdir(spool_path(srv, sub)), [], "%s/ is untouched (empty)" % sub)
        rc = d.once(flush=True)
        t.is_(rc, 0, "smapd -1 -f after the attack exits 0")
        want = sorted(["<accepted-%d@b.example>" % i for i in range(3)] + ["<written-by-smap@b.example>"])
        t.is_(delivered(md), want, "exactly the messages smap accepted were delivered, once each")
        q = quarantined(srv)
        link_id, hard_id, fifo_id, relay_id, _ = ids
        for sid, why, desc in ((link_id, r"symbolic link", "a symbolic link to /etc/passwd"),
                               (hard_id, r"hard link", "a file with two links"),
                               (fifo_id, r"not a regular file", "a FIFO"),
                               (relay_id, r"relay policy: recipient <victim@elsewhere\.example> is outside "
                                          r"relay_domains and client 203\.0\.113\.5 is not in mynetworks",
                                "a forged envelope relaying from outside mynetworks")):
            t.ok(re.search(why, q.get(sid) or ""), "planted %s: quarantined (%s)" % (desc, q.get(sid)))
        t.like("\n".join(smapd_log(srv)), r"warning: %s: quarantined: relay policy" % relay_id,
               "the relay refusal is in the log")
        t.is_(open("/etc/passwd", "rb").read(), passwd, "/etc/passwd unchanged")
        t.is_(open(canary, "rb").read(), b"outside the spool\n", "a file beside the spool is unchanged")
        t.is_(listdir(srv.newdir()), [], "new/ is empty afterwards")
        # how long a committed file waits in new/ with smapd running:
        # the window in which another compromised session could touch it
        d.start()
        waits = []
        for i in range(20):
            (sid, t250), = send(srv, [(["u@example.com"], good("window-%d" % i))])
            ok = wait_until(lambda: any("%s: from=" % sid in l and "queue active" in l
                                        for l in smapd_log(srv, sid)), 10)
            gone = time.monotonic()
            if ok:
                waits.append(gone - t250)
        d.stop()
        t.is_(len(waits), 20, "20 messages picked up by the running smapd")
        if waits:
            waits.sort()
            t.note("time from smap's 250 to smapd's pickup (upper bound, log polled every 50 ms): "
                   "median %.0f ms, max %.0f ms" % (waits[len(waits) // 2] * 1000, waits[-1] * 1000))


# --------------------------------------------------------------------------
# a descriptor kept after the commit: smapd queues a copy of its own

HELD = "0000000000000A1"    # sorts before any id smap makes


def holder(jail, cmd_r, rep_w):
    """Fork; as smap in the jail, commit HELD keeping a writable descriptor,
    and rewrite the file through it when told (after smapd's pickup)."""
    pw = pwd.getpwnam("smap")
    pid = os.fork()
    if pid:
        return pid
    try:
        os.chroot(jail)
        os.chdir("/")
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
        fd = os.open("/tmp/" + HELD, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, spool_bytes(HELD, good("held-innocent"), client="203.0.113.5 4711"))
        os.fchmod(fd, 0o644)
        os.fsync(fd)
        os.rename("/tmp/" + HELD, "/new/" + HELD)
        os.write(rep_w, b"committed\n")
        victim = os.read(cmd_r, 100).decode().strip()
        forged = spool_bytes(victim, good("held-forged"), client="203.0.113.5 4711",
                             rcpts=("<victim@elsewhere.example>",))
        os.pwrite(fd, forged, 0)
        os.ftruncate(fd, len(forged))
        os.fsync(fd)
        os.write(rep_w, b"rewrote\n")
    except BaseException as e:  # noqa: BLE001
        os.write(rep_w, ("error %r\n" % e).encode())
    os._exit(0)


def test_held_descriptor(t):
    conf = {"relay_domains": "example.com"}
    with Server(t, name="privsep-held", conf=conf) as srv, FakeSMTP(t, None, None, starttls=None) as fs:
        d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:1", "relay_domains": "example.com",
                                "smtp_connect_timeout": "1s"}, name="smapd-held")
        (other, _), = send(srv, [(["u@example.com"], good("held-other"))])
        cr, cw = os.pipe()
        rr, rw = os.pipe()
        pid = holder(os.path.join(srv.spool, "incoming"), cr, rw)
        t.is_(os.read(rr, 100), b"committed\n", "smap committed a file and kept a writable descriptor")
        d.once(flush=False, timeout=20)       # pickup; the backend is down: both deferred
        st = os.stat(spool_path(srv, "queue", HELD))
        t.ok(st.st_uid == smapd_ids()[0], "queue/%s is smapd's own copy (uid %d), not smap's file"
             % (HELD, st.st_uid))
        os.write(cw, other.encode() + b"\n")
        t.is_(os.read(rr, 100), b"rewrote\n", "smap rewrote its file through the descriptor")
        os.waitpid(pid, 0)
        d.set_conf({"default_transport": "smtp:[127.0.0.1]:%d" % fs.port})
        d.once(flush=True, timeout=20)
        rcpts = [l for s in fs.sessions for l in s["plain"] if l.upper().startswith(b"RCPT")]
        msgs = [m for s in fs.sessions for m in s["messages"]]
        t.ok(rcpts and all(r == b"RCPT TO:<u@example.com>" for r in rcpts),
             "the backend saw only the checked recipient, never victim@elsewhere.example", repr(rcpts))
        t.is_(sum(b"<held-innocent@b.example>" in m for m in msgs), 1, "the message as checked: delivered once")
        t.is_(sum(b"<held-other@b.example>" in m for m in msgs), 1,
              "the message whose id the rewrite named: delivered once, not removed")
        t.ok(not any(b"held-forged" in m for m in msgs), "the rewritten bytes never left")
        t.is_(queue_ids(srv), [], "queue/ is empty")


# --------------------------------------------------------------------------
# links planted in smapd's own directories (by root, for an earlier compromise)

def test_planted(t):
    with Server(t, name="privsep-planted") as srv:
        md = smapd_maildir(srv)
        outside = os.path.join(srv.dir, "outside")
        os.mkdir(outside)
        canaries = {}
        for n in ("why", "state", "tmp", "hold", "hard"):
            p = os.path.join(outside, n)
            with open(p, "wb") as f:
                f.write(b"canary " + n.encode() + b"\n")
            canaries[p] = open(p, "rb").read()
        d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:1", "smtp_connect_timeout": "1s"},
                  name="smapd-planted")
        # quarantine/: a hostile file in new/ whose quarantine name and .why
        # are links planted in advance
        qid = new_id()
        os.symlink(os.path.join(outside, "why"), spool_path(srv, "quarantine", qid))
        os.symlink(os.path.join(outside, "why"), spool_path(srv, "quarantine", qid + ".why"))
        os.link(os.path.join(outside, "hard"), spool_path(srv, "quarantine", qid + ".1.why"))
        place(srv, qid, b"not a spool file\n")
        # state/: a queued message whose state file is a link, and one whose
        # temporary state file name is a link
        (s1, _), (s2, _) = send(srv, [(["u@example.com"], good("state-link")),
                                      (["u@example.com"], good("tmp-link"))])
        d.once(flush=False, timeout=20)   # picks both up, defers both (no backend)
        t.ok(state(srv, s1) and state(srv, s2), "both messages are deferred with state files")
        os.unlink(spool_path(srv, "state", s1))
        os.symlink(os.path.join(outside, "state"), spool_path(srv, "state", s1))
        os.symlink(os.path.join(outside, "tmp"), spool_path(srv, "state", s2 + ".tmp"))
        # hold/: a link where smapq hold would move a message
        (s3, _), = send(srv, [(["u@example.com"], good("hold-link"))])
        d.once(flush=False, timeout=20)
        os.symlink(os.path.join(outside, "hold"), spool_path(srv, "hold", s3))
        rc = d.once(flush=True, timeout=20)
        t.is_(rc, 0, "smapd -1 -f with links planted in its directories exits 0")
        q = quarantined(srv)
        log = "\n".join(smapd_log(srv))
        t.ok(os.path.islink(spool_path(srv, "quarantine", qid)), "quarantine/%s: the planted link stays" % qid)
        moved = [n for n in q if n.startswith(qid + ".")]
        t.ok(moved and q[moved[0]] and "not a version 1 spool file" in q[moved[0]],
             "the hostile file was quarantined under a free name (%s), its reason beside it" % moved, repr(q))
        t.like(log, r"%s: quarantined: .* \(as quarantine/%s\.\d+\)" % (qid, qid), "the log names the new name")
        t.like(log, r"%s: quarantined: state/%s: a symbolic link" % (s1, s1),
               "state/ID a symbolic link: the message is quarantined, the link never followed")
        t.ok(state(srv, s2) is not None and not os.path.islink(spool_path(srv, "state", s2 + ".tmp")),
             "state/ID.tmp a symbolic link: removed, a new state file written in its place")
        rc = subprocess.run([SMAPD_BIN.replace("smapd/smapd", "smapd/smapq"), "-c", d.conffile, "hold", s3],
                            capture_output=True, timeout=20)
        t.ok(rc.returncode == 1 and b"File exists" in rc.stderr and s3 in queue_ids(srv),
             "smapq hold onto a planted hold/ link: refused (never replaced), the message stays queued",
             rc.stderr.decode("latin-1"))
        for p, before in sorted(canaries.items()):
            t.is_(open(p, "rb").read(), before, "%s: never written through a planted link" % os.path.basename(p))
        t.is_(os.stat(os.path.join(outside, "hard")).st_nlink, 2, "the hard-linked .why is still only linked")


# --------------------------------------------------------------------------
# -t: one user for both, and the old layout; -P moves the old layout

def run(argv):
    p = subprocess.run(argv, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    return p.returncode, p.stderr.decode("latin-1")


def test_check(t):
    with Server(t, name="privsep-check") as srv:
        same = os.path.join(srv.dir, "same.conf")
        with open(srv.conffile) as f, open(same, "w") as g:
            g.write(f.read() + "smapd_user = smap\n")
        ln = len(open(same).read().splitlines())
        for prog in (SMAP_BIN, SMAPD_BIN):
            rc, err = run([prog, "-t", "-c", same])
            t.is_(rc, 78, "%s -t: mail_owner = smapd_user = smap: exit 78" % os.path.basename(prog))
            t.like(err, r"%s:%d: mail_owner and smapd_user are both smap: smap and smapd must run as "
                   r"different users" % (re.escape(same), ln), "%s -t: names file:line and why"
                   % os.path.basename(prog))


def old_spool(path, n):
    """A spool of the old layout: tmp/ new/ queue/ ... below spool_directory,
    one user (smap) owning all, n messages in new/ and n in queue/."""
    pw = pwd.getpwnam("smap")
    os.makedirs(path)
    ids = []
    for sub in ("tmp", "new", "queue", "state", "hold", "quarantine"):
        os.mkdir(os.path.join(path, sub), 0o750 if sub in ("tmp", "new") else 0o700)
        os.chown(os.path.join(path, sub), pw.pw_uid, pw.pw_gid)
    for sub in ("new", "queue"):
        for i in range(n):
            sid = new_id()
            p = os.path.join(path, sub, sid)
            with open(p, "wb") as f:
                f.write(spool_bytes(sid, good("old-%s-%d" % (sub, i))))
            os.chown(p, pw.pw_uid, pw.pw_gid)
            os.chmod(p, 0o640)
            ids.append(sid)
    return ids


def test_old_layout(t):
    with Server(t, name="privsep-old", make_spool=False, spool=None) as srv:
        spool = os.path.join(srv.dir, "oldspool")
        ids = old_spool(spool, 3)
        md = smapd_maildir(srv)
        conf = os.path.join(srv.dir, "old.conf")
        with open(conf, "w") as f:
            f.write("myhostname = mx.test.example\nspool_directory = %s\nmaillog_file = %s\n"
                    "default_transport = maildir:%s\n" % (spool, srv.logfile, md))
        for prog in (SMAP_BIN, SMAPD_BIN):
            rc, err = run([prog, "-t", "-c", conf])
            t.is_(rc, 78, "%s -t on the old layout: exit 78" % os.path.basename(prog))
            for sub in ("new", "tmp"):
                t.like(err, r"%s/%s: the spool is in the old layout, before incoming/; \d+ entries there; run "
                       r"`smapd -c CONFIG -P` as root to move them into %s/incoming/%s"
                       % (re.escape(spool), sub, re.escape(spool), sub),
                       "%s -t names %s/ and the fix" % (os.path.basename(prog), sub))
        rc, err = run([SMAPD_BIN, "-c", conf])
        t.is_(rc, 78, "smapd will not start on the old layout (exit 78)")
        rc, err = run([SMAPD_BIN, "-c", conf, "-P"])
        t.ok(rc == 0, "smapd -P moves the old layout", err)
        t.like(err, r"moved 3 entries from %s/new to %s/incoming/new" % (re.escape(spool), re.escape(spool)),
               "smapd -P says what it moved")
        rc2, err2 = run([SMAPD_BIN, "-c", conf, "-P"])
        t.ok(rc2 == 0 and "moved" not in err2 and "created" not in err2, "smapd -P again: nothing to do", err2)
        for prog in (SMAP_BIN, SMAPD_BIN):
            rc, err = run([prog, "-t", "-c", conf])
            t.ok(rc == 0 and err == "", "%s -t after -P: exit 0, silent" % os.path.basename(prog), err)
        rc, err = run([SMAPD_BIN, "-1", "-f", "-c", conf])
        t.ok(rc == 0, "smapd -1 -f on the moved spool exits 0", err)
        got = delivered(md)
        want = sorted("<old-%s-%d@b.example>" % (s, i) for s in ("new", "queue") for i in range(3))
        t.is_(got, want, "every message of the old layout (3 in new/, 3 in queue/) delivered, none lost")


def main(t):
    if os.geteuid() != 0:
        t.skip("needs root: chroot, setuid, a spool for two users")
        return
    t.run("compromised smap", test_compromised, t)
    t.run("held descriptor", test_held_descriptor, t)
    t.run("planted links", test_planted, t)
    t.run("one user", test_check, t)
    t.run("old layout", test_old_layout, t)


TAP(watchdog=150).main(main)
