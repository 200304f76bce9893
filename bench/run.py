#!/usr/bin/env python3
"""bench/run.py - smap's benchmarks, run by `make bench` (after tools/deps bench).

Everything on 127.0.0.1, every wait bounded, every server started here
stopped here by PID. All spools and queues live on one loop-mounted ext4
image (made, mounted and unmounted here). Prints a table and writes the
same into bench/RESULTS.md with the machine it came from.

  receive    smtp-source (one message per connection) against smap under
             systemd-socket-activate --accept --inetd, a private Postfix
             whose smtpd holds what it accepts, and bench/baseline.c under
             the same systemd-socket-activate; messages/s, median of 3
  session    VmHWM of one smap session / one Postfix smtpd after a session;
             instructions per 1 KiB session (perf, else callgrind)
  hand-off   smapd draining N spooled messages into smtp-sink; latency
             from smap's 250 to smtp-sink's receipt with smapd idle;
             Postfix relaying the same load to the same sink
  fsync      strace -f -c -e trace=fsync,fdatasync over 100 messages

Environment: BENCH_LOAD_WAIT (seconds to wait for load < 0.7, default
1200), BENCH_REPEATS (3), BENCH_DRAIN (2000), BENCH_LAT (200),
BENCH_RESULTS (where to write, default bench/RESULTS.md).
Stdlib only; reuses tests/lib (smaptest, smapdtest, postfix).
"""

import os
import re
import shutil
import signal
import smtplib
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
import smapdtest  # noqa: E402
import postfix as pfmod  # noqa: E402

SSA = smaptest.SSA
SMAP_BIN = smaptest.SMAP_BIN
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
POSTSUPER = "/usr/sbin/postsuper"
POSTQUEUE = "/usr/sbin/postqueue"
STRACE = shutil.which("strace") or "/usr/bin/strace"
VALGRIND = shutil.which("valgrind") or "/usr/bin/valgrind"
PERF = shutil.which("perf")

REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
LOAD_WAIT = int(os.environ.get("BENCH_LOAD_WAIT", "1200"))
DRAIN_N = int(os.environ.get("BENCH_DRAIN", "2000"))
LAT_N = int(os.environ.get("BENCH_LAT", "200"))
RESULTS = os.environ.get("BENCH_RESULTS") or os.path.join(HERE, "RESULTS.md")
SIZES = (1024, 102400)
CONCS = (1, 10, 50)
COUNT = {1: 200, 10: 500, 50: 500}     # messages per receive run
FROM = "bench@client.example"
RCPT = "u@example.com"


def log(msg):
    print("bench: " + msg, flush=True)


class Quiet:
    """Stands in for the TAP object tests/lib expects."""

    def ok(self, cond, desc, *diag):
        if not cond:
            log("warning: " + desc)
            for d in diag:
                log("  " + str(d)[:500])
        return cond

    def note(self, msg):
        log(msg)

    def diag(self, msg):
        log(msg)


T = Quiet()


def sh(argv, timeout=60, check=True, **kw):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), p.returncode,
                                                 p.stderr.decode("latin-1")[-800:]))
    return p.stdout.decode("latin-1")


def count_files(path):
    n = 0
    for _root, _dirs, files in os.walk(path):
        n += len(files)
    return n


def clear_dir(path):
    for n in os.listdir(path):
        os.unlink(os.path.join(path, n))


def wait_for(fn, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def stop_proc(p, sig=signal.SIGTERM, wait=10):
    if p is None or p.poll() is not None:
        return
    try:
        os.kill(p.pid, sig)
        p.wait(wait)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait(5)
    except OSError:
        pass


def stop_traced(proc):
    """proc is strace: SIGTERM what it traces, by PID, and let strace
    write its summary and exit (at most 20 s)."""
    for c in children(proc.pid):
        try:
            os.kill(c, signal.SIGTERM)
        except OSError:
            pass
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        pass


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def conn_pid(sock, server_port):
    """PID of the process holding the server end of this TCP connection."""
    lport = sock.getsockname()[1]
    want_local = "0100007F:%04X" % server_port
    want_rem = "0100007F:%04X" % lport
    ino = None
    with open("/proc/net/tcp") as f:
        for line in f:
            p = line.split()
            if len(p) > 9 and p[1] == want_local and p[2] == want_rem:
                ino = p[9]
    if ino is None:
        return None
    tag = "socket:[%s]" % ino
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            for fd in os.listdir("/proc/%s/fd" % d):
                if os.readlink("/proc/%s/fd/%s" % (d, fd)) == tag:
                    return int(d)
        except OSError:
            pass
    return None


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


# --------------------------------------------------------------------------
# servers


class Inetd:
    """An argv under systemd-socket-activate --accept --inetd on 127.0.0.1."""

    def __init__(self, argv, errfile, prefix=()):
        self.argv = list(argv)
        self.errfile = errfile
        self.prefix = list(prefix)
        self.proc = None
        self.port = None

    def start(self):
        for _ in range(5):
            port = smaptest.free_port()
            with open(self.errfile, "ab") as err:
                self.proc = subprocess.Popen(self.prefix + [SSA, "-a", "--inetd", "-l",
                                                            "127.0.0.1:%d" % port] + self.argv,
                                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=err, close_fds=True)
            if wait_for(lambda: smaptest.listening(port) or self.proc.poll() is not None, 10) \
                    and self.proc.poll() is None and smaptest.listening(port):
                self.port = port
                return self
            stop_proc(self.proc)
        raise RuntimeError("systemd-socket-activate did not listen: %s" % self.argv)

    def spawned(self):
        try:
            with open(self.errfile) as f:
                return [int(p) for p in re.findall(r"as PID (\d+)", f.read())]
        except OSError:
            return []

    def wait_sessions(self, timeout=10):
        wait_for(lambda: not any(smaptest.proc_alive(p) for p in self.spawned()), timeout, 0.05)

    def stop(self):
        self.wait_sessions(3)
        stop_proc(self.proc)
        for p in self.spawned():
            if smaptest.proc_alive(p) and self.argv[0].encode() in b" ".join(smaptest.proc_cmdline(p)):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass


class Sink:
    """smtp-sink on 127.0.0.1, one dump file per message under dumpdir."""

    def __init__(self, dumpdir, prefix=()):
        self.dumpdir = dumpdir
        self.prefix = list(prefix)
        os.makedirs(dumpdir, exist_ok=True)
        nobody = pfmod.pwd.getpwnam("nobody")
        os.chown(dumpdir, nobody.pw_uid, nobody.pw_gid)
        self.proc = None
        self.port = None

    def start(self):
        for _ in range(5):
            port = smaptest.free_port()
            self.proc = subprocess.Popen(self.prefix + [SMTP_SINK, "-u", "nobody", "-d",
                                          os.path.join(self.dumpdir, "m."),
                                          "127.0.0.1:%d" % port, "256"],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, close_fds=True)
            if wait_for(lambda: smaptest.listening(port) or self.proc.poll() is not None, 10) \
                    and self.proc.poll() is None:
                self.port = port
                return self
            stop_proc(self.proc)
        raise RuntimeError("smtp-sink did not listen")

    def count(self):
        return len(os.listdir(self.dumpdir))

    def clear(self):
        clear_dir(self.dumpdir)

    def stop(self):
        stop_proc(self.proc)


def smtp_source(port, n, conc, size, timeout=600, prefix=()):
    argv = list(prefix) + [SMTP_SOURCE, "-4", "-s", str(conc), "-m", str(n), "-l", str(size),
                           "-f", FROM, "-t", RCPT, "-M", "client.example", "127.0.0.1:%d" % port]
    t0 = time.monotonic()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError("smtp-source to port %d: exit %d: %s" % (
            port, p.returncode, (p.stdout + p.stderr).decode("latin-1")[-500:]))
    return dt


class SmapTarget:
    name = "smap"

    def __init__(self, srv):
        self.srv = srv
        self.port = srv.port

    def count(self):
        self.srv.wait_sessions(10)
        return self.srv.count_new()

    def clear(self):
        clear_dir(self.srv.newdir())


class BaselineTarget:
    name = "baseline"

    def __init__(self, inetd, spool):
        self.inetd = inetd
        self.port = inetd.port
        self.spool = spool

    def count(self):
        self.inetd.wait_sessions(10)
        return len(os.listdir(os.path.join(self.spool, "new")))

    def clear(self):
        clear_dir(os.path.join(self.spool, "new"))


class PostfixTarget:
    name = "Postfix"

    def __init__(self, pf):
        self.pf = pf
        self.port = pf.port

    def hold_count(self):
        return count_files(os.path.join(self.pf.dir, "queue", "hold"))

    def count(self):
        # postqueue -p: the queue manager's view; hold files: the disk's
        out = sh([POSTQUEUE, "-c", self.pf.etc, "-p"], timeout=60, check=False)
        m = re.search(r"in (\d+) Requests?\.", out)
        pq = int(m.group(1)) if m else 0
        hold = self.hold_count()
        return pq if pq == hold else -abs(pq - hold) or -1

    def clear(self):
        sh([POSTSUPER, "-c", self.pf.etc, "-d", "ALL"], timeout=120, check=False)


OSMTPD_NS = """set -e
# private mount and network namespaces (unshare -m -n): nothing here
# touches the host's files or network
ip link set lo up
mount --bind "$D/passwd" /etc/passwd
mount --bind "$D/group" /etc/group
mount --bind "$D/resolv.conf" /etc/resolv.conf
mount -t tmpfs tmpfs /var/lib && mkdir -p /var/lib/opensmtpd/empty
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/spool && mkdir -m 0711 /var/spool/smtpd
mount --bind "$D/spool" /var/spool/smtpd
exec "$@"
"""


class OpenSMTPD:
    """Debian's OpenSMTPD, unpacked with dpkg-deb -x (its package
    conflicts with postfix), run in private mount and network namespaces:
    its own loopback, a resolv.conf that names no server (it resolves
    every client), users opensmtpd/opensmtpq in a private /etc/passwd,
    its queue on the benchmark filesystem, and mta and mda paused (-P)
    so that it holds what it accepts. smtp-source runs in its namespace."""
    name = "OpenSMTPD"
    max_count = 100     # its listen backlog of 5 makes it slow under concurrency

    def __init__(self, work):
        self.work = work
        self.root = os.path.join(work, "root")
        self.ns = os.path.join(work, "ns")
        self.spool = os.path.join(self.ns, "spool")
        self.port = 2525
        self.proc = None
        self.traced = False
        self.version = None

    def fetch(self):
        os.makedirs(self.ns, exist_ok=True)
        p = subprocess.run(["apt-get", "download", "opensmtpd"], cwd=self.work, capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=300)
        debs = [f for f in os.listdir(self.work) if f.startswith("opensmtpd_") and f.endswith(".deb")]
        if not debs:
            raise RuntimeError("apt-get download opensmtpd: %s" % p.stderr.decode("latin-1")[-300:])
        self.version = debs[0].split("_")[1]
        sh(["dpkg-deb", "-x", os.path.join(self.work, debs[0]), self.root], timeout=120)
        with open("/etc/passwd") as f:
            passwd = f.read()
        with open("/etc/group") as f:
            group = f.read()
        with open(os.path.join(self.ns, "passwd"), "w") as f:
            f.write(passwd + "opensmtpd:x:64001:64001::/nonexistent:/usr/sbin/nologin\n"
                    "opensmtpq:x:64002:64002::/nonexistent:/usr/sbin/nologin\n")
        with open(os.path.join(self.ns, "group"), "w") as f:
            f.write(group + "opensmtpd:x:64001:\nopensmtpq:x:64002:\n")
        with open(os.path.join(self.ns, "resolv.conf"), "w") as f:
            f.write("# no name server: nothing leaves this namespace\nnameserver 127.0.0.255\n")
        with open(os.path.join(self.ns, "smtpd.conf"), "w") as f:
            f.write('listen on 127.0.0.1 port %d\n'
                    'action "hold" relay host smtp://127.0.0.1:9\n'
                    'match from any for any action "hold"\n' % self.port)
        with open(os.path.join(self.ns, "ns.sh"), "w") as f:
            f.write(OSMTPD_NS)
        return self

    def start(self, prefix=()):
        self.traced = bool(prefix)
        shutil.rmtree(self.spool, ignore_errors=True)
        os.mkdir(self.spool, 0o711)
        os.chmod(self.spool, 0o711)
        argv = ["unshare", "-m", "-n", "env", "D=" + self.ns, "sh", os.path.join(self.ns, "ns.sh")] + \
            list(prefix) + [os.path.join(self.root, "usr/sbin/smtpd"), "-d", "-f",
                            os.path.join(self.ns, "smtpd.conf"), "-P", "mta", "-P", "mda"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.ns, "smtpd.err"), "ab"), close_fds=True)
        want = ":%04X " % self.port
        if not wait_for(lambda: self.proc.poll() is not None or self._listening(want), 20):
            raise RuntimeError("OpenSMTPD did not listen")
        if self.proc.poll() is not None:
            with open(os.path.join(self.ns, "smtpd.err"), errors="replace") as f:
                raise RuntimeError("OpenSMTPD exited %d: %s" % (self.proc.returncode, f.read()[-500:]))
        self.prefix = ["nsenter", "-t", str(self.proc.pid), "-n", "--"]
        return self

    def _listening(self, want):
        try:
            with open("/proc/%d/net/tcp" % self.proc.pid) as f:
                return any(want in l and " 0A " in l for l in f)
        except OSError:
            return False

    def count(self):
        # one directory per message under queue/BUCKET/MSGID, holding "message"
        time.sleep(0.2)
        q = os.path.join(self.spool, "queue")
        return sum(1 for d, _, fs in os.walk(q) for f in fs if f == "message")

    def clear(self):
        self.stop()
        self.start()

    def stop(self):
        if self.proc is None:
            return
        if self.traced:     # under strace, smtpd is strace's child
            stop_traced(self.proc)
        stop_proc(self.proc)
        self.proc = None


# --------------------------------------------------------------------------
# measurements


def receive(targets, results):
    for size in SIZES:
        for conc in CONCS:
            for rep in range(REPEATS):
                for tg in targets:
                    n = min(COUNT[conc], getattr(tg, "max_count", COUNT[conc]))
                    tg.clear()
                    os.sync()
                    dt = smtp_source(tg.port, n, conc, size, prefix=getattr(tg, "prefix", ()))
                    got = tg.count()
                    if got != n:
                        raise RuntimeError("%s: %d messages sent, %d on disk (size %d, conc %d)" % (
                            tg.name, n, got, size, conc))
                    rate = n / dt
                    results.setdefault((size, conc, tg.name), []).append(rate)
                    log("receive %s size=%d conc=%d rep=%d: %d msgs in %.2fs = %.0f msg/s, %d on disk" % (
                        tg.name, size, conc, rep + 1, n, dt, rate, got))
            for tg in targets:
                tg.clear()


def smtp_session(port, body_size=1024):
    """One SMTP session up to the 250 after end-of-data; returns the socket
    (QUIT not sent yet) so the server process can still be looked at."""
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if not line:
                raise RuntimeError("connection closed")
            if line[3:4] != b"-":
                return line

    def cmd(c):
        s.sendall(c + b"\r\n")
        return reply()

    reply()
    cmd(b"EHLO client.example")
    cmd(b"MAIL FROM:<%s>" % FROM.encode())
    cmd(b"RCPT TO:<%s>" % RCPT.encode())
    r = cmd(b"DATA")
    if not r.startswith(b"354"):
        raise RuntimeError("DATA: %r" % r)
    body = b"From: <%s>\r\nTo: <%s>\r\nSubject: rss\r\n\r\n" % (FROM.encode(), RCPT.encode())
    line = b"x" * 62 + b"\r\n"
    body += line * (body_size // len(line))
    r = cmd(body + b".")
    if not r.startswith(b"250"):
        raise RuntimeError("end of data: %r" % r)
    return s, f


def session_rss(port):
    s, f = smtp_session(port)
    try:
        pid = conn_pid(s, port)
        if pid is None:
            raise RuntimeError("no process holds the connection on port %d" % port)
        with open("/proc/%d/comm" % pid) as fh:
            comm = fh.read().strip()
        hwm = proc_status(pid, "VmHWM")
        priv = private_kb(pid)
        s.sendall(b"QUIT\r\n")
        f.readline()
    finally:
        s.close()
    return comm, hwm, priv


def private_kb(pid):
    """Memory the process has to itself (Private_Clean + Private_Dirty in
    smaps_rollup): RSS without the shared library pages that every
    process mapping them counts again."""
    total = 0
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
    return total


def perf_works():
    if not PERF:
        return False
    p = subprocess.run([PERF, "stat", "-x,", "-e", "instructions", "true"], capture_output=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    return p.returncode == 0 and re.search(rb"^\d+,", p.stderr, re.M) is not None


def instructions(argv, errdir, name, cgout):
    """Instructions of one 1 KiB session of argv under systemd-socket-activate.
    cgout: callgrind's output file as the program sees it at exit (smap
    is chrooted into its spool by then)."""
    out = os.path.join(errdir, "%s.instr" % name)
    if perf_works():
        prefix = [PERF, "stat", "-x,", "-e", "instructions:u", "-o", out, "--"]
        how = "perf stat -e instructions:u"
    else:
        prefix = [VALGRIND, "--tool=callgrind", "--callgrind-out-file=" + cgout,
                  "--log-file=" + out]
        how = "valgrind --tool=callgrind, Ir"
    inetd = Inetd(prefix + argv, os.path.join(errdir, "%s.instr.ssa" % name)).start()
    try:
        s, f = smtp_session(inetd.port)
        s.sendall(b"QUIT\r\n")
        f.readline()
        s.close()
        inetd.wait_sessions(60)
    finally:
        inetd.stop()
    with open(out, errors="replace") as fh:
        text = fh.read()
    m = re.search(r"Collected : (\d+)", text) or re.search(r"^(\d+),", text, re.M)
    if not m:
        raise RuntimeError("no instruction count in %s: %s" % (out, text[-500:]))
    return int(m.group(1)), how


def strace_summary(path):
    calls = {"fsync": 0, "fdatasync": 0}
    with open(path) as f:
        for line in f:
            m = re.match(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(fsync|fdatasync)\s*$", line)
            if m:
                calls[m.group(2)] += int(m.group(1))
    return calls


def fsyncs_smap(srv, workdir, n=100):
    out = os.path.join(workdir, "strace-smap.txt")
    inetd = Inetd([SMAP_BIN, "-c", srv.conffile], os.path.join(workdir, "strace-smap.ssa"),
                  prefix=[STRACE, "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", out])
    inetd.start()
    try:
        before = srv.count_new()
        smtp_source(inetd.port, n, 1, 1024)
        inetd.wait_sessions(10)
        got = srv.count_new() - before
    finally:
        # the strace process is inetd.proc; stop the ssa it runs, by PID
        stop_traced(inetd.proc)
        stop_proc(inetd.proc)
    if got != n:
        raise RuntimeError("fsync run: %d of %d on disk" % (got, n))
    return strace_summary(out), n


def fsyncs_postfix(pf, pft, workdir, n=100):
    out = os.path.join(workdir, "strace-postfix.txt")
    pids = [p for p in pfmod._group_members(pf.proc.pid) if smaptest.proc_alive(p)]
    argv = [STRACE, "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", out]
    for p in pids:
        argv += ["-p", str(p)]
    st = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)     # let strace attach
        pft.clear()
        smtp_source(pf.port, n, 1, 1024)
        time.sleep(0.5)
        got = pft.count()
    finally:
        try:
            os.kill(st.pid, signal.SIGINT)
            st.wait(30)
        except subprocess.TimeoutExpired:
            stop_proc(st, signal.SIGKILL)
        except OSError:
            pass
    pft.clear()
    if got != n:
        raise RuntimeError("Postfix fsync run: %d of %d held" % (got, n))
    return strace_summary(out), n


def fsyncs_osmtpd(osd, workdir, n=100):
    out = os.path.join(workdir, "strace-opensmtpd.txt")
    osd.stop()
    osd.start(prefix=[STRACE, "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", out])
    try:
        smtp_source(osd.port, n, 1, 1024, prefix=osd.prefix)
        got = osd.count()
    finally:
        osd.stop()
        osd.start()
    if got != n:
        raise RuntimeError("OpenSMTPD fsync run: %d of %d queued" % (got, n))
    return strace_summary(out), n


def drain_smap(srv, sink, n, conc=None):
    srv_t = SmapTarget(srv)
    srv_t.clear()
    smtp_source(srv.port, n, 10, 1024)
    if srv_t.count() != n:
        raise RuntimeError("drain: %d of %d spooled" % (srv_t.count(), n))
    sink.clear()
    os.sync()
    conf = {"default_transport": "smtp:[127.0.0.1]:%d" % sink.port}
    if conc is not None:
        conf["default_destination_concurrency_limit"] = str(conc)
    d = smapdtest.Smapd(T, srv, conf=conf, name="smapd-bench")
    t0 = time.monotonic()
    d.start()
    ok = wait_for(lambda: sink.count() >= n, 600, 0.01)
    dt = time.monotonic() - t0
    if not ok:
        d.stop()
        raise RuntimeError("smapd drain: %d of %d reached the sink" % (sink.count(), n))
    return d, n / dt, dt


def sink_data_replies(path):
    """When smtp-sink answered the end of each message's data, from
    strace -ttt of the sink: the first write of "250 2.0.0" on a
    descriptor after a read on it that ended with CRLF.CRLF. (The dump
    file's mtime cannot serve: ext4 stamps it with the coarse clock, up
    to a tick before the real time.)"""
    ended, out = set(), []
    rx = re.compile(r'^\d+\s+(\d+\.\d+) (read|write)\((\d+), "(.*)"(?:\.\.\.)?, \d+\) = (\d+)')
    with open(path, errors="replace") as f:
        for line in f:
            m = rx.match(line)
            if not m:
                continue
            ts, call, fd, data = float(m.group(1)), m.group(2), m.group(3), m.group(4)
            if call == "read":
                if data.endswith("\\r\\n.\\r\\n"):
                    ended.add(fd)
            elif fd in ended and data.startswith("250 2.0.0"):
                ended.discard(fd)
                out.append(ts)
    return out


def latency_smap(srv, sinkdir, n):
    """smap's 250 to the backend's 250, one probe at a time, smapd idle:
    a second smtp-sink under strace, so the drain runs stay unslowed."""
    trace = os.path.join(sinkdir, "strace.out")
    sink = Sink(os.path.join(sinkdir, "dump"), prefix=[STRACE, "-f", "-ttt", "-s", "4096", "-o", trace,
                                                         "-e", "trace=read,write"]).start()
    d = smapdtest.Smapd(T, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % sink.port},
                        name="smapd-latency")
    t250s = []
    try:
        d.start()
        for i in range(n):
            before = sink.count()
            msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: lat-%d\r\n\r\nlatency probe\r\n" % (
                FROM, RCPT, i)).encode()
            with smtplib.SMTP("127.0.0.1", srv.port, local_hostname="client.example", timeout=20) as c:
                c.sendmail(FROM, [RCPT], msg)
                t250s.append(time.time())
            if not wait_for(lambda: sink.count() > before, 10, 0.001):
                raise RuntimeError("latency probe %d never reached the sink" % i)
    finally:
        d.stop()
        sink.stop()
    acks = sink_data_replies(trace)
    if len(acks) != n:
        raise RuntimeError("latency: %d end-of-data replies in the sink's trace for %d probes" % (len(acks), n))
    return [(a - t) * 1000.0 for a, t in zip(acks, t250s)]


def drain_postfix(pf, pft, sink, n):
    pft.clear()
    smtp_source(pf.port, n, 10, 1024)
    if pft.count() != n:
        raise RuntimeError("Postfix relay: %d of %d held" % (pft.count(), n))
    sink.clear()
    os.sync()
    t0 = time.monotonic()
    sh([POSTSUPER, "-c", pf.etc, "-H", "ALL"], timeout=120)
    sh([POSTQUEUE, "-c", pf.etc, "-f"], timeout=60)
    ok = wait_for(lambda: sink.count() >= n, 600, 0.01)
    dt = time.monotonic() - t0
    if not ok:
        raise RuntimeError("Postfix relay: %d of %d reached the sink" % (sink.count(), n))
    return n / dt, dt


def pct(xs, p):
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


# --------------------------------------------------------------------------
# machine, load, loop mount


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def wait_quiet():
    t0 = time.monotonic()
    la = loadavg()
    while la >= 0.7 and time.monotonic() - t0 < LOAD_WAIT:
        log("1-minute load average %.2f >= 0.7; waiting (%.0fs of at most %ds)" % (
            la, time.monotonic() - t0, LOAD_WAIT))
        time.sleep(min(30, max(1, LOAD_WAIT - (time.monotonic() - t0))))
        la = loadavg()
    return la < 0.7, la, time.monotonic() - t0


def machine():
    info = {}
    info["nproc"] = sh(["nproc"]).strip()
    info["lscpu"] = "\n".join(sh(["lscpu"]).splitlines()[:10])
    info["kernel"] = " ".join(os.uname()[2:4])
    try:
        info["os"] = re.search(r'PRETTY_NAME="([^"]*)"', open("/etc/os-release").read()).group(1)
    except (OSError, AttributeError):
        info["os"] = "?"
    info["mem"] = open("/proc/meminfo").readline().split(":")[1].strip()
    try:
        info["rev"] = sh(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], check=False).strip()
    except (OSError, subprocess.SubprocessError):
        info["rev"] = "?"
    info["postfix"] = sh(["/usr/sbin/postconf", "-d", "-h", "mail_version"], check=False).strip()
    return info


class LoopFS:
    def __init__(self):
        self.work = tempfile.mkdtemp(prefix="smap-bench.", dir="/var/tmp")
        self.img = os.path.join(self.work, "fs.img")
        self.mnt = os.path.join(self.work, "mnt")
        self.mounted = False

    def __enter__(self):
        os.chmod(self.work, 0o755)     # Postfix and smtp-sink users traverse it
        os.makedirs(self.mnt)
        sh(["truncate", "-s", "1G", self.img])
        sh(["mkfs.ext4", "-q", "-F", self.img], timeout=120)
        sh(["mount", "-o", "loop", self.img, self.mnt], timeout=60)
        self.mounted = True
        os.chmod(self.mnt, 0o755)
        self.desc = sh(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", self.mnt]).strip()
        under = sh(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", self.work]).strip()
        self.desc += " (1 GiB image file on %s)" % under
        return self

    def __exit__(self, *a):
        if self.mounted:
            for _ in range(10):
                if subprocess.run(["umount", self.mnt], stdin=subprocess.DEVNULL,
                                  capture_output=True).returncode == 0:
                    self.mounted = False
                    break
                time.sleep(1)
        if self.mounted:
            log("warning: could not unmount %s; left in place" % self.mnt)
        else:
            shutil.rmtree(self.work, ignore_errors=True)


# --------------------------------------------------------------------------
# report


def fmt(x, nd=0):
    return ("%%.%df" % nd) % x


def report(R, info, env):
    L = []
    add = L.append
    if not env["quiet"]:
        add("**WARNING: these numbers were taken under load (1-minute load average %.2f when the "
            "measured runs started, after waiting %.0fs; %.2f at the end). Other jobs were running "
            "on this machine: re-measure before relying on them.**" % (
                env["load_start"], env["waited"], env["load_end"]))
        add("")
    envs = " ".join("%s=%s" % (k, os.environ[k]) for k in
                    ("BENCH_LOAD_WAIT", "BENCH_REPEATS", "BENCH_DRAIN", "BENCH_LAT") if k in os.environ)
    add("Command: `%smake bench` (tools/deps bench, then `python3 bench/run.py`), %s, smap %s." % (
        envs + " " if envs else "", env["date"], info["rev"]))
    add("")
    add("Machine: %s CPUs (`nproc`), %s, kernel %s, %s RAM, Postfix %s." % (
        info["nproc"], info["os"], info["kernel"], info["mem"], info["postfix"]))
    add("Filesystem of every spool and queue: %s." % env["fs"])
    add("Load average (1 min): %.2f at the start of the measured runs (after waiting %.0fs of at "
        "most %ds for it to fall below 0.7), %.2f at the end." % (
            env["load_start"], env["waited"], LOAD_WAIT, env["load_end"]))
    add("")
    add("```")
    add(info["lscpu"])
    add("```")
    add("")
    add("### Receive: smtp-source, one message per connection, messages/s (median of %d)" % REPEATS)
    add("")
    add("| size | concurrency | msgs/run | smap | Postfix smtpd (hold) | Postfix / smap "
        "| baseline.c | smap / baseline | OpenSMTPD |")
    add("|---|---|---|---|---|---|---|---|---|")
    for size in SIZES:
        for conc in CONCS:
            s = statistics.median(R["recv"][(size, conc, "smap")])
            p = statistics.median(R["recv"][(size, conc, "Postfix")])
            b = statistics.median(R["recv"][(size, conc, "baseline")])
            o = R["recv"].get((size, conc, "OpenSMTPD"))
            o = "%s (%.2f)" % (fmt(statistics.median(o)), statistics.median(o) / s) if o else "skipped*"
            add("| %d KiB | %d | %d | %s | %s | %.2f | %s | %.2f | %s |" % (
                size // 1024, conc, COUNT[conc], fmt(s), fmt(p), p / s, fmt(b), s / b, o))
    add("")
    if env.get("osmtpd"):
        add("OpenSMTPD %s (Debian's package, unpacked with `dpkg-deb -x`: it conflicts with postfix) ran "
            "in private mount and network namespaces with a resolv.conf naming no server, its queue on "
            "the same filesystem, mta and mda paused (`-P mta -P mda`) so that it holds what it "
            "accepts; smtp-source ran in its namespace (nsenter). In brackets: OpenSMTPD / smap. "
            "It listens with a backlog of 5, which limits it under concurrency; it was sent at most "
            "%d messages per run." % (env["osmtpd"], OpenSMTPD.max_count))
    else:
        add("\\* OpenSMTPD not run: %s" % env.get("osmtpd_skip", "unknown reason"))
    add("smap and baseline.c are started for every connection (fork and exec by "
        "systemd-socket-activate --inetd, the inetd model); Postfix's smtpd serves many "
        "connections per process (max_use 100 here).")
    add("Every run was checked: files in smap's (and baseline's) new/ == messages sent; "
        "Postfix: `postqueue -p` count == files in the hold queue == messages sent; OpenSMTPD: "
        "message files in its queue == messages sent.")
    add("")
    add("### Cost per session (1 KiB message)")
    add("")
    add("| | smap | Postfix smtpd | baseline.c |")
    add("|---|---|---|---|")
    rs = R["rss"]
    add("| peak RSS (VmHWM after the 250, before QUIT) | %d KiB | %d KiB | %d KiB |" % (
        rs["smap"][1], rs["Postfix"][1], rs["baseline"][1]))
    add("| private memory then (Private_Clean + Private_Dirty) | %d KiB | %d KiB | %d KiB |" % (
        rs["smap"][2], rs["Postfix"][2], rs["baseline"][2]))
    ins = R["instr"]
    add("| instructions per session (%s) | %s | not measured | %s |" % (
        ins["how"], "{:,}".format(ins["smap"]), "{:,}".format(ins["baseline"])))
    add("")
    add("Most of a short-lived process's RSS is shared library text the kernel maps in 64 KiB "
        "runs around each page touched (libc alone is about 1.7 MB of smap's RSS); the private "
        "line is what each further session really costs. "
        "Postfix smtpd's VmHWM is of a fresh smtpd (its first session); a Postfix session also "
        "runs cleanup(8), trivial-rewrite(8) and others, not counted. Instructions: user-space, "
        "from exec to exit (dynamic linking included; without TLS smap loads no OpenSSL), one session "
        "under systemd-socket-activate. `perf stat -e instructions` is not supported on this "
        "machine, so valgrind counted them, and valgrind cannot run seccomp(2): the smap counted is "
        "the normal build linked with tests/nosandbox.c in place of common/sandbox.c (no filter "
        "installed). Postfix smtpd's count was not measured (master(8) starts it; no wrapper).")
    add("")
    add("### Hand-off to smtp-sink (1 KiB messages)")
    add("")
    h = R["handoff"]
    add("| | messages/s | messages | seconds |")
    add("|---|---|---|---|")
    add("| smapd draining the spool (smtp: transport, its default of 20 processes) | %s | %d | %.1f |" % (
        fmt(h["smapd"][0]), DRAIN_N, h["smapd"][1]))
    if "smapd1" in h:
        add("| smapd with default_destination_concurrency_limit = 1 (one at a time) | %s | %d | %.1f |" % (
            fmt(h["smapd1"][0]), DRAIN_N, h["smapd1"][1]))
    if "postfix" in h:
        add("| Postfix relaying its queue (postsuper -H ALL; postqueue -f) | %s | %d | %.1f |" % (
            fmt(h["postfix"][0]), DRAIN_N, h["postfix"][1]))
    else:
        add("| Postfix relaying | not measured | | |")
    lat = R["lat"]
    add("")
    add("Latency from smap's 250 to smtp-sink's 250 for the data (strace -ttt of the sink), smapd idle, %d messages one "
        "at a time: p50 %.1f ms, p99 %.1f ms, max %.1f ms." % (
            len(lat), pct(lat, 50), pct(lat, 99), max(lat)))
    add("")
    add("### fsync per message (strace -f -c -e trace=fsync,fdatasync, %d messages, 1 KiB)" %
        R["fsync"]["n"])
    add("")
    add("| | fsync | fdatasync | per message |")
    add("|---|---|---|---|")
    for k in ("smap", "Postfix", "OpenSMTPD"):
        if k not in R["fsync"]:
            continue
        c = R["fsync"][k]
        add("| %s | %d | %d | %.2f |" % (k, c["fsync"], c["fdatasync"],
                                          (c["fsync"] + c["fdatasync"]) / R["fsync"]["n"]))
    add("")
    add("smap fsyncs the file and the directory (new/) before its 250; Postfix (cleanup) fsyncs "
        "the queue file but not the directory; OpenSMTPD answers 250 without an fsync, so a crash "
        "can lose what it accepted. Speed is compared at these different levels of durability.")
    add("")
    add("### Targets")
    add("")
    worst_pf = min(statistics.median(R["recv"][(sz, c, "smap")]) /
                   statistics.median(R["recv"][(sz, c, "Postfix")]) for sz in SIZES for c in CONCS)
    worst_bl = min(statistics.median(R["recv"][(sz, c, "smap")]) /
                   statistics.median(R["recv"][(sz, c, "baseline")]) for sz in SIZES for c in CONCS)
    rss_ratio = rs["smap"][1] / rs["Postfix"][1]
    priv_ratio = rs["smap"][2] / rs["Postfix"][2]

    def met(b):
        return "met" if b else "MISSED"
    add("| target | measured | |")
    add("|---|---|---|")
    add("| smap >= Postfix at every point | worst smap/Postfix = %.2f | %s |" % (
        worst_pf, met(worst_pf >= 1.0)))
    add("| smap within 15%% of baseline.c | worst smap/baseline = %.2f | %s |" % (
        worst_bl, met(worst_bl >= 0.85)))
    add("| session RSS < 1/4 of Postfix smtpd's | %.2f of it (private memory: %.2f) | %s |" % (
        rss_ratio, priv_ratio, met(rss_ratio < 0.25)))
    if "postfix" in h:
        r = h["smapd"][0] / h["postfix"][0]
        add("| smapd drain >= 2x Postfix relay | %.2fx | %s |" % (r, met(r >= 2.0)))
    add("| p99 hand-off latency < 100 ms | %.1f ms | %s |" % (pct(lat, 99), met(pct(lat, 99) < 100)))
    return "\n".join(L) + "\n"


# --------------------------------------------------------------------------


def main():
    if os.geteuid() != 0:
        print("bench/run.py: needs root (loop mount, systemd-socket-activate, Postfix)",
              file=sys.stderr)
        return 1
    for b in (SMAP_BIN, smapdtest.SMAPD_BIN):
        if not os.access(b, os.X_OK):
            print("bench/run.py: %s missing: run make first" % b, file=sys.stderr)
            return 1
    signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(TimeoutError("bench watchdog")))
    signal.alarm(int(os.environ.get("BENCH_WATCHDOG", "4800")))
    info = machine()
    env = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    R = {"recv": {}}
    stack = []
    with LoopFS() as fs:
        env["fs"] = fs.desc
        tempfile.tempdir = fs.mnt
        try:
            # baseline.c, built here
            bdir = tempfile.mkdtemp(prefix="baseline.")
            os.chmod(bdir, 0o755)
            bbin = os.path.join(fs.work, "baseline")
            sh(["cc", "-O2", "-o", bbin, os.path.join(HERE, "baseline.c")], timeout=120)
            for sub in ("tmp", "new"):
                os.makedirs(os.path.join(bdir, sub))
            sink = Sink(os.path.join(fs.work, "sink")).start()
            stack.append(sink)
            srv = smaptest.Server(T, conf={"relay_domains": "example.com",
                                           "mynetworks": "127.0.0.0/8"}, name="bench")
            srv.start()
            stack.append(srv)
            base = Inetd([bbin, bdir], os.path.join(bdir, "ssa.err")).start()
            stack.append(base)
            pf = pfmod.Postfix(T, main={
                "smtpd_end_of_data_restrictions": "check_client_access static:HOLD",
                "in_flow_delay": "0",
                "max_use": "100",
                "max_idle": "100s",
                "default_transport": "smtp:[127.0.0.1]:%d" % sink.port,
                "relay_domains": "",
                "smtp_tls_security_level": "none",
            }, name="bench")
            pf.start()
            stack.append(pf)
            pft = PostfixTarget(pf)
            targets = [SmapTarget(srv), PostfixTarget(pf), BaselineTarget(base, bdir)]
            osd = None
            try:
                osd = OpenSMTPD(os.path.join(fs.mnt, "opensmtpd")).fetch()
                stack.append(osd)
                osd.start()
                targets.append(osd)
                env["osmtpd"] = osd.version
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                env["osmtpd_skip"] = str(e)[:300]
                log("OpenSMTPD skipped: %s" % env["osmtpd_skip"])
                osd = None

            env["quiet"], env["load_start"], env["waited"] = wait_quiet()
            log("load average %.2f after %.0fs: measuring%s" % (
                env["load_start"], env["waited"], "" if env["quiet"] else " UNDER LOAD"))

            # per-session cost first: Postfix's smtpd is fresh
            R["rss"] = {"Postfix": session_rss(pf.port), "smap": session_rss(srv.port),
                        "baseline": session_rss(base.port)}
            log("VmHWM: %r" % R["rss"])
            for tg in targets:
                tg.clear()
            # valgrind cannot run seccomp(2): count instructions on smap
            # linked with tests/nosandbox.c in place of common/sandbox.c
            nosec = os.path.join(fs.work, "smap-nosandbox")
            sh(["cc", "-O2", "-c", "-o", nosec + ".o", os.path.join(REPO, "tests", "nosandbox.c")])
            sh(["cc", "-o", nosec, os.path.join(REPO, "smap", "main.o"), nosec + ".o",
                os.path.join(REPO, "smap", "libsmap.a"), os.path.join(REPO, "common", "libcommon.a")] +
               sh(["pkg-config", "--libs", "libcap"]).split() + ["-ldl"], timeout=120)
            si, how = instructions([nosec, "-c", srv.conffile], fs.work, "smap", "/tmp/cg.%p")
            for n in os.listdir(srv.tmpdir()):
                if n.startswith("cg."):
                    os.unlink(os.path.join(srv.tmpdir(), n))
            bi, _ = instructions([bbin, bdir], fs.work, "baseline", os.path.join(fs.work, "cg.%p"))
            R["instr"] = {"smap": si, "baseline": bi, "how": how}
            log("instructions (%s): smap %d, baseline %d" % (how, si, bi))
            for tg in targets:
                tg.clear()

            fs_smap, n = fsyncs_smap(srv, fs.work)
            fs_pf, _ = fsyncs_postfix(pf, pft, fs.work)
            R["fsync"] = {"smap": fs_smap, "Postfix": fs_pf, "n": n}
            if osd is not None:
                R["fsync"]["OpenSMTPD"], _ = fsyncs_osmtpd(osd, fs.work)
            log("fsyncs over %d messages: smap %r, Postfix %r" % (n, fs_smap, fs_pf))
            for tg in targets:
                tg.clear()

            receive(targets, R["recv"])

            R["handoff"] = {}
            d, rate, dt = drain_smap(srv, sink, DRAIN_N)
            d.stop()
            R["handoff"]["smapd"] = (rate, dt)
            log("smapd drain: %d in %.2fs = %.0f msg/s" % (DRAIN_N, dt, rate))
            # and strictly one at a time, in queue order
            d, rate, dt = drain_smap(srv, sink, DRAIN_N, conc=1)
            d.stop()
            R["handoff"]["smapd1"] = (rate, dt)
            log("smapd drain, one process: %d in %.2fs = %.0f msg/s" % (DRAIN_N, dt, rate))
            R["lat"] = latency_smap(srv, os.path.join(fs.work, "latency"), LAT_N)
            log("latency p50 %.1f ms p99 %.1f ms" % (pct(R["lat"], 50), pct(R["lat"], 99)))
            rate, dt = drain_postfix(pf, pft, sink, DRAIN_N)
            R["handoff"]["postfix"] = (rate, dt)
            log("Postfix relay: %d in %.2fs = %.0f msg/s" % (DRAIN_N, dt, rate))
            env["load_end"] = loadavg()
        finally:
            signal.alarm(0)
            for obj in reversed(stack):
                try:
                    obj.stop()
                except Exception as e:  # noqa: BLE001 - stop the rest
                    log("warning: stopping %s: %s" % (type(obj).__name__, e))
            tempfile.tempdir = None
    text = report(R, info, env)
    print()
    print(text)
    with open(RESULTS, "w") as f:
        f.write("# smap benchmarks\n\nWritten by `make bench` (bench/run.py); the same table "
                "is printed at the end of the run.\n\n" + text)
    log("wrote %s" % RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
