#!/usr/bin/env python3
# 79-smapd-run-faults.t - a queue run hands each batch of its pickup out
# to its delivery processes through a pipe while it picks up the next:
#   - every delivery process killed (kill -9) as soon as it is forked,
#     with 3,000 messages waiting: the run does not block on the full
#     pipe; it delivers alone and ends, and with the next run every
#     message has arrived (a second copy only of what a killed process
#     had in hand);
#   - the fsync of new/ after the originals' removal fails (EIO,
#     strace's fault injection at that call): the batch is not
#     delivered in that run (a crash could bring the original back
#     beside a copy already delivered), the log says so, and the next
#     run delivers it once.
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server  # noqa: E402
from postfix import read_maildir, header  # noqa: E402
from smapdtest import (smapd_maildir, Smapd, send, queue_ids, listdir, place,  # noqa: E402
                       spool_bytes, new_id, smapd_log)

STRACE = shutil.which("strace") or "/usr/bin/strace"
N = 3000


def msg(tag):
    return (b"From: a@b.example\r\nTo: u@example.com\r\nSubject: " + tag.encode() +
            b"\r\nMessage-ID: <" + tag.encode() + b"@b.example>\r\n\r\nbody\r\n")


def workers(pid):
    """The processes forked by pid running its own program (its delivery
    processes: smapd, or valgrind's tool running smapd)."""
    out = []
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
        kids = open("/proc/%d/task/%d/children" % (pid, pid)).read().split()
    except OSError:
        return out
    for k in kids:
        try:
            if os.readlink("/proc/%s/exe" % k) == exe:
                out.append(int(k))
        except OSError:
            pass
    return out


def test_workers_killed(t, srv):
    md = smapd_maildir(srv)
    d = Smapd(t, srv, conf={"default_transport": "maildir:" + md,
                            "default_destination_concurrency_limit": "3"}, name="smapd-79-kill")
    want = set()
    for i in range(N):
        sid = new_id()
        mid = "<kill-%d@b.example>" % i
        want.add(mid)
        place(srv, sid, spool_bytes(sid, message=b"Message-ID: " + mid.encode() +
                                    b"\r\nSubject: kill\r\n\r\nbody\r\n"))
    with open(d.errfile, "ab") as err:
        p = subprocess.Popen(d.argv("-1", "-f"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=err, env=d._env(), close_fds=True)
    killed = set()
    deadline = time.monotonic() + 120
    while p.poll() is None and time.monotonic() < deadline:
        for k in workers(p.pid):
            if k not in killed:
                try:
                    os.kill(k, signal.SIGKILL)
                    killed.add(k)
                except OSError:
                    pass
        time.sleep(0.01)
    ended = p.poll() is not None
    if not ended:
        p.kill()
    p.wait()
    t.ok(killed, "delivery processes were forked and killed", len(killed))
    t.ok(ended, "smapd -1 -f ended by itself (no block on a pipe nobody reads), in 120 s",
         "killed %d" % len(killed))
    t.like("\n".join(smapd_log(srv)), r"delivery processes are gone: it delivers alone",
           "the log says the run went on alone")
    t.is_(d.once(flush=True, timeout=120), 0, "the next run exits 0")
    got = {}
    for _, m in read_maildir(md):
        got[header(m, "Message-ID")] = got.get(header(m, "Message-ID"), 0) + 1
    t.is_(sorted(want - set(got)), [], "every message arrived")
    extra = sum(c - 1 for c in got.values())
    t.ok(extra <= len(killed), "a second copy only of what a killed process had in hand",
         "%d extra copies, %d processes killed" % (extra, len(killed)))
    t.ok(not listdir(srv.newdir()) and not queue_ids(srv), "new/ and queue/ are empty")


def fsyncs(trace):
    """[(pid, path, failed)] of the fsync calls in an strace -f -y file."""
    out = []
    with open(trace, errors="replace") as f:
        for line in f:
            m = re.match(r"^(\d+) +fsync\(\d+<([^>]*)>\) += (-?\d+)", line)
            if m:
                out.append((int(m.group(1)), m.group(2), m.group(3) != "0"))
    return out


def test_new_eio(t, srv):
    md = smapd_maildir(srv)
    d = Smapd(t, srv, conf={"default_transport": "maildir:" + md}, name="smapd-79-eio")
    newdir = os.path.realpath(srv.newdir())
    send(srv, [(["u@example.com"], msg("warm"))])
    t.is_(d.once(flush=True, timeout=60), 0, "a first run (the journal made) exits 0")
    # the same run again, traced, to learn which fsync of the parent is new/'s
    send(srv, [(["u@example.com"], msg("count"))])
    trace = os.path.join(srv.dir, "count.trace")
    rc = d.once(flush=True, timeout=60, prefix=[STRACE, "-f", "-y", "-o", trace, "-e", "trace=fsync"])
    calls = fsyncs(trace)
    parent = calls[0][0] if calls else None
    mine = [c for c in calls if c[0] == parent]
    at = [i + 1 for i, c in enumerate(mine) if c[1] == newdir]
    t.ok(rc == 0 and at, "the traced run exits 0 and fsyncs new/", at)
    if not at:
        return
    ids = [i for i, _ in send(srv, [(["u@example.com"], msg("eio"))])]
    trace = os.path.join(srv.dir, "eio.trace")
    rc = d.once(flush=True, timeout=60, prefix=[
        STRACE, "-f", "-y", "-o", trace, "-e", "trace=fsync",
        "-e", "inject=fsync:error=EIO:when=%d" % at[0]])
    hit = [c for c in fsyncs(trace) if c[1] == newdir and c[2]]
    t.ok(rc == 0 and hit, "new/'s fsync failed, injected; smapd -1 -f exits 0", hit[:1])
    got = [header(m, "Message-ID") for _, m in read_maildir(md)]
    t.ok("<eio@b.example>" not in got, "... the message was not delivered in that run")
    t.is_(queue_ids(srv), ids, "... it waits in queue/")
    t.like("\n".join(smapd_log(srv)), r"%s: incoming/new is not durable: not delivered until it is" % ids[0],
           "... and the log says why")
    t.is_(d.once(flush=True, timeout=60), 0, "the next run exits 0")
    got = [header(m, "Message-ID") for _, m in read_maildir(md)]
    t.is_(got.count("<eio@b.example>"), 1, "... and delivers it once")
    t.ok(not listdir(srv.newdir()) and not queue_ids(srv), "... new/ and queue/ are empty")


def main(t):
    with Server(t, name="smap-79-kill") as srv:
        test_workers_killed(t, srv)
    if not os.access(STRACE, os.X_OK):
        t.skip("no strace")
        return
    with Server(t, name="smap-79-eio") as srv:
        test_new_eio(t, srv)


if __name__ == "__main__":
    TAP(watchdog=280).main(main)
