#!/usr/bin/env python3
"""bench/session_profile.py - where one SMTP session's time goes (run by bench/run.py,
or alone: python3 bench/session_profile.py [SMAP_BIN ...]).

One 1 KiB session (EHLO, MAIL, RCPT, DATA, QUIT) is run against a program
that has a fresh TCP connection on fd 0 and 1, started with posix_spawn
(so that the child's rusage is its own, not a forked Python's):

  cost       N sessions one after another: the child's CPU time
             (utime + stime: the scheduler's exact sum), minor page
             faults, wall time from connect to exit; minimum and median
  syscalls   one session under strace -f -T: every system call put in a
             phase by what it touches (the descriptor it uses, the path
             it names), counted, and its time in the kernel summed
  instr      one session under callgrind (smap-vg: valgrind cannot run
             under seccomp): user-space instructions, inclusive, by phase

Phases: exec + dynamic loading (everything before main), config read and
parse, log (open and lines written), users (mail_owner, smapd_user:
NSS or /etc/passwd), checks (the spool's directories), jail (chroot,
ids, capabilities, no_new_privs, seccomp), SMTP dialogue, spool write
and fsyncs. Stdlib only; 127.0.0.1 only; every child waited for.
"""

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
STRACE = shutil.which("strace") or "/usr/bin/strace"
VALGRIND = shutil.which("valgrind") or "/usr/bin/valgrind"
CG_ANNOTATE = shutil.which("callgrind_annotate") or "/usr/bin/callgrind_annotate"

PHASES = ("exec + dynamic loading", "config read + parse", "log", "users",
          "checks", "jail", "SMTP dialogue", "spool write + fsyncs", "exit")
FROM = b"bench@client.example"
RCPT = b"u@example.com"


def body(size):
    line = b"x" * 62 + b"\r\n"
    return (b"From: <%s>\r\nTo: <%s>\r\nSubject: profile\r\n\r\n" % (FROM, RCPT) +
            line * (size // len(line)))


def spawn_session(argv, size=1024, mail=True, env=None, timeout=60):
    """One session against argv; (rusage, wall seconds, 250 seen)."""
    import time
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    t0 = time.monotonic()
    c = socket.create_connection(ls.getsockname(), timeout=timeout)
    a, _ = ls.accept()
    ls.close()
    pid = os.posix_spawn(argv[0], argv, env or {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                         file_actions=[(os.POSIX_SPAWN_DUP2, a.fileno(), 0),
                                       (os.POSIX_SPAWN_DUP2, a.fileno(), 1),
                                       (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0)])
    a.close()
    ok = False
    try:
        f = c.makefile("rb")

        def reply():
            while True:
                line = f.readline()
                if not line:
                    raise RuntimeError("%s: connection closed" % argv[0])
                if line[3:4] != b"-":
                    return line

        def cmd(x):
            c.sendall(x + b"\r\n")
            return reply()
        reply()
        cmd(b"EHLO client.example")
        if mail:
            cmd(b"MAIL FROM:<%s>" % FROM)
            cmd(b"RCPT TO:<%s>" % RCPT)
            if not cmd(b"DATA").startswith(b"354"):
                raise RuntimeError("%s: DATA refused" % argv[0])
            ok = cmd(body(size) + b".").startswith(b"250")
        cmd(b"QUIT")
    finally:
        c.close()
        _, _, ru = os.wait4(pid, 0)
    return ru, time.monotonic() - t0, ok


def cost(argv, n=200, size=1024, mail=True):
    """Per-session CPU (us), minor faults, wall (us): min and median of n."""
    cpu, flt, wall = [], [], []
    for _ in range(n):
        ru, dt, ok = spawn_session(argv, size, mail)
        if mail and not ok:
            raise RuntimeError("%s: message not accepted" % argv[0])
        cpu.append((ru.ru_utime + ru.ru_stime) * 1e6)
        flt.append(ru.ru_minflt)
        wall.append(dt * 1e6)
    return {"n": n, "cpu_min": min(cpu), "cpu_med": statistics.median(cpu),
            "flt_med": statistics.median(flt), "wall_min": min(wall),
            "wall_med": statistics.median(wall)}


# --------------------------------------------------------------------------
# system calls by phase

LINE_RE = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+|\?|0x[0-9a-f]+)(.*?)(?:<([\d.]+)>)?$")
JAIL_CALLS = {"chroot", "chdir", "capget", "capset", "setgroups", "setresgid", "setresuid",
              "getresuid", "getresgid", "getgroups", "setuid", "setgid", "seccomp"}
SMTP_CALLS = {"poll", "ppoll", "fcntl", "rt_sigaction", "alarm", "statfs", "getpeername",
              "getsockname", "setsockopt", "read", "write", "sendto", "recvfrom"}


class Phases:
    """Puts each call of one traced session in a phase."""

    def __init__(self, conffile):
        self.conf = conffile
        self.fds = {}           # fd -> phase of what it is open on
        self.main = False       # past the loader
        self.count = dict((p, 0) for p in PHASES)
        self.time = dict((p, 0.0) for p in PHASES)
        self.calls = dict((p, {}) for p in PHASES)

    def path_phase(self, path):
        if path == self.conf:
            return "config read + parse"
        if path.startswith(("/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/var/run/nscd",
                            "/run/nscd")):
            return "users"
        if path in ("/etc/localtime", "/dev/log") or path.endswith("maillog"):
            return "log"
        if path.startswith(("tmp/", "new")) or "/incoming/tmp/" in path:
            return "spool write + fsyncs"
        if path.startswith("/proc/self"):
            return "jail"
        if "/spool" in path or "incoming" in path:
            return "checks"
        return None

    def classify(self, name, args, ret):
        m = re.search(r'"([^"]*)"', args)
        path = m.group(1) if m else None
        fd = None
        fm = re.match(r"(-?\d+)", args)
        if fm:
            fd = int(fm.group(1))
        if name == "execve":
            return "exec + dynamic loading"
        if name == "exit_group":
            return "exit"
        if not self.main:
            if name == "getpeername" or (name in ("openat", "open") and path == self.conf):
                self.main = True
            else:
                return "exec + dynamic loading"
        if name == "prctl":
            return "jail"
        if name in JAIL_CALLS:
            return "jail" if name != "chdir" or path == "/" else "checks"
        if name in ("openat", "open", "newfstatat", "stat", "lstat", "access", "statx",
                    "readlink", "renameat2", "rename", "unlink", "unlinkat", "socket",
                    "connect"):
            ph = self.path_phase(path) if path else None
            if name == "socket":
                ph = "log" if "AF_UNIX" in args else None
            if name in ("newfstatat", "statx") and fd is not None and path == "":
                ph = self.fds.get(fd)
            if ph is None:
                ph = "checks" if name in ("newfstatat", "stat", "lstat", "statx") else "config read + parse"
            if name in ("openat", "open", "socket") and ret.lstrip("-").isdigit() and int(ret) >= 0:
                self.fds[int(ret)] = ph
            if name == "connect" and fd in self.fds:
                ph = self.fds[fd] if "nscd" not in args else "users"
                if "nscd" in args:
                    self.fds[fd] = "users"
            return ph
        if fd is not None and fd in self.fds and name in (
                "read", "write", "pread64", "pwrite64", "close", "fsync", "fdatasync", "fchmod",
                "lseek", "fstat", "newfstatat", "sendto", "writev", "fcntl", "ftruncate",
                "linkat", "getdents64"):
            ph = self.fds[fd]
            if name == "close":
                del self.fds[fd]
            return ph
        if name == "getpid":
            return "log"
        if name in ("uname",):
            return "log"
        if fd in (0, 1) or name in SMTP_CALLS:
            return "SMTP dialogue"
        if name in ("brk", "mmap", "munmap", "mprotect", "getrandom"):
            return "config read + parse"
        if name in ("getuid", "geteuid", "getgid", "getegid"):
            return "jail"
        return "config read + parse"

    def feed(self, line):
        m = LINE_RE.match(line.strip())
        if not m:
            return
        name, args, ret, dur = m.group(2), m.group(3), m.group(4), m.group(6)
        ph = self.classify(name, args, ret)
        self.count[ph] += 1
        self.time[ph] += float(dur) if dur else 0.0
        self.calls[ph][name] = self.calls[ph].get(name, 0) + 1


def syscalls(argv, conffile, workdir, name):
    """One session under strace -f -T; Phases filled in."""
    out = os.path.join(workdir, "%s.strace" % name)
    spawn_session([STRACE, "-f", "-T", "-qq", "-o", out] + argv)
    ph = Phases(conffile)
    with open(out, errors="replace") as f:
        for line in f:
            ph.feed(line)
    return ph


# --------------------------------------------------------------------------
# instructions by phase

# main's callees (inclusive), each the root of a phase; what is left of
# main is the SMTP dialogue; (below main) minus main is libc's start and
# exit; the rest of the total is the loader.
CG_ROOTS = (
    ("config read + parse", ("startup_load",)),
    ("log", ("startup_log", "log_msg")),
    ("users", ("layout_users", "jail_user", "getpwnam")),
    ("checks", ("layout_check_config",)),
    ("jail", ("jail_enter", "sandbox_smap", "layout_chroot")),
    ("spool write + fsyncs", ("store_open", "store_data", "store_commit", "layout_commit")),
)


def cg_inclusive(path):
    p = subprocess.run([CG_ANNOTATE, "--inclusive=yes", "--threshold=100", path],
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    inc = {}
    total = None
    for line in p.stdout.decode("latin-1").splitlines():
        m = re.match(r"^\s*([\d,]+)\s+\([\s\d.]+%\)\s+PROGRAM TOTALS", line)
        if m:
            total = int(m.group(1).replace(",", ""))
            continue
        m = re.match(r"^\s*([\d,]+)\s+\([\s\d.]+%\)\s+(\S+?):(\S+)\s", line)
        if m:
            fn = re.sub(r"\.(constprop|isra|part|cold)\.\d+$", "", m.group(3))
            n = int(m.group(1).replace(",", ""))
            inc[fn] = max(inc.get(fn, 0), n)
    return total, inc


def instructions(argv, chroot_tmp, name):
    """One session under callgrind; (total, {phase: instructions}).
    chroot_tmp: the directory the program's /tmp is after its chroot
    (callgrind writes its file at exit), or None."""
    cg = "/tmp/cg.%s.%%p" % name
    before = set(os.listdir(chroot_tmp)) if chroot_tmp else set()
    spawn_session([VALGRIND, "--tool=callgrind", "--callgrind-out-file=" + cg,
                   "--log-file=/dev/null"] + argv)
    where = chroot_tmp or "/tmp"
    made = [n for n in os.listdir(where) if n.startswith("cg.%s." % name) and n not in before]
    if not made:
        raise RuntimeError("callgrind wrote nothing for %s" % name)
    path = os.path.join(where, made[0])
    total, inc = cg_inclusive(path)
    for n in made:
        os.unlink(os.path.join(where, n))
    res = dict((p, 0) for p in PHASES)
    if "main" not in inc:
        res["SMTP dialogue"] = inc.get("(below main)", total)
        res["exec + dynamic loading"] = total - res["SMTP dialogue"]
        return total, res
    users_in = inc.get("jail_user", inc.get("getpwnam", 0))
    for ph, roots in CG_ROOTS:
        res[ph] = sum(inc.get(r, 0) for r in roots if r not in ("jail_user", "getpwnam"))
    # lookups happen inside the checks and the jail: count them apart
    res["users"] = users_in if "layout_users" not in inc else max(inc["layout_users"], 0)
    lu = inc.get("layout_users", 0)
    jail_lookup = max(users_in - lu, 0) if users_in else 0
    res["checks"] = max(res["checks"] - lu, 0)
    res["users"] = lu + jail_lookup
    res["jail"] = max(res["jail"] - jail_lookup, 0)
    store = res["spool write + fsyncs"]
    named = sum(res.values())
    res["SMTP dialogue"] = max(inc["main"] - named, 0)
    res["exit"] = max(inc.get("(below main)", inc["main"]) - inc["main"], 0)
    res["exec + dynamic loading"] = total - inc.get("(below main)", inc["main"])
    res["spool write + fsyncs"] = store
    return total, res


def main():
    sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
    import smaptest

    class Quiet:
        def ok(self, cond, desc, *diag):
            return cond or print("profile: warning: %s %s" % (desc, diag))

        def note(self, msg):
            pass

        diag = note
    smap = sys.argv[1] if len(sys.argv) > 1 else smaptest.SMAP_BIN
    T = Quiet()
    srv = smaptest.Server(T, conf={"relay_domains": "example.com", "mynetworks": "127.0.0.0/8"},
                          name="profile")
    srv.start()
    work = tempfile.mkdtemp(prefix="smap-profile.")
    try:
        argv = [smap, "-c", srv.conffile]
        print("cost:", cost(argv, int(os.environ.get("N", "100"))))
        ph = syscalls(argv, srv.conffile, work, "smap")
        for p in PHASES:
            print("%-24s %4d calls %8.3f ms  %s" % (p, ph.count[p], ph.time[p] * 1e3,
                                                  sorted(ph.calls[p].items())))
        # the same build without its filter: smap-vg for a dynamic smap,
        # smap-static-vg for a static one (no PT_INTERP)
        with open(smap, "rb") as f:
            dynamic = b"/ld-linux" in f.read(4096)
        vg = os.path.join(REPO, "smap", "smap-vg" if dynamic else "smap-static-vg")
        if os.access(vg, os.X_OK):
            total, res = instructions([vg, "-c", srv.conffile], srv.tmpdir(), "smap")
            print("instructions: %d" % total)
            for p in PHASES:
                print("%-24s %8d" % (p, res[p]))
    finally:
        srv.stop(check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    main()


def ab(argvs, n=200, size=1024, mail=True):
    """Sessions of each argv in turn, n rounds (the same noise for all):
    per argv the cost() figures."""
    cpu = [[] for _ in argvs]
    flt = [[] for _ in argvs]
    for _ in range(n):
        for i, argv in enumerate(argvs):
            ru, _, ok = spawn_session(argv, size, mail)
            if mail and not ok:
                raise RuntimeError("%s: message not accepted" % argv[0])
            cpu[i].append((ru.ru_utime + ru.ru_stime) * 1e6)
            flt[i].append(ru.ru_minflt)
    return [{"cpu_min": min(c), "cpu_p10": sorted(c)[len(c) // 10],
             "cpu_med": statistics.median(c), "flt_med": statistics.median(f)}
            for c, f in zip(cpu, flt)]
