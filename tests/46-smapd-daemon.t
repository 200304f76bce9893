#!/usr/bin/env python3
# 46-smapd-daemon.t - smapd as a daemon: the sd_notify protocol (READY=1,
# STATUS=, RELOADING=1), SIGHUP with a good and a bad configuration,
# SIGTERM in the middle of a delivery (finished, not cut), and stale
# files a killed smap left in tmp/ (removed after a day, fresh ones kept).
import os
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, smap_ids, smapd_ids  # noqa: E402
from postfix import read_maildir, header  # noqa: E402
from smapdtest import smapd_maildir, Smapd, send, queue_ids, smapd_log, wait_until, spool_path  # noqa: E402



def subjects(md):
    return sorted(header(d, "Subject") for _, d in read_maildir(md))


def msg(tag):
    return b"Subject: " + tag.encode() + b"\r\n\r\nbody of " + tag.encode() + b"\r\n"


def datagrams(sock, until, timeout):
    """Notify messages received until one contains until (bounded)."""
    got = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sock.settimeout(max(0.05, end - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode("latin-1"))
        except socket.timeout:
            break
        if until in got[-1]:
            break
    return got


def test_notify_and_reload(t, srv):
    path = os.path.join(srv.dir, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    os.chmod(path, 0o777)          # smapd writes to it after dropping to smap
    try:
        md1, md2 = smapd_maildir(srv, "m1"), smapd_maildir(srv, "m2")
        d = Smapd(t, srv, conf={"default_transport": "maildir:" + md1}, name="smapd-46")
        d.start(prefix=["env", "NOTIFY_SOCKET=" + path])
        got = datagrams(sock, "STATUS=", 10)
        t.ok(any(g == "READY=1" for g in got), "sd_notify: READY=1 once started", repr(got))
        t.ok(any(g.startswith("STATUS=") and "queued" in g for g in got),
             "sd_notify: STATUS= with the queue counts", repr(got))
        send(srv, [(["u@example.com"], msg("before-reload"))])
        t.ok(wait_until(lambda: subjects(md1) == ["before-reload"], 10),
             "delivered to the first Maildir", repr(subjects(md1)))
        d.set_conf({"default_transport": "maildir:" + md2})
        os.kill(d.pid(), 1)        # SIGHUP
        got = datagrams(sock, "READY=1", 10)
        t.ok("RELOADING=1" in got and "READY=1" in got, "SIGHUP: RELOADING=1 then READY=1", repr(got))
        t.ok(wait_until(lambda: "reloaded" in srv.log(), 5), "SIGHUP: 'reloaded' logged")
        send(srv, [(["u@example.com"], msg("after-reload"))])
        t.ok(wait_until(lambda: subjects(md2) == ["after-reload"], 10),
             "after SIGHUP: the new transport is used", repr(subjects(md2)))
        with open(d.conffile, "a") as f:
            f.write("default_transprt = smtp:[127.0.0.1]:1\n")
        os.kill(d.pid(), 1)
        t.ok(wait_until(lambda: "keeping the running configuration" in srv.log(), 5),
             "SIGHUP with a bad file: refused, the running configuration kept")
        send(srv, [(["u@example.com"], msg("after-bad-reload"))])
        t.ok(wait_until(lambda: "after-bad-reload" in subjects(md2), 10),
             "after a refused reload: still delivering as before", repr(subjects(md2)))
        t.ok(d.alive(), "smapd still running")
        t.is_(d.stop(), [0], "smapd exits 0 on SIGTERM")
    finally:
        sock.close()


def test_term_in_flight(t, srv):
    """SIGTERM while the sendmail transport runs: the delivery completes."""
    prog = os.path.join(srv.dir, "slow-sendmail")
    out = os.path.join(srv.dir, "slow-out")
    with open(prog, "w") as f:
        f.write("#!/bin/sh\ncat > %s.tmp\nsleep 2\nmv %s.tmp %s\nexit 0\n" % (out, out, out))
    os.chmod(prog, 0o755)
    uid, gid = smapd_ids()
    os.chown(srv.dir, uid, gid)    # the script writes its output here
    d = Smapd(t, srv, conf={"default_transport": "sendmail", "sendmail_path": prog},
              name="smapd-46b")
    d.start()
    (sid, _), = send(srv, [(["u@example.com"], msg("in-flight"))])
    t.ok(wait_until(lambda: os.path.exists(out + ".tmp"), 10), "the slow sendmail is running")
    os.kill(d.pid(), 15)           # SIGTERM in the middle of the delivery
    rc = d.stop(timeout=15)
    t.is_(rc, [0], "SIGTERM mid-delivery: smapd exits 0")
    t.ok(os.path.exists(out), "SIGTERM mid-delivery: the delivery was finished, not cut")
    t.like("\n".join(smapd_log(srv, sid)), r"status=sent", "SIGTERM mid-delivery: logged as sent")
    t.is_(queue_ids(srv), [], "SIGTERM mid-delivery: the message left the queue")


def test_stale_tmp(t, srv):
    tmp = srv.tmpdir()
    old, fresh = os.path.join(tmp, "6B0000000000001"), os.path.join(tmp, "6B0000000000002")
    uid, gid = smap_ids()
    for p in (old, fresh):
        with open(p, "w") as f:
            f.write("partial")
        os.chown(p, uid, gid)
    two_days = time.time() - 2 * 86400
    os.utime(old, (two_days, two_days))
    d = Smapd(t, srv, conf={"default_transport": "maildir:" + smapd_maildir(srv, "m3")}, name="smapd-46c")
    t.is_(d.once(), 0, "smapd -1 exits 0")
    t.ok(not os.path.exists(old), "a temporary file older than a day is removed")
    t.ok(os.path.exists(fresh), "a fresh temporary file (smap may be writing it) is kept")
    t.like(srv.log(), r"6B0000000000001: removed stale temporary file", "the removal is logged")


def test_orphan_state(t, srv):
    """A smapd killed after it removed a finished message (the record)
    but before its state leaves state/ID, or its reservation state/ID.tmp:
    they go once the message is in neither queue/ nor hold/."""
    uid, gid = smapd_ids()
    two_days = time.time() - 2 * 86400
    files = {"6B00000000000A1.tmp": False, "6B00000000000A2": True, "6B00000000000A3": False,
             "6B00000000000A4": True, "6B00000000000A5.tmp": False}
    for name, old in files.items():
        p = spool_path(srv, "state", name)
        with open(p, "w") as f:
            f.write("attempts 1\n")
        os.chown(p, uid, gid)
        if old:
            os.utime(p, (two_days, two_days))
    held = spool_path(srv, "hold", "6B00000000000A4")   # its message is on hold
    with open(held, "w") as f:
        f.write("held\n")
    os.chown(held, uid, gid)
    d = Smapd(t, srv, conf={"default_transport": "maildir:" + smapd_maildir(srv, "m4")}, name="smapd-46d")
    t.is_(d.once(), 0, "orphans: smapd -1 exits 0")
    left = set(os.listdir(spool_path(srv, "state")))
    t.ok("6B00000000000A1.tmp" not in left and "6B00000000000A5.tmp" not in left,
         "orphans: a reservation whose message is gone is removed at once", sorted(left))
    t.ok("6B00000000000A2" not in left, "orphans: a day-old state whose message is gone is removed")
    t.ok("6B00000000000A3" in left, "orphans: a fresh state whose message is gone is kept for a day")
    t.ok("6B00000000000A4" in left, "orphans: the state of a held message is kept, however old")
    t.like(srv.log(), r"state/6B00000000000A2: removed, its message is gone", "orphans: the removal is logged")
    os.unlink(held)


def main(t):
    with Server(t, name="smap-46") as srv:
        test_notify_and_reload(t, srv)
    with Server(t, name="smap-46b") as srv:
        test_term_in_flight(t, srv)
    with Server(t, name="smap-46c") as srv:
        test_stale_tmp(t, srv)
        test_orphan_state(t, srv)


if __name__ == "__main__":
    TAP(watchdog=80).main(main)
