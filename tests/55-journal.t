#!/usr/bin/env python3
# 55-journal.t - the journal and the daily review, end to end:
# smap -> smapd -> a real Postfix, with mail delivered, deferred (450),
# bounced (550), expired, quarantined, held, released and deleted, and
# relay attempts refused; then
#   - journal/ and its keys as smapd -P made them; smapd -t silent;
#     smapq journal-key prints the first key once;
#   - smapq verify exits 0 (with and without the key);
#   - each tampering (a byte changed, a line deleted, inserted, two
#     swapped, the file cut, the day deleted, a re-chained forgery made
#     without the key) exits 1 naming the day and line;
#   - new records after a verification do not alert;
#   - smapq report (-j, --message) counts what was sent, by outcome;
#   - smapq check: 0/1/2/3 at its thresholds, the node_exporter textfile.
import hashlib
import hmac
import json
import os
import pwd
import re
import shutil
import smtplib
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, REPO  # noqa: E402
from postfix import Postfix, DOMAIN  # noqa: E402
from smapdtest import (Smapd, send, queue_ids, spool_path, new_id, spool_bytes, place,  # noqa: E402
                       quarantined, tap_skip)

SMAPQ_BIN = os.path.abspath(os.environ.get("SMAPQ_BIN") or os.path.join(REPO, "smapd", "smapq"))
ACCESS = {"later": "450 4.2.0 try later", "later2": "450 4.2.0 try later"}


def smapq(d, *args, timeout=30):
    """smapq with smapd's config: (status, stdout, stderr)."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TZ": "UTC"}
    if os.environ.get("ASAN_OPTIONS"):
        env["ASAN_OPTIONS"] = os.environ["ASAN_OPTIONS"]
    p = subprocess.run([SMAPQ_BIN, "-c", d.conffile] + list(args), capture_output=True,
                       timeout=timeout, stdin=subprocess.DEVNULL, env=env)
    return p.returncode, p.stdout.decode("latin-1"), p.stderr.decode("latin-1")


def mk(n, subject):
    return (b"From: a@b.example\r\nTo: someone@" + DOMAIN.encode() + b"\r\nSubject: " +
            subject.encode() + b"\r\nMessage-ID: <j-%d@b.example>\r\n\r\nbody %d\r\n" % (n, n))


def at(u):
    return "%s@%s" % (u, DOMAIN)


def jdir(srv):
    return spool_path(srv, "journal")


def day_files(srv):
    return sorted(n for n in os.listdir(jdir(srv)) if re.match(r"^\d{4}-\d\d-\d\d$", n))


def day_lines(srv, day):
    with open(os.path.join(jdir(srv), day), "rb") as f:
        return f.read().decode("latin-1").splitlines(True)


def put_day(srv, day, lines):
    with open(os.path.join(jdir(srv), day), "wb") as f:
        f.write("".join(lines).encode("latin-1"))


def refuse_relay(t, srv, n):
    """n RCPTs outside relay_domains from 127.0.0.1 (not in mynetworks)."""
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=20)
    try:
        s.ehlo("relay.test")
        s.mail("spammer@elsewhere.example")
        codes = [s.rcpt("victim%d@elsewhere.example" % i)[0] for i in range(n)]
        s.quit()
    finally:
        s.close()
    t.is_(codes, [554] * n, "%d relay attempts refused by smap (554)" % n)
    srv.wait_sessions(5)


def traffic(t, srv, d, pf):
    """Every outcome once or more; the counts the report must show."""
    sent = send(srv, [([at("a")], mk(1, "one")), ([at("b")], mk(2, "two")),
                      ([at("a")], mk(3, "three")), ([at("b")], mk(4, "four")),
                      ([at("later")], mk(5, "deferred")), ([at("later2")], mk(6, "deleted")),
                      ([at("gone")], mk(7, "bounced"))])
    ids = [s for s, _ in sent]
    refuse_relay(t, srv, 3)
    place(srv, new_id(), kind="symlink", target="/etc/passwd")
    old = new_id()
    place(srv, old, spool_bytes(old, mk(8, "expired"), rcpts=("<%s>" % at("later"),),
                                arrival=int(time.time()) - 2 * 86400))
    t.is_(d.once(), 0, "smapd -1 -f: the first run exits 0")
    later, later2 = ids[4], ids[5]
    for args, desc in ((("hold", later2), "hold"), (("delete", later2), "delete from hold"),
                       (("hold", later), "hold"), (("release", later), "release")):
        rc, out, err = smapq(d, *args)
        t.ok(rc == 0, "smapq %s %s: exit 0" % (desc, args[1]), err)
    t.is_(d.once(), 0, "smapd -1 -f: the second run exits 0 (the released message tried again)")
    got = len(pf.wait_messages("a", 2, 10)) + len(pf.wait_messages("b", 2, 10))
    t.is_(got, 4, "Postfix has the four deliverable messages")
    t.is_([q for q in queue_ids(srv) if not q.startswith(".")], [later], "only the deferred message is left in queue/")
    t.is_(len(quarantined(srv)), 1, "the planted symbolic link is in quarantine/")
    return {"accepted": 8, "delivered": 6, "deferred": 4, "bounced": 1, "expired": 1,
            "quarantined": 1, "held": 2, "released": 1, "deleted": 1, "relay_refused": 3}, later


def test_keys(t, srv, d):
    st = os.stat(jdir(srv))
    smapd_uid = pwd.getpwnam("smapd").pw_uid
    t.ok(st.st_uid == smapd_uid and st.st_mode & 0o7777 == 0o700, "journal/ is smapd's, mode 0700")
    for n in ("key", "key.first"):
        st = os.stat(os.path.join(jdir(srv), n))
        t.ok(st.st_uid == smapd_uid and st.st_mode & 0o7777 == 0o600,
             "journal/%s (made by smapd -P) is smapd's, mode 0600" % n)
    rc, err = d.check()
    t.ok(rc == 0 and err == "", "smapd -t: exit 0, silent", err)
    rc, out, err = smapq(d, "journal-key")
    t.ok(rc == 0 and re.match(r"^smap-journal-key 1 \d{4}-\d\d-\d\d [0-9a-f]{64}\n$", out),
         "smapq journal-key: the first key, one line", out, err)
    t.ok(not os.path.exists(os.path.join(jdir(srv), "key.first")), "and key.first is gone from the host")
    rc2, out2, err2 = smapq(d, "journal-key")
    t.ok(rc2 == 1 and out2 == "" and "no longer on this host" in err2,
         "smapq journal-key again: exit 1, nothing printed", err2)
    keyfile = os.path.join(srv.dir, "journal.key")
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, out.encode())
    os.close(fd)
    return keyfile


def verify(d, *args):
    return smapq(d, "verify", *args)


def test_intact(t, d, keyfile):
    rc, out, err = verify(d)
    t.ok(rc == 0 and out.startswith("journal: intact: ") and "MACs not checked" in out and
         re.search(r"journal: [1-9]\d* logged heads match", out),
         "smapq verify (no key): exit 0, intact, says the MACs were not checked, the logged heads match",
         out, err)
    rc, out, err = verify(d, "--key", keyfile)
    t.ok(rc == 0 and out.startswith("journal: intact: ") and "MACs checked with the key of " in out,
         "smapq verify --key: exit 0, every MAC checked", out, err)


def expect(t, d, desc, day, line, why, *args):
    rc, out, err = verify(d, *args)
    where = "%s line %d" % (day, line) if line else day
    t.ok(rc == 1 and out.startswith("journal: FAILED: %s: " % where) and re.search(why, out.split("\n")[0]),
         "%s: smapq verify exits 1 at %s (%s)" % (desc, where, why), out, err)


def forge(lines):
    """The day written again under a key that is not the journal's, its
    structure (numbers, links, counts) kept."""
    key = os.urandom(32)
    prev = bytes(32)
    out = []
    for ln in lines:
        body = ln.rstrip("\n").rsplit(" mac=", 1)[0]
        mac = hmac.new(key, prev + body.encode(), hashlib.sha256).digest()
        out.append("%s mac=%s\n" % (body, mac.hex()))
        prev = mac
    return out


def test_tamper(t, srv, d, keyfile):
    days = day_files(srv)
    day = days[-1]
    orig = day_lines(srv, day)
    n = len(orig)
    t.ok(n >= 20, "%s holds %d records" % (day, n))
    key = ("--key", keyfile)

    def restore():
        put_day(srv, day, orig)

    ln = orig[:]
    ln[2] = re.sub(r"id=([0-9A-F])", lambda m: "id=" + ("0" if m.group(1) != "0" else "1"), ln[2], count=1)
    put_day(srv, day, ln)
    expect(t, d, "one byte changed", day, 3, r"MAC does not match", *key)
    put_day(srv, day, orig[:3] + orig[4:])
    expect(t, d, "a line deleted", day, 4, r"numbered 5")
    put_day(srv, day, orig[:2] + orig[1:])
    expect(t, d, "a line inserted", day, 3, r"numbered 2")
    put_day(srv, day, orig[:4] + [orig[5], orig[4]] + orig[6:])
    expect(t, d, "two lines swapped", day, 5, r"numbered 6")
    put_day(srv, day, orig[:n - 3])
    expect(t, d, "the file cut short", day, n - 2, r"missing: a head logged .* names \d+ records, the file ends at line %d" % (n - 3))
    put_day(srv, day, orig[:n - 1] + [orig[n - 1][:40]])
    expect(t, d, "the file cut inside a record", day, n, r"ends inside this record")
    os.rename(os.path.join(jdir(srv), day), os.path.join(srv.dir, "saved-day"))
    expect(t, d, "the whole day deleted", day, 0, r"missing: a head for it was logged")
    os.rename(os.path.join(srv.dir, "saved-day"), os.path.join(jdir(srv), day))
    fake = forge(orig) if len(days) == 1 else None
    if fake is None:
        tap_skip(t, "the journal spans two days (a UTC midnight passed): the forgery case needs one")
    else:
        put_day(srv, day, fake)
        expect(t, d, "a re-chained forgery made without the key", day, 1, r"MAC does not match", *key)
        rc, out, err = verify(d, "--log", "/dev/null")
        t.ok(rc == 0 and "MACs not checked" in out and "no logged head found" in out,
             "the forgery without the key and without the log: structure only, and verify says so",
             out)
        rc, out, err = verify(d)
        t.ok(rc == 1 and re.match(r"journal: FAILED: %s line \d+: not the record whose head was logged"
                                  % day, out),
             "the forgery without the key: found against a logged head (day and line)", out)
    restore()


def test_new_records(t, srv, d, pf, keyfile):
    test_intact(t, d, keyfile)
    before = sum(len(day_lines(srv, x)) for x in day_files(srv))
    send(srv, [([at("b")], mk(100 + i, "after the verification %d" % i)) for i in range(30)])
    t.is_(d.once(), 0, "smapd -1 -f: 30 more messages, over parallel delivery processes")
    after = sum(len(day_lines(srv, x)) for x in day_files(srv))
    t.ok(after >= before + 60, "new records appended by the workers (%d -> %d lines)" % (before, after))
    t.is_(len(pf.wait_messages("b", 32, 10)), 32, "Postfix has them")
    rc, out, err = verify(d, "--key", keyfile)
    t.ok(rc == 0 and out.startswith("journal: intact: "),
         "smapq verify --key after new records: still exit 0, nothing to alert on", out, err)


def test_report(t, srv, d, want, later):
    rc, out, err = smapq(d, "report", "-j")
    try:
        r = json.loads(out)
    except ValueError:
        t.ok(False, "smapq report -j: one JSON object", out, err)
        return
    t.ok(rc == 0, "smapq report -j: exit 0", err)
    got = {k: r.get(k) for k in want}
    t.is_(got, want, "smapq report -j: the counts by outcome are what the test sent")
    t.is_(r.get("deferred_by_dsn"), {"4.2.0": 4}, "deferrals by status code: 4.2.0 (the 450s)")
    t.is_(r.get("quarantined_by_reason"), {"symbolic link": 1}, "quarantined by reason")
    t.is_(r.get("top_refused_clients"), [{"client": "127.0.0.1", "count": 3}], "top refused clients")
    t.ok(r.get("accepted_tls") == 0 and r.get("delivered_smtp") == 6 and r.get("delivered_tls") == 0,
         "TLS shares: none in (plain SMTP), none of 6 SMTP deliveries out", repr(r))
    q = r.get("queue", {})
    t.ok(q.get("queue") == 1 and q.get("oldest_id") == later, "the queue now: 1, the oldest is %s" % later,
         repr(q))
    j = r.get("journal", {})
    t.ok(j.get("ok") is True and j.get("macs_checked") is False and j.get("heads_checked", 0) > 0,
         "the journal's verification: ok, structure and heads", repr(j))
    rc, out, err = smapq(d, "report", "--message")
    t.ok(rc == 0 and re.match(r"^To: postmaster\nSubject: smap review of \S+ for \d{4}-\d\d-\d\d: OK\n"
                              r"Auto-Submitted: auto-generated\n", out) and
         "messages accepted:       8 (0 over TLS, 0%)" in out and
         "relay attempts refused:  3" in out and "    127.0.0.1: 3" in out and
         "    4.2.0 (mailbox status): 4" in out and "journal: intact" in out,
         "smapq report --message: headers for smap-sendmail -t, the counts in words", out, err)


def test_report_alert(t, srv, d, keyfile):
    day = day_files(srv)[-1]
    orig = day_lines(srv, day)
    ln = orig[:]
    ln[1] = re.sub(r"(\d{2}:\d{2}:\d{2})", "00:00:00", ln[1], count=1)
    put_day(srv, day, ln)
    rc, out, err = smapq(d, "report", "--message", "--key", keyfile)
    t.ok(rc == 0 and re.search(r"(?m)^Subject: .*: ALERT: the journal failed verification$", out) and
         "journal: FAILED: %s line 2: MAC does not match" % day in out,
         "smapq report --message after a record was changed: ALERT in the subject, the day and line",
         out[:600], err)
    put_day(srv, day, orig)
    sm = os.path.join(sbindir(), "smap-sendmail")
    if not os.access(sm, os.X_OK):
        tap_skip(t, "%s is not installed: report --mail not tried" % sm)
    else:
        rc, out, err = smapq(d, "report", "--mail")
        t.is_(rc, 0, "smapq report --mail: handed to %s" % sm)


def sbindir():
    try:
        with open(os.path.join(REPO, "common", "paths.h")) as f:
            m = re.search(r'SMAP_SBIN_DIR "([^"]*)"', f.read())
            return m.group(1) if m else "/usr/local/sbin"
    except OSError:
        return "/usr/local/sbin"


def test_check(t, srv, d, mdir):
    prom = os.path.join(mdir, "smap.prom")
    rc, out, err = smapq(d, "check")
    t.ok(rc == 0 and re.match(r"^SMAP QUEUE OK - 1 messages \(queue 1, hold 0, new 0\), oldest \S+ \| "
                              r"messages=1;100;500;0 oldest=\d+s;3600;14400;0 deferred=1;;;0 hold=0;;;0\n$",
                              out), "smapq check: OK, exit 0, one line with perfdata", out, err)
    rc, out, err = smapq(d, "check", "-w", "0", "-c", "5")
    t.ok(rc == 1 and out.startswith("SMAP QUEUE WARNING - 1 messages"), "check -w 0 -c 5: WARNING, exit 1", out)
    rc, out, err = smapq(d, "check", "-w", "0", "-c", "0")
    t.ok(rc == 2 and out.startswith("SMAP QUEUE CRITICAL - "), "check -w 0 -c 0: CRITICAL, exit 2", out)
    old = new_id()
    place(srv, old, spool_bytes(old, mk(10, "two hours old"), rcpts=("<%s>" % at("later"),),
                                arrival=int(time.time()) - 7200))
    t.is_(d.once(flush=False), 0, "smapd -1: a message that arrived two hours ago picked up")
    rc, out, err = smapq(d, "check", "-W", "1h", "-C", "3h")
    t.ok(rc == 1 and re.match(r"^SMAP QUEUE WARNING - 2 messages .* oldest 2h00m ", out),
         "check -W 1h -C 3h, the oldest two hours old: WARNING", out)
    rc, out, err = smapq(d, "check", "-W", "30m", "-C", "1h")
    t.ok(rc == 2 and out.startswith("SMAP QUEUE CRITICAL - "), "check -W 30m -C 1h: CRITICAL", out)
    rc, out, err = smapq(d, "check", "-w", "x")
    t.is_(rc, 3, "check with a bad threshold: UNKNOWN, exit 3")
    p = subprocess.run([SMAPQ_BIN, "-c", os.path.join(srv.dir, "missing.conf"), "check"],
                       capture_output=True, timeout=20)
    t.ok(p.returncode == 3 and p.stdout.startswith(b"SMAP UNKNOWN - "),
         "check with a configuration that cannot be read: UNKNOWN, exit 3", p.stdout, p.stderr)
    try:
        with open(prom) as f:
            text = f.read()
        mode = os.stat(prom).st_mode & 0o777
    except OSError as e:
        text, mode = str(e), 0
    t.ok(re.search(r'(?m)^smap_queue_messages\{dir="queue"\} 2$', text) and
         re.search(r'(?m)^smap_queue_deferred_recipients\{dsn="4.2.0"\} 2$', text) and
         re.search(r"(?m)^smap_queue_oldest_seconds 7\d\d\d$", text) and
         re.search(r"(?m)^smap_last_delivery_timestamp_seconds 1\d{9}$", text) and
         re.search(r"(?m)^# TYPE smap_journal_head_timestamp_seconds gauge$", text) and mode == 0o644,
         "metrics_textfile: the queue, deferrals by code, last delivery, journal head; mode 0644", text)
    t.is_(sorted(os.listdir(mdir)), ["smap.prom"], "nothing else left beside it (written as .tmp, renamed)")


def main(t):
    if os.geteuid() != 0:
        t.skip("needs root")
        return
    with Postfix(t, users=["a", "b"], access=ACCESS, name="postfix-55") as pf:
        with Server(t, name="journal", conf={"mynetworks": "10.255.255.0/24",
                                             "relay_domains": DOMAIN}) as srv:
            mdir = os.path.join(srv.dir, "metrics")
            os.mkdir(mdir, 0o755)
            pw = pwd.getpwnam("smapd")
            os.chown(mdir, pw.pw_uid, pw.pw_gid)
            d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % pf.port,
                                    "maximal_queue_lifetime": "1d", "mynetworks": "10.255.255.0/24",
                                    "relay_domains": DOMAIN,
                                    "metrics_textfile": os.path.join(mdir, "smap.prom")})
            keyfile = t.run("keys", test_keys, t, srv, d)
            want, later = t.run("traffic", traffic, t, srv, d, pf) or ({}, None)
            if keyfile:
                t.run("intact", test_intact, t, d, keyfile)
                t.run("tamper", test_tamper, t, srv, d, keyfile)
            t.run("report", test_report, t, srv, d, want, later)
            if keyfile:
                t.run("report alert", test_report_alert, t, srv, d, keyfile)
                t.run("new records", test_new_records, t, srv, d, pf, keyfile)
            t.run("check", test_check, t, srv, d, mdir)
            d.check_sanitizer()


TAP(watchdog=150).main(main)
