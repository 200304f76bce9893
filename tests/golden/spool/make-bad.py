#!/usr/bin/env python3
"""make-bad.py - write the bad-*.spool / bad-*.out cases for t_spool.

Usage: python3 make-bad.py [dir]   (default: the directory of this script)

Every case is a spool file that spool_read_envelope() must refuse. The
first line of bad-NAME.out is the reason it must give; the second line
says what the case is about. The expected reasons were derived from the
format description at the top of common/spool.c and the messages of
common/addr.c, not copied from a run. Output is deterministic: old
bad-* files are removed first, then every case is written in order.
Keep the list of names in tests/unit/t_spool.c in step with CASES.
"""
import glob
import os
import sys

BODY = b"Subject: x\r\n\r\nhi\r\n"

# The envelope of a good file, one record per entry, without the LF.
BASE = [
    b"SMAP 1",
    b"id 6921A4F30B1C21A31",
    b"arrival 1795412399",
    b"client 192.0.2.10 4711",
    b"helo mail.example.org",
    b"proto ESMTP",
    b"body 8BIT",
    b"from <alice@example.org>",
    b"rcpt <bob@example.com>",
]
IDX = {r.split(b" ", 1)[0]: i for i, r in enumerate(BASE)}


def size_rec(n):
    return b"size %016d" % n


def spool(records=None, body=BODY, size=None, blank=True):
    """A file from records (BASE when None) + size + blank line + body."""
    recs = list(BASE if records is None else records)
    if size is not False:
        recs.append(size_rec(len(body)) if size is None else size)
    head = b"".join(r + b"\n" for r in recs)
    return head + (b"\n" if blank else b"") + body


def replace(name, value):
    """BASE with record `name` replaced by the whole record `value`."""
    recs = list(BASE)
    recs[IDX[name]] = value
    return spool(recs)


def drop(name):
    recs = list(BASE)
    del recs[IDX[name]]
    return spool(recs)


def swap(a, b):
    recs = list(BASE)
    i, j = IDX[a], IDX[b]
    recs[i], recs[j] = recs[j], recs[i]
    return spool(recs)


def dup(name):
    recs = list(BASE)
    recs.insert(IDX[name] + 1, recs[IDX[name]])
    return spool(recs)


def insert_after(name, rec):
    recs = list(BASE)
    recs.insert(IDX[name] + 1, rec)
    return spool(recs)


def rcpts(n):
    recs = BASE[:-1] + [b"rcpt <u%03d@example.com>" % i for i in range(1, n + 1)]
    return spool(recs)


LEADING = "Local part may not start with - / | or ~"
SYNTAX = "Bad address syntax"

# name, reason, what, file contents
CASES = [
    ("empty", "truncated envelope", "empty file", b""),
    ("magic", "not a version 1 spool file", "wrong magic",
     replace(b"SMAP", b"SMTP 1")),
    ("magic-trailer", "not a version 1 spool file", "garbage after the version",
     replace(b"SMAP", b"SMAP 1 x")),
    ("version2", "not a version 1 spool file", "version 2",
     replace(b"SMAP", b"SMAP 2")),
    ("crlf", "CR in envelope", "records ended by CRLF",
     spool().replace(b"\n", b"\r\n", 12)),
    ("only-magic", "bad id record: truncated envelope", "file ends after the magic",
     b"SMAP 1\n"),
    ("missing-id", "bad id record", "no id record", drop(b"id")),
    ("missing-proto", "bad proto record", "no proto record", drop(b"proto")),
    ("missing-from", "bad from record", "no from record", drop(b"from")),
    ("missing-size", "unexpected envelope record", "no size record",
     spool(size=False)),
    ("order-helo-client", "bad client record", "helo before client",
     swap(b"client", b"helo")),
    ("order-rcpt-from", "bad from record", "rcpt before from",
     swap(b"from", b"rcpt")),
    ("order-size-rcpt", "no recipients", "size before the rcpt",
     spool(BASE[:-1] + [size_rec(len(BODY)), BASE[-1]], size=False)),
    ("dup-id", "bad arrival record", "id twice", dup(b"id")),
    ("dup-body", "bad from record", "body twice", dup(b"body")),
    ("dup-from", "unexpected envelope record", "from twice", dup(b"from")),
    ("dup-size", "envelope not ended by a blank line", "size twice",
     spool(BASE + [size_rec(len(BODY))])),
    ("unknown-tail", "unexpected envelope record", "unknown record after from",
     insert_after(b"from", b"x-spam yes")),
    ("unknown-head", "bad body record", "unknown record before body",
     insert_after(b"proto", b"x-spam yes")),
    ("id-lower", "bad id record", "id with lowercase hex",
     replace(b"id", b"id 6921a4f30b1c21a31")),
    ("id-nonhex", "bad id record", "id with a non-hex letter",
     replace(b"id", b"id 6921A4F30B1C21A3G")),
    ("id-path", "bad id record", "id with a path",
     replace(b"id", b"id ../../etc/passwd")),
    ("id-long", "bad id record", "id of 32 digits",
     replace(b"id", b"id " + b"0123456789ABCDEF" * 2)),
    ("id-empty", "bad id record", "empty id", replace(b"id", b"id ")),
    ("arrival-alpha", "bad arrival record", "arrival not a number",
     replace(b"arrival", b"arrival 17954123x9")),
    ("arrival-negative", "bad arrival record", "negative arrival",
     replace(b"arrival", b"arrival -1")),
    ("arrival-overflow", "bad arrival record", "arrival beyond 64 bits",
     replace(b"arrival", b"arrival 9999999999999999999")),
    ("arrival-long", "bad arrival record", "arrival of 20 digits",
     replace(b"arrival", b"arrival 12345678901234567890")),
    ("arrival-dot", "bad arrival record", "arrival with an empty fraction",
     replace(b"arrival", b"arrival 1795412399.")),
    ("arrival-fraction7", "bad arrival record", "arrival with 7 digits of fraction",
     replace(b"arrival", b"arrival 1795412399.1234567")),
    ("arrival-twodots", "bad arrival record", "arrival with two dots",
     replace(b"arrival", b"arrival 1795412399.1.2")),
    ("client-noport", "bad client record", "client without port",
     replace(b"client", b"client 192.0.2.10")),
    ("client-emptyport", "bad client record", "client with an empty port",
     replace(b"client", b"client 192.0.2.10 ")),
    ("client-badaddr", "bad client record", "client 192.0.2.256",
     replace(b"client", b"client 192.0.2.256 4711")),
    ("client-name", "bad client record", "client as a host name",
     replace(b"client", b"client mail.example.org 4711")),
    ("client-scope", "bad client record", "IPv6 client with a zone",
     replace(b"client", b"client fe80::1%eth0 4711")),
    ("client-port-big", "bad client record", "port 65536",
     replace(b"client", b"client 192.0.2.10 65536")),
    ("client-port-sign", "bad client record", "port +4711",
     replace(b"client", b"client 192.0.2.10 +4711")),
    ("client-twospaces", "bad client record", "two spaces before the port",
     replace(b"client", b"client 192.0.2.10  4711")),
    ("helo-space", "bad helo record", "helo with a space",
     replace(b"helo", b"helo mail example.org")),
    ("helo-twospaces", "bad helo record", "two spaces after helo",
     replace(b"helo", b"helo  mail.example.org")),
    ("helo-empty", "bad helo record", "empty helo", replace(b"helo", b"helo ")),
    ("helo-noblank", "bad helo record", "helo without a value",
     replace(b"helo", b"helo")),
    ("helo-long", "bad helo record", "helo of 256 bytes",
     replace(b"helo", b"helo " + b"h" * 256)),
    ("helo-8bit", "bad helo record", "8-bit byte in helo",
     replace(b"helo", b"helo mail.ex\xe4mple.org")),
    ("helo-nul", "bad helo record: NUL in envelope", "NUL inside helo",
     replace(b"helo", b"helo mail\0.example.org")),
    ("helo-tab", "bad helo record", "TAB inside helo",
     replace(b"helo", b"helo mail\t.example.org")),
    ("proto-lmtp", "bad proto record", "proto LMTP",
     replace(b"proto", b"proto LMTP")),
    ("proto-lower", "bad proto record", "proto esmtp",
     replace(b"proto", b"proto esmtp")),
    ("proto-trailing", "bad proto record", "space after the proto",
     replace(b"proto", b"proto ESMTP ")),
    ("body-binary", "bad body record", "body BINARY",
     replace(b"body", b"body BINARY")),
    ("body-8bitmime", "bad body record", "body 8BITMIME",
     replace(b"body", b"body 8BITMIME")),
    ("from-nobrackets", "bad from record", "from without brackets",
     replace(b"from", b"from alice@example.org")),
    ("from-option", "bad from record", "option-like sender",
     replace(b"from", b"from <-oQ/tmp@x.example>")),
    ("from-route", "bad from record", "sender with a source route",
     replace(b"from", b"from <@a.example:alice@example.org>")),
    ("from-postmaster", "bad from record", "<postmaster> as sender",
     replace(b"from", b"from <postmaster>")),
    ("from-cr", "bad from record: CR in envelope", "CR inside from",
     replace(b"from", b"from <alice@example.org>\r")),
    ("rcpt-pipe", LEADING, "recipient <|/bin/sh@x.example>",
     replace(b"rcpt", b"rcpt <|/bin/sh@x.example>")),
    ("rcpt-file", LEADING, "recipient </etc/passwd@x>",
     replace(b"rcpt", b"rcpt </etc/passwd@x>")),
    ("rcpt-option", LEADING, "recipient <-oQ/tmp@x.example>",
     replace(b"rcpt", b"rcpt <-oQ/tmp@x.example>")),
    ("rcpt-null", "Null sender not allowed here", "recipient <>",
     replace(b"rcpt", b"rcpt <>")),
    ("rcpt-route", "Source route not allowed here", "recipient with a route",
     replace(b"rcpt", b"rcpt <@a.example:bob@example.com>")),
    ("rcpt-nobrackets", SYNTAX, "recipient without brackets",
     replace(b"rcpt", b"rcpt bob@example.com")),
    ("rcpt-twospaces", SYNTAX, "two spaces after rcpt",
     replace(b"rcpt", b"rcpt  <bob@example.com>")),
    ("rcpt-trailing", SYNTAX, "space after the recipient",
     replace(b"rcpt", b"rcpt <bob@example.com> ")),
    ("rcpt-nul", "NUL in envelope", "NUL inside a recipient",
     replace(b"rcpt", b"rcpt <bob@example.com>\0<x@y.example>")),
    ("rcpt-cr", "CR in envelope", "CR inside a recipient",
     replace(b"rcpt", b"rcpt <bob@example.com>\r")),
    ("rcpt-lf", SYNTAX, "LF inside an address (split record)",
     replace(b"rcpt", b"rcpt <bob@exam\nple.com>")),
    ("rcpt-8bit", "Unsafe character in local part", "8-bit byte in a recipient",
     replace(b"rcpt", b"rcpt <b\xf6b@example.com>")),
    ("rcpt-path-long", "Path too long", "local part of 247 octets: a path of "
     "257 (a long local part is fine; the path limit holds)",
     replace(b"rcpt", b"rcpt <" + b"a" * 247 + b"@x.example>")),
    ("from-path-long", "bad from record", "sender local part of 247 octets: a path of 257",
     replace(b"from", b"from <" + b"a" * 247 + b"@x.example>")),
    ("rcpt-1024", SYNTAX, "rcpt record of SPOOL_LINE_MAX bytes (addr.c "
     "looks for '>' in the first SMTP_LINE_MAX bytes only)",
     replace(b"rcpt", b"rcpt <" + b"a" * 1006 + b"@x.example>")),
    ("rcpt-1025", "envelope record too long",
     "rcpt record of SPOOL_LINE_MAX + 1 bytes",
     replace(b"rcpt", b"rcpt <" + b"a" * 1007 + b"@x.example>")),
    ("rcpt-huge", "envelope record too long", "rcpt record of 100000 bytes",
     replace(b"rcpt", b"rcpt <" + b"a" * 100000 + b"@x.example>")),
    ("rcpt-101", "too many recipients", "101 recipients with max_rcpt 100",
     rcpts(101)),
    ("no-rcpt", "no recipients", "no recipients", spool(BASE[:-1])),
    ("size-short", "bad size record", "size of 15 digits",
     spool(size=b"size %015d" % len(BODY))),
    ("size-long", "bad size record", "size of 17 digits",
     spool(size=b"size %017d" % len(BODY))),
    ("size-alpha", "bad size record", "size not a number",
     spool(size=b"size 000000000000001x")),
    ("size-sign", "bad size record", "size with a sign",
     spool(size=b"size +000000000000018")),
    ("size-truncated", "file length does not match its size record",
     "size larger than the body (truncated file)", spool(body=BODY[:-1],
                                                         size=size_rec(len(BODY)))),
    ("size-extra", "file length does not match its size record",
     "size smaller than the body (extra bytes)", spool(body=BODY + b"x",
                                                       size=size_rec(len(BODY)))),
    ("no-blank", "envelope not ended by a blank line: CR in envelope", "missing blank line",
     spool(blank=False)),
    ("eof-in-envelope", "truncated envelope", "file ends inside the rcpt records",
     spool()[:spool().index(b"rcpt") + 10]),
    ("eof-after-size", "envelope not ended by a blank line: truncated envelope",
     "file ends after the size record", spool(body=b"", blank=False)),
]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(
        os.path.abspath(__file__))
    names = [c[0] for c in CASES]
    if len(set(names)) != len(names):
        sys.exit("make-bad.py: duplicate case name")
    for old in sorted(glob.glob(os.path.join(out, "bad-*"))):
        os.unlink(old)
    for name, reason, what, data in CASES:
        with open(os.path.join(out, "bad-%s.spool" % name), "wb") as f:
            f.write(data)
        with open(os.path.join(out, "bad-%s.out" % name), "w",
                  encoding="ascii", newline="\n") as f:
            f.write("%s\n%s\n" % (reason, what))
    print("make-bad.py: %d cases" % len(CASES))


if __name__ == "__main__":
    main()
