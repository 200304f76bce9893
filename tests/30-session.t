#!/usr/bin/env python3
# 30-session.t - ordinary SMTP sessions against smap: smtplib, swaks, raw
# pipelining; the spool file byte for byte; every reply code of the
# command set at least once.
import os
import re
import smtplib
import stat
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import (TAP, Server, HOSTNAME, dialog, lines, msg,  # noqa: E402
                      received_re, smap_ids, check_log_clean)

ENV_KEYS = ["SMAP", "id", "arrival", "client", "helo", "proto", "body", "from"]


def check_spool(t, srv, sid, desc, helo, proto, body, sender, rcpts, message,
                client_port=None, t0=None):
    """Everything about one stored file."""
    try:
        f = srv.spool_file(sid)
    except OSError as e:
        t.ok(False, "%s: new/%s exists" % (desc, sid), str(e))
        return None
    uid, gid = smap_ids()
    t.ok(stat.S_ISREG(f.st.st_mode) and stat.S_IMODE(f.st.st_mode) == 0o644,
         "%s: spool file is a regular file, mode 0644 (smapd reads it as the owner of new/)" % desc, "mode %o" % f.st.st_mode)
    t.is_(f.st.st_uid, uid, "%s: spool file owned by smap" % desc)
    t.ok(f.ok, "%s: envelope ends with a blank line" % desc, f.error or "")
    keys = f.keys()
    t.is_(keys, ENV_KEYS + ["rcpt"] * len(rcpts) + ["size"],
          "%s: envelope records in order" % desc)
    e = f.env
    t.is_(e.get("SMAP"), "1", "%s: SMAP 1" % desc)
    t.is_(e.get("id"), sid, "%s: id record == queue id" % desc)
    now = time.time()
    try:
        good = re.fullmatch(r"\d+\.\d{6}", e.get("arrival", "")) is not None
        arr = float(e.get("arrival", "x"))
        good = good and (t0 or now - 60) - 2 <= arr <= now + 2
    except ValueError:
        good = False
    t.ok(good, "%s: arrival is the unix time of the session, to the microsecond" % desc,
         "got %r" % e.get("arrival"))
    if client_port:
        t.is_(e.get("client"), "127.0.0.1 %d" % client_port, "%s: client address and port" % desc)
    else:
        t.like(e.get("client"), r"^127\.0\.0\.1 \d+$", "%s: client address and port" % desc)
    t.is_(e.get("helo"), helo, "%s: helo" % desc)
    t.is_(e.get("proto"), proto, "%s: proto" % desc)
    t.is_(e.get("body"), body, "%s: body type" % desc)
    t.is_(e.get("from"), sender, "%s: from" % desc)
    t.is_(f.rcpt, rcpts, "%s: rcpt records" % desc)
    t.like(e.get("size"), r"^\d{16}$", "%s: size has 16 digits" % desc)
    t.is_(int(e.get("size", "0") or 0), len(f.message), "%s: size == bytes after the blank line" % desc)
    rec, rest = f.received()
    bare_rcpt = rcpts[0][1:-1] if len(rcpts) == 1 else None
    t.like(rec, received_re(helo, sid, bare_rcpt, proto="E?SMTP" if proto == "SMTP" else "ESMTP"),
           "%s: Received header" % desc)
    t.is_(rest, message, "%s: message stored byte-exact after the Received header" % desc)
    return f


# ---------------------------------------------------------------------------

MSG1 = (b"From: Alice <a@b.example>\r\nTo: u@example.com\r\nSubject: smtplib test\r\n"
        b"Message-ID: <1@b.example>\r\n\r\n"
        b"first line\r\n.leading dot, stuffed by smtplib\r\n..two dots\r\n"
        b"tab\there and trailing spaces   \r\n" + b"x" * 990 + b"\r\n\r\nlast line\r\n")


def test_smtplib(t, srv):
    t0 = time.time()
    s = smtplib.SMTP(timeout=10)
    try:
        code, banner = s.connect("127.0.0.1", srv.port)
        t.is_(code, 220, "smtplib: greeting 220")
        t.is_(banner, (HOSTNAME + " ESMTP").encode(), "smtplib: default banner is '$myhostname ESMTP'")
        s.local_hostname = "client.test"
        code, resp = s.ehlo()
        t.is_(code, 250, "smtplib: EHLO 250")
        ls = resp.split(b"\n")
        t.is_(ls[0].split()[0] if ls and ls[0] else b"", HOSTNAME.encode(),
              "smtplib: EHLO first line is myhostname")
        t.is_(ls[1:], [b"PIPELINING", b"SIZE 10240000", b"8BITMIME", b"ENHANCEDSTATUSCODES"],
              "smtplib: EHLO keywords, in order")
        t.ok(s.has_extn("pipelining") and s.has_extn("size") and s.has_extn("8bitmime")
             and s.has_extn("enhancedstatuscodes"), "smtplib: features parsed")
        t.unlike(resp.decode("latin-1"), r"(?m)^[245]\.\d+\.\d+", "smtplib: no enhanced code on EHLO lines")
        port = s.sock.getsockname()[1]
        code, r = s.mail("a@b.example")
        t.ok(code == 250 and r.startswith(b"2.1.0"), "smtplib: MAIL 250 2.1.0", r)
        code, r = s.rcpt("u@example.com")
        t.ok(code == 250 and r.startswith(b"2.1.5"), "smtplib: RCPT 250 2.1.5", r)
        code, r = s.data(MSG1)
        t.ok(code == 250 and r.startswith(b"2.0.0"), "smtplib: end of data 250 2.0.0", r)
        m = re.search(rb"queued as ([0-9A-F]+)\s*$", r)
        t.ok(m is not None, "smtplib: 'queued as <ID>' with an uppercase hex id", r)
        sid = m.group(1).decode() if m else "none"
        code, r = s.quit()
        t.ok(code == 221 and r.startswith(b"2.0.0"), "smtplib: QUIT 221 2.0.0", r)
    finally:
        s.close()
    srv.wait_sessions()
    t.is_(srv.count_new(), 1, "smtplib: one file in new/")
    t.is_(srv.count_tmp(), 0, "smtplib: tmp/ empty after the session")
    check_spool(t, srv, sid, "smtplib", "client.test", "ESMTP", "7BIT", "<a@b.example>",
                ["<u@example.com>"], MSG1, client_port=port, t0=t0)
    lg = srv.wait_log(r"disconnect from", 3) and srv.log()
    lg = lg or srv.log()
    t.like(lg, r"(?m)smap/smtpd\[\d+\]: connect from unknown\[127\.0\.0\.1\]$", "smtplib: log: connect from")
    t.like(lg, r"(?m)smap/smtpd\[\d+\]: %s: client=unknown\[127\.0\.0\.1\]$" % sid, "smtplib: log: client=")
    t.like(lg, r"(?m)smap/smtpd\[\d+\]: %s: from=<a@b\.example>, size=\d+, nrcpt=1 \(queue new\)$" % sid,
           "smtplib: log: from=, size=, nrcpt= (queue new)")
    t.like(lg, r"(?m)smap/smtpd\[\d+\]: disconnect from unknown\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=1 "
               r"data=1 quit=1 commands=5$", "smtplib: log: disconnect with command counts")
    t.like(lg, r"(?m)^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ smap/smtpd\[\d+\]: connect from",
           "smtplib: log line prefix 'Mon DD HH:MM:SS host smap/smtpd[PID]: '")
    return sid


def test_helo(t, srv):
    body = msg("helo session")
    res = srv.session([lines("HELO old.client", "MAIL FROM:<a@b.example>", "RCPT TO:<u@example.com>",
                             "DATA") + body + b".\r\n" + lines("QUIT")])
    r = res.replies
    t.codes(r, ["220", "250", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"],
            "HELO session: replies")
    if len(r) > 1:
        t.ok(r[1].lines == [r[1].lines[0]] and r[1].lines[0].split()[0] == HOSTNAME and r[1].enh is None,
             "HELO: single-line 250 <myhostname>, no enhanced code", repr(r[1]))
    t.invariant(res, "HELO session")
    ids = res.queued_ids()
    if ids:
        check_spool(t, srv, ids[0], "HELO session", "old.client", "SMTP", "7BIT", "<a@b.example>",
                    ["<u@example.com>"], body, client_port=res.client_port)


def test_swaks(t, srv):
    for extra, name in (([], "swaks"), (["--pipeline"], "swaks --pipeline")):
        before = srv.list_new()
        try:
            p = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % srv.port, "--to", "u@example.com",
                                "--from", "a@b.example", "--helo", "swaks.test", "--timeout", "10",
                                "--header", "Subject: via swaks", "--body", "swaks body text"] + extra,
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            rc, out = p.returncode, p.stdout.decode("latin-1")
        except (OSError, subprocess.TimeoutExpired) as e:
            rc, out = -1, str(e)
        t.is_(rc, 0, "%s: exit code 0" % name)
        srv.wait_sessions()
        new = sorted(srv.list_new() - before)
        t.is_(len(new), 1, "%s: one new spool file" % name)
        if not t.like(out, r"<-\s+250 2\.0\.0 .*queued as %s" % (new[0] if new else "X"),
                      "%s: saw 250 2.0.0 queued as <the file's id>" % name):
            t.diag(out[-2000:])
        if new:
            f = srv.spool_file(new[0])
            t.is_((f.env.get("helo"), f.env.get("proto"), f.env.get("from"), f.rcpt),
                  ("swaks.test", "ESMTP", "<a@b.example>", ["<u@example.com>"]),
                  "%s: envelope helo/proto/from/rcpt" % name)
            t.like(f.body(), rb"Subject: via swaks\r\n(.*\r\n)*\r\nswaks body text(\r\n)+\Z",
                   "%s: stored message has the header and body" % name)


def test_pipelined(t, srv):
    body = msg("pipelined", b"one\r\n..dot\r\n")
    res = srv.session(lines("EHLO pipe.client", "MAIL FROM:<a@b.example> SIZE=%d" % len(body),
                            "RCPT TO:<u@example.com>", "RCPT TO:<v@example.com>", "DATA")
                      + body + b".\r\n" + lines("QUIT"))
    t.codes(res.replies, ["220", "250", "250 2.1.0", "250 2.1.5", "250 2.1.5", "354", "250 2.0.0",
                          "221 2.0.0"], "pipelined transaction in one write: every reply, in order")
    t.ok(res.closed, "pipelined: server closed after QUIT")
    t.ok(all(r.crlf for r in res.replies), "pipelined: every reply line ends in CRLF")
    if len(res.replies) > 1:
        t.is_(res.replies[1].lines[1:], ["PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES"],
              "pipelined: EHLO keywords")
        t.ok(res.replies[1].lines[0].split()[0] == HOSTNAME and res.replies[1].enh is None,
             "pipelined: EHLO first line myhostname, no enhanced code", repr(res.replies[1]))
    if len(res.replies) > 5:
        t.ok(res.replies[5].enh is None, "354 carries no enhanced code", repr(res.replies[5]))
        t.ok(res.replies[0].enh is None and res.replies[0].text == HOSTNAME + " ESMTP",
             "greeting is '220 <myhostname> ESMTP' without enhanced code", repr(res.replies[0]))
    t.invariant(res, "pipelined")
    ids = res.queued_ids()
    if ids:
        check_spool(t, srv, ids[0], "pipelined", "pipe.client", "ESMTP", "7BIT", "<a@b.example>",
                    ["<u@example.com>", "<v@example.com>"], body.replace(b"\r\n..dot", b"\r\n.dot"),
                    client_port=res.client_port)


def test_8bit(t, srv):
    eight = bytes(range(0x80, 0x100))
    body8 = msg("8bit", b"caf\xc3\xa9 na\xc3\xafve\r\n" + eight + b"\r\n\x1b$B\x1b(B ctl\x01\x7f ok\r\n")
    cases = [
        ("BODY=8BITMIME", body8, "8BIT", "8-bit body declared BODY=8BITMIME"),
        ("body=8bitmime", body8, "8BIT", "8-bit body, BODY value case-insensitive"),
        ("", body8, "8BIT", "8-bit body undeclared: stored, body 8BITMIME"),
        ("BODY=7BIT", msg("7bit"), "7BIT", "7-bit body declared BODY=7BIT"),
        ("BODY=8BITMIME", msg("7bit as 8"), "8BIT", "7-bit body declared BODY=8BITMIME"),
    ]
    for param, body, btype, desc in cases:
        mail = "MAIL FROM:<a@b.example>" + (" " + param if param else "")
        res = srv.session(lines("EHLO eight.client", mail, "RCPT TO:<u@example.com>", "DATA")
                          + body + b".\r\n" + lines("QUIT"))
        t.codes(res.replies, ["220", "250", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"],
                "%s: replies" % desc)
        t.invariant(res, desc)
        ids = res.queued_ids()
        if ids:
            f = srv.spool_file(ids[0])
            t.is_(f.env.get("body"), btype, "%s: envelope body %s" % (desc, btype))
            t.is_(f.body(), body, "%s: stored unchanged" % desc)


def test_null_sender_multi_rcpt_two_messages(t, srv):
    m1 = msg("bounce", b"null sender\r\n")
    m2 = msg("second", b"second message\r\n")
    res = srv.session(lines("EHLO multi.client", "MAIL FROM:<>", "RCPT TO:<u@example.com>", "DATA")
                      + m1 + b".\r\n"
                      + lines("MAIL FROM:<a@b.example>", "RCPT TO:<r1@example.com>",
                              "RCPT TO:<r2@other.example>", "RCPT TO:<postmaster>", "DATA")
                      + m2 + b".\r\n" + lines("QUIT"))
    t.codes(res.replies, ["220", "250", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0",
                          "250 2.1.0", "250 2.1.5", "250 2.1.5", "250 2.1.5", "354", "250 2.0.0",
                          "221 2.0.0"], "null sender + three recipients, two messages in one session")
    t.invariant(res, "two messages")
    ids = res.queued_ids()
    t.ok(len(ids) == 2 and ids[0] != ids[1], "two messages get distinct ids", ids)
    if len(ids) == 2:
        check_spool(t, srv, ids[0], "null sender", "multi.client", "ESMTP", "7BIT", "<>",
                    ["<u@example.com>"], m1, client_port=res.client_port)
        check_spool(t, srv, ids[1], "three recipients", "multi.client", "ESMTP", "7BIT", "<a@b.example>",
                    ["<r1@example.com>", "<r2@other.example>", "<postmaster>"], m2,
                    client_port=res.client_port)


def test_rset_and_misc(t, srv):
    c = srv.client()
    try:
        dialog(t, srv, [
            ("EHLO rset.client", "250"),
            ("NOOP", "250 2.0.0"),
            ("MAIL FROM:<a@b.example>", "250 2.1.0"),
            ("RCPT TO:<gone@example.com>", "250 2.1.5"),
            ("RSET", "250 2.0.0"),
            ("RCPT TO:<u@example.com>", "503 5.5.1"),
            ("RSET now", "501 5.5.4"),
            ("HELP", "214 2.0.0"),
            ("VRFY root", "252 2.0.0"),
            ("VRFY nosuchuser4711", "252 2.0.0"),
            ("VRFY", "501 5.5.4"),
            ("EXPN staff", "502 5.5.1"),
            ("MAIL FROM:<a@b.example>", "250 2.1.0"),
            ("RCPT TO:<kept@example.com>", "250 2.1.5"),
            ("DATA", "354"),
            (msg("after rset") + b".\r\n", "250 2.0.0"),
            ("QUIT", "221 2.0.0"),
        ], "RSET/NOOP/HELP/VRFY/EXPN", client=c)
        t.ok(c.wait_close(3), "QUIT closes the connection")
        vr = [r for r in c.replies if r.code == 252]
        if len(vr) == 2:
            a = vr[0].text.replace("root", "X")
            b = vr[1].text.replace("nosuchuser4711", "X")
            t.is_(a, b, "VRFY reveals nothing: same reply for an existing and a missing user")
    finally:
        c.close()
    srv.wait_sessions()
    f = [s for s in srv.spool_files().values() if b"after rset" in s.message]
    t.ok(len(f) == 1 and f[0].rcpt == ["<kept@example.com>"],
         "RSET cleared the first recipient", [x.rcpt for x in f])


def test_commands(t, srv):
    dialog(t, srv, [
        ("EHLO cmd.client", "250"),
        ("STARTTLS", "502 5.5.1"),
        ("AUTH PLAIN AGFAYg==", "502 5.5.1"),
        ("ETRN example.com", "502 5.5.1"),
        ("TURN", "502 5.5.1"),
        ("BDAT 0 LAST", "502 5.5.1"),
        ("XYZZY", "500 5.5.2"),
        ("MAILX FROM:<a@b.example>", "500 5.5.2"),
        ("HELOX", "500 5.5.2"),
        ("EHLOX x", "500 5.5.2"),
        ("", "500 5.5.2"),
        ("noop", "250 2.0.0"),
        ("NoOp", "250 2.0.0"),
        ("QUIT", "221 2.0.0"),
    ], "commands")
    dialog(t, srv, [
        ("ehlo lower.client", "250"),
        ("mail from:<a@b.example>", "250 2.1.0"),
        ("rcpt to:<u@example.com>", "250 2.1.5"),
        ("Rcpt To:<v@example.com>", "250 2.1.5"),
        ("data", "354"),
        (msg("lowercase verbs") + b".\r\n", "250 2.0.0"),
        ("rset", "250 2.0.0"),
        ("quit", "221 2.0.0"),
    ], "verbs are case-insensitive")
    dialog(t, srv, [
        ("helo lower.helo", "250"),
        ("QUIT", "221 2.0.0"),
    ], "helo lowercase")


def test_helo_errors(t, srv):
    dialog(t, srv, [
        ("MAIL FROM:<a@b.example>", "503 5.5.1"),
        ("RCPT TO:<u@example.com>", "503 5.5.1"),
        ("EHLO", "501 5.5.4"),
        ("HELO", "501 5.5.4"),
        ("EHLO two words", "501 5.5.4"),
        ("HELO two words", "501 5.5.4"),
        ("EHLO ctl\x01char", "501 5.5.4"),
        ("HELO ctl\x7fchar", "501 5.5.4"),
        ("EHLO tab\there", "501 5.5.4"),
        ("EHLO " + "a" * 256, "501 5.5.4"),
        ("HELO " + "b" * 256, "501 5.5.4"),
        ("EHLO " + "c" * 255, "250"),
        ("HELO " + "d" * 255, "250"),
        ("QUIT", "221 2.0.0"),
    ], "HELO/EHLO arguments")


def test_mail_rcpt_data_errors(t, srv):
    dialog(t, srv, [
        ("EHLO err.client", "250"),
        ("DATA", "503 5.5.1"),
        ("NOOP", "250 2.0.0"),
        ("MAIL <a@b.example>", "501 5.5.4"),
        ("MAIL TO:<a@b.example>", "501 5.5.4"),
        ("MAIL FROM:<a@@b.example>", "501 5.1.7"),
        ("MAIL FROM:<a..b@b.example>", "501 5.1.7"),
        ("MAIL FROM:a@b.example", "501"),
        ("MAIL FROM:   <a@b.example>", "250 2.1.0"),
        ("MAIL FROM:<c@d.example>", "503 5.5.1"),
        ("DATA", "503 5.5.1"),
        ("NOOP", "250 2.0.0"),
        ("RCPT TO:<bad!path@example.com>", "501 5.1.3"),
        ("DATA", "554 5.5.1"),
        ("NOOP", "250 2.0.0"),
        ("QUIT", "221 2.0.0"),
    ], "MAIL/DATA errors")
    dialog(t, srv, [
        ("EHLO err2.client", "250"),
        ("MAIL FROM:<a@b.example> SIZE=1000", "250 2.1.0"),
        ("RSET", "250 2.0.0"),
        ("MAIL FROM:<a@b.example> BODY=7BIT", "250 2.1.0"),
        ("RSET", "250 2.0.0"),
        ("MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME", "250 2.1.0"),
        ("RSET", "250 2.0.0"),
        ("MAIL FROM:<a@b.example> FOO=bar", "555 5.5.4"),
        ("MAIL FROM:<a@b.example> SIZE=abc", "501 5.5.4"),
        ("MAIL FROM:<a@b.example> BODY=BINARYMIME", "501 5.5.4"),
        ("MAIL FROM:<a@b.example>", "250 2.1.0"),
        ("RCPT TO:<u@example.com> NOTIFY=NEVER", "555 5.5.4"),
        ("RCPT TO:<postmaster>", "250 2.1.5"),
        ("RCPT TO:<PostMaster>", "250 2.1.5"),
        ("RCPT TO: <spaced@example.com>", "250 2.1.5"),
        ("DATA extra", "501 5.5.4"),
        ("NOOP", "250 2.0.0"),
        ("QUIT", "221 2.0.0"),
    ], "MAIL/RCPT parameters")


def test_reject_log_bytes(t, srv):
    """A refused RCPT is logged with exactly the bytes the client sent,
    escaped and capped: never bytes of an earlier line past the end of
    the argument (an empty path once logged 'to=<:<a@b.example>')."""
    long_sender = "<" + "s" * 60 + "@sender.example>"
    steps = [("EHLO logs.example", "250"), ("MAIL FROM:" + long_sender, "250"),
             ("RCPT TO:", "501 5.1.3"), ("RCPT TO:<bad..dots@x.example>", "501 5.1.3"),
             ("RCPT TO:<" + "x\x01" * 300, "501"), ("QUIT", "221")]
    dialog(t, srv, steps, "reject log bytes", quiet=True)
    srv.wait_log(r"reject: RCPT .* to=<x\\x01", 3)
    lg = srv.log()
    rcpt = [l for l in lg.splitlines() if "reject: RCPT" in l and "logs.example" in l]
    t.is_(len(rcpt), 3, "three refused RCPTs, three reject lines")
    if len(rcpt) == 3:
        t.like(rcpt[0], r"; from=%s to=<> proto=ESMTP helo=<logs\.example>$" % re.escape(long_sender),
               "RCPT TO: (nothing after the colon) logs to=<>, nothing of the MAIL line")
        t.like(rcpt[1], r" to=<bad\.\.dots@x\.example> proto=", "a bad address is logged as sent")
        t.like(rcpt[2], r" to=<(x\\x01)+x?\.\.\.> proto=",
               "a long bad path with control bytes: escaped and capped ('...')")
        t.ok(all(len(l) < 2100 for l in rcpt), "every reject line is bounded")


def test_banner(t):
    with Server(t, conf={"smtpd_banner": "$myhostname Welcome to smap"}, name="banner") as srv:
        c = srv.client()
        try:
            r = c.reply()
            t.expect(r, "220", "custom smtpd_banner", noenh=True)
            t.is_(r.text, HOSTNAME + " Welcome to smap", "smtpd_banner expands $myhostname")
        finally:
            c.close()


def test_catalogue(t):
    """The remaining reply codes of the spec, each at least once (the
    other test files go deeper into each)."""
    big = msg("big", (b"b" * 98 + b"\r\n") * 50)
    hops = b"".join(b"Received: from h%d by r%d; Mon, 1 Jan 2024 00:00:00 +0000\r\n" % (i, i) for i in range(4))
    with Server(t, name="catalogue-a", conf={"message_size_limit": 4096, "smtpd_recipient_limit": 2,
                                             "hopcount_limit": 3, "mynetworks": "192.0.2.0/24",
                                             "relay_domains": "example.com"}) as srv:
        res = srv.session(lines("EHLO cat.client", "MAIL FROM:<a@b.example> SIZE=5000", "MAIL FROM:<a@b.example>",
                                "RCPT TO:<x@evil.example>", "RCPT TO:<u1@example.com>", "RCPT TO:<u2@example.com>",
                                "RCPT TO:<u3@example.com>", "DATA") + big + b".\r\n" + lines("QUIT"))
        t.codes(res.replies, ["220", "250", "552 5.3.4", "250 2.1.0", "554 5.7.1", "250 2.1.5", "250 2.1.5",
                              "452 4.5.3", "354", "552 5.3.4", "221 2.0.0"],
                "catalogue: 552 5.3.4 (SIZE), 554 5.7.1, 452 4.5.3, 552 5.3.4 (body)")
        t.invariant(res, "catalogue 1")
        res = srv.session(lines("EHLO cat.client", "MAIL FROM:<a@b.example>", "RCPT TO:<u@example.com>", "DATA")
                          + msg("hops", headers=hops) + b".\r\n"
                          + lines("MAIL FROM:<a@b.example>", "RCPT TO:<u@example.com>", "DATA")
                          + msg("bare lf", b"a\nb\r\n") + b".\r\n" + lines("QUIT"))
        t.codes(res.replies, ["220", "250", "250 2.1.0", "250 2.1.5", "354", "554 5.4.6",
                              "250 2.1.0", "250 2.1.5", "354", "554 5.6.0", "221 2.0.0"],
                "catalogue: 554 5.4.6 (hops), 554 5.6.0 (bare LF)")
        t.invariant(res, "catalogue 2")
        res = srv.session(b"GET / HTTP/1.0\r\n\r\n")
        t.codes(res.replies, ["220", "521 5.7.0"], "catalogue: 521 5.7.0 (HTTP)")
        t.ok(res.closed, "catalogue: closed after 521")
    with Server(t, name="catalogue-b", conf={"smtpd_message_limit": 1, "smtpd_timeout": "1s",
                                             "smtpd_hard_error_limit": 3}) as srv:
        res = srv.session(lines("EHLO cat.client", "MAIL FROM:<a@b.example>", "RCPT TO:<u@example.com>", "DATA")
                          + msg("one") + b".\r\n" + lines("MAIL FROM:<a@b.example>"))
        t.codes(res.replies, ["220", "250", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "421 4.7.0"],
                "catalogue: 421 4.7.0 (smtpd_message_limit)")
        t.invariant(res, "catalogue 3")
        res = srv.session(lines("EHLO cat.client", "FOO", "BAR", "BAZ"))
        t.codes(res.replies, ["220", "250", "500 5.5.2", "500 5.5.2", "500 5.5.2", "421 4.7.0"],
                "catalogue: 421 4.7.0 (smtpd_hard_error_limit)")
        c = srv.client()
        try:
            got = [c.reply(), c.cmd(b"EHLO cat.client"), c.cmd(b"MAIL FROM:<a@b.example>"), c.cmd(b"DATA")]
            c.send(b"Subject: not a command\r\n")
            got.append(c.reply())
            t.codes(got, ["220", "250", "250 2.1.0", "503 5.5.1", "421 4.7.0"],
                    "catalogue: 421 4.7.0 (no SMTP verb after a failed DATA)")
        finally:
            c.close()
        res = srv.session(b"", timeout=5)
        t.codes(res.replies, ["220", "421 4.4.2"], "catalogue: 421 4.4.2 (smtpd_timeout 1s)")
    d = os.statvfs(tempfile.gettempdir())
    huge = min(d.f_bavail * d.f_frsize * 2 + 10 ** 9, 1 << 40)
    with Server(t, name="catalogue-c", conf={"smtpd_greet_pause": "1s", "queue_minfree": huge}) as srv:
        res = srv.session(lines("EHLO early"), greet=False)
        t.codes(res.replies, ["554 5.5.1"], "catalogue: 554 5.5.1 (talked before the greeting)")
        res = srv.session(lines("EHLO cat.client", "MAIL FROM:<a@b.example>", "QUIT"))
        t.codes(res.replies, ["220", "250", "452 4.3.1", "221 2.0.0"], "catalogue: 452 4.3.1 (queue_minfree)")


def main(t):
    with Server(t, name="session") as srv:
        t.run("smtplib", test_smtplib, t, srv)
    with Server(t, name="session2") as srv:
        t.run("helo", test_helo, t, srv)
        t.run("swaks", test_swaks, t, srv)
        t.run("pipelined", test_pipelined, t, srv)
        t.run("8bit", test_8bit, t, srv)
        t.run("multi", test_null_sender_multi_rcpt_two_messages, t, srv)
        t.run("rset", test_rset_and_misc, t, srv)
        t.run("commands", test_commands, t, srv)
        t.run("helo errors", test_helo_errors, t, srv)
        t.run("mail errors", test_mail_rcpt_data_errors, t, srv)
        t.run("reject log bytes", test_reject_log_bytes, t, srv)
        check_log_clean(t, srv, "session2")
    t.run("banner", test_banner, t)
    t.run("catalogue", test_catalogue, t)


TAP(watchdog=60).main(main)
