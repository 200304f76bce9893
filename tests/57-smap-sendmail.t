#!/usr/bin/env python3
# 57-smap-sendmail.t - smap-sendmail, the sendmail command of an isolated
# host, against the real smap on loopback: options (unknown ones are
# usage errors, never recipients), the header work (Bcc gone, Date,
# Message-ID and From only when missing, line ends, dots), the sender
# policy, exit statuses against a scripted server (4xx, 5xx, garbage,
# silence, a lost connection before and after the 250), then real
# callers end to end: bsd-mailx's mail and a cron-style -t with Bcc,
# through smap and smapd to a real Postfix; the relay stopped for a
# while (exit 0, the message waits in smapd's queue and is delivered
# once when the relay is back); smap down (exit 75, said plainly).
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, HOSTNAME, REPO, VALGRIND, free_port, sanitizer_hits  # noqa: E402
from postfix import Postfix, DOMAIN, split_message, header  # noqa: E402
from smapdtest import Smapd, queue_ids, state_ids, smapd_log, wait_until  # noqa: E402

SM = os.path.abspath(os.environ.get("SMAP_SENDMAIL_BIN") or
                     os.path.join(REPO, "smapd", "smap-sendmail"))
MAILX = shutil.which("bsd-mailx") or "/usr/bin/bsd-mailx"
SAN_HITS = []
EX_USAGE, EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE, EX_TEMPFAIL, EX_CONFIG = 64, 65, 67, 69, 75, 78


def env():
    e = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TZ": "UTC", "LC_ALL": "C"}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        if os.environ.get(k):
            e[k] = os.environ[k]
    return e


def sm(args, data=b"", conf=None, user=None, prog=None, timeout=60, vg=True):
    """Run smap-sendmail (prog: a path to run it by, e.g. a link);
    returns (exit status, stderr as text)."""
    argv = [prog or SM] + (["-C", conf] if conf else []) + list(args)
    pre = ["setpriv", "--reuid=" + user, "--regid=" + user_group(user), "--clear-groups"] if user else []
    p = subprocess.run(pre + (VALGRIND if vg else []) + argv, input=data, capture_output=True,
                       timeout=timeout, env=env())
    err = p.stderr.decode("latin-1")
    SAN_HITS.extend(sanitizer_hits(err))
    return p.returncode, err


def user_group(user):
    import grp
    import pwd
    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


def point(srv, port=None):
    """smap's config (which smap-sendmail reads too) names its port."""
    with open(srv.conffile, "a") as f:
        f.write("submit_server = [127.0.0.1]:%d\n" % (port or srv.port))


def new_files(srv, before):
    return {n: f for n, f in srv.spool_files().items() if n not in before}


def fields(msg):
    """[(name, raw)] of a message's header (spool or Maildir bytes)."""
    return split_message(msg)[0]


def names(msg):
    return [n.lower() for n, _ in fields(msg)]


def one_new(t, srv, before, desc):
    got = new_files(srv, before)
    t.is_(len(got), 1, "%s: one new spool file" % desc)
    return next(iter(got.values())) if len(got) == 1 else None


# --------------------------------------------------------------------------
# options


def test_usage(t, srv):
    before = srv.list_new()
    cases = [
        (["-x", "a@x.example"], "unknown option -x"),
        (["-f"], "option -f needs a value"),
        (["a@x.example", "-oi"], "-oi: options come before the recipients"),
        ([], "no recipients"),
        (["-bs"], "not supported"),
        (["-bd"], "not supported"),
        (["-q30m"], "-q takes no interval"),
        (["-B", "9BIT", "a@x.example"], "7BIT or 8BITMIME"),
        (["-N", "sometimes", "a@x.example"], "never, or success"),
        (["-oQ/tmp", "a@x.example"], "not a sendmail option"),
        (["-O", "DeliveryMode=b", "a@x.example"], "unknown option -O"),
        (["-X", os.path.join(srv.dir, "traffic"), "a@x.example"], "unknown option -X"),
        (["-d0.1", "a@x.example"], "unknown option -d"),
        (["-bp", "a@x.example"], "take no recipients"),
        (["-f", "a b", "a@x.example"], "-f a b: "),
    ]
    errs = []
    for args, want in cases:
        rc, err = sm(args, b"Subject: usage\n\nx\n", conf=srv.conffile)
        t.is_(rc, EX_USAGE, "usage: %s exits 64" % " ".join(args))
        t.like(err, re.escape(want), "usage: %s says %r" % (" ".join(args), want))
        errs.append(err)
    t.ok("usage: smap-sendmail" in errs[0], "an unknown option prints the synopsis")
    t.ok(not os.path.exists(os.path.join(srv.dir, "traffic")), "-X wrote no file")
    t.is_(new_files(srv, before), {}, "usage errors: nothing reached smap")
    rc, err = sm(["-t"], b"Subject: x\n\n", conf="/nonexistent/smap.conf")
    t.ok(rc == EX_CONFIG and "/nonexistent/smap.conf" in err, "a missing -C file: exit 78, named", err)


def test_ignored(t, srv):
    before = srv.list_new()
    args = ["-oem", "-oep", "-odi", "-odb", "-odq", "-om", "-v", "-n", "-m", "-U", "-B", "8BITMIME",
            "-B7BIT", "-N", "success,failure,delay", "-Nnever", "-R", "hdrs", "-V", "envid1", "-h", "3",
            "-L", "tag", "-A", "m", "-bm", "-oi", "--", "ignored@x.example"]
    rc, err = sm(args, b"Subject: ignored options\n\nbody\n", conf=srv.conffile)
    t.is_((rc, err), (0, ""), "accepted-and-ignored options: exit 0, nothing said")
    f = one_new(t, srv, before, "ignored options")
    if f:
        t.is_(f.rcpt, ["<ignored@x.example>"], "ignored options: the one recipient after --")


def test_modes(t, srv):
    links = tempfile.mkdtemp(prefix="smaptest-sm.", dir=srv.dir)
    for n in ("mailq", "newaliases"):
        os.symlink(SM, os.path.join(links, n))
    rc, err = sm(["-bi"])
    t.ok(rc == 0 and "no alias database" in err, "-bi: exit 0, says there are no aliases", err)
    rc, err = sm([], prog=os.path.join(links, "newaliases"))
    t.is_(rc, 0, "called as newaliases: exit 0")
    smapq = os.path.join(REPO, "smapd", "smapq")
    p = subprocess.run([smapq, "-c", srv.conffile, "list"], capture_output=True, timeout=30, env=env())
    for how, kw in (("-bp", {"args": ["-bp"]}), ("mailq", {"args": [], "prog": os.path.join(links, "mailq")})):
        q = subprocess.run([kw.get("prog") or SM, "-C", srv.conffile] + kw["args"], capture_output=True,
                           timeout=30, env=env())
        t.ok(q.returncode == p.returncode and q.stdout == p.stdout and p.stdout,
             "%s: runs smapq list (the same output, exit %d)" % (how, p.returncode),
             "smapq: %r\n%s: %d %r %r" % (p.stdout[-300:], how, q.returncode, q.stdout[-300:], q.stderr))
    flush = os.path.join(srv.spool, "queue", ".flush")
    if os.path.exists(flush):
        os.unlink(flush)
    rc, err = sm(["-q"], conf=srv.conffile)
    t.ok(rc == 0 and os.path.exists(flush), "-q: smapq flush (exit 0, queue/.flush made)", err)


def test_alternatives(t, srv):
    """The README's update-alternatives command, in a private root (its
    own --altdir and --admindir): sendmail and mailq then run it."""
    ua = shutil.which("update-alternatives")
    if not ua:
        t.skip("no update-alternatives")
        return
    root = tempfile.mkdtemp(prefix="alt.", dir=srv.dir)
    for d in ("alt", "admin", "usr/sbin", "usr/bin"):
        os.makedirs(os.path.join(root, d))
    r = lambda p: os.path.join(root, p)  # noqa: E731
    p = subprocess.run([ua, "--altdir", r("alt"), "--admindir", r("admin"), "--install", r("usr/sbin/sendmail"),
                        "sendmail", SM, "25", "--slave", r("usr/bin/mailq"), "mailq", SM,
                        "--slave", r("usr/sbin/newaliases"), "newaliases", SM],
                       capture_output=True, timeout=30, env=env())
    t.is_(p.returncode, 0, "update-alternatives --install sendmail ... (a private root)")
    before = srv.list_new()
    rc, err = sm(["-C", srv.conffile, "-t", "-i"], b"To: alt@x.example\nSubject: via alternatives\n\nx\n",
                 prog=r("usr/sbin/sendmail"))
    t.is_((rc, err), (0, ""), "sendmail (the alternative) -t -i: exit 0")
    f = one_new(t, srv, before, "sendmail alternative")
    if f:
        t.is_(f.rcpt, ["<alt@x.example>"], "sendmail alternative: queued for the To: address")
    q = subprocess.run([r("usr/bin/mailq"), "-C", srv.conffile], capture_output=True, timeout=30, env=env())
    t.like(q.stdout.decode("latin-1"), r"-- \d+ Kbytes in \d+ Requests\.|Mail queue is empty",
           "mailq (the alternative slave): smapq's listing")


def test_setuid(t, srv):
    copy = os.path.join(srv.dir, "smap-sendmail.suid")
    shutil.copy(SM, copy)
    os.chmod(copy, 0o4755)
    rc, err = sm(["-t"], b"Subject: x\n\n", conf=srv.conffile, user="nobody", prog=copy, vg=False)
    t.ok(rc == EX_CONFIG and "set-uid" in err, "installed set-uid: refuses to run (78)", "%d %s" % (rc, err))
    os.unlink(copy)
    # file capabilities are privilege too: AT_SECURE says so, uid == euid does not
    copy = os.path.join(srv.dir, "smap-sendmail.cap")
    shutil.copy(SM, copy)
    os.chmod(copy, 0o755)
    p = subprocess.run(["setcap", "cap_net_bind_service+ep", copy], capture_output=True, timeout=30, env=env())
    t.ok(p.returncode == 0, "setcap on a copy", p.stderr)
    rc, err = sm(["-bi"], conf=srv.conffile, user="nobody", prog=copy, vg=False)
    t.ok(rc == EX_CONFIG and "file capabilities" in err, "with a file capability: refuses to run (78)",
         "%d %s" % (rc, err))
    os.unlink(copy)


def test_conf_owner(t, srv):
    """-C from a user other than root: a file that user could write (or
    own) would choose the log file and the server (the CVE-2016-10033
    class): refused, nothing written, nothing sent."""
    import pwd
    d = tempfile.mkdtemp(prefix="conf-owner.", dir=srv.dir)
    os.chmod(d, 0o777)
    log = os.path.join(d, "shell.php")
    before = srv.list_new()
    for desc, owner, mode in (("owned by the caller", "nobody", 0o644), ("root's, writable by others", "root", 0o666),
                              ("root's, writable by its group", "root", 0o664)):
        path = os.path.join(d, "evil-%s.conf" % owner)
        with open(path, "w") as f:
            f.write(open(srv.conffile).read() + "maillog_file = %s\nsmapd_user = nobody\n" % log)
        os.chown(path, pwd.getpwnam(owner).pw_uid, 0)
        os.chmod(path, mode)
        rc, err = sm(["-f", "ceo@corp.example", "owner@x.example"], b"Subject: -C\n\nx\n", conf=path, user="nobody")
        t.ok(rc == EX_CONFIG and "must be owned by root" in err, "-C %s, from nobody: exit 78, said" % desc,
             "%d %s" % (rc, err))
        os.unlink(path)
    t.ok(not os.path.exists(log), "-C refused: no log file written where it said")
    t.is_(new_files(srv, before), {}, "-C refused: nothing reached smap")


# --------------------------------------------------------------------------
# the message, at smap


def test_headers(t, srv):
    before = srv.list_new()
    msg = (b"To: Ann <ann@x.example>, root\nCc: \"Doe, John\" <jd@y.example>\n"
           b"Bcc: hidden@z.example,\n  other-hidden@z.example\nSubject: header work\n\n"
           b"line one\n.hidden\n.\nafter a lone dot\r\nbare\rcr\n")
    rc, err = sm(["-t", "-i", "-FCron Daemon", "extra@w.example"], msg, conf=srv.conffile)
    t.is_((rc, err), (0, ""), "-t -i: exit 0")
    f = one_new(t, srv, before, "-t")
    if not f:
        return
    t.is_(sorted(f.rcpt), sorted(["<ann@x.example>", "<root@%s>" % HOSTNAME, "<jd@y.example>",
                                  "<hidden@z.example>", "<other-hidden@z.example>", "<extra@w.example>"]),
          "-t: the envelope is To, Cc, Bcc and the argument; root qualified with myhostname")
    t.is_(f.env.get("from"), "<root@%s>" % HOSTNAME, "the sender is root@myhostname")
    body = f.body()
    hdr = names(body)
    t.ok("bcc" not in hdr and b"hidden@z.example" not in body, "Bcc: is gone, with its continuation",
         body[:600])
    for n in ("date", "message-id", "from"):
        t.is_(hdr.count(n), 1, "%s: added once" % n)
    t.like(header(body, "Date"), r"^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000$",
           "Date: in RFC 5322 form (TZ=UTC)")
    t.like(header(body, "Message-ID"), r"^<\d{14}\.[0-9a-f]{16}@%s>$" % re.escape(HOSTNAME),
           "Message-ID: <stamp.random@myhostname>")
    t.is_(header(body, "From"), "\"Cron Daemon\" <root@%s>" % HOSTNAME, "From: with -F's name")
    t.is_(header(body, "To"), "Ann <ann@x.example>, root", "To: is passed on unchanged")
    text = split_message(body)[1]
    t.is_(text, b"line one\r\n.hidden\r\n.\r\nafter a lone dot\r\nbare\r\ncr\r\n",
          "body: LF, CRLF and a lone CR all became CRLF; dots kept (stuffed on the wire)")
    t.ok(b"\n" not in body.replace(b"\r\n", b""), "no bare LF anywhere in what smap stored")


def test_keep_and_dots(t, srv):
    before = srv.list_new()
    msg = (b"From: Reports <reports@x.example>\nDate: Mon, 23 Nov 2026 05:00:00 +0000\n"
           b"Message-ID: <kept@x.example>\nSubject: kept\n\nfirst\n.\nnot sent\n")
    rc, err = sm(["kept@x.example"], msg, conf=srv.conffile)
    t.is_(rc, 0, "without -i: exit 0")
    f = one_new(t, srv, before, "without -i")
    if f:
        body = f.body()
        t.is_([names(body).count(n) for n in ("date", "message-id", "from")], [1, 1, 1],
              "Date, Message-ID and From present: none added")
        t.is_(header(body, "Message-ID"), "<kept@x.example>", "the caller's Message-ID is kept")
        t.is_(split_message(body)[1], b"first\r\n", "without -i a lone '.' line ends the message")
    before = srv.list_new()
    rc, err = sm(["nohdr@x.example"], b"just text, no header\n", conf=srv.conffile)
    f = one_new(t, srv, before, "no header") if rc == 0 else None
    t.ok(f and split_message(f.body())[1] == b"just text, no header\r\n" and
         "date" in names(f.body()), "a message without a header: fields added, then the text as body")
    before = srv.list_new()
    rc, err = sm(["eight@x.example"], "Subject: caf\u00e9\n\nna\u00efve\n".encode(), conf=srv.conffile)
    f = one_new(t, srv, before, "8-bit") if rc == 0 else None
    t.ok(f and f.env.get("body") == "8BIT", "8-bit bytes: sent with BODY=8BITMIME",
         f.env if f else rc)


def test_refused_input(t, srv, small):
    before = srv.list_new()
    for args, data, want, desc in (
            (["-t"], b"To: John Doe\n\nx\n", "To: John Doe: a name without an address",
             "a name without an address in To:"),
            (["-t"], b"Subject: nobody\n\nx\n", "no recipients", "-t without recipients"),
            (["|/bin/sh@x.example"], b"x\n", "may not start", "a pipe recipient"),
            (["a%b@x.example"], b"x\n", "Unsafe", "the percent hack"),
            (["\"q\"@x.example"], b"x\n", "Quoted", "a quoted local part"),
            (["--", "-oi@x.example"], b"x\n", "may not start", "an option-like recipient after --")):
        rc, err = sm(args, data, conf=srv.conffile)
        t.ok(rc == EX_DATAERR and want in err, "%s: exit 65, %r" % (desc, want), "%d %s" % (rc, err))
    t.is_(new_files(srv, before), {}, "refused input: nothing reached smap")
    before = small.list_new()
    rc, err = sm(["big@x.example"], b"Subject: big\n\n" + b"x" * 3000 + b"\n", conf=small.conffile)
    t.ok(rc == EX_DATAERR and "message_size_limit (2048 bytes)" in err,
         "over message_size_limit: exit 65 before smap is asked", "%d %s" % (rc, err))
    rc, err = sm(["-t"], b"To: a@x.example, b@x.example, c@x.example, d@x.example\n\nx\n",
                 conf=small.conffile)
    t.ok(rc == EX_DATAERR and "more than 3 recipients" in err,
         "more than smtpd_recipient_limit: exit 65", "%d %s" % (rc, err))
    t.is_(new_files(small, before), {}, "too big, too many: nothing reached smap")


def test_sender_policy(t, srv):
    cases = [
        ("root", ["-f", "alerts@corp.example"], "<alerts@corp.example>", ""),
        ("root", ["-f", "<>"], "<>", ""),
        ("nobody", [], "<nobody@%s>" % HOSTNAME, ""),
        ("nobody", ["-r", "nobody"], "<nobody@%s>" % HOSTNAME, ""),
        ("nobody", ["-f", ""], "<>", ""),
        ("nobody", ["-f", "ceo@corp.example"], "<nobody@%s>" % HOSTNAME,
         "warning: nobody may not send as <ceo@corp.example>"),
        ("smapd", ["-f", "reports@corp.example"], "<reports@corp.example>", ""),
    ]
    for user, args, want, warn in cases:
        before = srv.list_new()
        rc, err = sm(args + ["policy@x.example"], b"Subject: sender\n\nx\n", conf=srv.conffile,
                     user=None if user == "root" else user)
        f = one_new(t, srv, before, "sender %s %s" % (user, args)) if rc == 0 else None
        t.ok(rc == 0 and f and f.env.get("from") == want and (warn in err if warn else err == ""),
             "sender policy: %s with %s sends as %s%s" % (user, " ".join(args) or "no -f", want,
                                                         ", with a warning" if warn else ""),
             "rc %d from %s err %r" % (rc, f.env.get("from") if f else None, err))
    rc, err = sm(["log@x.example"], b"Subject: log\n\nx\n", conf=srv.conffile)
    t.like(srv.log(), r"smap/sendmail\[\d+\]: [0-9A-F]+: uid=0 username=root from=<root@%s> nrcpt=1 "
           r"size=\d+" % re.escape(HOSTNAME), "logged: queue id, uid, user, sender, recipients")


def test_relay_refused(t):
    """smap refuses the recipient (submit_server not in mynetworks)."""
    with Server(t, conf={"mynetworks": "192.0.2.0/24", "relay_domains": "ok.example"},
                name="smap-57-norelay") as srv:
        point(srv)
        rc, err = sm(["a@ok.example", "x@elsewhere.example"], b"Subject: relay\n\nx\n", conf=srv.conffile)
        t.ok(rc == EX_NOUSER and re.search(r"answered RCPT TO:<x@elsewhere\.example> with 5\d\d", err),
             "a recipient smap refuses (relay denied): exit 67, smap's reply said", "%d %s" % (rc, err))
        t.is_(srv.count_new(), 0, "a refused recipient: nothing queued for the other one either")
        rc, err = sm(["a@ok.example"], b"Subject: relay\n\nx\n", conf=srv.conffile)
        t.is_((rc, srv.count_new()), (0, 1), "the accepted recipient alone: exit 0, queued")


# --------------------------------------------------------------------------
# exit statuses against a scripted server


class Scripted:
    """A scripted SMTP server on 127.0.0.1, one connection at a time.
    replies: {"greeting"|"EHLO"|"HELO"|"MAIL"|"RCPT"|"DATA"|"END"|"QUIT":
    bytes (CRLF added), "silent" (say nothing, hold the line) or "close"}."""

    DEFAULT = {"greeting": b"220 fake.test ESMTP", "EHLO": b"250-fake.test\r\n250-SIZE 1000000\r\n250 8BITMIME",
               "HELO": b"250 fake.test", "MAIL": b"250 2.1.0 Ok", "RCPT": b"250 2.1.5 Ok",
               "DATA": b"354 End data with <CR><LF>.<CR><LF>", "END": b"250 2.0.0 Ok: queued as 0A1B2C3D",
               "QUIT": b"221 2.0.0 Bye", "RSET": b"250 Ok", "NOOP": b"250 Ok"}

    def __init__(self, **replies):
        self.replies = dict(self.DEFAULT)
        self.replies.update(replies)
        self.commands = []
        self.data = b""
        self.stop_ev = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_ev.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            try:
                self._serve(conn)
            except OSError:
                pass
            finally:
                conn.close()

    def _say(self, conn, key):
        r = self.replies[key]
        if r == "silent":
            self.stop_ev.wait(30)
            return False
        if r == "close":
            return False
        conn.sendall(r + b"\r\n")
        return True

    def _serve(self, conn):
        conn.settimeout(10)
        buf = b""
        if not self._say(conn, "greeting"):
            return
        indata = False
        for _ in range(10000):
            if indata:
                end = buf.find(b"\r\n.\r\n")
                if end < 0:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                    continue
                self.data, buf, indata = buf[:end + 2], buf[end + 5:], False
                if not self._say(conn, "END"):
                    return
                continue
            i = buf.find(b"\r\n")
            if i < 0:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                continue
            line, buf = buf[:i], buf[i + 2:]
            self.commands.append(line)
            verb = line.split(b" ")[0].split(b":")[0].upper().decode("latin-1")
            if not self._say(conn, verb if verb in self.replies else "NOOP"):
                return
            if verb == "DATA" and self.replies["DATA"][:1] == b"3":
                indata = True
            if verb == "QUIT":
                return

    def stop(self):
        self.stop_ev.set()
        self.thread.join(5)
        self.sock.close()


def scripted_conf(srv, port, name, extra=""):
    path = os.path.join(srv.dir, name + ".conf")
    with open(path, "w") as f:
        f.write("myhostname = %s\nspool_directory = %s\nsubmit_server = [127.0.0.1]:%d\n"
                "smtp_helo_timeout = 2s\nsmtp_data_done_timeout = 2s\nsmtp_connect_timeout = 2s\n%s"
                % (HOSTNAME, srv.spool, port, extra))
    return path


def test_scripted(t, srv):
    msg = b"Subject: scripted\n\n.leading dot\nline\n"
    cases = [
        ("greeting 421", {"greeting": b"421 4.3.2 busy"}, EX_TEMPFAIL, r"answered the connection with 421"),
        ("greeting 554", {"greeting": b"554 5.7.1 go away"}, EX_UNAVAILABLE, r"with 554 5\.7\.1 go away"),
        ("MAIL 451", {"MAIL": b"451 4.3.0 later"}, EX_TEMPFAIL, r"MAIL FROM:<root@\S+> SIZE=\d+ with 451"),
        ("MAIL 552", {"MAIL": b"552 5.3.4 too big"}, EX_DATAERR, r"with 552 5\.3\.4"),
        ("RCPT 452", {"RCPT": b"452 4.5.3 too many"}, EX_TEMPFAIL, r"RCPT TO:<s@x\.example> with 452"),
        ("RCPT 550", {"RCPT": b"550 5.1.1 no such user"}, EX_NOUSER, r"with 550 5\.1\.1 no such user"),
        ("DATA 554", {"DATA": b"554 5.5.1 no valid recipients"}, EX_UNAVAILABLE, r"answered DATA with 554"),
        ("end 451", {"END": b"451 4.3.0 disk trouble"}, EX_TEMPFAIL, r"end of the message with 451"),
        ("end 554", {"END": b"554 5.6.0 content refused"}, EX_DATAERR, r"end of the message with 554"),
        ("garbage", {"greeting": b"hello there"}, EX_TEMPFAIL, r"its reply is not SMTP"),
        ("bare LF reply", {"MAIL": b"250 ok\n250 again"}, EX_TEMPFAIL, r"its reply is not SMTP"),
        ("silent greeting", {"greeting": "silent"}, EX_TEMPFAIL, r"no reply within 2s"),
        ("silent after data", {"END": "silent"}, EX_TEMPFAIL, r"no reply within 2s"),
        ("closed after data", {"END": "close"}, EX_TEMPFAIL, r"the connection was closed"),
        ("250 sent ahead with the 354", {"DATA": b"354 go ahead\r\n250 2.0.0 Ok: queued as EARLY", "END": "silent"},
         EX_TEMPFAIL, r"spoke before the end of the message"),
        ("closed at QUIT, after the 250", {"QUIT": "close"}, 0, None),
        ("silent at QUIT, after the 250", {"QUIT": "silent"}, 0, None),
        ("EHLO refused: HELO", {"EHLO": b"502 5.5.2 no EHLO here"}, 0, None),
    ]
    for desc, replies, want, text in cases:
        fake = Scripted(**replies)
        try:
            conf = scripted_conf(srv, fake.port, "scripted")
            t0 = time.monotonic()
            rc, err = sm(["s@x.example"], msg, conf=conf, timeout=60)
            took = time.monotonic() - t0
        finally:
            fake.stop()
        ok = rc == want and (text is None or re.search(text, err)) and took < 20
        t.ok(ok, "scripted %s: exit %d%s" % (desc, want, ", reply said" if text else ""),
             "rc %d in %.1fs: %s" % (rc, took, err))
        if want == EX_TEMPFAIL:
            t.like(err, r"not sent: .*Nothing was queued: try again later", "scripted %s: 'try again later'" % desc)
        if desc.startswith("EHLO refused"):
            cmds = [c.split(b" ")[0] for c in fake.commands]
            t.is_(cmds[:3], [b"EHLO", b"HELO", b"MAIL"], "EHLO refused: HELO, then MAIL")
            t.ok(b"SIZE=" not in fake.commands[2], "after HELO: no SIZE= (not offered)")
        if desc.startswith("closed at QUIT"):
            t.ok(b"\r\n..leading dot\r\n" in fake.data, "on the wire: a leading dot is stuffed", fake.data[-300:])
            t.ok(not [c for c in fake.commands if c.startswith(b"RSET")], "one transaction, no RSET")
    # a 5xx RCPT among others: QUIT follows, no DATA
    fake = Scripted(RCPT=b"550 5.1.1 nope")
    try:
        rc, err = sm(["a@x.example", "b@x.example"], msg, conf=scripted_conf(srv, fake.port, "scripted"))
    finally:
        fake.stop()
    t.is_([c.split(b" ")[0].split(b":")[0] for c in fake.commands], [b"EHLO", b"MAIL", b"RCPT", b"QUIT"],
          "5xx to the first RCPT: nothing more than QUIT (no partial transaction)")
    rc, err = sm(["a@x.example"], msg, conf=scripted_conf(srv, 1, "scripted-bad", "submit_server = localhost:25\n"))
    t.ok(rc == EX_CONFIG and "no names are looked up" in err, "submit_server by name: exit 78", err)


# --------------------------------------------------------------------------
# real callers, end to end


def mailx_rc(srv):
    """A mail.rc that points bsd-mailx at smap-sendmail with smap's config
    (a wrapper adds -C; the host's /usr/sbin/sendmail is not touched)."""
    wrapper = os.path.join(srv.dir, "sendmail-wrapper")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec %s -C %s \"$@\"\n" % (SM, srv.conffile))
    os.chmod(wrapper, 0o755)
    rc = os.path.join(srv.dir, "mail.rc")
    with open(rc, "w") as f:
        f.write("set sendmail=%s\n" % wrapper)
    return rc


def queued(srv):
    return [n for n in queue_ids(srv) if not n.startswith(".")]


def at(u):
    return "%s@%s" % (u, DOMAIN)


def wait_mid(pf, user, mid, n=1, timeout=20):
    def count():
        return sum(1 for _, d in pf.messages(user) if header(d, "Message-ID") == mid)
    wait_until(lambda: count() >= n, timeout)
    return count()


def check_delivered(t, pf, users, mid, desc):
    for u in users:
        got = [d for _, d in pf.messages(u) if header(d, "Message-ID") == mid]
        t.is_(len(got), 1, "%s: delivered once to %s" % (desc, u))
        if got:
            t.ok("bcc" not in names(got[0]), "%s: no Bcc: in %s's copy" % (desc, u))
            t.like(header(got[0], "Date") or "", r"\d{4} \d\d:\d\d:\d\d [+-]\d{4}", "%s: Date: present" % desc)


def test_mailx(t, srv, pf):
    rcfile = mailx_rc(srv)
    home = tempfile.mkdtemp(prefix="home.", dir=srv.dir)
    p = subprocess.run([MAILX, "-s", "mailx report", "-c", at("b"), "-b", at("c"), "--", at("a")],
                       input=b"sent with bsd-mailx\n.\nafter a lone dot\n", capture_output=True, timeout=60,
                       env=dict(env(), HOME=home, MAILRC=rcfile))
    t.ok(p.returncode == 0, "bsd-mailx -s -c -b: exit 0", p.stderr)
    for u in ("a", "b", "c"):
        pf.wait_messages(u, 1, 20)
    msgs = {u: [d for _, d in pf.messages(u) if header(d, "Subject") == "mailx report"] for u in "abc"}
    t.is_([len(msgs[u]) for u in "abc"], [1, 1, 1], "bsd-mailx: To, Cc and Bcc recipients each got one copy")
    if msgs["c"]:
        d = msgs["c"][0]
        t.ok("bcc" not in names(d), "bsd-mailx: Bcc: is not in the copy (mailx runs sendmail -t)")
        t.like(header(d, "Message-ID") or "", r"^<\d{14}\.[0-9a-f]{16}@%s>$" % re.escape(HOSTNAME),
               "bsd-mailx: Message-ID added")
        t.ok(header(d, "Date"), "bsd-mailx: Date: present")
        t.like(header(d, "From") or "", r"^(\"root\" )?<?root@%s>?$" % re.escape(HOSTNAME),
               "bsd-mailx: From: root@myhostname added")
        t.ok(b"\n.\nafter a lone dot\n" in split_message(d)[1], "bsd-mailx: -i: a lone dot is text")


def test_cron(t, srv, pf):
    mid = "<cron-57@%s>" % HOSTNAME
    msg = ("To: %s\nBcc: %s\nSubject: Cron <root@host> run-parts /etc/cron.daily\n"
           "Message-ID: %s\nContent-Type: text/plain; charset=UTF-8\n\n"
           "/etc/cron.daily/logrotate:\nerror: skipping\n" % (at("a"), at("b"), mid)).encode()
    rc, err = sm(["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "-t"], msg, conf=srv.conffile)
    t.is_((rc, err), (0, ""), "cron-style -FCronDaemon -i -B8BITMIME -oem -t: exit 0")
    wait_mid(pf, "a", mid)
    wait_mid(pf, "b", mid)
    check_delivered(t, pf, ("a", "b"), mid, "cron -t with Bcc")
    got = [d for _, d in pf.messages("b") if header(d, "Message-ID") == mid]
    if got:
        t.is_(header(got[0], "From"), "\"CronDaemon\" <root@%s>" % HOSTNAME, "cron: From: with -F's name")
        t.is_(header(got[0], "To"), at("a"), "cron: To: unchanged in the Bcc recipient's copy")


def test_relay_down(t, srv, d, pf_port):
    """The relay is stopped: exit 0 all the same; the message waits in
    smapd's queue and goes out once when the relay is back."""
    mid = "<down-57@%s>" % HOSTNAME
    msg = ("To: %s\nSubject: while the relay is down\nMessage-ID: %s\n\nstill here\n" % (at("a"), mid)).encode()
    rc, err = sm(["-t", "-oi"], msg, conf=srv.conffile)
    t.is_((rc, err), (0, ""), "relay down: smap-sendmail still exits 0 (smap has it)")
    deferred = wait_until(lambda: [l for l in smapd_log(srv) if "status=deferred" in l], 20)
    t.ok(deferred, "relay down: smapd tried and deferred it", "\n".join(smapd_log(srv)[-5:]))
    t.is_(len(queued(srv)), 1, "relay down: the message waits in smapd's queue")
    with Postfix(t, users=("a", "b", "c"), port=pf_port, name="postfix-57-back") as pf:
        rc, err = sm(["-q"], conf=srv.conffile)
        t.is_(rc, 0, "relay back: smap-sendmail -q asks smapd for a run (smapq flush)")
        n = wait_mid(pf, "a", mid, 1, 30)
        t.is_(n, 1, "relay back: delivered")
        wait_until(lambda: not queued(srv) and not state_ids(srv), 10)
        t.is_((queued(srv), state_ids(srv)), ([], []), "relay back: queue/ and state/ empty")
        rc, err = sm(["-q"], conf=srv.conffile)
        pf.wait_idle(5)
        t.is_(sum(1 for _, x in pf.messages("a") if header(x, "Message-ID") == mid), 1,
              "relay back: delivered exactly once (after another run)")


def test_smap_down(t, srv):
    """smap itself stopped (its systemd-socket-activate gone)."""
    fd, conf = tempfile.mkstemp(prefix="smaptest-57-down.", suffix=".conf")
    with os.fdopen(fd, "wb") as f, open(srv.conffile, "rb") as g:
        f.write(g.read())
    os.chmod(conf, 0o644)
    try:
        srv.stop()
        t0 = time.monotonic()
        rc, err = sm(["-t"], b"To: a@x.example\nSubject: nobody home\n\nx\n", conf=conf)
        took = time.monotonic() - t0
    finally:
        os.unlink(conf)
    t.is_(rc, EX_TEMPFAIL, "smap down: exit 75 (EX_TEMPFAIL)")
    t.like(err, r"^smap-sendmail: the message was not sent: smap at \[127\.0\.0\.1\]:%d: cannot connect: "
           r"Connection refused\. Nothing was queued: try again later\.\n$" % srv.port,
           "smap down: one plain line on stderr, saying what and what to do")
    t.ok(took < 10, "smap down: said at once (%.1fs)" % took)


def main(t):
    if not os.path.exists(SM):
        t.ok(False, "smapd/smap-sendmail is built")
        return
    with Server(t, name="smap-57") as srv, \
            Server(t, conf={"message_size_limit": 2048, "smtpd_recipient_limit": 3}, name="smap-57-small") as small:
        point(srv)
        point(small)
        t.run("usage", test_usage, t, srv)
        t.run("ignored", test_ignored, t, srv)
        t.run("modes", test_modes, t, srv)
        t.run("alternatives", test_alternatives, t, srv)
        t.run("setuid", test_setuid, t, srv)
        t.run("conf owner", test_conf_owner, t, srv)
        t.run("headers", test_headers, t, srv)
        t.run("keep and dots", test_keep_and_dots, t, srv)
        t.run("refused input", test_refused_input, t, srv, small)
        t.run("sender policy", test_sender_policy, t, srv)
        t.run("scripted", test_scripted, t, srv)
    t.run("relay refused", test_relay_refused, t)
    if not os.path.exists(MAILX):
        t.ok(False, "bsd-mailx is installed (tools/deps test)")
    with Server(t, name="smap-57-e2e") as srv:
        point(srv)
        with Postfix(t, users=("a", "b", "c"), name="postfix-57") as pf:
            pf_port = pf.port
            d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % pf.port,
                                    "minimal_backoff_time": "300s", "maximal_backoff_time": "600s",
                                    "queue_run_delay": "300s"}, name="smapd-57")
            with d:
                d.start()
                if os.path.exists(MAILX):
                    t.run("mailx", test_mailx, t, srv, pf)
                t.run("cron", test_cron, t, srv, pf)
                pf.stop()
                t.run("relay down", test_relay_down, t, srv, d, pf_port)
        t.run("smap down", test_smap_down, t, srv)
    t.ok(not SAN_HITS, "no sanitizer report from smap-sendmail", "\n".join(SAN_HITS[:20]))


TAP(watchdog=400).main(main)
