#!/usr/bin/env python3
# 34-relay.t - threat model section 4: relay policy. An untrusted client
# (mynetworks = 192.0.2.0/24, so 127.0.0.1 is outside) may only send to
# relay_domains = example.com .sub.example.org, whatever form the final
# destination hides in; a trusted client may relay anywhere.
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, lines, msg, check_log_clean  # noqa: E402

UNTRUSTED = {"mynetworks": "192.0.2.0/24", "relay_domains": "example.com .sub.example.org"}
MODES = ((False, "one write"), (True, "trickled"))

ALLOWED = [
    b"<user@example.com>", b"<USER@EXAMPLE.COM>", b"<User@Example.Com>", b"<a@x.sub.example.org>",
    b"<a@deep.x.sub.example.org>", b"<a@X.SUB.EXAMPLE.ORG>", b"<postmaster>", b"<Postmaster>",
    b"<POSTMASTER>", b"<postmaster@example.com>", b"<@evil.example:u@example.com>",
    b"<@evil.example,@other.example:u@example.com>",
]

# refused with exactly 554 5.7.1 (valid syntax, foreign destination)
DENIED = [
    b"<u@evil.example>", b"<u@sub.example.com>", b"<u@sub.example.org>", b"<u@example.com.evil.example>",
    b"<u@evilexample.com>", b"<u@xexample.com>", b"<u@example.co>", b"<u@example.org>",
    b"<u@example.comm>", b"<u@x.sub.example.org.evil.example>",
    b"<u@xsub.example.org>", b"<postmaster@evil.example>", b"<@example.com:u@evil.example>",
    b"<@example.com,@x.sub.example.org:u@evil.example>", b"<u@[192.0.2.1]>", b"<u@[127.0.0.1]>",
    b"<u@[IPv6:::1]>", b"<u@[IPv6:2001:db8::1]>", b"<u@xn--exmple-cua.com>",
]

# refused with a 5xx (501 syntax or 554 relay): tricks that hide a foreign destination
TRICKS = [
    b"<u%evil.example@example.com>", b"<u%evil.example%example.com@example.com>",
    b"<evil.example!u@example.com>", b"<evil.example!u>", b"<\"u@evil.example\"@example.com>",
    b"<\"u%evil.example\"@example.com>", b"<\"evil.example!u\"@example.com>",
    b"<u@evil.example@example.com>", b"<u@example.com@evil.example>", b"<u@evil.example.>",
    b"<u@example.com.>", b"<u@ex\xd0\xb0mple.com>", b"<u@\xd0\xb5xample.com>", b"<u@example.c\xd0\xbem>",
    b"<u@example\xe3\x80\x82com>", b"<u@evil.example\x00@example.com>", b"<u@evil.example\\@example.com>",
    b"<u\\@evil.example@example.com>", b"<@example.com:u%evil.example@example.com>",
    b"<u@[192.0.2.1]@example.com>", b"<u@example.com:25>", b"<u@evil.example (comment)>",
    b"<u(@evil.example)@example.com>", b"<u@example.com> <v@evil.example>", b"<u@com>", b"<u@localhost>",
    b"<u@[IPv6:::ffff:127.0.0.1]>",
]


def session_for(srv, rcpt, trickle):
    return srv.session(b"EHLO relay.client\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:" + rcpt + b"\r\n" +
                       b"DATA\r\n" + msg("relay test") + b".\r\nQUIT\r\n", trickle=trickle)


def test_untrusted(t, srv):
    for rcpt in DENIED:
        for trickle, mode in MODES:
            desc = "untrusted RCPT %r (%s)" % (rcpt, mode)
            res = session_for(srv, rcpt, trickle)
            # DATA after the only recipient was refused: 554 5.5.1, and the
            # message bytes behind it are never run (connection closed)
            t.codes(res.replies[:5], ["220", "250", "250 2.1.0", "554 5.7.1", "554 5.5.1"],
                    "%s -> 554 5.7.1, DATA 554 5.5.1" % desc)
            if len(res.replies) > 3:
                t.like(res.replies[3].text, r"Relay access denied", "%s: says Relay access denied" % desc)
            t.ok(not any(r.code in (250, 354) for r in res.replies[5:]), "%s: nothing after it runs" % desc,
                 "got %s" % res.codes)
            t.invariant(res, desc)
    for rcpt in TRICKS:
        for trickle, mode in MODES:
            desc = "untrusted RCPT %r (%s)" % (rcpt, mode)
            res = session_for(srv, rcpt, trickle)
            r = res.replies[3] if len(res.replies) > 3 else None
            t.ok(r is not None and r.kind == "reply" and 500 <= r.code < 600,
                 "%s -> refused with 5xx" % desc, "got %s" % res.codes)
            t.ok(not any(x.code == 354 for x in res.replies), "%s: DATA never starts" % desc,
                 "got %s" % res.codes)
            t.invariant(res, desc)
            t.is_(len(res.new_files()), 0, "%s: nothing stored" % desc)


def test_allowed(t, srv):
    for trickle, mode in MODES:
        res = srv.session(b"EHLO relay.client\r\nMAIL FROM:<a@b.example>\r\n" +
                          b"".join(b"RCPT TO:" + r + b"\r\n" for r in ALLOWED) +
                          b"RCPT TO:<u@evil.example>\r\nDATA\r\n" + msg("allowed") + b".\r\nQUIT\r\n",
                          trickle=trickle)
        t.codes(res.replies, ["220", "250", "250 2.1.0"] + ["250 2.1.5"] * len(ALLOWED) +
                ["554 5.7.1", "354", "250 2.0.0", "221 2.0.0"],
                "untrusted: every relay_domains form and postmaster accepted, evil.example refused (%s)" % mode)
        t.invariant(res, "allowed (%s)" % mode)
        ids = res.queued_ids()
        if ids and ids[0] in res.after:
            f = srv.spool_file(ids[0])
            # domains are stored in lower case; a recipient repeated (the
            # domain in another case, postmaster in
            # any case, a source route to the same mailbox) is kept once
            want = ["<user@example.com>", "<USER@example.com>", "<User@example.com>", "<a@x.sub.example.org>",
                    "<a@deep.x.sub.example.org>", "<postmaster>", "<postmaster@example.com>", "<u@example.com>"]
            t.is_(f.rcpt, want, "allowed: %d distinct rcpt records, each once, the refused one absent"
                  % len(want))
            t.ok(not any("evil" in r or "other" in r for r in f.rcpt) and
                 "<u@example.com>" in [r.lower() for r in f.rcpt],
                 "allowed: source routes dropped, final mailbox stored", f.rcpt)
    # the untrusted client may use any sender, and the null sender
    res = srv.session(lines("EHLO relay.client", "MAIL FROM:<>", "RCPT TO:<postmaster>", "RSET",
                            "MAIL FROM:<someone@evil.example>", "RCPT TO:<user@example.com>", "QUIT"))
    t.codes(res.replies, ["220", "250", "250 2.1.0", "250 2.1.5", "250 2.0.0", "250 2.1.0", "250 2.1.5",
                          "221 2.0.0"], "untrusted: any sender, null sender to postmaster")


def test_log(t, srv):
    res = srv.session(lines("EHLO h", "MAIL FROM:<a@b.example>", "RCPT TO:<x@evil.example>", "QUIT"))
    t.codes(res.replies, ["220", "250", "250 2.1.0", "554 5.7.1", "221 2.0.0"], "log case: relay denied")
    m = srv.wait_log(r"(?m)smap/smtpd\[\d+\]: NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 554 5\.7\.1 "
                     r"<x@evil\.example>: Relay access denied; from=<a@b\.example> to=<x@evil\.example> "
                     r"proto=ESMTP helo=<h>$", 3)
    t.ok(m is not None, "log: NOQUEUE: reject: RCPT ... 554 5.7.1 <x@evil.example>: Relay access denied; "
         "from= to= proto= helo=", srv.log()[-1500:])


def test_no_relay_domains(t):
    # a missing policy denies: untrusted client, relay_domains empty
    with Server(t, conf={"mynetworks": "192.0.2.0/24"}, name="norelaydomains") as srv:
        res = srv.session(lines("EHLO r", "MAIL FROM:<a@b.example>", "RCPT TO:<u@example.com>",
                                "RCPT TO:<u@mx.test.example>", "RCPT TO:<postmaster>", "QUIT"))
        t.codes(res.replies, ["220", "250", "250 2.1.0", "554 5.7.1", "554 5.7.1", "250 2.1.5", "221 2.0.0"],
                "relay_domains empty: untrusted client may only reach <postmaster>")


def test_trusted(t):
    with Server(t, name="trusted") as srv:
        rcpts = [b"<u@evil.example>", b"<u@[192.0.2.1]>", b"<u@example.org>", b"<@a.example:u@b.example>"]
        for trickle, mode in MODES:
            res = srv.session(b"EHLO trusted.client\r\nMAIL FROM:<a@b.example>\r\n" +
                              b"".join(b"RCPT TO:" + r + b"\r\n" for r in rcpts) +
                              b"DATA\r\n" + msg("trusted") + b".\r\nQUIT\r\n", trickle=trickle)
            t.codes(res.replies, ["220", "250", "250 2.1.0"] + ["250 2.1.5"] * len(rcpts) +
                    ["354", "250 2.0.0", "221 2.0.0"],
                    "trusted client (127.0.0.0/8 in mynetworks) relays anywhere (%s)" % mode)
            t.invariant(res, "trusted (%s)" % mode)
            ids = res.queued_ids()
            if ids and ids[0] in res.after:
                t.is_(srv.spool_file(ids[0]).rcpt,
                      ["<u@evil.example>", "<u@[192.0.2.1]>", "<u@example.org>", "<u@b.example>"],
                      "trusted: recipients stored in order")


def main(t):
    with Server(t, conf=UNTRUSTED, name="relay") as srv:
        t.run("untrusted", test_untrusted, t, srv)
        t.run("allowed", test_allowed, t, srv)
        t.run("log", test_log, t, srv)
        check_log_clean(t, srv, "relay")
    t.run("no relay_domains", test_no_relay_domains, t)
    t.run("trusted", test_trusted, t)


TAP(watchdog=90).main(main)
