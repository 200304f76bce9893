#!/usr/bin/env python3
# 67-logrotate.t - conf/logrotate.d/smap, run by the real logrotate -f
# on a maillog_file that a running smapd and smap's sessions write (the
# shipped file with its paths substituted: the log, and /run/smapd.pid,
# which holds the running smapd's pid). After the rotation the new file
# is the one "create" makes (mode 0660, owner smap, group smapd), smapd
# has been told (its "reloaded" line is in the new file), and the next
# message's lines, smap's and smapd's, are all in the new file and none
# in the rotated one, which keeps what came before.
import os
import pwd
import grp
import re
import shutil
import stat
import subprocess
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from smaptest import TAP, Server, REPO, smapd_ids  # noqa: E402
from smapdtest import Smapd, send, wait_until  # noqa: E402

SHIPPED = os.path.join(REPO, "conf", "logrotate.d", "smap")
LOGROTATE = shutil.which("logrotate") or "/usr/sbin/logrotate"


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("latin-1")
    except OSError:
        return ""


def lines_of(text, sid):
    return [l for l in text.split("\n") if sid in l]


def delivered(path, sid):
    return re.search(r"(?m) smap/local\[\d+\]: %s: to=<[^>]+>, .*status=sent" % sid, read(path))


def config(srv, pidfile):
    with open(SHIPPED) as f:
        text = f.read()
    for old in ("/var/log/smap/smap.log", "/run/smapd.pid"):
        if old not in text:
            raise RuntimeError("%s names no %s" % (SHIPPED, old))
    text = text.replace("/var/log/smap/smap.log", srv.logfile).replace("/run/smapd.pid", pidfile)
    path = os.path.join(srv.dir, "logrotate.conf")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


def test_rotate(t, srv):
    uid, gid = smapd_ids()
    md = os.path.join(srv.dir, "mail")
    os.mkdir(md)
    os.chown(md, uid, gid)
    d = Smapd(t, srv, conf={"default_transport": "maildir:%s/Maildir/" % md})
    try:
        d.start()
        old = srv.logfile + ".1"
        [(sid1, _)] = send(srv, [(["u@example.com"], b"Subject: before\r\n\r\nbefore\r\n")])
        t.ok(wait_until(lambda: delivered(srv.logfile, sid1), 20),
             "before: %s delivered, logged in %s" % (sid1, os.path.basename(srv.logfile)), srv.log()[-2000:])
        pidfile = os.path.join(srv.dir, "smapd.pid")
        with open(pidfile, "w") as f:
            f.write("%d\n" % d.pid())
        conf = config(srv, pidfile)
        p = subprocess.run([LOGROTATE, "-f", "-s", os.path.join(srv.dir, "logrotate.state"), conf],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        t.ok(p.returncode == 0, "logrotate -f with the shipped file: exit 0",
             p.stdout.decode("latin-1")[-2000:])
        t.ok(lines_of(read(old), sid1), "the rotated file keeps %s's lines" % sid1)
        st = os.stat(srv.logfile)
        t.is_((oct(stat.S_IMODE(st.st_mode)), pwd.getpwuid(st.st_uid).pw_name,
               grp.getgrgid(st.st_gid).gr_name), (oct(0o660), "smap", "smapd"),
              "the new file: mode 0660, owner smap, group smapd (create)")
        t.ok(wait_until(lambda: re.search(r"(?m) smap/qmgr\[%d\]: .*reloaded" % d.pid(),
                                          read(srv.logfile)), 10),
             "smapd was told: its 'reloaded' line is in the new file", read(srv.logfile)[-1000:])
        [(sid2, _)] = send(srv, [(["u@example.com"], b"Subject: after\r\n\r\nafter\r\n")])
        t.ok(wait_until(lambda: delivered(srv.logfile, sid2), 20),
             "after: %s delivered, logged in the new file" % sid2, read(srv.logfile)[-2000:])
        new = lines_of(read(srv.logfile), sid2)
        t.ok(any(" smap/smtpd[" in l for l in new) and any(" smap/qmgr[" in l for l in new),
             "the new file has smap's and smapd's lines of %s" % sid2, "\n".join(new))
        t.is_(lines_of(read(old), sid2), [], "the rotated file has none of them")
        t.ok(d.alive(), "smapd still runs")
    finally:
        rcs = d.stop()
        t.is_(rcs, [0], "smapd stopped: exit 0")


def main(t):
    with Server(t, name="logrotate") as srv:
        t.run("rotate", test_rotate, t, srv)


TAP(watchdog=120).main(main)
