#!/usr/bin/env python3
# 40-smapd-smtp.t - smap -> smapd -> a real Postfix over SMTP, end to end:
# what a client sent is what lands in the Maildir (after the headers
# Postfix prepends and smap's Received:), leading dots, 8-bit bytes and a
# 5000-byte line included; how long it takes; smapd -t. A scripted
# server that offers PIPELINING and XFORWARD, then refuses XFORWARD:
# smapd goes on without it.
# Parallel delivery processes (default_destination_concurrency_limit).
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, HOSTNAME  # noqa: E402
from postfix import Postfix, DOMAIN, split_message, header, read_maildir  # noqa: E402
from smapdtest import (Smapd, send, queue_ids, state_ids, quarantined, smapd_log,  # noqa: E402
                       wait_until, state)
from smtpfake import FakeSMTP  # noqa: E402

HDR = (b"From: Alice <a@b.example>\r\nTo: a@backend.test\r\nDate: Mon, 23 Nov 2026 05:00:00 +0000\r\n")


def mk(n, subject, body):
    return (HDR + b"Subject: " + subject + b"\r\nMessage-ID: <e2e-%d@b.example>\r\n\r\n" % n + body)


DOTS = (b"first line\r\n.\r\n..\r\n.leading dot\r\n..two dots\r\n...\r\n . space dot\r\n"
        b"\r\n.\r\n\r\nend.\r\n.\r\n")
EIGHT = (b"caf\xc3\xa9 na\xc3\xafve \xe2\x82\xac\r\n" + bytes(range(0x80, 0x100)) + b"\r\n"
         b"tab\tand trailing space \r\n\xff\r\n")
LONG = (b"x" * 5000 + b"\r\n" + b"." + b"y" * 4998 + b"\r\n" + b"z" * 4999 + b".\r\n"
        b"after the long lines\r\n")

MESSAGES = [
    (["a@" + DOMAIN], mk(1, b"leading dots", DOTS)),
    (["a@" + DOMAIN], mk(2, b"eight bit", EIGHT)),
    (["a@" + DOMAIN], mk(3, b"long lines", LONG)),
    (["a@" + DOMAIN, "b@" + DOMAIN, "c@" + DOMAIN], mk(4, b"three recipients", b"one body, three copies\r\n")),
    (["b@" + DOMAIN], mk(5, b"header only", b"")),
]

PREPENDED = ["Return-Path", "X-Original-To", "Delivered-To", "Received", "Received"]


def first_diff(a, b):
    for i in range(min(len(a), len(b))):
        if a[i] != b[i]:
            return i
    return min(len(a), len(b))


def check_copy(t, desc, data, sent, sid, rcpt):
    """data: the Maildir file; sent: the message the client sent (CRLF)."""
    want = sent.replace(b"\r\n", b"\n")
    if not data.endswith(want):
        i = first_diff(data[::-1], want[::-1])
        t.ok(False, "%s: delivered bytes end with exactly the bytes sent" % desc,
             "mismatch %d bytes before the end" % i,
             "got:  %r" % data[max(0, len(data) - i - 60):len(data) - i + 60],
             "want: %r" % want[max(0, len(want) - i - 60):len(want) - i + 60])
        return
    t.ok(True, "%s: delivered bytes end with exactly the bytes sent" % desc)
    head = data[:len(data) - len(want)]
    fields, rest = split_message(head + b"\n")
    names = [k for k, _ in fields]
    t.ok(names == PREPENDED and rest == b"",
         "%s: before them only Postfix's Return-Path/X-Original-To/Delivered-To/Received "
         "and smap's Received" % desc, "got: %r" % names, "head: %r" % head[:800])
    if len(fields) == 5:
        t.like(fields[0][1], rb"^Return-Path: <a@b\.example>\n$", "%s: Return-Path is the envelope sender" % desc)
        t.like(fields[2][1], rb"^Delivered-To: " + re.escape(rcpt.encode()) + rb"\n$",
               "%s: Delivered-To %s" % (desc, rcpt))
        t.like(fields[3][1], rb"^Received: from " + re.escape(HOSTNAME.encode()) +
               rb" \(unknown \[127\.0\.0\.1\]\)\n\tby backend\.test \(Postfix\) with E?SMTP id ",
               "%s: Postfix's Received names smapd's EHLO (smtp_helo_name = $myhostname)" % desc)
        t.like(fields[4][1], rb"^Received: from client\.test \(unknown \[127\.0\.0\.1\]\)\n\tby " +
               re.escape(HOSTNAME.encode()) + rb" with ESMTP id " + sid.encode() + rb"\b",
               "%s: smap's Received with queue id %s" % (desc, sid))


def test_config(t, srv, pf):
    t.is_(pf.postconf_rc, 0, "postconf -c DIR -n works on the private Postfix config")
    t.like(pf.postconf_n, r"(?m)^myhostname = backend\.test$", "postconf -n shows the test's myhostname")
    t.like(pf.postconf_n, r"(?m)^inet_interfaces = 127\.0\.0\.1$", "postconf -n: inet_interfaces = 127.0.0.1")
    d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % pf.port}, name="check-good")
    rc, err = d.check()
    t.is_(rc, 0, "smapd -t: a good configuration exits 0")
    t.is_(err, "", "smapd -t: nothing on stderr for a good configuration")
    for spec in ("smtp:[127.0.0.1]:0", "smtp:[127.0.0.1]:99999", "smtp:[127.0.0.1", "smtps:[127.0.0.1]:25",
                 "maildir:relative/", "lmtp:unix:relative", "pipe:/bin/sh", "smtp:"):
        d.set_conf({"default_transport": spec})
        rc, err = d.check()
        t.is_(rc, 78, "smapd -t: default_transport = %s exits 78 (EX_CONFIG)" % spec)
        t.like(err, r"default_transport", "smapd -t: default_transport = %s: the message names the key" % spec)
    d.set_conf({"default_transport": "smtp:[127.0.0.1]:%d" % pf.port, "no_such_key": "1"})
    rc, err = d.check()
    t.is_(rc, 78, "smapd -t: an unknown key exits 78")
    t.like(err, re.escape(d.conffile) + r":\d+: .*no_such_key", "smapd -t: unknown key reported as file:line")
    d.set_conf({"no_such_key": None, "queue_run_delay": "0s"})
    rc, err = d.check()
    t.is_(rc, 78, "smapd -t: queue_run_delay out of range exits 78")
    t.like(err, r"queue_run_delay", "smapd -t: the range error names the key")


def test_delivery(t, srv, pf):
    d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % pf.port,
                            "queue_run_delay": "30s"})
    with d:
        d.start()
        sent = send(srv, MESSAGES, helo="client.test")
        t.ok(len(sent) == len(MESSAGES) and all(s for s, _ in sent),
             "smap accepted all %d messages with a queue id" % len(MESSAGES), repr(sent))
        # time each copy from smap's 250 until its file is in the Maildir
        expect = {}     # (user, Message-ID) -> (t250, sid, sent bytes)
        for (rcpts, data), (sid, t250) in zip(MESSAGES, sent):
            mid = header(data, "Message-ID")
            for r in rcpts:
                expect[(r.split("@")[0], mid)] = (t250, sid, data, r)
        seen = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(seen) < len(expect):
            for user in ("a", "b", "c"):
                for name, data in pf.messages(user):
                    key = (user, header(data, "Message-ID"))
                    if key in expect and key not in seen:
                        seen[key] = (time.monotonic(), name, data)
            time.sleep(0.01)
        t.is_(len(seen), len(expect), "every copy reached the Postfix Maildirs (%d)" % len(expect))
        lat = {}
        for key, (t250, sid, data, rcpt) in sorted(expect.items()):
            if key not in seen:
                continue
            lat[key] = seen[key][0] - t250
            check_copy(t, "%s for %s" % (key[1], key[0]), seen[key][2], data, sid, rcpt)
        if lat:
            worst = max(lat.values())
            t.note("latency from smap's 250 to the Maildir file: max %.3fs, min %.3fs, %s" % (
                worst, min(lat.values()), ", ".join("%s/%s %.3fs" % (k[0], k[1], v) for k, v in sorted(lat.items()))))
            t.ok(worst < 5.0, "latency from smap's 250 to the Maildir file < 5s (max %.3fs)" % worst)
        for user in ("a", "b", "c"):
            ids = [header(x, "Message-ID") for _, x in pf.messages(user)]
            t.is_(len(ids), len(set(ids)), "%s: no message delivered twice" % user)
        # smapd's bookkeeping and log
        t.ok(wait_until(lambda: not queue_ids(srv) and not state_ids(srv), 5),
             "queue/ and state/ are empty after delivery", "queue: %s state: %s" % (queue_ids(srv), state_ids(srv)))
        t.is_(quarantined(srv), {}, "nothing quarantined")
        log = "\n".join(smapd_log(srv))
        for (rcpts, data), (sid, _) in zip(MESSAGES, sent):
            t.like(log, r"(?m)smap/qmgr\[\d+\]: %s: from=<a@b\.example>, size=\d+, nrcpt=%d \(queue active\)$"
                   % (sid, len(rcpts)), "log: %s (queue active), nrcpt=%d" % (sid, len(rcpts)))
            for r in rcpts:
                t.like(log, r"(?m)smap/smtp\[\d+\]: %s: to=<%s>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, "
                       r"delay=[\d.]+, delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, status=sent "
                       r"\(250 2\.0\.0 Ok: queued as [0-9A-Za-z]+\)$" % (sid, re.escape(r), pf.port),
                       "log: %s to=<%s> status=sent with relay, delays and Postfix's queue id" % (sid, r))
            t.like(log, r"(?m)smap/qmgr\[\d+\]: %s: removed$" % sid, "log: %s removed" % sid)
        plog = pf.log()
        t.is_(len(re.findall(r"postfix/smtpd\[\d+\]: [0-9A-F]+: client=unknown\[127\.0\.0\.1\]", plog)),
              len(MESSAGES), "Postfix saw one transaction per message (one connection may carry several)")
        rc = d.stop()
        t.is_(rc, [0], "smapd exits 0 on SIGTERM")
        t.like(srv.log(), r"(?m)smap/qmgr\[\d+\]: stopped$", "smapd logs 'stopped'")


def test_xforward_refused(t, srv):
    """With PIPELINING, XFORWARD goes out in one write with MAIL, RCPT
    and DATA; refused, it is no reason to defer: the transaction goes on
    without it, the next one on the connection sends none, and one
    warning says so. (This used to defer the message and drop the
    connection.)"""
    with FakeSMTP(t, None, None, starttls=None, xforward="refuse") as fs:
        sent = send(srv, [(["a@" + DOMAIN], mk(9, b"xforward refused", b"body\r\n")),
                          (["a@" + DOMAIN], mk(10, b"xforward refused 2", b"body 2\r\n"))])
        sids = [s for s, _ in sent]
        d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % fs.port,
                                "default_destination_concurrency_limit": "1"}, name="smapd-40x")
        t.is_(d.once(), 0, "XFORWARD refused: smapd -1 exits 0")
        t.is_(queue_ids(srv), [], "XFORWARD refused: both messages left the queue")
        log = "\n".join(smapd_log(srv))
        for sid in sids:
            t.like(log, r"(?m)smap/smtp\[\d+\]: %s: to=<a@%s>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*"
                   r"status=sent \(250 2\.0\.0 Ok: queued as FAKE\)$" % (sid, re.escape(DOMAIN), fs.port),
                   "XFORWARD refused: %s status=sent" % sid)
        t.is_(len(re.findall(r"warning: %s: 127\.0\.0\.1\[127\.0\.0\.1\] refused XFORWARD: 450 4\.7\.1 "
                             r"Error: XFORWARD refused; going on without it on this connection$" % sids[0],
                             log, re.M)), 1, "XFORWARD refused: one warning, with the server's reply")
        t.unlike(log, r"more replies than commands", "XFORWARD refused: no reply left over")
        sess = fs.sessions[0] if len(fs.sessions) == 1 else {}
        cmds = [c.split(b" ")[0] for c in sess.get("plain", [])]
        t.is_(cmds, [b"EHLO", b"XFORWARD", b"MAIL", b"RCPT", b"DATA", b"MAIL", b"RCPT", b"DATA", b"QUIT"],
              "XFORWARD refused: one connection; MAIL pipelined behind XFORWARD; none before the second MAIL")
        t.ok(len(sess.get("messages", [])) == 2, "XFORWARD refused: the server got both messages", repr(fs.sessions))


def test_concurrency(t, srv, pf):
    """default_destination_concurrency_limit = 3: twelve messages, three
    delivery processes at once, each message delivered exactly once."""
    msgs = [(["b@" + DOMAIN], mk(100 + i, b"parallel %d" % i, b"body %d\r\n" % i)) for i in range(12)]
    before = len(pf.messages("b"))
    sent = send(srv, msgs)
    t.ok(len(sent) == 12 and all(s for s, _ in sent), "concurrency: smap took 12 messages")
    d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % pf.port,
                            "default_destination_concurrency_limit": "3"}, name="smapd-40c")
    t.is_(d.once(), 0, "concurrency: smapd -1 exits 0")
    got = pf.wait_messages("b", before + 12, 20)
    mids = [header(x, "Message-ID") for _, x in got]
    want = [header(m, "Message-ID") for _, m in msgs]
    t.ok(all(mids.count(m) == 1 for m in want), "concurrency: each of the 12 delivered exactly once",
         repr(sorted(mids)))
    t.is_(queue_ids(srv), [], "concurrency: queue/ is empty")
    ids = {s for s, _ in sent}
    pids = set(m.group(1) for m in re.finditer(r"smap/smtp\[(\d+)\]: ([0-9A-F]+): to=<b@[^>]+>, .*status=sent",
                                                srv.log()) if m.group(2) in ids)
    t.is_(len(pids), 3, "concurrency: three processes delivered them (%s)" % sorted(pids))


def main(t):
    with Postfix(t, users=("a", "b", "c", "sender")) as pf:
        with Server(t, name="smap-40") as srv:
            t.run("config", test_config, t, srv, pf)
            t.run("delivery", test_delivery, t, srv, pf)
            t.run("concurrency", test_concurrency, t, srv, pf)
            t.run("xforward refused", test_xforward_refused, t, srv)


if __name__ == "__main__":
    TAP(watchdog=85).main(main)
