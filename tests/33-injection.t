#!/usr/bin/env python3
# 33-injection.t - threat model section 3: hostile addresses, parameters
# and HELO strings. The client is trusted (127.0.0.1 in mynetworks), so
# relay policy is never the reason for a refusal here: syntax is.
# Each case runs in one write and trickled one byte per write; each
# session checks the spool invariant; at the end the log and the spool
# must hold printable ASCII only.
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, lines, msg, check_log_clean, reply_matches  # noqa: E402
from smapdtest import Smapd, send, queue_ids, smapd_log, quarantined  # noqa: E402
from smtpfake import FakeSMTP  # noqa: E402

MODES = ((False, "one write"), (True, "trickled"))

# addresses refused with 501 (5.1.3 for RCPT, 5.1.7 for MAIL)
HOSTILE = [
    (b"<-oQ/tmp/@example.com>", "option-like local part"),
    (b"<-bt@example.com>", "option-like local part -bt"),
    (b"<--@example.com>", "local part --"),
    (b"<-@example.com>", "local part -"),
    (b"<|/bin/sh@example.com>", "pipe to program"),
    (b"<\"|/bin/sh -c id\"@example.com>", "quoted pipe to program"),
    (b"</etc/passwd@example.com>", "file path local part"),
    (b"</tmp/x>", "bare file path"),
    (b"<~root@example.com>", "tilde local part"),
    (b"<:include:/etc/passwd@example.com>", ":include:"),
    (b"<:include:/etc/passwd>", "bare :include:"),
    (b"<a$(id)@example.com>", "$( ) command substitution"),
    (b"<${run{/bin/sh -c id}}@example.com>", "Exim ${run}"),
    (b"<a`id`@example.com>", "backticks"),
    (b"<a;id@example.com>", "semicolon"),
    (b"<;sleep 66;>", "OpenSMTPD CVE-2020-7247"),
    (b"<a&id@example.com>", "ampersand"),
    (b"<a|id@example.com>", "pipe inside"),
    (b"<a\\b@example.com>", "backslash"),
    (b"<a!b@example.com>", "bang"),
    (b"<a%b@example.com>", "percent"),
    (b"<a$b@example.com>", "dollar"),
    (b"<a b@example.com>", "space"),
    (b"<\"a b\"@example.com>", "quoted local part"),
    (b"<\"a@b\"@example.com>", "quoted local part with @"),
    (b"<a\x01b@example.com>", "control character"),
    (b"<a\tb@example.com>", "tab"),
    (b"<a\x1bb@example.com>", "escape"),
    (b"<a\x7fb@example.com>", "DEL"),
    (b"<a@exa\x01mple.com>", "control character in domain"),
    (b"<\xc3\xa4@example.com>", "8-bit local part"),
    (b"<a@ex\xc3\xa4mple.com>", "8-bit domain"),
    (b"<a\xff@example.com>", "0xff byte"),
    (b"<a@example.com.>", "trailing dot in domain"),
    (b"<a@@example.com>", "double @"),
    (b"<a@b@example.com>", "multiple @"),
    (b"<.a@example.com>", "leading dot"),
    (b"<a.@example.com>", "trailing dot in local part"),
    (b"<a..b@example.com>", "double dot"),
    (b"<a@-example.com>", "domain label with leading hyphen"),
    (b"<a@example..com>", "empty domain label"),
    (b"<a@exa_mple.com>", "underscore in domain"),
    (b"<@example.com>", "empty local part"),
    (b"<a@>", "empty domain"),
    (b"<a@[300.0.0.1]>", "bad IP literal"),
    (b"<a@[1.2.3]>", "short IP literal"),
    (b"<a@[IPv6:zz::1]>", "bad IPv6 literal"),
    (b"<a@" + b".".join([b"d" * 63] * 4 + [b"d"]) + b">", "domain of 257 octets"),
    (b"<a@" + b"d" * 64 + b".example>", "domain label of 64 octets"),
    (b"<" + b"l" * 64 + b"@" + b".".join([b"d" * 63, b"d" * 63, b"d" * 62, b"d"]) + b">",
     "path of 257 octets"),
    (b"<" + b"l" * 247 + b"@x.example>", "path of 257 octets, local part of 247"),
    (b"<" + b"l" * 300 + b"@x.example>", "local part of 300 octets"),
    (b"a@example.com", "no angle brackets"),
    (b"<a@example.com", "no closing bracket"),
    (b"<<a@example.com>>", "double brackets"),
    (b"<@evil.example,@:a@example.com>", "broken source route"),
]
assert len([a for a, w in HOSTILE if w == "path of 257 octets"][0]) - 2 == 257

# an SRS sender of a forwarder (RFC 5321's 64-octet local part is not
# enforced, bounds.h says why)
SRS = b"SRS0=q7Zx=5T=lists.engineering.example.org=first.last+announce-bounces-2026112305"
assert len(SRS) == 81

# accepted: at the limits, or unusual but safe
GOOD = [
    (b"<" + b"l" * 64 + b"@example.com>", "local part of 64 octets"),
    (b"<" + b"l" * 64 + b"@" + b".".join([b"d" * 63, b"d" * 63, b"d" * 63]) + b">", "path of 256 octets"),
    (b"<" + b"l" * 65 + b"@example.com>", "local part of 65 octets"),
    (b"<" + b"l" * 246 + b"@x.example>", "local part of 246 octets, path of 256"),
    (b"<" + SRS + b"@example.com>", "an 81-octet SRS local part"),
    (b"<a.b+tag@example.com>", "dot-atom with +"),
    (b"<o'brien#*=?^_{}~@example.com>", "every allowed special"),
    (b"<a/b@example.com>", "slash inside"),
    (b"<a-b@example.com>", "hyphen inside"),
    (b"<a@[192.0.2.1]>", "IPv4 literal"),
    (b"<a@[IPv6:2001:db8::1]>", "IPv6 literal"),
    (b"<@relay.example:a@example.com>", "source route"),
    (b"<A@EXAMPLE.COM>", "uppercase"),
]
assert len(GOOD[1][0]) - 2 == 256


def rcpt_case(t, srv, addr, what, want, trickle, mode):
    desc = "RCPT TO:%r %s (%s)" % (addr, what, mode)
    res = srv.session(b"EHLO inj.client\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:" + addr + b"\r\n" +
                      lines("RCPT TO:<ok@example.com>", "QUIT"), trickle=trickle)
    t.codes(res.replies, ["220", "250", "250 2.1.0"] + want + ["250 2.1.5", "221 2.0.0"],
            "%s -> %s, then in sync" % (desc, " ".join(w if isinstance(w, str) else " or ".join(w)
                                                      for w in want)))
    t.invariant(res, desc)


def mail_case(t, srv, addr, what, want, trickle, mode):
    desc = "MAIL FROM:%r %s (%s)" % (addr, what, mode)
    res = srv.session(b"EHLO inj.client\r\nMAIL FROM:" + addr + b"\r\n" +
                      lines("MAIL FROM:<ok@b.example>", "QUIT"), trickle=trickle)
    t.codes(res.replies, ["220", "250"] + want + ["250 2.1.0", "221 2.0.0"],
            "%s -> %s, then in sync" % (desc, " ".join(w if isinstance(w, str) else " or ".join(w)
                                                      for w in want)))
    t.invariant(res, desc)


def test_hostile(t, srv):
    for addr, what in HOSTILE:
        for trickle, mode in MODES:
            rcpt_case(t, srv, addr, what, ["501 5.1.3"], trickle, mode)
    for addr, what in HOSTILE:
        if addr.startswith(b"<:include:") or addr == b"<;sleep 66;>" or \
                (b"l" * 64 in addr and b"l" * 247 not in addr):
            continue
        for trickle, mode in MODES[:1]:
            mail_case(t, srv, addr, what, ["501 5.1.7"], trickle, mode)
    for addr, what in ((b"<;sleep 66;>", "OpenSMTPD CVE-2020-7247"), (b"<-oQ/tmp/@example.com>", "option"),
                       (b"<|/bin/sh@example.com>", "pipe"), (b"<a\x01b@example.com>", "control")):
        mail_case(t, srv, addr, what, ["501 5.1.7"], True, "trickled")


def test_good(t, srv):
    for addr, what in GOOD:
        for trickle, mode in MODES:
            desc = "RCPT TO:%r %s (%s)" % (addr[:40], what, mode)
            res = srv.session(b"EHLO inj.client\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:" + addr + b"\r\n" +
                              b"DATA\r\n" + msg("good address") + b".\r\nQUIT\r\n", trickle=trickle)
            t.codes(res.replies, ["220", "250", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"],
                    "%s accepted" % desc)
            t.invariant(res, desc)
            ids = res.queued_ids()
            if ids and ids[0] in res.after and what == "source route":
                t.is_(srv.spool_file(ids[0]).rcpt, ["<a@example.com>"], "source route dropped in the spool")


def test_crlf_nul_in_address(t, srv):
    # a line end or NUL inside an address: the whole CRLF-terminated line
    # is one bad command (500 5.5.2; 501 5.1.3 accepted for NUL)
    cases = [
        (b"RCPT TO:<a\nRCPT TO:<b@example.com>\r\n", ("500 5.5.2",), "LF inside RCPT"),
        (b"RCPT TO:<a\rRCPT TO:<b@example.com>\r\n", ("500 5.5.2",), "CR inside RCPT"),
        (b"RCPT TO:<a@example.com>\n\r\n", ("500 5.5.2",), "LF after the address"),
        (b"RCPT TO:<a\x00b@example.com>\r\n", ("500 5.5.2", "501 5.1.3"), "NUL inside RCPT"),
        (b"RCPT TO:<a@example.com>\x00\r\n", ("500 5.5.2", "501 5.1.3", "555 5.5.4"), "NUL after RCPT"),
    ]
    for data, want, what in cases:
        for trickle, mode in MODES:
            desc = "%s (%s)" % (what, mode)
            res = srv.session(b"EHLO inj.client\r\nMAIL FROM:<a@b.example>\r\n" + data +
                              lines("RCPT TO:<ok@example.com>", "QUIT"), trickle=trickle)
            good = len(res.replies) == 6 and [r.short() for r in res.replies[:3]] == ["220", "250", "250 2.1.0"] \
                and any(reply_matches(res.replies[3], w) for w in want) \
                and [r.short() for r in res.replies[4:]] == ["250 2.1.5", "221 2.0.0"]
            t.ok(good, "%s -> %s, one reply, in sync" % (desc, " or ".join(want)), "got %s" % res.codes)
            t.invariant(res, desc)
    for trickle, mode in MODES:
        res = srv.session(b"EHLO inj.client\r\nMAIL FROM:<a\nRCPT TO:<b@example.com>\r\n" +
                          lines("RCPT TO:<ok@example.com>", "QUIT"), trickle=trickle)
        t.codes(res.replies, ["220", "250", "500 5.5.2", "503 5.5.1", "221 2.0.0"],
                "LF inside MAIL: one 500, no transaction (%s)" % mode)


def test_params(t, srv):
    mail = [
        (b"SIZE=10 FOO=bar", "555 5.5.4", "unknown parameter after SIZE"),
        (b"SMTPUTF8", "555 5.5.4", "SMTPUTF8"),
        (b"AUTH=<>", "555 5.5.4", "AUTH="),
        (b"RET=HDRS", "555 5.5.4", "RET="),
        (b"ENVID=abc", "555 5.5.4", "ENVID="),
        (b"X-EVIL=$(id)", "555 5.5.4", "unknown parameter with metacharacters"),
        (b"SIZE=", "501 5.5.4", "empty SIZE"),
        (b"SIZE=-1", "501 5.5.4", "negative SIZE"),
        (b"SIZE=1e3", "501 5.5.4", "SIZE with exponent"),
        (b"SIZE=0x10", "501 5.5.4", "hex SIZE"),
        (b"SIZE=12 34", ("501 5.5.4", "555 5.5.4"), "SIZE split by a space"),
        (b"SIZE=10\x01", "501 5.5.4", "SIZE with a control character"),
        (b"SIZE", "501 5.5.4", "SIZE without value"),
        (b"BODY=", "501 5.5.4", "empty BODY"),
        (b"BODY=BINARYMIME", "501 5.5.4", "BODY=BINARYMIME"),
        (b"BODY=7BIT;id", "501 5.5.4", "BODY with metacharacters"),
        (b"BODY", "501 5.5.4", "BODY without value"),
    ]
    for p, want, what in mail:
        for trickle, mode in MODES:
            mail_case(t, srv, b"<a@b.example> " + p, what, [want], trickle, mode)
    for trickle, mode in MODES:
        desc = "MAIL SIZE=999...9 (30 digits) (%s)" % mode
        res = srv.session(b"EHLO inj.client\r\nMAIL FROM:<a@b.example> SIZE=" + b"9" * 30 + b"\r\n" +
                          lines("MAIL FROM:<ok@b.example>", "QUIT"), trickle=trickle)
        ok = len(res.replies) == 5 and (reply_matches(res.replies[2], "501 5.5.4") or
                                        reply_matches(res.replies[2], "552 5.3.4")) and \
            [r.short() for r in res.replies[3:]] == ["250 2.1.0", "221 2.0.0"]
        t.ok(ok, "%s -> 501 5.5.4 or 552 5.3.4, never 250" % desc, "got %s" % res.codes)
    rcpt = [
        (b"NOTIFY=NEVER", "555 5.5.4", "NOTIFY="),
        (b"ORCPT=rfc822;a@example.com", "555 5.5.4", "ORCPT="),
        (b"SIZE=10", "555 5.5.4", "SIZE on RCPT"),
        (b"BODY=8BITMIME", "555 5.5.4", "BODY on RCPT"),
        (b"X=|/bin/sh", "555 5.5.4", "unknown RCPT parameter with a pipe"),
    ]
    for p, want, what in rcpt:
        for trickle, mode in MODES:
            rcpt_case(t, srv, b"<a@example.com> " + p, what, [want], trickle, mode)


HELO_BAD = [
    (b"EHLO evil\x01host", ("501 5.5.4",), "control character"),
    (b"EHLO evil\x00host", ("501 5.5.4", "500 5.5.2"), "NUL"),
    (b"EHLO evil\rX-Injected: yes", ("501 5.5.4", "500 5.5.2"), "bare CR + fake header"),
    (b"EHLO evil\nX-Injected: yes", ("501 5.5.4", "500 5.5.2"), "bare LF + fake header"),
    (b"HELO evil\nReceived: from forged", ("501 5.5.4", "500 5.5.2"), "HELO bare LF + Received"),
    (b"EHLO evil\x1b[31mred", ("501 5.5.4",), "terminal escape"),
    (b"EHLO evil host", ("501 5.5.4",), "space"),
    (b"HELO evil\thost", ("501 5.5.4",), "tab"),
]


def test_helo(t, srv):
    for cmd, want, what in HELO_BAD:
        for trickle, mode in MODES:
            desc = "%r: %s (%s)" % (cmd, what, mode)
            res = srv.session(cmd + b"\r\n" + lines("MAIL FROM:<a@b.example>", "EHLO good.client",
                                                    "MAIL FROM:<a@b.example>", "QUIT"), trickle=trickle)
            good = len(res.replies) == 6 and any(reply_matches(res.replies[1], w) for w in want) and \
                [r.short() for r in res.replies[2:]] == ["503 5.5.1", "250", "250 2.1.0", "221 2.0.0"]
            t.ok(good, "%s -> %s; HELO state unchanged (MAIL 503), then fine" % (desc, " or ".join(want)),
                 "got %s" % res.codes)
            t.invariant(res, desc)
    # an 8-bit HELO: refused, or accepted and then only escaped downstream
    for trickle, mode in MODES:
        desc = "EHLO with 8-bit bytes (%s)" % mode
        res = srv.session(b"EHLO h\xe9llo.\xff\xfe\r\n" + lines("MAIL FROM:<a@b.example>", "RCPT TO:<u@example.com>",
                                                              "DATA") + msg("8bit helo") + b".\r\n" +
                          lines("QUIT"), trickle=trickle)
        first = res.replies[1] if len(res.replies) > 1 else None
        t.ok(first is not None and (reply_matches(first, "501 5.5.4") or reply_matches(first, "250")),
             "%s: 501 5.5.4 or 250" % desc, "got %s" % res.codes)
        t.invariant(res, desc)


def test_downstream_clean(t, srv):
    """Whatever was accepted: every spool envelope record and the
    Received header are printable ASCII; nothing the client sent made it
    into a header unescaped."""
    files = srv.spool_files()
    t.ok(len(files) > 0, "some messages were stored (%d)" % len(files))
    bad = []
    for name, f in files.items():
        head = f.data.partition(b"\n\n")[0]
        if any(not (0x20 <= b <= 0x7e) for b in head.replace(b"\n", b"")):
            bad.append((name, "envelope", head))
        rec, _ = f.received()
        if any(not (0x20 <= b <= 0x7e) for b in rec.replace(b"\r\n\t", b"").rstrip(b"\r\n")):
            bad.append((name, "Received", rec))
        if b"X-Injected" in rec or b"forged" in rec:
            bad.append((name, "injected", rec))
        if not f.ok:
            bad.append((name, "unparsable", f.data[:200]))
    t.ok(not bad, "spool envelopes and Received headers hold printable ASCII only, nothing injected",
         *["%s %s: %r" % b for b in bad[:5]])


def test_long_local(t):
    """An 81-octet SRS sender and a recipient with a 246-octet local part
    (a path of 256) are accepted by smap, spooled as sent, and passed on
    unchanged by smapd."""
    sender = (SRS + b"@forwarder.example").decode()
    rcpt = "r" * 246 + "@x.example"
    with Server(t, name="injection-long") as srv, FakeSMTP(t, None, None, starttls=None) as fs:
        (sid, _), = send(srv, [([rcpt], (sender, msg("long local parts")))])
        f = srv.spool_file(sid) if sid in srv.list_new() else None
        t.ok(f is not None and f.ok, "long local parts: smap accepted and spooled %s" % sid)
        if f is not None:
            t.is_((f.env.get("from"), f.rcpt), ("<%s>" % sender, ["<%s>" % rcpt]),
                  "long local parts: the spool file holds both addresses as sent")
        d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % fs.port}, name="smapd-long")
        t.is_(d.once(flush=True), 0, "long local parts: smapd -1 -f exits 0")
        cmds = [c for sess in fs.sessions for c in sess["plain"]]
        t.ok(any(re.match(rb"MAIL FROM:<%s>( |$)" % re.escape(sender.encode()), c) for c in cmds),
             "long local parts: smapd sent MAIL FROM:<the 81-octet SRS sender>", repr(cmds)[:600])
        t.ok(b"RCPT TO:<" + rcpt.encode() + b">" in cmds,
             "long local parts: smapd sent RCPT TO:<the 256-octet path>", repr(cmds)[:600])
        t.is_(len([m for sess in fs.sessions for m in sess["messages"]]), 1,
              "long local parts: one message reached the server")
        log = "\n".join(smapd_log(srv, sid))
        t.like(log, r"to=<%s>, .*status=sent" % re.escape(rcpt), "long local parts: logged status=sent")
        t.like(log, r"from=<%s>" % re.escape(sender), "long local parts: the sender logged whole")
        t.is_((queue_ids(srv), quarantined(srv)), ([], {}), "long local parts: queue empty, nothing quarantined")
        d.check_sanitizer()


def main(t):
    t.run("long local parts end to end", test_long_local, t)
    with Server(t, name="injection") as srv:
        t.run("hostile", test_hostile, t, srv)
        t.run("good", test_good, t, srv)
        t.run("crlf in address", test_crlf_nul_in_address, t, srv)
        t.run("params", test_params, t, srv)
        t.run("helo", test_helo, t, srv)
        t.run("downstream", test_downstream_clean, t, srv)
        check_log_clean(t, srv, "injection")
    # an 8-bit HELO, then a relay-denied recipient: if the HELO was
    # accepted, the NOQUEUE log line carries it escaped as \xHH
    with Server(t, conf={"mynetworks": "192.0.2.0/24", "relay_domains": "example.com"},
                name="injection-untrusted") as srv:
        res = srv.session(b"EHLO h\xe9llo\r\n" + lines("MAIL FROM:<a@b.example>", "RCPT TO:<x@evil.example>",
                                                        "QUIT"))
        codes = res.codes
        if len(res.replies) > 1 and reply_matches(res.replies[1], "250"):
            t.codes(res.replies, ["220", "250", "250 2.1.0", "554 5.7.1", "221 2.0.0"],
                    "8-bit HELO accepted; relay denied")
            m = srv.wait_log(r"NOQUEUE: reject: RCPT .* helo=<h\\xe9llo>$", 3)
            t.ok(m is not None, "the 8-bit HELO is logged escaped as h\\xe9llo", srv.log()[-600:])
        else:
            t.codes(res.replies, ["220", "501 5.5.4", "503 5.5.1", "503 5.5.1", "221 2.0.0"],
                    "8-bit HELO refused; MAIL/RCPT then need a HELO")
        t.note("8-bit HELO session: %s" % codes)
        check_log_clean(t, srv, "injection-untrusted")


TAP(watchdog=90).main(main)
