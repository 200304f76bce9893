#!/usr/bin/env python3
# 72-limits.t - threat model sections 5 and 8: per-client limits that hold
# across smap processes (smap/anvil.c, Postfix's names and meanings),
# against real sessions. Clients are named by PROXY v1 headers sent from
# 127.0.0.1 (the proxy), so that any address can be a client.
#   - smtpd_client_connection_rate_limit = 5: five connections of one
#     client within the time unit get 220, the sixth exactly gets
#     "421 4.7.0 HOST Error: too many connections from ADDR", another
#     client is unaffected; Postfix's warning is logged;
#   - smtpd_client_connection_count_limit = 3: three sessions at once,
#     the fourth refused; one that ends, and one killed with SIGKILL,
#     give their count back;
#   - message and recipient rates: 450 4.7.1 "too much mail" / "too many
#     recipients"; clients in smtpd_client_event_limit_exceptions
#     ($mynetworks) are never limited;
#   - 50 sessions at once of one client, each a whole message: none lost
#     from the counts (tolerance 0: the 51st connection is the one
#     refused, the table holds 51), none waited for the table past its
#     bound (no "busy" warning); the same for 50 held at once against a
#     count limit of 50 (10 of each under memcheck, where 50 instrumented
#     smaps at once outlast any client's timeout);
#   - the table file: garbage and a short file are rebuilt; a symbolic
#     link is never followed; one kept locked by someone else delays a
#     session by ANVIL_WAIT_MS tries (about 0.2 s) at most, then it is
#     served without the limits, warned.
import fcntl
import os
import re
import signal
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from smaptest import TAP, Server, HOSTNAME, SLOW, VALGRIND, lines, msg, smap_ids  # noqa: E402
from haproxy import v1  # noqa: E402

BASE = {"smtpd_upstream_proxy_protocol": "haproxy", "mynetworks": "127.0.0.1/32",
        "relay_domains": "example.com", "smtpd_client_connection_count_limit": "0"}
ENT = struct.Struct("<16si3Iq")     # smap/anvil.c's struct ent
TOO_MANY = "421 4.7.0 %s Error: too many connections from %%s" % HOSTNAME


def table_path(srv):
    return os.path.join(srv.spool, "incoming", "anvil", "clients")


def table(srv):
    """{(family, address bytes): [conn, mail, rcpt]} of the rate entries."""
    with open(table_path(srv), "rb") as f:
        data = f.read()
    out = {}
    if not data.startswith(b"smap anvil 1\n"):
        return None
    for i in range(512):
        addr, fam, c, m, r, _ = ENT.unpack_from(data, 16 + i * ENT.size)
        if fam:
            out[(fam, addr)] = [c, m, r]
    return out


def counts(srv, addr):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    key = socket.inet_pton(fam, addr).ljust(16, b"\0")
    return (table(srv) or {}).get((fam, key))


def connect(srv, addr, port=40000):
    """A session of client addr: (client, greeting reply)."""
    c = srv.client(timeout=10 * SLOW)
    c.send(v1(addr, port))
    return c, c.reply()


def once(srv, addr):
    """Connect, read the greeting, QUIT; the greeting's text."""
    c, r = connect(srv, addr)
    if r.code == 220:
        c.cmd("QUIT")
    c.close()
    srv.wait_sessions(5)
    return "%d %s" % (r.code, r.text) if r.code else r.kind


def test_rate(t):
    with Server(t, conf=dict(BASE, smtpd_client_connection_rate_limit="5"), name="rate") as srv:
        got = [once(srv, "198.51.100.20") for _ in range(6)]
        t.ok(all(g.startswith("220 ") for g in got[:5]), "rate 5: five connections greeted", got)
        t.is_(got[5], TOO_MANY % "198.51.100.20", "rate 5: the sixth refused with Postfix's 421 4.7.0")
        t.is_(once(srv, "198.51.100.20"), TOO_MANY % "198.51.100.20", "... and the seventh")
        t.ok(once(srv, "198.51.100.21").startswith("220 "), "another client: greeted")
        t.ok(once(srv, "2001:db8::21").startswith("220 "), "an IPv6 client: greeted")
        t.like(srv.log(), r"smap/smtpd\[\d+\]: warning: Connection rate limit exceeded: 6 from "
               r"unknown\[198\.51\.100\.20\] for service smtp$", "Postfix's warning, with the count", re.M)
        t.like(srv.log(), r"disconnect from unknown\[198\.51\.100\.20\] commands=0$",
               "the refused session ends with its disconnect line", re.M)
        t.is_(counts(srv, "198.51.100.20"), [7, 0, 0], "the table holds 7 connections of 198.51.100.20")


def test_count(t):
    with Server(t, conf=dict(BASE, smtpd_client_connection_count_limit="3"), name="count") as srv:
        held = [connect(srv, "198.51.100.30", 41000 + i) for i in range(3)]
        t.ok(all(r.code == 220 for _, r in held), "count 3: three sessions at once greeted")
        t.is_(once(srv, "198.51.100.30"), TOO_MANY % "198.51.100.30", "the fourth at once: 421 4.7.0")
        t.like(srv.log(), r"warning: Connection concurrency limit exceeded: 4 from unknown\[198\.51\.100\.30\] "
               r"for service smtp$", "Postfix's concurrency warning", re.M)
        t.ok(once(srv, "198.51.100.31").startswith("220 "), "another client: greeted")
        c, _ = held.pop()
        c.cmd("QUIT")
        c.close()
        srv.wait_sessions(0.5)
        deadline, got = time.monotonic() + 5, None
        while time.monotonic() < deadline:      # until that smap has exited
            got = once(srv, "198.51.100.30")
            if got.startswith("220 "):
                break
            time.sleep(0.05)
        t.ok(got and got.startswith("220 "), "one ended: its count is free", got)
        pids = set(srv.smap_pids())
        c3, r3 = connect(srv, "198.51.100.30", 42000)
        pid = srv.wait_smap_pid(exclude=pids)
        t.ok(r3.code == 220 and pid, "three again")
        t.is_(once(srv, "198.51.100.30"), TOO_MANY % "198.51.100.30", "... and the fourth refused")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and os.path.exists("/proc/%d" % pid):
            time.sleep(0.02)
        t.ok(once(srv, "198.51.100.30").startswith("220 "), "one killed (SIGKILL): its count is free")
        for c, _ in held + [(c3, None)]:
            c.close()


def test_mail_rcpt(t):
    conf = dict(BASE, smtpd_client_message_rate_limit="2", smtpd_client_recipient_rate_limit="3")
    with Server(t, conf=conf, name="mail rcpt") as srv:
        res = srv.session([v1("198.51.100.40") + lines(
            "EHLO c.example", "MAIL FROM:<a@b.example>", "RSET", "MAIL FROM:<a@b.example>",
            "RCPT TO:<u1@example.com>", "RCPT TO:<u2@example.com>", "RCPT TO:<u3@example.com>",
            "RCPT TO:<u4@example.com>", "RSET", "MAIL FROM:<a@b.example>", "QUIT")], greet=False)
        got = ["%d %s" % (r.code, r.text) for r in res.replies]
        t.is_([r.code for r in res.replies], [220, 250, 250, 250, 250, 250, 250, 250, 450, 250, 450, 221],
              "message rate 2, recipient rate 3: the fourth RCPT and the third MAIL refused")
        t.is_(got[8] if len(got) > 8 else None, "450 4.7.1 Error: too many recipients from 198.51.100.40",
              "Postfix's RCPT text")
        t.is_(got[10] if len(got) > 10 else None, "450 4.7.1 Error: too much mail from 198.51.100.40",
              "Postfix's MAIL text")
        t.like(srv.log(), r"warning: Recipient address rate limit exceeded: 4 from unknown\[198\.51\.100\.40\]",
               "recipient warning", re.M)
        t.like(srv.log(), r"warning: Message delivery request rate limit exceeded: 3 from "
               r"unknown\[198\.51\.100\.40\]", "message warning", re.M)
        res = srv.session([v1("127.0.0.1") + lines(
            "EHLO c.example", "MAIL FROM:<a@b.example>", "RSET", "MAIL FROM:<a@b.example>", "RSET",
            "MAIL FROM:<a@b.example>", "RCPT TO:<u1@example.com>", "RCPT TO:<u2@example.com>",
            "RCPT TO:<u3@example.com>", "RCPT TO:<u4@example.com>", "QUIT")], greet=False)
        t.ok(all(r.code in (220, 250, 221) for r in res.replies) and len(res.replies) == 12,
             "127.0.0.1 (mynetworks, the default exceptions): never limited", res.codes)


def concurrent(srv, n, fn):
    """Run fn(i) in n threads started together; their results."""
    out = [None] * n
    go = threading.Event()

    def run(i):
        go.wait()
        try:
            out[i] = fn(i)
        except Exception as e:   # noqa: BLE001 - reported as the result
            out[i] = repr(e)
    ths = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for th in ths:
        th.start()
    go.set()
    for th in ths:
        th.join(60)
    return out


def test_fifty(t):
    addr = "198.51.100.50"
    n = 10 if VALGRIND else 50
    with Server(t, conf=dict(BASE, smtpd_client_connection_rate_limit=str(n)), name="fifty") as srv:
        def session(i):
            t0 = time.monotonic()
            c, r = connect(srv, addr, 43000 + i)
            wait = time.monotonic() - t0
            ok = r.code == 220
            for line in ("EHLO c%d.example" % i, "MAIL FROM:<a@b.example>", "RCPT TO:<u@example.com>", "DATA"):
                ok = ok and c.cmd(line).code in (250, 354)
            if ok:
                c.send(msg("fifty %d" % i) + b".\r\n")
                ok = c.reply().code == 250 and c.cmd("QUIT").code == 221
            c.close()
            return ok, wait
        res = concurrent(srv, n, session)
        srv.wait_sessions(20 * SLOW)
        good = [r for r in res if isinstance(r, tuple) and r[0]]
        t.is_(len(good), n, "%d sessions of one client at once (rate limit %d): each message accepted" % (n, n))
        waits = sorted(r[1] for r in good)
        t.note("connect to greeting: median %.3fs, max %.3fs" % (waits[len(waits) // 2], waits[-1])
               if waits else "no waits")
        t.is_(srv.count_new(), n, "%d files in new/" % n)
        t.is_(once(srv, addr), TOO_MANY % addr, "connection %d is the one refused: no count lost" % (n + 1))
        t.is_(counts(srv, addr), [n + 1, 0, 0], "the table holds exactly %d connections" % (n + 1))
        t.unlike(srv.log(), r"anvil/clients: busy", "no session waited for the table past its bound")
    with Server(t, conf=dict(BASE, smtpd_client_connection_count_limit=str(n)), name="fifty held") as srv:
        held = concurrent(srv, n, lambda i: connect(srv, addr, 44000 + i))
        t.ok(all(isinstance(h, tuple) and h[1].code == 220 for h in held),
             "%d held at once (count limit %d): each greeted" % (n, n))
        t.is_(once(srv, addr), TOO_MANY % addr, "one more at once: refused (no count lost)")
        for h in held:
            if isinstance(h, tuple):
                h[0].close()
        t.unlike(srv.log(), r"anvil/clients: busy", "no busy table")


def lock_table(path):
    """Hold an open-file lock on the table's first byte (as a session
    does while it counts); the descriptor."""
    fd = os.open(path, os.O_RDWR)
    fl = struct.pack("hhxxxxqqixxxx", fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0)
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, fl)
    return fd


def test_table(t):
    with Server(t, conf=dict(BASE, smtpd_client_connection_rate_limit="1"), name="table") as srv:
        path = table_path(srv)
        uid, gid = smap_ids()
        t.ok(once(srv, "198.51.100.60").startswith("220 ") and os.path.getsize(path) == 16 + 768 * 40,
             "the first session makes the table (30736 bytes)")
        st = os.lstat(path)
        t.ok(st.st_uid == uid and st.st_mode & 0o777 == 0o600, "the table is smap's, mode 0600")
        for name, data in (("garbage", os.urandom(30736)), ("a short file", b"smap"), ("a bigger file",
                           os.urandom(100000))):
            with open(path, "wb") as f:
                f.write(data)
            n = srv.log().count("not a table of client counts: rebuilt")
            ok = once(srv, "198.51.100.61").startswith("220 ")
            t.ok(ok and srv.log().count("not a table of client counts: rebuilt") == n + 1 and
                 table(srv) is not None and os.path.getsize(path) == 30736,
                 "%s: rebuilt, the session served" % name)
        t.is_(once(srv, "198.51.100.61"), TOO_MANY % "198.51.100.61", "the rebuilt table counts")
        os.unlink(path)
        victim = os.path.join(srv.dir, "victim")
        os.symlink(victim, path)
        got = [once(srv, "198.51.100.62") for _ in range(2)]
        t.ok(all(g.startswith("220 ") for g in got) and not os.path.exists(victim),
             "a symbolic link: never followed, no limits", got)
        t.like(srv.log(), r"warning: anvil/clients: (Too many levels of symbolic links|Symbolic link loop); no client limits",
               "... warned", re.M)
        os.unlink(path)
        once(srv, "198.51.100.63")
        fd = lock_table(path)
        try:
            t0 = time.monotonic()
            got = [once(srv, "198.51.100.63") for _ in range(2)]
            took = (time.monotonic() - t0) / 2
        finally:
            os.close(fd)
        t.ok(all(g.startswith("220 ") for g in got), "a table kept locked: served without the limits", got)
        t.ok(took < 2.0, "... each session delayed by the bound, not more: %.2fs a session" % took)
        t.like(srv.log(), r"warning: anvil/clients: busy; no client limits this time", "... warned", re.M)
        t.is_(once(srv, "198.51.100.63"), TOO_MANY % "198.51.100.63", "unlocked: counted again")


def main(t):
    if os.geteuid() != 0:
        t.skip("needs root")
        return
    t.run("rate", test_rate, t)
    t.run("count", test_count, t)
    t.run("mail rcpt", test_mail_rcpt, t)
    t.run("fifty", test_fifty, t)
    t.run("table", test_table, t)


TAP(watchdog=200).main(main)
