#!/usr/bin/env python3
# 63-config-check.t - "smap -t" and "smapd -t" as an admin meets them: a
# misspelt key, a value out of range and an open-relay mynetworks are each
# refused with file:line on stderr and exit 78 (EX_CONFIG); the
# acknowledging key allow_open_relay = yes lets the open relay pass; risky
# but legal settings print "file:line: warning: ..." and exit 0.
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from smaptest import TAP, REPO, SMAP_BIN, make_spool  # noqa: E402

SMAPD_BIN = os.path.join(REPO, "smapd", "smapd")
SPOOL = [None]          # a spool laid out by smapd -P: -t checks it too
EX_CONFIG = 78
HEAD = ("# written by 63-config-check.t\nmyhostname = mx.test.example\n"
        "default_transport = smtp:[127.0.0.1]:25\n")


def check(prog, path):
    p = subprocess.run([prog, "-t", "-c", path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    return p.returncode, p.stdout.decode("latin-1"), p.stderr.decode("latin-1")


def write(d, name, body, head=None):
    path = os.path.join(d, name + ".conf")
    with open(path, "w") as f:
        f.write((HEAD if head is None else head) + "spool_directory = %s\n" % SPOOL[0] +
                ("default_transport = smtp:[127.0.0.1]:25\n" if head is not None else "") + body +
                # last, so that the lines above keep their numbers: the
                # build's smap-dynamic, which a static smap -t runs
                "\nshlib_directory = %s\n" % os.path.dirname(SMAP_BIN))
    return path


def lineno(path, key):
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if line.startswith(key + " ") or line.startswith(key + "="):
                return i
    return 0


BAD = [
    ("misspelt", "mynetwork = 10.0.0.0/8\n", "mynetwork",
     r'unknown parameter "mynetwork"; did you mean "mynetworks"\?'),
    ("out-of-range", "smtpd_timeout = 2h\n", "smtpd_timeout",
     r"smtpd_timeout: 7200s is above the maximum 3600s"),
    ("open-relay", "mynetworks = 127.0.0.0/8, 0.0.0.0/0\n", "mynetworks",
     r"mynetworks: 0\.0\.0\.0/0 would make this host an open relay .*allow_open_relay = yes"),
    ("open-relay-v6", "mynetworks = [::1]/128\n  [::]/0\n", "mynetworks",
     r"mynetworks: \[::\]/0 would make this host an open relay"),
    ("open-relay-split", "mynetworks = 0.0.0.0/1 128.0.0.0/1\n", "mynetworks",
     r"mynetworks: 0\.0\.0\.0/1 would make.*\n.*mynetworks: 128\.0\.0\.0/1 would make"),
    ("open-relay-mapped", "mynetworks = [::ffff:0.0.0.0]/96\n", "mynetworks",
     r"mynetworks: 0\.0\.0\.0/0 would make this host an open relay"),
    ("bad-ack", "mynetworks = 0.0.0.0/0\nallow_open_relay = sure\n", "allow_open_relay",
     r'allow_open_relay: "sure" is not "yes" or "no"'),
    ("relay-tld", "relay_domains = example.com .com\n", "relay_domains",
     r'relay_domains: "\.com" is every domain under a top-level domain: this host would relay for anyone '
     r'to all of them; set allow_open_relay = yes if you mean it'),
    ("relay-public-suffix", "relay_domains = example.co.uk .co.uk\n", "relay_domains",
     r'relay_domains: "\.co\.uk" is every domain under the public suffix "co\.uk": this host would relay '
     r'for anyone to all of them; set allow_open_relay = yes if you mean it'),
]

WARN = ("message_size_limit = 209715200\n"
        "smtpd_timeout = 15m\n"
        "mynetworks = 127.0.0.0/8 10.0.0.0/8 198.18.0.0/15 [2001:db8::]/32\n"
        "relay_domains = example.com, com\n")
WARN_RES = [
    ("message_size_limit", r"message_size_limit: 209715200 is above 100 MB"),
    ("smtpd_timeout", r"smtpd_timeout: 900s is above 600s"),
    ("mynetworks", r"mynetworks: 198\.18\.0\.0/15 is wider than a /16"),
    ("mynetworks", r"mynetworks: \[2001:db8::\]/32 is wider than a /48"),
    ("relay_domains", r'relay_domains: "com" is a single label'),
]


def test_bad(t, d):
    for name, body, key, why in BAD:
        path = write(d, name, body)
        ln = lineno(path, key)
        for prog in (SMAP_BIN, SMAPD_BIN):
            pn = os.path.basename(prog)
            rc, out, err = check(prog, path)
            t.is_(rc, EX_CONFIG, "%s -t, %s: exit 78" % (pn, name))
            t.like(err, r"(?m)^%s:%d: %s" % (re.escape(path), ln, why),
                   "%s -t, %s: stderr names %s:%d and why" % (pn, name, os.path.basename(path), ln))
            t.is_(out, "", "%s -t, %s: nothing on stdout" % (pn, name))
    # Every error at once, in line order.
    path = write(d, "all", "".join(b for _, b, _, _ in BAD[:3]))
    for prog in (SMAP_BIN, SMAPD_BIN):
        rc, out, err = check(prog, path)
        lines = [l for l in err.splitlines() if l.startswith(path + ":")]
        nums = [int(l.split(":")[1]) for l in lines]
        t.ok(rc == EX_CONFIG and len(lines) == 3 and nums == sorted(nums),
             "%s -t: three errors in one file, three lines in line order" % os.path.basename(prog),
             err)


def test_ack(t, d):
    path = write(d, "ack", "mynetworks = 127.0.0.0/8 0.0.0.0/0 [::]/0\nallow_open_relay = yes\n"
                 "relay_domains = .org .co.uk\n")
    wired = None
    for prog in (SMAP_BIN, SMAPD_BIN):
        pn = os.path.basename(prog)
        rc, out, err = check(prog, path)
        t.is_(rc, 0, "%s -t: allow_open_relay = yes lets the open relay pass" % pn)
        t.unlike(err, r"would make this host an open relay|would relay for anyone",
                 "%s -t: and no error about it" % pn)
        has = re.search(r"(?m)^%s:%d: warning: mynetworks: 0\.0\.0\.0/0 makes this host an open relay"
                        % (re.escape(path), lineno(path, "mynetworks")), err) is not None
        t.ok(has, "%s -t: still warns about the acknowledged open relay" % pn)
        t.like(err, r'relay_domains: "\.org" accepts mail from anyone for every domain',
               "%s -t: ... and about the acknowledged top-level domain" % pn)
    p = subprocess.run([SMAP_BIN, "-n", "-c", path], stdout=subprocess.PIPE, timeout=20)
    t.like(p.stdout.decode(), r"(?m)^allow_open_relay = yes$", "smap -n shows allow_open_relay = yes")
    return wired


def test_warnings(t, d):
    path = write(d, "warn", WARN)
    for prog in (SMAP_BIN, SMAPD_BIN):
        pn = os.path.basename(prog)
        rc, out, err = check(prog, path)
        t.is_(rc, 0, "%s -t: risky but legal settings: exit 0" % pn)
        t.is_(out, "", "%s -t: nothing on stdout" % pn)
        for key, why in WARN_RES:
            has = re.search(r"(?m)^%s:%d: warning: %s" % (re.escape(path), lineno(path, key), why),
                            err) is not None
            t.ok(has, "%s -t warns: %s" % (pn, why.replace("\\", "")))
        t.unlike(err, r"10\.0\.0\.0/8|127\.0\.0\.0/8", "%s -t: private networks draw no warning" % pn)
        t.unlike(err, r"example\.com", "%s -t: an ordinary domain draws no warning" % pn)
    # The shipped sample (its spool here) and a plain config: no warnings at all.
    with open(os.path.join(REPO, "conf", "smap.conf")) as f:
        sample = write(d, "sample", "", head=f.read())
    for path in (sample, write(d, "plain", "relay_domains = example.com\n")):
        for prog in (SMAP_BIN, SMAPD_BIN):
            rc, out, err = check(prog, path)
            t.ok(rc == 0 and err == "" and out == "",
                 "%s -t %s: exit 0, silent" % (os.path.basename(prog), os.path.basename(path)),
                 "exit %d, stderr %r" % (rc, err))


def main(t):
    d = tempfile.mkdtemp(prefix="smaptest.conf.")
    os.chmod(d, 0o755)
    SPOOL[0] = os.path.join(d, "spool")
    make_spool(SPOOL[0])
    try:
        t.run("bad", test_bad, t, d)
        t.run("ack", test_ack, t, d)
        t.run("warnings", test_warnings, t, d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


TAP(watchdog=60).main(main)
