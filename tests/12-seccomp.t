#!/usr/bin/env python3
# 12-seccomp.t - the seccomp filters of common/sandbox.c.
#   - a whole smap session under its filter stores the message, and the
#     running session shows "Seccomp: 2" (filter mode) in /proc/PID/status;
#   - tests/unit/t_seccomp_probe installs smap's or smapd's filter and makes
#     one system call: smap's allow-list kills (SIGSYS) on execve, an
#     AF_INET socket, executable memory; smapd's deny-list lets sockets,
#     fork and execve through and answers EPERM to ptrace, mount, umount2,
#     unshare, setuid; without no_new_privs smapd installs no filter;
#   - the PROXY header and the limits table (smap/anvil.c) work under the
#     filter: fcntl's open-file locks are allowed, flock(2) is not.
import os
import signal
import subprocess
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from smaptest import TAP, Server, VALGRIND, lines, msg, proc_status  # noqa: E402

PROBE = os.path.join(HERE, "unit", "t_seccomp_probe")
EPERM = 1


def probe(which, name):
    """(returncode, stdout) of one probe run."""
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    p = subprocess.run([PROBE, which, name], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                       timeout=20)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def killed(t, which, name):
    rc, out = probe(which, name)
    t.ok(rc == -signal.SIGSYS and out.startswith("installed 0 "),
         "%s filter: %s kills the process with SIGSYS" % (which, name),
         "exit %d" % rc, out[-1500:])


def survives(t, which, name, err=None):
    rc, out = probe(which, name)
    if err is None:
        # A successful execve leaves no line: /bin/true ran instead.
        good = rc == 0 and ("%s rc=-1" % name) not in out and (
            (name + " rc=") in out or name == "execve")
        what = "allowed"
    else:
        good = rc == 0 and ("%s rc=-1 errno=%d" % (name, err)) in out
        what = "fails with errno %d" % err
    t.ok(good and out.startswith("installed 0 "),
         "%s filter: %s %s" % (which, name, what), "exit %d" % rc, out[-1500:])
    return out


def test_session(t):
    if VALGRIND:
        t.skip("make check-valgrind: smap runs without its filter (valgrind cannot run under one)")
        return
    with Server(t, name="seccomp") as srv:
        c = srv.client()
        t.is_(c.reply().code, 220, "session under the filter: greeting")
        pid = srv.wait_smap_pid()
        st = proc_status(pid) if pid else {}
        t.is_(st.get("Seccomp"), "2", "running smap: Seccomp: 2 (filter mode)")
        try:
            n = int(st.get("Seccomp_filters", "0"))
        except ValueError:
            n = 0
        t.ok(n >= 1, "running smap: Seccomp_filters >= 1", "got %r" % st.get("Seccomp_filters"))
        t.is_(st.get("NoNewPrivs"), "1", "running smap: NoNewPrivs: 1")
        c.close()
        srv.wait_sessions(5)
        res = srv.session(lines("EHLO client.example", "MAIL FROM:<a@client.example>",
                                "RCPT TO:<u@example.com>", "DATA") +
                          msg("under seccomp") + b".\r\n" + lines("QUIT"))
        t.ok(any(r.code == 250 and "queued as" in r.text for r in res.replies),
             "session under the filter: message accepted", "replies: %s" % res.codes,
             srv.log()[-1500:])
        t.is_(len(res.new_files()), 1, "session under the filter: one file in new/")
        t.ok(res.replies and res.replies[-1].code == 221, "session under the filter: QUIT answered",
             "replies: %s" % res.codes)
        t.unlike(srv.log(), r"cannot enter the jail|seccomp", "no seccomp error logged")


def test_proxy_limits(t):
    """A PROXY header names a client outside mynetworks; its second
    connection is past smtpd_client_connection_rate_limit = 1: the table
    is read, locked and written under the filter."""
    if VALGRIND:
        t.skip("make check-valgrind: smap runs without its filter")
        return
    conf = {"smtpd_upstream_proxy_protocol": "haproxy", "mynetworks": "127.0.0.1/32",
            "smtpd_client_connection_rate_limit": "1"}
    with Server(t, name="seccomp proxy", conf=conf) as srv:
        codes = []
        for _ in range(2):
            c = srv.client()
            c.send(b"PROXY TCP4 198.51.100.9 127.0.0.1 4000 25\r\n")
            codes.append(c.reply().code)
            c.close()
            srv.wait_sessions(5)
        t.is_(codes, [220, 421], "under the filter: the second connection of 198.51.100.9 gets 421")
        t.like(srv.log(), r"connect from unknown\[198\.51\.100\.9\] proxy=\[127\.0\.0\.1\]",
               "under the filter: the header's client is logged")
        t.unlike(srv.log(), r"anvil/clients: |cannot enter the jail", "no table warning")


def test_probe_smap(t):
    # ofd_lock: the lock of the limits table (smap/anvil.c); flock is not needed
    for name in ("getpid", "write", "socket_unix", "ofd_lock"):
        survives(t, "smap", name)
    for name in ("execve", "socket_inet", "mmap_exec", "fork", "mount", "setuid", "flock"):
        killed(t, "smap", name)


def test_probe_smapd(t):
    out = survives(t, "smapd", "socket_inet")
    asan = "asan=1" in out
    for name in ("fork", "execve", "socket_unix"):
        survives(t, "smapd", name)
    for name in ("mount", "umount2", "unshare", "setuid", "symlink", "fchown"):
        survives(t, "smapd", name, EPERM)
    if asan:
        t.skip("ptrace is allowed under ASan (LeakSanitizer needs it)")
    else:
        survives(t, "smapd", "ptrace", EPERM)
    rc, out = probe("smapd-nonnp", "getpid")
    t.ok(rc == 0 and out.startswith("installed 1 ") and "no_new_privs" in out,
         "smapd filter: not installed (and said so) without no_new_privs", out[-1500:])


def main(t):
    if not os.access(PROBE, os.X_OK):
        t.ok(False, "%s is built (make tests)" % PROBE)
        return
    t.run("probe smap", test_probe_smap, t)
    t.run("probe smapd", test_probe_smapd, t)
    if os.geteuid() != 0:
        t.skip("the session test needs root")
        return
    t.run("session", test_session, t)
    t.run("proxy and limits", test_proxy_limits, t)


TAP(watchdog=80).main(main)
