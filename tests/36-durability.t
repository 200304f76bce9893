#!/usr/bin/env python3
# 36-durability.t - threat model sections 5 and 6 for smap itself: kill -9
# mid-DATA, a full file system, the jail (user, capabilities,
# no_new_privs, chroot) whether started as root or as the smap user
# with CAP_SYS_CHROOT, and a jail that cannot be built.
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import (TAP, Server, lines, msg, make_spool, proc_status, proc_alive,  # noqa: E402
                      smap_ids, reply_matches)

MAIL = "MAIL FROM:<a@b.example>"
RCPT = "RCPT TO:<u@example.com>"
OK_CODES = ["220", "250", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"]
SETPRIV = ["/usr/bin/setpriv", "--reuid=smap", "--regid=smap", "--init-groups",
           "--inh-caps=+sys_chroot", "--ambient-caps=+sys_chroot", "--"]


def complete_files(t, srv, desc):
    """Every file in new/ is whole: its envelope parses and the size
    record matches the bytes after the blank line."""
    bad = []
    for name, f in srv.spool_files().items():
        try:
            size = int(f.env.get("size", "-1"))
        except ValueError:
            size = -1
        if not f.ok or size != len(f.message) or f.env.get("id") != name:
            bad.append(name)
    t.ok(not bad, "%s: every file in new/ is complete" % desc, "incomplete: %s" % bad)


def test_kill9(t):
    with Server(t, name="kill9") as srv:
        for when, pre_body in (("mid-body", msg("killed", b"k" * 100000)),
                               ("after a line that looks like the end", msg("killed", b"x\r\n..\r\n")),
                               ("just before the final dot", msg("killed", b"y" * 5000 + b"\r\n"))):
            c = srv.client()
            try:
                got = [c.reply()]
                old = set(srv.list_tmp())
                c.send(lines("EHLO kill.client", MAIL, RCPT, "DATA"))
                got += c.collect(timeout=5, want=4)
                t.codes(got, OK_CODES[:5], "kill -9 %s: DATA started" % when)
                pid = srv.wait_smap_pid(3)
                c.send(pre_body)
                # wait (bounded) until smap has taken it in: its tmp file
                # has all of it, or has stopped growing (smap may buffer)
                deadline = time.monotonic() + 3
                last, stable = -1, 0
                while time.monotonic() < deadline:
                    try:
                        sizes = [os.path.getsize(os.path.join(srv.tmpdir(), n))
                                 for n in srv.list_tmp() if n not in old]
                    except OSError:
                        sizes = []
                    size = max(sizes) if sizes else -1
                    if size >= len(pre_body):
                        break
                    stable = stable + 1 if size == last and size >= 0 else 0
                    if stable >= 5:
                        break
                    last = size
                    time.sleep(0.05)
                t.note("tmp/ during DATA: %s" % srv.list_tmp())
                t.ok(pid is not None, "kill -9 %s: found the smap process" % when)
                if pid:
                    os.kill(pid, signal.SIGKILL)
                    for _ in range(100):
                        if not proc_alive(pid):
                            break
                        time.sleep(0.02)
                # finish the message after the kill: nobody is there any more
                c.send(b".\r\n" + lines("QUIT"))
                rest = c.collect(timeout=3)
                t.ok(not any(r.code == 250 for r in rest), "kill -9 %s: no 250 for the message" % when,
                     "got %s" % [str(r) for r in rest])
                t.ok(c.wait_close(3), "kill -9 %s: connection closed" % when)
            finally:
                c.close()
            srv.wait_sessions()
            t.is_(srv.count_new(), 0, "kill -9 %s: nothing in new/" % when)
            t.note("tmp/ after kill -9 (a leftover is allowed, never delivered): %s" % srv.list_tmp())
        complete_files(t, srv, "after kill -9")
        # the service still works afterwards
        res = srv.session(lines("EHLO after.client", MAIL, RCPT, "DATA") + msg("after kill") + b".\r\n" +
                          lines("QUIT"))
        t.codes(res.replies, OK_CODES, "a new session after the kills works")
        t.invariant(res, "after kill")


def test_full_fs(t):
    mnt = tempfile.mkdtemp(prefix="smaptest.tmpfs.")
    mounted = False
    try:
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755,uid=0,gid=0", "tmpfs", mnt],
                           capture_output=True, timeout=10)
        mounted = p.returncode == 0
        if not t.ok(mounted, "mounted a 256 KB tmpfs as the spool", p.stderr.decode("latin-1")):
            return
        make_spool(mnt)
        with Server(t, conf={"queue_minfree": 0}, spool=mnt, name="fullfs") as srv:
            res = srv.session(lines("EHLO full.client", MAIL + " SIZE=400000", "QUIT"))
            t.codes(res.replies, ["220", "250", "452 4.3.1", "221 2.0.0"],
                    "SIZE=400000 > free space of a 256 KB file system -> 452 4.3.1 at MAIL")
            big = msg("too big for the disk", (b"f" * 998 + b"\r\n") * 400)
            for trickle in (False,):
                res = srv.session([lines("EHLO full.client", MAIL, RCPT, "DATA"), big, b".\r\n" + lines("QUIT")],
                                  timeout=30)
                t.codes(res.replies, ["220", "250", "250 2.1.0", "250 2.1.5", "354", ("452 4.3.1", "451 4.3.0"),
                                      "221 2.0.0"],
                        "400 KB message on a 256 KB file system -> 452 4.3.1 or 451 4.3.0 after end of data")
                t.invariant(res, "full file system")
                t.is_(srv.count_new(), 0, "full file system: nothing in new/")
                t.is_(srv.list_tmp(), [], "full file system: nothing left in tmp/")
            res = srv.session(lines("EHLO full.client", MAIL, RCPT, "DATA") + msg("small") + b".\r\n" +
                              lines("QUIT"))
            t.codes(res.replies, OK_CODES, "afterwards a small message fits (the space was given back)")
            t.invariant(res, "small after full")
            complete_files(t, srv, "full file system")
    finally:
        if mounted:
            for _ in range(10):
                if subprocess.run(["umount", mnt], capture_output=True, timeout=10).returncode == 0:
                    break
                time.sleep(0.3)
        try:
            os.rmdir(mnt)
        except OSError as e:
            t.note("could not remove %s: %s" % (mnt, e))


def check_jail(t, srv, desc, bounding_zero):
    uid, gid = smap_ids()
    c = srv.client()
    try:
        t.expect(c.reply(), "220", "%s: greeting" % desc)
        t.expect(c.cmd(b"EHLO jail.client"), "250", "%s: EHLO" % desc)
        pid = srv.wait_smap_pid(3)
        if not t.ok(pid is not None, "%s: found the smap process" % desc):
            return
        st = proc_status(pid)
        t.is_(st.get("Uid", "").split(), [str(uid)] * 4, "%s: Uid real/effective/saved/fs = smap" % desc)
        t.is_(st.get("Gid", "").split(), [str(gid)] * 4, "%s: Gid real/effective/saved/fs = smap" % desc)
        t.ok("0" not in st.get("Groups", "").split(), "%s: no root group in Groups" % desc, st.get("Groups"))
        for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            t.ok(int(st.get(cap, "1"), 16) == 0, "%s: %s is empty" % (desc, cap), st.get(cap))
        if bounding_zero:
            t.ok(int(st.get("CapBnd", "1"), 16) == 0, "%s: CapBnd is empty" % desc, st.get("CapBnd"))
        else:
            # started without CAP_SETPCAP, smap cannot shrink its bounding
            # set (PR_CAPBSET_DROP needs CAP_SETPCAP). With no_new_privs set
            # and every other set empty, no execve can ever raise a
            # capability again, so the bounding set is irrelevant.
            t.note("%s: CapBnd %s (not shrinkable without CAP_SETPCAP)" % (desc, st.get("CapBnd")))
        t.is_(st.get("NoNewPrivs"), "1", "%s: NoNewPrivs 1" % desc)
        try:
            root = os.readlink("/proc/%d/root" % pid)
            cwd = os.readlink("/proc/%d/cwd" % pid)
        except OSError as e:
            root = cwd = str(e)
        jail = os.path.join(os.path.realpath(srv.spool), "incoming")
        t.is_(root, jail, "%s: chrooted into the spool's incoming/" % desc)
        t.is_(cwd, jail, "%s: cwd is the root of the jail" % desc)
        # the session still works in the jail
        c.send(lines(MAIL, RCPT, "DATA") + msg("jailed") + b".\r\n" + lines("QUIT"))
        got = c.collect(timeout=5)
        t.codes(got, ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"], "%s: message accepted" % desc)
    finally:
        c.close()
    srv.wait_sessions()
    t.is_(srv.count_new(), 1, "%s: stored" % desc)
    files = srv.spool_files()
    for f in files.values():
        t.ok(f.st.st_uid == uid and (f.st.st_mode & 0o777) == 0o644, "%s: file owned by smap, 0644" % desc,
             "uid %d mode %o" % (f.st.st_uid, f.st.st_mode))


def test_jail_root(t):
    with Server(t, name="jail-root") as srv:
        check_jail(t, srv, "started as root", bounding_zero=True)


def test_jail_setpriv(t):
    with Server(t, name="jail-setpriv", wrapper=SETPRIV) as srv:
        check_jail(t, srv, "started as smap with CAP_SYS_CHROOT", bounding_zero=False)


def test_jail_fails(t):
    cases = [
        ({"spool_directory": "/nonexistent/smaptest/spool"}, r"/nonexistent/smaptest/spool|chroot",
         "spool_directory missing"),
        ({"mail_owner": "nosuchuser4711"}, r"nosuchuser4711", "mail_owner does not exist"),
        ({"mail_owner": "root"}, r"root|uid 0|privileged", "mail_owner root"),
    ]
    for conf, why, desc in cases:
        with Server(t, conf=conf, name="badjail") as srv:
            res = srv.session(lines("EHLO x", MAIL, RCPT, "DATA") + msg("no jail") + b".\r\n", greet=False,
                              timeout=5)
            t.ok(not any(r.code == 220 for r in res.replies) and
                 all(reply_matches(r, "421") for r in res.replies) and len(res.replies) <= 1,
                 "%s: no 220 greeting (closed, or a 421)" % desc, "got %s" % res.codes)
            t.ok(res.closed, "%s: connection closed" % desc)
            t.invariant(res, desc)
            lg = srv.wait_log(why, 2)
            t.ok(lg is not None, "%s: the log says why" % desc, "log: %r" % srv.log()[-800:],
                 "stderr: %r" % srv.stderr()[-800:])


def main(t):
    t.run("jail root", test_jail_root, t)
    t.run("jail setpriv", test_jail_setpriv, t)
    t.run("jail fails", test_jail_fails, t)
    t.run("kill -9", test_kill9, t)
    t.run("full fs", test_full_fs, t)


TAP(watchdog=90).main(main)
