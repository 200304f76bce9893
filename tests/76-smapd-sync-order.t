#!/usr/bin/env python3
# 76-smapd-sync-order.t - the order of smapd's syncs, as strace sees them
# (one run, smapd -1 -f, over three messages smap committed; maildir:
# transport, so no backend is needed):
#   - an original leaves new/ only after queue/ is fsync'd (its copy is
#     durable first: nothing lost);
#   - new/ is fsync'd (the originals' removal durable) before any process
#     of the run removes a delivered message from queue/: a crash cannot
#     bring back an original whose copy was delivered and removed, which
#     would be delivered twice. Another smapd or smapq may remove a copy
#     too, so the sync is pickup's own, and each copy is under its
#     delivery lock from before it is named in queue/ until the process
#     that picked it up has removed the original and fsync'd new/;
#   - every removal of a delivered message from queue/ is followed by a
#     successful fsync of queue/ begun after it, whichever process of the
#     run makes it (a delivery process leaves that fsync to the run's
#     next one: groupsync_later), before the run ends;
#     over 200 messages and 20 delivery processes too, where some
#     removals are left to another process's flush: each covered before
#     its process's next journal flush, next removal or end;
#   - when queue/ cannot be fsync'd (every fsync fails with EIO, strace's
#     fault injection), no original leaves new/ and no copy stays in
#     queue/ or is delivered; the next run delivers each once.
import os
import re
import shutil
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server  # noqa: E402
from postfix import read_maildir, header  # noqa: E402
from smapdtest import smapd_maildir, Smapd, send, queue_ids, listdir, quarantined, smapd_log  # noqa: E402

STRACE = shutil.which("strace") or "/usr/bin/strace"
CALL = re.compile(r"^(\d+\.\d+) (\w+)\((.*)\) += (-?\d+)(?:<[^>]*>)?(?: [A-Z]+ .*?)? <([\d.]+)>$")


def calls(path):
    """[(start, end, name, args, result)] of one process's trace."""
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            m = CALL.match(line.rstrip("\n"))
            if m:
                start, dur = float(m.group(1)), float(m.group(5))
                out.append((start, start + dur, m.group(2), m.group(3), int(m.group(4))))
    return out


def fd_is(args, d):
    """Does the call's first argument name directory d (strace -y)?"""
    return re.match(r"\d+<%s>" % re.escape(d), args) is not None


def lock_freed(procs, tmp):
    """(When the descriptor duplicated from the copy (its lock) was
    closed, the calls of the process that made it), or (None, [])."""
    for cs in procs.values():
        for k, c in enumerate(cs):
            if c[2] == "fcntl" and tmp in c[3] and "F_DUPFD" in c[3] and c[4] >= 0:
                for d in cs[k + 1:]:
                    if d[2] == "close" and d[3].startswith("%d<" % c[4]):
                        return d[0], cs
    return None, []


def msg(tag):
    return (b"From: a@b.example\r\nTo: u@example.com\r\nSubject: " + tag.encode() +
            b"\r\nMessage-ID: <" + tag.encode() + b"@b.example>\r\n\r\nbody\r\n")


def main(t):
    if not os.access(STRACE, os.X_OK):
        t.skip("no strace")
        return
    with Server(t, name="smap-76") as srv:
        md = smapd_maildir(srv)
        d = Smapd(t, srv, conf={"default_transport": "maildir:" + md}, name="smapd-76")
        t.is_(d.check()[0], 0, "smapd -t accepts the configuration")
        sent = send(srv, [(["u@example.com"], msg("order-%d" % i)) for i in range(3)])
        ids = [i for i, _ in sent]
        t.is_(sorted(listdir(srv.newdir())), sorted(ids), "three messages wait in new/")

        tdir = os.path.join(srv.dir, "trace")
        os.mkdir(tdir)
        rc = d.once(flush=True, timeout=60, prefix=[
            STRACE, "-f", "-ff", "-ttt", "-T", "-y", "-o", os.path.join(tdir, "t"),
            "-e", "trace=fsync,fdatasync,unlinkat,linkat,renameat,renameat2,rename,flock,fcntl,close"])
        t.is_(rc, 0, "smapd -1 -f under strace exits 0")
        got = sorted(header(m, "Message-ID") for _, m in read_maildir(md))
        t.is_(got, sorted("<order-%d@b.example>" % i for i in range(3)),
              "each message delivered once into the Maildir")
        t.ok(not listdir(srv.newdir()) and not queue_ids(srv), "new/ and queue/ are empty",
             "%s %s" % (listdir(srv.newdir()), queue_ids(srv)))

        new = os.path.realpath(srv.newdir())
        queue = os.path.realpath(os.path.join(srv.spool, "queue"))
        mdnew = os.path.realpath(os.path.join(md, "new"))
        procs = {f: calls(os.path.join(tdir, f)) for f in os.listdir(tdir)}
        every = sorted(c for cs in procs.values() for c in cs)
        qsync = [c[1] for c in every if c[2] == "fsync" and fd_is(c[3], queue) and c[4] == 0]
        for i in ids:
            gone = [c for c in every if c[2] == "unlinkat" and fd_is(c[3], new) and '"%s"' % i in c[3]]
            t.ok(gone and qsync and min(qsync) <= gone[0][0],
                 "%s: its original leaves new/ after queue/ is fsync'd" % i, gone[:1], qsync[:1])

        nsync = [c[1] for c in every if c[2] == "fsync" and fd_is(c[3], new) and c[4] == 0]
        rm = [c for c in every if c[2] == "unlinkat" and fd_is(c[3], queue) and
              any('"%s"' % i in c[3] for i in ids)]
        t.is_(len(rm), 3, "each delivered message removed from queue/ once")
        t.ok(nsync and rm and min(nsync) <= min(c[0] for c in rm),
             "new/ is fsync'd before the first delivered message leaves queue/", nsync[:1], rm[:1])
        for c in rm:
            later = [s for s in every if s[2] == "fsync" and fd_is(s[3], queue) and s[4] == 0 and s[0] >= c[1]]
            t.ok(later, "a removal from queue/ is made durable: a good fsync of queue/ begins after it "
                 "before the run ends", c, later[:1])
        into = [c for c in every if c[2] in ("linkat", "renameat", "renameat2", "rename") and
                "<%s>" % mdnew in c[3]]
        for i in ids:
            tmp = "<%s/%s.tmp>" % (queue, i)
            lock = [c for c in every if c[2] == "flock" and tmp in c[3] and "LOCK_EX" in c[3] and c[4] == 0]
            pub = [c for c in every if c[2] in ("linkat", "renameat", "renameat2", "rename") and
                   '"%s.tmp"' % i in c[3] and '"%s"' % i in c[3] and c[4] == 0]
            freed, mine = lock_freed(procs, tmp)
            gone = [c[1] for c in mine if c[2] == "unlinkat" and fd_is(c[3], new) and
                    '"%s"' % i in c[3] and c[4] == 0]
            synced = [c for c in mine if c[2] == "fsync" and fd_is(c[3], new) and c[4] == 0 and
                      gone and c[0] >= gone[0] and freed is not None and c[1] <= freed]
            t.ok(lock and pub and lock[0][1] <= pub[0][0],
                 "%s: its copy is locked before it is named in queue/" % i, lock[:1], pub[:1])
            t.ok(synced, "%s: ... and stays locked until its picker has fsync'd new/ after "
                 "removing the original" % i, freed, gone[:1])
        t.ok(nsync and into and min(nsync) <= min(c[0] for c in into),
             "... indeed before the first delivery reaches the Maildir", nsync[:1], into[:1])
    with Server(t, name="smap-76-many") as srv:
        test_many_removals(t, srv)
    with Server(t, name="smap-76-eio") as srv:
        test_queue_eio(t, srv)


def test_many_removals(t, srv, n=200):
    """Many removals by many processes: each one durable by the end."""
    md = smapd_maildir(srv)
    d = Smapd(t, srv, conf={"default_transport": "maildir:" + md}, name="smapd-76-many")
    ids = [i for k in range(0, n, 20)
           for i, _ in send(srv, [(["u@example.com"], msg("many-%d" % j)) for j in range(k, min(n, k + 20))])]
    tdir = os.path.join(srv.dir, "trace-many")
    os.mkdir(tdir)
    rc = d.once(flush=True, timeout=120, prefix=[
        STRACE, "-f", "-ff", "-ttt", "-T", "-y", "-o", os.path.join(tdir, "t"),
        "-e", "trace=fsync,fdatasync,unlinkat,exit_group"])
    t.is_(rc, 0, "%d messages: smapd -1 -f under strace exits 0" % n)
    got = sorted(header(m, "Message-ID") for _, m in read_maildir(md))
    t.is_(got, sorted("<many-%d@b.example>" % i for i in range(n)), "... each delivered once")
    t.ok(not queue_ids(srv) and not listdir(srv.newdir()), "... queue/ and new/ are empty")
    queue = os.path.realpath(os.path.join(srv.spool, "queue"))
    procs = {f: calls(os.path.join(tdir, f)) for f in os.listdir(tdir)}
    every = sorted(c for cs in procs.values() for c in cs)
    qsync = [(c[0], c[1]) for c in every if c[2] == "fsync" and fd_is(c[3], queue) and c[4] == 0]
    rm, late, left = 0, [], 0
    for f, cs in procs.items():
        end = exited(os.path.join(tdir, f))
        for k, c in enumerate(cs):
            if not (c[2] == "unlinkat" and fd_is(c[3], queue) and c[4] == 0 and re.search(r'"[0-9A-F]+"', c[3])):
                continue
            rm += 1
            # by its process's next journal flush or removal, or its end
            nxt = [d[0] for d in cs[k + 1:] if d[2] == "fdatasync" or
                   (d[2] == "unlinkat" and fd_is(d[3], queue))]
            deadline = min(nxt + ([end] if end is not None else []) or [float("inf")])
            if not any(a >= c[1] and b <= deadline for a, b in qsync):
                late.append((f, c, deadline))
            own = [d for d in cs[k + 1:] if fd_is(d[3], queue)]
            left += not (own and own[0][2] == "fsync")
    t.is_(rm, n, "each delivered message removed from queue/ once (%d)" % rm)
    t.ok(not late, "every removal from queue/ is covered by a good fsync of queue/, begun after it, before its "
         "process's next journal flush, next removal or end (%d of %d left by their process to another's "
         "flush; %d fsyncs of queue/)" % (left, rm, len(qsync)), late[:2])


def exited(path):
    """When the process of one strace -ff file called exit_group, or None."""
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"^(\d+\.\d+) exit_group\(", line)
            if m:
                return float(m.group(1))
    return None


def test_queue_eio(t, srv):
    """queue/'s fsync fails: the originals stay, the copies go."""
    md = smapd_maildir(srv)
    d = Smapd(t, srv, conf={"default_transport": "maildir:" + md}, name="smapd-76-eio")
    ids = [i for i, _ in send(srv, [(["u@example.com"], msg("eio-%d" % i)) for i in range(3)])]
    trace = os.path.join(srv.dir, "eio.trace")
    rc = d.once(flush=True, timeout=60, prefix=[
        STRACE, "-f", "-y", "-o", trace, "-e", "trace=fsync", "-e", "inject=fsync:error=EIO"])
    t.is_(rc, 0, "every fsync failing (EIO): smapd -1 -f exits 0")
    with open(trace, errors="replace") as f:
        qfail = [l for l in f if "spool/queue>" in l and "EIO" in l and "INJECTED" in l]
    t.ok(qfail, "queue/'s fsync did fail, injected", qfail[:1])
    t.is_(sorted(listdir(srv.newdir())), sorted(ids), "... every original is still in new/")
    t.is_(queue_ids(srv), [], "... no copy stays in queue/")
    t.is_(read_maildir(md), [], "... nothing was delivered")
    log = "\n".join(smapd_log(srv))
    for i in ids:
        t.like(log, r"%s: queue is not durable: left in incoming/new for a later run" % i,
               "%s: the log says it was left in new/" % i)
    t.is_(d.once(flush=True, timeout=60), 0, "the next run, with working fsyncs, exits 0")
    got = sorted(header(m, "Message-ID") for _, m in read_maildir(md))
    t.is_(got, sorted("<eio-%d@b.example>" % i for i in range(3)), "... and delivers each once")
    t.ok(not listdir(srv.newdir()) and not queue_ids(srv) and not quarantined(srv),
         "... new/, queue/ and quarantine/ are empty",
         "%s %s %s" % (listdir(srv.newdir()), queue_ids(srv), quarantined(srv)))


if __name__ == "__main__":
    TAP(watchdog=85).main(main)
