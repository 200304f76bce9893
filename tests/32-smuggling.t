#!/usr/bin/env python3
# 32-smuggling.t - threat model section 1: line endings and SMTP smuggling.
#
# Policy under test: only CRLF ends a line and only CRLF.CRLF ends DATA.
# Any bare CR or bare LF in the message makes smap answer 554 5.6.0 after
# the real CRLF.CRLF, and nothing is stored. A body line "..x" is stored
# as ".x". Commands pipelined behind a failed DATA are never executed.
# Every case runs twice: in one write and trickled one byte per write.
# After every session: new/ files == 250 replies to end-of-data.
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, lines, reply_matches, check_log_clean  # noqa: E402

EVIL = "evil@attacker.example"
PRE = lines("EHLO smuggle.client", "MAIL FROM:<a@b.example>", "RCPT TO:<u@example.com>", "DATA")
PRE_CODES = ["220", "250", "250 2.1.0", "250 2.1.5", "354"]
HDR = b"From: a@b.example\r\nTo: u@example.com\r\nSubject: smuggling test\r\n\r\n"
SMUG = lines("MAIL FROM:<%s>" % EVIL, "RCPT TO:<victim@target.example>", "DATA") + \
    b"Subject: smuggled\r\n\r\nsmuggled body"
QUIT = b"QUIT\r\n"
MODES = ((False, "one write"), (True, "trickled"))


def smuggled_not_run(t, res, desc, legit_mail=1, legit_rcpt=1):
    n_mail = sum(1 for r in res.replies if reply_matches(r, "250 2.1.0"))
    n_rcpt = sum(1 for r in res.replies if reply_matches(r, "250 2.1.5"))
    t.ok(n_mail <= legit_mail and n_rcpt <= legit_rcpt,
         "%s: smuggled MAIL/RCPT never got a 250" % desc, "replies: %s" % res.codes)


def trickle_args(trickle, size):
    # one byte per write; above 3 KB without the sleep between writes
    if not trickle:
        return {}
    return {"trickle": True, "delay": 0.0003 if size < 3000 else 0, "timeout": 40}


# --- A: end-of-data look-alikes and bare CR/LF: 554 5.6.0, nothing stored

LOOKALIKES = [
    b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r", b"\r.\n", b"\r.\r\n", b"\n.\r",
    b"\n\n.\n\n", b"\r\r.\r\r", b"\r\n.\n\r\n", b"\n.\n\r\n", b"\r\n.\r\r\n", b"\r\n.\r.\r\n",
    b"\r\n\n.\r\n", b"\r\n \n.\n", b"\n..\n", b"\r\n..\n", b"\n", b"\r", b"\r\r\n", b"\n\r\n",
    b"\r\n.\r\r",
]


def test_lookalikes(t, srv):
    for look in LOOKALIKES:
        for trickle, mode in MODES:
            desc = "look-alike %r (%s)" % (look, mode)
            wire = PRE + HDR + b"line before" + look + SMUG + b"\r\n.\r\n" + QUIT
            res = srv.session(wire, **trickle_args(trickle, len(wire)))
            t.codes(res.replies, PRE_CODES + ["554 5.6.0", "221 2.0.0"],
                    "%s: DATA ends only at CRLF.CRLF, then 554 5.6.0" % desc)
            t.invariant(res, desc)
            smuggled_not_run(t, res, desc)


def test_lookalike_at_start(t, srv):
    # the look-alike right after the DATA command line, and bare endings
    # inside the header
    cases = [b"\n.\n", b".\n", b".\r", b"\r.\r\n", b"Subject: x\n\r\n", b"Subject: x\r\r\n"]
    for lead in cases:
        for trickle, mode in MODES:
            desc = "data starting with %r (%s)" % (lead, mode)
            wire = PRE + lead + SMUG + b"\r\n.\r\n" + QUIT
            res = srv.session(wire, **trickle_args(trickle, len(wire)))
            t.codes(res.replies, PRE_CODES + ["554 5.6.0", "221 2.0.0"], "%s: 554 5.6.0" % desc)
            t.invariant(res, desc)


# --- B: legitimate neighbours: accepted, stored exactly (dot-unstuffed)

def stuffing_cases():
    c = [
        # (wire content after HDR, stored content after HDR, description)
        (b"a\r\n..\r\n" + SMUG + b"\r\n", b"a\r\n.\r\n" + SMUG + b"\r\n",
         "stuffed lone dot followed by smuggled commands"),
        (b"a\r\n..x\r\n", b"a\r\n.x\r\n", "..x stored as .x"),
        (b"a\r\n...\r\n", b"a\r\n..\r\n", "... stored as .."),
        (b"a\r\n....\r\n", b"a\r\n...\r\n", ".... stored as ..."),
        (b"a\r\n.x\r\n", b"a\r\nx\r\n", ".x (unstuffed by the client) stored as x (RFC 5321 4.5.2)"),
        (b"a\r\n. \r\n" + SMUG + b"\r\n", b"a\r\n \r\n" + SMUG + b"\r\n", "'. ' line is not the end"),
        (b"a\r\n .\r\n" + SMUG + b"\r\n", b"a\r\n .\r\n" + SMUG + b"\r\n", "' .' line is not the end"),
        (b"a\r\n..\r\n.." + SMUG + b"\r\n", b"a\r\n.\r\n." + SMUG + b"\r\n", "two stuffed lines"),
        (b"a.\r\n.b\r\nc.d\r\n", b"a.\r\nb\r\nc.d\r\n", "dots inside and at line ends"),
        (b"x" * 3000 + b"." + b"y" * 3000 + b"\r\n", b"x" * 3000 + b"." + b"y" * 3000 + b"\r\n",
         "a dot inside a 6 KB line"),
        (b"\r\n" * 5 + b"..\r\n", b"\r\n" * 5 + b".\r\n", "empty lines then a stuffed dot"),
    ]
    for n in (997, 998, 999, 1000, 1001, 1022, 1023, 1024, 2046, 2047, 2048, 4094, 4095, 4096,
              8190, 8191, 8192, 16383, 16384, 65535, 65536):
        line = b"L" * n + b".\r\n"
        c.append((line + SMUG + b"\r\n", line + SMUG + b"\r\n",
                  "%d-byte line ending in '.' then smuggled commands" % (n + 1)))
    for n in (1022, 1023, 1024, 4094, 4095, 4096, 8190, 8191, 8192):
        line = b"E" * n + b"\r\n"
        c.append((line, line, "%d-byte line right before the real end" % (n + 2)))
    for n in (1020, 4093, 8189):
        line = b"L" * n + b"\r\n"
        c.append((line + b"..\r\n" + SMUG + b"\r\n", line + b".\r\n" + SMUG + b"\r\n",
                  "stuffed dot line after a %d-byte line" % n))
    return c


def test_stuffing(t, srv):
    for wire_c, stored_c, what in stuffing_cases():
        for trickle, mode in MODES:
            desc = "%s (%s)" % (what, mode)
            wire = PRE + HDR + wire_c + b".\r\n" + QUIT
            res = srv.session(wire, **trickle_args(trickle, len(wire)))
            t.codes(res.replies, PRE_CODES + ["250 2.0.0", "221 2.0.0"], "%s: accepted" % desc)
            t.invariant(res, desc)
            smuggled_not_run(t, res, desc)
            ids = res.queued_ids()
            if ids and ids[0] in res.after:
                body = srv.spool_file(ids[0]).body()
                if not t.ok(body == HDR + stored_c, "%s: stored exactly, unstuffed" % desc):
                    exp = HDR + stored_c
                    i = next((k for k in range(min(len(body), len(exp))) if body[k] != exp[k]),
                             min(len(body), len(exp)))
                    t.diag("first difference at %d: got %r expected %r (lengths %d/%d)"
                           % (i, body[i:i + 40], exp[i:i + 40], len(body), len(exp)))


def test_start_of_data(t, srv):
    cases = [
        (b".\r\n", b"", "DATA then '.' at once: empty message"),
        (b"..\r\n.\r\n", b".\r\n", "first line '..'"),
        (b"..x\r\n.\r\n", b".x\r\n", "first line '..x'"),
        (b"\r\n.\r\n", b"\r\n", "first line empty"),
    ]
    for wire_c, stored, what in cases:
        for trickle, mode in MODES:
            desc = "%s (%s)" % (what, mode)
            res = srv.session(PRE + wire_c + QUIT, **trickle_args(trickle, 0))
            t.codes(res.replies, PRE_CODES + ["250 2.0.0", "221 2.0.0"], "%s: accepted" % desc)
            t.invariant(res, desc)
            ids = res.queued_ids()
            if ids and ids[0] in res.after:
                t.is_(srv.spool_file(ids[0]).body(), stored, "%s: stored" % desc)


# --- C: the real end split across writes

SPLITS = [
    [b"\r", b"\n", b".", b"\r", b"\n"],
    [b"\r\n", b".\r\n"],
    [b"\r\n.", b"\r\n"],
    [b"\r", b"\n.\r\n"],
    [b"\r\n.\r", b"\n"],
    [b"\r\n", b".", b"\r\n"],
]


def test_splits(t, srv):
    body = HDR + b"split test" + b"\r\n..stuffed\r\nlast"
    stored = HDR + b"split test" + b"\r\n.stuffed\r\nlast\r\n"
    for parts in SPLITS:
        desc = "CRLF.CRLF split as %r" % parts
        res = srv.session([PRE + body] + parts[:-1] + [parts[-1] + QUIT], gap=0.08)
        t.codes(res.replies, PRE_CODES + ["250 2.0.0", "221 2.0.0"], "%s: accepted" % desc)
        t.invariant(res, desc)
        ids = res.queued_ids()
        if ids and ids[0] in res.after:
            t.is_(srv.spool_file(ids[0]).body(), stored, "%s: stored exactly" % desc)
    # the QUIT in the same write as the last byte, the next transaction too
    res = srv.session([PRE + body + b"\r\n.", b"\r\n" + lines("MAIL FROM:<a@b.example>",
                                                                 "RCPT TO:<u@example.com>", "DATA")
                       + HDR + b"second\r\n.\r\n" + QUIT])
    t.codes(res.replies, PRE_CODES + ["250 2.0.0", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"],
            "end split, next transaction pipelined behind it")
    t.invariant(res, "split + pipelined next transaction")
    # look-alikes split across writes still do not end DATA
    for parts in ([b"\n", b".", b"\n"], [b"\r", b".\r"], [b"\n.", b"\r\n"], [b"\r\n.", b"\n"],
                  [b"\r\n.\r", b"\r"]):
        desc = "look-alike split as %r" % parts
        res = srv.session([PRE + HDR + b"x"] + parts + [SMUG + b"\r\n.\r\n" + QUIT], gap=0.08)
        t.codes(res.replies, PRE_CODES + ["554 5.6.0", "221 2.0.0"], "%s: 554 5.6.0" % desc)
        t.invariant(res, desc)
        smuggled_not_run(t, res, desc)


# --- D: failed DATA with bytes behind it

BEHIND = HDR + b"body line\r\n" + SMUG + b"\r\n.\r\n" + \
    lines("MAIL FROM:<%s>" % EVIL, "RCPT TO:<victim@target.example>", "DATA") + \
    b"Subject: more\r\n\r\nmore\r\n.\r\n" + QUIT


def failed_data_cases():
    return [
        ("DATA without RCPT (503)", lines("EHLO f.client", "MAIL FROM:<a@b.example>", "DATA"),
         ["220", "250", "250 2.1.0", "503 5.5.1"]),
        ("DATA after all RCPT rejected (554)",
         lines("EHLO f.client", "MAIL FROM:<a@b.example>", "RCPT TO:<bad!path@example.com>", "DATA"),
         ["220", "250", "250 2.1.0", "501 5.1.3", "554 5.5.1"]),
        ("DATA before MAIL (503)", lines("EHLO f.client", "DATA"), ["220", "250", "503 5.5.1"]),
        ("DATA before EHLO (503)", lines("DATA"), ["220", "503 5.5.1"]),
    ]


def test_failed_data(t, srv):
    for what, head, codes in failed_data_cases():
        # whole: body + commands behind the DATA in the same write
        desc = "%s, body and commands pipelined behind it" % what
        res = srv.session(head + BEHIND)
        t.codes(res.replies, codes, "%s: the failure reply, then nothing" % desc)
        t.ok(res.closed, "%s: connection closed" % desc)
        t.invariant(res, desc)
        smuggled_not_run(t, res, desc, legit_mail=1 if "MAIL" in head.decode() else 0,
                         legit_rcpt=0)
        # trickled: the body (its first line is no SMTP verb) comes later
        desc = "%s, body trickled behind it" % what
        res = srv.session(head + BEHIND, trickle=True)
        extra = res.replies[len(codes):]
        t.codes(res.replies[:len(codes)], codes, "%s: the failure reply" % desc)
        t.ok(all(reply_matches(r, "421 4.7.0") for r in extra) and len(extra) <= 1,
             "%s: then at most a 421 4.7.0, no 250/354" % desc, "replies: %s" % res.codes)
        t.ok(res.closed, "%s: connection closed" % desc)
        t.invariant(res, desc)
    # DATA with an argument fails too; nothing behind it may run
    for trickle, mode in MODES:
        desc = "'DATA x' (501) with a body behind it (%s)" % mode
        res = srv.session(lines("EHLO f.client", "MAIL FROM:<a@b.example>", "RCPT TO:<u@example.com>",
                                "DATA now") + BEHIND, trickle=trickle)
        t.codes(res.replies[:5], ["220", "250", "250 2.1.0", "250 2.1.5", "501 5.5.4"], "%s: 501 5.5.4" % desc)
        t.ok(not any(r.code in (250, 354) for r in res.replies[5:]),
             "%s: no 250 or 354 afterwards" % desc, "replies: %s" % res.codes)
        t.invariant(res, desc)
    # lock-step: after a failed DATA a line that is no SMTP verb ends the session
    c = srv.client()
    try:
        got = [c.reply()]
        for cmd in (b"EHLO f.client", b"MAIL FROM:<a@b.example>", b"DATA"):
            got.append(c.cmd(cmd))
        c.send(b"Subject: I think DATA worked\r\n")
        got.append(c.reply())
        t.codes(got, ["220", "250", "250 2.1.0", "503 5.5.1", "421 4.7.0"],
                "failed DATA, then a header line (lock-step) -> 421 4.7.0")
        t.ok(c.wait_close(3), "failed DATA, then a header line: closed")
    finally:
        c.close()


# --- E: bare CR, bare LF and NUL inside command lines

def test_command_lines(t, srv):
    cases = [
        (b"NOOP\nNOOP\r\n", ["500 5.5.2"], "NOOP LF NOOP CRLF is one bad line"),
        (b"NOOP\rNOOP\r\n", ["500 5.5.2"], "NOOP CR NOOP CRLF is one bad line"),
        (b"NO\x00OP\r\n", ["500 5.5.2"], "NUL inside a command"),
        (b"NOOP\x00\r\n", ["500 5.5.2"], "NUL before CRLF"),
        (b"RSET\r\r\n", ["500 5.5.2"], "CR before CRLF"),
        (b"MAIL FROM:<a@b.example>\nRCPT TO:<u@example.com>\r\nRCPT TO:<u@example.com>\r\n",
         ["500 5.5.2", "503 5.5.1"], "MAIL LF RCPT: one bad line, no MAIL transaction"),
        (b"QUIT\nNOOP\r\n", ["500 5.5.2"], "QUIT LF NOOP: one bad line, no QUIT"),
        (b"MAIL FROM:<a@b.example>\r\nRCPT TO:<u@example.com>\r\nDATA\n.\nRSET\r\n",
         ["250 2.1.0", "250 2.1.5", "500 5.5.2"], "DATA LF . LF RSET: one bad line, DATA never starts"),
    ]
    for data, codes, what in cases:
        for trickle, mode in MODES:
            desc = "%s (%s)" % (what, mode)
            res = srv.session(b"EHLO cmd.client\r\n" + data + lines("NOOP", "QUIT"), trickle=trickle)
            t.codes(res.replies, ["220", "250"] + codes + ["250 2.0.0", "221 2.0.0"],
                    "%s: one reply per CRLF-terminated line, in sync" % desc)
            t.invariant(res, desc)
    for trickle, mode in MODES:
        res = srv.session(b"EHLO a\nMAIL FROM:<a@b.example>\r\n" + lines("MAIL FROM:<a@b.example>", "QUIT"),
                          trickle=trickle)
        t.codes(res.replies, ["220", "500 5.5.2", "503 5.5.1", "221 2.0.0"],
                "EHLO LF MAIL as first line: one 500, no EHLO took place (%s)" % mode)


def main(t):
    with Server(t, name="smuggling") as srv:
        t.run("lookalikes", test_lookalikes, t, srv)
        t.run("lookalike at start", test_lookalike_at_start, t, srv)
        t.run("stuffing", test_stuffing, t, srv)
        t.run("start of data", test_start_of_data, t, srv)
        t.run("splits", test_splits, t, srv)
        t.run("failed data", test_failed_data, t, srv)
        t.run("command lines", test_command_lines, t, srv)
        lg = srv.log()
        t.unlike(lg, r"from=<%s>" % EVIL, "the log never shows a smuggled sender as accepted")
        check_log_clean(t, srv, "smuggling")


TAP(watchdog=90).main(main)
