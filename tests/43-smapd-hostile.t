#!/usr/bin/env python3
# 43-smapd-hostile.t - threat model section 7: hostile files in new/
# (symlinks, hard links, FIFOs, directories, wrong owners, truncated,
# oversized, bad magic, option-like or program addresses, NUL/CR/LF in
# fields, names that are no queue id, an id that is not the name). Each
# is quarantined with a reason and a warning; valid messages placed at
# the same time are delivered (maildir: transport, no backend needed).
# Round 3: 300 valid files at once (pickup takes them 128 at a time),
# a truncated one and one whose id is already in queue/ among them:
# each valid one delivered once, the two quarantined, new/ empty.
# Round 4: a crash's leftover (a message both in queue/ and in new/)
# behind a large file, two delivery processes: delivered once, the
# original quarantined as a duplicate.
import os
import re
import stat
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import TAP, Server, smap_ids, smapd_ids  # noqa: E402
from postfix import read_maildir, header  # noqa: E402
from smapdtest import (smapd_maildir, Smapd, send, new_id, spool_bytes, place, queue_ids, state_ids,  # noqa: E402
                       quarantined, smapd_log, wait_until, spool_path, listdir)

SIZE_LIMIT = 10240      # message_size_limit for smapd here
RCPT_LIMIT = 10         # smtpd_recipient_limit
# queue.c refuses files above message_size_limit + 64 KiB + 1024 * (rcpt limit + 16)
TOO_LARGE = SIZE_LIMIT + 65536 + 1024 * (RCPT_LIMIT + 16) + 1


def good_msg(tag):
    return (b"From: a@b.example\r\nTo: u@example.com\r\nSubject: " + tag.encode() +
            b"\r\nMessage-ID: <" + tag.encode() + b"@b.example>\r\n\r\nvalid body\r\n.dot line\r\n")


def esc(name):
    """log_esc() of a name: printable ASCII but backslash as is, the rest \\xNN."""
    out = ""
    for ch in name.encode("latin-1"):
        if 0x20 <= ch < 0x7f and ch != 0x5c:
            out += chr(ch)
        else:
            out += "\\x%02x" % ch
    return out


class Case:
    def __init__(self, desc, reason, name=None):
        self.desc = desc
        self.reason = reason        # regex the .why must match (case-insensitive)
        self.name = name or new_id()


def hostile_set(srv, outside):
    """Create every hostile entry in new/; returns [Case]."""
    cases = []

    c = Case("symlink to /etc/passwd", r"symbolic link")
    place(srv, c.name, kind="symlink", target="/etc/passwd")
    cases.append(c)

    c = Case("symlink to a valid spool file", r"symbolic link")
    target = os.path.join(outside, c.name)
    with open(target, "wb") as f:
        f.write(spool_bytes(c.name, good_msg("via-symlink")))
    uid, gid = smap_ids()
    os.chown(target, uid, gid)
    os.chmod(target, 0o644)
    place(srv, c.name, kind="symlink", target=target)
    cases.append(c)

    a, b = Case("hard link, first name", r"hard link"), Case("hard link, second name", r"hard link")
    tmp = os.path.join(srv.dir, ".hardlink")
    with open(tmp, "wb") as f:
        f.write(spool_bytes(a.name, good_msg("via-hardlink")))
    os.chown(tmp, uid, gid)
    os.chmod(tmp, 0o644)
    os.link(tmp, os.path.join(srv.newdir(), a.name))
    os.link(tmp, os.path.join(srv.newdir(), b.name))
    os.unlink(tmp)
    cases += [a, b]

    c = Case("FIFO", r"not a regular file")
    place(srv, c.name, kind="fifo")
    cases.append(c)

    c = Case("directory", r"not a regular file|directory")
    d = os.path.join(srv.dir, ".dir")
    os.mkdir(d)
    os.chown(d, uid, gid)
    os.rename(d, os.path.join(srv.newdir(), c.name))
    cases.append(c)

    c = Case("owned by root, readable", r"owner")
    place(srv, c.name, spool_bytes(c.name, good_msg("root-owned")), owner="root", mode=0o644)
    cases.append(c)

    c = Case("owned by nobody, readable", r"owner")
    place(srv, c.name, spool_bytes(c.name, good_msg("nobody-owned")), owner="nobody", mode=0o644)
    cases.append(c)

    c = Case("owned by root, mode 0600", r"owner")
    place(srv, c.name, spool_bytes(c.name, good_msg("root-owned-0600")), owner="root", mode=0o600)
    cases.append(c)

    c = Case("truncated (size record larger than the body)", r"size|length|truncat")
    data = spool_bytes(c.name, good_msg("truncated"))
    place(srv, c.name, data[:-10])
    cases.append(c)

    c = Case("oversized", r"too large|size")
    body = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * (TOO_LARGE // 1000 + 1)
    place(srv, c.name, spool_bytes(c.name, body))
    cases.append(c)

    c = Case("empty file", r"truncat|empty|magic|version")
    place(srv, c.name, b"")
    cases.append(c)

    c = Case("bad magic (SMAP 2)", r"version|magic")
    place(srv, c.name, spool_bytes(c.name, good_msg("magic2"), magic="SMAP 2"))
    cases.append(c)

    c = Case("bad magic (XMAP 1)", r"version|magic")
    place(srv, c.name, spool_bytes(c.name, good_msg("magicx"), magic="XMAP 1"))
    cases.append(c)

    c = Case("option-like sender <-oQ/tmp@x.example>", r"from|sender|-")
    place(srv, c.name, spool_bytes(c.name, good_msg("option"), sender="<-oQ/tmp@x.example>"))
    cases.append(c)

    c = Case("program recipient <|/bin/sh@x.example>", r"\||rcpt|recipient|local part")
    place(srv, c.name, spool_bytes(c.name, good_msg("pipe"), rcpts=["<|/bin/sh@x.example>"]))
    cases.append(c)

    c = Case("option-like recipient <-oi@x.example>", r"-|rcpt|recipient|local part")
    place(srv, c.name, spool_bytes(c.name, good_msg("optrcpt"), rcpts=["<ok@x.example>", "<-oi@x.example>"]))
    cases.append(c)

    c = Case("NUL in the helo field", r"NUL|helo")
    place(srv, c.name, spool_bytes(c.name, good_msg("nul"), helo=b"client\x00.test"))
    cases.append(c)

    c = Case("NUL in a recipient", r"NUL")
    place(srv, c.name, spool_bytes(c.name, good_msg("nulrcpt"), rcpts=[b"<u@exa\x00mple.com>"]))
    cases.append(c)

    c = Case("CR in the sender", r"CR|from")
    place(srv, c.name, spool_bytes(c.name, good_msg("cr"), sender=b"<a@b.exa\rmple>"))
    cases.append(c)

    c = Case("LF inside the sender", r"from|sender|record")
    place(srv, c.name, spool_bytes(c.name, good_msg("lf"), sender=b"<a@b\n.example>"))
    cases.append(c)

    c = Case("LF inside a recipient", r"rcpt|recipient|record|address|bracket")
    place(srv, c.name, spool_bytes(c.name, good_msg("lfrcpt"), rcpts=[b"<u@exa\nmple.com>"]))
    cases.append(c)

    c = Case("id record does not match the file name", r"does not match|id")
    place(srv, c.name, spool_bytes(c.name, good_msg("mismatch"), id_record=new_id()))
    cases.append(c)

    for nm in ("not-a-queue-id", "abc123", "-rf", ".hidden", "A B", "0" * 40,
               "6B03AB\nforged line"):
        c = Case("file name %r" % nm, r"not a queue id", name=nm)
        place(srv, nm, spool_bytes(new_id(), good_msg("badname")))
        cases.append(c)
    return cases


def line_for(c):
    """The warning line smapd logs for case c."""
    if c.desc == "directory":
        return (r"(?m)^.* smap/\w+\[\d+\]: warning: %s: removed from incoming/new: an empty "
                r"directory$" % re.escape(c.name))
    return r"(?m)^.* smap/\w+\[\d+\]: warning: %s: quarantined: \S" % re.escape(esc(c.name))


def settled(srv, cases):
    """Every case gone from new/ and its line in the log (smapd logs a
    quarantine after the move and the journal's record of it)."""
    log = srv.log()
    return all(not os.path.lexists(os.path.join(srv.newdir(), c.name)) and re.search(line_for(c), log)
               for c in cases)


def check_cases(t, srv, cases, passwd_before, desc):
    q = quarantined(srv)
    log = srv.log()
    byname = {}
    for c in cases:
        byname.setdefault(c.name, c)
    for c in cases:
        label = "%s: %s" % (desc, c.desc)
        t.ok(not os.path.lexists(os.path.join(srv.newdir(), c.name)), "%s: gone from new/" % label)
        t.ok(c.name not in queue_ids(srv), "%s: never reached queue/" % label)
        if c.desc == "directory":
            # smap's own directory: smapd may not move it, only remove it if empty
            t.like(log, line_for(c), "%s: removed, with a warning line" % label)
            continue
        if re.fullmatch(r"[0-9A-F]{1,31}", c.name):
            why = q.get(c.name)
            t.ok(why is not None and re.search(c.reason, why, re.I),
                 "%s: quarantine/%s.why says /%s/" % (label, c.name, c.reason), "why: %r" % why)
        else:
            # renamed to a safe X... name; found by its reason
            t.ok(any(w and re.search(c.reason, w, re.I) for n, w in q.items() if n.startswith("X")),
                 "%s: quarantined under a safe name with a reason /%s/" % (label, c.reason), repr(q))
        t.like(log, line_for(c), "%s: a warning line 'NAME: quarantined: reason'" % label)
    # what the quarantined entries are: moved as they were, never followed
    for c in cases:
        p = spool_path(srv, "quarantine", c.name)
        if c.desc.startswith("symlink"):
            t.ok(os.path.islink(p), "%s: %s: quarantine/%s is still the symlink itself" % (desc, c.desc, c.name))
        if c.desc == "FIFO":
            t.ok(os.path.lexists(p) and stat.S_ISFIFO(os.lstat(p).st_mode),
                 "%s: FIFO moved to quarantine/ unopened for data" % desc)
    t.is_(open("/etc/passwd", "rb").read(), passwd_before, "%s: /etc/passwd unchanged" % desc)
    bad = sorted(set(b for b in srv.log_bytes() if b != 0x0a and not 0x20 <= b <= 0x7e))
    t.is_(bad, [], "%s: the log holds printable ASCII only (hostile names escaped)" % desc)
    t.unlike(log, r"(?m)^forged line", "%s: a LF in a file name cannot forge a log line" % desc)


def delivered(md):
    return {header(d, "Message-ID"): d for _, d in read_maildir(md)}


def main(t):
    with Server(t, name="smap-43") as srv:
        md = smapd_maildir(srv)
        outside = os.path.join(srv.dir, "outside")
        os.mkdir(outside)
        passwd_before = open("/etc/passwd", "rb").read()
        d = Smapd(t, srv, conf={"default_transport": "maildir:" + md, "message_size_limit": SIZE_LIMIT,
                                "smtpd_recipient_limit": RCPT_LIMIT}, name="smapd-43")
        t.is_(d.check()[0], 0, "smapd -t accepts the maildir: configuration")

        # round 1: smapd not running; everything waits in new/ together
        cases = hostile_set(srv, outside)
        gid1 = new_id()
        place(srv, gid1, spool_bytes(gid1, good_msg("good-handmade-1")))
        (sid1, _), = send(srv, [(["u@example.com"], good_msg("good-smtp-1"))])
        t0 = time.monotonic()
        rc = d.once(flush=True, timeout=30)
        took = time.monotonic() - t0
        t.is_(rc, 0, "round 1: smapd -1 -f over %d hostile entries exits 0" % len(cases))
        t.ok(took < 15, "round 1: ... and does not hang (FIFO included): %.1fs" % took)
        got = delivered(md)
        for tag, sid in (("good-handmade-1", gid1), ("good-smtp-1", sid1)):
            t.ok("<%s@b.example>" % tag in got, "round 1: the valid message %s (%s) was delivered" % (tag, sid),
                 "Maildir: %r" % sorted(got))
        want = good_msg("good-handmade-1").replace(b"\r\n", b"\n")
        dd = got.get("<good-handmade-1@b.example>", b"")
        t.ok(dd.endswith(want) and dd.startswith(b"Return-Path: <a@b.example>\n"),
             "round 1: the hand-made message arrived byte for byte after Return-Path/Delivered-To", repr(dd[:300]))
        t.is_(sorted(got), ["<good-handmade-1@b.example>", "<good-smtp-1@b.example>"],
              "round 1: nothing else reached the Maildir")
        check_cases(t, srv, cases, passwd_before, "round 1")
        target_ok = all(open(os.path.join(outside, n), "rb").read().startswith(b"SMAP 1\n")
                        for n in os.listdir(outside))
        t.ok(target_ok and len(os.listdir(outside)) == 1, "round 1: the symlink's target is untouched")
        t.ok(not queue_ids(srv) and not state_ids(srv), "round 1: queue/ and state/ empty",
             "%s %s" % (queue_ids(srv), state_ids(srv)))

        # round 2: the daemon runs; hostile entries arrive beside valid ones
        with d:
            d.start()
            cases2 = hostile_set(srv, outside)
            gid2 = new_id()
            place(srv, gid2, spool_bytes(gid2, good_msg("good-handmade-2")))
            (sid2, _), = send(srv, [(["u@example.com"], good_msg("good-smtp-2"))])
            ok = wait_until(lambda: "<good-handmade-2@b.example>" in delivered(md) and
                            "<good-smtp-2@b.example>" in delivered(md), 10)
            t.ok(ok, "round 2 (daemon, inotify): both valid messages delivered", repr(sorted(delivered(md))))
            ok = wait_until(lambda: settled(srv, cases2), 10)
            t.ok(ok, "round 2: every hostile entry left new/, with its line in the log", repr(listdir(srv.newdir())))
            t.ok(d.alive(), "round 2: smapd still running (no hang, no crash)")
            check_cases(t, srv, cases2, passwd_before, "round 2")
            # a FIFO alone, then a valid file: smapd must not block on it
            f = new_id()
            place(srv, f, kind="fifo")
            gid3 = new_id()
            time.sleep(0.2)
            place(srv, gid3, spool_bytes(gid3, good_msg("good-after-fifo")))
            ok = wait_until(lambda: "<good-after-fifo@b.example>" in delivered(md), 10)
            t.ok(ok, "round 2: a valid file after a lone FIFO is delivered")
            t.ok(quarantined(srv).get(f) and "regular" in quarantined(srv)[f], "round 2: the lone FIFO quarantined")
            rc = d.stop()
            t.is_(rc, [0], "round 2: smapd exits 0 on SIGTERM")
        t.note("reasons given: " + "; ".join(sorted(set(w or "?" for w in quarantined(srv).values()))))
        batches(t, srv, d, md)
        leftover(t, srv, d, md)


def delivered_since(md, before):
    """The Message-IDs in the Maildir that were not in before."""
    return [m for m in (header(dd, "Message-ID") for _, dd in read_maildir(md)) if m not in before]


def in_queue(srv, qid, message):
    """queue/qid, a copy as smapd makes them (its owner, mode 0600)."""
    uid, gid = smapd_ids()
    qpath = spool_path(srv, "queue", qid)
    with open(qpath, "wb") as f:
        f.write(spool_bytes(qid, message))
    os.chown(qpath, uid, gid)
    os.chmod(qpath, 0o600)


def batches(t, srv, d, md):
    """Round 3: more files than one pickup batch, two bad ones among them."""
    tags = ["batch-%d" % i for i in range(300)]
    for tag in tags:
        gid = new_id()
        place(srv, gid, spool_bytes(gid, good_msg(tag)))
    short = new_id()
    place(srv, short, spool_bytes(short, good_msg("batch-short"))[:-20])
    dup = new_id()
    in_queue(srv, dup, good_msg("batch-dup-queued"))
    place(srv, dup, spool_bytes(dup, good_msg("batch-dup-new")))
    before = set(delivered(md))
    t.is_(d.once(flush=True, timeout=60), 0, "round 3: smapd -1 over 302 files in new/ exits 0")
    got = delivered_since(md, before)
    want = sorted("<%s@b.example>" % tag for tag in tags + ["batch-dup-queued"])
    t.is_(sorted(got), want, "round 3: each of the 300 and the one already queued delivered exactly once")
    q = quarantined(srv)
    t.ok(q.get(dup) and "duplicate queue id" in q[dup], "round 3: the second file of a queued id "
         "quarantined as a duplicate", q.get(dup))
    t.ok(q.get(short) is not None, "round 3: the truncated one quarantined", q.get(short))
    t.ok(not listdir(srv.newdir()) and not queue_ids(srv), "round 3: new/ and queue/ empty",
         "%s %s" % (listdir(srv.newdir())[:5], queue_ids(srv)[:5]))


def leftover(t, srv, d, md):
    """Round 4: a crash left a message both in queue/ (its copy, named)
    and in new/ (its original, not yet removed), behind a large file,
    with two delivery processes: however the run shares out its work, a
    process that delivers and removes the copy while the large file is
    still being copied must not let the leftover be queued again. It
    meets its copy: quarantined as a duplicate, delivered once."""
    big_n = 40 << 20
    d.set_conf({"default_destination_concurrency_limit": "2", "message_size_limit": str(big_n + 4096)})
    small, big, small2, left = new_id(), new_id(), new_id(), new_id()
    in_queue(srv, left, good_msg("leftover"))
    place(srv, small, spool_bytes(small, good_msg("left-small")))
    body = b"From: a@b.example\r\nTo: u@example.com\r\nMessage-ID: <left-big@b.example>\r\n\r\n" + \
        (b"x" * 78 + b"\r\n") * (big_n // 80)
    place(srv, big, spool_bytes(big, body))
    place(srv, small2, spool_bytes(small2, good_msg("left-small2")))
    place(srv, left, spool_bytes(left, good_msg("leftover")))
    before = set(delivered(md))
    t.is_(d.once(flush=True, timeout=60), 0, "round 4: smapd -1 with a crash's leftover in new/ exits 0")
    got = delivered_since(md, before)
    t.is_(sorted(got), sorted("<%s@b.example>" % x for x in ("left-big", "left-small", "left-small2", "leftover")),
          "round 4: the leftover's message delivered once, and the three others once each")
    q = quarantined(srv)
    t.ok(q.get(left) and "duplicate queue id" in q[left], "round 4: the leftover original quarantined as a "
         "duplicate", q.get(left))
    t.ok(not listdir(srv.newdir()) and not queue_ids(srv), "round 4: new/ and queue/ empty",
         "%s %s" % (listdir(srv.newdir())[:5], queue_ids(srv)[:5]))
    d.check_sanitizer()     # rounds 3 and 4 ran outside the daemon's with-block


if __name__ == "__main__":
    TAP(watchdog=85).main(main)
