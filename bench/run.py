#!/usr/bin/env python3
"""bench/run.py - smap's benchmarks, run by `make bench` (after tools/deps bench).

Everything on 127.0.0.1, every wait bounded, every server started here
stopped here by PID. All spools and queues live on one loop-mounted ext4
image (data=ordered; made, mounted and unmounted here); smtp-sink's dump
files on a private tmpfs (SinkFS). Writes
bench/RESULTS.md (a chart of the receive matrix first, bench/receive.png,
then the targets of the work that made these figures, met or missed,
then every table) and prints the same.

  profile    where one smap session's time goes (bench/session_profile.py):
             system calls and instructions by phase, static (the default) and dynamic
  session    per-session cost: CPU (the child's utime+stime, posix_spawn),
             minor faults, VmHWM and private memory at the 250,
             instructions (callgrind)
  receive    smtp-source (one message per connection) against each
             receiver, messages/s (median of REPEATS) and CPU per
             message; each run checked: what is on disk == what was sent
  flood      connect, EHLO, QUIT (bench/flood.c): sessions/s, CPU each
  fsync      strace -f -c -e trace=fsync,fdatasync over 100 messages
  handoff    smapd draining the spool into smtp-sink; latency from smap's
             250 to smtp-sink's; Postfix relaying the same to the sink

Receivers: smap (the default build, linked statically; spool_fsync =
file+directory, and = file), smap dynamic (smap/smap-dynamic, what the
static smap runs for TLS, or make STATIC=0 builds as smap; both levels),
smap under tcpserver (both levels) and under xinetd, bench/baseline.c
(fork-exec, file and directory fsynced; also under tcpserver), a private Postfix whose smtpd holds what
it accepts, and Debian's OpenSMTPD (with bench/listen_shim.so raising
its listen backlog). smap and the baseline run under
systemd-socket-activate unless the launcher is named.

Environment: BENCH_LOAD_WAIT (seconds to wait for load < 0.7, default
1200), BENCH_REPEATS (3), BENCH_DRAIN (2000), BENCH_LAT (200),
BENCH_FLOOD (sessions per flood run, 2000), BENCH_SIZES (1024,102400),
BENCH_CONCS (1,10,50), BENCH_ONLY (a comma list of the parts above),
BENCH_RECEIVERS (a comma list of keys: smap smap-file dynamic
dynamic-file tcpserver tcpserver-file xinetd baseline baseline-tcpserver
postfix opensmtpd),
BENCH_RESULTS (where to write; default bench/RESULTS.md for a whole
run, /tmp/smap-bench-RESULTS.md for a part). Stdlib only; reuses
tests/lib (smaptest, smapdtest, postfix).
"""

import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
sys.path.insert(0, HERE)

import smaptest  # noqa: E402
import smapdtest  # noqa: E402
import postfix as pfmod  # noqa: E402
import servers as S  # noqa: E402
import session_profile as prof  # noqa: E402
import report as rep  # noqa: E402
from servers import log, sh, wait_for, stop_proc  # noqa: E402

SMAP_BIN = smaptest.SMAP_BIN
SMAP_DYNAMIC = os.path.join(REPO, "smap", "smap-dynamic")
SMAP_VG = os.path.join(REPO, "smap", "smap-vg")
SMAP_STATIC_VG = os.path.join(REPO, "smap", "smap-static-vg")
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
STRACE = shutil.which("strace") or "/usr/bin/strace"
POSTSUPER = S.POSTSUPER
POSTQUEUE = S.POSTQUEUE

PARTS = ("profile", "session", "receive", "flood", "fsync", "handoff")
ONLY = [p for p in os.environ.get("BENCH_ONLY", ",".join(PARTS)).split(",") if p]
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
LOAD_WAIT = int(os.environ.get("BENCH_LOAD_WAIT", "1200"))
DRAIN_N = int(os.environ.get("BENCH_DRAIN", "2000"))
LAT_N = int(os.environ.get("BENCH_LAT", "200"))
FLOOD_N = int(os.environ.get("BENCH_FLOOD", "2000"))
SIZES = tuple(int(x) for x in os.environ.get("BENCH_SIZES", "1024,102400").split(","))
CONCS = tuple(int(x) for x in os.environ.get("BENCH_CONCS", "1,10,50").split(","))
FLOOD_CONCS = (10, 50)
COUNT = {1: 200, 10: 500, 50: 500}     # messages per receive run
FROM = "bench@client.example"
RCPT = "u@example.com"
PARTIAL = "BENCH_ONLY" in os.environ or "BENCH_RECEIVERS" in os.environ or \
    "BENCH_SIZES" in os.environ or "BENCH_CONCS" in os.environ
RESULTS = os.environ.get("BENCH_RESULTS") or (
    "/tmp/smap-bench-RESULTS.md" if PARTIAL else os.path.join(HERE, "RESULTS.md"))
CHART = os.path.join(os.path.dirname(RESULTS) if PARTIAL else HERE, "receive.png")

# key: (label, build, durability, launcher); the order of the tables
RECEIVERS = [
    ("smap", ("smap", "default", "file+directory", "ssa")),
    ("smap-file", ("smap", "default", "file", "ssa")),
    ("dynamic", ("smap dynamic", "dynamic", "file+directory", "ssa")),
    ("dynamic-file", ("smap dynamic", "dynamic", "file", "ssa")),
    ("tcpserver", ("smap, tcpserver", "default", "file+directory", "tcpserver")),
    ("tcpserver-file", ("smap, tcpserver", "default", "file", "tcpserver")),
    ("xinetd", ("smap, xinetd", "default", "file+directory", "xinetd")),
    ("baseline", ("baseline.c", "baseline", "file+directory", "ssa")),
    ("baseline-tcpserver", ("baseline.c, tcpserver", "baseline", "file+directory", "tcpserver")),
    ("postfix", ("Postfix smtpd", "postfix", "file", None)),
    ("opensmtpd", ("OpenSMTPD", "opensmtpd", "none", None)),
]
WANT = [k for k in os.environ.get("BENCH_RECEIVERS", ",".join(k for k, _ in RECEIVERS)).split(",") if k]


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


# --------------------------------------------------------------------------
# measurements


def receive_one(tg, size, conc, rep_, results):
    """One smtp-source run against tg, checked: what is on disk == sent."""
    n = COUNT[conc]
    tg.clear()
    os.sync()
    c0 = tg.cpu()
    dt = smtp_source(tg.port, n, conc, size, prefix=getattr(tg, "prefix", ()))
    got = tg.count()
    cpu = (tg.cpu() - c0) / n
    if got != n:
        raise RuntimeError("%s: %d messages sent, %d on disk (size %d, conc %d)" % (
            tg.key, n, got, size, conc))
    results.setdefault((size, conc, tg.key), []).append((n / dt, cpu))
    log("receive %s size=%d conc=%d rep=%d: %d msgs in %.2fs = %.0f msg/s, "
        "%.2f ms CPU each, %d on disk" % (tg.key, size, conc, rep_ + 1, n, dt, n / dt,
                                         cpu * 1e3, got))


def receive(targets, results, failed):
    """results[(size, conc, key)] = [(messages/s, CPU s per message)]; a
    receiver whose run fails is left out of the rest, failed[key] = why
    (the report says so), and its figures so far are dropped."""
    targets = list(targets)
    for size in SIZES:
        for conc in CONCS:
            for rep_ in range(REPEATS):
                for tg in list(targets):
                    try:
                        receive_one(tg, size, conc, rep_, results)
                    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                        log("receive %s FAILED, left out: %s" % (tg.key, e))
                        failed[tg.key] = "size %d, %d clients: %s" % (size, conc, e)
                        targets.remove(tg)
                        for k in [k for k in results if k[2] == tg.key]:
                            del results[k]
            for tg in targets:
                tg.clear()


def flood(fbin, targets, results):
    """results[(conc, key)] = [(sessions/s, CPU s per session)]"""
    for conc in FLOOD_CONCS:
        for rep_ in range(REPEATS):
            for tg in targets:
                c0 = tg.cpu()
                out = sh([fbin, "127.0.0.1", str(tg.port), str(FLOOD_N), str(conc)], timeout=600)
                if hasattr(tg, "launcher"):
                    tg.launcher.idle(10)
                cpu = (tg.cpu() - c0) / FLOOD_N
                m = re.search(r"sessions (\d+) seconds ([\d.]+) failed (\d+)", out)
                if not m or m.group(3) != "0":
                    raise RuntimeError("flood %s: %s" % (tg.key, out.strip()))
                rate = FLOOD_N / float(m.group(2))
                results.setdefault((conc, tg.key), []).append((rate, cpu))
                log("flood %s conc=%d rep=%d: %.0f sessions/s, %.2f ms CPU each" % (
                    tg.key, conc, rep_ + 1, rate, cpu * 1e3))


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


def private_kb(pid):
    """(Private_Clean + Private_Dirty, Private_Dirty) of smaps_rollup: the
    memory the process has to itself, and what of it it wrote."""
    got = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                got[line.split(":")[0]] = int(line.split()[1])
    return got.get("Private_Clean", 0) + got.get("Private_Dirty", 0), got.get("Private_Dirty", 0)


def session_rss(port):
    """(VmHWM, private, private dirty) KiB of a session at its 250, with a
    first session of the same server held open at its 250 too: pages of
    the program that sessions share (its text) are then not counted as
    the second one's own."""
    first = smtp_session(port)
    try:
        s, f = smtp_session(port)
        try:
            pid = conn_pid(s, port)
            if pid is None:
                raise RuntimeError("no process holds the connection on port %d" % port)
            hwm = proc_status(pid, "VmHWM")
            priv, dirty = private_kb(pid)
            s.sendall(b"QUIT\r\n")
            f.readline()
        finally:
            s.close()
    finally:
        first[0].sendall(b"QUIT\r\n")
        first[1].readline()
        first[0].close()
    return hwm, priv, dirty


def median_rss(port, n=7):
    """session_rss n times: the median of each figure. Which pages of the
    program's text a session has mapped that the first one has not
    (fault-around maps them in aligned runs, and each process's text
    lies elsewhere) changes from one pair of sessions to the next."""
    runs = [session_rss(port) for _ in range(n)]
    return tuple(sorted(r[i] for r in runs)[n // 2] for i in range(3))


def strace_summary(path):
    calls = {"fsync": 0, "fdatasync": 0}
    with open(path) as f:
        for line in f:
            m = re.match(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(fsync|fdatasync)\s*$", line)
            if m:
                calls[m.group(2)] += int(m.group(1))
    return calls


def fsyncs_smap(argv, srv, workdir, name, n=100):
    """strace -f -c over systemd-socket-activate and every smap it starts."""
    out = os.path.join(workdir, "strace-%s.txt" % name)
    la = S.SSA(argv, workdir, "strace-" + name)
    cmd = la.command
    la.command = lambda port: [STRACE, "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", out] + cmd(port)
    la.start()
    try:
        before = srv.count_new()
        smtp_source(la.port, n, 1, 1024)
        for c in S.children(la.proc.pid):      # strace's child: the launcher
            wait_for(lambda: not S.children(c), 10)
        got = srv.count_new() - before
    finally:
        S.stop_traced(la.proc)
        stop_proc(la.proc)
    if got != n:
        raise RuntimeError("fsync run: %d of %d on disk" % (got, n))
    return strace_summary(out)


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
    return strace_summary(out)


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
    return strace_summary(out)


def drain_smap(srv, sink, n, conc=None):
    S.clear_dir(srv.newdir())
    smtp_source(srv.port, n, 10, 1024)
    srv.wait_sessions(10)
    if srv.count_new() != n:
        raise RuntimeError("drain: %d of %d spooled" % (srv.count_new(), n))
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
    d.stop()
    if not ok:
        raise RuntimeError("smapd drain: %d of %d reached the sink" % (sink.count(), n))
    return n / dt, dt


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
    sink = S.Sink(os.path.join(sinkdir, "dump"), prefix=[STRACE, "-f", "-ttt", "-s", "4096", "-o", trace,
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
        info["dirty"] = bool(sh(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                                check=False).strip())
    except (OSError, subprocess.SubprocessError):
        info["rev"], info["dirty"] = "?", False
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


class SinkFS:
    """A private tmpfs for smtp-sink's dump files. On ext4 the sink's
    inode creation (one file per message) took more CPU than smapd and
    capped both drains at the sink's rate; in memory it costs little,
    and every run is still checked file by file for what it stored."""

    def __init__(self, path):
        self.path = path
        os.makedirs(path, exist_ok=True)
        sh(["mount", "-t", "tmpfs", "-o", "size=256m,mode=0755", "smap-bench-sink", path], timeout=60)

    def stop(self):
        sh(["umount", self.path], timeout=60, check=False)


# --------------------------------------------------------------------------
# setting up


def build(work):
    """baseline.c, flood.c and the listen shim, built here."""
    out = {}
    for name, src, extra in (("baseline", "baseline.c", []), ("flood", "flood.c", ["-lpthread"]),
                             ("listen_shim.so", "listen_shim.c", ["-fPIC", "-shared", "-ldl"])):
        out[name] = os.path.join(work, name)
        sh(["cc", "-O2", "-o", out[name], os.path.join(HERE, src)] + extra, timeout=120)
    return out


def smap_targets(srv, conf_file, bins, work, stack):
    """The smap receivers wanted, each under its launcher, on srv's spool."""
    out = []
    for key, (label, build_, dur, launcher) in RECEIVERS:
        if key not in WANT or build_ not in ("default", "dynamic"):
            continue
        binary = SMAP_BIN if build_ == "default" else SMAP_DYNAMIC
        conf = conf_file[dur]
        la = S.LAUNCHERS[launcher]([binary, "-c", conf], work, key).start()
        stack.append(la)
        out.append(S.SmapTarget(key, label, srv, la))
    return out


def smap_confs(srv):
    """srv's configuration, and the same with spool_fsync = file."""
    fileconf = srv.conffile + ".file"
    with open(srv.conffile) as f:
        text = f.read()
    with open(fileconf, "w") as f:
        f.write(text + "spool_fsync = file\n")
    os.chmod(fileconf, 0o644)
    return {"file+directory": srv.conffile, "file": fileconf}


def start_postfix(sink, stack):
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
    return pf


def start_osmtpd(fs, shim, env, stack):
    try:
        osd = S.OpenSMTPD(os.path.join(fs.mnt, "opensmtpd"), shim).fetch()
        stack.append(osd)
        osd.start()
        env["osmtpd"] = osd.version
        env["osmtpd_backlog"] = osd.backlog
        return osd
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        env["osmtpd_skip"] = str(e)[:300]
        log("OpenSMTPD skipped: %s" % env["osmtpd_skip"])
        return None


# --------------------------------------------------------------------------
# the parts


def part_profile(R, srv, work):
    """Phases of one session: system calls (strace) and instructions
    (callgrind), the default (static) build and the dynamic one."""
    R["profile"] = {}
    for key, binary, vg in (("smap", SMAP_BIN, SMAP_STATIC_VG), ("dynamic", SMAP_DYNAMIC, SMAP_VG)):
        ph = prof.syscalls([binary, "-c", srv.conffile], srv.conffile, work, key)
        total, ins = prof.instructions([vg, "-c", srv.conffile], srv.tmpdir(), key)
        R["profile"][key] = {"count": ph.count, "time": ph.time, "calls": ph.calls,
                             "instr": ins, "instr_total": total}
        log("profile %s: %d system calls, %d instructions" % (key, sum(ph.count.values()), total))
        S.clear_dir(srv.newdir())


def part_session(R, srv, ports, bins, pf):
    """Per-session cost: CPU and faults (posix_spawn, the child's own
    rusage, interleaved), memory at the 250, instructions."""
    bdir = bins["baseline_dir"]
    argvs = [[SMAP_BIN, "-c", srv.conffile], [SMAP_DYNAMIC, "-c", srv.conffile],
             [bins["baseline"], bdir]]
    cost = prof.ab(argvs, int(os.environ.get("BENCH_SESSIONS", "300")))
    R["cost"] = dict(zip(("smap", "dynamic", "baseline"), cost))
    log("session CPU: %r" % R["cost"])
    R["rss"] = {}
    if pf is not None:
        R["rss"]["postfix"] = session_rss(pf.port)
    for key, port in ports.items():
        R["rss"][key] = median_rss(port)
    log("VmHWM, private: %r" % R["rss"])
    R["instr"] = {}
    for key, argv, chroot in (("smap", [SMAP_STATIC_VG, "-c", srv.conffile], srv.tmpdir()),
                              ("dynamic", [SMAP_VG, "-c", srv.conffile], srv.tmpdir()),
                              ("baseline", [bins["baseline"], bdir], None)):
        R["instr"][key] = prof.instructions(argv, chroot, "i" + key)[0]
    log("instructions: %r" % R["instr"])
    S.clear_dir(srv.newdir())
    S.clear_dir(os.path.join(bdir, "new"))


def part_fsync(R, srv, confs, pf, pft, osd, work):
    R["fsync"] = {"n": 100}
    R["fsync"]["smap"] = fsyncs_smap([SMAP_BIN, "-c", confs["file+directory"]], srv, work, "smap")
    R["fsync"]["smap-file"] = fsyncs_smap([SMAP_BIN, "-c", confs["file"]], srv, work, "smap-file")
    S.clear_dir(srv.newdir())
    if pf is not None:
        R["fsync"]["postfix"] = fsyncs_postfix(pf, pft, work)
    if osd is not None:
        R["fsync"]["opensmtpd"] = fsyncs_osmtpd(osd, work)
    log("fsyncs: %r" % R["fsync"])


def part_handoff(R, srv, sink, pf, pft, work):
    R["handoff"] = {}
    R["handoff"]["smapd"] = drain_smap(srv, sink, DRAIN_N)
    log("smapd drain: %r" % (R["handoff"]["smapd"],))
    R["handoff"]["smapd1"] = drain_smap(srv, sink, DRAIN_N, conc=1)
    R["lat"] = latency_smap(srv, os.path.join(work, "sinkfs", "latency"), LAT_N)
    log("latency p50 %.1f ms p99 %.1f ms" % (rep.pct(R["lat"], 50), rep.pct(R["lat"], 99)))
    if pf is not None:
        R["handoff"]["postfix"] = drain_postfix(pf, pft, sink, DRAIN_N)
        log("Postfix relay: %r" % (R["handoff"]["postfix"],))


def run_all(R, env, fs, stack):
    tempfile.tempdir = fs.mnt
    work = fs.work
    bins = build(work)
    bdir = tempfile.mkdtemp(prefix="baseline.")
    os.chmod(bdir, 0o755)
    for sub in ("tmp", "new"):
        os.makedirs(os.path.join(bdir, sub))
    bins["baseline_dir"] = bdir
    tdir = tempfile.mkdtemp(prefix="baseline-tcpserver.")
    os.chmod(tdir, 0o755)
    for sub in ("tmp", "new"):
        os.makedirs(os.path.join(tdir, sub))
    stack.append(SinkFS(os.path.join(work, "sinkfs")))
    sink = S.Sink(os.path.join(work, "sinkfs", "sink")).start()
    stack.append(sink)
    srv = smaptest.Server(T, conf={"relay_domains": "example.com", "mynetworks": "127.0.0.0/8"},
                          name="bench")
    srv.start()
    stack.append(srv)
    confs = smap_confs(srv)
    targets = smap_targets(srv, confs, bins, work, stack)
    base = None
    if "baseline" in WANT or "session" in ONLY:
        la = S.SSA([bins["baseline"], bdir], work, "baseline").start()
        stack.append(la)
        base = S.BaselineTarget("baseline", "baseline.c", bdir, la)
        if "baseline" in WANT:
            targets.append(base)
    if "baseline-tcpserver" in WANT:
        la = S.TcpServer([bins["baseline"], tdir], work, "baseline-tcpserver").start()
        stack.append(la)
        targets.append(S.BaselineTarget("baseline-tcpserver", "baseline.c, tcpserver", tdir, la))
    pf = pft = osd = None
    if "postfix" in WANT or {"handoff", "fsync", "session", "flood"} & set(ONLY):
        pf = start_postfix(sink, stack)
        pft = S.PostfixTarget(pf)
        if "postfix" in WANT:
            targets.append(pft)
    if "opensmtpd" in WANT and ({"receive", "fsync"} & set(ONLY)):
        osd = start_osmtpd(fs, bins["listen_shim.so"], env, stack)
        if osd is not None:
            targets.append(osd)

    env["quiet"], env["load_start"], env["waited"] = wait_quiet()
    log("load average %.2f after %.0fs: measuring%s" % (
        env["load_start"], env["waited"], "" if env["quiet"] else " UNDER LOAD"))
    if "session" in ONLY:       # first: Postfix's smtpd is fresh
        ports = {"smap": srv.port}
        st = S.SSA([SMAP_DYNAMIC, "-c", srv.conffile], work, "rss-dynamic").start()
        stack.append(st)
        ports["dynamic"] = st.port
        ports["baseline"] = base.port
        part_session(R, srv, ports, bins, pf)
    if "profile" in ONLY:
        part_profile(R, srv, work)
    if "fsync" in ONLY:
        part_fsync(R, srv, confs, pf, pft, osd, work)
    for tg in targets:
        tg.clear()
    if "receive" in ONLY:
        R["recv"] = {}
        env["failed"] = {}
        receive(targets, R["recv"], env["failed"])
    if "flood" in ONLY:
        R["flood"] = {}
        ft = [tg for tg in targets if tg.key in ("smap", "dynamic", "tcpserver", "baseline", "baseline-tcpserver",
                                                  "postfix")]
        if pft is not None and pft not in ft:
            ft.append(pft)
        flood(bins["flood"], ft, R["flood"])
    if "handoff" in ONLY:
        part_handoff(R, srv, sink, pf, pft, work)
    env["load_end"] = loadavg()


def smap_libc():
    """The C library the static smap was linked with (make's stamp)."""
    try:
        with open(os.path.join(REPO, "smap", "static.stamp")) as f:
            static, libc = f.read().split()[:2]
        return libc if static == "1" else "(not static: make STATIC=0) the shared glibc"
    except (OSError, IndexError):
        return "the build's"


def main():
    if os.geteuid() != 0:
        print("bench/run.py: needs root (loop mount, launchers, Postfix)", file=sys.stderr)
        return 1
    for b in (SMAP_BIN, SMAP_DYNAMIC, SMAP_VG, SMAP_STATIC_VG, smapdtest.SMAPD_BIN):
        if not os.access(b, os.X_OK):
            print("bench/run.py: %s missing: run make bench (or make first)" % b, file=sys.stderr)
            return 1
    signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(TimeoutError("bench watchdog")))
    signal.alarm(int(os.environ.get("BENCH_WATCHDOG", "7200")))
    info = machine()
    env = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "parts": ONLY,
           "receivers": WANT, "sizes": SIZES, "concs": CONCS, "repeats": REPEATS,
           "partial": PARTIAL, "flood_n": FLOOD_N, "drain_n": DRAIN_N, "count": COUNT,
           "flood_concs": FLOOD_CONCS, "load_wait": LOAD_WAIT}
    env["libc"] = smap_libc()
    R = {}
    stack = []
    with LoopFS() as fs:
        env["fs"] = fs.desc
        try:
            run_all(R, env, fs, stack)
        except Exception as e:  # noqa: BLE001 - report what was measured
            env["error"] = "%s: %s" % (type(e).__name__, e)
            log("FAILED: %s; the report has what was measured before" % env["error"])
        finally:
            signal.alarm(0)
            for obj in reversed(stack):
                try:
                    obj.stop()
                except Exception as e:  # noqa: BLE001 - stop the rest
                    log("warning: stopping %s: %s" % (type(obj).__name__, e))
            tempfile.tempdir = None
    text = rep.report(R, info, env, dict(RECEIVERS), CHART)
    print()
    print(text)
    with open(RESULTS, "w") as f:
        f.write(text)
    log("wrote %s" % RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
