#!/usr/bin/env python3
# 58-routing.t - transport_maps and smtp_fallback_relay against two real
# Postfix instances on loopback, as two internal servers A and B (both
# take mail for a@, b@backend.test and c@x.lab.backend.test; where a
# message lands says which one smapd chose).
#
# The table (texthash: and cdb: made by the real postmap): backend.test
# goes to A, b@backend.test (the full address first) and .lab.backend.test
# (a parent domain) to B. Each message arrives at the right instance
# exactly once (counted by Message-ID); one for both is split, one
# delivery per next hop. With B stopped, only B's recipients are
# deferred (A's delivered once, the state file shows the progress);
# smtp_fallback_relay then hands them to A and the log names it. A host
# name with two addresses (a private /etc/hosts in a mount namespace) is
# tried address by address. An entry that does not parse is named by
# smapd -t (file:line:, exit 78) and defers its recipient at run time.
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, REPO  # noqa: E402
from postfix import Postfix, UNSHARE, header  # noqa: E402
from smapdtest import Smapd, send, queue_ids, state, smapd_log  # noqa: E402

SMAPQ_BIN = os.path.abspath(os.environ.get("SMAPQ_BIN") or os.path.join(REPO, "smapd", "smapq"))
USERS = ("a", "b", "c@x.lab.backend.test")
RCPT = {"a": "a@backend.test", "b": "b@backend.test", "c": "c@x.lab.backend.test"}
PF_MAIN = {"virtual_mailbox_domains": "backend.test x.lab.backend.test"}
SENT = 0


def mk(tag):
    return (b"From: <s@b.example>\r\nTo: <x@backend.test>\r\nSubject: routing %s\r\n"
            b"Message-ID: <rt-%s@b.example>\r\n\r\nbody %s\r\n" % (tag.encode(), tag.encode(), tag.encode()))


def copies(pf, user, tag):
    """How many copies of message tag user has at pf."""
    want = "<rt-%s@b.example>" % tag
    return sum(1 for _, data in pf.messages(user) if header(data, "Message-ID") == want)


def table(d, name, a, b, extra=""):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write("# next hops by recipient\nbackend.test smtp:[127.0.0.1]:%d\n"
                "b@backend.test smtp:[127.0.0.1]:%d\n.lab.backend.test  smtp:[127.0.0.1]:%d\n%s"
                % (a.port, b.port, b.port, extra))
    os.chmod(path, 0o644)
    return path


def postmap_cdb(src):
    d = os.path.dirname(src)
    with open(os.path.join(d, "main.cf"), "w") as f:
        f.write("compatibility_level = 3.6\n")
    p = subprocess.run(["postmap", "-c", d, "cdb:" + src], capture_output=True, timeout=60)
    if p.returncode != 0 or not os.path.exists(src + ".cdb"):
        return None
    os.chmod(src + ".cdb", 0o644)
    return "cdb:" + src


def deliver(t, srv, rcpts, tag, conf, name, prefix=()):
    """One message through smap, then smapd -1 -f with conf; its id."""
    sid = send(srv, [([RCPT[r] for r in rcpts], mk(tag))])[0][0]
    d = Smapd(t, srv, conf=conf, name=name)
    t.is_(d.once(prefix=prefix), 0, "%s: smapd -1 exits 0" % tag)
    return sid, d


def wait_copies(pf, user, tag, n, timeout=10.0):
    """Copies of tag at user once pf is idle, waiting (bounded) for n."""
    deadline = time.monotonic() + timeout
    while copies(pf, user, tag) < n and time.monotonic() < deadline:
        time.sleep(0.03)
    pf.wait_idle()
    return copies(pf, user, tag)


def test_routes(t, srv, a, b, spec, kind):
    conf = {"default_transport": "smtp:[127.0.0.1]:1", "transport_maps": spec,
            "default_destination_concurrency_limit": "1"}
    sid, _ = deliver(t, srv, ["a"], kind + "-a", conf, "smapd-58" + kind)
    t.is_(wait_copies(a, "a", kind + "-a", 1), 1, "%s: a@ (domain entry) arrived at A" % kind)
    t.is_(copies(b, "a", kind + "-a"), 0, "%s: ... and not at B" % kind)
    sid, _ = deliver(t, srv, ["b"], kind + "-b", conf, "smapd-58" + kind)
    t.is_(wait_copies(b, "b", kind + "-b", 1), 1, "%s: b@ (full address before domain) arrived at B" % kind)
    t.is_(copies(a, "b", kind + "-b"), 0, "%s: ... and not at A" % kind)
    sid, _ = deliver(t, srv, ["a", "b", "c"], kind + "-abc", conf, "smapd-58" + kind)
    t.is_([wait_copies(a, "a", kind + "-abc", 1), wait_copies(b, "b", kind + "-abc", 1),
           wait_copies(b, "c@x.lab.backend.test", kind + "-abc", 1)], [1, 1, 1],
          "%s: a message for both is split: a@ at A, b@ and c@x.lab (parent entry) at B" % kind)
    t.is_([copies(b, "a", kind + "-abc"), copies(a, "b", kind + "-abc"),
           copies(a, "c@x.lab.backend.test", kind + "-abc")], [0, 0, 0], "%s: ... each once, nowhere else" % kind)
    log = "\n".join(smapd_log(srv, sid))
    for r, pf in (("a", a), ("b", b), ("c", b)):
        t.like(log, r"to=<%s>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*status=sent" % (re.escape(RCPT[r]), pf.port),
               "%s: the log names the next hop of %s" % (kind, r))
    t.is_(queue_ids(srv), [], "%s: the queue is empty" % kind)


def smapq_show(d, sid):
    p = subprocess.run([SMAPQ_BIN, "-c", d.conffile, "show", sid], capture_output=True, timeout=20,
                       stdin=subprocess.DEVNULL, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TZ": "UTC"})
    return p.returncode, p.stdout.decode("latin-1")


def test_down_and_fallback(t, srv, a, b, spec):
    conf = {"default_transport": "smtp:[127.0.0.1]:1", "transport_maps": spec,
            "default_destination_concurrency_limit": "1"}
    b.stop()
    sid, d = deliver(t, srv, ["a", "b"], "down", conf, "smapd-58down")
    t.is_(wait_copies(a, "a", "down", 1), 1, "B down: a@ delivered at A")
    t.is_(queue_ids(srv), [sid], "B down: the message waits for b@")
    st = state(srv, sid) or {"rcpt": {}, "raw": ""}
    t.is_(st["rcpt"].get(0, ("?",))[0], "sent", "B down: state: a@ sent")
    t.like(st["rcpt"].get(1, ("?", "?", ""))[1], r"^4\.4\.1$", "B down: state: b@ deferred 4.4.1")
    t.like(st["raw"], r"(?m)^relay 0 127\.0\.0\.1\[127\.0\.0\.1\]:%d$" % a.port, "B down: state: a@'s relay kept")
    rc, out = smapq_show(d, sid)
    t.is_(rc, 0, "smapq show exits 0")
    t.like(out, r"(?m)^recipient: <a@backend\.test> sent .*\n  next_hop: smtp:\[127\.0\.0\.1\]:%d\n"
           r"  relay: 127\.0\.0\.1\[127\.0\.0\.1\]:%d$" % (a.port, a.port), "smapq show: a@'s next hop and relay")
    t.like(out, r"(?m)^recipient: <b@backend\.test> deferred 4\.4\.1 .*\n  next_hop: smtp:\[127\.0\.0\.1\]:%d$"
           % b.port, "smapq show: b@'s next hop")
    p = subprocess.run([SMAPQ_BIN, "-c", d.conffile, "list"], capture_output=True, timeout=20,
                       stdin=subprocess.DEVNULL, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TZ": "UTC"})
    t.like(p.stdout.decode("latin-1"), r"(?m)^ {41}b@backend\.test via smtp:\[127\.0\.0\.1\]:%d$" % b.port,
           "smapq list: the pending recipient with its next hop")
    p = subprocess.run([SMAPQ_BIN, "-c", d.conffile, "-j"], capture_output=True, timeout=20,
                       stdin=subprocess.DEVNULL)
    t.like(p.stdout.decode("latin-1"), r'"address": "b@backend\.test", "delay_reason": "[^"]*", '
           r'"next_hop": "smtp:\[127\.0\.0\.1\]:%d"' % b.port, "smapq -j: next_hop")
    fb = dict(conf, smtp_fallback_relay="[127.0.0.1]:%d" % a.port)
    d2 = Smapd(t, srv, conf=fb, name="smapd-58fb")
    t.is_(d2.once(), 0, "fallback: smapd -1 exits 0")
    t.is_(wait_copies(a, "b", "down", 1), 1, "fallback: b@ delivered by the fallback relay A")
    t.is_(copies(a, "a", "down"), 1, "fallback: a@ not delivered again")
    t.is_(queue_ids(srv), [], "fallback: the queue is empty")
    log = "\n".join(smapd_log(srv, sid))
    t.like(log, r"%s: next hop smtp:\[127\.0\.0\.1\]:%d failed \(connect to .*\): trying fallback relay "
           r"smtp:\[127\.0\.0\.1\]:%d" % (sid, b.port, a.port), "fallback: the log says the fallback was tried")
    t.like(log, r"to=<b@backend\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*status=sent" % a.port,
           "fallback: relay= names the fallback that took it")


def test_addresses(t, srv, a, d):
    """multi.test has ::1 (A listens on IPv4 only) then 127.0.0.1 (A)."""
    hosts = os.path.join(d, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 localhost\n::1 multi.test\n127.0.0.1 multi.test\n")
    os.chmod(hosts, 0o644)
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    prefix = [UNSHARE, "--mount", "--propagation", "private", "/bin/sh", "-c", script, hosts]
    p = subprocess.run(prefix + ["getent", "ahosts", "multi.test"], capture_output=True, timeout=10)
    got = re.findall(r"^(\S+)\s+STREAM", p.stdout.decode("latin-1"), re.M)
    if got != ["::1", "127.0.0.1"]:
        t.skip("no private /etc/hosts with two addresses in order here: %r" % got)
        return
    conf = {"default_transport": "smtp:multi.test:%d" % a.port, "smtp_tls_security_level": "none"}
    sid, _ = deliver(t, srv, ["a"], "multi", conf, "smapd-58multi", prefix=prefix)
    t.is_(wait_copies(a, "a", "multi", 1), 1, "two addresses: the second one took it")
    t.like("\n".join(smapd_log(srv, sid)), r"relay=multi\.test\[127\.0\.0\.1\]:%d, .*status=sent" % a.port,
           "two addresses: relay= names the address that answered")


def test_bad_entry(t, srv, a, b, d):
    src = table(d, "bad", a, b, "\nbad.test error:5.1.1\n")
    conf = {"default_transport": "smtp:[127.0.0.1]:%d" % a.port, "transport_maps": "texthash:" + src}
    x = Smapd(t, srv, conf=conf, name="smapd-58bad")
    rc, err = x.check()
    t.is_(rc, 78, "bad entry (texthash): smapd -t exits 78")
    t.like(err, r"(?m)%s:6: bad\.test: \"error\" is not a transport smapd has" % re.escape(src),
           "bad entry (texthash): smapd -t names file:line:")
    cdb = postmap_cdb(src)
    if cdb is None:
        t.skip("postmap cannot write cdb: (postfix-cdb)")
    else:
        rc, err = Smapd(t, srv, conf=dict(conf, transport_maps=cdb), name="smapd-58badcdb").check()
        t.is_(rc, 78, "bad entry (cdb): smapd -t exits 78")
        t.like(err, r"(?m)%s\.cdb: key bad\.test: \"error\" is not" % re.escape(src),
               "bad entry (cdb): smapd -t names the key")
    sid = send(srv, [(["z@bad.test", RCPT["a"]], mk("bad"))])[0][0]
    t.is_(x.once(), 0, "bad entry: smapd -1 exits 0")
    t.is_(wait_copies(a, "a", "bad", 1), 1, "bad entry: the other recipient delivered")
    log = "\n".join(smapd_log(srv, sid))
    t.like(log, r"to=<z@bad\.test>, relay=none, .*status=deferred \(transport_maps texthash:.*: the entry for "
           r"z@bad\.test does not parse", "bad entry: its recipient deferred with the reason")
    t.is_(queue_ids(srv), [sid], "bad entry: the message waits, delivered nowhere else")
    p = subprocess.run([SMAPQ_BIN, "-c", x.conffile, "delete", sid], capture_output=True, timeout=20,
                       stdin=subprocess.DEVNULL)
    t.is_(p.returncode, 0, "bad entry: smapq delete of its message")


def main(t):
    d = tempfile.mkdtemp(prefix="smaptest-58.")
    os.chmod(d, 0o755)
    try:
        with Postfix(t, users=USERS, main=PF_MAIN, name="postfix-58a") as a, \
                Postfix(t, users=USERS, main=PF_MAIN, name="postfix-58b") as b, \
                Server(t, name="smap-58") as srv:
            src = table(d, "transport", a, b)
            t.run("texthash routes", test_routes, t, srv, a, b, "texthash:" + src, "texthash")
            cdb = postmap_cdb(src)
            if cdb is None:
                t.skip("postmap cannot write cdb: (install postfix-cdb)")
            else:
                t.run("cdb routes", test_routes, t, srv, a, b, cdb, "cdb")
            t.run("bad entry", test_bad_entry, t, srv, a, b, d)
            t.run("two addresses", test_addresses, t, srv, a, d)
            t.run("down and fallback", test_down_and_fallback, t, srv, a, b, cdb or "texthash:" + src)
            for name in sorted(f[:-7] for f in os.listdir(srv.dir) if f.startswith("smapd-58") and
                               f.endswith(".stderr")):
                Smapd(t, srv, name=name).check_sanitizer()
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    TAP(watchdog=150).main(main)
