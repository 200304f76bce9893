#!/usr/bin/env python3
"""bench/compare.py - one smap session of two builds side by side, for
bench/RESULTS.md's before/after:

  python3 bench/compare.py NAME=SMAP[:SMAP_VG] ...

For each build: `strace -f -c` of one 1 KiB session (system calls by
name, and the total), callgrind's instruction count (of SMAP_VG, the
build without its seccomp filter, when given), and VmHWM and private
memory at the 250 (a session under systemd-socket-activate, a first
session held open beside it, as bench/run.py measures them). Each
build gets a spool and configuration of its own (tests/lib/smaptest.py).
Stdlib only; 127.0.0.1 only; every process started here is stopped here.
"""

import os
import re
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "lib"))
sys.path.insert(0, HERE)

import smaptest  # noqa: E402
import servers as S  # noqa: E402
import session_profile as prof  # noqa: E402
import run  # noqa: E402


class Quiet:
    def ok(self, cond, desc, *diag):
        return cond or print("compare: warning: %s %s" % (desc, diag))

    def note(self, msg):
        pass

    diag = note


def strace_c(argv, work, name):
    """{syscall: calls} and the total, of one session under strace -f -c."""
    out = os.path.join(work, "%s.strace-c" % name)
    prof.spawn_session([prof.STRACE, "-f", "-c", "-o", out] + argv)
    calls = {}
    with open(out) as f:
        for line in f:
            m = re.match(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
            if m and m.group(2) != "total":
                calls[m.group(2)] = int(m.group(1))
    return calls


def one(name, smap, vg, work):
    srv = smaptest.Server(Quiet(), conf={"relay_domains": "example.com",
                                         "mynetworks": "127.0.0.0/8"}, name="cmp-" + name)
    srv.start()
    la = None
    try:
        argv = [smap, "-c", srv.conffile]
        calls = strace_c(argv, work, name)
        ins = prof.instructions([vg, "-c", srv.conffile], srv.tmpdir(), "c" + name)[0] if vg else None
        la = S.SSA(argv, work, "cmp-" + name).start()
        hwm, priv, dirty = run.session_rss(la.port)
        return {"calls": calls, "total": sum(calls.values()), "instr": ins,
                "hwm": hwm, "priv": priv, "dirty": dirty}
    finally:
        if la is not None:
            la.stop()
        srv.stop(check=False)


def main():
    work = tempfile.mkdtemp(prefix="smap-compare.")
    try:
        res = []
        for arg in sys.argv[1:]:
            name, _, bins = arg.partition("=")
            smap, _, vg = bins.partition(":")
            res.append((name, one(name, smap, vg or None, work)))
        for name, r in res:
            top = sorted(r["calls"].items(), key=lambda kv: -kv[1])[:8]
            print("%s: %d system calls (%s); %s instructions; VmHWM %d KiB, private %d KiB "
                  "(dirty %d)" % (name, r["total"], ", ".join("%s %d" % kv for kv in top),
                                  "{:,}".format(r["instr"]) if r["instr"] else "-",
                                  r["hwm"], r["priv"], r["dirty"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
