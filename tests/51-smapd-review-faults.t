#!/usr/bin/env python3
# 51-smapd-review-faults.t - smapd's side of what an adversarial review
# found, each against the real binaries:
#   - progress that cannot be recorded (a spool out of inodes) stops the
#     message from being tried, so a recipient that accepted it never gets
#     it twice;
#   - quarantine/ never replaces an entry (three junk files in one second,
#     by three smapd processes, are three entries) and expires after
#     quarantine_lifetime; smapq quarantine lists it;
#   - a reload applies a new mail_owner (it used to quarantine all new
#     mail as "wrong owner") and the other settings it may change, and
#     refuses, saying why, what it cannot;
#   - an arrival time from the future and a retry time far ahead are
#     taken as now;
#   - a backend's malformed reply is logged under the transport's name;
#   - a message sent to every recipient whose queue file cannot be
#     removed (queue/ append-only) keeps a state that says so: the next
#     run does not deliver it again.
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import SLOW, TAP, Server, make_spool  # noqa: E402
from smapdtest import (smapd_maildir, Smapd, SMAPD_BIN, send, new_id, spool_bytes, place, queue_ids,  # noqa: E402
                       state_ids, quarantined, spool_path, state, smapd_log, wait_until, listdir)
from postfix import read_maildir, header  # noqa: E402
from smtpfake import FakeSMTP  # noqa: E402

SMAPQ_BIN = os.path.join(os.path.dirname(SMAPD_BIN), "smapq")


def good(tag):
    return (b"From: a@b.example\r\nTo: u@example.com\r\nSubject: " + tag.encode() +
            b"\r\nMessage-ID: <" + tag.encode() + b"@b.example>\r\n\r\nbody\r\n")



def copies(fs, addr):
    """Transactions of the fake backend that delivered to addr."""
    want = ("RCPT TO:<%s>" % addr).encode().lower()
    return sum(1 for s in fs.sessions for x in s.get("transactions", [])
               if any(r.lower().startswith(want) for r in x["rcpt"]))


def fill(path):
    """Create empty files in path until the file system has no inode."""
    n = 0
    for i in range(100000):
        try:
            open(os.path.join(path, "f%d" % i), "w").close()
            n += 1
        except OSError:
            break
    return n


def test_inodes(t):
    mnt = tempfile.mkdtemp(prefix="smaptest.state-inodes.")
    mounted = False
    try:
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,nr_inodes=64,mode=0755", "tmpfs", mnt],
                           capture_output=True, timeout=10)
        mounted = p.returncode == 0
        if not t.ok(mounted, "mounted a tmpfs of 64 inodes as the spool", p.stderr.decode()):
            return
        make_spool(mnt)
        with Server(t, conf={"queue_minfree": "0", "queue_minfree_inodes": "0"}, spool=mnt,
                    name="state-inodes") as srv, \
                FakeSMTP(t, None, None, starttls=None,
                         rcpt_reply={b"later@example.com": b"450 4.2.0 try later"}) as fs:
            d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % fs.port,
                                    "queue_minfree_inodes": "0"}, name="smapd-inodes")
            (sid, _), = send(srv, [(["now@example.com", "later@example.com"], good("inodes"))])
            d.once(flush=False, timeout=20)     # pickup only happens in a run: picked up and tried
            first = copies(fs, "now@example.com")
            t.is_(first, 1, "one recipient accepted, one deferred with 450 at the first attempt")
            filler = os.path.join(mnt, "filler")
            os.mkdir(filler)
            n = fill(filler)
            t.note("filled the spool with %d empty files; %d inodes free" % (n, os.statvfs(mnt).f_favail))
            for i in range(3):
                d.once(flush=True, timeout=20)
            t.is_(copies(fs, "now@example.com"), 1,
                  "three forced runs with no inode to record progress: the accepted recipient has its one copy")
            t.is_(copies(fs, "later@example.com"), 0, "... and the deferred one was not tried again either")
            t.like("\n".join(smapd_log(srv, sid)), r"%s: not delivered now: no room to record its progress in "
                   r"state/: No space left on device" % sid, "the log says why it is not tried")
            t.ok(sid in queue_ids(srv), "the message stays queued")
            shutil.rmtree(filler)
            for i in range(2):
                d.once(flush=True, timeout=20)
            t.is_(copies(fs, "now@example.com"), 1, "inodes back, two more runs: still one copy for the accepted one")
            t.is_(copies(fs, "later@example.com"), 0, "the deferred one is deferred again (450), never accepted")
            st = state(srv, sid) or {}
            t.ok(st.get("rcpt", {}).get(0, ("",))[0] == "sent" and st.get("rcpt", {}).get(1, ("",))[0] == "deferred",
                 "state/%s: recipient 0 sent, recipient 1 deferred" % sid, st.get("raw"))
    finally:
        if mounted:
            for _ in range(10):
                if subprocess.run(["umount", mnt], capture_output=True, timeout=10).returncode == 0:
                    break
                time.sleep(0.3)
        try:
            os.rmdir(mnt)
        except OSError:
            pass


def test_quarantine(t):
    with Server(t, name="quarantine") as srv:
        # the lifetime outlasts the five quarantines and their listing
        # (five smapd runs; SLOW times longer under memcheck)
        life = 3 * SLOW
        d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:1", "quarantine_lifetime": "%ds" % life},
                  name="smapd-quar")
        # three junk files with names that are no queue id, three smapd
        # processes, all within a second: the X names must not collide
        procs = []
        for i in range(3):
            place(srv, "junk %d" % i, b"junk\n")
        for i in range(3):
            procs.append(subprocess.Popen(d.argv("-1"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, env=d._env()))
        for p in procs:
            p.wait(30)
        q = quarantined(srv)
        xs = sorted(n for n in q if n.startswith("X"))
        t.ok(len(xs) == 3, "three junk files quarantined within one second by three smapd: three entries", repr(q))
        t.ok(all(q[n] == "file name is not a queue id" for n in xs), "each with its .why", repr(q))
        # the same queue id twice: the second is kept beside the first
        sid = new_id()
        place(srv, sid, b"not a spool file\n")
        d.once(flush=False)
        place(srv, sid, b"not a spool file either\n")
        d.once(flush=False)
        t.ok(sid in quarantined(srv) and sid + ".1" in quarantined(srv),
             "the same id quarantined twice: %s and %s.1, nothing replaced" % (sid, sid), repr(quarantined(srv)))
        p = subprocess.run([SMAPQ_BIN, "-c", d.conffile, "quarantine"], capture_output=True, timeout=20)
        out = p.stdout.decode("latin-1")
        t.ok(p.returncode == 0 and "-- 5 in quarantine" in out and "(file name is not a queue id)" in out and
             "(not a version 1 spool file)" in out, "smapq quarantine lists the five, with their reasons", out)
        p = subprocess.run([SMAPQ_BIN, "-c", d.conffile, "-j", "quarantine"], capture_output=True, timeout=20)
        t.is_(len([l for l in p.stdout.decode().splitlines() if '"queue_name": "quarantine"' in l]), 5,
              "smapq -j quarantine: one JSON line each")
        # after quarantine_lifetime a full run removes them
        ok = wait_until(lambda: d.once(flush=False) == 0 and not listdir(spool_path(srv, "quarantine")),
                        5 * life, 1.0)
        t.ok(ok, "after quarantine_lifetime (%ds) a run removes every entry and its .why" % life,
             repr(listdir(spool_path(srv, "quarantine"))))
        t.like("\n".join(smapd_log(srv)), r"quarantine/%s: removed after quarantine_lifetime" % sid,
               "each removal is logged")


def test_reload(t):
    with Server(t, name="reload") as srv:
        md1, md2 = smapd_maildir(srv, "m1"), smapd_maildir(srv, "m2")
        d = Smapd(t, srv, conf={"default_transport": "maildir:" + md1}, name="smapd-reload")
        with d:
            d.start()
            send(srv, [(["u@example.com"], good("before-reload"))])
            t.ok(wait_until(lambda: len(read_maildir(md1)) == 1, 10), "before the reload: delivered to m1")
            nobody = pwd.getpwnam("nobody")
            d.set_conf({"mail_owner": "nobody", "default_transport": "maildir:" + md2})
            n = len(re.findall(r"reloaded ", srv.log()))
            os.kill(d.pid(), signal.SIGHUP)
            t.ok(srv.wait_log(r"(?s)(reloaded .*){%d}" % (n + 1), 10) is not None, "SIGHUP: reloaded")
            a, b = new_id(), new_id()
            place(srv, a, spool_bytes(a, good("owned-by-new-owner")), owner="nobody")
            place(srv, b, spool_bytes(b, good("owned-by-old-owner")), owner="smap")
            os.utime(srv.newdir())    # wake the daemon (inotify on new/)
            t.ok(wait_until(lambda: len(read_maildir(md2)) == 1 and b in quarantined(srv), 10),
                 "after the reload: the new mail_owner's file is delivered (to the new transport), "
                 "the old owner's is 'wrong owner'", repr(quarantined(srv)), "\n".join(smapd_log(srv)[-8:]))
            t.is_(quarantined(srv).get(b), "wrong owner", "the old owner's file: wrong owner")
            t.ok(nobody.pw_uid != 0, "(nobody is an unprivileged user)")
            # what a reload cannot change: refused, the running settings kept
            d.set_conf({"mail_owner": "smap", "spool_directory": srv.dir})
            os.kill(d.pid(), signal.SIGHUP)
            t.ok(srv.wait_log(r"reload refused, keeping the running configuration: spool_directory "
                              r"changed: restart smapd", 10) is not None, "spool_directory: reload refused, why")
            d.set_conf({"spool_directory": srv.spool, "mail_owner": "smapd"})
            os.kill(d.pid(), signal.SIGHUP)
            t.ok(srv.wait_log(r"mail_owner and smapd_user are both smapd: smap and smapd must run as different "
                              r"users", 10) is not None and
                 srv.wait_log(r"has errors; keeping the running configuration", 5) is not None,
                 "one user for both: the reload is refused, and the log says why")
            c = new_id()
            place(srv, c, spool_bytes(c, good("still-running")), owner="nobody")
            os.utime(srv.newdir())
            t.ok(wait_until(lambda: len(read_maildir(md2)) == 2, 10),
                 "after refused reloads the running configuration (mail_owner nobody, m2) still delivers")


def test_clamp(t):
    with Server(t, name="clamp") as srv:
        md = smapd_maildir(srv, "mc")
        d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:1", "smtp_connect_timeout": "1s",
                                "maximal_queue_lifetime": "1h"}, name="smapd-clamp")
        far = int(time.time()) + 10 * 365 * 86400
        a = new_id()
        place(srv, a, spool_bytes(a, good("future"), arrival=far, sender="<>"))
        d.once(flush=True)
        t.like("\n".join(smapd_log(srv, a)), r"%s: arrival time %d is in the future: taken as now" % (a, far),
               "an arrival ten years ahead is taken as now (and said)")
        st = state(srv, a)
        t.ok(st and st["next"] < time.time() + 3700, "its next attempt is due within maximal_backoff_time",
             st and st.get("raw"))
        # a state whose next attempt is far ahead: retried now, not never
        path = spool_path(srv, "state", a)
        raw = open(path).read()
        with open(path, "w") as f:
            f.write(re.sub(r"(?m)^next \d+$", "next %d" % far, raw))
        d.set_conf({"default_transport": "maildir:" + md})
        d.once(flush=False)
        t.ok(len(read_maildir(md)) == 1 and a not in queue_ids(srv),
             "a next attempt ten years ahead is taken as now: delivered at the next run")


def test_ident(t):
    with Server(t, name="ident") as srv, \
            FakeSMTP(t, None, None, starttls=None, rcpt_reply={b"odd@example.com": b"25x not a reply"}) as fs:
        d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % fs.port}, name="smapd-ident")
        (sid, _), = send(srv, [(["odd@example.com"], good("ident"))])
        d.once(flush=True)
        lines_ = [l for l in smapd_log(srv) if "malformed" in l]
        t.ok(lines_ and all(" smap/smtp[" in l for l in lines_),
             "a backend's malformed reply is logged under smap/smtp, not smap/qmgr", lines_ or smapd_log(srv))


def test_unremovable(t):
    with Server(t, name="unremovable") as srv:
        md = smapd_maildir(srv, "mu")
        d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:1", "smtp_connect_timeout": "1s"},
                  name="smapd-unremovable")
        a = new_id()
        place(srv, a, spool_bytes(a, good("unremovable")))
        d.once(flush=True)
        if not t.ok(a in queue_ids(srv) and (state(srv, a) or {}).get("rcpt", {}).get(0, ("",))[0] == "deferred",
                    "the backend down: queued, deferred", smapd_log(srv, a)):
            return
        q = spool_path(srv, "queue")
        p = subprocess.run(["chattr", "+a", q], capture_output=True, timeout=10)
        if not t.ok(p.returncode == 0, "queue/ made append-only (chattr +a): nothing in it can be removed",
                    p.stderr.decode("latin-1")):
            return
        try:
            d.set_conf({"default_transport": "maildir:" + md})
            d.once(flush=True)
            t.is_(len(read_maildir(md)), 1, "delivered to the Maildir while queue/%s cannot be removed" % a)
            t.like("\n".join(smapd_log(srv, a)), r"%s: cannot remove: Operation not permitted" % a,
                   "the log says it cannot be removed")
            st = state(srv, a) or {}
            t.ok(st.get("rcpt", {}).get(0, ("",))[0] == "sent", "state/%s records the recipient as sent" % a,
                 st.get("raw"))
        finally:
            subprocess.run(["chattr", "-a", q], capture_output=True, timeout=10)
        d.once(flush=True)
        t.is_(len(read_maildir(md)), 1, "queue/ writable again, a forced run: still one copy")
        t.ok(a not in queue_ids(srv) and a not in state_ids(srv), "the message and its state are gone",
             (queue_ids(srv), state_ids(srv)))


def main(t):
    if os.geteuid() != 0:
        t.skip("needs root")
        return
    t.run("inodes", test_inodes, t)
    t.run("quarantine", test_quarantine, t)
    t.run("reload", test_reload, t)
    t.run("clamp", test_clamp, t)
    t.run("ident", test_ident, t)
    t.run("unremovable", test_unremovable, t)


TAP(watchdog=150).main(main)
