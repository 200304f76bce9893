#!/usr/bin/env python3
# 50-smapq.t - smapq, the queue tool: the mailq-style listing line by
# line (ids, sizes, arrival, the deferral reason, recipients, ! and *,
# the Kbytes/Requests summary), "Mail queue is empty", -j as JSON, show,
# hold/release/delete/flush and their effects on queue/, hold/ and
# state/, a flush waking a running smapd, and bad ids and hostile spool
# entries refused without touching anything.
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, REPO  # noqa: E402
from smapdtest import (Smapd, send, queue_ids, state, spool_path, listdir,  # noqa: E402
                       smapd_log, wait_until, spool_bytes, place, uid_of)

SMAPQ_BIN = os.path.abspath(os.environ.get("SMAPQ_BIN") or os.path.join(REPO, "smapd", "smapq"))
DOMAIN = "backend.test"
HEADER = "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"
DOWN = "smtp:[127.0.0.1]:1"


def smapq(d, *args, prefix=(), timeout=20):
    """Run smapq with smapd's config (TZ=UTC): (status, stdout, stderr)."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TZ": "UTC"}
    if os.environ.get("ASAN_OPTIONS"):
        env["ASAN_OPTIONS"] = os.environ["ASAN_OPTIONS"]
    p = subprocess.run(list(prefix) + [SMAPQ_BIN, "-c", d.conffile] + list(args), capture_output=True,
                       timeout=timeout, stdin=subprocess.DEVNULL, env=env)
    return p.returncode, p.stdout.decode("latin-1"), p.stderr.decode("latin-1")


def mk(n, subject, body_bytes, extra=b""):
    body = (b"line of the message body, to make it bigger.\r\n" * (body_bytes // 47 + 1))[:body_bytes]
    return (b"From: a@b.example\r\nTo: someone@" + DOMAIN.encode() + b"\r\nSubject: " + subject.encode() +
            b"\r\nMessage-ID: <q-%d@b.example>\r\n" % n + extra + b"\r\n" + body)


def envelope(srv, where, sid):
    """(arrival, size, sender, rcpts) from the spool file itself."""
    with open(spool_path(srv, where, sid), "rb") as f:
        head = f.read().split(b"\n\n", 1)[0].decode("latin-1").split("\n")
    rec = {}
    rcpts = []
    for line in head:
        k, _, v = line.partition(" ")
        if k == "rcpt":
            rcpts.append(v)
        else:
            rec[k] = v
    return int(float(rec["arrival"])), int(rec["size"]), rec["from"], rcpts


def bare(a):
    return "MAILER-DAEMON" if a == "<>" else a[1:-1]


def expect_block(srv, where, sid, flag="", reason=None):
    """The lines Postfix's mailq prints for one message."""
    arrival, size, sender, rcpts = envelope(srv, where, sid)
    when = time.strftime("%a %b %e %H:%M:%S", time.gmtime(arrival))
    out = ["%-11s %7d %-20.20s %s" % (sid + flag, size, when, bare(sender))]
    if reason:
        out.append(" " * max(0, 76 - len(reason)) + "(%s)" % reason)
    out += [" " * 41 + bare(r) for r in rcpts]
    return out, size


def snapshot(srv):
    """Every path below the spool with its inode, size and mtime."""
    out = {}
    for root, dirs, files in os.walk(srv.spool):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            out[os.path.relpath(p, srv.spool)] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def reason_of(srv, sid):
    st = state(srv, sid) or {"rcpt": {}}
    return st["rcpt"].get(0, ("", "", ""))[2]


# --------------------------------------------------------------------------

def test_empty(t, d):
    rc, out, err = smapq(d)
    t.is_((rc, out, err), (0, "Mail queue is empty\n", ""), "empty spool: exactly 'Mail queue is empty', exit 0")
    rc, out, err = smapq(d, "-j")
    t.is_((rc, out), (0, ""), "empty spool: -j prints nothing, exit 0")


def build(t, srv, d):
    """Three deferred messages (one to be held) and one still in new/."""
    sent = send(srv, [([at("u1")], mk(1, "first", 2100)),
                      ([at("u2"), at("u3")], mk(2, "second", 3000)),
                      ([at("u4")], mk(3, "third", 700))])
    ids = [s for s, _ in sent]
    # smapd stops a run at the first "cannot connect": one run per message
    rcs = [d.once(flush=True), d.once(flush=False), d.once(flush=False)]
    t.is_(rcs, [0, 0, 0], "smapd -1 against a closed port exits 0")
    t.is_(queue_ids(srv), sorted(ids), "the three messages are deferred in queue/")
    t.is_([(state(srv, s) or {}).get("attempts") for s in ids], [1, 1, 1], "each was tried once")
    for s in ids:
        t.like(reason_of(srv, s), r"^connect to 127\.0\.0\.1\[127\.0\.0\.1\]:1: Connection refused$",
               "state/%s holds the reason" % s)
    (nid, _), = send(srv, [([at("u5")], mk(4, "fourth", 100))])
    t.ok(nid in srv.list_new(), "the fourth message waits in new/ (no smapd running)")
    return ids, nid


def at(u):
    return "%s@%s" % (u, DOMAIN)


def test_list(t, srv, d, ids, nid):
    m1, m2, m3 = ids
    rc, out, err = smapq(d, "hold", m3)
    t.is_((rc, err), (0, ""), "hold %s: exit 0, nothing on stderr" % m3)
    t.ok(os.path.exists(spool_path(srv, "hold", m3)) and not os.path.exists(spool_path(srv, "queue", m3)),
         "hold: queue/ID moved to hold/ID")
    t.like(srv.log(), r"smap/smapq\[\d+\]: %s: placed on hold" % m3, "hold is logged")
    want, total = [HEADER], 0
    for where, sid, flag in (("new", nid, ""), ("queue", m1, ""), ("queue", m2, ""), ("hold", m3, "!")):
        lines, size = expect_block(srv, where, sid, flag, reason_of(srv, sid) if where != "new" else None)
        want += lines + [""]
        total += size
    want.append("-- %d Kbytes in 4 Requests." % (total // 1024))
    rc, out, err = smapq(d)
    t.is_((rc, err), (0, ""), "list: exit 0, nothing on stderr")
    got = out.split("\n")
    t.is_(got[-1], "", "list: ends with a newline")
    got = got[:-1]
    t.ok(len(got) == len(want), "list: %d lines" % len(want), out)
    for i, (g, w) in enumerate(zip(got, want)):
        t.is_(g, w, "list line %d" % (i + 1))
    t.ok(total > 1024 and total % 1024 > 512, "sizes sum to %d bytes: %d Kbytes (rounded down)" % (total, total // 1024))
    t.is_(sorted(int(x) for x in re.findall(r"(?m)^[0-9A-F]+[!*]?\s+(\d+) ", out)),
          sorted(envelope(srv, w, s)[1] for w, s in (("new", nid), ("queue", m1), ("queue", m2), ("hold", m3))),
          "list: every size is the size record of the spool file")
    m = re.search(r"(?m)^-- (\d+) Kbytes in (\d+) Requests?\.$", out)
    t.ok(m and int(m.group(2)) == 4, "list: check_mailq's regex finds 4 requests")
    return total


def test_json(t, srv, d, ids, nid, total):
    m1, m2, m3 = ids
    rc, out, err = smapq(d, "-j")
    t.is_((rc, err), (0, ""), "-j: exit 0, nothing on stderr")
    objs = []
    for line in out.splitlines():
        try:
            objs.append(json.loads(line))
        except ValueError as e:
            t.ok(False, "-j: line parses as JSON", "%s: %r" % (e, line))
    t.is_([o.get("queue_id") for o in objs], [nid, m1, m2, m3], "-j: one object per message, in order")
    by = {o.get("queue_id"): o for o in objs}
    t.is_([by.get(s, {}).get("queue_name") for s in (nid, m1, m2, m3)], ["new", "deferred", "deferred", "hold"],
          "-j: queue_name new, deferred, deferred, hold")
    t.is_(sum(o.get("message_size", 0) for o in objs), total, "-j: message_size adds up to the listing's bytes")
    arrival, size, sender, _ = envelope(srv, "queue", m2)
    o = by.get(m2, {})
    t.is_((o.get("arrival_time"), o.get("message_size"), o.get("sender"), o.get("forced_expire")),
          (arrival, size, "a@b.example", False), "-j: arrival_time, message_size, sender, forced_expire")
    reason = reason_of(srv, m2)
    t.is_(o.get("recipients"), [{"address": at("u2"), "delay_reason": reason},
                                {"address": at("u3"), "delay_reason": reason}],
          "-j: recipients with address and delay_reason")
    t.is_(by.get(nid, {}).get("recipients"), [{"address": at("u5")}], "-j: no delay_reason before an attempt")


def test_show(t, srv, d, ids, eid):
    m1 = ids[0]
    rc, out, err = smapq(d, "show", m1)
    t.is_((rc, err), (0, ""), "show: exit 0")
    arrival, size, _, _ = envelope(srv, "queue", m1)
    for regex, what in ((r"(?m)^queue_id: %s$" % m1, "queue_id"),
                        (r"(?m)^queue_name: deferred$", "queue_name"),
                        (r"(?m)^arrival_time: %d \(" % arrival, "arrival_time"),
                        (r"(?m)^message_size: %d$" % size, "message_size"),
                        (r"(?m)^client: 127\.0\.0\.1 port \d+$", "client"),
                        (r"(?m)^helo: client\.test$", "helo"),
                        (r"(?m)^sender: <a@b\.example>$", "sender"),
                        (r"(?m)^attempts: 1$", "attempts"),
                        (r"(?m)^recipient: <u1@backend\.test> deferred 4\.4\.1 \(connect to .*: "
                         r"Connection refused\)$", "recipient with status and reason"),
                        (r"(?m)^Subject: first$", "the Subject header"),
                        (r"(?m)^Received: from client\.test", "smap's Received header")):
        t.like(out, regex, "show: %s" % what)
    t.unlike(out, r"line of the message body", "show: headers only, not the body")
    rc, out, err = smapq(d, "show", eid)
    t.is_(rc, 0, "show of a message with control and 8-bit bytes in a header: exit 0")
    t.like(out, r"(?m)^X-Esc: a\\x1B\[31mred caf\\xE9$", "show: ESC and 8-bit bytes escaped as \\xHH")
    t.ok(all(c == "\n" or c == "\t" or " " <= c <= "~" for c in out), "show: output is printable ASCII")


def test_lock(t, srv, d, ids):
    m1 = ids[0]
    path = spool_path(srv, "queue", m1)
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        rc, out, err = smapq(d)
        t.like(out, r"(?m)^%s\* " % m1, "list: '*' after the id of a message smapd has locked")
        rc, out, err = smapq(d, "-j")
        t.like(out, r'"queue_name": "active", "queue_id": "%s"' % m1, "-j: a locked message is active")
        before = snapshot(srv)
        for cmd in ("hold", "delete"):
            rc, out, err = smapq(d, cmd, m1)
            t.is_((rc, err), (1, "smapq: %s is being delivered, try again\n" % m1),
                  "%s of a locked message: exit 1, 'is being delivered, try again'" % cmd)
        t.is_(snapshot(srv), before, "nothing changed while the message was locked")
    finally:
        os.close(fd)


def test_release(t, srv, d, ids):
    m3 = ids[2]
    st = state(srv, m3) or {}
    t.ok(st.get("next", 0) > time.time(), "the held message's next attempt is in the future")
    rc, out, err = smapq(d, "release", m3)
    t.is_((rc, err), (0, ""), "release: exit 0")
    t.ok(os.path.exists(spool_path(srv, "queue", m3)) and not os.path.exists(spool_path(srv, "hold", m3)),
         "release: hold/ID moved back to queue/ID")
    st = state(srv, m3) or {}
    t.is_((st.get("next"), st.get("attempts")), (0, 1), "release: state next = 0, attempts kept")
    t.like(st.get("raw", ""), r"rcpt 0 deferred 4\.4\.1 connect to", "release: the recipient's status kept")
    t.like(srv.log(), r"smap/smapq\[\d+\]: %s: released from hold" % m3, "release is logged")
    rc, out, err = smapq(d, "hold", m3, m3)
    t.is_(rc, 0, "hold twice: exit 0 (already held is fine)")
    rc, out, err = smapq(d, "release", m3)
    t.is_(rc, 0, "release again: exit 0")


def test_delete(t, srv, d, ids, nid):
    m2 = ids[1]
    rc, out, err = smapq(d, "delete", m2)
    t.is_((rc, err), (0, ""), "delete: exit 0")
    t.ok(not os.path.exists(spool_path(srv, "queue", m2)) and state(srv, m2) is None,
         "delete: queue/ID and state/ID are gone")
    t.like(srv.log(), r"(?m)^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ smap/smapq\[\d+\]: %s: removed \(deleted by smapq\)$"
           % m2, "delete is logged: 'ID: removed (deleted by smapq)'")
    rc, out, err = smapq(d, "delete", m2)
    t.is_((rc, err), (1, "smapq: %s: not found\n" % m2), "delete of a missing id: exit 1, 'not found'")
    rc, out, err = smapq(d, "delete", nid)
    t.is_(rc, 1, "delete of a message in new/: exit 1")
    t.like(err, r"waiting in incoming/new/", "delete of a message in new/: says it waits for smapd")
    t.ok(nid in srv.list_new(), "the message in new/ is untouched")


def test_bad_ids(t, srv, d, ids):
    m1 = ids[0]
    outside = os.path.join(srv.dir, "x")
    with open(outside, "w") as f:
        f.write("keep me\n")
    before = snapshot(srv)
    for args in (("delete", "../x"), ("hold", "../x"), ("show", "../x"), ("release", "../../x"),
                 ("delete", m1.lower()), ("hold", "abc123"), ("delete", m1, "../x"), ("delete", ""),
                 ("delete", "A" * 32), ("show", "/etc/passwd"), ("delete", m1 + "/"),
                 ("bogus",), ("show",), ("hold",), ("flush", m1), ("-j", "show", m1), ("-x",)):
        rc, out, err = smapq(d, *args)
        t.ok(rc == 64, "smapq %s: refused with exit 64" % " ".join(args), "rc=%s err=%r" % (rc, err))
    t.is_(snapshot(srv), before, "bad ids and bad usage touched nothing in the spool")
    t.ok(os.path.exists(outside), "the file outside the spool is still there")
    t.ok(os.path.exists(spool_path(srv, "queue", m1)), "%s (named alongside a bad id) is untouched" % m1)
    rc, out, err = subprocess.run([SMAPQ_BIN, "-c", os.path.join(srv.dir, "nonexistent.conf")],
                                  capture_output=True, timeout=10).returncode, "", ""
    t.is_(rc, 78, "a missing configuration: exit 78")


def test_hostile(t, srv, d):
    """A symlink and a FIFO named like queue ids: skipped, never followed."""
    link = "ABCDEF0123"
    fifo = "ABCDEF0124"
    os.symlink("/etc/shadow", spool_path(srv, "queue", link))
    os.mkfifo(spool_path(srv, "hold", fifo), 0o600)
    os.chown(spool_path(srv, "hold", fifo), uid_of("smap"), -1)
    try:
        rc, out, err = smapq(d, timeout=10)
        t.is_(rc, 0, "list with a symlink and a FIFO in the queue: exit 0, no hang")
        t.unlike(out, r"ABCDEF012[34]|root:", "list: neither is listed, nothing of /etc/shadow shown")
        t.like(err, r"queue/%s: " % link, "list: the symlink is reported on stderr")
        for cmd in ("hold", "delete", "show"):
            rc, out, err = smapq(d, cmd, link, timeout=10)
            t.is_(rc, 1, "%s of a symlinked id: exit 1" % cmd)
        t.ok(os.path.islink(spool_path(srv, "queue", link)) and os.path.exists("/etc/shadow"),
             "the symlink and its target are untouched")
    finally:
        os.unlink(spool_path(srv, "queue", link))
        os.unlink(spool_path(srv, "hold", fifo))
    os.chmod(spool_path(srv, "hold"), 0)
    try:
        rc, out, err = smapq(d)
        t.is_(rc, 1, "list with an unreadable hold/: exit 1")
        t.like(err, r"smapq: hold: Permission denied", "list with an unreadable hold/: says so")
        t.unlike(out, r"Mail queue is empty|Kbytes in", "list with an unreadable hold/: no summary line")
    finally:
        os.chmod(spool_path(srv, "hold"), 0o700)


def test_flush(t, srv, d, ids, nid):
    m1, m3 = ids[0], ids[2]
    t.ok((state(srv, m1) or {}).get("next", 0) > time.time(), "before flush: %s is due in the future" % m1)
    rc, out, err = smapq(d, "flush")
    t.is_((rc, err), (0, ""), "flush without a running smapd: exit 0")
    t.is_([(state(srv, s) or {}).get("next") for s in (m1, m3)], [0, 0], "flush: next = 0 in every state file")
    t.ok(os.path.isfile(spool_path(srv, "queue", ".flush")), "flush: queue/.flush exists")
    t.ok(nid in srv.list_new(), "flush leaves new/ alone")
    # a running smapd with queue_run_delay = 3600s: its start-up run
    # tries the first message (and stops: the backend is down), then it
    # would sleep an hour; smapq flush wakes it at once
    deferred = lambda: len([l for l in smapd_log(srv) if "deferred after attempt" in l])  # noqa: E731
    n0 = deferred()
    d.start()
    t.ok(wait_until(lambda: deferred() > n0, 10), "the daemon's start-up run made an attempt")
    time.sleep(0.5)
    n1 = deferred()
    t0 = time.monotonic()
    rc, out, err = smapq(d, "flush")
    t.is_((rc, err), (0, ""), "flush with smapd running: exit 0")
    got = wait_until(lambda: deferred() > n1, 5)
    t.ok(got, "flush: smapd made a new delivery attempt within 5 s (%.1fs)" % (time.monotonic() - t0),
         "deferred lines: before start %d, after start-up %d, now %d" % (n0, n1, deferred()))
    t.ok(d.alive(), "smapd is still running")
    d.stop()


def test_drain(t, srv, d, ids, nid):
    """Delete from hold/ and queue/ down to one message, then none."""
    m1, m3 = ids[0], ids[2]
    rc, out, err = smapq(d, "hold", m3)
    rc2, out, err = smapq(d, "delete", m3, m1)
    t.is_((rc, rc2, err), (0, 0, ""), "hold, then delete one held and one queued message: exit 0")
    t.ok(not any(os.path.exists(spool_path(srv, w, s)) for w in ("queue", "hold", "state") for s in (m1, m3)),
         "both are gone from queue/, hold/ and state/")
    rc, out, err = smapq(d)
    size = envelope(srv, "queue", nid)[1]
    t.is_(out.split("\n")[-2:], ["-- %d Kbytes in 1 Request." % (size // 1024), ""],
          "one message left: '-- N Kbytes in 1 Request.' (singular, as Postfix)")
    rc, out, err = smapq(d, "delete", nid)
    t.is_(rc, 0, "delete the last one (picked up by smapd meanwhile): exit 0")
    rc, out, err = smapq(d)
    t.is_((rc, out), (0, "Mail queue is empty\n"), "the queue is empty again")


def test_valgrind(t, d):
    vg = shutil.which("valgrind")
    with open(SMAPQ_BIN, "rb") as f:
        asan = b"__asan_init" in f.read()
    if not vg or asan:
        t.ok(True, "valgrind: skipped (%s)" % ("built with ASan" if asan else "not installed"))
        return
    rc, out, err = smapq(d, prefix=(vg, "--vgdb=no", "--error-exitcode=9", "--leak-check=full", "--errors-for-leak-kinds=all",
                                    "--show-leak-kinds=all"), timeout=40)
    t.is_(rc, 0, "valgrind smapq (list): exit 0")
    t.ok(re.search(r"ERROR SUMMARY: 0 errors", err), "valgrind smapq (list): no errors, no leaks", err[-3000:])
    t.ok(re.search(r"All heap blocks were freed", err), "valgrind smapq (list): all heap blocks freed", err[-3000:])


def main(t):
    with Server(t, name="smap-50") as srv:
        d = Smapd(t, srv, conf={"default_transport": DOWN, "queue_run_delay": "3600s",
                                "minimal_backoff_time": "3600s", "maximal_backoff_time": "3600s"},
                  name="smapd-50")
        with d:
            t.run("empty queue", test_empty, t, d)
            built = t.run("build the queue", build, t, srv, d)
            if not built:
                return
            ids, nid = built
            total = t.run("list", test_list, t, srv, d, ids, nid)
            t.run("json", test_json, t, srv, d, ids, nid, total or 0)
            eid = "ABCDEF0001"
            place(srv, eid, spool_bytes(eid, message=b"Subject: esc\r\nX-Esc: a\x1b[31mred caf\xe9\r\n\r\nb\r\n"))
            t.run("show", test_show, t, srv, d, ids, eid)
            os.unlink(os.path.join(srv.newdir(), eid))
            t.run("valgrind", test_valgrind, t, d)
            t.run("locked", test_lock, t, srv, d, ids)
            t.run("release", test_release, t, srv, d, ids)
            t.run("delete", test_delete, t, srv, d, ids, nid)
            t.run("bad ids", test_bad_ids, t, srv, d, ids)
            t.run("hostile entries", test_hostile, t, srv, d)
            t.run("flush", test_flush, t, srv, d, ids, nid)
            t.run("drain", test_drain, t, srv, d, ids, nid)
            t.is_(listdir(spool_path(srv, "quarantine")), [], "nothing was quarantined")


if __name__ == "__main__":
    TAP(watchdog=60).main(main)
