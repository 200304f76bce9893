#!/usr/bin/env python3
# 41-smapd-retry.t - smapd against a backend that is down, that answers
# 4xx or 5xx to some recipients, or that stays down past
# maximal_queue_lifetime: per-recipient state, backoff, retries that
# never re-send to recipients that already accepted, DSNs that reach the
# sender at a real Postfix, and null-sender bounces that go to quarantine.
# Two delivery processes over eight messages, sent and deferred in turn:
# a reservation in state/ that a sent message left unused is renamed for
# the process's next message (fewer made than messages), and every
# deferred message's state is whole, with nothing else left in state/;
# when they are delivered, each state file goes only after the fsync of
# queue/ that makes its message's removal durable.
import email
import email.policy
import os
import re
import shutil
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, free_port, listening  # noqa: E402
from postfix import Postfix, DOMAIN, header  # noqa: E402
from smapdtest import (Smapd, send, queue_ids, state_ids, state, quarantined,  # noqa: E402
                       smapd_log, wait_until, listdir)

USERS = ("a", "b", "r1", "r2", "r3", "sender")
STRACE = shutil.which("strace") or "/usr/bin/strace"


def at(u):
    return "%s@%s" % (u, DOMAIN)


def mk(n, subject, body=b"retry test body\r\n", sender="a@b.example"):
    return (b"From: " + sender.encode() + b"\r\nTo: someone@backend.test\r\n"
            b"Date: Mon, 23 Nov 2026 05:00:00 +0000\r\nSubject: " + subject.encode() +
            b"\r\nMessage-ID: <retry-%d@b.example>\r\n\r\n" % n + body)


def count_mid(pf, user, n):
    return sum(1 for _, d in pf.messages(user) if header(d, "Message-ID") == "<retry-%d@b.example>" % n)


def log_lines(srv, sid, regex):
    return [l for l in smapd_log(srv, sid) if re.search(regex, l)]


def empty_queue(t, srv, desc):
    t.ok(wait_until(lambda: not queue_ids(srv) and not state_ids(srv), 5),
         "%s: queue/ and state/ empty" % desc, "queue: %s state: %s" % (queue_ids(srv), state_ids(srv)))


# --------------------------------------------------------------------------

def test_down(t, srv, port):
    """Backend down: deferred with 4.4.1, state shows attempts and next."""
    d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % port,
                            "minimal_backoff_time": "60s", "maximal_backoff_time": "100s",
                            "queue_run_delay": "60s"}, name="smapd-down")
    with d:
        d.start()
        sent = send(srv, [([at("a")], mk(1, "down one")), ([at("a"), at("b")], mk(2, "down two"))])
        ids = [s for s, _ in sent]
        want = [(ids[0], at("a")), (ids[1], at("a")), (ids[1], at("b"))]
        ok = wait_until(lambda: all(log_lines(srv, s, r"to=<%s>.*status=deferred" % re.escape(r))
                                    for s, r in want), 20)
        # the state is written after the log lines (and fsync'd): wait for it
        wait_until(lambda: all(state(srv, s) for s in ids), 10)
        t.ok(ok, "backend down: one status=deferred line per recipient", "\n".join(smapd_log(srv)))
        for s, r in want:
            ls = log_lines(srv, s, r"to=<%s>" % re.escape(r))
            t.like("\n".join(ls), r"smap/smtp\[\d+\]: %s: to=<%s>, relay=[^,]*, delay=[\d.]+, delays=[\d./]+, "
                   r"dsn=4\.4\.1, status=deferred \(.*(refused|connect).*\)" % (s, re.escape(r)),
                   "backend down: %s to=<%s> dsn=4.4.1 status=deferred (connect ...)" % (s, r))
        now = time.time()
        t.is_(queue_ids(srv), sorted(ids), "backend down: both messages stay in queue/")
        for s, n in zip(ids, (1, 2)):
            st = state(srv, s)
            t.ok(st is not None, "backend down: state/%s exists" % s)
            if st is None:
                continue
            t.is_(st.get("attempts"), 1, "backend down: state/%s attempts 1" % s)
            nxt = st.get("next", 0)
            t.ok(now + 50 <= nxt <= now + 61, "backend down: state/%s next attempt about "
                 "minimal_backoff_time (60s) from now" % s, "next - now = %.1f" % (nxt - now))
            t.is_(sorted(st["rcpt"]), list(range(n)), "backend down: state/%s has a line per recipient" % s)
            t.ok(all(v[0] == "deferred" and v[1] == "4.4.1" for v in st["rcpt"].values()),
                 "backend down: state/%s: every recipient 'deferred 4.4.1'" % s, st["raw"])
        d.stop()
    # not due yet: a plain run (no -f) must not try again
    nlines = len(smapd_log(srv))
    rc = d.once(flush=False)
    t.is_(rc, 0, "smapd -1 (not due) exits 0")
    new = [l for l in smapd_log(srv)[nlines:] if "status=" in l]
    t.is_(new, [], "smapd -1 before the next time: no attempt made (backoff honoured)")
    t.is_(state(srv, ids[0]).get("attempts"), 1, "smapd -1 before the next time: attempts still 1")
    # two more while smapd is stopped, then one forced run for all four
    more = send(srv, [([at("a")], mk(10, "down three")), ([at("b")], mk(11, "down four"))])
    ids += [s for s, _ in more]
    nlines = len(smapd_log(srv))
    rc = d.once(flush=True)
    t.is_(rc, 0, "smapd -1 -f (still down, four queued) exits 0")
    now = time.time()
    new = smapd_log(srv)[nlines:]
    st = state(srv, ids[0]) or {}
    t.is_(st.get("attempts"), 2, "second forced attempt: attempts 2")
    t.ok(now + 90 <= st.get("next", 0) <= now + 101, "second attempt: next about maximal_backoff_time "
         "(2*60s capped at 100s)", "next - now = %.1f" % (st.get("next", 0) - now))
    for sid, att in zip(ids, (2, 2, 1, 1)):
        tried = [l for l in new if (": %s: to=" % sid) in l and "dsn=4.4.1, status=deferred" in l]
        st = state(srv, sid) or {}
        t.ok(tried and st.get("attempts") == att,
             "one forced run, backend down, four messages: %s gets a status=deferred dsn=4.4.1 line and "
             "state attempts %d (Postfix defers every message behind a dead destination)" % (sid, att),
             "lines of this run: %r" % new, "state: %r" % st.get("raw"))
    return ids


def test_up(t, srv, port, ids):
    """The backend comes up on the same port: -1 -f delivers and removes."""
    with Postfix(t, users=USERS, port=port, name="postfix-up") as pf:
        d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % port}, name="smapd-up")
        rc = d.once(flush=True)
        t.is_(rc, 0, "backend up: smapd -1 -f exits 0")
        pf.wait_idle(5)
        a = pf.wait_messages("a", 3, 5)
        got = (count_mid(pf, "a", 1), count_mid(pf, "a", 2), count_mid(pf, "b", 2),
               count_mid(pf, "a", 10), count_mid(pf, "b", 11))
        t.ok(got == (1, 1, 1, 1, 1), "backend up: each recipient got exactly one copy",
             "got %r" % (got,), repr([n for n, _ in a]))
        for s in ids:
            t.like("\n".join(smapd_log(srv, s)), r"smap/qmgr\[\d+\]: %s: removed" % s, "backend up: %s removed" % s)
        empty_queue(t, srv, "backend up")
        d.check_sanitizer()


def test_per_rcpt(t, srv, pf):
    """450 for one of three recipients: only that one is tried again."""
    pf.set_access({"r2": "450 4.2.0 try later"})
    d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % pf.port}, name="smapd-rcpt")
    (sid, _), = send(srv, [([at("r1"), at("r2"), at("r3")], mk(3, "three recipients"))])
    rc = d.once(flush=True)
    t.is_(rc, 0, "450 for r2: smapd -1 -f exits 0")
    pf.wait_messages("r1", 1, 5)
    pf.wait_messages("r3", 1, 5)
    pf.wait_idle(5)
    t.is_((count_mid(pf, "r1", 3), count_mid(pf, "r2", 3), count_mid(pf, "r3", 3)), (1, 0, 1),
          "first attempt: r1 and r3 got it, r2 did not")
    t.is_(queue_ids(srv), [sid], "first attempt: the message stays queued for r2")
    st = state(srv, sid) or {"rcpt": {}, "raw": ""}
    r = st["rcpt"]
    t.ok(r.get(0, ("",))[0] == "sent" and r.get(2, ("",))[0] == "sent",
         "state: r1 and r3 recorded as sent", st["raw"])
    t.ok(r.get(1, ("", ""))[:2] == ("deferred", "4.2.0") and "450 4.2.0" in r.get(1, ("", "", ""))[2],
         "state: r2 deferred 4.2.0 with Postfix's reply", st["raw"])
    t.is_(st.get("attempts"), 1, "state: attempts 1")
    t.like("\n".join(smapd_log(srv, sid)), r"to=<r2@backend\.test>, .*dsn=4\.2\.0, status=deferred "
           r"\(.*450 4\.2\.0 <r2@backend\.test>.*\)", "log: r2 deferred with 4.2.0 and the 450 text")
    # Postfix now takes r2
    t.ok(pf.set_access({}), "Postfix reloaded with r2 accepted")
    before = len(re.findall(r"postfix/smtpd\[\d+\]: [0-9A-F]+: client=", pf.log()))
    rc = d.once(flush=True)
    t.is_(rc, 0, "second attempt: smapd -1 -f exits 0")
    pf.wait_messages("r2", 1, 5)
    pf.wait_idle(5)
    time.sleep(0.3)
    t.is_((count_mid(pf, "r1", 3), count_mid(pf, "r2", 3), count_mid(pf, "r3", 3)), (1, 1, 1),
          "second attempt: r2 got its copy; r1 and r3 still exactly one each")
    plog = pf.log()
    t.is_(len(re.findall(r"postfix/smtpd\[\d+\]: [0-9A-F]+: client=", plog)) - before, 1,
          "second attempt: one transaction at Postfix")
    disc = re.findall(r"postfix/smtpd\[\d+\]: disconnect from \S+ (.*)$", plog, re.M)
    t.like(disc[-1] if disc else "", r"\brcpt=1\b", "second attempt: that session had exactly one RCPT (r2)")
    ls = log_lines(srv, sid, r"status=sent")
    t.is_(sorted(re.findall(r"to=<(r\d)@", "\n".join(ls))), ["r1", "r2", "r3"],
          "log: one status=sent line per recipient over both attempts")
    empty_queue(t, srv, "per-recipient")


def check_dsn(t, desc, data, status, rcpts, orig_subject, orig_mid, not_rcpts=(), diag_re=None):
    t.like(data, rb"^Return-Path: <>\n", "%s: the DSN has the null sender (Return-Path: <>)" % desc)
    m = email.message_from_bytes(data, policy=email.policy.compat32)
    t.is_(m.get_content_type(), "multipart/report", "%s: Content-Type multipart/report" % desc)
    t.is_(m.get_param("report-type"), "delivery-status", "%s: report-type=delivery-status" % desc)
    parts = m.get_payload() if m.is_multipart() else []
    types = [p.get_content_type() for p in parts]
    t.is_(types, ["text/plain", "message/delivery-status", "text/rfc822-headers"],
          "%s: the three parts of RFC 3464" % desc)
    text = data.decode("latin-1")
    for r in rcpts:
        t.like(text, r"(?m)^Final-Recipient: rfc822; %s\r?$" % re.escape(r), "%s: Final-Recipient %s" % (desc, r))
    for r in not_rcpts:
        t.unlike(text, r"Final-Recipient: rfc822; %s" % re.escape(r), "%s: no Final-Recipient for %s" % (desc, r))
    t.like(text, r"(?m)^Action: failed\r?$", "%s: Action: failed" % desc)
    t.like(text, r"(?m)^Status: %s\r?$" % re.escape(status), "%s: Status: %s" % (desc, status))
    if diag_re:
        t.like(text, r"(?m)^Diagnostic-Code: smtp; .*%s" % diag_re, "%s: Diagnostic-Code says why" % desc)
    hdrs = parts[2].get_payload() if len(parts) == 3 else ""
    hdrs = hdrs if isinstance(hdrs, str) else ""
    t.like(hdrs, r"(?m)^Subject: %s\r?$" % re.escape(orig_subject), "%s: original Subject attached" % desc)
    t.like(hdrs, r"(?m)^Message-ID: %s\r?$" % re.escape(orig_mid), "%s: original Message-ID attached" % desc)
    t.like(hdrs, r"(?m)^Received: from client\.test", "%s: smap's Received attached" % desc)
    t.unlike(hdrs, r"retry test body", "%s: the original body is not attached" % desc)


def dsn_for(pf, mid):
    out = []
    for name, data in pf.messages("sender"):
        if mid.encode() in data and b"multipart/report" in data:
            out.append(data)
    return out


def test_spare(t, srv, pf):
    """Sent and deferred messages in turn through two delivery processes:
    the reservations reused, the deferred states whole."""
    pf.set_access({"r2": "450 4.2.0 try later"})
    d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % pf.port,
                            "default_destination_concurrency_limit": "2"}, name="smapd-spare")
    rcpts = [[at("r1")] if i % 2 == 0 else [at("r2")] for i in range(7)] + [[at("r1"), at("r2"), at("r3")]]
    ids = [sid for sid, _ in send(srv, [(r, mk(40 + i, "spare %d" % i)) for i, r in enumerate(rcpts)])]
    trace = os.path.join(srv.dir, "spare1")
    os.mkdir(trace)
    rc = d.once(flush=True, prefix=[STRACE, "-f", "-ff", "-y", "-o", os.path.join(trace, "t"),
                                    "-e", "trace=openat,renameat,renameat2"])
    t.is_(rc, 0, "spare: smapd -1 -f under strace exits 0")
    deferred = ids[1::2]
    t.is_(sorted(queue_ids(srv)), sorted(deferred), "spare: the four messages with r2 stay queued")
    t.is_(sorted(state_ids(srv)), sorted(deferred), "spare: state/ holds their states and nothing else")
    for sid in deferred:
        r = (state(srv, sid) or {"rcpt": {}})["rcpt"]
        t.ok(any(v[:2] == ("deferred", "4.2.0") for v in r.values()), "spare: state/%s says r2 deferred 4.2.0" % sid,
             r)
    # Per process, in order: the messages it locked, the reservations it
    # made and the ones it renamed. A delivery process that sent a message
    # renames that one's reservation for its next; the run's own process
    # (pickup: it opens new/) keeps none.
    sent, want, got, parent_moves = set(ids[0::2]) - set(deferred), [], [], []
    for name in os.listdir(trace):
        with open(os.path.join(trace, name), errors="replace") as f:
            text = f.read()
        locked = re.findall(r'openat\(\d+</[^>]*/queue>, "([0-9A-F]+)", O_RDONLY', text)
        moves = re.findall(r'rename(?:at2?)?\(\d+</[^>]*/state>, "([0-9A-F]+)\.tmp", \d+</[^>]*/state>, '
                           r'"([0-9A-F]+)\.tmp"', text)
        if re.search(r'openat\(\d+</[^>]*/new>', text):
            parent_moves += moves
            continue
        want += [(a, b) for a, b in zip(locked, locked[1:]) if a in sent]
        got += moves
    t.ok(sorted(got) == sorted(want) and not parent_moves, "spare: each delivery process renamed a sent "
         "message's reservation for its next message, and only then (%d renamed); the run's own process, "
         "none" % len(got), sorted(got), sorted(want), parent_moves)
    t.ok(pf.set_access({}), "spare: Postfix reloaded with r2 accepted")
    tdir = os.path.join(srv.dir, "spare2")
    os.mkdir(tdir)
    t.is_(d.once(flush=True, prefix=[STRACE, "-f", "-ff", "-ttt", "-T", "-y", "-o", os.path.join(tdir, "t"),
                                     "-e", "trace=fsync,unlinkat"]), 0, "spare: the next run exits 0")
    calls = []  # one file per process (-ff): no call split across lines
    for name in os.listdir(tdir):
        with open(os.path.join(tdir, name), errors="replace") as f:
            for line in f:
                m = re.match(r"^(\d+\.\d+) (\w+)\((\d+<[^>]*>)(.*)\) += (-?\d+).* <([\d.]+)>$", line.rstrip())
                if m:
                    a = float(m.group(1))
                    calls.append((a, a + float(m.group(6)), m.group(2), m.group(3), m.group(4), int(m.group(5))))
    qsync = [(c[0], c[1]) for c in calls if c[2] == "fsync" and c[3].endswith("/queue>") and c[5] == 0]
    for sid in deferred:
        gone = [c for c in calls if c[2] == "unlinkat" and c[3].endswith("/queue>") and '"%s"' % sid in c[4] and
                c[5] == 0]
        st_gone = [c for c in calls if c[2] == "unlinkat" and c[3].endswith("/state>") and '"%s"' % sid in c[4] and
                   c[5] == 0]
        t.ok(gone and st_gone and any(a >= gone[0][1] and b <= st_gone[0][0] for a, b in qsync),
             "spare: %s's state file is removed only after an fsync of queue/ that follows its removal" % sid,
             gone[:1], st_gone[:1])
    pf.wait_idle(5)
    t.is_([count_mid(pf, "r1", 40 + i) for i in range(0, 8, 2)], [1, 1, 1, 1],
          "spare: r1 got each of its messages once")
    t.is_([count_mid(pf, "r2", 40 + i) for i in range(1, 8, 2)], [1, 1, 1, 1],
          "spare: r2 got each of its messages once, on the second run")
    t.ok(not queue_ids(srv) and not state_ids(srv), "spare: queue/ and state/ are empty",
         "%s %s" % (queue_ids(srv), state_ids(srv)))


def test_5xx(t, srv, pf):
    pf.set_access({"gone": "550 5.1.1 no such user"})
    d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % pf.port}, name="smapd-5xx")
    (sid, _), = send(srv, [([at("gone"), at("r1")], ("sender@" + DOMAIN, mk(4, "bounce me")))])
    rc = d.once(flush=True)
    t.is_(rc, 0, "550: smapd -1 -f exits 0")
    log = "\n".join(smapd_log(srv, sid))
    t.like(log, r"to=<gone@backend\.test>, .*dsn=5\.1\.1, status=bounced \(.*550 5\.1\.1.*\)",
           "550: log status=bounced dsn=5.1.1 with Postfix's words")
    m = re.search(r"smap/bounce\[\d+\]: %s: sender non-delivery notification: ([0-9A-F]+)" % sid, log)
    t.ok(m, "550: log 'sender non-delivery notification: ID'", log)
    t.like(log, r"smap/qmgr\[\d+\]: %s: removed" % sid, "550: the original is removed")
    wait_until(lambda: count_mid(pf, "r1", 4) >= 1, 5)
    pf.wait_idle(5)
    t.is_(count_mid(pf, "r1", 4), 1, "550: the other recipient got its copy")
    bid = m.group(1) if m else None
    if bid:
        t.like("\n".join(smapd_log(srv, bid)), r"smap/\w+\[\d+\]: %s: to=<sender@backend\.test>, "
               r".*status=sent" % bid, "550: the DSN %s was queued and sent in the same run" % bid)
    rc = d.once(flush=True)
    t.is_(rc, 0, "550: a second smapd -1 -f exits 0")
    got = wait_until(lambda: dsn_for(pf, "<retry-4@b.example>"), 5)
    t.is_(len(got or []), 1, "550: exactly one DSN reached sender@%s" % DOMAIN)
    if got:
        check_dsn(t, "550 DSN", got[0], "5.1.1", ["gone@" + DOMAIN], "bounce me", "<retry-4@b.example>",
                  not_rcpts=["r1@" + DOMAIN], diag_re=r"550 5\.1\.1")
    if bid:
        t.like("\n".join(smapd_log(srv, bid)), r"to=<sender@backend\.test>, .*status=sent",
               "550: the DSN was delivered like any message")
    empty_queue(t, srv, "550")
    t.is_(quarantined(srv), {}, "550: nothing quarantined")


def closed_port(pf):
    for _ in range(20):
        p = free_port()
        if not listening(p) and p != pf.port:
            return p
    return p


def test_lifetime(t, srv, pf):
    d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % closed_port(pf),
                            "maximal_queue_lifetime": "3s"}, name="smapd-life")
    (sid, t0), = send(srv, [([at("r1"), at("r2")], ("sender@" + DOMAIN, mk(5, "expire me")))])
    rc = d.once(flush=True)
    t.is_(rc, 0, "lifetime: first attempt (backend down) exits 0")
    log = "\n".join(smapd_log(srv, sid))
    t.like(log, r"to=<r1@backend\.test>, .*dsn=4\.4\.1, status=deferred", "lifetime: first attempt deferred")
    t.unlike(log, r"expired", "lifetime: not expired before maximal_queue_lifetime")
    t.is_(queue_ids(srv), [sid], "lifetime: still queued")
    # past the lifetime (arrival is whole seconds: wait until 4s past)
    time.sleep(max(0.0, 4.2 - (time.monotonic() - t0)))
    rc = d.once(flush=True)
    t.is_(rc, 0, "lifetime: attempt after the lifetime exits 0")
    log = "\n".join(smapd_log(srv, sid))
    for r in ("r1", "r2"):
        t.like(log, r"smap/qmgr\[\d+\]: %s: to=<%s@backend\.test>, status=expired, returned to sender \(message "
               r"expired after \d+ seconds in the queue: .*\)" % (sid, r), "lifetime: %s expired, returned to sender" % r)
    m = re.search(r"smap/bounce\[\d+\]: %s: sender non-delivery notification: ([0-9A-F]+)" % sid, log)
    t.ok(m, "lifetime: a DSN is queued", log)
    t.like(log, r"smap/qmgr\[\d+\]: %s: removed" % sid, "lifetime: the expired message is removed")
    # backend up: the DSN reaches the sender
    d.set_conf({"default_transport": "smtp:[127.0.0.1]:%d" % pf.port})
    rc = d.once(flush=True)
    t.is_(rc, 0, "lifetime: run with the backend up exits 0")
    got = wait_until(lambda: dsn_for(pf, "<retry-5@b.example>"), 5)
    t.is_(len(got or []), 1, "lifetime: exactly one DSN reached sender@%s" % DOMAIN)
    if got:
        check_dsn(t, "expiry DSN", got[0], "4.4.7", ["r1@" + DOMAIN, "r2@" + DOMAIN], "expire me",
                  "<retry-5@b.example>", diag_re=r"expired")
    t.is_((count_mid(pf, "r1", 5), count_mid(pf, "r2", 5)), (0, 0), "lifetime: the expired message itself never arrived")
    empty_queue(t, srv, "lifetime")


def test_lifetime_null(t, srv, pf):
    """maximal_queue_lifetime = 0, backend down, null sender: a double
    bounce, logged with its reason and discarded, as Postfix does."""
    d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % closed_port(pf),
                            "maximal_queue_lifetime": "0"}, name="smapd-life0")
    (nid, _), = send(srv, [([at("r3")], ("", mk(6, "null sender expires")))])
    new_before = srv.list_new()
    rc = d.once(flush=True)
    t.is_(rc, 0, "lifetime 0, null sender: smapd -1 -f exits 0")
    nlog = "\n".join(smapd_log(srv, nid))
    t.like(nlog, r"to=<r3@backend\.test>, status=expired", "lifetime 0, null sender: expired at the first attempt")
    t.unlike(nlog, r"non-delivery notification", "lifetime 0, null sender: no DSN")
    t.is_(sorted(set(srv.list_new()) - set(new_before)), [], "lifetime 0, null sender: nothing new in new/")
    t.like(nlog, r"smap/qmgr\[\d+\]: %s: undeliverable mail from the null sender discarded \(a double "
           r"bounce\): message expired after \d+ seconds in the queue: connect to " % nid,
           "lifetime 0, null sender: discarded, the log says why")
    t.is_(quarantined(srv), {}, "lifetime 0, null sender: nothing kept in quarantine/ (by default)")
    empty_queue(t, srv, "lifetime 0")
    return nid


def test_lifetime_batch(t, srv, pf):
    """Two messages past their lifetime in one run with the backend down:
    both expire (Postfix's qmgr defers and expires every message behind
    a dead destination, not only the first one it tried)."""
    d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % closed_port(pf),
                            "maximal_queue_lifetime": "0"}, name="smapd-life-batch")
    sent = send(srv, [([at("r1")], ("sender@" + DOMAIN, mk(8, "batch expire one"))),
                      ([at("r2")], ("sender@" + DOMAIN, mk(9, "batch expire two")))])
    rc = d.once(flush=True)
    t.is_(rc, 0, "lifetime 0, two messages: smapd -1 -f exits 0")
    for sid, _ in sent:
        lg = "\n".join(smapd_log(srv, sid))
        t.ok(re.search(r"status=expired", lg), "lifetime 0, two messages in one run: %s expired" % sid, lg)
    # clean up whatever is left, with the backend up
    d.set_conf({"default_transport": "smtp:[127.0.0.1]:%d" % pf.port})
    for _ in range(3):
        d.once(flush=True)
        if not queue_ids(srv) and not srv.list_new():
            break
    got = wait_until(lambda: len(dsn_for(pf, "<retry-8@b.example>") + dsn_for(pf, "<retry-9@b.example>")) >= 2, 5)
    t.ok(got, "lifetime 0, two messages: a DSN for each reached the sender",
         "retry-8 copies at r1: %d, retry-9 copies at r2: %d" % (count_mid(pf, "r1", 8), count_mid(pf, "r2", 9)))
    empty_queue(t, srv, "lifetime 0, two messages")


def test_null_bounce(t, srv, pf, earlier):
    pf.set_access({"gone": "550 5.1.1 no such user"})
    d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % pf.port}, name="smapd-null")
    (sid, _), = send(srv, [([at("gone")], ("", mk(7, "bounce from the null sender")))])
    new_before = srv.list_new()
    rc = d.once(flush=True)
    t.is_(rc, 0, "null sender 550: smapd -1 -f exits 0")
    log = "\n".join(smapd_log(srv, sid))
    t.like(log, r"to=<gone@backend\.test>, .*dsn=5\.1\.1, status=bounced", "null sender 550: bounced")
    t.unlike(log, r"non-delivery notification", "null sender 550: no DSN logged")
    t.like(log, r"smap/qmgr\[\d+\]: %s: undeliverable mail from the null sender discarded \(a double "
           r"bounce\): .*550 5\.1\.1" % sid, "null sender 550: discarded, with the backend's 550 in the log")
    t.is_(quarantined(srv), {}, "null sender 550: nothing in quarantine/")
    t.is_(sorted(set(srv.list_new()) - set(new_before)), [], "null sender 550: nothing new in new/ (no DSN)")
    rc = d.once(flush=True)
    time.sleep(0.3)
    t.is_([x for x in pf.messages("sender") if b"bounce from the null sender" in x[1]], [],
          "null sender 550: nothing reached anyone")
    empty_queue(t, srv, "null sender")
    # kept on request: quarantine_double_bounces = yes, with its reason
    d.set_conf({"quarantine_double_bounces": "yes"})
    (kid, _), = send(srv, [([at("gone")], ("", mk(12, "kept double bounce")))])
    rc = d.once(flush=True)
    q = quarantined(srv)
    t.ok(rc == 0 and kid in q and q[kid] and "null sender" in q[kid],
         "quarantine_double_bounces = yes: the double bounce is kept in quarantine/ with a reason", repr(q))
    t.like(srv.log(), r"smap/\w+\[\d+\]: warning: %s: quarantined: .*null sender" % kid,
           "quarantine_double_bounces = yes: warning 'quarantined' naming the null sender")
    empty_queue(t, srv, "double bounce kept")


def main(t):
    with Server(t, name="smap-41") as srv:
        port = free_port()
        ids = t.run("backend down", test_down, t, srv, port)
        if ids:
            t.run("backend up", test_up, t, srv, port, ids)
        with Postfix(t, users=USERS, name="postfix-41") as pf:
            t.run("per-recipient 450", test_per_rcpt, t, srv, pf)
            t.run("reservations reused", test_spare, t, srv, pf)
            t.run("550 and DSN", test_5xx, t, srv, pf)
            t.run("queue lifetime", test_lifetime, t, srv, pf)
            nid = t.run("queue lifetime 0, null sender", test_lifetime_null, t, srv, pf)
            t.run("null sender bounce", test_null_bounce, t, srv, pf, nid)
            t.run("queue lifetime, two messages", test_lifetime_batch, t, srv, pf)


if __name__ == "__main__":
    TAP(watchdog=85).main(main)
