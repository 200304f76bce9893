#!/usr/bin/env python3
# 47-smapd-sendmail-mta.t - smap -> smapd -> a real Sendmail 8.17 (Debian's
# sendmail-bin, unpacked, never installed: see tests/lib/sendmail.py):
#  - the SMTP transport: delivered; Sendmail offers no XFORWARD and smapd
#    sends none; the client's address (127.0.0.2 here, smapd comes from
#    127.0.0.1) survives in smap's Received: in the delivered message;
#  - the sendmail transport with Sendmail's own set-gid sendmail (the MSP,
#    submit.cf): smapd runs it in the instance's mount namespace, where
#    /etc/mail is the instance's; it relays to the MTA, one copy each;
#  - a 450 and a 550 from Sendmail's access map: deferred (state, still
#    queued) and bounced (a DSN that reaches the sender at Sendmail);
#  - leading dots and 8-bit bodies arrive byte for byte over both.
# Without the .debs (no mirror) every case is a TAP skip.
import email
import email.policy
import hashlib
import os
import re
import smtplib
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, HOSTNAME, smapd_ids, received_re  # noqa: E402
from postfix import split_message, header  # noqa: E402
from sendmail import Sendmail, DOMAIN, pidns_members  # noqa: E402
from smapdtest import (Smapd, queue_ids, state_ids, state, quarantined, smapd_log,  # noqa: E402
                       wait_until)

CLIENT = "127.0.0.2"    # smap's client; smapd reaches Sendmail from 127.0.0.1
ACCESS = {"To:tempfail@" + DOMAIN: "ERROR:4.2.0:450 try later",
          "To:reject@" + DOMAIN: "ERROR:5.7.1:550 rejected here"}
CASES = ("smtp transport", "sendmail transport", "access map 4xx and 5xx", "dots and 8-bit bodies")

DOTS = (b"first line\r\n.\r\n..\r\n.leading dot\r\n..two dots\r\n...\r\n . space dot\r\n"
        b"\r\n.\r\n\r\nend.\r\n.\r\n")
EIGHT = (b"caf\xc3\xa9 na\xc3\xafve \xe2\x82\xac\r\n" + bytes(range(0x80, 0x100)) + b"\r\n"
         b"tab\tand trailing space \r\n\xff\r\n.\xe9 dot and 8-bit\r\n")


def mk(tag, to, body=b"plain body\r\n"):
    return (b"From: Alice <a@b.example>\r\nTo: " + to.encode() + b"\r\n"
            b"Date: Mon, 23 Nov 2026 05:00:00 +0000\r\nSubject: " + tag.encode() + b"\r\n"
            b"Message-ID: <" + tag.encode() + b"@b.example>\r\n\r\n" + body)


def at(user):
    return "%s@%s" % (user, DOMAIN)


def send(srv, messages, sender="a@b.example", helo="client.test"):
    """[(rcpts, bytes)] through smap in one session from CLIENT (smtplib
    dot-stuffs; BODY=8BITMIME for 8-bit bytes). Returns the queue ids."""
    out = []
    s = smtplib.SMTP(timeout=20, source_address=(CLIENT, 0))
    try:
        s.connect("127.0.0.1", srv.port)
        s.local_hostname = helo
        s.ehlo()
        for rcpts, data in messages:
            code, r = s.mail(sender, ["BODY=8BITMIME"] if any(c > 127 for c in data) else [])
            if code != 250:
                raise RuntimeError("MAIL: %d %r" % (code, r))
            for rc in rcpts:
                code, r = s.rcpt(rc)
                if code != 250:
                    raise RuntimeError("RCPT %s: %d %r" % (rc, code, r))
            code, r = s.data(data)
            if code != 250:
                raise RuntimeError("DATA: %d %r" % (code, r))
            m = re.search(rb"queued as ([0-9A-F]+)", r)
            out.append(m.group(1).decode() if m else None)
        s.quit()
    finally:
        s.close()
    srv.wait_sessions(5)
    return out


def by_mid(sm, user):
    """{Message-ID: [bytes, ...]} of user's mailbox."""
    out = {}
    for _, data in sm.messages(user):
        out.setdefault(header(data, "Message-ID"), []).append(data)
    return out


def wait_mids(sm, want, timeout=15):
    """Wait until every (user, Message-ID) in want is in a mailbox."""
    def have():
        return all(mid in by_mid(sm, u) for u, mid in want)
    return wait_until(have, timeout)


def check_copy(t, sm, desc, data, sent, prepended):
    """data ends with exactly the bytes sent (LF line ends, as a local
    mailer gets them), and before them only the trace fields named."""
    want = sent.replace(b"\r\n", b"\n")
    if not data.endswith(want):
        i = 0
        while i < min(len(data), len(want)) and data[-1 - i] == want[-1 - i]:
            i += 1
        t.ok(False, "%s: delivered bytes end with exactly the bytes sent" % desc,
             "mismatch %d bytes before the end" % i,
             "got:  %r" % data[max(0, len(data) - i - 80):len(data) - i + 40],
             "want: %r" % want[max(0, len(want) - i - 80):len(want) - i + 40])
        return []
    t.ok(True, "%s: delivered bytes end with exactly the bytes sent" % desc)
    fields, rest = split_message(data[:len(data) - len(want)] + b"\n")
    names = [k for k, _ in fields]
    t.ok(names == prepended and rest == b"", "%s: before them only %s" % (desc, "/".join(prepended)),
         "got: %r" % names, "head: %r" % data[:len(data) - len(want)][:1200])
    return [raw for _, raw in fields]


def smap_received(t, desc, raw, sid, rcpt):
    """rcpt: the recipient smap names (with one recipient only), or None."""
    rx = received_re("client.test", sid, rcpt=rcpt, client=CLIENT).replace(rb"\r\n", rb"\n")
    t.like(raw, rx, "%s: smap's Received: names the client [%s] and queue id %s" % (desc, CLIENT, sid))


def skip_all(t, why):
    for c in CASES:
        t.skip("%s: %s" % (c, why))


# --------------------------------------------------------------------------
# 1 and 4 over SMTP


def test_smtp(t, sm):
    msgs = [([at("s1")], mk("smtp-plain", at("s1"))),
            ([at("s1"), at("s2")], mk("smtp-dots", at("s1"), DOTS)),
            ([at("s2")], mk("smtp-eight", at("s2"), EIGHT))]
    with Server(t, name="smap-47s") as srv:
        d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % sm.port}, name="smapd-47s")
        t.is_(d.check()[0], 0, "smtp: smapd -t accepts smtp:[127.0.0.1]:%d" % sm.port)
        sids = send(srv, msgs)
        t.ok(all(sids), "smtp: smap queued all three messages", repr(sids))
        t.is_(d.once(flush=True), 0, "smtp: smapd -1 -f exits 0")
        want = [(r.split("@")[0], "<%s@b.example>" % tag) for tag, rs in
                (("smtp-plain", ["s1"]), ("smtp-dots", ["s1", "s2"]), ("smtp-eight", ["s2"])) for r in rs]
        t.ok(wait_mids(sm, want), "smtp: every copy reached the Sendmail mailboxes", sm.diag())
        got = {u: by_mid(sm, u) for u in ("s1", "s2")}
        t.is_({u: sorted((k, len(v)) for k, v in got[u].items()) for u in got},
              {"s1": [("<smtp-dots@b.example>", 1), ("<smtp-plain@b.example>", 1)],
               "s2": [("<smtp-dots@b.example>", 1), ("<smtp-eight@b.example>", 1)]},
              "smtp: each message once in each mailbox")
        for (rcpts, data), sid in zip(msgs, sids):
            tag = header(data, "Subject")
            for r in rcpts:
                u = r.split("@")[0]
                copy = (got[u].get(header(data, "Message-ID")) or [b""])[0]
                desc = "smtp: %s for %s" % (tag, u)
                raws = check_copy(t, sm, desc, copy, data, ["Return-Path", "Received", "Received"])
                if len(raws) == 3:
                    t.like(raws[0], rb"^Return-Path: <a@b\.example>\n$", "%s: Return-Path is the sender" % desc)
                    t.like(raws[1], rb"^Received: from " + re.escape(HOSTNAME.encode()) +
                           rb" \(localhost \[127\.0\.0\.1\]\)\n\tby backend\.test \(8\.17[^)]*\) with ESMTP id ",
                           "%s: Sendmail's Received: smapd's EHLO from 127.0.0.1" % desc)
                    smap_received(t, desc, raws[2], sid, r if len(rcpts) == 1 else None)
        log = "\n".join(smapd_log(srv))
        for sid in sids:
            t.like(log, r"smap/smtp\[\d+\]: %s: to=<[^>]+>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*dsn=2\.0\.0, "
                   r"status=sent \(250 2\.0\.0 [0-9A-Za-z]+ Message accepted for delivery\)" % (sid, sm.port),
                   "smtp: log: %s status=sent with Sendmail's reply" % sid)
        t.ok(wait_until(lambda: not queue_ids(srv) and not state_ids(srv), 5), "smtp: queue/ and state/ empty")
        t.is_(quarantined(srv), {}, "smtp: nothing quarantined")
        d.check_sanitizer()
    return sids


def test_xforward(t, sm):
    """Sendmail's EHLO reply has no XFORWARD, and smapd sent none."""
    s = smtplib.SMTP("127.0.0.1", sm.port, timeout=10)
    try:
        code, text = s.ehlo("probe.test")
    finally:
        s.quit()
    t.is_(code, 250, "xforward: Sendmail answers EHLO with 250")
    t.unlike(text.decode("latin-1"), r"(?im)^XFORWARD", "xforward: Sendmail's EHLO reply offers no XFORWARD")
    tr = sm.traffic()
    t.like(tr, r"(?m)^\d+ <<< EHLO %s\r?$" % re.escape(HOSTNAME), "xforward: the transcript has smapd's EHLO")
    t.unlike(tr, r"(?im)^\d+ <<< XFORWARD", "xforward: smapd sent no XFORWARD command")
    t.like(tr, r"(?m)^\d+ <<< \.\.leading dot\r?$", "dots: smapd dot-stuffed '.leading dot' on the wire")
    t.like(tr, r"(?m)^\d+ <<< MAIL FROM:<a@b\.example> SIZE=\d+ BODY=8BITMIME\r?$",
           "8-bit: smapd sent BODY=8BITMIME (Sendmail offers 8BITMIME)")
    t.like(sm.log(), r"from=<a@b\.example>, .*bodytype=8BITMIME", "8-bit: Sendmail logged bodytype=8BITMIME")


# --------------------------------------------------------------------------
# 2 and 4 through Sendmail's sendmail (the MSP)


def test_sendmail(t, sm):
    msgs = [([at("m1"), at("m2")], mk("msp-plain", at("m1"))),
            ([at("m1")], mk("msp-dots", at("m1"), DOTS)),
            ([at("m2")], mk("msp-eight", at("m2"), EIGHT))]
    st = os.stat(sm.sendmail)
    t.ok(st.st_mode & 0o7777 == 0o2755 and st.st_uid == 0 and st.st_gid == sm.smmsp[1],
         "sendmail: the private sendmail is root:smmsp 02755 (as Debian's postinst makes it)", oct(st.st_mode))
    with Server(t, name="smap-47m") as srv:
        d = Smapd(t, srv, conf={"default_transport": "sendmail", "sendmail_path": sm.sendmail}, name="smapd-47m")
        t.is_(d.check()[0], 0, "sendmail: smapd -t accepts default_transport = sendmail")
        sids = send(srv, msgs)
        t.ok(all(sids), "sendmail: smap queued all three messages", repr(sids))
        rc = d.once(flush=True, prefix=sm.ns_argv())
        t.ok(rc == 0, "sendmail: smapd -1 -f (in the instance's mount namespace) exits 0",
             "exit %r: %s" % (rc, d.stderr()[-800:]))
        want = [("m1", "<msp-plain@b.example>"), ("m2", "<msp-plain@b.example>"), ("m1", "<msp-dots@b.example>"),
                ("m2", "<msp-eight@b.example>")]
        t.ok(wait_mids(sm, want), "sendmail: every copy reached the mailboxes", sm.diag())
        got = {u: by_mid(sm, u) for u in ("m1", "m2")}
        t.is_({u: sorted((k, len(v)) for k, v in got[u].items()) for u in got},
              {"m1": [("<msp-dots@b.example>", 1), ("<msp-plain@b.example>", 1)],
               "m2": [("<msp-eight@b.example>", 1), ("<msp-plain@b.example>", 1)]},
              "sendmail: each message once in each mailbox")
        uid = smapd_ids()[0]
        for (rcpts, data), sid in zip(msgs, sids):
            tag = header(data, "Subject")
            for r in rcpts:
                u = r.split("@")[0]
                copy = (got[u].get(header(data, "Message-ID")) or [b""])[0]
                desc = "sendmail: %s for %s" % (tag, u)
                raws = check_copy(t, sm, desc, copy, data, ["Return-Path", "Received", "Received", "Received"])
                if len(raws) == 4:
                    t.like(raws[0], rb"^Return-Path: <a@b\.example>\n$", "%s: the envelope sender came through -f"
                           % desc)
                    t.like(raws[1], rb"^Received: from backend\.test \(localhost \[127\.0\.0\.1\]\)\n\tby backend"
                           rb"\.test \(8\.17[^)]*\) with ESMTP id ", "%s: the MTA's Received: (from the MSP)" % desc)
                    t.like(raws[2], rb"^Received: \(from smapd@localhost\)\n\tby backend\.test \(8\.17[^)]*/Submit\) "
                           rb"id ", "%s: the MSP's Received: says it ran as smap" % desc)
                    smap_received(t, desc, raws[3], sid, r if len(rcpts) == 1 else None)
                t.unlike(copy, rb"X-Authentication-Warning", "%s: no X-Authentication-Warning (smapd is trusted)"
                         % desc)
        log = "\n".join(smapd_log(srv))
        for (rcpts, _), sid in zip(msgs, sids):
            t.is_(len(re.findall(r"smap/pipe\[\d+\]: %s: to=<[^>]+>, relay=[^,]+, .*dsn=2\.0\.0, status=sent"
                                 % sid, log)), len(rcpts), "sendmail: log: %d status=sent for %s" % (len(rcpts), sid))
        slog = sm.log()
        t.is_(len(re.findall(r"from=a@b\.example, .*relay=smapd@localhost", slog)), len(msgs),
              "sendmail: the MSP took one submission per message, from smap")
        t.is_(len(re.findall(r"ctladdr=a@b\.example \(%d/%d\), .*mailer=relay, .*stat=Sent" % (uid, uid), slog)),
              len(msgs), "sendmail: the MSP ran as uid %d and relayed each message to the MTA" % uid)
        t.ok(wait_until(lambda: not sm.client_queue(), 5), "sendmail: the MSP's queue is empty again",
             repr(sm.client_queue()))
        t.ok(wait_until(lambda: not queue_ids(srv) and not state_ids(srv), 5), "sendmail: queue/ and state/ empty")
        t.is_(quarantined(srv), {}, "sendmail: nothing quarantined")
        d.check_sanitizer()


def test_no_new_privs(t, sm):
    """Why smapd leaves no_new_privs off for this transport: with it, the
    set-gid bit is ignored and the MSP cannot write its queue."""
    argv = sm.ns_argv("setpriv", "--reuid=smapd", "--regid=smapd", "--clear-groups", "--no-new-privs",
                      sm.sendmail, "-i", "-f", "a@b.example", "--", at("nnp"))
    p = subprocess.run(argv, input=mk("nnp", at("nnp")).replace(b"\r\n", b"\n"), capture_output=True, timeout=30)
    out = (p.stdout + p.stderr).decode("latin-1")
    t.ok(p.returncode != 0, "no_new_privs: Sendmail's sendmail fails without its set-gid group (exit %d)"
         % p.returncode, out[-500:])
    t.like(out, r"can not chdir\(/var/spool/mqueue-client/\): Permission denied",
           "no_new_privs: Sendmail says why: it cannot enter its queue directory")
    t.is_(sm.messages("nnp"), [], "no_new_privs: nothing was delivered")


# --------------------------------------------------------------------------
# 3: the access map


def dsn_for(sm, mid):
    return [x for x in sm.messages("sender") if mid.encode() in x[1] and b"multipart/report" in x[1]]


def check_dsn(t, sm, data):
    text = data.decode("latin-1")
    # Sendmail's local mailer writes the null sender as <MAILER-DAEMON> ($n)
    t.like(data, rb"^Return-Path: <MAILER-DAEMON>\n", "access: the DSN's Return-Path is Sendmail's null sender")
    mid = header(data, "Message-ID") or "?"
    t.like(sm.log(), r"from=<>, size=\d+, class=0, nrcpts=1, msgid=%s, proto=ESMTP" % re.escape(mid),
           "access: Sendmail logged MAIL FROM:<> for the DSN")
    m = email.message_from_bytes(data, policy=email.policy.compat32)
    t.is_(m.get_content_type(), "multipart/report", "access: the DSN is multipart/report")
    parts = m.get_payload() if m.is_multipart() else []
    t.is_([p.get_content_type() for p in parts], ["text/plain", "message/delivery-status", "text/rfc822-headers"],
          "access: the DSN has the three parts of RFC 3464")
    t.like(text, r"(?m)^Final-Recipient: rfc822; reject@backend\.test\r?\nAction: failed\r?\nStatus: 5\.7\.1\r?$",
           "access: DSN: reject@ failed with 5.7.1")
    t.like(text, r"(?m)^Diagnostic-Code: smtp; 127\.0\.0\.1\[127\.0\.0\.1\] said: 550 5\.7\.1 "
           r"<reject@backend\.test>\.\.\. rejected here \(in reply to RCPT TO command\)",
           "access: DSN: Sendmail's 550 as the Diagnostic-Code")
    for r in ("tempfail", "r1"):
        t.unlike(text, r"Final-Recipient: rfc822; %s@" % r, "access: DSN does not list %s" % r)


def test_access(t, sm):
    with Server(t, name="smap-47a") as srv:
        d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % sm.port}, name="smapd-47a")
        data = mk("access-1", at("r1"))
        sid, = send(srv, [([at("tempfail"), at("reject"), at("r1")], data)], sender=at("sender"))
        t.is_(d.once(flush=True), 0, "access: smapd -1 -f exits 0")
        log = "\n".join(smapd_log(srv, sid))
        t.like(log, r"to=<tempfail@backend\.test>, .*dsn=4\.2\.0, status=deferred \(.*450 4\.2\.0 "
               r"<tempfail@backend\.test>\.\.\. try later.*\)", "access: tempfail@ deferred with Sendmail's 450 4.2.0")
        t.like(log, r"to=<reject@backend\.test>, .*dsn=5\.7\.1, status=bounced \(.*550 5\.7\.1 "
               r"<reject@backend\.test>\.\.\. rejected here.*\)", "access: reject@ bounced with Sendmail's 550 5.7.1")
        t.like(log, r"to=<r1@backend\.test>, .*status=sent", "access: r1@ delivered")
        st = state(srv, sid) or {"rcpt": {}, "raw": ""}
        t.is_({i: v[:2] for i, v in st["rcpt"].items()},
              {0: ("deferred", "4.2.0"), 1: ("returned", "5.7.1"), 2: ("sent", "2.0.0")},
              "access: state: tempfail deferred, reject returned, r1 sent")
        t.is_(st.get("attempts"), 1, "access: state: attempts 1")
        t.is_(queue_ids(srv), [sid], "access: the message stays queued for tempfail@")
        m = re.search(r"smap/bounce\[\d+\]: %s: sender non-delivery notification: ([0-9A-F]+)" % sid, log)
        t.ok(m, "access: a DSN for reject@ at once, while tempfail@ waits", log)
        t.ok(wait_until(lambda: "<access-1@b.example>" in by_mid(sm, "r1"), 10), "access: r1 got its copy",
             sm.diag())
        # the next run delivers the DSN; tempfail@ is not due yet
        t.is_(d.once(flush=False), 0, "access: second smapd -1 (not forced) exits 0")
        got = wait_until(lambda: dsn_for(sm, "<access-1@b.example>"), 10)
        t.ok(len(got or []) == 1, "access: exactly one DSN reached sender@ at Sendmail",
             "got %d" % len(got or []), sm.diag())
        if got:
            check_dsn(t, sm, got[0][1])
        if m:
            t.like("\n".join(smapd_log(srv, m.group(1))), r"to=<sender@backend\.test>, .*status=sent",
                   "access: the DSN went out over the SMTP transport")
        st = state(srv, sid) or {"rcpt": {}, "raw": ""}
        t.ok(st["rcpt"].get(0, ("",))[0] == "deferred" and st.get("attempts") == 1,
             "access: tempfail@ is still deferred, not tried again before it is due", st["raw"])
        t.is_(queue_ids(srv), [sid], "access: only the deferred message is left in queue/")
        t.is_([u for u in ("tempfail", "reject") if sm.messages(u)], [], "access: nothing for tempfail@ or reject@")
        t.like(sm.log(), r"ruleset=check_rcpt, arg1=<tempfail@backend\.test>, .*reject=450 4\.2\.0",
               "access: Sendmail logged its 450 from the access map")
        t.is_(quarantined(srv), {}, "access: nothing quarantined")
        d.check_sanitizer()


# What the instance must leave alone on the host.
HOST_ABSENT = ("/etc/mail", "/var/spool/mqueue", "/var/spool/mqueue-client", "/run/sendmail", "/var/lib/sendmail")
HOST_FILES = ("/etc/hosts", "/etc/resolv.conf")
HOST_IDS = ("/etc/passwd", "/etc/group")     # others may add users meanwhile


def host_view():
    """(which of HOST_ABSENT exist, digests of HOST_FILES and the smmsp
    lines of HOST_IDS, which of sendmail-bin and postfix are installed)."""
    digests = {}
    for f in HOST_FILES + HOST_IDS:
        try:
            with open(f, "rb") as fh:
                data = fh.read()
        except OSError:
            data = None
        if data is not None and f in HOST_IDS:
            data = b"".join(l for l in data.splitlines(True) if l.startswith(b"smmsp:"))
        digests[f] = hashlib.sha256(data).hexdigest() if data is not None else None
    p = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Status}\n", "sendmail-bin", "postfix"],
                       capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    installed = sorted(l.split()[0] for l in p.stdout.decode().splitlines() if l.endswith("install ok installed"))
    return [x for x in HOST_ABSENT if os.path.lexists(x)], digests, installed


def main(t):
    why = Sendmail.skip()
    if why:
        skip_all(t, why)
        return
    before = host_view()
    try:
        run(t)
    finally:
        after = host_view()
        t.is_(after[0], before[0], "the host has no /etc/mail, mqueue or /run/sendmail it did not have before")
        t.ok(after[1] == before[1], "the host's hosts and resolv.conf are unchanged, no smmsp in its passwd or group",
             repr(before[1]), repr(after[1]))
        t.is_(after[2], ["postfix"], "postfix is still installed, sendmail-bin is not")


def run(t):
    sm = Sendmail(t, access=ACCESS, name="sendmail-47")
    try:
        sm.start()
    except Exception as e:  # noqa: BLE001 - Sendmail did not start: its words are the diagnostics
        t.ok(False, "a private Sendmail starts and listens on 127.0.0.1", str(e))
        sm.stop()
        return
    try:
        t.ok(True, "a private Sendmail %s listens on 127.0.0.1:%d" % (sm.version, sm.port))
        t.run("smtp", test_smtp, t, sm)
        t.run("xforward", test_xforward, t, sm)
        t.run("sendmail", test_sendmail, t, sm)
        t.run("no_new_privs", test_no_new_privs, t, sm)
        t.run("access", test_access, t, sm)
        t.ok(sm.alive(), "Sendmail is still running at the end", sm.diag())
    finally:
        sm.stop()
    t.like(sm.log(), r"sendmail\[1\]: NOQUEUE: stopping daemon, reason=signal",
           "Sendmail stopped on SIGTERM to its PID")
    left = pidns_members(sm.pidns) if sm.pidns else None
    t.is_(left, [], "no process is left in Sendmail's PID namespace")


if __name__ == "__main__":
    TAP(watchdog=90).main(main)
