"""smaptest - stdlib-only harness for the smap integration tests.

What it gives a test file:

  t = TAP(watchdog=60)          TAP output: ok/not ok, "# diag", plan at the
                                end, exit status 1 on any failure.
  with Server(t, conf={...}) as srv:
                                a fresh temp dir with a spool laid out by
                                smapd -P (layout.h: smap's incoming/tmp
                                and incoming/new, smapd's queue/ ...), a config,
                                systemd-socket-activate on a free port of
                                127.0.0.1 running one smap per connection;
                                listen=("127.0.0.1", "::1"): the same port
                                on each of these loopback addresses;
                                stopped by PID on exit, smap's stderr checked
                                for sanitizer reports (one TAP line).
  c = srv.client()              raw socket client (reader thread, every wait
                                bounded): c.reply(), c.cmd(b"NOOP"),
                                c.send(data, trickle=True), c.wait_close().
  res = srv.session([chunks])   run a raw script, collect every reply until
                                the server closes, and compute the spool
                                invariant: files that appeared in new/ ==
                                the 250 replies to end-of-data.
  t.invariant(res, desc)        assert that invariant.

Nothing here talks to anything but 127.0.0.1.
"""

import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMAP_BIN = os.path.abspath(os.environ.get("SMAP_BIN") or os.path.join(REPO, "smap", "smap"))
# a static smap runs its dynamic build, beside it, where TLS is on
SMAP_EXES = [os.path.realpath(p) for p in (SMAP_BIN, os.path.join(os.path.dirname(SMAP_BIN),
                                                                  "smap-dynamic"))]
SMAPD_BIN = os.path.abspath(os.environ.get("SMAPD_BIN") or os.path.join(REPO, "smapd", "smapd"))
SSA = shutil.which("systemd-socket-activate") or "/usr/bin/systemd-socket-activate"
HOSTNAME = "mx.test.example"
CRLF = b"\r\n"

SANITIZER_PATTERNS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "SUMMARY: UndefinedBehaviorSanitizer",
)

# make check-valgrind: smap and smapd run under memcheck, which (quiet)
# writes only its findings, each line "==PID== ...", to their stderr.
VALGRIND = [shutil.which("valgrind") or "/usr/bin/valgrind", "--quiet", "--vgdb=no",
            "--leak-check=full", "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite",
            "--error-exitcode=99"] if os.environ.get("SMAPTEST_VALGRIND") else []
VALGRIND_RE = re.compile(r"^==\d+== ")
# memcheck runs a program some 20 times slower: bounds that wait for smap
# or smapd (and intervals that start them) are multiplied by SLOW.
SLOW = 8 if VALGRIND else 1


def sanitizer_hits(err):
    """Lines of a sanitizer or valgrind report in a program's stderr."""
    return [l for l in err.splitlines()
            if any(p in l for p in SANITIZER_PATTERNS) or (VALGRIND and VALGRIND_RE.match(l))]

LOG_PREFIX_RE = re.compile(
    r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ smap/smtpd\[\d+\]: ")
DATE_RE = r"[A-Z][a-z]{2}, [ \d]?\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000"


class Watchdog(BaseException):
    """Raised by SIGALRM when a test file runs too long."""


# --------------------------------------------------------------------------
# TAP


class TAP:
    def __init__(self, watchdog=90):
        self.n = 0
        self.failed = 0
        self.t0 = time.monotonic()
        self._done = False
        sys.stdout.reconfigure(line_buffering=True)
        if watchdog:
            signal.signal(signal.SIGALRM, self._alarm)
            signal.alarm(int(watchdog) * SLOW)

    def _alarm(self, signum, frame):
        raise Watchdog("test file exceeded its time budget")

    @staticmethod
    def _clean(desc):
        desc = str(desc).replace("\n", "\\n").replace("\r", "\\r").replace("#", "\\#")
        return desc

    def ok(self, cond, desc, *diag):
        self.n += 1
        cond = bool(cond)
        print("%s %d - %s" % ("ok" if cond else "not ok", self.n, self._clean(desc)))
        if not cond:
            self.failed += 1
            for d in diag:
                self.diag(d)
        return cond

    def skip(self, reason):
        """A TAP skip line (ok() escapes '#', so it cannot make one)."""
        self.n += 1
        print("ok %d # skip %s" % (self.n, self._clean(reason)))

    def diag(self, msg):
        for line in str(msg).splitlines() or [""]:
            print("#   " + line)

    def note(self, msg):
        for line in str(msg).splitlines() or [""]:
            print("# " + line)

    def is_(self, got, exp, desc):
        return self.ok(got == exp, desc, "got:      %r" % (got,), "expected: %r" % (exp,))

    @staticmethod
    def _excerpt(got, m=None, limit=1500):
        if got is None or len(got) <= limit:
            return "got:      %r" % (got,)
        if m is not None:
            a = max(0, m.start() - 300)
            return "got (excerpt at %d of %d): %r" % (a, len(got), got[a:m.end() + 300])
        return "got (last %d of %d): %r" % (limit, len(got), got[-limit:])

    def like(self, got, regex, desc, flags=0):
        if isinstance(got, bytes):
            m = re.search(regex if isinstance(regex, bytes) else regex.encode(), got, flags)
        else:
            m = re.search(regex, got if got is not None else "", flags)
        return self.ok(m is not None, desc, self._excerpt(got), "expected: /%s/" % (regex,))

    def unlike(self, got, regex, desc, flags=0):
        if isinstance(got, bytes):
            m = re.search(regex if isinstance(regex, bytes) else regex.encode(), got, flags)
        else:
            m = re.search(regex, got or "", flags)
        return self.ok(m is None, desc, self._excerpt(got, m), "must not match: /%s/" % (regex,))

    def expect(self, reply, want, desc, noenh=False, text=None):
        """reply: a Reply. want: "250", "250 2.1.0", or a tuple of such
        alternatives. noenh: the reply must carry no enhanced status code.
        text: an optional regex for the reply text."""
        alts = want if isinstance(want, (tuple, list)) else (want,)
        good = any(reply_matches(reply, w) for w in alts)
        if good and noenh and reply.enh is not None:
            good = False
        if good and text is not None:
            good = re.search(text, reply.text) is not None
        exp = " or ".join(alts) + (" (no enhanced code)" if noenh else "") + \
            (" text /%s/" % text if text else "")
        return self.ok(good, desc, "got:      %s" % (reply,), "expected: %s" % exp)

    def codes(self, replies, want, desc):
        """Compare a list of replies with a list of "code[ enh]" strings."""
        good = len(replies) == len(want) and all(
            any(reply_matches(r, x) for x in (w if isinstance(w, tuple) else (w,)))
            for r, w in zip(replies, want))
        return self.ok(good, desc, "got:      %s" % [r.short() for r in replies],
                       "expected: %s" % list(want))

    def invariant(self, res, desc):
        return self.ok(res.invariant_ok(), desc + ": new/ files == 250 replies to end-of-data",
                       *res.invariant_diag())

    def run(self, name, fn, *args, **kw):
        """Run one test function; an exception is one failing test line."""
        try:
            return fn(*args, **kw)
        except Exception as e:  # noqa: BLE001 - report, go on
            self.ok(False, "%s: raised %s: %s" % (name, type(e).__name__, e),
                    traceback.format_exc())
            return None

    def done(self):
        if self._done:
            return
        self._done = True
        signal.alarm(0)
        if self.n == 0:
            print("not ok 1 - no tests ran")
            self.n, self.failed = 1, 1
        print("1..%d" % self.n)
        self.note("%d/%d failed, %.1fs" % (self.failed, self.n, time.monotonic() - self.t0))
        sys.stdout.flush()
        sys.exit(1 if self.failed else 0)

    def main(self, fn):
        """Run fn(t), catching everything (watchdog included), then done()."""
        try:
            fn(self)
        except Watchdog as e:
            self.ok(False, "watchdog: %s" % e, traceback.format_exc())
        except Exception as e:  # noqa: BLE001
            self.ok(False, "uncaught %s: %s" % (type(e).__name__, e), traceback.format_exc())
        finally:
            signal.alarm(0)
        self.done()


# --------------------------------------------------------------------------
# replies

ENH_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)")


class Reply:
    """One SMTP reply. kind: "reply", "eof", "timeout" or "garbage"."""

    def __init__(self, code=None, lines=None, raw=b"", kind="reply", crlf=True):
        self.code = code
        self.lines = lines or []
        self.raw = raw
        self.kind = kind
        self.crlf = crlf
        self.at = time.monotonic()
        first = self.lines[0] if self.lines else ""
        m = ENH_RE.match(first)
        self.enh = "%s.%s.%s" % m.groups() if m else None

    @property
    def text(self):
        return "\n".join(self.lines)

    def short(self):
        if self.kind != "reply":
            return "<%s%s>" % (self.kind, (" %r" % self.raw) if self.raw else "")
        return "%d%s" % (self.code, (" " + self.enh) if self.enh else "")

    def __repr__(self):
        if self.kind != "reply":
            return self.short()
        return repr(self.raw.decode("latin-1"))

    __str__ = __repr__


def reply_matches(reply, want):
    if reply is None or reply.kind != "reply":
        return False
    parts = want.split()
    if int(parts[0]) != reply.code:
        return False
    if len(parts) > 1 and reply.enh != parts[1]:
        return False
    return True


REPLY_LINE_RE = re.compile(rb"^(\d{3})([ -])(.*)$", re.S)


# --------------------------------------------------------------------------
# client


class Client:
    """A raw TCP client. A reader thread drains the socket into a buffer,
    so sends never deadlock against unread replies and an RST cannot
    eat replies already received. Every wait has a deadline."""

    MAX_BUF = 64 * 1024 * 1024

    def __init__(self, port, host="127.0.0.1", timeout=5.0, connect_timeout=5.0):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(0.2)
        self.local_port = self.sock.getsockname()[1]
        self.buf = bytearray()
        self.pos = 0
        self.eof = False
        self.eof_at = None
        self.send_error = None
        self.cond = threading.Condition()
        self._stop = False
        self.sent = bytearray()
        self.replies = []
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()

    def _reader(self):
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                data = b""
            with self.cond:
                if data:
                    if len(self.buf) < self.MAX_BUF:
                        self.buf += data
                else:
                    self.eof = True
                    self.eof_at = time.monotonic()
                self.cond.notify_all()
            if not data:
                return

    # -- sending

    def send(self, data, trickle=False, delay=0.0003):
        """Send bytes in one write, or one byte per write with a delay.
        Returns False (and records send_error) when the peer is gone."""
        if self.send_error:
            return False
        try:
            if not trickle:
                self.sock.settimeout(self.timeout)
                self.sock.sendall(data)
                self.sent += data
            else:
                self.sock.settimeout(self.timeout)
                for i in range(len(data)):
                    self.sock.send(data[i:i + 1])
                    self.sent += data[i:i + 1]
                    if delay:
                        time.sleep(delay)
            return True
        except OSError as e:
            self.send_error = e
            return False
        finally:
            try:
                self.sock.settimeout(0.2)
            except OSError:
                pass

    def cmd(self, line, trickle=False, timeout=None):
        if isinstance(line, str):
            line = line.encode()
        self.send(line + CRLF, trickle=trickle)
        return self.reply(timeout)

    # -- receiving

    def _line(self, deadline):
        """Next LF-terminated line (bytes, with its ending), or None at
        EOF/timeout (then self.eof tells which)."""
        with self.cond:
            while True:
                i = self.buf.find(b"\n", self.pos)
                if i >= 0:
                    line = bytes(self.buf[self.pos:i + 1])
                    self.pos = i + 1
                    return line
                if self.eof:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.5))

    def reply(self, timeout=None):
        """Read one (possibly multiline) reply."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        lines, raw, code, crlf = [], b"", None, True
        for _ in range(1000):
            line = self._line(deadline)
            if line is None:
                if raw:
                    r = Reply(raw=raw, kind="garbage")
                else:
                    r = Reply(kind="eof" if self.eof else "timeout",
                              raw=self.pending() if self.eof else b"")
                self.replies.append(r)
                return r
            raw += line
            if not line.endswith(b"\r\n"):
                crlf = False
            body = line.rstrip(b"\n").rstrip(b"\r")
            m = REPLY_LINE_RE.match(body)
            if not m or (code is not None and int(m.group(1)) != code):
                r = Reply(raw=raw, kind="garbage")
                self.replies.append(r)
                return r
            code = int(m.group(1))
            lines.append(m.group(3).decode("latin-1"))
            if m.group(2) == b" ":
                r = Reply(code, lines, raw, crlf=crlf)
                self.replies.append(r)
                return r
        r = Reply(raw=raw, kind="garbage")
        self.replies.append(r)
        return r

    def pending(self):
        with self.cond:
            return bytes(self.buf[self.pos:])

    def has_data(self, wait=0.0):
        deadline = time.monotonic() + wait
        with self.cond:
            while True:
                if len(self.buf) > self.pos or self.eof:
                    return len(self.buf) > self.pos
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.2))

    def collect(self, timeout=10.0, want=None, grace=0.3, idle=None):
        """Read replies until EOF, or (want given) until at least `want`
        replies arrived and then nothing more for `grace` seconds, or
        (idle given) nothing at all for `idle` seconds, or the overall
        timeout. Returns the list of replies (EOF not included)."""
        deadline = time.monotonic() + timeout
        got = []
        for _ in range(100000):
            if want is not None and len(got) >= want:
                if not self.has_data(grace):
                    break
            elif idle is not None:
                if not self.has_data(idle):
                    break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r = self.reply(left)
            if r.kind in ("eof", "timeout"):
                break
            got.append(r)
        return got

    def wait_close(self, timeout=5.0):
        """Wait for EOF from the server. True if it closed in time.
        Unread bytes stay readable with pending()."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.5))
            return True

    def read_until_close(self, timeout=5.0):
        """Everything not yet consumed, once the server has closed (or
        the timeout passed). Returns (bytes, closed)."""
        closed = self.wait_close(timeout)
        with self.cond:
            data = bytes(self.buf[self.pos:])
            self.pos = len(self.buf)
        return data, closed

    def close(self):
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.thread.join(2)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# --------------------------------------------------------------------------
# spool files


class SpoolFile:
    """A parsed spool file: envelope records and the message."""

    def __init__(self, name, data, st=None):
        self.name = name
        self.data = data
        self.st = st
        self.records = []       # [(key, value)] in order, as str (latin-1)
        self.env = {}
        self.rcpt = []
        self.ok = False
        self.error = None
        head, sep, msg = data.partition(b"\n\n")
        self.message = msg if sep else b""
        if not sep:
            self.error = "no blank line after the envelope"
            return
        for raw in head.split(b"\n"):
            line = raw.decode("latin-1")
            key, _, val = line.partition(" ")
            self.records.append((key, val))
            if key == "rcpt":
                self.rcpt.append(val)
            else:
                self.env[key] = val
        self.ok = True

    def keys(self):
        return [k for k, _ in self.records]

    def received(self):
        """(Received header bytes, rest of message)."""
        msg = self.message
        if not msg.startswith(b"Received:"):
            return b"", msg
        end = 0
        for _ in range(100):
            i = msg.find(b"\r\n", end)
            if i < 0:
                return msg, b""
            end = i + 2
            if not msg[end:end + 1] in (b"\t", b" "):
                break
        return msg[:end], msg[end:]

    def body(self):
        return self.received()[1]


def received_re(helo, sid, rcpt=None, proto="ESMTP", host=HOSTNAME, client="127.0.0.1"):
    """Regex (bytes) for the Received header smap prepends.
    'for' carries the recipient with or without angle brackets."""
    r = (rb"\AReceived: from " + re.escape(helo.encode()) +
         rb" \(unknown \[" + re.escape(client.encode()) + rb"\]\)\r\n" +
         rb"\tby " + re.escape(host.encode()) + rb" with " + proto.encode() +
         rb" id " + re.escape(sid.encode()))
    if rcpt is not None:
        r += rb"\r\n\tfor <?" + re.escape(rcpt.encode()) + rb">?; "
    else:
        r += rb"; "
    r += DATE_RE.encode() + rb"\r\n"
    return r


# --------------------------------------------------------------------------
# sessions


class SessionResult:
    def __init__(self):
        self.replies = []
        self.closed = False
        self.send_error = None
        self.before = set()
        self.after = set()
        self.tmp_before = []
        self.tmp_after = []
        self.client_port = None
        self.elapsed = 0.0

    @property
    def codes(self):
        return [r.short() for r in self.replies]

    def eod_replies(self):
        """Replies that answer an end-of-data: the reply after each 354.
        (A 354 with nothing after it yields a None.)"""
        out = []
        for i, r in enumerate(self.replies):
            if r.code == 354:
                out.append(self.replies[i + 1] if i + 1 < len(self.replies) else None)
        return out

    def queued_ids(self):
        ids = []
        for r in self.eod_replies():
            if r is not None and r.code == 250:
                m = re.search(r"queued as ([0-9A-Fa-f]+)", r.text)
                ids.append(m.group(1) if m else "?")
        return ids

    def new_files(self):
        return sorted(self.after - self.before)

    def invariant_ok(self):
        ids = self.queued_ids()
        new = self.new_files()
        return len(ids) == len(new) and sorted(ids) == new and not self.tmp_left()

    def tmp_left(self):
        """Files this session left in tmp/ (leftovers of earlier sessions,
        e.g. after kill -9, do not count)."""
        return sorted(set(self.tmp_after) - set(self.tmp_before))

    def invariant_diag(self):
        return ["replies: %s" % self.codes,
                "250s to end-of-data: %s" % self.queued_ids(),
                "new files in new/: %s" % self.new_files(),
                "left in tmp/ by this session: %s" % self.tmp_left()]

    def after_failure(self, idx):
        return self.replies[idx + 1:]


# --------------------------------------------------------------------------
# server


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def proc_net_addr(addr):
    """addr as /proc/net/tcp (IPv4) or tcp6 shows it: each 32-bit word of
    the address in hex, in host byte order."""
    raw = socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)
    return "".join("%08X" % struct.unpack("=I", raw[i:i + 4])[0] for i in range(0, len(raw), 4))


def listening(port, addr="127.0.0.1"):
    """Is something listening on addr:port? (/proc/net/tcp or tcp6, no
    connect)"""
    want = "%s:%04X" % (proc_net_addr(addr), port)
    try:
        with open("/proc/net/tcp6" if ":" in addr else "/proc/net/tcp") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 3 and parts[1] == want and parts[3] == "0A":
                    return True
    except OSError:
        pass
    return False


def proc_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        state = st.rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def proc_status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k.strip()] = v.strip()
    except OSError:
        pass
    return out


def smap_ids():
    pw = pwd.getpwnam("smap")
    return pw.pw_uid, pw.pw_gid


def smapd_ids():
    pw = pwd.getpwnam("smapd")
    return pw.pw_uid, pw.pw_gid


def msg(subject="test", body=b"hello\r\n", headers=None):
    """A small RFC 5322 message with CRLF line ends (no end-of-data)."""
    h = b"From: a@b.example\r\nTo: u@example.com\r\nSubject: " + subject.encode() + b"\r\n"
    if headers:
        h = headers + h
    return h + b"\r\n" + body


def lines(*cmds):
    return b"".join((c.encode() if isinstance(c, str) else c) + CRLF for c in cmds)


class Server:
    """One smap service: temp dir, spool, config, systemd-socket-activate.

    conf: overrides for the config; a value None removes the key.
    wrapper: argv put in front of the smap command (e.g. setpriv ...).
    spool: use this path as spool_directory (not created) instead of the
    fresh one; make_spool=False skips creating tmp/ and new/.
    listen: the loopback addresses ("127.0.0.1", "::1") that the one port
    is listened on; clients connect to the first by default."""

    def __init__(self, t, conf=None, name="smap", wrapper=None, spool=None,
                 make_spool=True, extra_conf="", listen=("127.0.0.1",)):
        self.t = t
        self.listen = tuple(listen)
        self.name = name
        self.overrides = dict(conf or {})
        self.wrapper = list(wrapper or [])
        self.spool_arg = spool
        self.make_spool = make_spool
        self.extra_conf = extra_conf
        self.proc = None
        self.port = None
        self.dir = None
        self.stopped = False

    # -- setup

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *a):
        self.stop()

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="smaptest.")
        os.chmod(self.dir, 0o755)
        uid, gid = smap_ids()
        self.spool = self.spool_arg or os.path.join(self.dir, "spool")
        if self.spool_arg is None and self.make_spool:
            make_spool(self.spool, {k: v for k, v in self.overrides.items()
                                    if k in ("mail_owner", "smapd_user") and real_user(v)})
        self.logfile = os.path.join(self.dir, "maillog")
        with open(self.logfile, "w"):
            pass
        # smap and smapd both append to it, started as root or as themselves
        os.chown(self.logfile, uid, smapd_ids()[1])
        os.chmod(self.logfile, 0o660)
        self.errfile = os.path.join(self.dir, "stderr")
        self.conffile = os.path.join(self.dir, "smap.conf")
        conf = {
            "myhostname": HOSTNAME,
            "spool_directory": self.spool,
            "mail_owner": "smap",
            "maillog_file": self.logfile,
            # smap-tls.so from the build tree, beside the smap tested
            "shlib_directory": os.path.dirname(SMAP_BIN),
        }
        conf.update(self.overrides)
        with open(self.conffile, "w") as f:
            f.write("# written by tests/lib/smaptest.py (%s)\n" % self.name)
            for k, v in conf.items():
                if v is not None:
                    f.write("%s = %s\n" % (k, v))
            f.write(self.extra_conf)
        os.chmod(self.conffile, 0o644)
        asan = os.environ.get("ASAN_OPTIONS", "")
        asan = (asan + ":" if asan else "") + "detect_leaks=0"
        env_args = ["-E", "ASAN_OPTIONS=" + asan]
        for k in ("UBSAN_OPTIONS",):
            if os.environ.get(k):
                env_args += ["-E", "%s=%s" % (k, os.environ[k])]
        last = None
        for attempt in range(5):
            port = free_port()
            err = open(self.errfile, "ab")
            where = []
            for a in self.listen:
                where += ["-l", ("[%s]:%d" if ":" in a else "%s:%d") % (a, port)]
            argv = [SSA, "-a", "--inetd"] + where + env_args + \
                self.wrapper + VALGRIND + [SMAP_BIN, "-c", self.conffile]
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err,
                                         close_fds=True)
            err.close()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if all(listening(port, a) for a in self.listen):
                    self.port = port
                    return self
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
            last = self.stderr()[-500:]
            self._stop_ssa()
        raise RuntimeError("systemd-socket-activate did not listen: %s" % last)

    # -- access

    def client(self, **kw):
        kw.setdefault("host", self.listen[0])
        return Client(self.port, **kw)

    def stderr(self):
        try:
            with open(self.errfile, "rb") as f:
                return f.read().decode("latin-1")
        except OSError:
            return ""

    def log_bytes(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def log(self):
        return self.log_bytes().decode("latin-1")

    def wait_log(self, regex, timeout=3.0):
        """Wait until the log matches regex; returns the match or None."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(regex, self.log(), re.M)
            if m or time.monotonic() > deadline:
                return m
            time.sleep(0.05)

    def newdir(self):
        return os.path.join(self.spool, "incoming", "new")

    def tmpdir(self):
        return os.path.join(self.spool, "incoming", "tmp")

    def list_new(self):
        try:
            return set(os.listdir(self.newdir()))
        except OSError:
            return set()

    def list_tmp(self):
        try:
            return sorted(os.listdir(self.tmpdir()))
        except OSError:
            return []

    def count_new(self):
        return len(self.list_new())

    def count_tmp(self):
        return len(self.list_tmp())

    def spool_file(self, name):
        p = os.path.join(self.newdir(), name)
        st = os.lstat(p)
        with open(p, "rb") as f:
            return SpoolFile(name, f.read(), st)

    def spool_files(self):
        """{name: SpoolFile} for every file in new/."""
        return {n: self.spool_file(n) for n in sorted(self.list_new())}

    # -- processes

    def spawned(self):
        return [int(p) for p in re.findall(r"as PID (\d+)", self.stderr())]

    def _ours(self, pid):
        return self.conffile.encode() in proc_cmdline(pid)

    def live_sessions(self):
        return [p for p in self.spawned() if proc_alive(p) and self._ours(p)]

    def smap_pids(self):
        """Live session processes that are already smap (after exec)."""
        out = []
        for p in self.live_sessions():
            try:
                if os.path.realpath("/proc/%d/exe" % p) in SMAP_EXES or \
                        (VALGRIND and SMAP_BIN.encode() in proc_cmdline(p)):
                    out.append(p)
            except OSError:
                pass
        return out

    def wait_smap_pid(self, timeout=5.0, exclude=()):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = [p for p in self.smap_pids() if p not in exclude]
            if pids:
                return pids[-1]
            time.sleep(0.05)
        return None

    def wait_sessions(self, timeout=5.0):
        """Wait until every smap spawned for this server has exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.live_sessions():
                return True
            time.sleep(0.03)
        return not self.live_sessions()

    def _stop_ssa(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.terminate()
            except OSError:
                pass
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                try:
                    self.proc.kill()
                except OSError:
                    pass
                try:
                    self.proc.wait(3)
                except subprocess.TimeoutExpired:
                    pass

    def stop_listening(self):
        """Accept no more connections (systemd-socket-activate stopped by
        its PID); the spool, the log and running sessions are left be."""
        self._stop_ssa()

    def stop(self, check=True):
        if self.stopped:
            return
        self.stopped = True
        self.wait_sessions(3)
        self._stop_ssa()
        left = self.live_sessions()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for p in left:
                try:
                    os.kill(p, sig)
                except OSError:
                    pass
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                left = [p for p in left if proc_alive(p)]
                if not left:
                    break
                time.sleep(0.05)
            if not left:
                break
        if check:
            self.check_sanitizer()
        if not os.environ.get("SMAPTEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            self.t.note("kept %s" % self.dir)

    def check_sanitizer(self):
        err = self.stderr()
        hits = sanitizer_hits(err)
        if hits:
            i = err.find(hits[0])
            self.t.ok(False, "%s: no sanitizer report in smap's stderr" % self.name,
                      err[max(0, i - 200):i + 3000])
        else:
            self.t.ok(True, "%s: no sanitizer report in smap's stderr" % self.name)

    # -- sessions

    def session(self, chunks, trickle=False, delay=0.0003, gap=0.05, timeout=15.0,
                want=None, grace=0.3, close_timeout=3.0, greet=True):
        """Connect, wait for the greeting (greet=True, as RFC 5321 clients
        must), send chunks (each one write, or trickled byte by byte),
        collect every reply until the server closes, then wait for smap
        to exit and diff new/.

        Returns a SessionResult; res.replies[0] is the greeting."""
        if isinstance(chunks, (bytes, bytearray)):
            chunks = [chunks]
        res = SessionResult()
        res.before = self.list_new()
        res.tmp_before = self.list_tmp()
        t0 = time.monotonic()
        c = self.client()
        res.client_port = c.local_port
        try:
            first = [c.reply()] if greet else []
            for i, ch in enumerate(chunks):
                if i and gap and not trickle:
                    time.sleep(gap)
                if not c.send(ch, trickle=trickle, delay=delay):
                    break
            res.send_error = c.send_error
            if want is not None:
                want = max(0, want - len(first))
            res.replies = first + c.collect(timeout=timeout, want=want, grace=grace)
            res.closed = c.wait_close(close_timeout if not c.eof else 0)
            res.leftover = c.pending()
        finally:
            c.close()
        self.wait_sessions(5)
        res.after = self.list_new()
        res.tmp_after = self.list_tmp()
        res.elapsed = time.monotonic() - t0
        return res


def real_user(name):
    """Is name an unprivileged user of this host? (A test that names a
    missing user or root still gets a spool, for the default users.)"""
    try:
        return pwd.getpwnam(name).pw_uid != 0
    except (KeyError, TypeError):
        return False


def make_spool(path, conf=None):
    """The spool at path, laid out by smapd -P (owners and modes of
    layout.h) for the users of conf (a dict of extra settings)."""
    os.makedirs(path, exist_ok=True)
    fd, cpath = tempfile.mkstemp(prefix="smaptest-layout.", suffix=".conf")
    with os.fdopen(fd, "w") as f:
        f.write("spool_directory = %s\n" % path)
        for k, v in (conf or {}).items():
            if v is not None:
                f.write("%s = %s\n" % (k, v))
    try:
        p = subprocess.run([SMAPD_BIN, "-c", cpath, "-P"], capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL)
    finally:
        os.unlink(cpath)
    if p.returncode != 0:
        raise RuntimeError("smapd -P %s: exit %d: %s" % (path, p.returncode,
                                                         p.stderr.decode("latin-1")[-800:]))


def check_log_clean(t, srv, desc):
    """Every log line is printable ASCII and starts with the smap prefix:
    nothing an attacker sent can forge or split a log line."""
    data = srv.log_bytes()
    bad_bytes = [b for b in set(data) if b != 0x0a and not 0x20 <= b <= 0x7e]
    t.ok(not bad_bytes, "%s: log holds printable ASCII only" % desc,
         "bytes: %r" % sorted(bad_bytes))
    bad = [l for l in data.decode("latin-1").split("\n") if l and not LOG_PREFIX_RE.match(l)]
    t.ok(not bad and data.endswith(b"\n"), "%s: every log line has the smap/smtpd[PID] prefix" % desc,
         "bad lines: %r" % bad[:5], "log ends with LF: %r" % data.endswith(b"\n"))


def dialog(t, srv, steps, desc, trickle=False, greeting="220", quiet=False, client=None):
    """Lock-step session. steps: [(data, want)]; data str gets CRLF
    appended, bytes are sent verbatim; want is "code[ enh]", a tuple of
    alternatives, None (read a reply, check nothing), "EOF" (the server
    must close without another reply) or "-" (read nothing).
    One TAP line per checked step (quiet=True: one line for the lot).
    Returns (client replies, closed?)."""
    c = client or srv.client()
    bad = []
    try:
        if greeting:
            r = c.reply()
            if quiet:
                if not reply_matches(r, greeting):
                    bad.append("greeting: got %s" % r)
            else:
                t.expect(r, greeting, "%s: greeting %s" % (desc, greeting))
        for data, want in steps:
            raw = data.encode("latin-1") + CRLF if isinstance(data, str) else data
            c.send(raw, trickle=trickle)
            if want == "-":
                continue
            r = c.reply()
            shown = raw if len(raw) <= 80 else raw[:60] + b"...(%d bytes)" % len(raw)
            label = "%s: %r -> %s" % (desc, shown, want if want else "a reply")
            if want == "EOF":
                ok = r.kind == "eof"
                if quiet:
                    if not ok:
                        bad.append("%s: got %s" % (label, r))
                else:
                    t.ok(ok, label, "got: %s" % r)
            elif want is None:
                pass
            elif quiet:
                alts = want if isinstance(want, (tuple, list)) else (want,)
                if not any(reply_matches(r, w) for w in alts):
                    bad.append("%s: got %s" % (label, r))
            else:
                t.expect(r, want, label)
        if quiet:
            t.ok(not bad, desc, *bad)
        return c.replies, c.eof
    finally:
        if client is None:
            c.close()
