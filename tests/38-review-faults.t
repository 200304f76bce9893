#!/usr/bin/env python3
# 38-review-faults.t - smap's side of what an adversarial review found,
# each against the real binaries:
#   - a recipient repeated in one transaction reaches the backend once;
#   - more recipients than smtpd_recipient_limit: 452 for the excess, the
#     message taken for the accepted ones, the excess not held against the
#     client up to smtpd_recipient_overshoot_limit;
#   - a client trickling a command one byte at a time is cut off after
#     smtpd_timeout for the whole line (not per byte);
#   - a probe that connects and hangs up is a lost connection, not a
#     client that talked first, and fail2ban's filter ignores it;
#   - MAIL is refused when the spool has inodes, not bytes, too few;
#   - a refused MAIL is logged with the address the client sent.
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, REPO, lines, msg, make_spool  # noqa: E402
from smapdtest import Smapd  # noqa: E402
from smtpfake import FakeSMTP  # noqa: E402

MAIL = "MAIL FROM:<a@b.example>"


def test_duplicates(t):
    with Server(t, name="dups") as srv, FakeSMTP(t, None, None, starttls=None) as fs:
        rc = ["RCPT TO:<u@example.com>"] * 3 + ["RCPT TO:<u@EXAMPLE.com>", "RCPT TO:<U@example.com>"]
        res = srv.session(lines("EHLO dup.client", MAIL, *rc) + lines("DATA") + msg("dup") + b".\r\n" +
                          lines("QUIT"))
        t.codes(res.replies, ["220", "250", "250 2.1.0"] + ["250 2.1.5"] * 5 + ["354", "250 2.0.0", "221 2.0.0"],
                "five RCPTs, three the same and one with the domain in capitals: each 250")
        f = srv.spool_file(res.queued_ids()[0]) if res.queued_ids() else None
        t.is_(f.rcpt if f else None, ["<u@example.com>", "<U@example.com>"],
              "the spool file keeps one of the repeats (the local part's case is its own)")
        d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % fs.port}, name="smapd-dups")
        t.is_(d.once(), 0, "smapd -1 -f exits 0")
        rcpts = [l for s in fs.sessions for l in s["plain"] if l.upper().startswith(b"RCPT")]
        t.is_(sorted(rcpts), [b"RCPT TO:<U@example.com>", b"RCPT TO:<u@example.com>"],
              "the backend saw u@example.com once (and U@example.com once)")
        t.is_(sum(len(s["messages"]) for s in fs.sessions), 1, "one copy of the message")


def test_overshoot(t):
    rc = ["RCPT TO:<r%d@example.com>" % i for i in range(30)]
    with Server(t, conf={"smtpd_recipient_limit": "5"}, name="overshoot") as srv:
        res = srv.session(lines("EHLO many.client", MAIL, *rc) + lines("DATA") + msg("many") + b".\r\n" +
                          lines("QUIT"))
        t.codes(res.replies, ["220", "250", "250 2.1.0"] + ["250 2.1.5"] * 5 + ["452 4.5.3"] * 25 +
                ["354", "250 2.0.0", "221 2.0.0"],
                "limit 5, 30 pipelined RCPTs: 5 x 250, 25 x 452, then the message is taken (RFC 5321 4.5.3.1.10)")
        f = srv.spool_file(res.queued_ids()[0]) if res.queued_ids() else None
        t.is_(f.rcpt if f else None, ["<r%d@example.com>" % i for i in range(5)],
              "spooled for the five accepted recipients")
        t.unlike(srv.log(), r"too many errors", "no 'too many errors' for the excess (fail2ban would ban)")
    with Server(t, conf={"smtpd_recipient_limit": "5", "smtpd_recipient_overshoot_limit": "3",
                         "smtpd_hard_error_limit": "10"}, name="overshoot3") as srv:
        res = srv.session(lines("EHLO many.client", MAIL, *rc))
        t.codes(res.replies, ["220", "250", "250 2.1.0"] + ["250 2.1.5"] * 5 + ["452 4.5.3"] * 13 + ["421 4.7.0"],
                "overshoot limit 3, hard error limit 10: the 4th excess recipient on counts; "
                "after 10 more, 421")


def test_trickle(t):
    with Server(t, conf={"smtpd_timeout": "2s"}, name="trickle") as srv:
        c = srv.client(timeout=10)
        try:
            t.expect(c.reply(), "220", "trickle: greeting")
            t0 = time.monotonic()
            for ch in b"NOOP\r\n":          # a byte every 0.7 s: 4.2 s for the line
                if not c.send(bytes([ch])):
                    break
                if c.has_data(0.7):
                    break
            r = c.reply(timeout=5)
            took = time.monotonic() - t0
            t.expect(r, "421 4.4.2", "a command trickled a byte at a time: 421 timeout before the line is done")
            t.ok(took < 4.0, "cut off after about smtpd_timeout (2 s) for the whole line: %.1f s" % took)
            t.ok(c.wait_close(5), "and the connection is closed")
        finally:
            c.close()
        lg = srv.wait_log(r"timeout after", 3)
        t.ok(lg is not None, "the log says timeout")


def fail2ban_matches(t, logfile):
    """Lines of logfile the shipped filter matches, or None without fail2ban."""
    tool = shutil.which("fail2ban-regex")
    if tool is None:
        return None
    filt = os.path.join(REPO, "conf/fail2ban/filter.d/smap.conf")
    d = tempfile.mkdtemp(prefix="smaptest.f2b.")
    try:
        fd = os.path.join(d, "filter.d")
        os.makedirs(fd)
        if os.path.exists("/etc/fail2ban/filter.d/common.conf"):
            shutil.copy("/etc/fail2ban/filter.d/common.conf", fd)
        shutil.copy(filt, os.path.join(fd, "smap.conf"))
        p = subprocess.run([tool, "--print-all-matched", logfile, os.path.join(fd, "smap.conf")],
                           capture_output=True, timeout=60)
        m = re.search(r"Lines: \d+ lines, \d+ ignored, (\d+) matched", p.stdout.decode("latin-1"))
        return int(m.group(1)) if m else -1
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_probes(t):
    for pause in ("0s", "1s"):
        with Server(t, conf={"smtpd_greet_pause": pause}, name="probe-%s" % pause) as srv:
            for _ in range(6):              # six health checks: connect, hang up
                c = srv.client()
                c.close()
            srv.wait_sessions(5)
            t.ok(srv.wait_log(r"(?s)(lost connection after CONNECT.*){6}", 5) is not None,
                 "greet pause %s: six probes that hang up: six 'lost connection after CONNECT'" % pause)
            t.unlike(srv.log(), r"pregreet", "greet pause %s: never logged as talking first" % pause)
            n = fail2ban_matches(t, srv.logfile)
            if n is None:
                t.skip("fail2ban-regex is not installed")
            else:
                t.is_(n, 0, "greet pause %s: fail2ban's filter matches none of the probes' lines" % pause)
    with Server(t, conf={"smtpd_greet_pause": "1s"}, name="talker") as srv:
        res = srv.session(lines("EHLO early.client"), greet=False)
        t.ok(any(r.code == 554 for r in res.replies), "a client that does talk first still gets 554", res.codes)
        t.ok(srv.wait_log(r"pregreet after CONNECT", 3) is not None, "and is logged as pregreet")


def test_inodes(t):
    mnt = tempfile.mkdtemp(prefix="smaptest.inodes.")
    mounted = False
    try:
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,nr_inodes=200,mode=0755", "tmpfs", mnt],
                           capture_output=True, timeout=10)
        mounted = p.returncode == 0
        if not t.ok(mounted, "mounted a tmpfs of 8 MB and 200 inodes as the spool", p.stderr.decode()):
            return
        make_spool(mnt)
        with Server(t, conf={"queue_minfree": "0", "queue_minfree_inodes": "100"}, spool=mnt,
                    name="inodes") as srv:
            res = srv.session(lines("EHLO ino.client", MAIL, "QUIT"))
            t.codes(res.replies, ["220", "250", "250 2.1.0", "221 2.0.0"], "plenty of inodes: MAIL 250")
            filler = os.path.join(mnt, "filler")
            os.mkdir(filler)
            for i in range(200):
                try:
                    open(os.path.join(filler, str(i)), "w").close()
                except OSError:
                    break
            free = os.statvfs(mnt).f_favail
            res = srv.session(lines("EHLO ino.client", MAIL, "QUIT"))
            t.codes(res.replies, ["220", "250", "452 4.3.1", "221 2.0.0"],
                    "%d inodes free (< queue_minfree_inodes 100), bytes to spare: MAIL 452 4.3.1" % free)
            shutil.rmtree(filler)
            res = srv.session(lines("EHLO ino.client", MAIL, "QUIT"))
            t.codes(res.replies, ["220", "250", "250 2.1.0", "221 2.0.0"], "inodes given back: MAIL 250 again")
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


def test_mail_log(t):
    with Server(t, name="maillog") as srv:
        res = srv.session(lines("EHLO log.client", "MAIL FROM:<bad..dots@x.example>", "MAIL FROM:<a\x01b@x.example>",
                                "QUIT"))
        t.codes(res.replies, ["220", "250", "501 5.1.7", "501 5.1.7", "221 2.0.0"], "two bad senders: 501 5.1.7")
        srv.wait_log(r"from=<a\\x01b", 3)
        lg = [l for l in srv.log().splitlines() if "reject: MAIL" in l]
        t.ok(len(lg) == 2 and "from=<bad..dots@x.example> " in lg[0],
             "the refused MAIL is logged with the sender sent, not <>", lg)
        t.ok(len(lg) == 2 and "from=<a\\x01b@x.example> " in lg[1], "... escaped", lg)


def main(t):
    t.run("duplicates", test_duplicates, t)
    t.run("overshoot", test_overshoot, t)
    t.run("trickle", test_trickle, t)
    t.run("probes", test_probes, t)
    if os.geteuid() == 0:
        t.run("inodes", test_inodes, t)
    else:
        t.skip("needs root to mount a tmpfs")
    t.run("mail log", test_mail_log, t)


TAP(watchdog=120).main(main)
