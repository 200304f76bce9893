#!/usr/bin/env python3
# 65-first-day.t - an admin's first day: every misconfiguration that used
# to pass -t and then kill every session is caught by smap -t / smapd -t
# (exit 78, the key, file:line where one applies, the path and the cause
# in plain words), and a session under it gets 421 4.3.0 instead of a
# dropped connection; a fatal error at start is on stderr as well as in
# the log; smapd reopens maillog_file on SIGHUP.
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
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, SMAP_BIN, SMAPD_BIN, make_spool, smapd_ids  # noqa: E402
from smapdtest import Smapd, send, wait_until, smapd_log  # noqa: E402
from postfix import read_maildir  # noqa: E402

SETPRIV = ["/usr/bin/setpriv", "--reuid=smap", "--regid=smap", "--init-groups",
           "--inh-caps=+sys_chroot", "--ambient-caps=+sys_chroot", "--"]
SETPRIV_T = ["/usr/bin/setpriv", "--reuid=smap", "--regid=smap", "--init-groups", "--"]


def run(argv, env=None):
    p = subprocess.run(argv, capture_output=True, timeout=30, stdin=subprocess.DEVNULL, env=env)
    return p.returncode, p.stderr.decode("latin-1")


def certs(d):
    """A self-signed certificate and key (openssl), the key root's only."""
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=mx.test.example", "-keyout", key, "-out", cert],
                   capture_output=True, check=True, timeout=60)
    os.chmod(cert, 0o644)
    os.chmod(key, 0o600)
    return cert, key


def greeting(srv):
    c = srv.client()
    try:
        r = c.reply(timeout=5)
        closed = c.wait_close(5)
    finally:
        c.close()
    return r, closed


def smap_case(t, desc, conf, why, wrapper=None, spool_fix=None, check_as=None):
    """-t exits 78 naming the problem; a session gets 421 4.3.0."""
    with Server(t, conf=conf, name="first-day: " + desc, wrapper=wrapper) as srv:
        if spool_fix:
            spool_fix(srv)
        rc, err = run((check_as or []) + [SMAP_BIN, "-t", "-c", srv.conffile])
        t.is_(rc, 78, "smap -t, %s: exit 78" % desc)
        t.like(err, why, "smap -t, %s: says why in plain words" % desc)
        t.unlike(err, r"error:[0-9A-F]{8}:", "smap -t, %s: no OpenSSL error stack" % desc)
        r, closed = greeting(srv)
        t.expect(r, "421 4.3.0", "%s: a session gets 421 4.3.0, not a dropped connection" % desc,
                 text=r"Service temporarily unavailable")
        t.ok(closed, "%s: and is closed" % desc)
        t.ok(srv.wait_log(why, 3) is not None, "%s: the log says why too" % desc, srv.log()[-600:])


def test_smap(t, d):
    cert, key = certs(d)
    tls = {"smtpd_tls_security_level": "may", "smtpd_tls_cert_file": cert, "smtpd_tls_key_file": key}
    smap_case(t, "smtpd_tls_cert_file missing", dict(tls, smtpd_tls_cert_file="/nonexistent/cert.pem"),
              r"smtpd_tls_cert_file: /nonexistent/cert\.pem: no such file")
    smap_case(t, "encrypt without a certificate", {"smtpd_tls_security_level": "encrypt"},
              r":\d+: TLS is on \(smtpd_tls_security_level or smtpd_tls_wrappermode\) but "
              r"smtpd_tls_cert_file is empty")
    smap_case(t, "key readable by root only, smap started as smap", tls,
              r"smtpd_tls_key_file: %s: permission denied \(as uid %d\)" % (re.escape(key),
                                                                           pwd.getpwnam("smap").pw_uid),
              wrapper=SETPRIV, check_as=SETPRIV_T)
    smap_case(t, "mail_owner unknown", {"mail_owner": "nosuchuser4711"},
              r"mail_owner: unknown user nosuchuser4711")
    smap_case(t, "mail_owner root", {"mail_owner": "root"}, r"mail_owner: root has uid or gid 0")
    smap_case(t, "spool_directory missing", {"spool_directory": "/nonexistent/smap-spool"},
              r"/nonexistent/smap-spool: missing")
    smap_case(t, "tmp/ missing", {}, r"incoming/tmp: missing \(smapd -P sets it up\)",
              spool_fix=lambda srv: os.rmdir(srv.tmpdir()))
    smap_case(t, "the spool owned by smap", {}, r"spool: owner smap:root mode 0755, must be root:root",
              spool_fix=lambda srv: os.chown(srv.spool, pwd.getpwnam("smap").pw_uid, 0))
    smap_case(t, "the spool mode 0777", {}, r"spool: owner root:root mode 0777, must be root:root mode 0755",
              spool_fix=lambda srv: os.chmod(srv.spool, 0o777))
    # a good configuration passes, silently
    with Server(t, conf=tls, name="first-day: good") as srv:
        rc, err = run([SMAP_BIN, "-t", "-c", srv.conffile])
        t.ok(rc == 0 and re.search(r"(?m)^smap: warning: .*smtpd_tls_key_file: %s: permission denied "
                                   % re.escape(key), err) and "fine for a smap started as root" in err,
             "smap -t on a good TLS configuration, as root: exit 0, and a warning that a smap started "
             "as smap could not read the key", err)
        rc, err = run(SETPRIV_T + [SMAP_BIN, "-t", "-c", srv.conffile])
        t.is_(rc, 78, "... the same run as smap (the systemd model) cannot read the key: 78")
        os.chown(key, 0, pwd.getpwnam("smap").pw_gid)
        os.chmod(key, 0o640)
        rc, err = run(SETPRIV_T + [SMAP_BIN, "-t", "-c", srv.conffile])
        t.ok(rc == 0 and err == "", "key readable by group smap: smap -t as smap (smap.socket's "
             "ExecStartPre) exits 0, silently", "exit %d: %s" % (rc, err))
        os.chown(key, 0, 0)
        os.chmod(key, 0o600)


def smapd_case(t, srv, desc, conf, why, fix=None, undo=None):
    d = Smapd(t, srv, conf=conf, name="smapd-" + re.sub(r"\W+", "-", desc))
    if fix:
        fix(srv)
    try:
        rc, err = d.check()
        t.is_(rc, 78, "smapd -t, %s: exit 78" % desc)
        t.like(err, why, "smapd -t, %s: says why in plain words" % desc)
        return d
    finally:
        if undo:
            undo(srv)


def resolvconf(d):
    """A resolv.conf naming a server on loopback that is not there: a
    lookup fails at once, and nothing leaves the host."""
    p = os.path.join(d, "resolv.conf")
    with open(p, "w") as f:
        f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    return p


def test_smapd(t, d):
    with Server(t, name="first-day-smapd") as srv:
        md = os.path.join(srv.dir, "md")
        os.mkdir(md)
        os.chown(md, *smapd_ids())
        good = {"default_transport": "maildir:%s/" % md}
        smapd_case(t, srv, "smapd_user unknown", dict(good, smapd_user="nosuch4711"),
                   r"smapd_user: unknown user nosuch4711")
        smapd_case(t, srv, "smapd_user cannot read new/", good,
                   r"incoming/new: (smapd_user smapd cannot use it: permission denied|owner root:smap "
                   r"mode 0700, must be smapd:smap mode 1770)",
                   fix=lambda s: (os.chown(s.newdir(), 0, -1), os.chmod(s.newdir(), 0o700)),
                   undo=lambda s: (os.chown(s.newdir(), smapd_ids()[0], -1), os.chmod(s.newdir(), 0o1770)))
        smapd_case(t, srv, "sendmail_path missing", {"default_transport": "sendmail",
                                                      "sendmail_path": "/nonexistent/sendmail"},
                   r"sendmail_path /nonexistent/sendmail: smapd_user smapd cannot run it: no such file")
        smapd_case(t, srv, "maildir directory missing", {"default_transport": "maildir:/nonexistent/x/Maildir/"},
                   r"default_transport maildir:/nonexistent/x/Maildir/: smapd_user smapd cannot write it: "
                   r"no such file or directory")
        # smapd -1 too stops at start when it may not use new/
        os.chown(srv.newdir(), 0, -1)
        os.chmod(srv.newdir(), 0o700)
        dd = Smapd(t, srv, conf=good, name="smapd-1-unreadable")
        rc = dd.once()
        t.ok(rc not in (0, "timeout"), "smapd -1 when smapd_user may not read new/: exits non-zero (%s)" % rc)
        t.like(dd.stderr(), r"incoming/new: (owner root:smap mode 0700|Permission denied)",
               "... and says why on stderr")
        os.chown(srv.newdir(), smapd_ids()[0], -1)
        os.chmod(srv.newdir(), 0o1770)
        # a name that does not resolve, looked up on loopback only
        rc_ = resolvconf(d)
        nd = Smapd(t, srv, conf={"default_transport": "smtp:nonexistent.invalid:25"}, name="smapd-dns")
        p = subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind "$1" /etc/resolv.conf && exec "$2" -t -c "$3"',
                            "sh", rc_, SMAPD_BIN, nd.conffile], capture_output=True, timeout=30)
        err = p.stderr.decode("latin-1")
        t.is_(p.returncode, 78, "smapd -t, next hop name that does not resolve: exit 78")
        t.like(err, r"default_transport: the next hop nonexistent\.invalid does not resolve",
               "smapd -t, next hop name that does not resolve: says so")
        rc, err = Smapd(t, srv, conf=good, name="smapd-good").check()
        t.ok(rc == 0 and err == "", "smapd -t on a good configuration: exit 0, silent", err)


def test_fatals(t, d):
    """A fatal error at start is on stderr as well as in the log."""
    with Server(t, name="first-day-fatal") as srv:
        dd = Smapd(t, srv, conf={"smapd_user": "nosuch4711"}, name="smapd-nouser")
        rc = dd.once()
        t.is_(rc, 78, "smapd with an unknown smapd_user: exit 78")
        t.like(dd.stderr(), r"smapd: .*smapd_user: unknown user nosuch4711", "... said on stderr")
        dd = Smapd(t, srv, conf={"spool_directory": "/nonexistent/smap-spool"}, name="smapd-nospool")
        rc = dd.once()
        t.ok(rc in (71, 78), "smapd with a missing spool: exit non-zero (%s)" % rc)
        t.like(dd.stderr(), r"/nonexistent/smap-spool: missing", "... said on stderr")
    with Server(t, conf={"maillog_file": "/nonexistent/dir/smap.log"}, name="first-day-maillog") as srv:
        r, closed = greeting(srv)
        t.expect(r, "421 4.3.0", "maillog_file that cannot be opened: the client gets 421 4.3.0")
        t.like(srv.stderr(), r"smap: maillog_file /nonexistent/dir/smap\.log: cannot open it: No such file",
               "... and smap says why on stderr")


def test_reopen(t, d):
    with Server(t, name="first-day-reopen") as srv:
        md = os.path.join(srv.dir, "md")
        os.mkdir(md)
        os.chown(md, *smapd_ids())
        dd = Smapd(t, srv, conf={"default_transport": "maildir:%s/" % md}, name="smapd-reopen")
        with dd:
            dd.start()
            (a, _), = send(srv, [(["u@example.com"], b"Subject: before\r\n\r\nx\r\n")])
            t.ok(wait_until(lambda: len(read_maildir(md + "/")) == 1, 10), "delivered before the rotation")
            old = srv.logfile + ".1"
            os.rename(srv.logfile, old)
            with open(srv.logfile, "w"):
                pass
            os.chown(srv.logfile, pwd.getpwnam("smap").pw_uid, smapd_ids()[1])
            os.chmod(srv.logfile, 0o660)
            os.kill(dd.pid(), signal.SIGHUP)
            t.ok(srv.wait_log(r"reloaded ", 10) is not None, "SIGHUP: smapd reloaded, into the new file")
            (b, _), = send(srv, [(["u@example.com"], b"Subject: after\r\n\r\nx\r\n")])
            t.ok(wait_until(lambda: len(read_maildir(md + "/")) == 2, 10), "delivered after the rotation")
            t.ok(wait_until(lambda: re.search(r"smap/local\[\d+\]: %s: to=<u@example\.com>.*status=sent" % b,
                                              srv.log()), 5),
                 "the next delivery's lines are in the new file")
            with open(old) as f:
                t.unlike(f.read(), r"%s: to=" % b, "and not in the rotated one")


def main(t):
    if os.geteuid() != 0:
        t.skip("needs root")
        return
    d = tempfile.mkdtemp(prefix="smaptest.firstday.")
    os.chmod(d, 0o755)
    try:
        t.run("smap -t", test_smap, t, d)
        t.run("smapd -t", test_smapd, t, d)
        t.run("fatals", test_fatals, t, d)
        t.run("reopen", test_reopen, t, d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


TAP(watchdog=150).main(main)
