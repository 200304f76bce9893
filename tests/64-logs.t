#!/usr/bin/env python3
# 64-logs.t - smap's log lines read by the tools admins point at them, on
# a log written by real sessions (smap through the harness, smapd -1):
#   pflogsumm --syslog-name=smap   counts the received, delivered and
#                                  rejected messages
#   fail2ban-regex LOG conf/fail2ban/filter.d/smap.conf
#                                  matches exactly the abusive lines, with
#                                  the abuser's address (127.0.0.66), and
#                                  none of an honest client's (127.0.0.1)
#   conf/logcheck/ignore.d.server/smap
#                                  hides the routine lines, keeps the rest
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from smaptest import TAP, Server, REPO, lines, msg  # noqa: E402

SMAPD_BIN = os.path.join(REPO, "smapd", "smapd")
FILTER = os.path.join(REPO, "conf", "fail2ban", "filter.d", "smap.conf")
LOGCHECK = os.path.join(REPO, "conf", "logcheck", "ignore.d.server", "smap")
BAD_IP = "127.0.0.66"


def dialog(port, steps, src=BAD_IP, greet=True, timeout=5.0):
    """Lock-step SMTP from a chosen loopback source address: send each
    line, read one reply, then read on until the server closes. Returns
    the reply codes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(src, 0))
    f = s.makefile("rb")
    codes = []

    def reply():
        while True:
            try:
                line = f.readline()
            except OSError:     # a reset after the server's last reply
                return None
            if not line:
                return None
            if len(line) >= 4 and line[3:4] != b"-":
                return int(line[:3])
    try:
        if greet:
            codes.append(reply())
        for st in steps:
            s.sendall(st.encode() + b"\r\n")
            r = reply()
            codes.append(r)
            if r is None:
                break
        # Whatever else the server says before it closes.
        while codes[-1] is not None:
            codes.append(reply())
        return codes[:-1]
    except OSError:
        return codes + ["error"]
    finally:
        f.close()
        s.close()


def run(argv, timeout=40):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def make_log(t, srv, maildir):
    port = srv.port
    # An honest client in mynetworks: two messages, one too big by SIZE.
    res = srv.session(lines("EHLO good.example", "MAIL FROM:<a@good.example>",
                            "RCPT TO:<u@example.com>", "DATA") + msg("one") + b".\r\n" +
                      lines("MAIL FROM:<a@good.example>", "RCPT TO:<v@elsewhere.example>", "DATA") +
                      msg("two") + b".\r\n" + lines("QUIT"), timeout=20)
    t.is_(len(res.queued_ids()), 2, "honest client: two messages accepted", )
    t.is_(dialog(port, ["EHLO good.example", "MAIL FROM:<a@good.example> SIZE=999999999", "QUIT"],
                 src="127.0.0.1"), [220, 250, 552, 221], "honest client: 552 for a SIZE too big")
    # The abuser: relaying, a hostile address, junk, talking first, HTTP.
    t.is_(dialog(port, ["EHLO bot", "MAIL FROM:<a@b.example>", "RCPT TO:<x@evil.example>",
                        "RCPT TO:<y@evil.example>", "QUIT"]),
          [220, 250, 250, 554, 554, 221], "abuser: two relay attempts refused")
    t.is_(dialog(port, ["EHLO bot", "MAIL FROM:<-oQ/tmp/x@b.example>", "QUIT"]),
          [220, 250, 501, 221], "abuser: option-like sender refused")
    t.is_(dialog(port, ["EHLO bot", "MAIL FROM:<a@b.example>", "RCPT TO:<u@example.com>", "QUIT"]),
          [220, 250, 250, 450, 221], "abuser: past smtpd_client_recipient_rate_limit (2)")
    t.is_(dialog(port, ["FOO", "FOO", "FOO"]), [220, 500, 500, 500, 421], "abuser: too many errors")
    t.is_(dialog(port, ["EHLO early"], greet=False), [554], "abuser: talks before the greeting")
    t.is_(dialog(port, ["GET / HTTP/1.0"]), [220, 521], "abuser: an HTTP request")
    srv.wait_sessions(5)
    rc, out = run([SMAPD_BIN, "-1", "-c", srv.conffile])
    t.ok(rc == 0, "smapd -1 delivers the queue", out[-1500:])
    got = os.listdir(os.path.join(maildir, "new")) if os.path.isdir(os.path.join(maildir, "new")) else []
    t.is_(len(got), 2, "both messages are in the Maildir")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and srv.log().count("removed") < 2:
        time.sleep(0.05)
    return srv.log()


def test_pflogsumm(t, logfile):
    tool = shutil.which("pflogsumm")
    if not t.ok(tool is not None, "pflogsumm is installed (Debian package pflogsumm)"):
        return
    rc, out = run([tool, "--syslog-name=smap", logfile])
    t.is_(rc, 0, "pflogsumm --syslog-name=smap exits 0")
    grand = out.split("Per-Hour", 1)[0]

    def count(word):
        m = re.search(r"^\s*(\d+)\s+%s\b" % word, grand, re.M)
        return int(m.group(1)) if m else None
    t.is_(count("received"), 2, "pflogsumm: 2 received")
    t.is_(count("delivered"), 2, "pflogsumm: 2 delivered")
    t.is_(count("rejected"), 4, "pflogsumm: 4 rejected (2 relay, 1 bad sender, 1 SIZE)")
    t.like(out, r"Relay access denied", "pflogsumm: the reject detail names 'Relay access denied'")
    if count("received") != 2 or count("rejected") != 4:
        t.diag(out[:3000])


def test_fail2ban(t, logfile, tmpdir):
    tool = shutil.which("fail2ban-regex")
    if not t.ok(tool is not None, "fail2ban-regex is installed (Debian package fail2ban)"):
        return
    filters = [("conf/fail2ban/filter.d/smap.conf", FILTER)]
    common = "/etc/fail2ban/filter.d/common.conf"
    if os.path.exists(common):
        # As installed: beside fail2ban's common.conf, whose prefix wins.
        d = os.path.join(tmpdir, "fail2ban", "filter.d")
        os.makedirs(d)
        shutil.copy(common, d)
        shutil.copy(FILTER, d)
        filters.append(("installed beside common.conf", os.path.join(d, "smap.conf")))
    for name, path in filters:
        rc, out = run([tool, "--print-no-missed", logfile, path])
        t.is_(rc, 0, "fail2ban-regex LOG %s: exits 0" % name)
        m = re.search(r"Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed", out)
        t.ok(m is not None, "%s: fail2ban-regex summary line" % name, out[-2000:])
        if m:
            t.is_(int(m.group(3)), 7,
                  "%s: 7 lines matched (2 relay, bad sender, rate, errors, pregreet, HTTP)" % name)
        rc, ips = run([tool, "-o", "ip", logfile, path])
        ips = [l.strip() for l in ips.splitlines() if l.strip()]
        t.is_(ips, [BAD_IP] * 7, "%s: every match is the abuser's address %s" % (name, BAD_IP))
        rc, msgs = run([tool, "-o", "msg", logfile, path])
        for what in ("Relay access denied", "501 5.1.7", "too many errors after", "pregreet after CONNECT",
                     "HTTP request after GET", "Recipient address rate limit exceeded: 3 from"):
            t.like(msgs, re.escape(what), "%s: matches %s" % (name, what))
        t.unlike(msgs, r"552 5\.3\.4|unknown\[127\.0\.0\.1\]", "%s: nothing of the honest client" % name)


def test_logcheck(t, log):
    with open(LOGCHECK) as f:
        rules = [l.rstrip("\n") for l in f if l.strip() and not l.startswith("#")]
    kept = []
    for line in log.splitlines():
        # logcheck runs egrep; Python's re reads these POSIX classes the
        # same way once [[:digit:]]-style classes are translated.
        if not any(posix_match(r, line) for r in rules):
            kept.append(line)
    rc, out = run(["sh", "-c", "grep -E -v -f '%s' '%s' || true" % (LOGCHECK, t.logfile)])
    egrep_kept = [l for l in out.splitlines() if l]
    t.is_(egrep_kept, kept, "grep -E -v -f ignore.d.server/smap keeps the same lines as this test")
    routine = re.compile(r"(: connect from |: disconnect from |: client=|\(queue (new|active)\)$|: removed$|"
                         r"status=sent)")
    t.is_([l for l in egrep_kept if routine.search(l)], [], "logcheck: every routine line is hidden")
    for what in ("Relay access denied", "501 5.1.7", "552 5.3.4", "too many errors", "pregreet", "HTTP request",
                 "Recipient address rate limit exceeded"):
        t.ok(any(what in l for l in egrep_kept), "logcheck: still reports: %s" % what)
    t.note("lines logcheck reports: %d of %d" % (len(egrep_kept), len(log.splitlines())))


def test_logcheck_proxy(t):
    """Behind a proxy: the connect line naming it and the health checks
    are routine; a refused header is not."""
    with open(LOGCHECK) as f:
        rules = [l.rstrip("\n") for l in f if l.strip() and not l.startswith("#")]
    conf = {"smtpd_upstream_proxy_protocol": "haproxy", "smtpd_upstream_proxy_timeout": "1s"}
    with Server(t, name="logs proxy", conf=conf) as srv:
        for data in (b"PROXY TCP4 198.51.100.7 127.0.0.1 4000 25\r\nQUIT\r\n", b"",
                     b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00", b"GET / HTTP/1.0\r\n"):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            if data:
                s.sendall(data)
            if data.endswith(b"QUIT\r\n") or data.startswith(b"GET"):
                s.settimeout(5)
                try:
                    while s.recv(1000):
                        pass
                except OSError:     # reset: the header was refused unread
                    pass
            s.close()
            srv.wait_sessions(5)
        log = srv.log().splitlines()
    kept = [l for l in log if not any(posix_match(r, l) for r in rules)]
    t.ok(len(log) == 5 and kept == [l for l in log if "PROXY header refused" in l] and len(kept) == 1,
         "logcheck: the proxy's connect line and health checks hidden, a refused header reported",
         "log: %r" % log, "kept: %r" % kept)


POSIX = {"[:digit:]": "0-9", "[:xdigit:]": "0-9A-Fa-f", "[:alnum:]": "0-9A-Za-z",
         "[:upper:]": "A-Z", "[:space:]": r"\s"}


def posix_match(rule, line):
    for k, v in POSIX.items():
        rule = rule.replace(k, v)
    return re.search(rule, line) is not None


def main(t):
    if os.geteuid() != 0:
        t.skip("needs root")
        return
    conf = {"mynetworks": "127.0.0.1/32", "relay_domains": "example.com",
            "smtpd_hard_error_limit": "3", "smtpd_greet_pause": "1s",
            "smtpd_client_recipient_rate_limit": "2"}
    with Server(t, name="logs", conf=conf) as srv:
        maildir = os.path.join(srv.dir, "Maildir")
        os.mkdir(maildir, 0o700)
        pw = pwd.getpwnam("smapd")
        os.chown(maildir, pw.pw_uid, pw.pw_gid)
        with open(srv.conffile, "a") as f:
            f.write("default_transport = maildir:%s/\n" % maildir)
        log = t.run("sessions", make_log, t, srv, maildir) or ""
        saved = os.path.join(srv.dir, "maillog.copy")
        shutil.copy(srv.logfile, saved)
        t.logfile = saved
        t.run("pflogsumm", test_pflogsumm, t, saved)
        t.run("fail2ban", test_fail2ban, t, saved, srv.dir)
        t.run("logcheck", test_logcheck, t, log)
    t.run("logcheck proxy", test_logcheck_proxy, t)


TAP(watchdog=85).main(main)
