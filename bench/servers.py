"""bench/servers.py - what bench/run.py measures and measures with.

Launchers of a program per connection (the inetd interface), each on
127.0.0.1, each stopped by PID: systemd-socket-activate --accept --inetd,
ucspi-tcp's tcpserver and xinetd. The receivers (smap under each, the
baseline, Postfix, OpenSMTPD) as targets with one interface: port,
prefix (argv that runs a client in their network), count() of what they
hold on disk, clear(), cpu() of their process tree. smtp-sink. The CPU
time of a process tree from /proc. Stdlib only.
"""

import os
import re
import shutil
import signal
import subprocess
import time

import smaptest

SSA_BIN = smaptest.SSA
TCPSERVER = shutil.which("tcpserver") or "/usr/bin/tcpserver"
XINETD = shutil.which("xinetd") or "/usr/sbin/xinetd"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
POSTSUPER = "/usr/sbin/postsuper"
POSTQUEUE = "/usr/sbin/postqueue"
TICK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print("bench: " + msg, flush=True)


def sh(argv, timeout=60, check=True, **kw):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), p.returncode,
                                                 p.stderr.decode("latin-1")[-800:]))
    return p.stdout.decode("latin-1")


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


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def descendants(pid):
    out, todo = [], [pid]
    while todo and len(out) < 100000:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def tree_cpu(pid):
    """CPU seconds of the tree under pid since it started: each live
    member's utime+stime plus what it reaped (cutime+cstime); a child
    that ended is in its reaper's, so nothing counts twice."""
    total = 0
    for p in descendants(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in st[11:15])
    return total / TICK


def clear_dir(path):
    for n in os.listdir(path):
        os.unlink(os.path.join(path, n))


def count_files(path):
    n = 0
    for _root, _dirs, files in os.walk(path):
        n += len(files)
    return n


def listening(port):
    return smaptest.listening(port)


# --------------------------------------------------------------------------
# launchers: one process per connection, the program on fd 0/1


class Launcher:
    """Base: start() listens on a free port of 127.0.0.1, idle() waits
    until no session runs, stop() ends the launcher and any session
    left, by PID."""
    kind = "?"

    def __init__(self, argv, workdir, name):
        self.argv = list(argv)
        self.workdir = workdir
        self.name = name
        self.errfile = os.path.join(workdir, "%s.%s.err" % (name, self.kind))
        self.proc = None
        self.port = None

    def command(self, port):
        raise NotImplementedError

    def start(self):
        for _ in range(5):
            port = smaptest.free_port()
            with open(self.errfile, "ab") as err:
                self.proc = subprocess.Popen(self.command(port), stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=err, close_fds=True)
            if wait_for(lambda: listening(port) or self.proc.poll() is not None, 10) \
                    and self.proc.poll() is None and listening(port):
                self.port = port
                return self
            stop_proc(self.proc)
        raise RuntimeError("%s did not listen: %s" % (self.kind, self.argv))

    def sessions(self):
        return children(self.proc.pid) if self.proc else []

    def idle(self, timeout=10):
        wait_for(lambda: not self.sessions(), timeout, 0.02)

    def cpu(self):
        """(launcher's own CPU seconds, its sessions' CPU seconds)"""
        try:
            with open("/proc/%d/stat" % self.proc.pid) as f:
                st = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0, 0.0
        own = (int(st[11]) + int(st[12])) / TICK
        return own, tree_cpu(self.proc.pid) - own

    def stop(self):
        self.idle(3)
        left = self.sessions()
        stop_proc(self.proc)
        for p in left:
            if smaptest.proc_alive(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass


class SSA(Launcher):
    """systemd-socket-activate --accept --inetd (listen backlog SOMAXCONN)."""
    kind = "systemd-socket-activate"

    def command(self, port):
        return [SSA_BIN, "-a", "--inetd", "-l", "127.0.0.1:%d" % port] + self.argv


class TcpServer(Launcher):
    """ucspi-tcp's tcpserver as an admin would run it for an MX: no DNS
    or ident lookups (-H -R -l 0), its default limit of 40 sessions at
    once raised to 1000 (-c) and its listen backlog of 20 to 1024 (-b)."""
    kind = "tcpserver"

    def command(self, port):
        return [TCPSERVER, "-H", "-R", "-l", "0", "-c", "1000", "-b", "1024",
                "127.0.0.1", str(port)] + self.argv


XINETD_CONF = """defaults
{{
}}

service smtp
{{
	type		= UNLISTED
	port		= {port}
	bind		= 127.0.0.1
	socket_type	= stream
	protocol	= tcp
	wait		= no
	user		= root
	server		= {server}
	server_args	= {args}
	instances	= UNLIMITED
	per_source	= UNLIMITED
	cps		= 100000 1
	log_type	= FILE {log}
	log_on_success	=
	log_on_failure	=
}}
"""


class Xinetd(Launcher):
    """xinetd in the foreground (-dontfork) with one UNLISTED service:
    the shipped conf/xinetd.d/smap entry's settings, its limits
    (instances, per_source, cps) lifted so that they do not throttle the
    benchmark, logging to a file of its own."""
    kind = "xinetd"

    def command(self, port):
        conf = os.path.join(self.workdir, "%s.xinetd.conf" % self.name)
        with open(conf, "w") as f:
            f.write(XINETD_CONF.format(port=port, server=self.argv[0], args=" ".join(self.argv[1:]),
                                       log=os.path.join(self.workdir, "%s.xinetd.log" % self.name)))
        return [XINETD, "-dontfork", "-f", conf, "-pidfile",
                os.path.join(self.workdir, "%s.xinetd.pid" % self.name)]


LAUNCHERS = {"ssa": SSA, "tcpserver": TcpServer, "xinetd": Xinetd}


# --------------------------------------------------------------------------
# targets


class SmapTarget:
    """smap (a build, a configuration) under a launcher, on the spool of
    a smaptest.Server; counts the files in new/."""

    def __init__(self, key, label, srv, launcher):
        self.key = key
        self.label = label
        self.srv = srv
        self.launcher = launcher
        self.port = launcher.port

    def count(self):
        self.launcher.idle(10)
        return self.srv.count_new()

    def clear(self):
        clear_dir(self.srv.newdir())

    def cpu(self):
        own, sess = self.launcher.cpu()
        return own + sess

    def stop(self):
        self.launcher.stop()


class BaselineTarget(SmapTarget):
    def __init__(self, key, label, spool, launcher):
        self.key = key
        self.label = label
        self.spool = spool
        self.launcher = launcher
        self.port = launcher.port

    def count(self):
        self.launcher.idle(10)
        return len(os.listdir(os.path.join(self.spool, "new")))

    def clear(self):
        clear_dir(os.path.join(self.spool, "new"))


class PostfixTarget:
    key = "postfix"
    label = "Postfix smtpd"

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

    def cpu(self):
        return tree_cpu(self.pf.proc.pid)

    def stop(self):
        pass


class Sink:
    """smtp-sink on 127.0.0.1, one dump file per message under dumpdir."""

    def __init__(self, dumpdir, prefix=()):
        import pwd
        self.dumpdir = dumpdir
        self.prefix = list(prefix)
        os.makedirs(dumpdir, exist_ok=True)
        nobody = pwd.getpwnam("nobody")
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
            if wait_for(lambda: listening(port) or self.proc.poll() is not None, 10) \
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
        if self.prefix and self.proc is not None and self.proc.poll() is None:
            stop_traced(self.proc)  # the sink itself, by PID: strace alone would leave it
        stop_proc(self.proc)


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
    so that it holds what it accepts. smtp-source runs in its namespace.
    shim: bench/listen_shim.so, LD_PRELOADed, so that it listens with a
    backlog of 4096, not its build's 5."""
    key = "opensmtpd"
    label = "OpenSMTPD"

    def __init__(self, work, shim=None):
        self.work = work
        self.shim = shim
        self.root = os.path.join(work, "root")
        self.ns = os.path.join(work, "ns")
        self.spool = os.path.join(self.ns, "spool")
        self.port = 2525
        self.proc = None
        self.traced = False
        self.version = None
        self.prefix = ()
        self.backlog = None

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
        env = ["D=" + self.ns] + (["LD_PRELOAD=" + self.shim] if self.shim else [])
        argv = ["unshare", "-m", "-n", "env"] + env + ["sh", os.path.join(self.ns, "ns.sh")] + \
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
        self.backlog = self._backlog()
        return self

    def _listening(self, want):
        """Listening in its own network namespace: until unshare(1) has
        made that, /proc/PID/net is this one's, where another server may
        have the port (tools/demo takes 2525)."""
        try:
            if os.readlink("/proc/%d/ns/net" % self.proc.pid) == os.readlink("/proc/self/ns/net"):
                return False
            with open("/proc/%d/net/tcp" % self.proc.pid) as f:
                return any(want in line and " 0A " in line for line in f)
        except OSError:
            return False

    def _backlog(self):
        """The listening socket's backlog as the kernel has it (ss: the
        Send-Q of a listener), or None."""
        out = sh(self.prefix + ["ss", "-ltn", "sport = :%d" % self.port], check=False)
        m = re.search(r"^LISTEN\s+\d+\s+(\d+)\s", out, re.M)
        return int(m.group(1)) if m else None

    def count(self):
        # one directory per message under queue/BUCKET/MSGID, holding "message"
        time.sleep(0.2)
        q = os.path.join(self.spool, "queue")
        return sum(1 for d, _, fs in os.walk(q) for f in fs if f == "message")

    def clear(self):
        self.stop()
        self.start()

    def cpu(self):
        return tree_cpu(self.proc.pid) if self.proc else 0.0

    def stop(self):
        if self.proc is None:
            return
        if self.traced:     # under strace, smtpd is strace's child
            stop_traced(self.proc)
        stop_proc(self.proc)
        self.proc = None
