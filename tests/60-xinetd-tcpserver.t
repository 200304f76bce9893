#!/usr/bin/env python3
# 60-xinetd-tcpserver.t - smap under the super-servers it ships for: a real
# xinetd running the shipped conf/xinetd.d/smap entry (on a high port of
# the loopback, flags = IPv6 kept, so clients arrive as ::ffff:127.0.0.1),
# and ucspi-tcp's tcpserver. For each: a whole SMTP session (250 to the
# end of data, one spool file, the client address in the log and the
# envelope), and the jail of the live smap process read from /proc
# (uid smap, no capabilities, no_new_privs, root = the spool).
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from smaptest import (TAP, Client, SMAP_BIN, HOSTNAME, REPO, SpoolFile,  # noqa: E402
                      free_port, make_spool, msg, proc_status, proc_alive)

XINETD = shutil.which("xinetd") or "/usr/sbin/xinetd"
TCPSERVER = shutil.which("tcpserver") or "/usr/bin/tcpserver"
SHIPPED = os.path.join(REPO, "conf", "xinetd.d", "smap")


def listening_any(port):
    """A listening TCP socket on port, IPv4 or IPv6 (/proc, no connect)."""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                for line in f:
                    p = line.split()
                    if len(p) > 3 and p[1].endswith(":%04X" % port) and p[3] == "0A":
                        return True
        except OSError:
            pass
    return False


class Spool:
    """A temp dir with a spool, a log file and a config, as smaptest's
    Server builds them."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix="smaptest.%s." % name)
        os.chmod(self.dir, 0o755)
        pw = pwd.getpwnam("smap")
        self.spool = os.path.join(self.dir, "spool")
        make_spool(self.spool)
        self.logfile = os.path.join(self.dir, "maillog")
        open(self.logfile, "w").close()
        os.chown(self.logfile, pw.pw_uid, pw.pw_gid)
        os.chmod(self.logfile, 0o640)
        self.conf = os.path.join(self.dir, "smap.conf")
        with open(self.conf, "w") as f:
            f.write("myhostname = %s\nspool_directory = %s\nmail_owner = smap\n"
                    "maillog_file = %s\n" % (HOSTNAME, self.spool, self.logfile))

    def log(self):
        with open(self.logfile, encoding="latin-1") as f:
            return f.read()

    def new(self):
        return sorted(os.listdir(os.path.join(self.spool, "incoming", "new")))

    def cleanup(self):
        if os.environ.get("SMAPTEST_KEEP"):
            return
        shutil.rmtree(self.dir, ignore_errors=True)


def children_smap(ppid):
    """PIDs of live smap processes whose parent is ppid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        try:
            with open("/proc/%d/stat" % pid) as f:
                st = f.read()
            fields = st.rsplit(")", 1)[1].split()
            if int(fields[1]) != ppid:
                continue
            if os.path.realpath("/proc/%d/exe" % pid) == os.path.realpath(SMAP_BIN):
                out.append(pid)
        except (OSError, IndexError, ValueError):
            continue
    return out


def stop(proc):
    """Stop a server we started, by its PID; then reap it."""
    if proc is None or proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 3), (signal.SIGKILL, 3)):
        try:
            os.kill(proc.pid, sig)
        except OSError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_gone(pids, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [p for p in pids if proc_alive(p)]
        if not pids:
            return True
        time.sleep(0.05)
    return False


def check_jail(t, what, pid, spool):
    """The live smap: uid/gid smap, no capabilities, no_new_privs, chroot."""
    pw = pwd.getpwnam("smap")
    st = proc_status(pid)
    uids = st.get("Uid", "").split()
    gids = st.get("Gid", "").split()
    t.is_(uids, [str(pw.pw_uid)] * 4, "%s: smap runs as uid smap (real, effective, saved, fs)" % what)
    t.is_(gids, [str(pw.pw_gid)] * 4, "%s: and gid smap" % what)
    t.is_(st.get("Groups", "").split(), [str(pw.pw_gid)], "%s: supplementary groups: smap only" % what)
    for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        t.ok(int(st.get(k, "1"), 16) == 0, "%s: %s is empty" % (what, k), "%s: %r" % (k, st.get(k)))
    t.is_(st.get("NoNewPrivs"), "1", "%s: no_new_privs is set" % what)
    try:
        root = os.readlink("/proc/%d/root" % pid)
    except OSError as e:
        root = str(e)
    t.is_(root, os.path.join(os.path.realpath(spool), "incoming"), "%s: /proc/PID/root is the spool's incoming/ (chroot)" % what)


def smtp_session(t, what, port, sp, server_pid, extra_check=None):
    """EHLO, MAIL, RCPT, DATA, message, QUIT; the jail checked while the
    session is open. Returns the client's local port."""
    before = sp.new()
    c = Client(port)
    try:
        t.expect(c.reply(), "220", "%s: greeting" % what)
        pids = []
        deadline = time.monotonic() + 5
        while not pids and time.monotonic() < deadline:
            pids = children_smap(server_pid)
            if not pids:
                time.sleep(0.05)
        if t.ok(len(pids) == 1, "%s: one smap process, a child of the server" % what,
                "children: %r" % pids):
            check_jail(t, what, pids[0], sp.spool)
        t.expect(c.cmd("EHLO client.example"), "250", "%s: EHLO" % what)
        t.expect(c.cmd("MAIL FROM:<alice@client.example>"), "250 2.1.0", "%s: MAIL" % what)
        t.expect(c.cmd("RCPT TO:<bob@elsewhere.example>"), "250 2.1.5",
                 "%s: RCPT to another domain: the loopback client is in mynetworks" % what)
        t.expect(c.cmd("DATA"), "354", "%s: DATA" % what)
        c.send(msg("via " + what) + b".\r\n")
        r = c.reply()
        t.expect(r, "250 2.0.0", "%s: 250 to the end of data" % what)
        m = re.search(r"queued as ([0-9A-F]+)", r.text)
        t.expect(c.cmd("QUIT"), "221", "%s: QUIT" % what)
        t.ok(c.wait_close(5), "%s: smap closes the connection" % what)
        local_port = c.local_port
    finally:
        c.close()
    t.ok(wait_gone(pids), "%s: the smap process has exited" % what)
    new = sorted(set(sp.new()) - set(before))
    t.is_(new, [m.group(1)] if m else ["?"], "%s: exactly one new spool file, named by the queue id" % what)
    if new:
        with open(os.path.join(sp.spool, "incoming", "new", new[0]), "rb") as f:
            sf = SpoolFile(new[0], f.read())
        t.is_(sf.env.get("client"), "127.0.0.1 %d" % local_port,
              "%s: envelope client is 127.0.0.1 and the client's port (unmapped)" % what)
        t.is_(sf.rcpt, ["<bob@elsewhere.example>"], "%s: envelope recipient" % what)
        t.ok(b"via " + what.encode() in sf.message, "%s: the message is in the file" % what)
    log = sp.log()
    t.like(log, r"smap/smtpd\[\d+\]: connect from unknown\[127\.0\.0\.1\]",
           "%s: log: connect from unknown[127.0.0.1]" % what)
    t.like(log, r"disconnect from unknown\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5",
           "%s: log: the disconnect summary" % what)
    t.unlike(log, r"::ffff:", "%s: log never shows a mapped address" % what)
    if extra_check:
        extra_check(log)
    return local_port


def xinetd_conf(sp, port, xlog):
    """The shipped entry, made to run here: UNLISTED on a high port of the
    loopback, the built smap, the test config, a log file."""
    with open(SHIPPED) as f:
        text = f.read()
    m = re.search(r"^service smtp\n\{\n(.*?)^\}", text, re.S | re.M)
    body = m.group(1)
    repl = {
        "server": SMAP_BIN,
        "server_args": "-c " + sp.conf,
        "log_type": "FILE " + xlog,
    }
    out = []
    for line in body.splitlines():
        k = line.strip().split("=", 1)[0].strip()
        if k in repl:
            out.append("\t%s = %s" % (k, repl.pop(k)))
        else:
            out.append(line)
    out += ["\ttype = UNLISTED", "\tport = %d" % port,
            "\tbind = ::ffff:127.0.0.1"]
    return "defaults\n{\n}\n\nservice smtp\n{\n" + "\n".join(out) + "\n}\n", body


def test_shipped(t):
    with open(SHIPPED) as f:
        text = f.read()
    for k, v in (("socket_type", "stream"), ("wait", "no"), ("user", "root"),
                 ("server", "/usr/sbin/smap"), ("server_args", "-c /etc/smap/smap.conf"),
                 ("log_type", "SYSLOG mail info"), ("log_on_failure", "HOST ATTEMPT"),
                 ("flags", "IPv6")):
        t.like(text, r"(?m)^\s*%s\s*=\s*%s\s*$" % (k, re.escape(v)),
               "shipped xinetd entry: %s = %s" % (k, v))
    for k in ("instances", "per_source", "cps"):
        t.like(text, r"(?m)^\s*%s\s*=\s*\d+" % k, "shipped xinetd entry sets %s" % k)
    t.like(text, r"(?m)^\s*#\s*only_from\s*=", "shipped xinetd entry documents only_from")


def test_xinetd(t):
    sp = Spool("xinetd")
    proc = None
    try:
        xlog = os.path.join(sp.dir, "xinetd.log")
        for attempt in range(3):
            port = free_port()
            conf, _ = xinetd_conf(sp, port, xlog)
            cpath = os.path.join(sp.dir, "xinetd.conf")
            with open(cpath, "w") as f:
                f.write(conf)
            err = open(os.path.join(sp.dir, "xinetd.err"), "ab")
            proc = subprocess.Popen([XINETD, "-dontfork", "-f", cpath, "-pidfile",
                                     os.path.join(sp.dir, "xinetd.pid")],
                                    stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            err.close()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not listening_any(port) and proc.poll() is None:
                time.sleep(0.05)
            if listening_any(port):
                break
            stop(proc)
            proc = None
        if not t.ok(proc is not None, "xinetd listens on the shipped entry (port substituted)",
                    open(os.path.join(sp.dir, "xinetd.err"), errors="replace").read()[-800:]):
            return
        smtp_session(t, "xinetd", port, sp, proc.pid)
        t.ok(proc.poll() is None, "xinetd still runs after the session")
    finally:
        stop(proc)
        sp.cleanup()


def start_tcpserver(sp, argv_tail):
    for attempt in range(3):
        port = free_port()
        err = open(os.path.join(sp.dir, "tcpserver.err"), "ab")
        proc = subprocess.Popen([TCPSERVER, "-R", "-H", "-c", "4", "127.0.0.1", str(port)] + argv_tail,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        err.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not listening_any(port) and proc.poll() is None:
            time.sleep(0.05)
        if listening_any(port):
            return proc, port
        stop(proc)
    return None, None


def test_tcpserver(t):
    sp = Spool("tcpserver")
    proc = None
    try:
        proc, port = start_tcpserver(sp, [SMAP_BIN, "-c", sp.conf])
        if not t.ok(proc is not None, "tcpserver -R -H 127.0.0.1 PORT smap listens"):
            return
        smtp_session(t, "tcpserver", port, sp, proc.pid)
    finally:
        stop(proc)
        sp.cleanup()


def test_tcpserver_env(t):
    """TCPREMOTEIP is a fallback: a forged one loses to the socket."""
    sp = Spool("tcpenv")
    proc = None
    try:
        env = shutil.which("env") or "/usr/bin/env"
        proc, port = start_tcpserver(sp, [env, "TCPREMOTEIP=203.0.113.9", "TCPREMOTEPORT=1",
                                          SMAP_BIN, "-c", sp.conf])
        if not t.ok(proc is not None, "tcpserver with a forged TCPREMOTEIP listens"):
            return
        # env(1) execs smap: the smap process is still tcpserver's child.
        smtp_session(t, "tcpserver (TCPREMOTEIP=203.0.113.9)", port, sp, proc.pid,
                     extra_check=lambda log: t.unlike(
                         log, r"203\.0\.113\.9",
                         "tcpserver: the address comes from the socket, not TCPREMOTEIP"))
    finally:
        stop(proc)
        sp.cleanup()


def main(t):
    if os.geteuid() != 0:
        t.skip("needs root (smap chroots)")
        return
    for tool in (XINETD, TCPSERVER):
        if not os.access(tool, os.X_OK):
            t.ok(False, "%s is installed (tools/deps test)" % tool)
            return
    t.run("shipped entry", test_shipped, t)
    t.run("xinetd", test_xinetd, t)
    t.run("tcpserver", test_tcpserver, t)
    t.run("tcpserver env", test_tcpserver_env, t)


TAP(watchdog=80).main(main)
