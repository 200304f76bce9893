"""smapdtest - smapd under test (stdlib only).

  with Server(t, ...) as srv:                  smap (tests/lib/smaptest.py)
      d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:25"})
      d.check()          smapd -t: (exit status, stderr)
      d.once()           smapd -1 -f: one queue run, bounded
      d.start()          the daemon, in the foreground, owned by PID
      d.kill9(); d.stop()
  d writes its own config file beside smap's (same spool_directory,
  mail_owner and maillog_file), so smap's file is never rewritten;
  d.set_conf(...) rewrites smapd's. Its stderr is checked for sanitizer
  reports when it is stopped.

  spool_bytes(...) / place(srv, name, data)   hand-made spool files in new/
  queue_ids(srv), state(srv, id), quarantined(srv)
  send(srv, messages)                          messages through smap with
                                               smtplib; returns [(id, t250)]
"""

import os
import pwd
import re
import signal
import smtplib
import subprocess
import threading
import time

from smaptest import (HOSTNAME, SLOW, VALGRIND, SMAPD_BIN, proc_alive, sanitizer_hits, smap_ids,
                      smapd_ids)
SMAPQ_BIN = os.path.abspath(os.environ.get("SMAPQ_BIN") or os.path.join(os.path.dirname(SMAPD_BIN), "smapq"))

_counter = [0]
_lock = threading.Lock()


def new_id():
    """A queue id no smap will make: time, then 5 hex digits of our pid
    and a counter (smap uses microseconds and its own pid)."""
    with _lock:
        _counter[0] += 1
        c = _counter[0]
    return "%08X%05X%04X" % (int(time.time()), (os.getpid() * 7 + c) & 0xFFFFF, c & 0xFFFF)


def spool_bytes(sid, message=b"Subject: hand-made\r\n\r\nbody\r\n", sender="<a@b.example>",
                rcpts=("<u@example.com>",), arrival=None, client="127.0.0.1 4711",
                helo="client.test", proto="ESMTP", body="7BIT", size=None, magic="SMAP 1",
                id_record=None):
    """A spool file in the format of common/spool.c (all values str or bytes)."""
    def b(x):
        return x if isinstance(x, bytes) else str(x).encode("latin-1")
    if arrival is None:
        arrival = int(time.time())
    if size is None:
        size = len(message)
    recs = [b(magic), b"id " + b(id_record if id_record is not None else sid),
            b"arrival " + b(arrival), b"client " + b(client), b"helo " + b(helo),
            b"proto " + b(proto), b"body " + b(body), b"from " + b(sender)]
    recs += [b"rcpt " + b(r) for r in rcpts]
    recs.append(b"size %016d" % size)
    return b"\n".join(recs) + b"\n\n" + message


def place(srv, name, data=None, owner="smap", mode=0o644, kind="file", target=None):
    """Put one entry into new/ atomically (made in the test dir, then
    renamed): kind "file" (data), "symlink" (to target), "fifo". Mode
    0644 as smap commits them (smapd, new/'s owner, reads them as other)."""
    tmp = os.path.join(srv.dir, ".place-" + re.sub(r"[^A-Za-z0-9]", "_", name))
    if kind == "file":
        with open(tmp, "wb") as f:
            f.write(data)
        if owner:
            pw = pwd.getpwnam(owner)
            os.chown(tmp, pw.pw_uid, pw.pw_gid)
        os.chmod(tmp, mode)
    elif kind == "symlink":
        os.symlink(target, tmp)
        if owner:
            pw = pwd.getpwnam(owner)
            os.lchown(tmp, pw.pw_uid, pw.pw_gid)
    elif kind == "fifo":
        os.mkfifo(tmp, 0o640)
        if owner:
            pw = pwd.getpwnam(owner)
            os.chown(tmp, pw.pw_uid, pw.pw_gid)
    else:
        raise ValueError(kind)
    path = os.path.join(srv.newdir(), name)
    os.rename(tmp, path)
    return path


def spool_path(srv, *parts):
    """A path below the spool; "new" and "tmp" are smap's, in incoming/."""
    if parts and parts[0] in ("new", "tmp"):
        parts = ("incoming",) + parts
    return os.path.join(srv.spool, *parts)


def smapd_maildir(srv, name="mail"):
    """A maildir: transport's path: srv.dir/NAME made and given to
    smapd_user (smapd creates Maildir/ in it), and NAME/Maildir/."""
    uid, gid = smapd_ids()
    parent = os.path.join(srv.dir, name)
    os.mkdir(parent)
    os.chown(parent, uid, gid)
    return os.path.join(parent, "Maildir") + "/"


def listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def queue_ids(srv):
    return listdir(spool_path(srv, "queue"))


def state_ids(srv):
    return listdir(spool_path(srv, "state"))


def quarantined(srv):
    """{name: reason} for quarantine/NAME with its NAME.why."""
    out = {}
    names = listdir(spool_path(srv, "quarantine"))
    for n in names:
        if n.endswith(".why"):
            continue
        why = None
        try:
            with open(spool_path(srv, "quarantine", n + ".why"), "rb") as f:
                why = f.read().decode("latin-1").strip()
        except OSError:
            pass
        out[n] = why
    return out


def state(srv, sid):
    """state/ID parsed: {"attempts": int, "next": int, "warned": int,
    "rcpt": {index: (status, dsn, text)}, "raw": text}, or None."""
    try:
        with open(spool_path(srv, "state", sid), "rb") as f:
            raw = f.read().decode("latin-1")
    except OSError:
        return None
    out = {"rcpt": {}, "raw": raw}
    for line in raw.split("\n"):
        m = re.match(r"^(attempts|next|warned) (\d+)$", line)
        if m:
            out[m.group(1)] = int(m.group(2))
            continue
        m = re.match(r"^rcpt (\d+) (\S+) (\S+) (.*)$", line)
        if m:
            out["rcpt"][int(m.group(1))] = (m.group(2), m.group(3), m.group(4))
    return out


def send(srv, messages, sender="a@b.example", helo="client.test", timeout=20, host="127.0.0.1"):
    """Send [(rcpts, message bytes)] through smap in one SMTP session
    (smtplib dot-stuffs) from host ("::1": over IPv6, to a Server that
    listens there). Returns [(queue id, monotonic time of 250)]."""
    out = []
    s = smtplib.SMTP(timeout=timeout)
    try:
        s.connect(host, srv.port)
        s.local_hostname = helo
        s.ehlo()
        for rcpts, data in messages:
            frm = sender
            if isinstance(data, tuple):
                frm, data = data
            code, r = s.mail(frm, ["BODY=8BITMIME"] if any(c > 127 for c in data) else [])
            if code != 250:
                raise RuntimeError("MAIL: %d %r" % (code, r))
            for rc in rcpts:
                code, r = s.rcpt(rc)
                if code != 250:
                    raise RuntimeError("RCPT %s: %d %r" % (rc, code, r))
            code, r = s.data(data)
            t250 = time.monotonic()
            if code != 250:
                raise RuntimeError("DATA: %d %r" % (code, r))
            m = re.search(rb"queued as ([0-9A-F]+)", r)
            out.append((m.group(1).decode() if m else None, t250))
        s.quit()
    finally:
        s.close()
    srv.wait_sessions(5)
    return out


class Smapd:
    def __init__(self, t, srv, conf=None, name="smapd"):
        self.t = t
        self.srv = srv
        self.name = name
        self.conffile = os.path.join(srv.dir, name + ".conf")
        self.errfile = os.path.join(srv.dir, name + ".stderr")
        self.proc = None
        self.procs = []
        self.conf = {}
        self.set_conf(conf or {})

    def set_conf(self, conf, replace=False):
        if replace:
            self.conf = {}
        self.conf.update(conf)
        base = {
            "myhostname": HOSTNAME,
            "spool_directory": self.srv.spool,
            "mail_owner": "smap",
            "maillog_file": self.srv.logfile,
            "queue_run_delay": "60s",
            "minimal_backoff_time": "60s",
            "maximal_backoff_time": "120s",
            "smtp_connect_timeout": "5s",
            "smtp_helo_timeout": "10s",
            "smtp_data_done_timeout": "20s",
        }
        base.update(self.conf)
        with open(self.conffile, "w") as f:
            f.write("# written by tests/lib/smapdtest.py (%s)\n" % self.name)
            for k, v in base.items():
                if v is not None:
                    f.write("%s = %s\n" % (k, v))
        os.chmod(self.conffile, 0o644)

    def _env(self):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        asan = os.environ.get("ASAN_OPTIONS", "")
        env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "detect_leaks=0"
        if os.environ.get("UBSAN_OPTIONS"):
            env["UBSAN_OPTIONS"] = os.environ["UBSAN_OPTIONS"]
        return env

    def argv(self, *args):
        return VALGRIND + [SMAPD_BIN, "-c", self.conffile] + list(args)

    def check(self, conffile=None):
        """smapd -t: (exit status, stderr)."""
        p = subprocess.run(VALGRIND + [SMAPD_BIN, "-c", conffile or self.conffile, "-t"], capture_output=True,
                           timeout=20, stdin=subprocess.DEVNULL, env=self._env())
        return p.returncode, p.stderr.decode("latin-1")

    def key_off(self):
        """smapq journal-key, as the admin does after install: the first
        journal key leaves the host (smapd warns while it is there);
        the key line, or None"""
        p = subprocess.run([SMAPQ_BIN, "-c", self.conffile, "journal-key"], capture_output=True,
                           timeout=20, stdin=subprocess.DEVNULL, env=self._env())
        return p.stdout.decode("latin-1") if p.returncode == 0 else None

    def once(self, flush=True, timeout=40, prefix=()):
        """One queue run (smapd -1 [-f]); its exit status (stderr: .stderr())."""
        args = ["-1"] + (["-f"] if flush else [])
        with open(self.errfile, "ab") as err:
            p = subprocess.Popen(list(prefix) + self.argv(*args), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=err, env=self._env(), close_fds=True)
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
            rc = "timeout after %ds" % timeout
        return rc

    def start(self, prefix=(), wait=True):
        """The daemon; waits (bounded) for its 'started' log line."""
        n = len(re.findall(r"smap/qmgr\[\d+\]: started, delivering by", self.srv.log()))
        with open(self.errfile, "ab") as err:
            self.proc = subprocess.Popen(list(prefix) + self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err, env=self._env(),
                                         close_fds=True)
        self.procs.append(self.proc)
        if wait:
            deadline = time.monotonic() + 10 * SLOW
            while time.monotonic() < deadline:
                if len(re.findall(r"smap/qmgr\[\d+\]: started, delivering by", self.srv.log())) > n:
                    break
                if self.proc.poll() is not None:
                    raise RuntimeError("smapd exited with %s: %s" % (self.proc.returncode,
                                                                    self.stderr()[-500:]))
                time.sleep(0.02)
            else:
                raise RuntimeError("smapd did not log 'started': %s" % self.stderr()[-500:])
        return self.proc

    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        """SIGKILL the current daemon; it no longer counts for stop()."""
        p = self.proc
        if p is not None and p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if p in self.procs:
            self.procs.remove(p)
        self.proc = None

    def stop(self, timeout=15):
        """SIGTERM every daemon this object started, wait, then SIGKILL.
        Returns the exit statuses."""
        out = []
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except OSError:
                    pass
        for p in self.procs:
            try:
                out.append(p.wait(timeout))
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(5)
                out.append("killed")
        self.procs = []
        self.proc = None
        return out

    def stderr(self):
        try:
            with open(self.errfile, "rb") as f:
                return f.read().decode("latin-1")
        except OSError:
            return ""

    def check_sanitizer(self):
        err = self.stderr()
        hits = sanitizer_hits(err)
        self.t.ok(not hits, "%s: no sanitizer report in smapd's stderr" % self.name,
                  err[:3000] if hits else "")

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()
        self.check_sanitizer()


def wait_until(fn, timeout, step=0.05):
    """Poll fn() until true or the timeout; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def smapd_log(srv, sid=None):
    """smapd's lines of the shared maillog (optionally for one id)."""
    out = []
    for l in srv.log().split("\n"):
        if re.search(r" smap/(qmgr|smtp|lmtp|pipe|local|bounce)\[\d+\]: ", l):
            if sid is None or (": %s: " % sid) in l:
                out.append(l)
    return out


def tap_skip(t, why):
    """One TAP line 'ok N # SKIP why' (TAP.ok would escape the '#')."""
    t.n += 1
    print("ok %d # SKIP %s" % (t.n, str(why).replace("\n", " ")))


def uid_of(name):
    return pwd.getpwnam(name).pw_uid


__all__ = ["SMAPD_BIN", "Smapd", "new_id", "spool_bytes", "place", "queue_ids", "state_ids",
           "quarantined", "state", "send", "wait_until", "smapd_log", "proc_alive", "smap_ids",
           "spool_path", "listdir", "uid_of", "tap_skip", "smapd_ids"]
