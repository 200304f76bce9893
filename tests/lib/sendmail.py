"""sendmail - a private, real Sendmail 8.17 for the smapd tests (stdlib only).

  why = Sendmail.skip()         None, or why no instance can run here (the
                                .debs cannot be had, no mount namespaces)
  with Sendmail(t, access={"To:reject@backend.test": "ERROR:5.7.1:550 no"}) as sm:
      sm.port                   the MTA daemon on 127.0.0.1:port
      sm.messages("a")          [(file name, bytes)] delivered to a@DOMAIN
      sm.wait_messages("a", 1)  bounded wait for that many
      sm.log(), sm.wait_log(re) Sendmail's syslog lines (MTA and MSP)
      sm.traffic()              the daemon's SMTP transcript (sendmail -X)
      sm.queue(), sm.client_queue()   files in its mqueue / mqueue-client
      sm.ns_argv()              argv prefix: run a command in the instance's
                                mount namespace (see below)
      sm.sendmail               the private set-gid sendmail binary
      sm.smmsp                  (uid, gid) of smmsp in the namespace
      sm.pidns                  the daemon's PID namespace; after stop(),
                                pidns_members(sm.pidns) is empty
      sm.diag()                 Sendmail's stderr and syslog, for failures

Sendmail's packages conflict with postfix, which stays installed, so
they are never installed: tools/deps (test) fetches sendmail-bin and
sendmail-cf with `apt-get download` into CACHE (this module only looks
there: skip() says when they are missing), and each instance
unpacks them with `dpkg-deb -x` into a fresh temp dir D. sendmail.cf
and submit.cf are made there from sendmail-cf's m4 files; the access
map is built with the private makemap.

The binary has compiled-in paths (/etc/mail/sendmail.cf and submit.cf,
/var/run/sendmail/mta/sendmail.pid) and logs to syslog, so every process
of the instance runs under D/ns.sh in a private mount namespace
(unshare --mount, propagation private) in which
  /etc        is an overlay on the real /etc (a fresh upper layer per
              namespace, so nothing is written to the real one), with
              /etc/mail bound from D/etc-mail and /etc/hosts,
              /etc/resolv.conf (a server on loopback that is not there:
              no DNS leaves the machine), /etc/passwd and /etc/group
              (plus a user and group smmsp with ids unused on the host)
              bound from D/etc;
  /var        is D/var: spool/mqueue (root 0700), spool/mqueue-client
              (smmsp 0770), run/sendmail/{mta,msp}, lib/sendmail, tmp;
  /dev        is a small directory of its own: null, zero, full, random,
              urandom and tty bound from the real /dev, and log bound to a
              datagram socket that this module reads (Sendmail's syslog).
The MTA runs `sendmail -bD` (foreground) as PID 1 of a private PID
namespace as well (unshare --pid --fork --kill-child): the children it
forks for each connection and each delivery, some in sessions of their
own, cannot outlive it. stop() sends SIGTERM to that PID, waits, then
SIGKILLs unshare, whose child then gets SIGKILL and takes the namespace
with it. Mail for DOMAIN is delivered by a small local mailer
(/etc/mail/tbox, run as nobody; F=lsPn8: no From_ line, no 7-bit or QP
conversion, Return-Path added) that writes each message, as Sendmail
hands it over, to D/mail/USER/new/ (a Maildir-like tmp/ then rename).

The MSP: the private sendmail is chowned root:smmsp and made 02755, as
Debian's postinst does with dpkg-statoverride. Run by a user other than
root it reads /etc/mail/submit.cf, whose FEATURE(`msp') writes each
message into its own queue, /var/spool/mqueue-client (SuperSafe), and
relays it at once (DeliveryMode=interactive) to the MTA on
127.0.0.1:port, where it stays if that fails. It needs its set-gid
group for that queue: with no_new_privs it cannot even enter it. The
user smap is a trusted user there (Tsmap), so its -f is taken without
an X-Authentication-Warning.

Nothing here talks to anything but 127.0.0.1.
"""

import ctypes
import functools
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from smaptest import free_port, proc_alive
from postfix import listening_by, read_maildir, namespace_skip

DOMAIN = "backend.test"
CACHE = os.environ.get("SMAPTEST_SENDMAIL_DEBS") or "/var/cache/smap-test/sendmail"
PACKAGES = ("sendmail-bin", "sendmail-cf")
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
M4 = shutil.which("m4") or "/usr/bin/m4"
BIN = "usr/libexec/sendmail/sendmail"
MAKEMAP = "usr/libexec/sendmail/makemap"
CF_M4 = "usr/share/sendmail/cf/m4/cf.m4"
LOG_MAX = 8 << 20       # bytes of syslog kept

NS_SH = r"""# written by tests/lib/sendmail.py: run "$@" in the mount namespace of
# the Sendmail test instance in $1 (see the module docstring); never
# outside a private mount namespace (unshare --mount).
set -eu
D=$1
shift
u=$(mktemp -d "$D/ns.XXXXXX")
mkdir "$u/up" "$u/work" "$u/dev"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$u/up,workdir=$u/work" /etc
mkdir /etc/mail
mount --bind "$D/etc-mail" /etc/mail
for f in hosts resolv.conf passwd group; do
	mount --bind "$D/etc/$f" "/etc/$f"
done
mount --bind "$D/var" /var
for f in null zero full random urandom tty; do
	touch "$u/dev/$f"
	mount --bind "/dev/$f" "$u/dev/$f"
done
touch "$u/dev/log"
mount --bind "$D/syslog.sock" "$u/dev/log"
ln -s /proc/self/fd "$u/dev/fd"
mount --rbind "$u/dev" /dev
exec "$@"
"""

TBOX = r"""#!/bin/sh
# written by tests/lib/sendmail.py: the test instance's local mailer.
# argv[1] is the local part; the message (as Sendmail hands it over) is
# written to BASE/USER/tmp/NAME, then renamed into new/.
umask 022
case "${1:-}" in
''|.*|*[!A-Za-z0-9._+-]*) echo "5.1.3 unsafe local part"; exit 67 ;;
esac
d="BASE/$1"
mkdir -p "$d/tmp" "$d/new" || exit 75
f="$(date +%s.%N).$$"
cat > "$d/tmp/$f" || exit 75
mv "$d/tmp/$f" "$d/new/$f" || exit 75
exit 0
"""

COMMON_MC = """\
define(`confDOMAIN_NAME', `{domain}')dnl
define(`confSERVICE_SWITCH_FILE', `/etc/mail/service.switch')dnl
define(`confHOSTS_FILE', `/etc/mail/hosts')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confTO_IDENT', `0')dnl
define(`confLOG_LEVEL', `14')dnl
define(`confQUEUE_LA', `100')dnl
define(`confREFUSE_LA', `200')dnl
define(`confDELAY_LA', `0')dnl
"""

MTA_MC = """\
divert(-1)
# written by tests/lib/sendmail.py ({name}): the MTA of a private test
# instance, on 127.0.0.1:{port} only, no DNS, mail for {domain} to the
# test's local mailer, an access map that answers RCPT for To: entries.
divert(0)dnl
VERSIONID(`smap test instance {name}')dnl
OSTYPE(`linux')dnl
{common}\
define(`QUEUE_DIR', `/var/spool/mqueue')dnl
define(`confPID_FILE', `/var/run/sendmail/mta/sendmail.pid')dnl
define(`STATUS_FILE', `/var/lib/sendmail/sendmail.st')dnl
undefine(`ALIAS_FILE')dnl
define(`confDEF_USER_ID', `{nobody}')dnl
define(`confMAX_DAEMON_CHILDREN', `0')dnl
define(`confCONNECTION_RATE_THROTTLE', `0')dnl
define(`LOCAL_MAILER_PATH', `{tbox}')dnl
define(`LOCAL_MAILER_ARGS', `tbox $u')dnl
MODIFY_MAILER_FLAGS(`LOCAL', `lsPn8')dnl
FEATURE(`nocanonify')dnl
FEATURE(`accept_unresolvable_domains')dnl
FEATURE(`no_default_msa')dnl
FEATURE(`access_db', `hash -T<TMPF> /etc/mail/access')dnl
FEATURE(`blocklist_recipients')dnl
DAEMON_OPTIONS(`Family=inet, Addr=127.0.0.1, Port={port}, Name=MTA, Modifiers=A')dnl
LOCAL_CONFIG
Cw {domain}
MAILER(`local')dnl
MAILER(`smtp')dnl
"""

MSP_MC = """\
divert(-1)
# written by tests/lib/sendmail.py ({name}): the MSP (submit.cf) of the
# test instance: relays at once to the MTA on 127.0.0.1:{port}.
divert(0)dnl
VERSIONID(`smap test instance {name}: submission')dnl
OSTYPE(`linux')dnl
define(`confCF_VERSION', `Submit')dnl
{common}\
define(`MSP_QUEUE_DIR', `/var/spool/mqueue-client')dnl
define(`confPID_FILE', `/var/run/sendmail/msp/sendmail.pid')dnl
define(`STATUS_FILE', `/var/lib/sendmail/sm-client.st')dnl
define(`confTRUSTED_USERS', `{trusted}')dnl
define(`RELAY_MAILER_ARGS', `TCP $h {port}')dnl
FEATURE(`msp', `[127.0.0.1]')dnl
"""


# --------------------------------------------------------------------------
# the packages


def _version(path):
    return os.path.basename(path).split("_")[1]


def _newest(paths):
    def cmp(a, b):
        if _version(a) == _version(b):
            return 0
        r = subprocess.run(["dpkg", "--compare-versions", _version(a), "gt", _version(b)],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
        return 1 if r.returncode == 0 else -1
    return max(paths, key=functools.cmp_to_key(cmp))


def find_debs(cache=CACHE):
    """{package: path of its newest .deb in cache}, or None if one is missing."""
    try:
        names = os.listdir(cache)
    except OSError:
        return None
    out = {}
    for pkg in PACKAGES:
        debs = [os.path.join(cache, n) for n in names if n.startswith(pkg + "_") and n.endswith(".deb")]
        if not debs:
            return None
        out[pkg] = _newest(debs)
    return out


def debs_skip(cache=CACHE):
    """Why the .debs cannot be had (None when they are in cache). This
    module never downloads: without a mirror apt-get can hang for
    minutes; tools/deps test fetches them."""
    if find_debs(cache):
        return None
    return "the .debs of %s are not in %s (tools/deps test fetches them with apt-get download; " \
        "no mirror?)" % (" and ".join(PACKAGES), cache)


def _die_with_parent():
    """In the child before exec: SIGKILL when the test process dies
    (prctl PR_SET_PDEATHSIG), so that a killed test leaves no Sendmail;
    unshare --kill-child passes it on to the PID namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)


def _children(pid):
    """PIDs whose parent is pid (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
        except (OSError, IndexError, ValueError):
            pass
    return out


def pidns_members(ns):
    """Host PIDs of the processes in PID namespace ns ("pid:[N]")."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.readlink("/proc/%s/ns/pid" % d) == ns:
                    out.append(int(d))
            except OSError:
                pass
    return out


def _free_id(taken, start=64900):
    for i in range(start, start + 500):
        if i not in taken:
            return i
    raise RuntimeError("no free id from %d" % start)


# --------------------------------------------------------------------------
# syslog


class _Syslog:
    """A datagram socket that plays /dev/log: every record is appended,
    up to LOG_MAX bytes, to a file and kept for log()."""

    def __init__(self, path, logfile):
        self.path = path
        self.logfile = logfile
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.settimeout(0.2)
        self.lock = threading.Lock()
        self.text = []
        self.size = 0
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        with open(self.logfile, "ab") as out:
            while True:
                try:
                    data = self.sock.recv(65536)
                except socket.timeout:
                    if self._stop:      # only once nothing is pending
                        return
                    continue
                except OSError:
                    return
                line = re.sub(rb"^<\d+>", b"", data).rstrip(b"\n") + b"\n"
                with self.lock:
                    if self.size + len(line) > LOG_MAX:
                        continue
                    self.size += len(line)
                    self.text.append(line.decode("latin-1"))
                out.write(line)
                out.flush()

    def read(self):
        with self.lock:
            return "".join(self.text)

    def close(self):
        self._stop = True
        self.thread.join(5)
        self.sock.close()


# --------------------------------------------------------------------------
# the instance


class Sendmail:
    """A private Sendmail MTA (and MSP) from the unpacked .debs; see the
    module docstring. access: {access map key: value}, e.g.
    {"To:tempfail@backend.test": "ERROR:4.2.0:450 try later"}.
    trusted: users whose sendmail -f the MSP takes without a warning."""

    def __init__(self, t, access=None, trusted=("smapd",), name="sendmail"):
        self.t = t
        self.access = dict(access or {})
        self.trusted = list(trusted)
        self.name = name
        self.dir = None
        self.proc = None
        self.port = None
        self.syslog = None
        self.pid = None
        self.pidns = None
        self.stopped = False

    @staticmethod
    def skip():
        """Why no instance can run here (None when one can)."""
        if os.geteuid() != 0:
            return "a private Sendmail needs root (mount namespaces, its set-gid binary)"
        return namespace_skip() or debs_skip()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *a):
        self.stop()

    # -- setup

    def _write(self, rel, text, mode=0o644, owner=None):
        path = os.path.join(self.dir, rel)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        if owner:
            os.chown(path, *owner)
        return path

    def _mkdir(self, rel, mode=0o755, owner=(0, 0)):
        path = os.path.join(self.dir, rel)
        os.makedirs(path, exist_ok=True)
        os.chown(path, *owner)
        os.chmod(path, mode)
        return path

    def _unpack(self):
        debs = find_debs()
        if not debs:
            raise RuntimeError("Sendmail's packages: %s" % debs_skip())
        self.version = _version(debs["sendmail-bin"])
        self.root = os.path.join(self.dir, "root")
        for pkg in PACKAGES:
            p = subprocess.run(["dpkg-deb", "-x", debs[pkg], self.root], capture_output=True,
                               stdin=subprocess.DEVNULL, timeout=120)
            if p.returncode != 0:
                raise RuntimeError("dpkg-deb -x %s: %s" % (debs[pkg], p.stderr.decode("latin-1")[-300:]))
        self.sendmail = os.path.join(self.root, BIN)

    def _users(self):
        """D/etc/passwd and group: the host's plus smmsp, with ids no
        host user or group has; the binary becomes root:smmsp 02755."""
        with open("/etc/passwd") as f:
            passwd = f.read()
        with open("/etc/group") as f:
            group = f.read()
        uid = _free_id({p.pw_uid for p in pwd.getpwall()})
        gid = _free_id({g.gr_gid for g in grp.getgrall()})
        self.smmsp = (uid, gid)
        self._mkdir("etc")
        self._write("etc/passwd", passwd.rstrip("\n") + "\nsmmsp:x:%d:%d:Mail Submission Program:"
                    "/var/lib/sendmail:/usr/sbin/nologin\n" % (uid, gid))
        self._write("etc/group", group.rstrip("\n") + "\nsmmsp:x:%d:\n" % gid)
        os.chown(self.sendmail, 0, gid)
        os.chmod(self.sendmail, 0o2755)

    def _files(self):
        nobody = pwd.getpwnam("nobody")
        hostname = socket.gethostname()
        hosts = "127.0.0.1\tlocalhost %s %s\n::1\tlocalhost ip6-localhost\n" % (DOMAIN, hostname)
        self._write("etc/hosts", hosts)
        self._write("etc/resolv.conf", "# written by tests/lib/sendmail.py: no name server\n"
                    "nameserver 127.0.0.255\noptions timeout:1 attempts:1\n")
        self._mkdir("etc-mail")
        self._write("etc-mail/hosts", hosts)
        self._write("etc-mail/service.switch", "hosts files\naliases files\n")
        for rel, mode, owner in (("var", 0o755, (0, 0)), ("var/spool", 0o755, (0, 0)),
                                 ("var/spool/mqueue", 0o700, (0, 0)),
                                 ("var/spool/mqueue-client", 0o770, self.smmsp),
                                 ("var/run", 0o755, (0, 0)), ("var/run/sendmail", 0o755, (0, 0)),
                                 ("var/run/sendmail/mta", 0o755, (0, 0)),
                                 ("var/run/sendmail/msp", 0o770, self.smmsp),
                                 ("var/lib", 0o755, (0, 0)), ("var/lib/sendmail", 0o755, (0, 0)),
                                 ("var/tmp", 0o1777, (0, 0)),
                                 ("mail", 0o755, (nobody.pw_uid, nobody.pw_gid))):
            self._mkdir(rel, mode, owner)
        # the mailer lives in /etc/mail: Sendmail calls a program in a
        # world-writable directory (/tmp) unsafe
        self._write("etc-mail/tbox", TBOX.replace("BASE", os.path.join(self.dir, "mail")), 0o755)
        self.tbox = "/etc/mail/tbox"
        # statistics files: written only where they exist
        self._write("var/lib/sendmail/sendmail.st", "", 0o600)
        self._write("var/lib/sendmail/sm-client.st", "", 0o660, self.smmsp)
        self._write("ns.sh", NS_SH, 0o755)
        self.nobody = "%d:%d" % (nobody.pw_uid, nobody.pw_gid)

    def _m4(self, mc, cf):
        path = self._write(mc + ".mc", getattr(self, "_" + mc + "_mc")())
        p = subprocess.run([M4, os.path.join(self.root, CF_M4), path], capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=60)
        err = p.stderr.decode("latin-1")
        if p.returncode != 0 or err.strip() or not p.stdout:
            raise RuntimeError("m4 %s.mc failed (%d): %s" % (mc, p.returncode, err[-800:]))
        with open(os.path.join(self.dir, "etc-mail", cf), "wb") as f:
            f.write(p.stdout)
        os.chmod(os.path.join(self.dir, "etc-mail", cf), 0o644)

    def _mta_mc(self):
        common = COMMON_MC.format(domain=DOMAIN)
        return MTA_MC.format(name=self.name, port=self.port, domain=DOMAIN, common=common,
                             nobody=self.nobody, tbox=self.tbox)

    def _submit_mc(self):
        common = COMMON_MC.format(domain=DOMAIN)
        return MSP_MC.format(name=self.name, port=self.port, common=common, trusted=" ".join(self.trusted))

    def _makemap(self):
        """etc-mail/access (text) and access.db, built by the private
        makemap inside the namespace, as /etc/mail/access."""
        self._write("etc-mail/access", "# written by tests/lib/sendmail.py\n" +
                    "".join("%s\t%s\n" % kv for kv in self.access.items()))
        p = subprocess.run(self.ns_argv(os.path.join(self.root, MAKEMAP), "hash", "/etc/mail/access"),
                           stdin=open(os.path.join(self.dir, "etc-mail", "access"), "rb"),
                           capture_output=True, timeout=30)
        if p.returncode != 0 or not os.path.exists(os.path.join(self.dir, "etc-mail", "access.db")):
            raise RuntimeError("makemap hash /etc/mail/access failed (%d): %s" % (
                p.returncode, p.stderr.decode("latin-1")[-500:]))

    def ns_argv(self, *cmd):
        """argv that runs cmd in the instance's mount namespace. unshare
        without --fork execs, and so does ns.sh: the PID of this command
        line is the PID of cmd itself."""
        return [UNSHARE, "--mount", "--propagation", "private", "/bin/sh",
                os.path.join(self.dir, "ns.sh"), self.dir] + list(cmd)

    def start(self):
        if self.proc is not None:
            return self
        self.dir = tempfile.mkdtemp(prefix="smaptest-sm.")
        os.chmod(self.dir, 0o755)
        self._unpack()
        self._users()
        self.port = free_port()
        self._files()
        self.syslog = _Syslog(os.path.join(self.dir, "syslog.sock"), os.path.join(self.dir, "syslog"))
        for attempt in range(4):
            self._m4("mta", "sendmail.cf")
            self._m4("submit", "submit.cf")
            if attempt == 0:
                self._makemap()     # makemap reads sendmail.cf
            how = self._run_daemon()
            if how == "listening":
                return self
            last = self.diag()
            self._stop_daemon()
            if how == "exited":
                raise RuntimeError("sendmail -bD exited before it listened on 127.0.0.1:%d\n%s" % (self.port, last))
            self.port = free_port()     # taken by someone else meanwhile?
        raise RuntimeError("sendmail -bD did not listen on 127.0.0.1:%d\n%s" % (self.port, last))

    def _run_daemon(self):
        """Start sendmail -bD; "listening", "exited" or "timeout"."""
        self.errfile = os.path.join(self.dir, "sendmail.err")
        self.trafficfile = os.path.join(self.dir, "traffic")
        self.pid = None
        err = open(self.errfile, "ab")
        argv = [UNSHARE, "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
                "/bin/sh", os.path.join(self.dir, "ns.sh"), self.dir,
                self.sendmail, "-bD", "-X", self.trafficfile]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                     close_fds=True, start_new_session=True, preexec_fn=_die_with_parent)
        err.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pid = self.daemon_pid()
            if pid and listening_by(pid, self.port):
                try:
                    self.pidns = os.readlink("/proc/%d/ns/pid" % pid)
                except OSError:
                    pass
                return "listening"
            if self.proc.poll() is not None:
                return "exited"
            time.sleep(0.05)
        return "timeout"

    def daemon_pid(self):
        """Host PID of sendmail -bD: unshare's one child (PID 1 inside),
        once it has become the private sendmail."""
        if self.proc is None:
            return None
        if self.pid and proc_alive(self.pid):
            return self.pid
        for k in _children(self.proc.pid):
            try:
                if os.readlink("/proc/%d/exe" % k) == self.sendmail:
                    self.pid = k
                    return k
            except OSError:
                pass
        return None

    def _stop_daemon(self):
        if self.proc is None:
            return
        pid = self.daemon_pid()
        if pid and self.proc.poll() is None:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
            try:
                self.proc.wait(8)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            # --kill-child: unshare's death SIGKILLs PID 1 of the PID
            # namespace, and with it every process in there
            os.kill(self.proc.pid, signal.SIGKILL)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if pid:
            deadline = time.monotonic() + 5
            while proc_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.proc = None

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        self._stop_daemon()
        if self.syslog:
            self.syslog.close()
        if self.dir and not os.environ.get("SMAPTEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        elif self.dir:
            self.t.note("kept %s" % self.dir)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- results

    def _read(self, rel):
        try:
            with open(os.path.join(self.dir, rel), "rb") as f:
                return f.read().decode("latin-1")
        except OSError:
            return ""

    def log(self):
        return self.syslog.read() if self.syslog else ""

    def wait_log(self, regex, timeout=5.0, count=1):
        """Wait until regex matches `count` times; returns the last match."""
        deadline = time.monotonic() + timeout
        while True:
            ms = list(re.finditer(regex, self.log(), re.M))
            if len(ms) >= count:
                return ms[count - 1]
            if time.monotonic() > deadline:
                return None
            time.sleep(0.03)

    def traffic(self):
        return self._read("traffic")

    def stderr(self):
        return self._read("sendmail.err")

    def diag(self, limit=2500):
        """Sendmail's stderr and the end of its syslog, for a failure."""
        return "sendmail stderr: %s\nsyslog (last %d bytes):\n%s" % (
            self.stderr()[-limit:] or "(empty)", limit, self.log()[-limit:] or "(empty)")

    def maildir(self, user):
        return os.path.join(self.dir, "mail", user)

    def messages(self, user):
        return read_maildir(self.maildir(user), subdirs=("new",))

    def wait_messages(self, user, n, timeout=10.0):
        """Wait until user has at least n messages; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.messages(user)
            if len(m) >= n or time.monotonic() > deadline:
                return m
            time.sleep(0.03)

    def queue(self):
        """Files in the MTA's queue directory."""
        try:
            return sorted(os.listdir(os.path.join(self.dir, "var", "spool", "mqueue")))
        except OSError:
            return []

    def client_queue(self):
        """Files in the MSP's queue directory."""
        try:
            return sorted(os.listdir(os.path.join(self.dir, "var", "spool", "mqueue-client")))
        except OSError:
            return []
