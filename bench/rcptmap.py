#!/usr/bin/env python3
"""bench/rcptmap.py - what relay_recipient_maps costs a session, run by
`make bench` after run.py.

Two smap servers side by side in the same run, the same configuration
but for relay_recipient_maps: one without a map, one with a cdb: map of
1,000,000 recipients built by the real `postmap cdb:` (Debian's
postfix-cdb). Sessions alternate between the two in blocks, one at a
time (concurrency 1, the case where per-session cost shows most); each
session is EHLO, MAIL, RCPTS known recipients, DATA with 1 KiB, QUIT,
pipelined, timed from connect to the server's close. Each block's new/
files are counted against the 250s received and removed.

The target (issue: the MX of a real domain): the median session with
the map costs at most 5% more than without it. The figures are written
to bench/RESULTS-maps.md (BENCH_MAPS_RESULTS) with the machine's load.

Environment: BENCH_MAP_ENTRIES (1000000), BENCH_MAP_SESSIONS (400),
BENCH_MAP_BLOCK (20), BENCH_MAP_RCPTS (5).
Stdlib only; reuses tests/lib/smaptest.py. Everything on 127.0.0.1,
every wait bounded, every server started here stopped here.
"""

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))

import smaptest  # noqa: E402

ENTRIES = int(os.environ.get("BENCH_MAP_ENTRIES", "1000000"))
SESSIONS = int(os.environ.get("BENCH_MAP_SESSIONS", "400"))
BLOCK = int(os.environ.get("BENCH_MAP_BLOCK", "20"))
RCPTS = int(os.environ.get("BENCH_MAP_RCPTS", "5"))
RESULTS = os.environ.get("BENCH_MAPS_RESULTS") or os.path.join(HERE, "RESULTS-maps.md")
TARGET = 1.05


def log(msg):
    print("bench-maps: " + msg, flush=True)


class Quiet:
    """Stands in for the TAP object tests/lib expects."""

    def ok(self, cond, desc, *diag):
        if not cond:
            log("warning: " + desc + " " + " ".join(str(d)[:300] for d in diag))
        return cond

    def note(self, msg):
        log(msg)

    def diag(self, msg):
        log(msg)


def build_map(d):
    """a cdb: map of ENTRIES recipients, by postmap; its spec and the
    seconds postmap took"""
    src = os.path.join(d, "recipients")
    with open(src, "w") as f:
        for i in range(ENTRIES):
            f.write("user%07d@example.com OK\n" % i)
    with open(os.path.join(d, "main.cf"), "w") as f:
        f.write("compatibility_level = 3.6\n")
    t0 = time.monotonic()
    p = subprocess.run(["postmap", "-c", d, "cdb:" + src], capture_output=True, timeout=900)
    took = time.monotonic() - t0
    if p.returncode != 0 or not os.path.exists(src + ".cdb"):
        raise RuntimeError("postmap cdb: failed (install postfix-cdb): %s"
                           % p.stderr.decode("latin-1")[-500:])
    os.chmod(d, 0o755)
    os.chmod(src + ".cdb", 0o644)
    os.unlink(src)          # smap reads the .cdb only
    os.sync()               # no writeback of the map during the sessions' fsyncs
    return "cdb:" + src, took, os.path.getsize(src + ".cdb")


def script(n):
    """one pipelined session; n: which recipients (spread over the map)"""
    step = max(1, ENTRIES // (RCPTS + 1))
    rcpts = ["user%07d@example.com" % ((n * 7919 + k * step) % ENTRIES) for k in range(RCPTS)]
    body = b"Subject: bench\r\n\r\n" + b"x" * 1000 + b"\r\n"
    cmds = b"EHLO bench.client\r\nMAIL FROM:<bench@client.example>\r\n"
    cmds += b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts)
    return cmds + b"DATA\r\n", body + b".\r\nQUIT\r\n"


def session(port, n):
    """seconds from connect to close, and whether the message got 250"""
    head, tail = script(n)
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    got = b""
    try:
        while b"\r\n" not in got:
            c = s.recv(4096)
            if not c:
                break
            got += c
        s.sendall(head)
        while got.count(b"\r\n") < RCPTS + 4:       # greeting, EHLO, MAIL, RCPTs, 354
            c = s.recv(4096)
            if not c:
                break
            got += c
        s.sendall(tail)
        while True:
            c = s.recv(4096)
            if not c:
                break
            got += c
    finally:
        s.close()
    took = time.monotonic() - t0
    lines = [ln for ln in got.split(b"\r\n") if ln[:3].isdigit() and ln[3:4] == b" "]
    return took, any(ln.startswith(b"250 2.0.0 Ok: queued") for ln in lines)


def block(srv, first, times):
    """BLOCK sessions; their times appended; the spool checked and
    emptied; the count of 250s"""
    ok = 0
    for n in range(first, first + BLOCK):
        took, queued = session(srv.port, n)
        times.append(took)
        ok += queued
    newdir = srv.newdir()
    files = os.listdir(newdir)
    for f in files:
        os.unlink(os.path.join(newdir, f))
    if len(files) != ok or ok != BLOCK:
        raise RuntimeError("%s: %d sessions, %d got 250, %d files in new/"
                           % (srv.name, BLOCK, ok, len(files)))
    return ok


def measure(plain, mapped):
    """alternate blocks; per-server session times"""
    times = {"plain": [], "map": []}
    for i in range(SESSIONS // (2 * BLOCK)):
        order = [("plain", plain), ("map", mapped)]
        if i % 2:
            order.reverse()
        for name, srv in order:
            block(srv, i * BLOCK, times[name])
    return times


def write(res):
    lines = [
        "# relay_recipient_maps: what a %s-entry cdb: map costs a session" % format(ENTRIES, ","),
        "",
        "Written by `bench/rcptmap.py` (`make bench`). Two smap servers in the same",
        "run, one with `relay_recipient_maps = cdb:...` (built by `postmap cdb:`),",
        "one without; sessions alternate in blocks of %d, one at a time; each" % BLOCK,
        "session: EHLO, MAIL, %d known RCPTs, 1 KiB DATA, QUIT, pipelined;" % RCPTS,
        "time from connect to close. Every 250 was checked against the files in new/.",
        "",
        "| | value |",
        "|---|---|",
        "| machine | %s, %d CPUs, load %.2f at start |" % (res["uname"], res["cpus"], res["load"]),
        "| map | %d entries, %.1f MB, postmap took %.1f s |" % (ENTRIES, res["size"] / 1e6, res["postmap"]),
        "| sessions | %d with the map, %d without |" % (len(res["map"]), len(res["plain"])),
        "| median session without the map | %.2f ms |" % (res["med_plain"] * 1000),
        "| median session with the map | %.2f ms |" % (res["med_map"] * 1000),
        "| ratio with / without | %.3f (target <= %.2f: %s) |" % (
            res["ratio"], TARGET, "met" if res["ratio"] <= TARGET else "missed"),
        "",
    ]
    with open(RESULTS, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


def main():
    if shutil.which("postmap") is None:
        log("postmap not found: run tools/deps bench")
        return 1
    d = tempfile.mkdtemp(prefix="bench-maps.")
    servers = []
    try:
        spec, took, size = build_map(d)
        log("map: %d entries, postmap %.1fs" % (ENTRIES, took))
        base = {"relay_domains": "example.com", "mynetworks": "192.0.2.0/24",
                "smtpd_recipient_limit": str(max(100, RCPTS))}
        plain = smaptest.Server(Quiet(), conf=base, name="plain")
        mapped = smaptest.Server(Quiet(), conf=dict(base, relay_recipient_maps=spec), name="map")
        for srv in (plain, mapped):
            srv.start()
            servers.append(srv)
        block(plain, 0, [])             # warm both: page cache, the map's pages
        block(mapped, 0, [])
        times = measure(plain, mapped)
        res = dict(times, size=size, postmap=took, uname=os.uname().release,
                   cpus=os.cpu_count(), load=os.getloadavg()[0])
        res["med_plain"] = statistics.median(times["plain"])
        res["med_map"] = statistics.median(times["map"])
        res["ratio"] = res["med_map"] / res["med_plain"]
        write(res)
        return 0
    finally:
        for srv in servers:
            srv.stop()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
