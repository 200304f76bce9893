#!/usr/bin/env python3
# 77-syslog.t - smap's lines to syslog (no maillog_file), as a syslog
# daemon receives them on /dev/log: a test socket bound over /dev/log in
# a private mount namespace around each session, with a time zone of
# +05:30 bound over /etc/localtime there.
#   - every line is "<22>Mmm dd hh:mm:ss IDENT[PID]: text" (mail.info),
#     stamped with the local time, not UTC;
#   - a 39-byte syslog_name stands whole in the ident (NAME/smtpd);
#   - a reject line of more than 1,024 bytes arrives whole.
# Holds for both C libraries (musl's syslog(3) would fail all three:
# common/log.c writes these lines itself there).
import os
import re
import socket
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from smaptest import TAP, Server  # noqa: E402

ZONE = "/usr/share/zoneinfo/Asia/Kolkata"
IDENT = "postfix-submission-port-587-relay-ident"
NS = """set -e
mkdir -p "$D/dev"
for f in null zero full random urandom tty; do
	touch "$D/dev/$f"
	mount --bind "/dev/$f" "$D/dev/$f"
done
touch "$D/dev/log"
mount --bind "$D/syslog.sock" "$D/dev/log"
mount --rbind "$D/dev" /dev
mount --bind "$D/zone" /etc/localtime
exec "$@"
"""


def records(sock, want, seconds=10):
    """Datagrams from sock until one matches want (at most seconds)."""
    out, deadline = [], time.monotonic() + seconds
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            out.append(sock.recv(65536).decode("latin-1"))
        except socket.timeout:
            continue
        if re.search(want, out[-1]):
            break
    return out


def test_syslog(t):
    d = tempfile.mkdtemp(prefix="smap-syslog.")
    os.chmod(d, 0o755)
    with open(ZONE, "rb") as src, open(os.path.join(d, "zone"), "wb") as dst:
        dst.write(src.read())
    script = os.path.join(d, "ns.sh")
    with open(script, "w") as f:
        f.write(NS)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(os.path.join(d, "syslog.sock"))
    os.chmod(os.path.join(d, "syslog.sock"), 0o666)
    wrapper = ["/usr/bin/env", "D=" + d, "unshare", "-m", "--propagation", "private",
               "/bin/sh", script]
    helo = ".".join(("h" * 60, "x" * 63, "y" * 63, "z" * 55, "example"))
    sender = "s" * 64 + "@" + ".".join(("d" * 63, "e" * 63, "f" * 50, "example"))
    rcpt = "r" * 64 + "@" + ".".join(("n" * 63, "o" * 63, "p" * 50, "example"))
    with Server(t, name="syslog", wrapper=wrapper,
                conf={"maillog_file": None, "syslog_name": IDENT, "mynetworks": "192.0.2.0/24",
                      "relay_domains": "example.com"}) as srv:
        c = srv.client()
        c.reply()
        got = [c.cmd(line).code for line in ("EHLO " + helo, "MAIL FROM:<%s>" % sender,
                                             "RCPT TO:<%s>" % rcpt, "QUIT")]
        recs = records(sock, r"disconnect from")
        srv.wait_sessions(10)
    sock.close()
    t.is_(got, [250, 250, 554, 221], "the session: EHLO, MAIL accepted, the foreign RCPT refused")
    head = re.compile(r"^<22>(\w{3} [ \d]\d \d\d:\d\d:\d\d) (\S+)\[(\d+)\]: ")
    heads = [head.match(r) for r in recs]
    t.ok(recs and all(heads), "every record is <22>TIME IDENT[PID]: (mail.info)",
         *[r[:120] for r, h in zip(recs, heads) if not h][:3])
    if not (recs and all(heads)):
        return
    t.ok(all(h.group(2) == IDENT + "/smtpd" for h in heads),
         "the 39-byte syslog_name is the ident's whole first part", heads[0].group(2))
    local = time.gmtime(time.time() + 5.5 * 3600)
    hms = [int(x) for x in heads[0].group(1)[-8:].split(":")]
    off = abs(hms[0] * 3600 + hms[1] * 60 + hms[2] -
              (local.tm_hour * 3600 + local.tm_min * 60 + local.tm_sec))
    off = min(off, 86400 - off)         # either side of midnight
    t.ok(off < 120, "stamped with the local time (+05:30), not UTC: %s, %.0f s off" % (
        heads[0].group(1), off))
    rej = [r for r in recs if "reject: RCPT" in r]
    t.ok(len(rej) == 1 and len(rej[0]) > 1024 and rej[0].endswith(">") and
         ("helo=<%s>" % helo) in rej[0],
         "a reject line of more than 1,024 bytes arrives whole (%d bytes)" % (
             len(rej[0]) if rej else 0), *[r[-200:] for r in rej])


def main(t):
    if os.geteuid() != 0:
        t.skip("needs root (a private mount namespace)")
        return
    t.run("syslog", test_syslog, t)


TAP(watchdog=60).main(main)
