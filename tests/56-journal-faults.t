#!/usr/bin/env python3
# 56-journal-faults.t - a journal that cannot be written never sends a
# message twice (smap-spool(5), JOURNAL): smap -> smapd -> a real
# Postfix, each message to one recipient that accepts and one that is
# deferred (450), so that it stays queued with one recipient done:
#   - the key gone from journal/: every record goes to the log
#     ("journal: not recorded"), the accepted recipient has one copy
#     after two more runs, and once the key is back the next record is a
#     gap record and smapq verify still exits 0, noting the gap;
#   - journal/ locked by a process that never lets go: smapd waits for
#     it a bounded time per record, delivers once, finishes its run in
#     time, and the records go to the log the same way.
import fcntl
import os
import re
import shutil
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, REPO  # noqa: E402
from postfix import Postfix, DOMAIN, header  # noqa: E402
from smapdtest import Smapd, send, queue_ids, spool_path  # noqa: E402

import subprocess  # noqa: E402

SMAPQ_BIN = os.path.abspath(os.environ.get("SMAPQ_BIN") or os.path.join(REPO, "smapd", "smapq"))
ACCESS = {"later": "450 4.2.0 try later"}


def at(u):
    return "%s@%s" % (u, DOMAIN)


def mk(n):
    return (b"From: a@b.example\r\nTo: a@" + DOMAIN.encode() + b"\r\nSubject: fault %d\r\n"
            b"Message-ID: <jf-%d@b.example>\r\n\r\nbody %d\r\n" % (n, n, n))


def smapq(d, *args):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TZ": "UTC"}
    if os.environ.get("ASAN_OPTIONS"):
        env["ASAN_OPTIONS"] = os.environ["ASAN_OPTIONS"]
    p = subprocess.run([SMAPQ_BIN, "-c", d.conffile] + list(args), capture_output=True,
                       timeout=30, stdin=subprocess.DEVNULL, env=env)
    return p.returncode, p.stdout.decode("latin-1"), p.stderr.decode("latin-1")


def records(srv):
    """every record of every day, in order"""
    jd = spool_path(srv, "journal")
    out = []
    for n in sorted(x for x in os.listdir(jd) if re.match(r"^\d{4}-\d\d-\d\d$", x)):
        with open(os.path.join(jd, n), "rb") as f:
            out += f.read().decode("latin-1").splitlines()
    return out


def copies(pf, n):
    """the Message-IDs at a's mailbox, once Postfix has delivered what it
    took (waiting, bounded, for n copies first)"""
    pf.wait_messages("a", n, 5)
    pf.wait_idle(10)
    return sorted(header(m[1], "Message-ID") for m in pf.messages("a"))


def not_recorded(srv, since):
    return len(re.findall(r"error: journal: not recorded \(", srv.log()[since:]))


def test_baseline(t, srv, d, pf):
    send(srv, [([at("a")], mk(0))])
    t.is_(d.once(), 0, "smapd -1 -f: a first message, the journal begins")
    t.is_(copies(pf, 1), ["<jf-0@b.example>"], "Postfix has it")
    rc, out, err = smapq(d, "verify")
    t.ok(rc == 0 and out.startswith("journal: intact: "), "smapq verify: exit 0", out, err)


def test_no_key(t, srv, d, pf):
    jd = spool_path(srv, "journal")
    key, aside = os.path.join(jd, "key"), os.path.join(srv.dir, "key.aside")
    shutil.move(key, aside)
    n = len(records(srv))
    mark = len(srv.log())
    (sid, _), = send(srv, [([at("a"), at("later")], mk(1))])
    t.is_(d.once(), 0, "key gone: smapd -1 -f exits 0")
    t.is_(copies(pf, 2), ["<jf-0@b.example>", "<jf-1@b.example>"], "the accepted recipient has it")
    t.is_(queue_ids(srv), [sid], "and it stays queued for the deferred one")
    t.ok(not_recorded(srv, mark) >= 3 and re.search(r"not recorded \([^)]*\): delivered id=%s " % sid,
                                                   srv.log()[mark:]),
         "each record is in the log instead (accepted, delivered, deferred): %d" % not_recorded(srv, mark))
    t.is_(len(records(srv)), n, "and none in the journal")
    t.is_(d.once(), 0, "key still gone: smapd -1 -f again")
    t.is_(copies(pf, 3), ["<jf-0@b.example>", "<jf-1@b.example>"], "no second copy")
    shutil.move(aside, key)
    t.is_(d.once(), 0, "key back: smapd -1 -f")
    t.is_(copies(pf, 3), ["<jf-0@b.example>", "<jf-1@b.example>"], "still no second copy")
    new = records(srv)[n:]
    t.ok(len(new) >= 2 and re.match(r"^\d+ \S+ gap lost=\d+ since=\d+ mac=", new[0]) and
         " deferred id=%s " % sid in new[1], "the next records: a gap, then the attempt", *new[:2])
    rc, out, err = smapq(d, "verify")
    t.ok(rc == 0 and out.startswith("journal: intact: ") and
         re.search(r"note: \d+ records could not be written \(1 gaps", out),
         "smapq verify: exit 0, the gap noted", out, err)
    return sid


def test_lock_held(t, srv, d, pf, first):
    fd = os.open(spool_path(srv, "journal"), os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        n = len(records(srv))
        mark = len(srv.log())
        (sid, _), = send(srv, [([at("a"), at("later")], mk(2))])
        t0 = time.monotonic()
        rc = d.once(timeout=120)
        took = time.monotonic() - t0
        t.is_(rc, 0, "journal/ locked by another process: smapd -1 -f exits 0")
        t.ok(took < 90, "in bounded time (%.1fs: a bounded wait per record)" % took)
        t.is_(copies(pf, 3), ["<jf-0@b.example>", "<jf-1@b.example>", "<jf-2@b.example>"],
              "the accepted recipient has it, once")
        t.ok(re.search(r"not recorded \(lock: held by another process: [^)]*\): delivered id=%s " % sid,
                       srv.log()[mark:]), "the records are in the log, saying why")
        t.is_(len(records(srv)), n, "none in the journal while it is locked")
    finally:
        os.close(fd)
    t.is_(d.once(), 0, "lock gone: smapd -1 -f")
    t.is_(copies(pf, 4), ["<jf-0@b.example>", "<jf-1@b.example>", "<jf-2@b.example>"], "no second copy")
    t.is_(sorted(queue_ids(srv)), sorted([first, sid]), "both wait for the deferred recipient")
    rc, out, err = smapq(d, "verify")
    t.ok(rc == 0 and out.startswith("journal: intact: ") and re.search(r"\(2 gaps", out),
         "smapq verify: exit 0, both gaps noted", out, err)


def main(t):
    if os.geteuid() != 0:
        t.skip("needs root")
        return
    with Postfix(t, users=["a"], access=ACCESS, name="postfix-56") as pf:
        with Server(t, name="jfaults", conf={"relay_domains": DOMAIN}) as srv:
            d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % pf.port,
                                    "relay_domains": DOMAIN})
            t.run("baseline", test_baseline, t, srv, d, pf)
            first = t.run("no key", test_no_key, t, srv, d, pf)
            if first:
                t.run("lock held", test_lock_held, t, srv, d, pf, first)
            d.check_sanitizer()


TAP(watchdog=240).main(main)
