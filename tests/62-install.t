#!/usr/bin/env python3
# 62-install.t - "make install DESTDIR=... PREFIX=..." puts exactly the
# expected files in place with the expected modes, never replaces an
# existing /etc/smap/smap.conf, adjusts the paths in the units and the
# xinetd example to PREFIX, and the installed config passes "smap -t"
# and "smapd -t". smap-tls.so goes to the shlib_directory compiled into
# the smap built here (SHLIBDIR is fixed when smap is built: installing
# with another PREFIX rebuilds, which this test must not do to the tree
# the rest of the suite runs), so SHLIBDIR is passed as built.
# The build's flavour (build.flavour): a hardened tree installs programs
# and a module that do not link libasan; a SAN=1 tree is refused with a
# plain message and nothing installed, then installed here with
# ALLOW_SAN_INSTALL=1 (tools/check runs this file in both). "make
# uninstall" with the same DESTDIR and PREFIX leaves only the config and
# the spool directories.
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from smaptest import TAP, REPO  # noqa: E402


def run(argv, timeout=80):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def unitdir():
    rc, out = run(["pkg-config", "--variable=systemdsystemunitdir", "systemd"])
    return (out.strip() if rc == 0 and out.strip() else "/lib/systemd/system").lstrip("/")


def pc(var, default):
    rc, out = run(["pkg-config", "--variable=" + var, "systemd"])
    return (out.strip() if rc == 0 and out.strip() else default).lstrip("/")


def built_shlibdir():
    """shlib_directory's default in the smap built here (smap -d)."""
    with tempfile.NamedTemporaryFile("w", prefix="smaptest.empty.", suffix=".conf") as f:
        rc, out = run([os.path.join(REPO, "smap", "smap"), "-d", "-c", f.name])
    m = re.search(r"(?m)^shlib_directory = (/\S+)$", out)
    if rc != 0 or not m:
        raise RuntimeError("smap -d: exit %d, no shlib_directory: %s" % (rc, out[-500:]))
    return m.group(1)


SHLIBDIR = built_shlibdir()


def built_flavour():
    with open(os.path.join(REPO, "build.flavour")) as f:
        return f.read().strip()


FLAVOUR = built_flavour()
SAN_ALLOWED = ["ALLOW_SAN_INSTALL=1"] if FLAVOUR == "san" else []


def expected(prefix):
    """{path relative to DESTDIR: mode} for every file, and the dirs."""
    p = prefix.lstrip("/")
    smapq = os.path.exists(os.path.join(REPO, "smapd", "smapq.c"))
    files = {
        "etc/smap/smap.conf": 0o644,
        p + "/sbin/smap": 0o755,
        p + "/sbin/smapd": 0o755,
        p + "/share/man/man8/smap.8": 0o644,
        p + "/share/man/man8/smapd.8": 0o644,
        p + "/share/man/man5/smap.conf.5": 0o644,
        p + "/share/man/man5/smap-spool.5": 0o644,
        p + "/share/doc/smap/README.md": 0o644,
        p + "/share/doc/smap/examples/smap.conf": 0o644,
        p + "/share/doc/smap/examples/haproxy.cfg": 0o644,
        p + "/share/doc/smap/examples/xinetd.d/smap": 0o644,
        p + "/share/doc/smap/examples/fail2ban/filter.d/smap.conf": 0o644,
        p + "/share/doc/smap/examples/fail2ban/jail.d/smap.conf": 0o644,
        p + "/share/doc/smap/examples/logcheck/ignore.d.server/smap": 0o644,
        p + "/share/doc/smap/examples/logrotate.d/smap": 0o644,
        p + "/share/doc/smap/examples/smapd.service.d/sendmail-postfix.conf": 0o644,
        pc("sysusersdir", "/usr/lib/sysusers.d") + "/smap.conf": 0o644,
        pc("tmpfilesdir", "/usr/lib/tmpfiles.d") + "/smap.conf": 0o644,
        SHLIBDIR.lstrip("/") + "/smap-tls.so": 0o644,
        SHLIBDIR.lstrip("/") + "/smap-dynamic": 0o755,
    }
    if smapq:
        files[p + "/sbin/smapq"] = 0o755
    if os.path.exists(os.path.join(REPO, "smapd", "smapq.8")):
        files[p + "/share/man/man8/smapq.8"] = 0o644
    if os.path.exists(os.path.join(REPO, "smapd", "smap-sendmail.c")):
        files[p + "/sbin/smap-sendmail"] = 0o755
        files[p + "/share/man/man8/smap-sendmail.8"] = 0o644
    for u in ("smap.socket", "smap@.service", "smapd.service", "smapd-run.service", "smapd.timer",
              "smap-report.service", "smap-report.timer"):
        files[unitdir() + "/" + u] = 0o644
    dirs = {"var/spool/smap": 0o755, "var/spool/smap/incoming": 0o755,
            "var/spool/smap/incoming/tmp": 0o1770, "var/spool/smap/incoming/new": 0o1770,
            "var/spool/smap/incoming/anvil": 0o700,
            "var/spool/smap/queue": 0o700, "var/spool/smap/state": 0o700,
            "var/spool/smap/quarantine": 0o700, "var/spool/smap/hold": 0o700,
            "var/spool/smap/journal": 0o700, "var/mail/smap": 0o700}
    return files, dirs


def tree(root):
    files, dirs = {}, {}
    for d, dn, fn in os.walk(root):
        for n in fn:
            p = os.path.join(d, n)
            files[os.path.relpath(p, root)] = stat.S_IMODE(os.lstat(p).st_mode)
        for n in dn:
            p = os.path.join(d, n)
            dirs[os.path.relpath(p, root)] = stat.S_IMODE(os.lstat(p).st_mode)
    return files, dirs


def install(t, dest, prefix, desc):
    rc, out = run(["make", "-s", "-C", REPO, "install", "DESTDIR=" + dest, "PREFIX=" + prefix,
                   "SHLIBDIR=" + SHLIBDIR] + SAN_ALLOWED)
    t.ok(rc == 0, "%s: make install DESTDIR=%s PREFIX=%s exits 0" % (desc, "TMP", prefix), out[-2000:])
    return out


def test_usr(t, dest):
    install(t, dest, "/usr", "first install")
    want, wdirs = expected("/usr")
    got, gdirs = tree(dest)
    t.is_(sorted(got), sorted(want), "the installed files, every one")
    for path, mode in sorted(want.items()):
        if path in got:
            t.is_(oct(got[path]), oct(mode), "%s mode %o" % (path, mode))
    for path, mode in sorted(wdirs.items()):
        t.is_(oct(gdirs.get(path, 0)), oct(mode), "directory %s mode %o" % (path, mode))
        st = os.stat(os.path.join(dest, path))
        t.ok(st.st_uid == os.geteuid(), "%s: no chown under DESTDIR" % path)
    with open(os.path.join(REPO, "conf", "smap.conf"), "rb") as f:
        sample = f.read()
    with open(os.path.join(dest, "etc/smap/smap.conf"), "rb") as f:
        t.ok(f.read() == sample, "etc/smap/smap.conf is conf/smap.conf")
    ud = os.path.join(dest, unitdir())
    with open(os.path.join(ud, "smap@.service")) as f:
        t.like(f.read(), r"(?m)^ExecStart=-/usr/sbin/smap -c /etc/smap/smap\.conf$",
               "smap@.service runs /usr/sbin/smap -c /etc/smap/smap.conf")
    with open(os.path.join(dest, "usr/share/doc/smap/examples/xinetd.d/smap")) as f:
        t.like(f.read(), r"(?m)^\s*server\s*=\s*/usr/sbin/smap$", "xinetd example: server = /usr/sbin/smap")
    conf = os.path.join(dest, "etc/smap/smap.conf")
    # -t checks the spool too: the installed smapd -P lays one out, and the
    # installed config is checked with it (a copy naming that spool)
    spool, checked = os.path.join(dest + ".spool"), os.path.join(dest + ".spool.conf")
    mail = dest + ".mail"
    os.makedirs(mail)
    os.chown(mail, pwd.getpwnam("smapd").pw_uid, pwd.getpwnam("smapd").pw_gid)
    with open(conf) as f, open(checked, "w") as g:
        g.write(f.read() + "\nspool_directory = %s\ndefault_transport = maildir:%s/\n" % (spool, mail))
    os.makedirs(spool)
    rc, out = run([os.path.join(dest, "usr/sbin/smapd"), "-P", "-c", checked])
    t.ok(rc == 0, "installed smapd -P lays out a spool for the installed config", out[-1000:])
    for prog in ("smap", "smapd"):
        rc, out = run([os.path.join(dest, "usr/sbin", prog), "-t", "-c", checked])
        t.ok(rc == 0 and out == "", "installed %s -t -c TMP/etc/smap/smap.conf: exit 0, silent" % prog,
             "exit %d: %s" % (rc, out[-1000:]))
    # A second install keeps an edited config and says so.
    with open(conf, "ab") as f:
        f.write(b"\n# edited by the admin\nmyhostname = edited.example.org\n")
    with open(conf, "rb") as f:
        edited = f.read()
    os.chmod(conf, 0o640)
    out = install(t, dest, "/usr", "second install")
    with open(conf, "rb") as f:
        t.ok(f.read() == edited, "second install leaves the edited etc/smap/smap.conf alone")
    t.is_(oct(stat.S_IMODE(os.stat(conf).st_mode)), oct(0o640), "and its mode")
    t.like(out, r"keeping .*etc/smap/smap\.conf", "second install says it keeps the config")
    got2, _ = tree(dest)
    t.is_(sorted(got2), sorted(want), "second install: the same files")
    rc, out = run([os.path.join(dest, "usr/sbin/smap"), "-n", "-c", conf])
    t.is_((rc, out), (0, "myhostname = edited.example.org\n"), "smap -n shows the admin's setting")


def test_local(t, dest):
    install(t, dest, "/usr/local", "PREFIX=/usr/local")
    want, _ = expected("/usr/local")
    got, _ = tree(dest)
    t.is_(sorted(got), sorted(want), "PREFIX=/usr/local: the installed files")
    ud = os.path.join(dest, unitdir())
    for u in ("smap@.service", "smapd.service", "smapd-run.service"):
        with open(os.path.join(ud, u)) as f:
            text = f.read()
        t.ok("/usr/local/sbin/smap" in text and not re.search(r"(?<!local)/sbin/smap", text),
             "PREFIX=/usr/local: %s runs /usr/local/sbin/..." % u)
    with open(os.path.join(dest, "usr/local/share/doc/smap/examples/xinetd.d/smap")) as f:
        t.like(f.read(), r"(?m)^\s*server\s*=\s*/usr/local/sbin/smap$",
               "PREFIX=/usr/local: xinetd example server = /usr/local/sbin/smap")


def needed(path):
    """The DT_NEEDED libraries of an ELF file (readelf -d)."""
    rc, out = run(["readelf", "-d", path])
    if rc != 0:
        raise RuntimeError("readelf -d %s: %s" % (path, out[-500:]))
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]", out)


def test_flavour(t, dest):
    """hardened: no libasan in what is installed; san: refused."""
    if FLAVOUR == "san":
        rc, out = run(["make", "-s", "-C", REPO, "install", "DESTDIR=" + dest, "PREFIX=/usr",
                       "SHLIBDIR=" + SHLIBDIR])
        t.ok(rc != 0, "SAN=1 tree: make install DESTDIR=TMP fails", out[-1000:])
        t.like(out, r"make install: this tree is built with SAN=1 \(ASan\+UBSan, for the "
               r"tests\), which is not to be installed: run 'make clean && make', then "
               r"'make install'", "and says why, and what to do")
        got, gdirs = tree(dest) if os.path.isdir(dest) else ({}, {})
        t.is_(sorted(got) + sorted(gdirs), [], "and installs nothing")
        return
    t.is_(FLAVOUR, "hardened", "the tree is built hardened (build.flavour)")
    install(t, dest, "/usr", "hardened tree")
    elves = [os.path.join(dest, "usr/sbin", p) for p in sorted(os.listdir(os.path.join(dest, "usr/sbin")))]
    elves += [os.path.join(dest, SHLIBDIR.lstrip("/"), n) for n in ("smap-tls.so", "smap-dynamic")]
    for path in elves:
        libs = needed(path)
        rel = os.path.relpath(path, dest)
        rc, out = run(["ldd", path])
        if rel == "usr/sbin/smap":      # linked statically: nothing to load
            t.ok(libs == [] and "statically linked" in out,
                 "%s: linked statically, loads no library" % rel, repr(libs), out[-500:])
            continue
        t.ok(libs and not any("asan" in n or "ubsan" in n for n in libs),
             "%s: NEEDED has no libasan/libubsan" % rel, repr(libs))
        t.ok(rc == 0 and "libc.so" in out and "asan" not in out,
             "%s: ldd shows no libasan" % rel, out[-1000:])


def test_uninstall(t, dest):
    install(t, dest, "/usr", "before uninstall")
    conf = os.path.join(dest, "etc/smap/smap.conf")
    with open(conf, "ab") as f:
        f.write(b"\n# edited by the admin\nmyhostname = kept.example.org\n")
    with open(conf, "rb") as f:
        edited = f.read()
    _, wdirs = expected("/usr")
    for n in ("a", "b"):
        with open(os.path.join(dest, "var/spool/smap/queue", n), "w") as f:
            f.write("mail\n")
    argv = ["make", "-s", "-C", REPO, "uninstall", "DESTDIR=" + dest, "PREFIX=/usr",
            "SHLIBDIR=" + SHLIBDIR]
    rc, out = run(argv)
    t.ok(rc == 0, "make uninstall DESTDIR=TMP PREFIX=/usr exits 0", out[-2000:])
    t.like(out, r"uninstall: kept \S+/etc/smap/smap\.conf, \S+/var/spool/smap and \S+/var/mail/smap",
           "and says what it kept")
    got, gdirs = tree(dest)
    t.is_(sorted(got), ["etc/smap/smap.conf", "var/spool/smap/queue/a", "var/spool/smap/queue/b"],
          "left: the config and what the spool held, no other file")
    with open(conf, "rb") as f:
        t.ok(f.read() == edited, "the edited config is untouched")
    mine = sorted(d for d in gdirs if "smap" in d)
    t.is_(mine, sorted(["etc/smap"] + list(wdirs)), "smap's directories left: etc/smap and the spool")
    for path, mode in sorted(wdirs.items()):
        t.is_(oct(gdirs.get(path, 0)), oct(mode), "kept %s, mode %o" % (path, mode))
    rc, out = run(argv)
    t.ok(rc == 0, "a second make uninstall: exit 0", out[-1000:])


def test_uninstall_sendmail(t, dest):
    """make uninstall removes smap-sendmail and its page (a sendmail link
    made by the admin is theirs and stays)."""
    mine = ["usr/local/sbin/smap-sendmail", "usr/local/share/man/man8/smap-sendmail.8"]
    link = os.path.join(dest, "usr/local/sbin/sendmail")
    os.symlink("smap-sendmail", link)
    rc, out = run(["make", "-s", "-C", REPO, "uninstall", "DESTDIR=" + dest, "PREFIX=/usr/local",
                   "SHLIBDIR=" + SHLIBDIR])
    t.ok(rc == 0, "make uninstall exits 0", out[-2000:])
    t.is_([p for p in mine if os.path.lexists(os.path.join(dest, p))], [],
          "make uninstall: smap-sendmail and smap-sendmail.8 are gone")
    t.ok(os.path.islink(link), "make uninstall: the admin's sendmail link is left alone")


def main(t):
    base = tempfile.mkdtemp(prefix="smaptest.install.")
    os.chmod(base, 0o755)    # smapd -t checks the spool as smapd_user
    try:
        t.run("usr", test_usr, t, os.path.join(base, "usr"))
        t.run("local", test_local, t, os.path.join(base, "local"))
        t.run("flavour", test_flavour, t, os.path.join(base, "flavour"))
        t.run("uninstall", test_uninstall, t, os.path.join(base, "uninstall"))
        t.run("uninstall-sendmail", test_uninstall_sendmail, t, os.path.join(base, "local"))
    finally:
        if not os.environ.get("SMAPTEST_KEEP"):
            shutil.rmtree(base, ignore_errors=True)


TAP(watchdog=85).main(main)
