#!/usr/bin/env python3
# 61-systemd-units.t - the shipped systemd units, checked offline (systemd
# need not be PID 1): "make install" into a temporary root, then
#   systemd-analyze verify --root=ROOT    clean (no output, exit 0), with
#                                         the installed binaries and man
#                                         pages (MANPATH) under ROOT
#   systemd-analyze security --offline=yes
#                                         exposure <= 1.5 for smap@.service,
#                                         smapd.service, smapd-run.service
# and what can be checked without running them under systemd:
#   - systemd-tmpfiles --root creates the spool layout smap and smapd need,
#     systemd-sysusers --root creates the user;
#   - every system call smap (started as the unit starts it: user smap with
#     CAP_SYS_CHROOT) and smapd make in a real session and delivery, traced
#     with strace, is allowed by the unit's SystemCallFilter= (expanded
#     with systemd-analyze syscall-filter).
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from smaptest import TAP, Server, REPO, lines, msg, smap_ids  # noqa: E402

SA = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
UNITS = ["smap.socket", "smap@.service", "smapd.service", "smapd-run.service", "smapd.timer"]
SCORED = ["smap@.service", "smapd.service", "smapd-run.service"]
LIMIT = 1.5
SMAPD_BIN = os.path.join(REPO, "smapd", "smapd")
SETPRIV = ["/usr/bin/setpriv", "--reuid=smap", "--regid=smap", "--init-groups"]
SETPRIV_SMAPD = ["/usr/bin/setpriv", "--reuid=smapd", "--regid=smapd", "--init-groups"]
# Calls the jail makes on purpose to prove they fail (setuid(0) and
# seteuid(0) after the drop): the filter's EPERM is the expected answer.
EXPECTED_DENIED = {"setuid", "setresuid"}


def run(argv, env=None, timeout=60):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=env, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def unitdir(root):
    rc, out = run(["pkg-config", "--variable=systemdsystemunitdir", "systemd"])
    d = out.strip() if rc == 0 and out.strip() else "/lib/systemd/system"
    return root + d


def install_root(t, root):
    # the units are checked with the programs as built, SAN=1 or not
    rc, out = run(["make", "-s", "-C", REPO, "install", "DESTDIR=" + root, "PREFIX=/usr",
                   "ALLOW_SAN_INSTALL=1"], timeout=80)
    if not t.ok(rc == 0, "make install DESTDIR=ROOT PREFIX=/usr", out[-2000:]):
        return None
    ud = unitdir(root)
    # The targets and slices the units hang off, from the host.
    host = unitdir("")
    for n in os.listdir(host):
        if n.endswith((".target", ".slice")) and not os.path.exists(os.path.join(ud, n)):
            shutil.copy(os.path.join(host, n), ud)
    return ud


def unit_value(path, key):
    vals = []
    with open(path) as f:
        for line in f:
            m = re.match(r"^%s=(.*)$" % re.escape(key), line.strip())
            if m:
                vals.append(m.group(1))
    return vals


def test_verify(t, root, ud):
    env = dict(os.environ, MANPATH=os.path.join(root, "usr/share/man"), SYSTEMD_PAGER="")
    for u in UNITS:
        rc, out = run([SA, "verify", "--root=" + root, os.path.join(ud, u)], env=env)
        t.ok(rc == 0 and out.strip() == "", "systemd-analyze verify %s: clean" % u,
             "exit %d" % rc, out[-2000:])
    # "-" before a command makes verify skip its existence check.
    for u, key in (("smap@.service", "ExecStart"), ("smap.socket", "ExecStartPre")):
        for cmd in unit_value(os.path.join(ud, u), key):
            prog = cmd.lstrip("-+!@:").split()[0]
            t.ok(os.access(root + prog, os.X_OK), "%s: %s %s is installed" % (u, key, prog))
    for u in ("smapd.service", "smapd-run.service"):
        for key in ("ExecStartPre", "ExecStart", "ExecReload"):
            for cmd in unit_value(os.path.join(ud, u), key):
                if cmd.startswith("/usr/sbin/smapd"):
                    t.ok(" -c /etc/smap/smap.conf" in cmd, "%s: %s names the config: %s" % (u, key, cmd))
    # The Postfix sendmail drop-in is valid next to smapd.service.
    dd = os.path.join(root, "etc/systemd/system/smapd.service.d")
    os.makedirs(dd, exist_ok=True)
    shutil.copy(os.path.join(REPO, "systemd/smapd.service.d/sendmail-postfix.conf.example"),
                os.path.join(dd, "sendmail-postfix.conf"))
    rc, out = run([SA, "verify", "--root=" + root, os.path.join(ud, "smapd.service")], env=env)
    t.ok(rc == 0 and out.strip() == "", "verify smapd.service with the sendmail-postfix drop-in: clean",
         out[-2000:])
    rc, out = run([SA, "security", "--offline=yes", "--root=" + root, "--no-pager", "smapd.service"])
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    t.note("smapd.service with the sendmail-postfix drop-in: %s" % (m.group(1) if m else "?"))
    shutil.rmtree(dd)


def test_security(t, root, ud):
    for u in SCORED:
        rc, out = run([SA, "security", "--offline=yes", "--root=" + root, "--no-pager",
                       os.path.join(ud, u)])
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
        score = float(m.group(1)) if m else 99.0
        bad = [l for l in out.splitlines() if "\u2717" in l]
        t.ok(m is not None and score <= LIMIT,
             "systemd-analyze security %s: exposure %s <= %.1f" % (u, m.group(1) if m else "?", LIMIT),
             out[-3000:] if not m else "\n".join(bad))
        t.note("%s: %s" % (u, " ".join(l.split()[1] for l in bad if len(l.split()) > 1)))
    for u in ("smap@.service",):
        p = os.path.join(ud, u)
        t.is_(unit_value(p, "PrivateNetwork"), ["yes"], "%s: PrivateNetwork=yes" % u)
        t.is_(unit_value(p, "RestrictAddressFamilies"), ["AF_UNIX"], "%s: AF_UNIX only" % u)
        t.is_(unit_value(p, "CapabilityBoundingSet"), ["CAP_SYS_CHROOT"], "%s: bounding set" % u)
    sock = os.path.join(ud, "smap.socket")
    t.is_(unit_value(sock, "Accept"), ["yes"], "smap.socket: Accept=yes")
    t.is_(unit_value(sock, "ExecStartPre"), ["/usr/sbin/smap -t -c /etc/smap/smap.conf"],
          "smap.socket: checks the configuration before it listens")
    t.is_(unit_value(sock, "User"), ["smap"], "smap.socket: the check runs as the sessions' user")
    t.is_(unit_value(sock, "TriggerLimitIntervalSec"), ["0"], "smap.socket: TriggerLimitIntervalSec=0")
    for k in ("MaxConnections", "MaxConnectionsPerSource"):
        t.like(" ".join(unit_value(sock, k)), r"^\d+$", "smap.socket: %s set" % k)


def expand(name, seen=None):
    """Syscall names of a filter group, nested groups expanded."""
    seen = seen if seen is not None else set()
    if name in seen:
        return set()
    seen.add(name)
    rc, out = run([SA, "syscall-filter", name])
    calls = set()
    for line in out.splitlines()[1:]:
        w = line.strip()
        if not w or w.startswith("#"):
            continue
        calls |= expand(w, seen) if w.startswith("@") else {w}
    return calls


def allowed_set(unit_path):
    """What SystemCallFilter= lines in order leave allowed."""
    allowed = None
    for v in unit_value(unit_path, "SystemCallFilter"):
        neg = v.startswith("~")
        items = v.lstrip("~").split()
        calls = set()
        for it in items:
            calls |= expand(it) if it.startswith("@") else {it}
        if allowed is None:
            allowed = set() if neg else set()
            if neg:
                raise ValueError("deny-list filters are not modelled")
        if neg:
            allowed -= calls
        else:
            allowed |= calls
    return allowed or set()


def traced(path):
    calls = set()
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"^(?:\d+\s+)?([a-z_0-9]+)\(", line)
            if m:
                calls.add(m.group(1))
    return calls


def test_tmpfiles_sysusers(t, root):
    su = os.path.join(root, "sysusers")
    os.makedirs(os.path.join(su, "etc"))
    rc, out = run(["systemd-sysusers", "--root=" + su, os.path.join(REPO, "conf/sysusers.d/smap.conf")])
    pw = open(os.path.join(su, "etc/passwd")).read() if rc == 0 else out
    t.like(pw, r"(?m)^smap:x:\d+:\d+:[^:]*:/var/spool/smap/incoming:/usr/sbin/nologin$",
           "systemd-sysusers --root creates the system user smap (home: its chroot)")
    t.like(pw, r"(?m)^smapd:x:\d+:\d+:[^:]*:/var/spool/smap:/usr/sbin/nologin$",
           "systemd-sysusers --root creates the system user smapd")


def test_syscalls(t, root, ud):
    strace = shutil.which("strace")
    if not strace:
        t.skip("strace is not installed: system calls not checked")
        return
    tr = os.path.join(root, "tmpfiles")
    os.makedirs(os.path.join(tr, "etc"))
    for f in ("passwd", "group"):
        shutil.copy("/etc/" + f, os.path.join(tr, "etc", f))
    rc, out = run(["systemd-tmpfiles", "--create", "--root=" + tr,
                   os.path.join(REPO, "systemd/smap.tmpfiles")])
    t.ok(rc == 0, "systemd-tmpfiles --create --root: the shipped smap.tmpfiles applies", out)
    spool = os.path.join(tr, "var/spool/smap")
    maildir = os.path.join(tr, "var/mail/smap")
    # strace runs as smap or smapd (after setpriv): its output goes to
    # a directory each may write.
    td = os.path.join(root, "traces")
    os.makedirs(td)
    os.chmod(td, 0o1777)
    smap_trace = os.path.join(td, "smap.trace")
    smapd_trace = os.path.join(td, "smapd.trace")
    wrapper = SETPRIV + ["--inh-caps=+sys_chroot", "--ambient-caps=+sys_chroot", "--",
                         strace, "-f", "-qq", "-o", smap_trace]
    with Server(t, name="strace", wrapper=wrapper, spool=spool,
                conf={"default_transport": "maildir:%s/" % maildir}) as srv:
        res = srv.session(lines("EHLO client.example", "MAIL FROM:<a@client.example>",
                                "RCPT TO:<u@elsewhere.example>", "DATA") +
                          msg("traced") + b".\r\n" + lines("QUIT"), timeout=20)
        t.ok(any(r.code == 250 and "queued as" in r.text for r in res.replies),
             "smap as the unit starts it (user smap, CAP_SYS_CHROOT): message accepted "
             "in the tmpfiles-made spool", "replies: %s" % res.codes, srv.log()[-1500:])
        # LeakSanitizer cannot run under ptrace; in the ASan build it is off here.
        env = dict(os.environ, ASAN_OPTIONS=(os.environ.get("ASAN_OPTIONS", "") +
                                             ":detect_leaks=0").lstrip(":"))
        rc, out = run(SETPRIV_SMAPD + ["--inh-caps=-all", "--", strace, "-f", "-qq", "-o", smapd_trace,
                                       SMAPD_BIN, "-1", "-c", srv.conffile], env=env, timeout=30)
        t.ok(rc == 0, "smapd -1 as user smapd, no capabilities: exit 0", out[-1500:])
        delivered = os.listdir(os.path.join(maildir, "new")) if os.path.isdir(
            os.path.join(maildir, "new")) else []
        t.is_(len(delivered), 1, "smapd delivered into the tmpfiles-made /var/mail/smap",
              ) or t.diag(srv.log()[-1500:])
    for unit, path in (("smap@.service", smap_trace), ("smapd-run.service", smapd_trace)):
        allowed = allowed_set(os.path.join(ud, unit))
        used = traced(path) - {"execve"}   # strace's own exec of the program
        bad = sorted(used - allowed - EXPECTED_DENIED)
        t.ok(used and not bad, "%s: SystemCallFilter= allows every call made (%d distinct)" % (unit, len(used)),
             "not allowed: %s" % bad)
        denied = sorted(used & EXPECTED_DENIED - allowed)
        if denied:
            t.note("%s: denied as intended (the jail's setuid(0) check): %s" % (unit, denied))
        with open(path, errors="replace") as f:
            text = f.read()
        t.unlike(text, r'open(?:at)?\([^)]*"/proc/sys/', "%s: no /proc/sys access (ProcSubset=pid)" % unit)


def main(t):
    if os.geteuid() != 0:
        t.skip("needs root")
        return
    if not os.access(SA, os.X_OK):
        t.ok(False, "systemd-analyze is installed (package systemd)")
        return
    root = tempfile.mkdtemp(prefix="smaptest.units.")
    os.chmod(root, 0o755)
    try:
        ud = install_root(t, root)
        if ud is None:
            return
        t.run("verify", test_verify, t, root, ud)
        t.run("security", test_security, t, root, ud)
        t.run("sysusers", test_tmpfiles_sysusers, t, root)
        t.run("syscalls", test_syscalls, t, root, ud)
    finally:
        if not os.environ.get("SMAPTEST_KEEP"):
            shutil.rmtree(root, ignore_errors=True)
        else:
            t.note("kept %s" % root)


TAP(watchdog=85).main(main)
