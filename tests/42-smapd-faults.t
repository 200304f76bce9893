#!/usr/bin/env python3
# 42-smapd-faults.t - threat model section 6 for smapd: kill -9 in the
# middle of a delivery (the backend sleeps in DATA), while the backend
# sits on a complete message before its 250, and right after it
# accepted; then two smapd processes on one spool. Nothing is lost; the
# one message in flight may arrive twice, every other exactly once.
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server  # noqa: E402
from postfix import Postfix, DOMAIN, message_ids  # noqa: E402
from smapdtest import (Smapd, send, queue_ids, state_ids, quarantined, smapd_log,  # noqa: E402
                       wait_until)

SLEEP = 3


def mk(tag, n):
    return (b"From: a@b.example\r\nTo: c@backend.test\r\nDate: Mon, 23 Nov 2026 05:00:00 +0000\r\n"
            b"Subject: fault %s %d\r\nMessage-ID: <%s-%d@b.example>\r\n\r\n" % (tag.encode(), n, tag.encode(), n) +
            b"body line\r\n.leading dot\r\n" + b"z" * 2000 + b"\r\n")


def mids(tag, n):
    return ["<%s-%d@b.example>" % (tag, i) for i in range(n)]


def counts(pf, users, want):
    """{(user, mid): copies} for the Message-IDs in want."""
    out = {}
    for u in users:
        c = message_ids(pf.messages(u))
        for m in want:
            out[(u, m)] = c.get(m, 0)
    return out


def wait_all(pf, users, want, timeout=20):
    return wait_until(lambda: all(v >= 1 for v in counts(pf, users, want).values()), timeout)


def settle(t, srv, pf, desc, timeout=20):
    ok = wait_until(lambda: not queue_ids(srv) and not state_ids(srv) and not srv.list_new(), timeout)
    t.ok(ok, "%s: nothing left in new/, queue/ or state/" % desc,
         "new: %s queue: %s state: %s" % (sorted(srv.list_new()), queue_ids(srv), state_ids(srv)))
    pf.wait_idle(10)


def judge(t, desc, cnt, inflight_ok=True):
    """Every copy count 1, except that one message (all its recipients)
    may have 2 when inflight_ok."""
    zero = sorted(k for k, v in cnt.items() if v == 0)
    many = sorted(k for k, v in cnt.items() if v > 2)
    two = sorted(k for k, v in cnt.items() if v == 2)
    t.ok(not zero, "%s: nothing lost (every recipient has every message)" % desc, "missing: %r" % zero)
    t.ok(not many, "%s: no recipient has more than two copies of a message" % desc, "too many: %r" % many)
    two_msgs = sorted(set(m for _, m in two))
    if inflight_ok:
        t.ok(len(two_msgs) <= 1, "%s: at most the one message in flight arrived twice" % desc, "twice: %r" % two)
    else:
        t.ok(not two, "%s: every recipient has exactly one copy of every message" % desc, "twice: %r" % two)
    return two_msgs


def children_of(pid):
    """The pids whose parent is pid (smapd's delivery processes)."""
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open("/proc/%s/stat" % e) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(e))
            except (OSError, IndexError, ValueError):
                pass
    return out


def run_kill(t, srv, pf, tag, listener, trigger, after, n=4, inflight_ok=True):
    """Queue n messages (to c and d) with smapd stopped, start smapd
    against `listener`, wait for the Postfix log regex `trigger` (as it
    appears after the run starts), wait `after` seconds, kill -9 smapd,
    restart it against the plain listener, and count."""
    users = ("c", "d")
    want = mids(tag, n)
    d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % pf.ports[listener]},
              name="smapd-%s" % tag)
    try:
        sent = send(srv, [(["c@" + DOMAIN, "d@" + DOMAIN], mk(tag, i)) for i in range(n)])
        t.is_(len(sent), n, "%s: smap queued %d messages" % (tag, n))
        logpos = len(pf.log())
        d.start()
        m = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            m = re.search(trigger, pf.log()[logpos:], re.M)
            if m:
                break
            time.sleep(0.002)
        if after:
            time.sleep(after)
        alive = d.alive()
        workers = children_of(d.pid()) if alive else []
        d.kill9()
        t.ok(m is not None and alive, "%s: smapd killed -9 at /%s/ + %.1fs" % (tag, trigger, after),
             "trigger seen: %r, smapd alive then: %r" % (m and m.group(0), alive), pf.log()[logpos:][-2000:])
        # its delivery processes get SIGTERM when it dies: each finishes
        # the message it has and exits
        gone = wait_until(lambda: not any(os.path.exists("/proc/%d" % w) for w in workers), SLEEP + 10)
        t.ok(gone, "%s: the killed smapd's %d delivery processes exited too" % (tag, len(workers)))
        # the smtpd that served the killed smapd, if it still runs, finishes
        # before the copies are counted
        pids = set(re.findall(r"postfix/\w+/smtpd\[(\d+)\]: connect from", pf.log()[logpos:]))
        pids |= set(re.findall(r"postfix/smtpd\[(\d+)\]: connect from", pf.log()[logpos:]))
        t.note("%s: queue after the kill: %d in queue/, %d in state/, %d in new/" % (
            tag, len(queue_ids(srv)), len(state_ids(srv)), len(srv.list_new())))
        d.set_conf({"default_transport": "smtp:[127.0.0.1]:%d" % pf.port})
        d.start()
        ok = wait_all(pf, users, want, 20)
        t.ok(ok, "%s: after the restart every message reached c and d" % tag, repr(counts(pf, users, want)))
        settle(t, srv, pf, tag)
        wait_until(lambda: all(re.search(r"smtpd\[%s\]: disconnect from" % p, pf.log()) for p in pids), SLEEP + 5)
        pf.wait_idle(5)
        time.sleep(0.3)
        rc = d.stop()
        t.is_(rc, [0], "%s: the restarted smapd exits 0 on SIGTERM" % tag)
        cnt = counts(pf, users, want)
        two = judge(t, tag, cnt, inflight_ok)
        t.note("%s: copies per (user, message): %s" % (tag, ", ".join("%s/%s=%d" % (u, mm, v) for (u, mm), v in sorted(cnt.items()))))
        if two:
            t.note("%s: the message in flight arrived twice: %s" % (tag, two))
        t.is_(quarantined(srv), {}, "%s: nothing quarantined" % tag)
        d.check_sanitizer()
    finally:
        d.stop()


def test_orphans(t, srv, pf):
    """A delivery process whose smapd is killed -9 gets SIGTERM
    (PR_SET_PDEATHSIG): it finishes the message it has and exits, and
    does not go on with the rest of its share. Two processes, eight
    messages to a listener that sleeps SLEEP s at DATA: the worker holds
    four, 4 * SLEEP s of work, and must be gone within 2 * SLEEP + 1."""
    users, n = ("g",), 8
    want = mids("orphan", n)
    d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % pf.ports["slowdata"],
                            "default_destination_concurrency_limit": "2"}, name="smapd-orphan")
    try:
        send(srv, [(["g@" + DOMAIN], mk("orphan", i)) for i in range(n)])
        logpos = len(pf.log())
        d.start()
        seen = wait_until(lambda: len(re.findall(r"postfix/slowdata/smtpd\[\d+\]: connect from",
                                                 pf.log()[logpos:])) >= 2, 15)
        workers = children_of(d.pid())
        t.ok(seen and len(workers) == 1, "orphans: two deliveries under way, one by a delivery process",
             "connections seen: %r, workers: %r" % (seen, workers))
        d.kill9()
        t0 = time.monotonic()
        gone = wait_until(lambda: not any(os.path.exists("/proc/%d" % w) for w in workers), 2 * SLEEP + 1)
        t.ok(gone and workers, "orphans: the delivery process exited %.1fs after its smapd was killed "
             "(bound %ds; its share was %ds of work)" % (time.monotonic() - t0, 2 * SLEEP + 1, 4 * SLEEP))
        d.set_conf({"default_transport": "smtp:[127.0.0.1]:%d" % pf.port})
        d.start()
        t.ok(wait_all(pf, users, want, 20), "orphans: after a restart every message arrived")
        settle(t, srv, pf, "orphans")
        time.sleep(0.3)
        judge(t, "orphans", counts(pf, users, want), inflight_ok=True)
        d.check_sanitizer()
    finally:
        d.stop()


def test_concurrent(t, srv, pf):
    users = ("e",)
    n = 30
    want = mids("twin", n)
    d1 = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % pf.port}, name="smapd-one")
    d2 = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % pf.port}, name="smapd-two")
    try:
        run_twins(t, srv, pf, d1, d2, users, n, want)
    finally:
        d1.stop()
        d2.stop()


def run_twins(t, srv, pf, d1, d2, users, n, want):
    send(srv, [(["e@" + DOMAIN], mk("twin", i)) for i in range(15)])
    d1.start(wait=False)
    d2.start(wait=False)
    ok = wait_until(lambda: len(re.findall(r"smap/qmgr\[(%d|%d)\]: started" % (d1.pid(), d2.pid()), srv.log())) == 2, 10)
    t.ok(ok and d1.alive() and d2.alive(), "two smapd daemons run at once on one spool")
    send(srv, [(["e@" + DOMAIN], mk("twin", i)) for i in range(15, 30)])
    ok = wait_all(pf, users, want, 30)
    t.ok(ok, "two smapd: all 30 messages arrived", repr(counts(pf, users, want)))
    settle(t, srv, pf, "two smapd")
    time.sleep(0.5)
    cnt = counts(pf, users, want)
    judge(t, "two smapd", cnt, inflight_ok=False)
    # who did the work (for the record)
    by = {}
    for l in smapd_log(srv):
        mm = re.search(r"smap/smtp\[(\d+)\]: [0-9A-F]+: to=<e@backend\.test>.*status=sent", l)
        if mm:
            by[mm.group(1)] = by.get(mm.group(1), 0) + 1
    t.note("two smapd: deliveries per smapd PID: %r" % by)
    t.is_(sum(by.values()), n, "two smapd: exactly 30 status=sent lines in the log")
    t.is_(quarantined(srv), {}, "two smapd: nothing quarantined (no 'duplicate queue id')")
    rcs = d1.stop() + d2.stop()
    t.is_(rcs, [0, 0], "two smapd: both exit 0 on SIGTERM")
    d1.check_sanitizer()
    d2.check_sanitizer()


def test_concurrent_once(t, srv, pf):
    users = ("f",)
    n = 12
    want = mids("once", n)
    d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % pf.port}, name="smapd-once")
    send(srv, [(["f@" + DOMAIN], mk("once", i)) for i in range(n)])
    env = d._env()
    ps = []
    for _ in range(2):
        with open(d.errfile, "ab") as err:
            ps.append(subprocess.Popen(d.argv("-1", "-f"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=err, env=env, close_fds=True))
    rcs = []
    for p in ps:
        try:
            rcs.append(p.wait(40))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
            rcs.append("timeout")
    t.is_(rcs, [0, 0], "two smapd -1 -f at once: both exit 0")
    wait_all(pf, users, want, 10)
    settle(t, srv, pf, "two smapd -1 -f")
    time.sleep(0.3)
    judge(t, "two smapd -1 -f", counts(pf, users, want), inflight_ok=False)
    d.check_sanitizer()


def main(t):
    listeners = {
        "slowdata": "-o smtpd_data_restrictions=sleep,%d" % SLEEP,
        "sloweod": "-o smtpd_end_of_data_restrictions=sleep,%d" % SLEEP,
    }
    with Postfix(t, users=("c", "d", "e", "f", "g"), listeners=listeners, name="postfix-42") as pf:
        with Server(t, name="smap-42") as srv:
            # A: smapd waits for Postfix's answer to DATA (Postfix sleeps):
            # no byte of the message reached Postfix, so exactly one copy
            t.run("kill mid-delivery", run_kill, t, srv, pf, "middata", "slowdata",
                  r"postfix/slowdata/smtpd\[\d+\]: connect from", 0.8, inflight_ok=False)
            # B: Postfix has the whole message and sleeps before its 250
            # (its queue id is logged at MAIL; the 2 KB follow at once)
            t.run("kill before the 250", run_kill, t, srv, pf, "eod", "sloweod",
                  r"postfix/sloweod/smtpd\[\d+\]: [0-9A-F]+: client=", 1.0)
            # C: right after Postfix queued it (qmgr picked it up)
            t.run("kill after accept", run_kill, t, srv, pf, "accepted", "default",
                  r"postfix/qmgr\[\d+\]: [0-9A-F]+: from=<a@b\.example>", 0.0)
            t.run("orphaned delivery processes", test_orphans, t, srv, pf)
            t.run("two daemons", test_concurrent, t, srv, pf)
            t.run("two one-shot runs", test_concurrent_once, t, srv, pf)


if __name__ == "__main__":
    TAP(watchdog=88).main(main)
