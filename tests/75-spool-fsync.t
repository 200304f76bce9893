#!/usr/bin/env python3
# 75-spool-fsync.t - spool_fsync = file (Postfix's level: one fsync of the
# file, after it is renamed into new/):
#   - smap -t and sessions take it on ext4 (data=ordered, data=journal),
#     XFS and btrfs, and refuse it (78; 421) on ext4 data=writeback, ext4
#     without a journal, ext2 and tmpfs; a value that is neither word is
#     refused; file+directory is fine everywhere
#   - a message costs one fsync of the file, after the rename; the
#     default costs the file's and new/'s, the rename between them
#   - smapd never takes a file that is not whole: messages committed while
#     smapd runs are all delivered, none quarantined; and every prefix a
#     crash could leave in new/ (of the file as committed, and of the file
#     before its size record was filled in) is quarantined, never
#     delivered
# Each file system is a loop-mounted image of its own, unmounted at the end.
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, SMAP_BIN, lines, msg, make_spool, smap_ids  # noqa: E402
from smapdtest import smapd_maildir, Smapd, quarantined, send, wait_until, listdir  # noqa: E402

STRACE = shutil.which("strace") or "/usr/bin/strace"
MAIL = "MAIL FROM:<a@client.example>"
RCPT = "RCPT TO:<u@example.com>"
# kind: (mkfs argv, mount options, image MiB); None: tmpfs
KINDS = {
    "ext4": (["mkfs.ext4", "-q", "-F"], "", 64),
    "ext4 data=journal": (["mkfs.ext4", "-q", "-F"], "data=journal", 64),
    "xfs": (["mkfs.xfs", "-q", "-f"], "", 320),
    "btrfs": (["mkfs.btrfs", "-q", "-f"], "", 256),
    "ext4 data=writeback": (["mkfs.ext4", "-q", "-F"], "data=writeback", 64),
    "ext4 without a journal": (["mkfs.ext4", "-q", "-F", "-O", "^has_journal"], "", 64),
    "ext2": (["mkfs.ext2", "-q", "-F"], "", 64),
    "tmpfs": None,
}
GOOD = ("ext4", "ext4 data=journal", "xfs", "btrfs")


def run(argv, timeout=120):
    p = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, (p.stdout + p.stderr).decode("latin-1")


class Loop:
    """One file system of a kind, mounted below work (or why it is not)."""
    made = 0

    def __init__(self, work, kind):
        self.kind = kind
        Loop.made += 1
        self.img = os.path.join(work, "%d-%s.img" % (Loop.made, re.sub(r"\W+", "-", kind)))
        self.mnt = self.img[:-4] + ".mnt"
        self.mounted = False
        self.why = None

    def __enter__(self):
        os.makedirs(self.mnt)
        spec = KINDS[self.kind]
        if spec is None:
            rc, out = run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", self.mnt])
        else:
            mkfs, opts, mib = spec
            if not shutil.which(mkfs[0]):
                self.why = "%s is not installed" % mkfs[0]
                return self
            with open(self.img, "wb") as f:
                f.truncate(mib << 20)
            rc, out = run(mkfs + [self.img])
            if rc == 0:
                rc, out = run(["mount", "-o", "loop" + ("," + opts if opts else ""), self.img, self.mnt])
        if rc != 0:
            self.why = "cannot make it: %s" % out.strip()[-200:]
            return self
        self.mounted = True
        os.chmod(self.mnt, 0o755)
        return self

    def __exit__(self, *a):
        if self.mounted:
            run(["umount", self.mnt], timeout=60)
        if os.path.exists(self.img):
            os.unlink(self.img)
        if os.path.isdir(self.mnt) and not os.listdir(self.mnt):
            os.rmdir(self.mnt)


def smap_t(conffile):
    p = subprocess.run([SMAP_BIN, "-c", conffile, "-t"], capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stderr.decode("latin-1")


def one_message(srv, subject):
    return srv.session(lines("EHLO client.example", MAIL, RCPT, "DATA") + msg(subject) +
                       b".\r\n" + lines("QUIT"))


def test_kind(t, work, kind):
    with Loop(work, kind) as fs:
        if not fs.mounted:
            t.skip("%s: %s" % (kind, fs.why))
            return
        spool = os.path.join(fs.mnt, "spool")
        make_spool(spool)
        # btrfs counts no inodes (statfs: 0 free of 0): no inode floor there
        with Server(t, name="fsync-" + kind, spool=spool,
                    conf={"spool_fsync": "file", "queue_minfree_inodes": "0"}) as srv:
            rc, err = smap_t(srv.conffile)
            res = one_message(srv, "on " + kind)
            if kind in GOOD:
                t.is_(rc, 0, "%s: smap -t takes spool_fsync = file" % kind) or t.diag(err)
                t.ok(any(r.code == 250 and "queued as" in r.text for r in res.replies) and
                     len(res.new_files()) == 1, "%s: a message is accepted and in new/" % kind,
                     "replies: %s" % res.codes)
            else:
                t.is_(rc, 78, "%s: smap -t refuses spool_fsync = file" % kind)
                t.like(err, r"spool_fsync = file: .*keep file\+directory there",
                       "%s: ... and says why" % kind)
                t.ok(res.replies and res.replies[0].code == 421 and not res.new_files(),
                     "%s: a session answers 421 and stores nothing" % kind, "replies: %s" % res.codes)
        if kind not in GOOD:
            with Server(t, name="fsync-dir-" + kind, spool=spool) as srv:
                rc, err = smap_t(srv.conffile)
                t.is_(rc, 0, "%s: file+directory (the default) is fine here" % kind) or t.diag(err)


def fsync_trace(t, spool, how, n=10):
    """n messages under strace: (fsync calls, their order with renameat2)."""
    trace = os.path.join(os.path.dirname(spool), "trace-" + re.sub(r"\W+", "-", how))
    wrapper = [STRACE, "-f", "-A", "-qq", "-o", trace, "-e", "trace=fsync,fdatasync,renameat2"]
    with Server(t, name="trace", spool=spool, wrapper=wrapper, conf={"spool_fsync": how}) as srv:
        codes = []
        for i in range(n):
            res = one_message(srv, "traced %d" % i)
            codes.append(sum(1 for r in res.replies if r.code == 250 and "queued as" in r.text))
        srv.wait_sessions(10)
    with open(trace, errors="replace") as f:
        calls = re.findall(r"^\d+\s+(fsync|fdatasync|renameat2)\(", f.read(), re.M)
    return codes, calls


def test_fsyncs(t, work):
    with Loop(work, "ext4") as fs:
        if not fs.mounted:
            t.skip("ext4: %s" % fs.why)
            return
        spool = os.path.join(fs.mnt, "spool")
        make_spool(spool)
        for how, per, order in (("file", 1, ["renameat2", "fsync"]),
                                ("file+directory", 2, ["fsync", "renameat2", "fsync"])):
            codes, calls = fsync_trace(t, spool, how)
            t.is_(codes, [1] * 10, "%s: 10 messages accepted under strace" % how)
            t.is_(calls.count("fsync") + calls.count("fdatasync"), 10 * per,
                  "%s: %d fsync per message" % (how, per))
            t.is_(calls, order * 10, "%s: each message: %s" % (how, ", ".join(order)))


def test_value(t):
    with Server(t, name="fsync-bad", conf={"spool_fsync": "fiel"}) as srv:
        rc, err = smap_t(srv.conffile)
        t.is_(rc, 78, "spool_fsync = fiel: smap -t refuses it")
        t.like(err, r'spool_fsync: "fiel": expected file\+directory \(the default\) or file',
               "... and names the two words")
        res = one_message(srv, "bad value")
        t.ok(res.replies and res.replies[0].code == 421, "... and a session answers 421",
             "replies: %s" % res.codes)



def delivered(md):
    out = []
    for sub in ("new", "cur"):
        for n in listdir(os.path.join(md, sub)):
            with open(os.path.join(md, sub, n), "rb") as f:
                out.append(f.read())
    return out


def test_live(t, spool):
    """smapd delivering while smap commits: every message whole."""
    with Server(t, name="fsync-live", spool=spool, conf={"spool_fsync": "file"}) as srv:
        md = smapd_maildir(srv, "live")
        with Smapd(t, srv, conf={"default_transport": "maildir:" + md}, name="smapd-66") as d:
            d.start()
            errors = []

            def client(k):
                try:
                    for i in range(4):
                        send(srv, [(["u@example.com"], msg("live-%d-%d-%d" % (k, i, j), b"z" * 3000 +
                                                         b"\r\n")) for j in range(5)])
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(repr(e))
            threads = [threading.Thread(target=client, args=(k,)) for k in range(3)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(120)
            t.is_(errors, [], "60 messages sent by 3 clients while smapd runs")
            wait_until(lambda: len(delivered(md)) >= 60, 60)
        got = delivered(md)
        subjects = sorted(re.search(rb"Subject: (live-\S+)", m).group(1).decode() for m in got
                          if re.search(rb"Subject: live-", m))
        want = sorted("live-%d-%d-%d" % (k, i, j) for k in range(3) for i in range(4) for j in range(5))
        t.is_(subjects, want, "every message delivered once")
        t.ok(all(m.count(b"z" * 3000) == 1 for m in got), "every delivered message is whole")
        q = quarantined(srv)
        t.is_(len(q), 0, "nothing quarantined: smapd never met a partial file",
              ) or t.diag(repr(sorted(q.items())[:5]))


def first_writes(trace):
    """The bytes smap wrote to its spool file with write(2), in order
    (from strace -xx), before any pwrite(2) filled in the envelope. The
    file is opened with openat(2) by glibc's open(), with open(2) by
    musl's."""
    fd, out = None, b""
    with open(trace, errors="replace") as f:
        for line in f:
            m = re.search(r'(?:openat\(AT_FDCWD, |open\()"((?:\\x[0-9a-f]{2})*)", [^)]*\) = (\d+)', line)
            if m and bytes.fromhex(m.group(1).replace("\\x", "")).startswith(b"tmp/"):
                fd = m.group(2)
            m = re.search(r'(write|pwrite64)\((\d+), "((?:\\x[0-9a-f]{2})*)"', line)
            if m and fd is not None and m.group(2) == fd:
                if m.group(1) == "pwrite64":
                    break
                out += bytes.fromhex(m.group(3).replace("\\x", ""))
    return out


def crash_prefixes(t, spool):
    """What a crash before the fsync may leave in new/, given to smapd:
    prefixes of the file as committed, and of the file as it was before
    its size record was filled in (the bytes smap first wrote, seen by
    strace)."""
    trace = os.path.join(os.path.dirname(spool), "trace-crash")
    wrapper = [STRACE, "-f", "-qq", "-xx", "-s", "65536", "-o", trace,
               "-e", "trace=open,openat,write,pwrite64"]
    with Server(t, name="fsync-crash", spool=spool, wrapper=wrapper,
                conf={"spool_fsync": "file"}) as srv:
        res = one_message(srv, "crash image")
        srv.wait_sessions(10)
        names = res.new_files()
        if not t.is_(len(names), 1, "crash: one committed file to cut"):
            return
        sid = names[0]
        with open(os.path.join(srv.newdir(), sid), "rb") as f:
            whole = f.read()
        os.unlink(os.path.join(srv.newdir(), sid))
        early = first_writes(trace)
        m = re.search(rb"\nsize (\d{16})\n", whole)
        e = re.search(rb"\nsize (\S{16})\n", early)
        if not t.ok(m and e and len(early) > m.end(), "crash: the envelope as first written, "
                    "size record %r" % (e.group(1) if e else None)):
            return
        stale = whole[:m.start(1)] + e.group(1) + whole[m.end(1):]
        made = {}

        uid, gid = smap_ids()

        def put(data, what):
            # as smap would leave it: smap's, 0644, renamed from tmp/
            name = sid[:-4] + "%04X" % (len(made) + 1)
            tmp = os.path.join(srv.tmpdir(), ".crash-" + name)
            with open(tmp, "wb") as f:
                f.write(data.replace(sid.encode(), name.encode()))
            os.chown(tmp, uid, gid)
            os.chmod(tmp, 0o644)
            os.rename(tmp, os.path.join(srv.newdir(), name))
            made[name] = what
        for n in range(len(whole)):
            put(whole[:n], "prefix %d of the committed file" % n)
        for n in range(len(stale) + 1):
            put(stale[:n], "prefix %d before the size record" % n)
        put(whole, "the whole file")
        md = smapd_maildir(srv, "crash")
        d = Smapd(t, srv, conf={"default_transport": "maildir:" + md}, name="smapd-66c")
        for _ in range(5):
            if not listdir(srv.newdir()):
                break
            d.once(timeout=120)
        q = quarantined(srv)
        good = [n for n, w in made.items() if w == "the whole file"]
        cut = [n for n in made if n not in good]
        t.is_(listdir(srv.newdir()), [], "crash: smapd took up all %d files" % len(made))
        t.is_(len(delivered(md)), 1, "crash: the whole file, and only it, is delivered")
        missed = [made[n] for n in cut if n not in q]
        t.is_(missed, [], "crash: each of %d prefixes is quarantined" % len(cut))
        reasons = sorted(set(q[n] or "" for n in cut if n in q))
        t.ok(reasons and all(re.search(r"truncated envelope$|^file length does not match", r)
                             for r in reasons),
             "crash: quarantined for being cut short, not for anything else", repr(reasons))


def main(t):
    if os.geteuid() != 0:
        t.skip("needs root (loop mounts, smap's jail)")
        return
    work = tempfile.mkdtemp(prefix="smaptest.fsync.", dir="/var/tmp")
    os.chmod(work, 0o755)
    try:
        test_value(t)
        for kind in KINDS:
            t.run(kind, test_kind, t, work, kind)
        t.run("fsyncs", test_fsyncs, t, work)
        with Loop(work, "ext4") as fs:
            if fs.mounted:
                spool = os.path.join(fs.mnt, "spool")
                make_spool(spool)
                t.run("crash", crash_prefixes, t, spool)
                spool = os.path.join(fs.mnt, "spool-live")
                make_spool(spool)
                t.run("live", test_live, t, spool)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    TAP(watchdog=600).main(main)
