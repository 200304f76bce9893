#!/usr/bin/env python3
# 31-limits.t - every configured limit of smap: message size, recipients,
# errors, junk commands, messages per session, command length, idle
# timeout, session deadline, greet pause, HTTP, hop count, queue_minfree.
import os
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import (TAP, Server, HOSTNAME, dialog, lines, msg, reply_matches)  # noqa: E402

MAIL = "MAIL FROM:<a@b.example>"
RCPT = "RCPT TO:<u@example.com>"


def deadline_session(srv, out):
    """A client that sends NOOP every second, forever (bounded to 20 s):
    smtpd_session_deadline = 10s must end it with 421 4.4.2."""
    c = srv.client()
    try:
        t0 = time.monotonic()
        out["greeting"] = c.reply()
        c.send(b"EHLO deadline.client\r\n")
        out["ehlo"] = c.reply()
        final = None
        n = 0
        for n in range(20):
            if not c.send(b"NOOP\r\n"):
                break
            r = c.reply(3)
            if r.kind != "reply" or r.code != 250:
                final = r
                break
            time.sleep(1)
        out["noops"] = n
        out["final"] = final
        out["elapsed"] = time.monotonic() - t0
        out["closed"] = c.wait_close(3)
    finally:
        c.close()


def test_size(t):
    with Server(t, conf={"message_size_limit": 4096}, name="size") as srv:
        res = srv.session(lines("EHLO size.client", MAIL + " SIZE=5000", MAIL + " SIZE=4096",
                                RCPT, "QUIT"))
        t.codes(res.replies, ["220", "250", "552 5.3.4", "250 2.1.0", "250 2.1.5", "221 2.0.0"],
                "SIZE= over message_size_limit -> 552 5.3.4 at MAIL; SIZE= at the limit is fine")
        if len(res.replies) > 1:
            t.ok("SIZE 4096" in res.replies[1].lines, "EHLO advertises SIZE 4096", res.replies[1])
        big = msg("too big", (b"y" * 70 + b"\r\n") * 72)   # ~5 KB
        small = msg("small enough", (b"z" * 70 + b"\r\n") * 20)
        for trickle in (False, True):
            mode = "trickled" if trickle else "one write"
            res = srv.session(lines("EHLO size.client", MAIL, RCPT, "DATA") + big + b".\r\n" +
                              lines(MAIL, RCPT, "DATA") + small + b".\r\n" + lines("QUIT"),
                              trickle=trickle, delay=0.0001)
            t.codes(res.replies, ["220", "250", "250 2.1.0", "250 2.1.5", "354", "552 5.3.4",
                                  "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"],
                    "body over the limit -> 552 5.3.4 after end of data; session goes on (%s)" % mode)
            t.invariant(res, "size limit (%s)" % mode)
            t.is_(len(res.new_files()), 1, "only the small message stored (%s)" % mode)


def test_rcpt_limit(t):
    with Server(t, conf={"smtpd_recipient_limit": 3}, name="rcptlimit") as srv:
        res = srv.session(lines("EHLO rcpt.client", MAIL, *["RCPT TO:<r%d@example.com>" % i for i in range(1, 6)],
                                "DATA") + msg("rcpt limit") + b".\r\n" + lines("QUIT"))
        t.codes(res.replies, ["220", "250", "250 2.1.0", "250 2.1.5", "250 2.1.5", "250 2.1.5",
                              "452 4.5.3", "452 4.5.3", "354", "250 2.0.0", "221 2.0.0"],
                "smtpd_recipient_limit = 3: 4th and 5th RCPT get 452 4.5.3")
        t.invariant(res, "recipient limit")
        ids = res.queued_ids()
        if ids:
            f = srv.spool_file(ids[0])
            t.is_(f.rcpt, ["<r1@example.com>", "<r2@example.com>", "<r3@example.com>"],
                  "the three accepted recipients are stored")


def test_errors(t):
    with Server(t, conf={"smtpd_hard_error_limit": 5}, name="errors") as srv:
        for trickle in (False, True):
            mode = "trickled" if trickle else "lock-step"
            c = srv.client()
            try:
                t.expect(c.reply(), "220", "error limit: greeting (%s)" % mode)
                codes = []
                for i in range(5):
                    c.send(b"BOGUS%d\r\n" % i, trickle=trickle)
                    codes.append(c.reply())
                t.ok(all(reply_matches(r, "500 5.5.2") for r in codes),
                     "five unknown commands get 500 5.5.2 (%s)" % mode, [str(r) for r in codes])
                r = c.reply(3)   # nothing sent: the 421 comes by itself
                t.expect(r, "421 4.7.0", "error count reached: 421 4.7.0 without another command (%s)" % mode,
                         text=r"%s.*too many errors" % HOSTNAME.replace(".", r"\."))
                t.ok(c.wait_close(3), "closed after the 421 (%s)" % mode)
            finally:
                c.close()
        # errors of any kind count, including 5xx to MAIL and RCPT
        c = srv.client()
        try:
            dialog(t, srv, [
                ("EHLO err.client", "250"),
                ("MAIL FROM:<bad address>", "501"),
                (MAIL, "250 2.1.0"),
                ("RCPT TO:<x@@y>", "501 5.1.3"),
                ("RCPT TO:<u@example.com> FOO=1", "555 5.5.4"),
                ("VRFY", "501 5.5.4"),
                ("EXPN x", "502 5.5.1"),
            ], "mixed errors", quiet=True, client=c)
            t.expect(c.reply(3), "421 4.7.0", "5th error of mixed kinds -> 421 4.7.0")
            t.ok(c.wait_close(3), "mixed errors: closed")
        finally:
            c.close()


def test_junk(t):
    with Server(t, conf={"smtpd_junk_command_limit": 3, "smtpd_hard_error_limit": 2}, name="junk") as srv:
        c = srv.client()
        got = []
        try:
            t.expect(c.reply(), "220", "junk: greeting")
            for cmd in (b"NOOP", b"RSET", b"VRFY x", b"HELP", b"NOOP", b"NOOP", b"NOOP", b"NOOP"):
                if not c.send(cmd + b"\r\n"):
                    break
                r = c.reply(3)
                got.append(r)
                if r.kind != "reply" or r.code == 421:
                    break
            first = got[:3]
            t.ok([r.short() for r in first] == ["250 2.0.0", "250 2.0.0", "252 2.0.0"],
                 "junk: the first 3 junk commands are served", [str(r) for r in got])
            n421 = [i for i, r in enumerate(got) if reply_matches(r, "421 4.7.0")]
            t.ok(n421 and 3 <= n421[0] <= 5,
                 "junk: commands beyond smtpd_junk_command_limit count as errors -> 421 4.7.0 "
                 "by the 2nd one past the limit", [str(r) for r in got])
            t.ok(c.wait_close(3), "junk: closed after the 421")
        finally:
            c.close()


def test_message_limit(t):
    with Server(t, conf={"smtpd_message_limit": 2}, name="msglimit") as srv:
        one = lines(MAIL, RCPT, "DATA") + msg("one") + b".\r\n"
        res = srv.session(lines("EHLO many.client") + one + one + lines(MAIL, RCPT, "QUIT"))
        t.codes(res.replies, ["220", "250", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0",
                              "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "421 4.7.0"],
                "smtpd_message_limit = 2: the 3rd MAIL gets 421 4.7.0")
        t.ok(res.closed, "message limit: connection closed")
        t.invariant(res, "message limit")
        t.is_(srv.count_new(), 2, "two messages stored")


def test_overlong(t, srv):
    vrfy_ok = b"VRFY " + b"v" * (1000 - 7) + b"\r\n"
    vrfy_long = b"VRFY " + b"v" * (1001 - 7) + b"\r\n"
    assert len(vrfy_ok) == 1000 and len(vrfy_long) == 1001
    for trickle in (False, True):
        mode = "trickled" if trickle else "one write"
        res = srv.session([b"EHLO long.client\r\n" + vrfy_ok + vrfy_long + b"NOOP\r\n" +
                           b"MAIL FROM:<" + b"a" * 1100 + b"@b.example>\r\n" + lines(MAIL, "QUIT")],
                          trickle=trickle, delay=0.0001)
        t.codes(res.replies, ["220", "250", "252 2.0.0", "500 5.5.2", "250 2.0.0", "500 5.5.2",
                              "250 2.1.0", "221 2.0.0"],
                "1000-byte line served, 1001-byte lines -> 500 5.5.2, session stays in sync (%s)" % mode)
    res = srv.session([b"EHLO long.client\r\n", b"X" * 100000 + b"\r\n", lines("NOOP", "QUIT")])
    t.codes(res.replies, ["220", "250", "500 5.5.2", "250 2.0.0", "221 2.0.0"],
            "100 KB command line -> one 500 5.5.2, then in sync")
    res = srv.session([b"EHLO long.client\r\n", b"NOOP " + b"n" * 5000, b"\r", b"\nNOOP\r\nQUIT\r\n"])
    t.codes(res.replies, ["220", "250", "500 5.5.2", "250 2.0.0", "221 2.0.0"],
            "overlong line whose CRLF comes in separate writes -> one 500, then in sync")


def test_timeout(t):
    with Server(t, conf={"smtpd_timeout": "2s"}, name="timeout") as srv:
        c = srv.client()
        try:
            t0 = time.monotonic()
            t.expect(c.reply(), "220", "idle: greeting")
            r = c.reply(8)
            el = time.monotonic() - t0
            t.expect(r, "421 4.4.2", "idle client: 421 4.4.2 after smtpd_timeout")
            t.ok(1.5 <= el <= 6, "idle: the 421 came after about 2 s", "after %.2fs" % el)
            t.ok(c.wait_close(3), "idle: closed")
        finally:
            c.close()
        c = srv.client()
        try:
            t.expect(c.reply(), "220", "idle in DATA: greeting")
            c.send(lines("EHLO slow.client", MAIL, RCPT, "DATA"))
            got = [c.reply() for _ in range(4)]
            t.ok([r.short() for r in got] == ["250", "250 2.1.0", "250 2.1.5", "354"],
                 "idle in DATA: transaction started", [str(r) for r in got])
            c.send(b"Subject: half\r\n\r\nhalf a message\r\n")
            t0 = time.monotonic()
            r = c.reply(8)
            el = time.monotonic() - t0
            t.expect(r, "421 4.4.2", "idle in DATA: 421 4.4.2")
            t.ok(1.5 <= el <= 6, "idle in DATA: after about 2 s", "after %.2fs" % el)
            t.ok(c.wait_close(3), "idle in DATA: closed")
        finally:
            c.close()
        srv.wait_sessions()
        t.is_(srv.count_new(), 0, "idle in DATA: nothing stored")
        t.is_(srv.count_tmp(), 0, "idle in DATA: nothing left in tmp/")
        # active within the timeout: a trickling client that never pauses 2 s
        c = srv.client()
        try:
            t.expect(c.reply(), "220", "slow but active: greeting")
            ok = True
            for line in (b"EHLO slow.client", b"NOOP"):
                time.sleep(1.2)
                c.send(line + b"\r\n")
                r = c.reply(3)
                ok = ok and r.kind == "reply" and r.code == 250
            t.ok(ok, "a pause of 1.2 s < smtpd_timeout is fine", [str(r) for r in c.replies])
            t.expect(c.cmd(b"QUIT"), "221 2.0.0", "slow but active: QUIT")
        finally:
            c.close()


def test_greet_pause(t):
    with Server(t, conf={"smtpd_greet_pause": "1s"}, name="greetpause") as srv:
        for data, what in ((b"EHLO eager.client\r\n", "EHLO"), (b"x", "one byte"),
                           (lines("EHLO e", MAIL, RCPT, "DATA") + msg("pregreet") + b".\r\n", "a transaction")):
            res = srv.session(data, greet=False)
            t.codes(res.replies, ["554 5.5.1"], "greet pause: %s before the greeting -> 554 5.5.1, no 220" % what)
            t.ok(res.closed, "greet pause: closed after the 554 (%s)" % what)
            t.invariant(res, "pregreet %s" % what)
        c = srv.client()
        try:
            t0 = time.monotonic()
            r = c.reply(5)
            el = time.monotonic() - t0
            t.expect(r, "220", "greet pause: a patient client gets the 220")
            t.ok(0.8 <= el <= 4, "greet pause: after about 1 s", "after %.2fs" % el)
            t.expect(c.cmd(b"EHLO patient.client"), "250", "greet pause: patient client served")
            t.expect(c.cmd(b"QUIT"), "221 2.0.0", "greet pause: QUIT")
        finally:
            c.close()


def test_http(t, srv):
    for verb in ("GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS"):
        req = (b"%s / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl\r\n\r\n" % verb.encode())
        if verb == "CONNECT":
            req = b"CONNECT 127.0.0.1:25 HTTP/1.1\r\nHost: 127.0.0.1:25\r\n\r\n"
        res = srv.session(req)
        t.codes(res.replies, ["220", "521 5.7.0"], "HTTP %s -> 521 5.7.0 and nothing else" % verb)
        t.ok(res.closed, "HTTP %s: closed" % verb)
    res = srv.session([lines("EHLO h.client"), b"get /index.html HTTP/1.0\r\n\r\n"])
    t.codes(res.replies, ["220", "250", "521 5.7.0"], "lowercase HTTP verb after EHLO -> 521 5.7.0")


def test_hopcount(t):
    with Server(t, conf={"hopcount_limit": 3}, name="hops") as srv:
        def rec(n, name="Received"):
            return b"".join(b"%s: from h%d.example by relay%d.example; Mon, 1 Jan 2024 00:00:0%d +0000\r\n"
                            % (name.encode(), i, i, i) for i in range(n))
        cases = [
            (rec(4), "554 5.4.6", "4 Received: headers > hopcount_limit 3"),
            (rec(2) + rec(2, "received"), "554 5.4.6", "4 Received: headers, mixed case"),
            (rec(10), "554 5.4.6", "10 Received: headers"),
            (rec(3), "250 2.0.0", "3 Received: headers (== limit) accepted"),
            (rec(2), "250 2.0.0", "2 Received: headers accepted"),
        ]
        for hdrs, want, desc in cases:
            res = srv.session(lines("EHLO hop.client", MAIL, RCPT, "DATA") + msg("hops", headers=hdrs) +
                              b".\r\n" + lines("QUIT"))
            t.codes(res.replies, ["220", "250", "250 2.1.0", "250 2.1.5", "354", want, "221 2.0.0"], desc)
            t.invariant(res, desc)
        body = msg("hops in body", rec(10))
        res = srv.session(lines("EHLO hop.client", MAIL, RCPT, "DATA") + body + b".\r\n" + lines("QUIT"))
        t.codes(res.replies, ["220", "250", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"],
                "Received: lines in the body do not count")
        t.invariant(res, "Received: in body")


def test_minfree(t):
    d = os.statvfs(tempfile.gettempdir())
    free = d.f_bavail * d.f_frsize
    # above the free space, within the configurable range (<= 1 TiB)
    huge = min(free + free // 2 + 10 ** 9, 1 << 40)
    with Server(t, conf={"queue_minfree": huge}, name="minfree") as srv:
        st = os.statvfs(srv.spool)
        t.note("spool free %d bytes, queue_minfree %d" % (st.f_bavail * st.f_frsize, huge))
        res = srv.session(lines("EHLO disk.client", MAIL, MAIL + " SIZE=100", RCPT, "DATA", "QUIT"))
        t.codes(res.replies[:4], ["220", "250", "452 4.3.1", "452 4.3.1"],
                "queue_minfree above the free space: MAIL -> 452 4.3.1 (with and without SIZE)")
        t.invariant(res, "queue_minfree")
        t.is_(srv.count_new(), 0, "queue_minfree: nothing stored")
    # free - queue_minfree is about 5 MB: SIZE=9 MB does not fit, 1000 does
    with Server(t, conf={"queue_minfree": max(0, free - 5 * 10 ** 6)}, name="minfree2") as srv:
        res = srv.session(lines("EHLO disk.client", MAIL + " SIZE=9000000", MAIL + " SIZE=1000", "QUIT"))
        t.codes(res.replies, ["220", "250", "452 4.3.1", "250 2.1.0", "221 2.0.0"],
                "free < queue_minfree + declared SIZE -> 452 4.3.1; a small SIZE fits")


def main(t):
    # the 10 s session deadline runs in the background meanwhile
    dl = {}
    with Server(t, conf={"smtpd_session_deadline": "10s"}, name="deadline") as dsrv:
        th = threading.Thread(target=deadline_session, args=(dsrv, dl), daemon=True)
        th.start()
        t.run("size", test_size, t)
        t.run("rcpt limit", test_rcpt_limit, t)
        t.run("errors", test_errors, t)
        t.run("junk", test_junk, t)
        t.run("message limit", test_message_limit, t)
        with Server(t, name="limits") as srv:
            t.run("overlong", test_overlong, t, srv)
            t.run("http", test_http, t, srv)
        t.run("timeout", test_timeout, t)
        t.run("greet pause", test_greet_pause, t)
        t.run("hopcount", test_hopcount, t)
        t.run("minfree", test_minfree, t)
        th.join(25)
        t.ok(not th.is_alive(), "deadline client finished")
        t.expect(dl.get("greeting"), "220", "deadline: greeting")
        t.expect(dl.get("final"), "421 4.4.2",
                 "session older than smtpd_session_deadline (10 s) -> 421 4.4.2 despite activity")
        el = dl.get("elapsed", 0)
        t.ok(9 <= el <= 14, "deadline: after about 10 s", "after %.2fs, %s NOOPs" % (el, dl.get("noops")))
        t.ok(dl.get("closed"), "deadline: closed")


TAP(watchdog=80).main(main)
