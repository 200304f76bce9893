"""postfix - real backends for the smapd end-to-end tests (stdlib only).

  with Postfix(t, users=["a", "b"], access={"later": "450 4.2.0 try later"}) as pf:
      pf.port                   smtpd on 127.0.0.1:port (and pf.ports[name]
                                for extra listeners given with listeners=)
      pf.messages("a")          [(file name, bytes)] delivered to a@DOMAIN
      pf.wait_messages("a", 1)  bounded wait for that many
      pf.set_access({...})      rewrite the access table and reload
      pf.log(), pf.wait_log(re)
  A private Postfix instance: its own config directory (main.cf and
  master.cf written here), queue_directory and data_directory under a
  fresh temp dir, every service chroot=n, smtpd only on 127.0.0.1, no
  DNS, mail for DOMAIN delivered by virtual(8) into Maildirs owned by
  nobody. master(8) runs in the foreground (-d) in its own session, so
  the test owns its PID and its process group; stop() sends SIGTERM to
  that PID and SIGKILL to any of its children still left, by PID.
  Nothing in /etc is created or changed.

  with Dovecot(t, users={...}) as dv:
      a private Dovecot LMTP server (dovecot -F -c CONF) on 127.0.0.1:port,
      Maildirs under its temp dir, users from a passwd-file; skip() tells
      why it cannot run here (None when it can).

  sendmail_namespace(pf)        argv prefix that runs a command in a
                                private mount namespace where /etc/postfix
                                is a copy holding a main.cf that lists the
                                test instance in alternate_config_directories
                                (postdrop, set-gid, insists on that), so
                                Postfix's sendmail can submit into the test
                                instance without touching the real /etc.

Nothing here talks to anything but 127.0.0.1.
"""

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time

from smaptest import free_port, proc_alive

DOMAIN = "backend.test"
MASTER = "/usr/lib/postfix/sbin/master"
POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
SENDMAIL = "/usr/sbin/sendmail"
DOVECOT = "/usr/sbin/dovecot"
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"

MASTER_CF = """\
# written by tests/lib/postfix.py: every service chroot=n
{listeners}pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
local     unix  - n n -  - local
virtual   unix  - n n -  - virtual
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
tlsmgr    unix  - - n 1000? 1 tlsmgr
"""


def _pgid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def _group_members(pgid):
    """PIDs in process group pgid (from /proc), the leader included."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and _pgid(int(d)) == pgid:
            out.append(int(d))
    return out


def _stop_group(proc, leader_sig=signal.SIGTERM, wait=8.0):
    """Stop a process that leads its own process group: signal the
    leader, wait (bounded), then SIGKILL every member still alive, one
    PID at a time."""
    if proc is None:
        return
    pid = proc.pid
    if proc.poll() is None:
        try:
            os.kill(pid, leader_sig)
        except OSError:
            pass
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            pass
    for _ in range(3):
        left = [p for p in _group_members(pid) if proc_alive(p)]
        if not left:
            break
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and any(proc_alive(p) for p in left):
            time.sleep(0.05)
    if proc.poll() is None:
        try:
            proc.kill()
            proc.wait(3)
        except (OSError, subprocess.TimeoutExpired):
            pass


def listen_inode(port):
    """Inode of the socket listening on 127.0.0.1:port, or None."""
    want = "0100007F:%04X" % port
    try:
        with open("/proc/net/tcp") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 9 and parts[1] == want and parts[3] == "0A":
                    return parts[9]
    except OSError:
        pass
    return None


def listening_by(pid, port):
    """Is 127.0.0.1:port listened on by a socket that process pid holds?
    (A free port can be taken by someone else between free_port() and
    the bind; this tells our listener from theirs.)"""
    ino = listen_inode(port)
    if ino is None:
        return False
    tag = "socket:[%s]" % ino
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == tag:
                    return True
            except OSError:
                pass
    except OSError:
        pass
    return False


def read_maildir(path, subdirs=("new", "cur")):
    """[(name, bytes)] of the messages in a Maildir, sorted by name."""
    out = []
    for sub in subdirs:
        d = os.path.join(path, sub)
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for n in names:
            try:
                with open(os.path.join(d, n), "rb") as f:
                    out.append((n, f.read()))
            except OSError:
                pass
    return out


def split_message(data):
    """(header fields as [(name, raw bytes incl. continuation)], body) of a
    message with LF or CRLF line ends."""
    fields = []
    pos = 0
    n = len(data)
    for _ in range(10000):
        if pos >= n:
            break
        end = data.find(b"\n", pos)
        end = n if end < 0 else end + 1
        line = data[pos:end]
        if line in (b"\n", b"\r\n"):
            return fields, data[end:]
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + line)
        else:
            name = line.split(b":", 1)[0].decode("latin-1").strip()
            fields.append((name, line))
        pos = end
    return fields, b""


def header(data, name):
    """First value of header `name` (case-insensitive, unfolded) or None."""
    fields, _ = split_message(data)
    for k, raw in fields:
        if k.lower() == name.lower():
            v = raw.split(b":", 1)[1] if b":" in raw else b""
            return re.sub(rb"\r?\n[ \t]+", b" ", v).strip().decode("latin-1")
    return None


def message_ids(msgs):
    """{Message-ID: count} over [(name, bytes)]."""
    out = {}
    for _, data in msgs:
        mid = header(data, "Message-ID")
        out[mid] = out.get(mid, 0) + 1
    return out


class Postfix:
    """A private Postfix instance (see the module docstring).

    users: local parts with a Maildir at DOMAIN. access: {local part or
    address: "450 4.2.0 text"} for check_recipient_access. listeners:
    {name: "-o key=value ..." options} for extra smtpd listeners on their
    own free ports (pf.ports[name]). main: extra main.cf settings."""

    def __init__(self, t, users=("a", "b", "c", "sender"), access=None, listeners=None,
                 main=None, name="postfix", port=None):
        self.t = t
        self.want_port = port
        self.users = list(users)
        self.access = dict(access or {})
        self.listeners = dict(listeners or {})
        self.main_extra = dict(main or {})
        self.name = name
        self.proc = None
        self.dir = None
        self.port = None
        self.ports = {}
        self.stopped = False

    # -- setup

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *a):
        self.stop()

    def addr(self, user):
        return user if "@" in user else "%s@%s" % (user, DOMAIN)

    def _write(self, path, text, mode=0o644):
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)

    def _write_tables(self):
        self._write(os.path.join(self.etc, "vmailbox"),
                    "".join("%s %s/\n" % (self.addr(u), u) for u in self.users))
        tmp = os.path.join(self.etc, "access.tmp")
        self._write(tmp, "# written by tests/lib/postfix.py\n" +
                    "".join("%s %s\n" % (self.addr(k), v) for k, v in self.access.items()))
        os.rename(tmp, os.path.join(self.etc, "access"))

    def _main_cf(self):
        d = self.dir
        nobody = pwd.getpwnam("nobody")
        conf = {
            "compatibility_level": "3.6",
            "config_directory": self.etc,
            "queue_directory": os.path.join(d, "queue"),
            "data_directory": os.path.join(d, "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": DOMAIN,
            "mydomain": DOMAIN,
            "myorigin": DOMAIN,
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_peername_lookup": "no",
            "disable_dns_lookups": "yes",
            "smtp_dns_support_level": "disabled",
            "maillog_file": os.path.join(d, "maillog"),
            "maillog_file_prefixes": d,
            "local_header_rewrite_clients": "",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "relay_domains": "",
            "virtual_mailbox_domains": DOMAIN,
            "virtual_mailbox_base": os.path.join(d, "mail"),
            "virtual_mailbox_maps": "texthash:" + os.path.join(self.etc, "vmailbox"),
            "virtual_uid_maps": "static:%d" % nobody.pw_uid,
            "virtual_gid_maps": "static:%d" % nobody.pw_gid,
            "virtual_minimum_uid": "1",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtpd_recipient_restrictions": "check_recipient_access texthash:%s, "
                                            "permit_mynetworks, reject" % os.path.join(self.etc, "access"),
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "smtpd_client_message_rate_limit": "0",
            "smtpd_client_recipient_rate_limit": "0",
            # a fresh smtpd (fresh texthash tables) for every connection
            "max_use": "1",
            "max_idle": "10s",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "biff": "no",
            "smtputf8_enable": "no",
            "message_size_limit": "50000000",
        }
        conf.update(self.main_extra)
        return "# written by tests/lib/postfix.py (%s)\n" % self.name + \
            "".join("%s = %s\n" % kv for kv in conf.items())

    def start(self):
        if self.proc is not None:
            return self     # already running (start() then "with")
        self.dir = tempfile.mkdtemp(prefix="smaptest-pf.")
        os.chmod(self.dir, 0o755)
        self.etc = os.path.join(self.dir, "etc")
        os.makedirs(self.etc)
        os.makedirs(os.path.join(self.dir, "queue"))
        pfu = pwd.getpwnam("postfix")
        data = os.path.join(self.dir, "data")
        os.makedirs(data)
        os.chown(data, pfu.pw_uid, pfu.pw_gid)
        nobody = pwd.getpwnam("nobody")
        mail = os.path.join(self.dir, "mail")
        os.makedirs(mail)
        os.chown(mail, nobody.pw_uid, nobody.pw_gid)
        self.logfile = os.path.join(self.dir, "maillog")
        self.outfile = os.path.join(self.dir, "master.out")
        self._write(os.path.join(self.etc, "main.cf"), self._main_cf())
        self._write_tables()
        last = ""
        for attempt in range(4):
            self.port = self.want_port or free_port()
            self.ports = {"default": self.port}
            for name in self.listeners:
                for _ in range(20):
                    p = free_port()
                    if p not in self.ports.values():
                        break
                self.ports[name] = p
            lines = "127.0.0.1:%d inet n - n - - smtpd\n" % self.port
            for name, opts in self.listeners.items():
                lines += "127.0.0.1:%d inet n - n - - smtpd\n  -o syslog_name=postfix/%s %s\n" % (
                    self.ports[name], name, opts)
            self._write(os.path.join(self.etc, "master.cf"), MASTER_CF.format(listeners=lines))
            if attempt == 0:
                p = subprocess.run([POSTCONF, "-c", self.etc, "-n"], capture_output=True, timeout=20,
                                   stdin=subprocess.DEVNULL)
                self.postconf_rc = p.returncode
                self.postconf_n = p.stdout.decode("latin-1")
                self.postconf_err = p.stderr.decode("latin-1")
                # postfix check creates the queue directories with the
                # right owners (postfix-script, post-install create-missing)
                p = subprocess.run([POSTFIX, "-c", self.etc, "check"], capture_output=True, timeout=60,
                                   stdin=subprocess.DEVNULL)
                if p.returncode != 0 or not os.path.isdir(os.path.join(self.dir, "queue", "maildrop")):
                    raise RuntimeError("postfix -c %s check failed (%d): %s %s" % (
                        self.etc, p.returncode, p.stderr.decode("latin-1")[-500:], self.log()[-1000:]))
            out = open(self.outfile, "ab")
            self.proc = subprocess.Popen([MASTER, "-c", self.etc, "-d"], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=out, close_fds=True,
                                         start_new_session=True)
            out.close()
            deadline = time.monotonic() + 10
            want = list(self.ports.values())
            # master opens its listeners before it installs its signal
            # handlers: a SIGHUP (reload) in between kills it.  "daemon
            # started" is logged after the handlers are in place.
            started = "postfix/master[%d]: daemon started" % self.proc.pid
            while time.monotonic() < deadline:
                if all(listening_by(self.proc.pid, p) for p in want) and started in self.log():
                    return self
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
            last = self.log()[-800:]
            _stop_group(self.proc)
            self.proc = None
            try:
                os.unlink(os.path.join(self.dir, "queue", "pid", "master.pid"))
            except OSError:
                pass
        raise RuntimeError("postfix master did not listen: %s" % last)

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        _stop_group(self.proc)
        if not os.environ.get("SMAPTEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        elif self.dir:
            self.t.note("kept %s" % self.dir)

    # -- control

    def reload(self, timeout=5.0):
        """SIGHUP the master and wait for its 'reload' log line."""
        n = self.log().count("postfix/master[%d]: reload" % self.proc.pid)
        os.kill(self.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log().count("postfix/master[%d]: reload" % self.proc.pid) > n:
                return True
            time.sleep(0.05)
        return False

    def set_access(self, access):
        self.access = dict(access)
        self._write_tables()
        return self.reload()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- results

    def maildir(self, user):
        return os.path.join(self.dir, "mail", user)

    def messages(self, user):
        return read_maildir(self.maildir(user))

    def wait_messages(self, user, n, timeout=10.0):
        """Wait until user has at least n messages; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.messages(user)
            if len(m) >= n or time.monotonic() > deadline:
                return m
            time.sleep(0.03)

    def log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("latin-1")
        except OSError:
            return ""

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

    def queue_empty(self):
        """No message in Postfix's incoming/active/deferred queues."""
        for q in ("incoming", "active", "deferred", "maildrop"):
            for _root, _dirs, files in os.walk(os.path.join(self.dir, "queue", q)):
                if files:
                    return False
        return True

    def wait_idle(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.queue_empty():
                return True
            time.sleep(0.05)
        return self.queue_empty()


def sendmail_namespace(pf):
    """argv prefix: run the rest in a private mount namespace in which
    /etc/postfix is a copy of the real one plus a main.cf that lists
    pf's config directory in alternate_config_directories. postdrop(1)
    is set-gid and honours MAIL_CONFIG only for directories listed in
    the default main.cf; this way the real /etc/postfix is never
    written. `unshare` without --fork execs the command, so the PID of
    the returned command line is the PID of the final program."""
    shadow = os.path.join(pf.dir, "etc-postfix")
    if not os.path.isdir(shadow):
        shutil.copytree("/etc/postfix", shadow, symlinks=True)
        with open(os.path.join(shadow, "main.cf"), "w") as f:
            f.write("# written by tests/lib/postfix.py: only seen inside a private mount namespace\n"
                    "compatibility_level = 3.6\nalternate_config_directories = %s\n" % pf.etc)
        os.chmod(os.path.join(shadow, "main.cf"), 0o644)
    script = 'mount --bind "$0" /etc/postfix && exec "$@"'
    return [UNSHARE, "--mount", "--propagation", "private", "/bin/sh", "-c", script, shadow]


def namespace_skip():
    """Why sendmail_namespace() cannot work here (None when it can):
    it needs root (CAP_SYS_ADMIN) for unshare --mount and mount --bind."""
    if os.geteuid() != 0:
        return "needs root for a private mount namespace"
    try:
        p = subprocess.run([UNSHARE, "--mount", "--propagation", "private", "/bin/sh", "-c",
                            "mount --bind /tmp /mnt"], capture_output=True, timeout=10,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "unshare failed: %s" % e
    if p.returncode != 0:
        return "unshare --mount / mount --bind failed: %s" % p.stderr.decode("latin-1").strip()[:200]
    return None


def write_sendmail_wrapper(pf, path):
    """A sendmail_path wrapper: MAIL_CONFIG for the test instance, then
    Postfix's own sendmail with the arguments unchanged."""
    with open(path, "w") as f:
        f.write("#!/bin/sh\n# written by tests/lib/postfix.py\nMAIL_CONFIG=%s\nexport MAIL_CONFIG\n"
                "exec %s \"$@\"\n" % (pf.etc, SENDMAIL))
    os.chmod(path, 0o755)
    return path


# --------------------------------------------------------------------------
# Dovecot LMTP


class Dovecot:
    """A private Dovecot with only the LMTP service, on 127.0.0.1.

    users: {user: options}; options may hold "locked": True (the home is
    in a root-owned directory nobody cannot write into, so delivery fails
    with 451 4.x.x until unlock()), "home" (any path), and "quota" (e.g.
    "1K": a per-user limit, 552 5.2.2 when exceeded). Every user maps to
    uid/gid nobody. Unknown users get 550 5.1.1 at RCPT."""

    def __init__(self, t, users=None, name="dovecot"):
        self.t = t
        self.users = dict(users or {})
        self.name = name
        self.proc = None
        self.dir = None
        self.port = None
        self.stopped = False

    @staticmethod
    def skip():
        if not os.access(DOVECOT, os.X_OK):
            return "%s is not installed (Debian packages dovecot-core, dovecot-lmtpd)" % DOVECOT
        if not os.path.exists("/usr/lib/dovecot/lmtp"):
            return "/usr/lib/dovecot/lmtp is missing (Debian package dovecot-lmtpd)"
        for u in ("dovecot", "dovenull"):
            try:
                pwd.getpwnam(u)
            except KeyError:
                return "user %s is missing" % u
        return None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *a):
        self.stop()

    def maildir(self, user):
        if self.users.get(user, {}).get("locked"):
            return os.path.join(self.dir, "locked", user, "Maildir")
        return os.path.join(self.dir, "mail", user, "Maildir")

    def unlock(self):
        nobody = pwd.getpwnam("nobody")
        os.chown(os.path.join(self.dir, "locked"), nobody.pw_uid, nobody.pw_gid)

    def messages(self, user):
        return read_maildir(self.maildir(user))

    def wait_messages(self, user, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            m = self.messages(user)
            if len(m) >= n or time.monotonic() > deadline:
                return m
            time.sleep(0.03)

    def log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("latin-1")
        except OSError:
            return ""

    def start(self):
        if self.proc is not None:
            return self     # already running (start() then "with")
        self.dir = tempfile.mkdtemp(prefix="smaptest-dv.")
        os.chmod(self.dir, 0o755)
        nobody = pwd.getpwnam("nobody")
        mail = os.path.join(self.dir, "mail")
        os.makedirs(mail)
        os.chown(mail, nobody.pw_uid, nobody.pw_gid)
        base = os.path.join(self.dir, "run")
        os.makedirs(base)
        self.logfile = os.path.join(self.dir, "dovecot.log")
        passwd = []
        locked = os.path.join(self.dir, "locked")
        os.makedirs(locked)
        os.chmod(locked, 0o755)
        for user, opt in self.users.items():
            home = opt.get("home") or os.path.join(locked if opt.get("locked") else mail, user)
            extra = ""
            if opt.get("quota"):
                extra = "userdb_quota_rule=*:storage=%s" % opt["quota"]
            passwd.append("%s:{PLAIN}x:%d:%d::%s::%s\n" % (user, nobody.pw_uid, nobody.pw_gid, home, extra))
        users = os.path.join(self.dir, "users")
        with open(users, "w") as f:
            f.write("".join(passwd))
        os.chmod(users, 0o644)
        last = ""
        for _ in range(4):
            self.port = free_port()
            self.conffile = os.path.join(self.dir, "dovecot.conf")
            with open(self.conffile, "w") as f:
                f.write("""\
# written by tests/lib/postfix.py (%(name)s)
protocols = lmtp
listen = 127.0.0.1
base_dir = %(base)s
state_dir = %(dir)s/state
instance_name = smaptest-%(port)d
log_path = %(log)s
info_log_path = %(log)s
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
auth_username_format = %%Ln
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:~/Maildir
mail_plugins = quota
lmtp_save_to_detail_mailbox = no
recipient_delimiter =
postmaster_address = postmaster@%(domain)s
hostname = lmtp.test
protocol lmtp {
  mail_plugins = quota
}
plugin {
  quota = maildir:User quota
}
passdb {
  driver = passwd-file
  args = %(users)s
}
userdb {
  driver = passwd-file
  args = %(users)s
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = %(port)d
  }
  unix_listener lmtp {
    mode = 0666
  }
}
service auth {
  unix_listener auth-userdb {
    mode = 0666
  }
}
service anvil {
  chroot =
}
service imap-login {
  chroot =
}
""" % {"name": self.name, "base": base, "dir": self.dir, "log": self.logfile, "port": self.port,
       "users": users, "domain": DOMAIN})
            os.makedirs(os.path.join(self.dir, "state"), exist_ok=True)
            out = open(os.path.join(self.dir, "dovecot.out"), "ab")
            self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conffile], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=out, close_fds=True, start_new_session=True)
            out.close()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if listening_by(self.proc.pid, self.port):
                    self.unix_socket = os.path.join(base, "lmtp")
                    return self
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
            try:
                with open(os.path.join(self.dir, "dovecot.out"), "rb") as f:
                    last = f.read().decode("latin-1")[-800:] + self.log()[-800:]
            except OSError:
                last = self.log()[-800:]
            _stop_group(self.proc)
            self.proc = None
        raise RuntimeError("dovecot did not listen: %s" % last)

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        _stop_group(self.proc)
        if self.dir and not os.environ.get("SMAPTEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        elif self.dir:
            self.t.note("kept %s" % self.dir)
