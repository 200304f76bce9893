#!/usr/bin/env python3
# 47-smapd-sendmail-eof.t - threat model sections 6 and 9 for the
# sendmail transport: a sendmail reads its message to end of file, so a
# feeder that dies mid-message must never let it see that end of file.
#
# The "sendmail" is a stand-in written here: like `sendmail -i` it reads
# stdin to EOF, and only when it reads EOF does it record "complete"
# with the byte count and a SHA-256 of what it read. It reads 512 KiB of
# a 3 MB message, then waits for a "go" file (its own pacing, not the
# test's synchronisation: the test polls its progress file), so the kill
# always lands mid-transfer with the rest still unread.
#
#   smapd killed -9   the stand-in must never record a complete copy of
#                     the part it got; the message stays queued and the
#                     next smapd delivers it once, whole.
#   guard killed -9   the same when the process that streams the message
#                     into sendmail (smapd/feed.c) is killed alone: the
#                     stand-in's parent-death signal ends it; smapd defers.
#   guard SIGTERM     the guard kills its group (the stand-in) first.
import hashlib
import os
import re
import signal
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, proc_alive  # noqa: E402
from smapdtest import (Smapd, send, queue_ids, state_ids, quarantined, smapd_log,  # noqa: E402
                       wait_until, smapd_ids)

GATE = 512 * 1024               # bytes the stand-in reads before it waits for "go"
LINE = b"x" * 70 + b"\r\n"

STANDIN = r'''#!/usr/bin/python3
# sendmail -i stand-in written by tests/47-smapd-sendmail-eof.t
import hashlib, os, sys, time
d = %(dir)r
with open(d + "/pid.tmp", "w") as f:
    f.write("%%d %%d\n" %% (os.getpid(), os.getppid()))
os.replace(d + "/pid.tmp", d + "/pid")
n, h, deadline = 0, hashlib.sha256(), time.monotonic() + 60
while True:
    while n >= %(gate)d and not os.path.exists(d + "/go"):
        if time.monotonic() > deadline:
            sys.exit(75)
        time.sleep(0.01)
    b = os.read(0, 65536)
    if not b:
        break
    n += len(b)
    h.update(b)
    with open(d + "/progress.tmp", "w") as f:
        f.write("%%d\n" %% n)
    os.replace(d + "/progress.tmp", d + "/progress")
with open(d + "/records", "a") as f:
    f.write("complete %%d %%s %%s\n" %% (n, h.hexdigest(), " ".join(sys.argv[1:])))
'''


def mk(tag):
    head = (b"From: a@b.example\r\nTo: u@example.com\r\nDate: Mon, 23 Nov 2026 05:00:00 +0000\r\n"
            b"Subject: " + tag.encode() + b"\r\nMessage-ID: <" + tag.encode() + b"@b.example>\r\n\r\n")
    return head + LINE * (3000000 // len(LINE))


def standin(srv, tag):
    """The stand-in and its directory (smapd's user writes there)."""
    d = os.path.join(srv.dir, "standin-" + tag)
    os.mkdir(d, 0o700)
    os.chown(d, *smapd_ids())
    path = os.path.join(srv.dir, "sendmail-" + tag)
    with open(path, "w") as f:
        f.write(STANDIN % {"dir": d, "gate": GATE})
    os.chmod(path, 0o755)
    return d, path


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def records(d):
    return [ln.split() for ln in read(os.path.join(d, "records")).splitlines()]


def progress(d):
    v = read(os.path.join(d, "progress")).strip()
    return int(v) if v.isdigit() else 0


def ppid_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def go(d):
    with open(os.path.join(d, "go"), "w"):
        pass
    os.chown(os.path.join(d, "go"), *smapd_ids())


def queue_one(t, srv, tag):
    """One 3 MB message through smap; its id and the bytes sendmail must read."""
    (sid, _), = send(srv, [(["u@example.com"], mk(tag))])
    name = [n for n in srv.list_new() if n == sid]
    want = srv.spool_file(name[0]).message.replace(b"\r\n", b"\n") if name else b""
    t.ok(sid and len(want) > 2900000, "%s: smap queued %s, %d bytes for sendmail (LF line ends)" %
         (tag, sid, len(want)))
    return sid, want


def wait_gate(t, d, tag, want):
    """Poll until the stand-in sits at its gate; (its pid, its parent)."""
    ok = wait_until(lambda: read(os.path.join(d, "pid")) and progress(d) >= GATE, 30)
    pid, parent = (int(x) for x in read(os.path.join(d, "pid")).split()) if ok else (0, 0)
    t.ok(ok and progress(d) < len(want), "%s: the stand-in has read %d of %d bytes and waits" %
         (tag, progress(d), len(want)))
    return pid, parent


def after_kill(t, srv, d, tag, pid, sid, want):
    """go; the stand-in must end without a complete record; still queued."""
    go(d)
    gone = wait_until(lambda: not proc_alive(pid), 20)
    t.ok(gone, "%s: the stand-in (pid %d) is gone" % (tag, pid))
    got = progress(d)
    t.ok(0 < got < len(want), "%s: it had read %d of %d bytes when it ended" % (tag, got, len(want)))
    short = [r for r in records(d) if r and r[0] == "complete"]
    t.is_(short, [], "%s: no complete copy recorded (no EOF after a cut-short message)" % tag)
    t.is_(queue_ids(srv), [sid], "%s: the message is still queued" % tag)


def delivered_once(t, srv, d, tag, sid, want):
    ok = wait_until(lambda: not queue_ids(srv) and not state_ids(srv), 30)
    t.ok(ok, "%s: queue/ and state/ empty after the next run" % tag,
         "queue: %r state: %r" % (queue_ids(srv), state_ids(srv)))
    rec = [r for r in records(d) if r and r[0] == "complete"]
    t.is_(rec, [["complete", str(len(want)), hashlib.sha256(want).hexdigest(),
                 "-i", "-f", "a@b.example", "--", "u@example.com"]],
          "%s: exactly one complete copy: every byte, the right bytes, sendmail -i" % tag)
    log = "\n".join(smapd_log(srv, sid))
    t.is_(len(re.findall(r"smap/pipe\[\d+\]: %s: to=<u@example\.com>, .*status=sent" % sid, log)), 1,
          "%s: one status=sent line" % tag)
    t.is_(quarantined(srv), {}, "%s: nothing quarantined" % tag)


def test_kill_smapd(t):
    with Server(t, name="smap-47a") as srv:
        d, path = standin(srv, "a")
        sid, want = queue_one(t, srv, "kill-smapd")
        sm = Smapd(t, srv, conf={"default_transport": "sendmail", "sendmail_path": path}, name="smapd-47a")
        try:
            sm.start()
            smapd = sm.pid()
            pid, parent = wait_gate(t, d, "kill smapd", want)
            t.note("smapd %d, stand-in %d, its parent %d" % (smapd, pid, parent))
            sm.kill9()
            after_kill(t, srv, d, "kill smapd", pid, sid, want)
            sm.start()
            delivered_once(t, srv, d, "kill smapd", sid, want)
        finally:
            sm.stop()
        sm.check_sanitizer()


def test_kill_guard(t, sig, tag, sname):
    """The guard gets sig: SIGKILL (then the stand-in's parent-death
    signal must end it) or a signal it catches (then it kills its group)."""
    with Server(t, name="smap-47" + sname) as srv:
        d, path = standin(srv, sname)
        sid, want = queue_one(t, srv, tag.replace(" ", "-"))
        sm = Smapd(t, srv, conf={"default_transport": "sendmail", "sendmail_path": path}, name="smapd-47" + sname)
        try:
            sm.start()
            smapd = sm.pid()
            pid, parent = wait_gate(t, d, tag, want)
            t.ok(parent not in (0, smapd) and ppid_of(parent) == smapd,
                 "%s: the stand-in's parent %d is smapd's child, not smapd %d" % (tag, parent, smapd))
            if parent not in (0, smapd):
                os.kill(parent, sig)
            after_kill(t, srv, d, tag, pid, sid, want)
            ok = wait_until(lambda: re.search(r"status=deferred \(Command died with signal 9\)",
                                              "\n".join(smapd_log(srv, sid))), 20)
            t.ok(ok, "%s: smapd deferred the message (Command died with signal 9)" % tag,
                 "\n".join(smapd_log(srv, sid)))
            t.ok(sm.alive(), "%s: smapd still runs" % tag)
            sm.stop()
            rc = sm.once(flush=True)
            t.is_(rc, 0, "%s: smapd -1 -f exits 0" % tag)
            delivered_once(t, srv, d, tag, sid, want)
        finally:
            sm.stop()
        sm.check_sanitizer()


def main(t):
    t.run("kill smapd", test_kill_smapd, t)
    t.run("kill guard", test_kill_guard, t, signal.SIGKILL, "kill guard", "b")
    t.run("term guard", test_kill_guard, t, signal.SIGTERM, "term guard", "c")


if __name__ == "__main__":
    TAP(watchdog=150).main(main)
