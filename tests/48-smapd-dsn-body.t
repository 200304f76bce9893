#!/usr/bin/env python3
# 48-smapd-dsn-body.t - a DSN declares the body type of what it contains
# (smapd/bounce.c): it returns the original's header, so an 8-bit header
# makes it 8BIT (MAIL FROM:<> BODY=8BITMIME, and the header part says
# Content-Transfer-Encoding: 8bit), while a pure-ASCII DSN stays 7BIT,
# also when only the original's body was 8-bit.
#
# Three messages through smap to a recipient the scripted server
# (tests/lib/smtpfake.py) refuses with 550; smapd bounces each and sends
# the DSNs, in the same run, to that server, which records every
# transaction's MAIL FROM line and bytes.
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server  # noqa: E402
from smapdtest import Smapd, send, queue_ids, state_ids, quarantined, smapd_log  # noqa: E402
from smtpfake import FakeSMTP  # noqa: E402

GONE = "gone@backend.test"
CASES = [
    # (sender, Subject bytes, body bytes, DSN 8-bit?)
    ("s8h@b.example", b"caf\xc3\xa9 au lait", b"plain body\r\n", True),
    ("s7@b.example", b"plain ascii", b"plain body\r\n", False),
    ("s8b@b.example", b"ascii header", b"8-bit body only: na\xc3\xafve\r\n", False),
]


def mk(sender, subject, body):
    tag = sender.split("@")[0]
    return (b"From: " + sender.encode() + b"\r\nTo: " + GONE.encode() + b"\r\nSubject: " + subject +
            b"\r\nMessage-ID: <dsn-" + tag.encode() + b"@b.example>\r\n\r\n" + body)


def dsn_of(fs, sender):
    """The transactions to sender with the null sender."""
    out = []
    for sess in fs.sessions:
        for x in sess["transactions"]:
            if x["mail"].startswith(b"MAIL FROM:<>") and x["rcpt"] == [b"RCPT TO:<%s>" % sender.encode()]:
                out.append(x)
    return out


def main(t):
    refuse = {GONE.encode(): b"550 5.1.1 <gone@backend.test>: Recipient address rejected"}
    with Server(t, name="smap-48") as srv, FakeSMTP(t, None, None, starttls=None, rcpt_reply=refuse) as fs:
        sent = send(srv, [([GONE], (s, mk(s, subj, body))) for s, subj, body, _ in CASES])
        t.is_(len(sent), len(CASES), "smap queued %d messages" % len(CASES))
        d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % fs.port}, name="smapd-48")
        t.is_(d.once(flush=True), 0, "smapd -1 -f exits 0")
        plain = [c for sess in fs.sessions for c in sess["plain"]]
        for (sender, subj, body, dsn8), (sid, _) in zip(CASES, sent):
            orig8 = any(c > 127 for c in subj + body)
            mail = [c for c in plain if c.startswith(b"MAIL FROM:<%s>" % sender.encode())]
            t.is_([bool(re.search(rb" BODY=8BITMIME\b", c)) for c in mail], [orig8],
                  "%s: the original went out %s" % (sender, "with BODY=8BITMIME" if orig8 else "as 7BIT"))
            t.like("\n".join(smapd_log(srv, sid)), r"smap/bounce\[\d+\]: %s: sender non-delivery "
                   r"notification: [0-9A-F]+" % sid, "%s: the 550 made a DSN" % sender)
            got = dsn_of(fs, sender)
            t.ok(len(got) == 1, "%s: one DSN reached the server" % sender, repr(plain)[-800:])
            if not got:
                continue
            x = got[0]
            has8 = bool(re.search(rb" BODY=8BITMIME\b", x["mail"]))
            t.is_(has8, dsn8, "%s: DSN sent as %r (%s)" % (sender, x["mail"], "8-bit header attached"
                                                          if dsn8 else "pure ASCII"))
            t.is_(any(c > 127 for c in x["data"]), dsn8, "%s: the DSN %s 8-bit bytes" %
                  (sender, "holds" if dsn8 else "holds no"))
            cte = re.search(rb"Content-Type: text/rfc822-headers\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
                            x["data"]) is not None
            t.is_(cte, dsn8, "%s: the header part %s Content-Transfer-Encoding: 8bit" %
                  (sender, "says" if dsn8 else "has no"))
            t.ok(b"\r\nSubject: " + subj + b"\r\n" in x["data"] and b"<dsn-" in x["data"],
                 "%s: the original Subject is attached byte for byte" % sender)
            t.ok(body not in x["data"], "%s: the original body is not in the DSN" % sender)
        t.ok(not queue_ids(srv) and not state_ids(srv), "queue/ and state/ empty: DSNs sent, originals removed",
             "queue: %r state: %r" % (queue_ids(srv), state_ids(srv)))
        t.is_(quarantined(srv), {}, "nothing quarantined")
        d.check_sanitizer()


if __name__ == "__main__":
    TAP(watchdog=60).main(main)
