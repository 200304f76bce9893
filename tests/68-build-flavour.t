#!/usr/bin/env python3
# 65-build-flavour.t - build.flavour, in a copy of the sources built the
# other way from the tree the suite runs (62-install.t checks the tree's
# own flavour; tools/check runs both passes, so each is checked twice):
#   the tree is hardened: the copy is built with SAN=1, a plain make
#     keeps it so (nothing rebuilt), "make SAN=" stops and says to run
#     make clean, and make install refuses it with a plain message and
#     installs nothing, even with ALLOW_SAN_INSTALL=1 but no DESTDIR;
#   the tree is SAN=1: the copy is built hardened and make install puts
#     programs, smap-tls.so and smap-dynamic in place that do not link
#     libasan (smap itself, linked statically, links nothing).
# The copy's make runs without the suite's MAKEFLAGS (SAN=1 in
# tools/check's second pass), so only what this file says applies.
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from smaptest import TAP, REPO  # noqa: E402

COPY = ("Makefile", "VERSION", "README.md", "common", "smap", "smapd", "conf", "systemd")
REFUSED = (r"make install: this tree is built with SAN=1 \(ASan\+UBSan, for the tests\), "
           r"which is not to be installed: run 'make clean && make', then 'make install'")
PROGS = ("smap/smap", "smapd/smapd", "smapd/smapq")


def env():
    e = {k: v for k, v in os.environ.items()
         if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "SAN",
                      "ALLOW_SAN_INSTALL")}
    return e


def make(src, *args, timeout=400):
    p = subprocess.run(["make", "-C", src] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env(), timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def flavour(src):
    try:
        with open(os.path.join(src, "build.flavour")) as f:
            return f.read().strip()
    except OSError:
        return None


def needed(path):
    p = subprocess.run(["readelf", "-d", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]", p.stdout.decode("latin-1"))


def asan(path):
    return any("libasan" in n for n in needed(path))


def files_under(root):
    out = []
    for d, _, fn in os.walk(root):
        out += [os.path.relpath(os.path.join(d, n), root) for n in fn]
    return sorted(out)


def mtimes(src):
    return {p: os.stat(os.path.join(src, p)).st_mtime_ns for p in PROGS}


def copy_sources(dst):
    os.makedirs(dst)
    for n in COPY:
        s = os.path.join(REPO, n)
        if os.path.isdir(s):
            shutil.copytree(s, os.path.join(dst, n), symlinks=True)
        else:
            shutil.copy2(s, os.path.join(dst, n))
    rc, out = make(dst, "-s", "clean")
    if rc != 0:
        raise RuntimeError("make clean in the copy: %s" % out[-1000:])


def test_san_copy(t, base):
    src = os.path.join(base, "src")
    copy_sources(src)
    rc, out = make(src, "-s", "-j2", "SAN=1", "all")
    if not t.ok(rc == 0, "the copy: make SAN=1 all", out[-3000:]):
        return
    t.is_(flavour(src), "san", "build.flavour: san")
    t.ok(asan(os.path.join(src, "smap/smap")), "its smap links libasan", repr(needed(os.path.join(src, "smap/smap"))))
    before = mtimes(src)
    rc, out = make(src, "all")
    t.ok(rc == 0 and mtimes(src) == before and not re.search(r"(?m)^cc ", out),
         "a plain make after it: keeps the SAN=1 build, rebuilds nothing", out[-2000:])
    t.is_(flavour(src), "san", "build.flavour: still san")
    rc, out = make(src, "SAN=", "all")
    t.ok(rc != 0, "make SAN= on it: fails", out[-2000:])
    t.like(out, r"make: this tree is built san \(build\.flavour\), not hardened: run 'make clean' first",
           "and says to run make clean first")
    t.ok(mtimes(src) == before, "and builds nothing")
    dest = os.path.join(base, "dest")
    rc, out = make(src, "install", "DESTDIR=" + dest, "PREFIX=/usr")
    t.ok(rc != 0, "make install DESTDIR=TMP: fails", out[-2000:])
    t.like(out, REFUSED, "with the message")
    t.is_(files_under(dest), [], "and installs nothing")
    # without DESTDIR the override does not count; every path is a
    # temporary one all the same, in case it did
    top = os.path.join(base, "root")
    dirs = ["PREFIX=" + top + "/usr", "SYSCONFDIR=" + top + "/etc",
            "LOCALSTATEDIR=" + top + "/var", "SYSTEMDUNITDIR=" + top + "/units",
            "SYSUSERSDIR=" + top + "/sysusers.d", "TMPFILESDIR=" + top + "/tmpfiles.d"]
    rc, out = make(src, "install", "ALLOW_SAN_INSTALL=1", *dirs)
    t.ok(rc != 0, "make install ALLOW_SAN_INSTALL=1 without DESTDIR: fails", out[-2000:])
    t.like(out, REFUSED, "with the message")
    t.is_(files_under(top), [], "and installs nothing")


def test_hardened_copy(t, base):
    src = os.path.join(base, "src")
    copy_sources(src)
    rc, out = make(src, "-s", "-j2", "all")
    if not t.ok(rc == 0, "the copy: make all (hardened)", out[-3000:]):
        return
    t.is_(flavour(src), "hardened", "build.flavour: hardened")
    dest = os.path.join(base, "dest")
    rc, out = make(src, "-s", "install", "DESTDIR=" + dest, "PREFIX=/usr")
    if not t.ok(rc == 0, "make install DESTDIR=TMP PREFIX=/usr", out[-2000:]):
        return
    elves = [os.path.join(dest, "usr/sbin", n) for n in sorted(os.listdir(os.path.join(dest, "usr/sbin")))]
    elves += [os.path.join(dest, "usr/lib/smap", n) for n in ("smap-tls.so", "smap-dynamic")]
    for path in elves:
        libs = needed(path)
        rel = os.path.relpath(path, dest)
        if rel == "usr/sbin/smap":      # the hardened build links smap statically
            t.is_(libs, [], "%s: linked statically: NEEDED is empty" % rel)
            continue
        t.ok(libs and not any("asan" in n or "ubsan" in n for n in libs),
             "%s: NEEDED has no libasan/libubsan" % rel, repr(libs))


def main(t):
    with open(os.path.join(REPO, "build.flavour")) as f:
        tree = f.read().strip()
    t.note("the tree is built %s; the copy the other way" % tree)
    base = tempfile.mkdtemp(prefix="smaptest.flavour.")
    try:
        if tree == "san":
            t.run("hardened copy", test_hardened_copy, t, base)
        else:
            t.run("san copy", test_san_copy, t, base)
    finally:
        if not os.environ.get("SMAPTEST_KEEP"):
            shutil.rmtree(base, ignore_errors=True)


TAP(watchdog=500).main(main)
