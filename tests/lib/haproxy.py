"""haproxy - a private HAProxy on loopback, and PROXY headers by hand.

  v1("198.51.100.7", 40000)    b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 25\\r\\n"
                               (TCP6 for an IPv6 address)
  v2("2001:db8::7", 40000, tlvs=b"", cmd=1)
                               the binary v2 header (cmd 1 PROXY, 0 LOCAL)
  V2_LOCAL                     a v2 LOCAL header, what a health check sends

  with HAProxy(t, servers=[("a", port, "send-proxy-v2")]) as hp:
      hp.port                  the frontend, on 127.0.0.1 and [::1]
      hp.states()              {"a": "UP", ...} from its stats socket
      hp.wait_states({"a": "UP"}, timeout)
      hp.log()                 its log (tcplog lines, server state changes)

  HAProxy (Debian's haproxy, 2.6) runs in the foreground (-db) with a
  config, a pidfile, a stats socket and a log of its own under a fresh
  temp dir; the test starts it and stops it by its PID (SIGTERM, then
  SIGKILL). Every address is numeric and no resolvers section exists:
  it never asks DNS. Nothing here talks to anything but loopback.
"""

import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

from smaptest import SLOW, free_port, listening

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
V2_LOCAL = SIG + b"\x20\x00\x00\x00"


def v1(src, sport=40000, dst=None, dport=25):
    """A PROXY v1 line naming client src:sport (TCP4 or TCP6)."""
    six = ":" in src
    dst = dst or ("::1" if six else "127.0.0.1")
    return ("PROXY %s %s %s %d %d\r\n" % ("TCP6" if six else "TCP4", src, dst, sport,
                                          dport)).encode()


def v2(src, sport=40000, dst=None, dport=25, tlvs=b"", cmd=1):
    """A PROXY v2 header (cmd 1: PROXY, 0: LOCAL) for client src:sport."""
    six = ":" in src
    fam = socket.AF_INET6 if six else socket.AF_INET
    dst = dst or ("::1" if six else "127.0.0.1")
    block = socket.inet_pton(fam, src) + socket.inet_pton(fam, dst) + struct.pack("!HH", sport, dport)
    return SIG + bytes([0x20 | cmd, 0x21 if six else 0x11]) + struct.pack("!H", len(block) + len(tlvs)) + \
        block + tlvs


def skip():
    """Why HAProxy cannot run here, or None."""
    if not os.access(HAPROXY, os.X_OK):
        return "haproxy is not installed (Debian package haproxy; tools/deps test)"
    return None


class HAProxy:
    """servers: [(name, port, options)] of one backend, balanced round
    robin, each checked (TCP, check-send-proxy) every inter ms. Under
    memcheck each check starts an instrumented smap: the interval, the
    check's timeout and the waits for a state are SLOW times longer, so
    that checks do not take the CPU the sessions under test need."""

    def __init__(self, t, servers, inter=200, fall=2, extra_server="", name="haproxy"):
        self.t = t
        self.servers = list(servers)
        self.inter = inter * SLOW
        self.fall = fall
        self.extra_server = extra_server
        self.name = name
        self.proc = None
        self.dir = None
        self.port = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *a):
        self.stop()

    def _config(self):
        d = self.dir
        lines = [
            "# written by tests/lib/haproxy.py (%s)" % self.name,
            "global",
            "    nbthread 1",
            "    log stdout format raw daemon info",
            "    stats socket %s mode 600 level admin" % os.path.join(d, "stats.sock"),
            "    pidfile %s" % os.path.join(d, "haproxy.pid"),
            "defaults",
            "    mode tcp",
            "    log global",
            "    option tcplog",
            "    timeout connect 2s",
            "    timeout client 30s",
            "    timeout server 30s",
            "    timeout check %ds" % SLOW,
            "    retries 2",
            "    option redispatch",
            "frontend smtp",
            "    bind 127.0.0.1:%d" % self.port,
            "    bind [::1]:%d v6only" % self.port,
            "    default_backend smap",
            "backend smap",
            "    balance roundrobin",
        ]
        for name, port, opts in self.servers:
            lines.append("    server %s 127.0.0.1:%d %s check check-send-proxy inter %dms fall %d "
                         "rise 1 %s" % (name, port, opts, self.inter, self.fall, self.extra_server))
        return "\n".join(lines) + "\n"

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="smaptest-hap.")
        self.conffile = os.path.join(self.dir, "haproxy.cfg")
        self.logfile = os.path.join(self.dir, "haproxy.log")
        last = ""
        for _ in range(4):
            self.port = free_port()
            with open(self.conffile, "w") as f:
                f.write(self._config())
            p = subprocess.run([HAPROXY, "-c", "-f", self.conffile], capture_output=True, timeout=20,
                               stdin=subprocess.DEVNULL)
            if p.returncode != 0:
                raise RuntimeError("haproxy -c: %s" % (p.stdout + p.stderr).decode("latin-1")[-1500:])
            out = open(self.logfile, "ab")
            self.proc = subprocess.Popen([HAPROXY, "-db", "-f", self.conffile], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=out, close_fds=True, start_new_session=True)
            out.close()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if listening(self.port) and os.path.exists(os.path.join(self.dir, "stats.sock")):
                    return self
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
            last = self.log()[-800:]
            self._kill()
        raise RuntimeError("haproxy did not listen: %s" % last)

    def _kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def stop(self):
        self._kill()
        if self.dir and not os.environ.get("SMAPTEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        elif self.dir:
            self.t.note("kept %s" % self.dir)
        self.dir = None

    def command(self, cmd):
        """One command on the stats socket; its answer."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(os.path.join(self.dir, "stats.sock"))
            s.sendall(cmd.encode() + b"\n")
            out = b""
            for _ in range(1000):
                b = s.recv(65536)
                if not b:
                    break
                out += b
            return out.decode("latin-1")
        finally:
            s.close()

    def states(self):
        """{server name: status} of the backend ("UP", "DOWN", ...)."""
        out = self.command("show stat")
        lines = out.splitlines()
        if not lines or not lines[0].startswith("# "):
            return {}
        head = lines[0][2:].split(",")
        st, sv, px = head.index("status"), head.index("svname"), head.index("pxname")
        res = {}
        for line in lines[1:]:
            f = line.split(",")
            if len(f) > st and f[px] == "smap" and f[sv] not in ("BACKEND", "FRONTEND"):
                res[f[sv]] = f[st].split(" ")[0]
        return res

    def wait_states(self, want, timeout=10.0):
        """Wait until every server named in want has that status."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            got = self.states()
            if all(got.get(k) == v for k, v in want.items()):
                return got
            if time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("latin-1")
        except OSError:
            return ""
