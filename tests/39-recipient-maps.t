#!/usr/bin/env python3
# 39-recipient-maps.t - relay_recipient_maps: smap as the MX of a domain
# refuses unknown users at RCPT (550 5.1.1, logged as Postfix logs it),
# so nothing is spooled for them and smapd never bounces to a forged
# sender (backscatter). Maps are built by the real postmap (cdb:, Debian's
# postfix-cdb) or read as texthash:. A table that cannot be opened fails
# closed (451 4.3.0) for the domains it governs, and smap -t says why.
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from smaptest import TAP, Server, SMAP_BIN, lines, msg  # noqa: E402
from smapdtest import Smapd, smapd_log, wait_until  # noqa: E402

UNKNOWN = "550 5.1.1"
UNKNOWN_TEXT = r"<%s>: Recipient address rejected: User unknown in relay recipient table$"
ENTRIES = ["alice@example.com", "bob@example.com", "postmaster@example.com", "@catchall.example"]
BASE = {"relay_domains": "example.com catchall.example other.example", "recipient_delimiter": "+",
        "mynetworks": "192.0.2.0/24"}


def table(d, name):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        for e in ENTRIES:
            f.write("%s OK\n" % e)
    os.chmod(d, 0o755)
    os.chmod(path, 0o644)
    return path


def postmap_cdb(t, d):
    src = table(d, "rcpt")
    with open(os.path.join(d, "main.cf"), "w") as f:    # postmap -c: a config dir
        f.write("compatibility_level = 3.6\n")
    p = subprocess.run(["postmap", "-c", d, "cdb:" + src], capture_output=True, timeout=60)
    if p.returncode != 0 or not os.path.exists(src + ".cdb"):
        return None, p.stderr.decode("latin-1")
    os.chmod(src + ".cdb", 0o644)
    return "cdb:" + src, ""


def rcpt_session(srv, rcpts, trickle=False):
    body = b"EHLO maps.client\r\nMAIL FROM:<sender@forged.example>\r\n"
    body += b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts)
    return srv.session(body + b"QUIT\r\n", trickle=trickle)


def test_lookups(t, srv, kind):
    good = ["alice@example.com", "Alice@EXAMPLE.com", "alice+tag@example.com", "bob+x+y@example.com",
            "postmaster@example.com", "anyone@catchall.example", "Someone+z@CatchAll.Example",
            "postmaster"]
    bad = ["carol@example.com", "alice-tag@example.com", "alic@example.com", "alice@other.example",
           "x@other.example", "+@example.com"]
    for trickle, mode in ((False, "pipelined, one write"), (True, "one byte per write")):
        res = rcpt_session(srv, good + bad, trickle)
        got = res.replies[3:3 + len(good) + len(bad)]
        t.codes(got, ["250 2.1.5"] * len(good) + [UNKNOWN] * len(bad),
                "%s, %s: known, extended, catch-all and bare postmaster accepted; unknown 550 5.1.1"
                % (kind, mode))
        for r, a in zip(got[len(good):], bad):
            t.like(r.text, UNKNOWN_TEXT % re.escape(a), "%s, %s: 550 names <%s>" % (kind, mode, a))
        t.is_(res.new_files(), [], "%s, %s: nothing spooled" % (kind, mode))
    t.ok(srv.wait_log(r"(?:NOQUEUE|[0-9A-F]+): reject: RCPT from unknown\[127\.0\.0\.1\]: 550 5\.1\.1 <carol@example\.com>: "
                      r"Recipient address rejected: User unknown in relay recipient table; "
                      r"from=<sender@forged\.example> to=<carol@example\.com> proto=ESMTP "
                      r"helo=<maps\.client>", 3) is not None,
         "%s: the refusal is logged as Postfix logs it" % kind)


def test_mix(t, srv, kind):
    res = srv.session(lines("EHLO mix.client", "MAIL FROM:<s@b.example>", "RCPT TO:<alice@example.com>",
                            "RCPT TO:<nobody@example.com>", "RCPT TO:<bob+list@example.com>", "DATA")
                      + msg("mixed recipients") + b".\r\nQUIT\r\n")
    t.codes(res.replies[:8], ["220", "250", "250 2.1.0", "250 2.1.5", UNKNOWN, "250 2.1.5", "354",
                              "250 2.0.0"], "%s: known, unknown, known, DATA: queued" % kind)
    files = list(srv.spool_files().values())
    new = [f for f in files if f.name in res.new_files()]
    t.is_(len(new), 1, "%s: one message spooled" % kind)
    if new:
        t.is_(new[0].rcpt, ["<alice@example.com>", "<bob+list@example.com>"],
              "%s: for the known recipients only" % kind)


def test_not_governed(t, d, spec):
    """Domains outside relay_domains are the relay policy's, not the map's."""
    conf = dict(BASE, relay_recipient_maps=spec, mynetworks="127.0.0.0/8")
    with Server(t, conf=conf, name="maps-trusted") as srv:
        res = rcpt_session(srv, ["anyone@elsewhere.example", "u@[127.0.0.1]", "nobody@example.com"])
        t.codes(res.replies[3:6], ["250 2.1.5", "250 2.1.5", UNKNOWN],
                "a trusted client: other domains and literals relay; a relay domain is still checked")


def test_missing(t, d):
    spec = "cdb:" + os.path.join(d, "nonexistent")
    conf = dict(BASE, relay_recipient_maps=spec, mynetworks="127.0.0.0/8")
    with Server(t, conf=conf, name="maps-missing") as srv:
        p = subprocess.run([SMAP_BIN, "-t", "-c", srv.conffile], capture_output=True, timeout=30)
        err = p.stderr.decode("latin-1")
        t.is_(p.returncode, 78, "a missing map: smap -t exits 78")
        t.like(err, r"relay_recipient_maps: .*nonexistent\.cdb: no such file", "... and says which file")
        res = rcpt_session(srv, ["alice@example.com", "anyone@elsewhere.example"])
        t.codes(res.replies[3:5], ["451 4.3.0", "250 2.1.5"],
                "a missing map: 451 4.3.0 for its domains (never accept-all); other domains unaffected")
        t.like(srv.log(), r"relay_recipient_maps: .*nonexistent\.cdb: no such file.*get 451",
               "a missing map: the session logs why")
        t.is_(res.new_files(), [], "a missing map: nothing spooled")
    bad = os.path.join(d, "rcpt.bad")
    with open(bad, "w") as f:
        f.write("alice@example.com OK\n\"unbalanced OK\n")
    with Server(t, conf=dict(BASE, relay_recipient_maps="texthash:" + bad), name="maps-bad") as srv:
        p = subprocess.run([SMAP_BIN, "-t", "-c", srv.conffile], capture_output=True, timeout=30)
        t.ok(p.returncode == 78 and b"rcpt.bad: line 2" in p.stderr,
             "a texthash map with a bad line: smap -t exits 78 naming the line", p.stderr)
    with Server(t, conf=dict(BASE, relay_recipient_maps="hash:/etc/aliases"), name="maps-type") as srv:
        p = subprocess.run([SMAP_BIN, "-t", "-c", srv.conffile], capture_output=True, timeout=30)
        t.ok(p.returncode == 78 and b"is not a lookup table" in p.stderr,
             "a map type smap cannot read (hash:): smap -t exits 78", p.stderr)


def test_dictionary(t, srv):
    guesses = ["user%03d@example.com" % i for i in range(300)]
    res = rcpt_session(srv, guesses)
    codes = [r.code for r in res.replies]
    t.ok(421 in codes and codes.count(550) < 300, "a dictionary attack (300 unknown RCPTs) ends in 421 "
         "before it is through", "550s: %d, last: %s" % (codes.count(550), res.codes[-2:]))
    t.ok(any(r.code == 421 and r.enh == "4.7.0" for r in res.replies), "... 421 4.7.0", res.codes[-2:])
    t.ok(res.closed, "... and the connection is closed")
    t.ok(srv.wait_log(r"too many errors after RCPT from unknown\[127\.0\.0\.1\]", 3) is not None,
         "... logged as too many errors (fail2ban's line)")


def test_backscatter(t, srv):
    d = Smapd(t, srv, conf={"default_transport": "maildir:" + os.path.join(srv.dir, "Maildir") + "/"},
              name="smapd-39")
    d.start()
    try:
        for i in range(40):
            res = srv.session(lines("EHLO spam%d.example" % i, "MAIL FROM:<victim%d@forged.example>" % i,
                                    "RCPT TO:<nosuch%d@example.com>" % i, "DATA") + msg("spam") +
                              b".\r\nQUIT\r\n")
            if i == 0:
                t.codes(res.replies[1:5], ["250", "250 2.1.0", UNKNOWN, "554 5.5.1"],
                        "backscatter: an unknown user is refused at RCPT, DATA finds no recipient")
        t.is_(sorted(srv.list_new()), [], "backscatter: 40 messages to unknown users from forged senders: none spooled")
        t.ok(wait_until(lambda: "started" in "\n".join(smapd_log(srv)), 10), "backscatter: smapd is running")
        log = "\n".join(smapd_log(srv))
        t.unlike(log, r"non-delivery notification|status=bounced",
                 "backscatter: smapd sends no bounce at all")
        md = os.path.join(srv.dir, "Maildir", "new")
        t.is_(sorted(os.listdir(md)) if os.path.isdir(md) else [], [], "backscatter: nothing delivered")
    finally:
        d.stop()


def test_fail2ban(t, srv):
    tool = shutil.which("fail2ban-regex")
    if tool is None:
        t.skip("fail2ban-regex is not installed")
        return
    filt = os.path.join(HERE, "..", "conf/fail2ban/filter.d/smap.conf")
    d = tempfile.mkdtemp(prefix="smaptest.f2b.")
    try:
        fd = os.path.join(d, "filter.d")
        os.makedirs(fd)
        if os.path.exists("/etc/fail2ban/filter.d/common.conf"):
            shutil.copy("/etc/fail2ban/filter.d/common.conf", fd)
        shutil.copy(filt, os.path.join(fd, "smap.conf"))
        log = os.path.join(d, "log")
        with open(log, "w") as f:
            f.write("\n".join(l for l in srv.log().splitlines() if "User unknown in relay" in l) + "\n")
        p = subprocess.run([tool, log, os.path.join(fd, "smap.conf")], capture_output=True, timeout=60)
        m = re.search(r"Lines: (\d+) lines, \d+ ignored, (\d+) matched", p.stdout.decode("latin-1"))
        t.ok(m is not None and int(m.group(1)) > 0 and m.group(1) == m.group(2),
             "fail2ban's filter matches every 'User unknown in relay recipient table' line",
             p.stdout.decode("latin-1")[-800:])
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main(t):
    d = tempfile.mkdtemp(prefix="smaptest.maps.")
    try:
        spec, why = postmap_cdb(t, d)
        if spec is None:
            t.skip("postmap cannot write cdb: (install postfix-cdb): %s" % why)
        else:
            with Server(t, conf=dict(BASE, relay_recipient_maps=spec), name="maps-cdb") as srv:
                t.run("cdb lookups", test_lookups, t, srv, "cdb")
                t.run("cdb mix", test_mix, t, srv, "cdb")
                t.run("dictionary attack", test_dictionary, t, srv)
                t.run("fail2ban", test_fail2ban, t, srv)
            t.run("not governed", test_not_governed, t, d, spec)
        text = "texthash:" + table(d, "rcpt.txt")
        with Server(t, conf=dict(BASE, relay_recipient_maps=text), name="maps-texthash") as srv:
            t.run("texthash lookups", test_lookups, t, srv, "texthash")
            t.run("texthash mix", test_mix, t, srv, "texthash")
            t.run("backscatter", test_backscatter, t, srv)
        t.run("missing", test_missing, t, d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    TAP(watchdog=240).main(main)
