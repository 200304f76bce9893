#!/usr/bin/env python3
# 52-smapd-xforward.t - XFORWARD to a real Postfix that has no IPv6
# (inet_protocols = ipv4) and lets smapd's address use XFORWARD
# (smtpd_authorized_xforward_hosts = 127.0.0.0/8).
#
# An IPv4 client's XFORWARD is taken (Postfix logs an orig_client). A
# client that reached smap
# over ::1 gets "501 5.5.4 Bad ADDR syntax: IPV6:::1": smapd delivers
# all the same, warns once with that reply, sends no XFORWARD for the
# next message on the connection, and leaves no reply unread (no "sent
# more replies than commands"). With smtp_send_xforward_command = no,
# smapd sends no XFORWARD although it is offered. Postfix logs every
# command it reads from 127.0.0.1 (debug_peer_list), so what smapd sent
# is read from Postfix's own log, and its per-session summary
# ("disconnect from ... xforward=0/1 mail=2 ...") counts the commands.
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server  # noqa: E402
from postfix import Postfix, DOMAIN, header  # noqa: E402
from smapdtest import Smapd, send, queue_ids, smapd_log  # noqa: E402

PEER = r"unknown\[127\.0\.0\.1\]"
CMD = r"postfix/smtpd\[\d+\]: < " + PEER + r": "     # a command Postfix read
REPLY = r"postfix/smtpd\[\d+\]: > " + PEER + r": "   # a reply it sent
XF_WARN = (r"warning: %s: 127\.0\.0\.1\[127\.0\.0\.1\] refused XFORWARD: 501 5\.5\.4 Bad ADDR syntax: "
           r"IPV6:::1; going on without it on this connection$")


def mk(n):
    return (b"From: <a@b.example>\r\nTo: <a@" + DOMAIN.encode() + b">\r\nSubject: xforward %d\r\n"
            b"Message-ID: <xf-%d@b.example>\r\n\r\nbody %d\r\n" % (n, n, n))


def delivered(pf, n):
    """Is message n in a's Maildir (waiting a little for it)?"""
    want = "<xf-%d@b.example>" % n
    pf.wait_messages("a", n)
    return any(header(data, "Message-ID") == want for _, data in pf.messages("a"))


def summary(log):
    """Postfix's command counts for the sessions in log."""
    return re.findall(r"disconnect from " + PEER + r" (.*)$", log, re.M)


class Run:
    """One smapd -1 against pf; what Postfix logged during it."""

    def __init__(self, t, srv, pf, name, conf=None):
        self.before = len(pf.log())
        self.disc = pf.log().count("disconnect from unknown[127.0.0.1]")
        c = {"default_transport": "smtp:[127.0.0.1]:%d" % pf.port, "default_destination_concurrency_limit": "1"}
        c.update(conf or {})
        self.rc = Smapd(t, srv, conf=c, name=name).once()
        # smapd QUITs as it exits; Postfix logs the disconnect last
        pf.wait_log(r"disconnect from unknown\[127\.0\.0\.1\]", timeout=10, count=self.disc + 1)
        self.log = pf.log()[self.before:]


def test_postfix_conf(t, pf):
    t.like(pf.postconf_n, r"(?m)^inet_protocols = ipv4$", "Postfix under test: inet_protocols = ipv4")
    t.like(pf.postconf_n, r"(?m)^smtpd_authorized_xforward_hosts = 127\.0\.0\.0/8$",
           "Postfix under test: XFORWARD allowed for 127.0.0.0/8")


def test_ipv4_taken(t, srv, pf):
    """The control: over IPv4, Postfix takes smapd's XFORWARD."""
    sent = send(srv, [(["a@" + DOMAIN], mk(1))])
    r = Run(t, srv, pf, "smapd-52a")
    t.is_(r.rc, 0, "IPv4 client: smapd -1 exits 0")
    t.ok(delivered(pf, 1), "IPv4 client: delivered")
    t.is_(summary(r.log), ["ehlo=1 xforward=1 mail=1 rcpt=1 data=1 quit=1 commands=6"],
          "IPv4 client: Postfix took XFORWARD")
    t.like(r.log, CMD + r"XFORWARD HELO=client\.test ADDR=127\.0\.0\.1 PORT=\d+ PROTO=ESMTP", "IPv4 client: "
           "XFORWARD with ADDR=127.0.0.1")
    t.like(r.log, r"(?m)postfix/smtpd\[\d+\]: [0-9A-F]+: client=%s, orig_queue_id=%s, orig_client=unknown"
           r"\[127\.0\.0\.1\]$" % (PEER, sent[0][0]), "IPv4 client: Postfix logs the forwarded client and queue id")
    t.unlike("\n".join(smapd_log(srv, sent[0][0])), r"warning", "IPv4 client: no warning from smapd")


def test_ipv6_refused(t, srv, pf):
    """Over ::1, then over IPv4, one queue run, one connection."""
    first = send(srv, [(["a@" + DOMAIN], mk(2))], host="::1")
    second = send(srv, [(["a@" + DOMAIN], mk(3))])
    sids = [first[0][0], second[0][0]]
    t.like(srv.log(), r"(?m)smap/smtpd\[\d+\]: %s: client=unknown\[::1\]" % sids[0],
           "smap took the first message from ::1")
    r = Run(t, srv, pf, "smapd-52b")
    t.is_(r.rc, 0, "IPv6 client: smapd -1 exits 0")
    t.is_(queue_ids(srv), [], "IPv6 client: the queue is empty: nothing deferred")
    log = "\n".join(smapd_log(srv))
    for sid in sids:
        t.like(log, r"(?m)smap/smtp\[\d+\]: %s: to=<a@%s>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*status=sent "
               r"\(250 2\.0\.0 Ok: queued as [0-9A-Z]+\)$" % (sid, re.escape(DOMAIN), pf.port),
               "IPv6 client: %s status=sent" % sid)
    t.is_(len(re.findall(XF_WARN % sids[0], log, re.M)), 1,
          "IPv6 client: one warning that XFORWARD was refused, with Postfix's reply")
    t.unlike(log, r"more replies than commands", "IPv6 client: no 'sent more replies than commands'")
    t.like(r.log, CMD + r"XFORWARD HELO=client\.test ADDR=IPV6:::1 PORT=\d+ PROTO=ESMTP",
           "IPv6 client: smapd sent XFORWARD ADDR=IPV6:::1")
    t.like(r.log, REPLY + r"501 5\.5\.4 Bad ADDR syntax: IPV6:::1", "IPv6 client: Postfix refused it with 501")
    t.is_(summary(r.log), ["ehlo=1 xforward=0/1 mail=2 rcpt=2 data=2 quit=1 commands=8/9"],
          "one connection: XFORWARD refused once, not sent for the second message; both went")
    t.ok(delivered(pf, 2) and delivered(pf, 3), "IPv6 client: both messages delivered")
    t.like(r.log, r"(?m)postfix/smtpd\[\d+\]: [0-9A-F]+: client=%s$" % PEER,
           "Postfix logged the message from smapd itself")
    t.unlike(r.log, r"orig_client=", "Postfix applied no forwarded client to either message")


def test_off(t, srv, pf):
    """smtp_send_xforward_command = no: offered, never sent."""
    send(srv, [(["a@" + DOMAIN], mk(4))])
    r = Run(t, srv, pf, "smapd-52c", conf={"smtp_send_xforward_command": "no"})
    t.is_(r.rc, 0, "smtp_send_xforward_command = no: smapd -1 exits 0")
    t.like(r.log, REPLY + r"250-XFORWARD ", "smtp_send_xforward_command = no: Postfix offered XFORWARD")
    t.unlike(r.log, CMD + r"XFORWARD", "smtp_send_xforward_command = no: no XFORWARD command sent")
    t.like(r.log, CMD + r"MAIL FROM:", "smtp_send_xforward_command = no: the message went (MAIL FROM)")
    t.is_(summary(r.log), ["ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"],
          "smtp_send_xforward_command = no: Postfix counted no XFORWARD")
    t.ok(delivered(pf, 4), "smtp_send_xforward_command = no: delivered")


def main(t):
    main_cf = {"smtpd_authorized_xforward_hosts": "127.0.0.0/8", "debug_peer_list": "127.0.0.1"}
    with Postfix(t, users=("a",), main=main_cf, name="postfix-52") as pf:
        with Server(t, name="smap-52", listen=("127.0.0.1", "::1")) as srv:
            t.run("postfix config", test_postfix_conf, t, pf)
            t.run("ipv4 taken", test_ipv4_taken, t, srv, pf)
            t.run("ipv6 refused", test_ipv6_refused, t, srv, pf)
            t.run("xforward off", test_off, t, srv, pf)


if __name__ == "__main__":
    TAP(watchdog=80).main(main)
