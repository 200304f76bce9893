#!/usr/bin/env python3
# 66-demo.t - tools/demo when 127.0.0.1:2525 is taken: with 2525 held by
# this test, the demo says so and by what (ss -ltnp: this process), takes
# the next free port up to 2534, and what it announces is true: the swaks
# command it prints delivers a message through smap and smapd, which the
# demo shows from its Maildir. Stopped by PID (SIGTERM, as Ctrl-C), it
# exits 0 and leaves neither systemd-socket-activate nor smapd behind.
# With every port from 2525 to 2534 held it says so and exits 1, having
# started nothing. The demo runs in a temporary SMAP_DEMO_DIR; swaks
# --support shows what tools/deps demo installs for --tls and -6.
import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from smaptest import TAP, REPO, listening, proc_alive, proc_cmdline  # noqa: E402

DEMO = os.path.join(REPO, "tools", "demo")
FIRST, LAST = 2525, 2534


def hold(port):
    """A listener on 127.0.0.1:port, or None when something else has it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # past the TIME_WAIT of an earlier session; never beside a listener
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        return s
    except OSError as e:
        s.close()
        if e.errno != errno.EADDRINUSE:
            raise
        return None


def ours(conf):
    """Live processes with the demo's smap.conf on their command line."""
    out = []
    for n in os.listdir("/proc"):
        if n.isdigit() and int(n) != os.getpid() and conf.encode() in proc_cmdline(int(n)) \
                and proc_alive(int(n)):
            out.append((int(n), os.path.basename(proc_cmdline(int(n))[0].decode("latin-1"))))
    return out


def wait_for(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    return cond()


class Demo:
    """tools/demo in the foreground of its own process, output to a file."""

    def __init__(self, base):
        os.makedirs(base, mode=0o755)
        self.dir = os.path.join(base, "demo")
        self.conf = os.path.join(self.dir, "smap.conf")
        self.outfile = os.path.join(base, "demo.out")
        env = dict(os.environ, SMAP_DEMO_DIR=self.dir)
        with open(self.outfile, "wb") as out:
            self.proc = subprocess.Popen([DEMO], stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=env, close_fds=True)

    def out(self):
        with open(self.outfile, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_out(self, regex, timeout):
        return wait_for(lambda: re.search(regex, self.out(), re.M) or self.proc.poll() is not None,
                        timeout) and re.search(regex, self.out(), re.M)

    def stop(self):
        """SIGTERM (what Ctrl-C is to it), then its exit status."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            return "killed after 30s"


def test_taken(t, base):
    held = hold(FIRST)
    if held is None:
        t.note("127.0.0.1:%d was taken already; the demo must skip it all the same" % FIRST)
    d = Demo(base)
    try:
        m = d.wait_out(r"^smap is listening on 127\.0\.0\.1:(\d+) ", 90)
        if not t.ok(m, "the demo announces where smap listens", d.out()[-3000:]):
            return
        port = int(m.group(1))
        out = d.out()
        t.ok(FIRST < port <= LAST, "it took a port after %d, at most %d: %d" % (FIRST, LAST, port))
        t.like(out, r"(?m)^tools/demo: 127\.0\.0\.1:%d is taken, by:$" % FIRST,
               "it says %d is taken" % FIRST)
        if held is not None:
            t.like(out, r"(?m)^  LISTEN .*127\.0\.0\.1:%d .*pid=%d," % (FIRST, os.getpid()),
                   "and by what: the ss -ltnp line of this test's listener")
        t.ok(listening(port), "something listens on 127.0.0.1:%d" % port)
        kids = ours(d.conf)
        names = sorted(n for _, n in kids)
        t.ok("systemd-socket-activate" in names and "smapd" in names,
             "the demo runs systemd-socket-activate and smapd with its config", repr(kids))
        cmd = re.search(r"(?m)^  (swaks --server 127\.0\.0\.1:(\d+) .*)$", out)
        if not t.ok(cmd and int(cmd.group(2)) == port,
                    "the swaks command it prints names that port", out[-2000:]):
            return
        p = subprocess.run(cmd.group(1).split() + ["--timeout", "15", "--header",
                           "Subject: demo test %d" % os.getpid()], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        text = p.stdout.decode("utf-8", "replace")
        t.ok(p.returncode == 0, "that swaks command: exit 0", text[-2000:])
        t.like(text, r"(?m)^<-  220 smap-demo\.localdomain ", "smap greets it on that port")
        t.like(text, r"(?m)^<-  250 2\.0\.0 .*queued as [0-9A-F]+", "and queues the message")
        m = d.wait_out(r"(?m)^Subject: demo test %d$" % os.getpid(), 20)
        out = d.out()
        t.ok(m, "the demo shows the message smapd delivered", out[-2000:])
        t.like(out, r"(?m)^==== %s/Maildir/new/\S+\n(?:.*\n)*Delivered-To: postmaster@example\.com$"
               % re.escape(d.dir), "from its Maildir, delivered to postmaster@example.com")
    finally:
        if held is not None:
            held.close()
        kids = ours(d.conf)
        rc = d.stop()
        t.is_(rc, 0, "stopped by PID (SIGTERM): exit 0")
        left = wait_for(lambda: not ours(d.conf), 15)
        t.ok(left, "neither systemd-socket-activate nor smapd is left", repr(ours(d.conf)))
        t.ok(kids and all(not proc_alive(p) for p, _ in kids),
             "the PIDs it ran are gone", repr(kids))


def test_all_taken(t, base):
    held = [hold(p) for p in range(FIRST, LAST + 1)]
    try:
        d = Demo(base)
        try:
            rc = d.proc.wait(90)
        except subprocess.TimeoutExpired:
            rc = d.stop()
        out = d.out()
        t.is_(rc, 1, "every port from %d to %d taken: exit 1" % (FIRST, LAST))
        t.like(out, r"(?m)^tools/demo: every port from %d to %d of 127\.0\.0\.1 is taken" %
               (FIRST, LAST), "and it says so")
        t.unlike(out, r"smap is listening", "it announces nothing")
        t.ok(not ours(d.conf), "and leaves nothing running", repr(ours(d.conf)))
    finally:
        for s in held:
            if s is not None:
                s.close()


def test_swaks(t):
    p = subprocess.run(["swaks", "--support"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    text = p.stdout.decode("utf-8", "replace")
    t.like(text, r"(?m)^=== TLS supported$", "swaks --support: TLS (swaks --tls)")
    t.like(text, r"(?m)^=== IPv6 supported$", "swaks --support: IPv6 (swaks -6)")


def main(t):
    base = tempfile.mkdtemp(prefix="smaptest.demo.")
    os.chmod(base, 0o755)
    try:
        t.run("taken", test_taken, t, os.path.join(base, "taken"))
        t.run("all taken", test_all_taken, t, os.path.join(base, "all"))
        t.run("swaks", test_swaks, t)
    finally:
        if not os.environ.get("SMAPTEST_KEEP"):
            shutil.rmtree(base, ignore_errors=True)


TAP(watchdog=240).main(main)
