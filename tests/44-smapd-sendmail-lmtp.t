#!/usr/bin/env python3
# 44-smapd-sendmail-lmtp.t - the other two network-free transports end to
# end: sendmail (Postfix's own /usr/sbin/sendmail into a private Postfix
# instance) and LMTP (a private Dovecot LMTP server, over TCP and over a
# UNIX socket) with per-recipient results after DATA.
#
# Postfix's sendmail hands the message to postdrop, which is set-gid and
# honours MAIL_CONFIG only for a directory listed in the *default*
# /etc/postfix/main.cf. Rather than writing into /etc, smapd runs in a
# private mount namespace (unshare --mount) where /etc/postfix is a copy
# holding such a main.cf; sendmail_path is a two-line wrapper that sets
# MAIL_CONFIG. The real /etc/postfix is never written (checked below).
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, smapd_ids  # noqa: E402
from postfix import (Postfix, Dovecot, DOMAIN, split_message, header, message_ids,  # noqa: E402
                     sendmail_namespace, write_sendmail_wrapper, namespace_skip)
from smapdtest import (Smapd, send, queue_ids, state_ids, state, quarantined, smapd_log,  # noqa: E402
                       wait_until, tap_skip)

BODY = (b"first\r\n.\r\n..\r\n.leading dot\r\n..two dots\r\n. \r\n"
        b"caf\xc3\xa9 \xff\xfe\x80\r\n" + b"L" * 5000 + b"\r\n" + b"y" * 2500 + b"\r\nlast\r\n")


def mk(tag, to="a@backend.test", body=BODY):
    return (b"From: a@b.example\r\nTo: " + to.encode() + b"\r\nDate: Mon, 23 Nov 2026 05:00:00 +0000\r\n"
            b"Subject: " + tag.encode() + b"\r\nMessage-ID: <" + tag.encode() + b"@b.example>\r\n\r\n" + body)


def check_bytes(t, desc, data, sent, prepended):
    want = sent.replace(b"\r\n", b"\n")
    if not data.endswith(want):
        i = 0
        while i < min(len(data), len(want)) and data[-1 - i] == want[-1 - i]:
            i += 1
        t.ok(False, "%s: delivered bytes end with exactly the bytes sent" % desc,
             "mismatch %d bytes before the end" % i, "got:  %r" % data[max(0, len(data) - i - 80):len(data) - i + 40],
             "want: %r" % want[max(0, len(want) - i - 80):len(want) - i + 40])
        return
    t.ok(True, "%s: delivered bytes end with exactly the bytes sent" % desc)
    fields, rest = split_message(data[:len(data) - len(want)] + b"\n")
    names = [k for k, _ in fields]
    alts = prepended if isinstance(prepended[0], list) else [prepended]
    t.ok(names in alts and rest == b"", "%s: only %s prepended" % (desc, " or ".join("/".join(a) for a in alts)),
         "got: %r" % names)
    t.like(data, rb"\n\.\n\.\.\n\.leading dot\n\.\.two dots\n\. \n", "%s: the dot lines survived as sent" % desc)


# --------------------------------------------------------------------------
# sendmail


def test_sendmail(t):
    why = namespace_skip()
    if why:
        tap_skip(t, "sendmail transport with Postfix's sendmail: %s" % why)
        return
    etc_main = "/etc/postfix/main.cf"
    had_main = os.path.exists(etc_main)
    before = open(etc_main, "rb").read() if had_main else None
    with Postfix(t, users=("a", "b", "sender"), name="postfix-44") as pf, Server(t, name="smap-44s") as srv:
        wrapper = write_sendmail_wrapper(pf, os.path.join(pf.dir, "sendmail-wrapper"))
        d = Smapd(t, srv, conf={"default_transport": "sendmail", "sendmail_path": wrapper}, name="smapd-sendmail")
        t.is_(d.check()[0], 0, "sendmail: smapd -t accepts default_transport = sendmail")
        sent = send(srv, [(["a@" + DOMAIN, "b@" + DOMAIN], mk("sm-1")),
                          (["a@" + DOMAIN], ("", mk("sm-null", body=b"from the null sender\r\n.\r\n")))])
        rc = d.once(flush=True, prefix=sendmail_namespace(pf))
        t.is_(rc, 0, "sendmail: smapd -1 -f (in a private mount namespace) exits 0")
        pf.wait_messages("a", 2, 10)
        pf.wait_messages("b", 1, 10)
        pf.wait_idle(5)
        got = {u: {header(x, "Message-ID"): x for _, x in pf.messages(u)} for u in ("a", "b")}
        t.is_((sorted(got["a"]), sorted(got["b"])),
              (["<sm-1@b.example>", "<sm-null@b.example>"], ["<sm-1@b.example>"]),
              "sendmail: a got both messages, b got the one for it")
        pre = ["Return-Path", "X-Original-To", "Delivered-To", "Received", "Received"]
        for u in ("a", "b"):
            if "<sm-1@b.example>" in got[u]:
                check_bytes(t, "sendmail to %s" % u, got[u]["<sm-1@b.example>"], mk("sm-1"), pre)
        x = got["a"].get("<sm-1@b.example>", b"")
        t.like(x, rb"^Return-Path: <a@b\.example>\n", "sendmail: the envelope sender came through -f")
        uid = smapd_ids()[0]
        t.like(x, rb"\nReceived: by backend\.test \(Postfix, from userid %d\)" % uid,
               "sendmail: Postfix saw the submission from uid %d (smapd), not root" % uid)
        t.like(got["a"].get("<sm-null@b.example>", b""), rb"^Return-Path: <>\n",
               "sendmail: the null sender arrives as <> (-f \"\")")
        t.like(got["a"].get("<sm-null@b.example>", b""), rb"\nfrom the null sender\n\.\n$",
               "sendmail: a final '.' line does not end the message early (-i)")
        log = "\n".join(smapd_log(srv))
        for sid, n in ((sent[0][0], 2), (sent[1][0], 1)):
            t.is_(len(re.findall(r"smap/pipe\[\d+\]: %s: to=<[^>]+>, relay=[^,]+, delay=[\d.]+, delays=[\d./]+, "
                                 r"dsn=2\.0\.0, status=sent" % sid, log)), n,
                  "sendmail: log: %d status=sent line(s) for %s" % (n, sid))
            t.like(log, r"smap/qmgr\[\d+\]: %s: removed" % sid, "sendmail: log: %s removed" % sid)
        t.ok(not queue_ids(srv) and not state_ids(srv), "sendmail: queue/ and state/ empty")
        t.is_(quarantined(srv), {}, "sendmail: nothing quarantined")
        d.check_sanitizer()
    now = os.path.exists(etc_main)
    t.ok(now == had_main and (not now or open(etc_main, "rb").read() == before),
         "sendmail: the real /etc/postfix/main.cf was not created or changed")


# --------------------------------------------------------------------------
# LMTP


def dsn_for(dv, user, mid):
    return [x for _, x in dv.messages(user) if mid.encode() in x and b"multipart/report" in x]


def test_lmtp(t):
    why = Dovecot.skip()
    if why:
        tap_skip(t, "LMTP with Dovecot: %s" % why)
        return
    users = {"u1": {}, "u2": {"quota": "1K"}, "u3": {"locked": True}, "u4": {}, "sender": {}}
    with Dovecot(t, users=users) as dv, Server(t, name="smap-44l") as srv:
        d = Smapd(t, srv, conf={"default_transport": "lmtp:[127.0.0.1]:%d" % dv.port}, name="smapd-lmtp")
        t.is_(d.check()[0], 0, "lmtp: smapd -t accepts lmtp:[127.0.0.1]:PORT")
        rcpts = ["u1@" + DOMAIN, "u2@" + DOMAIN, "u3@" + DOMAIN, "nouser@" + DOMAIN]
        (sid, _), = send(srv, [(rcpts, ("sender@" + DOMAIN, mk("lm-1", to="u1@backend.test")))])
        rc = d.once(flush=True)
        t.is_(rc, 0, "lmtp: smapd -1 -f exits 0")
        log = "\n".join(smapd_log(srv, sid))
        expect = [("u1", r"dsn=2\.0\.0, status=sent \(250 2\.0\.0 <u1@backend\.test> .*Saved\)"),
                  ("u2", r"dsn=5\.2\.2, status=bounced \(.*552 5\.2\.2 <u2@backend\.test> Quota exceeded.*\)"),
                  ("u3", r"dsn=4\.\d\.\d, status=deferred \(.*451 4\.\d\.\d <u3@backend\.test>.*\)"),
                  ("nouser", r"dsn=5\.1\.1, status=bounced \(.*550 5\.1\.1 <nouser@backend\.test>.*\)")]
        for u, rx in expect:
            t.like(log, r"smap/lmtp\[\d+\]: %s: to=<%s@backend\.test>, relay=[^,]+, delay=[\d.]+, delays=[\d./]+, %s"
                   % (sid, u, rx), "lmtp: per-recipient result for %s: /%s/" % (u, rx.split(" \\(")[0]))
        st = state(srv, sid) or {"rcpt": {}, "raw": ""}
        got = {i: v[0] for i, v in st["rcpt"].items()}
        # The hard failures are returned to the sender at once, while u3 waits.
        t.ok(got == {0: "sent", 1: "returned", 2: "deferred", 3: "returned"},
             "lmtp: state/%s: u1 sent, u2 and nouser returned, u3 deferred" % sid, st["raw"])
        t.like(log, r"smap/bounce\[\d+\]: %s: sender non-delivery notification: [0-9A-F]+" % sid,
               "lmtp: the DSN for u2 and nouser goes out before u3 is delivered")
        t.is_(queue_ids(srv), [sid], "lmtp: the message stays queued for u3")
        m = dv.wait_messages("u1", 1, 5)
        t.is_(len(m), 1, "lmtp: u1 has exactly one copy")
        if m:
            check_bytes(t, "lmtp to u1", m[0][1], mk("lm-1", to="u1@backend.test"),
                        ["Return-Path", "Received", "Received"])
            t.like(m[0][1], rb"^Return-Path: <sender@backend\.test>\n", "lmtp: MAIL FROM came through")
        t.is_(len(dv.messages("u2")), 0, "lmtp: u2 (over quota) has nothing")
        # u3 can be written now: the retry goes to u3 only
        dv.unlock()
        rc = d.once(flush=True)
        t.is_(rc, 0, "lmtp: second run exits 0")
        dv.wait_messages("u3", 1, 5)
        t.is_((len(dv.messages("u1")), len(dv.messages("u3"))), (1, 1),
              "lmtp: retry delivered to u3; u1 still exactly one copy")
        log = "\n".join(smapd_log(srv, sid))
        t.is_(len(re.findall(r"to=<u1@backend\.test>.*status=sent", log)), 1, "lmtp: u1 was not sent again")
        m = re.search(r"smap/bounce\[\d+\]: %s: sender non-delivery notification: ([0-9A-F]+)" % sid, log)
        t.ok(m, "lmtp: a DSN for u2 and nouser once nothing is pending", log)
        rc = d.once(flush=True)
        dsn = wait_until(lambda: dsn_for(dv, "sender", "<lm-1@b.example>"), 5)
        t.is_(len(dsn or []), 1, "lmtp: the DSN reached sender over LMTP")
        if dsn:
            txt = dsn[0].decode("latin-1")
            for r, code in (("u2", "5.2.2"), ("nouser", "5.1.1")):
                t.like(txt, r"Final-Recipient: rfc822; %s@backend\.test\r?\nAction: failed\r?\nStatus: %s"
                       % (r, re.escape(code)), "lmtp: DSN: %s failed with %s" % (r, code))
            for r in ("u1", "u3"):
                t.unlike(txt, r"Final-Recipient: rfc822; %s@" % r, "lmtp: DSN does not list %s" % r)
        t.ok(wait_until(lambda: not queue_ids(srv) and not state_ids(srv), 5), "lmtp: queue/ and state/ empty")
        # over the UNIX socket
        d.set_conf({"default_transport": "lmtp:unix:%s" % dv.unix_socket})
        t.is_(d.check()[0], 0, "lmtp: smapd -t accepts lmtp:unix:/path")
        (sid2, _), = send(srv, [(["u4@" + DOMAIN], mk("lm-unix", to="u4@backend.test"))])
        rc = d.once(flush=True)
        t.is_(rc, 0, "lmtp unix: smapd -1 -f exits 0")
        m = dv.wait_messages("u4", 1, 5)
        t.is_(len(m), 1, "lmtp unix: u4 got one copy")
        if m:
            # Dovecot adds Delivered-To when a transaction has one recipient
            check_bytes(t, "lmtp unix to u4", m[0][1], mk("lm-unix", to="u4@backend.test"),
                        [["Return-Path", "Delivered-To", "Received", "Received"]])
        t.like("\n".join(smapd_log(srv, sid2)), r"smap/lmtp\[\d+\]: %s: to=<u4@backend\.test>, relay=%s, .*"
               r"status=sent" % (sid2, re.escape(dv.unix_socket)), "lmtp unix: log names the socket as relay")
        t.is_(quarantined(srv), {}, "lmtp: nothing quarantined")
        d.check_sanitizer()


def main(t):
    t.run("sendmail", test_sendmail, t)
    t.run("lmtp", test_lmtp, t)


if __name__ == "__main__":
    TAP(watchdog=85).main(main)
