#!/usr/bin/env python3
# 29-map-postmap.t - common/map.c reads what the real Postfix tools write,
# and answers as Postfix does. A 1,000-entry table in postmap's input
# format (upper case keys, +extension keys, catch-all @domain entries,
# transport-style domain and .parent keys, "*", quoted keys, continuation
# lines, comments, duplicates) is built with "postmap cdb:" and with
# "postmap -N cdb:" (a NUL after each key and value); then every key, in
# its own, upper and lower case, and as many misses are looked up with
# tests/unit/t_map -q and with "postmap -q -": the outputs must be the
# same byte for byte, for both cdb files and for texthash: on the source
# file. map_recipient (relay_recipient_maps order) and map_transport
# (transport(5) order) are checked against the same order worked out
# from postmap's own answers. Needs Postfix with cdb support
# (postfix-cdb); skipped without it.
import os
import random
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from smaptest import TAP, REPO  # noqa: E402

T_MAP = os.path.join(REPO, "tests", "unit", "t_map")
POSTMAP = shutil.which("postmap") or "/usr/sbin/postmap"
DELIM = "+"
N_ENTRIES = 1000


def run(argv, data, timeout=60):
    p = subprocess.run(argv, input=data.encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode("latin-1"), p.stderr.decode("latin-1")


def mixcase(rng, s):
    return "".join(c.upper() if rng.random() < 0.4 else c for c in s)


def make_table(rng):
    """(source text, list of keys as written); exactly N_ENTRIES entries."""
    lines = ["# built by 29-map-postmap.t", ""]
    keys = []

    def add(key, value, cont=None):
        keys.append(key)
        lines.append("%s\t%s" % (key, value))
        if cont:
            lines.append("# a comment inside the logical line")
            lines.append("   " + cont)

    for i in range(500):
        add(mixcase(rng, "user%d@relay%d.example" % (i, i % 10)),
            rng.choice(["OK", "relay ok", "x\ty", "550 no  such user "]))
    for i in range(100):
        add(mixcase(rng, "u%d+tag%d@relay%d.example" % (i, i, i % 10)), "ext %d" % i)
    for i in range(20):
        add(mixcase(rng, "@catch%d.example" % i), "catch-all")
    for i in range(150):
        add(mixcase(rng, "dom%d.example.net" % i), "smtp:[h%d.example]:25" % i)
    for i in range(100):
        add(".sub%d.example.net" % i, "relay:[sub%d.example]" % i)
    for i in range(100):
        add("cont%d@relay%d.example" % (i, i % 10), "first part",
            cont="second part %d " % i)
    for i in range(10):
        add('"john smith%d"@Relay1.example' % i, "quoted")
    for i in range(19):
        add(keys[i * 7], "duplicate %d: the first one counts" % i)
    add("*", "smtp:[wildcard.example]")
    assert len(keys) == N_ENTRIES, len(keys)
    lines.append("")
    return "\n".join(lines), keys


def query_keys(rng, keys):
    qs = []
    for k in keys:
        qs += [k, k.upper(), k.lower()]
    for i in range(1000):
        qs.append("miss%d@relay%d.example" % (rng.randrange(10 ** 6), i % 10))
    for k in keys[:300]:
        qs += [k[:-1], k + "x", "x" + k]
    return [q for q in qs if q and "\t" not in q]


def postmap_answers(d, spec, qs, extra=()):
    rc, out, err = run([POSTMAP, "-c", d] + list(extra) + ["-q", "-", spec],
                       "\n".join(qs) + "\n")
    return rc, out, err


def parse_answers(out):
    found = {}
    for line in out.splitlines():
        k, _, v = line.partition("\t")
        found.setdefault(k, v)
    return found


def base(local):
    # split_addr() with owner_request_special: the test uses "+" only.
    i = min((local.find(c) for c in DELIM if c in local), default=-1)
    return local[:i] if i > 0 else None


def rcpt_candidates(addr):
    local, _, domain = addr.rpartition("@")
    c = [addr]
    if base(local):
        c.append(base(local) + "@" + domain)
    return c + ["@" + domain]


def transport_candidates(addr):
    c = rcpt_candidates(addr)[:-1]
    domain = addr.rpartition("@")[2]
    c.append(domain)
    i = domain.find(".", 1)
    while i != -1:
        c.append(domain[i:])
        i = domain.find(".", i + 1)
    return c + ["*"]


def addresses(rng, keys):
    out = []
    for k in keys:
        if "@" in k and not k.startswith("@") and '"' not in k:
            local, _, domain = k.rpartition("@")
            out += [k, "%s+more@%s" % (local, domain.upper()),
                    "nobody%d@%s" % (rng.randrange(1000), domain)]
        elif k.startswith("@"):
            out += ["anyone" + k, "anyone@sub" + k[1:]]
        elif k.startswith("."):
            out += ["x@host" + k, "x@" + k[1:]]
        elif k != "*":
            out += ["x@" + k, "x@host." + k]
    return out + ["x@unknown.example", "x+y@unknown.example"]


def check_lookups(t, d, spec, qs, extra=()):
    rc, want, err = postmap_answers(d, spec, qs, extra)
    t.ok(rc == 0, "postmap -q - %s answers (%d keys)" % (spec, len(qs)), err)
    rc, got, err = run([T_MAP, "-q", spec], "\n".join(qs) + "\n")
    t.ok(rc == 0, "t_map -q %s answers" % spec, err)
    found = len(want.splitlines())
    t.ok(got == want, "%s: map_lookup gives exactly what postmap -q gives "
         "(%d found, %d missed)" % (spec, found, len(qs) - found),
         *diff(got, want))
    return parse_answers(want)


def diff(got, want):
    g, w = got.splitlines(), want.splitlines()
    for i, (a, b) in enumerate(zip(g, w)):
        if a != b:
            return ["line %d: got %r" % (i + 1, a), "line %d: want %r" % (i + 1, b)]
    return ["got %d lines, want %d" % (len(g), len(w))]


def check_orders(t, d, spec, addrs):
    cands = sorted({c for a in addrs for c in transport_candidates(a) + rcpt_candidates(a)})
    rc, out, err = postmap_answers(d, spec, cands)
    found = parse_answers(out)
    want_r = "".join("%s\t%d\n" % (a, any(c in found for c in rcpt_candidates(a)))
                     for a in addrs)
    rc, got, err = run([T_MAP, "-r", spec, DELIM], "\n".join(addrs) + "\n")
    hits = want_r.count("\t1\n")
    t.ok(rc == 0 and got == want_r, "%s: map_recipient follows relay_recipient_maps "
         "order on %d addresses (%d valid)" % (spec, len(addrs), hits), err, *diff(got, want_r))
    want_t = ""
    for a in addrs:
        v = next((found[c] for c in transport_candidates(a) if c in found), None)
        want_t += "%s\t%s\n" % (a, "-" if v is None else "=" + v)
    rc, got, err = run([T_MAP, "-t", spec, DELIM], "\n".join(addrs) + "\n")
    t.ok(rc == 0 and got == want_t, "%s: map_transport follows transport(5) order "
         "on %d addresses" % (spec, len(addrs)), err, *diff(got, want_t))


def main(t):
    if not os.access(T_MAP, os.X_OK):
        t.ok(False, "tests/unit/t_map is built (make tests)")
        return
    d = tempfile.mkdtemp(prefix="t29-map.")
    try:
        with open(os.path.join(d, "main.cf"), "w") as f:
            f.write("compatibility_level = 3.6\n")
        types = subprocess.run(["postconf", "-c", d, "-m"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL).stdout.decode().split() \
            if os.path.exists(POSTMAP) else []
        if "cdb" not in types:
            t.skip("postmap with cdb support is not installed (postfix-cdb)")
        else:
            body(t, d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def body(t, d):
    rng = random.Random(29)
    text, keys = make_table(rng)
    src = os.path.join(d, "table")
    with open(src, "w") as f:
        f.write(text)
    shutil.copy(src, src + "n")
    for extra, name in (([], "table"), (["-N"], "tablen")):
        rc, out, err = run([POSTMAP, "-c", d] + extra + ["cdb:" + os.path.join(d, name)], "")
        t.ok(rc == 0 and os.path.exists(os.path.join(d, name + ".cdb")),
             "postmap %scdb: builds %s.cdb" % (" ".join(extra + [""]), name), err)
        t.like(err, r"duplicate entry", "postmap warns about the duplicates")
    qs = query_keys(rng, keys)
    found = check_lookups(t, d, "cdb:" + src, qs)
    distinct = {k.lower() for k in keys}
    t.ok({k.lower() for k in found} == distinct and len(distinct) == N_ENTRIES - 19,
         "all %d distinct keys are found, in any case" % len(distinct))
    check_lookups(t, d, "cdb:" + src + "n", qs)
    check_lookups(t, d, "texthash:" + src, qs)
    addrs = addresses(rng, keys)
    for spec in ("cdb:" + src, "cdb:" + src + "n", "texthash:" + src):
        check_orders(t, d, spec, addrs)
    rc, out, err = run([T_MAP, "-q", "cdb:" + os.path.join(d, "missing")], "x\n")
    t.ok(rc == 2 and "missing.cdb: no such file" in err,
         "a missing map is refused with its name and \"no such file\"", err)


TAP(watchdog=120).main(main)
