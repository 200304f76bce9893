#!/usr/bin/env python3
# 35-resources.t - threat model section 5, the parts 31-limits.t does not
# cover: many connections at once, SIZE lies, talkers before the
# greeting, slow clients within limits, huge lines and bodies, the
# default recipient limit.
import os
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, Client, lines, msg, reply_matches  # noqa: E402

MAIL = "MAIL FROM:<a@b.example>"
RCPT = "RCPT TO:<u@example.com>"
OK_CODES = ["220", "250", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"]


def one_parallel(port, i, out, barrier):
    try:
        c = Client(port, timeout=15)
    except OSError as e:
        out[i] = ["connect failed: %s" % e]
        return
    try:
        got = [c.reply(15)]
        try:
            barrier.wait(10)
        except threading.BrokenBarrierError:
            pass
        c.send(lines("EHLO par%d.client" % i, MAIL, RCPT, "DATA") + msg("parallel %d" % i) + b".\r\n" +
               lines("QUIT"))
        got += c.collect(timeout=20)
        out[i] = got
    finally:
        c.close()


def test_parallel(t, srv, n=20):
    out = {}
    barrier = threading.Barrier(n)
    ths = [threading.Thread(target=one_parallel, args=(srv.port, i, out, barrier), daemon=True) for i in range(n)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(40)
    bad = {i: [str(r) for r in out.get(i, ["no result"])] for i in range(n)
           if [getattr(r, "short", lambda: str(r))() for r in out.get(i, [])] != OK_CODES}
    t.ok(not bad, "%d parallel sessions (all connected, then all sending at once) all succeed" % n,
         *["%d: %s" % kv for kv in list(bad.items())[:5]])
    srv.wait_sessions(10)
    files = srv.spool_files()
    t.is_(len(files), n, "%d files in new/" % n)
    ids = set()
    for o in out.values():
        for r in o:
            if reply_matches(r, "250 2.0.0"):
                ids.add(r.text.split()[-1])
    t.is_(sorted(ids), sorted(files), "every queued id is unique and names its file")
    subjects = sorted(f.body().split(b"Subject: ")[1].split(b"\r\n")[0] for f in files.values()
                      if b"Subject: " in f.body())
    t.is_(subjects, sorted(b"parallel %d" % i for i in range(n)), "each session stored its own message")


def test_size_lie(t):
    with Server(t, conf={"message_size_limit": 4096}, name="sizelie") as srv:
        body = msg("size lie", (b"s" * 98 + b"\r\n") * 50)   # 5000+ bytes
        for trickle, mode in ((False, "one write"), (True, "trickled")):
            res = srv.session(lines("EHLO liar.client", MAIL + " SIZE=100", RCPT, "DATA") + body + b".\r\n" +
                              lines("QUIT"), trickle=trickle, delay=0.0001)
            t.codes(res.replies, ["220", "250", "250 2.1.0", "250 2.1.5", "354", "552 5.3.4", "221 2.0.0"],
                    "declares SIZE=100, sends %d bytes > 4096 -> 552 5.3.4 after end of data (%s)"
                    % (len(body), mode))
            t.invariant(res, "SIZE lie (%s)" % mode)
            t.is_(srv.count_tmp(), 0, "SIZE lie: nothing left in tmp/ (%s)" % mode)
    with Server(t, name="bigbody") as srv:
        # 11 MB against the default 10240000: refused, nothing stored
        chunk = (b"b" * 1022 + b"\r\n") * 1024
        data = [lines("EHLO big.client", MAIL, RCPT, "DATA") + msg("huge", b"")] + [chunk] * 11 + \
            [b".\r\n" + lines("QUIT")]
        res = srv.session(data, gap=0, timeout=60)
        t.codes(res.replies, ["220", "250", "250 2.1.0", "250 2.1.5", "354", "552 5.3.4", "221 2.0.0"],
                "11 MB body over the default limit -> 552 5.3.4")
        t.invariant(res, "11 MB body")
        t.is_(srv.count_tmp(), 0, "11 MB body: nothing left in tmp/")
        # a single 2 MB line within the limit is stored unchanged
        line = bytes(b"0123456789abcdef"[i % 16] for i in range(2 * 1024 * 1024)) + b"\r\n"
        body = msg("long line", line + b"..after\r\n")
        res = srv.session([lines("EHLO big.client", MAIL, RCPT, "DATA"), body + b".\r\n" + lines("QUIT")],
                          timeout=60)
        t.codes(res.replies, OK_CODES, "a 2 MB body line is accepted")
        t.invariant(res, "2 MB line")
        ids = res.queued_ids()
        if ids and ids[0] in res.after:
            t.ok(srv.spool_file(ids[0]).body() == body.replace(b"\r\n..after", b"\r\n.after"),
                 "the 2 MB line is stored unchanged, not split")
        # the default recipient limit: 1000 accepted, the 1001st gets 452
        rc = ["RCPT TO:<r%d@example.com>" % i for i in range(1001)]
        res = srv.session(lines("EHLO many.client", MAIL, *rc, "DATA") + msg("1000 rcpt") + b".\r\n" +
                          lines("QUIT"), timeout=60)
        t.codes(res.replies, ["220", "250", "250 2.1.0"] + ["250 2.1.5"] * 1000 +
                ["452 4.5.3", "354", "250 2.0.0", "221 2.0.0"],
                "1001 pipelined RCPTs: 1000 accepted (default limit), then 452 4.5.3")
        t.invariant(res, "1000 recipients")
        ids = res.queued_ids()
        if ids and ids[0] in res.after:
            f = srv.spool_file(ids[0])
            t.is_(len(f.rcpt), 1000, "1000 rcpt records stored")
            t.is_(f.rcpt[999], "<r999@example.com>", "in order")


def test_pregreet(t):
    with Server(t, conf={"smtpd_greet_pause": "1s"}, name="pregreet") as srv:
        # talks after half the pause: still before the greeting
        c = srv.client()
        try:
            time.sleep(0.5)
            c.send(lines("EHLO early.client", MAIL, RCPT, "DATA") + msg("pregreet") + b".\r\n")
            got = c.collect(timeout=5)
            t.codes(got, ["554 5.5.1"], "talks 0.5 s into a 1 s greet pause -> 554 5.5.1, nothing else")
            t.ok(c.wait_close(3), "pre-greet talker: closed")
        finally:
            c.close()
        srv.wait_sessions()
        t.is_(srv.count_new(), 0, "pre-greet talker: nothing stored")
        lg = srv.wait_log(r"disconnect from", 3)
        t.ok(lg is not None, "pre-greet talker: session logged")
    with Server(t, name="pregreet0") as srv:
        # smtpd_greet_pause = 0 (default): the spec defines the 554 only for a
        # pause > 0; report what happens to a client that talks first
        res = srv.session(lines("EHLO early.client", "QUIT"), greet=False)
        t.note("greet pause 0, client talks first: replies %s" % res.codes)


def test_slow(t):
    with Server(t, conf={"smtpd_timeout": "2s"}, name="slow") as srv:
        c = srv.client(timeout=10)
        try:
            got = [c.reply()]
            script = lines("EHLO slow.client", MAIL, RCPT, "DATA") + msg("slow", b"slowly\r\n") + b".\r\n"
            t0 = time.monotonic()
            # one byte every 8 ms, a 1.5 s pause (< smtpd_timeout) every 100 bytes
            for i in range(0, len(script)):
                c.send(script[i:i + 1])
                time.sleep(0.008)
                if i and i % 100 == 0:
                    time.sleep(1.5)
            got += c.collect(timeout=5, want=5)
            got.append(c.cmd(b"QUIT"))
            t.codes(got, OK_CODES, "slow trickle (%.1f s, pauses of 1.5 s < smtpd_timeout 2 s) succeeds"
                    % (time.monotonic() - t0))
        finally:
            c.close()
        srv.wait_sessions()
        t.is_(srv.count_new(), 1, "slow client: stored")


def main(t):
    with Server(t, name="parallel") as srv:
        t.run("parallel", test_parallel, t, srv)
    t.run("size lie", test_size_lie, t)
    t.run("pregreet", test_pregreet, t)
    t.run("slow", test_slow, t)


TAP(watchdog=90).main(main)
