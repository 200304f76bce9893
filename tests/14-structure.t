#!/usr/bin/env python3
# 14-structure.t - the shape of the code a reader can count on, in
# smap/, smapd/ and common/ (the tests, bench/ and tools/ are not held
# to it). For each directory:
#   1 no include cycle: following #include "..." (quote includes as the
#     compiler resolves them: the including file's directory, then
#     common/), with a .c and its own .h one module, no module reaches
#     itself again
#   2 no call cycle: a module's undefined symbols (nm on its .o) are
#     resolved by the modules that define them; no module calls itself
#     again through others
#   3 no production .c file over 700 lines
#   4 no function over 60 lines (tests/10's rule: from a "{" at column 0
#     to the next "}" at column 0)
#   5 no prototype of a static function that is not needed: one whose
#     function is defined before its first use (order the definitions
#     instead)
# A cycle is reported with its members under every directory it touches.
# The .o files come from the build (make); a missing one fails test 2.
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DIRS = ["smap", "smapd", "common"]
FILE_MAX = 700
FUNC_MAX = 60

out = []
count = [0]


def ok(good, name, diag=()):
    """one TAP line, then its diagnostics"""
    count[0] += 1
    out.append(("ok" if good else "not ok") + " %d - %s" % (count[0], name))
    for d in diag:
        out.append("# " + d)


def sources(d, ext):
    """the files of directory d ending in ext, sorted"""
    return sorted(f for f in os.listdir(os.path.join(REPO, d)) if f.endswith(ext))


def module(path):
    """dir/stem: a .c and its own .h are one module"""
    d, f = os.path.split(path)
    return os.path.join(d, f.rsplit(".", 1)[0])


def resolve(frm, name):
    """the repository path of #include "name" in file frm, or None"""
    for base in (os.path.dirname(frm), "common"):
        p = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(os.path.join(REPO, p)):
            return p
    return None


def include_graph():
    """module -> modules its files include"""
    g = {}
    for d in DIRS:
        for f in sources(d, ".c") + sources(d, ".h"):
            p = os.path.join(d, f)
            m = module(p)
            g.setdefault(m, set())
            with open(os.path.join(REPO, p), errors="replace") as fh:
                for line in fh:
                    inc = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                    r = resolve(p, inc.group(1)) if inc else None
                    if r is not None and module(r) != m:
                        g[m].add(module(r))
    return g


def nm(obj, undefined):
    """global symbols defined by obj, or those it leaves undefined"""
    args = ["nm", "-P", "-u" if undefined else "--defined-only", obj]
    res = subprocess.run(args, capture_output=True, text=True, timeout=60)
    syms = set()
    for line in res.stdout.splitlines():
        f = line.split()
        if len(f) >= 2 and (undefined or (f[1].isupper() and f[1] != "U")):
            syms.add(f[0])
    return syms


def call_graph():
    """module -> modules it calls (or whose data it uses); and the
    sources whose object is missing"""
    defined, needs, missing = {}, {}, []
    for d in DIRS:
        for f in sources(d, ".c"):
            obj = os.path.join(REPO, d, f[:-2] + ".o")
            if not os.path.isfile(obj):  # a loadable module's object
                obj = os.path.join(REPO, d, f[:-2] + ".pic.o")
            m = module(os.path.join(d, f))
            if not os.path.isfile(obj):
                missing.append(os.path.join(d, f))
                continue
            for s in nm(obj, False):
                defined.setdefault(s, set()).add(m)
            needs[m] = nm(obj, True)
    g = {}
    for m, syms in needs.items():
        g[m] = set()
        for s in syms:
            by = defined.get(s, set())
            if len(by) == 1 and m not in by:
                g[m] |= by
    return g, missing


def cycles(g):
    """the strongly connected components of g with more than one member
    (Tarjan's algorithm, iterative)"""
    index, low, onstack, stack, comps = {}, {}, set(), [], []
    counter = [0]
    for root in sorted(g):
        if root in index:
            continue
        work = [(root, iter(sorted(g.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        onstack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        x = stack.pop()
                        onstack.discard(x)
                        comp.append(x)
                        if x == v:
                            break
                    if len(comp) > 1:
                        comps.append(sorted(comp))
                continue
            if w not in index:
                index[w] = low[w] = counter[0]
                counter[0] += 1
                stack.append(w)
                onstack.add(w)
                work.append((w, iter(sorted(g.get(w, ())))))
            elif w in onstack:
                low[v] = min(low[v], index[w])
    return comps


def loop_of(g, comp):
    """one closed path through the members of comp, for the report"""
    start, members = comp[0], set(comp)
    prev, todo = {start: None}, [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(g.get(v, ())):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return " -> ".join(list(reversed(path)) + [start])
            if w in members and w not in prev:
                prev[w] = v
                todo.append(w)
    return " ".join(comp)


def strip(text):
    """text without comments and string or character literals, its
    lines kept"""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(\\.|[^"\\\n])*"|\'(\\.|[^\'\\\n])*\'',
                  blank, text, flags=re.S)


def long_functions(path):
    """(length, line) of each function longer than FUNC_MAX"""
    bad, start = [], None
    with open(path, errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if line.startswith("{"):
                start = n
            elif line.startswith("}") and start is not None:
                if n - start > FUNC_MAX:
                    bad.append((n - start, start))
                start = None
    return bad


def static_prototypes(path):
    """(line, name) of each static prototype that is not needed"""
    with open(path, errors="replace") as fh:
        text = strip(fh.read())
    lines = text.split("\n")
    offs = [0]
    for line in lines:
        offs.append(offs[-1] + len(line) + 1)
    bad = []
    for i, line in enumerate(lines):
        if not line.startswith("static"):
            continue
        decl = text[offs[i]:]
        end = min([k for k in (decl.find(";"), decl.find("{"), decl.find("="))
                   if k >= 0] or [len(decl)])
        if end >= len(decl) or decl[end] != ";":
            continue
        m = re.search(r"([A-Za-z_]\w*)\s*\(", decl[:end])
        if m is None:
            continue
        name = m.group(1)
        defn = re.search(r"^%s\s*\(" % re.escape(name), text, re.M)
        if defn is None:
            continue
        after = offs[i] + end
        use = None
        for u in re.finditer(r"\b%s\b" % re.escape(name), text[after:]):
            at = after + u.start()
            if at == defn.start():
                continue
            use = at
            break
        if use is None or use > defn.start():
            bad.append((i + 1, name))
    return bad


def main():
    inc = include_graph()
    calls, missing = call_graph()
    inc_cycles, call_cycles = cycles(inc), cycles(calls)
    for d in DIRS:
        mine = [c for c in inc_cycles if any(m.startswith(d + "/") for m in c)]
        ok(not mine, "%s/: no two modules include each other in a loop" % d,
           ["include cycle: " + loop_of(inc, c) for c in mine])

        mine = [c for c in call_cycles if any(m.startswith(d + "/") for m in c)]
        gone = [p for p in missing if p.startswith(d + "/")]
        ok(not mine and not gone, "%s/: no two modules call each other in a loop" % d,
           ["call cycle: " + loop_of(calls, c) for c in mine] +
           ["%s has no object: build first (make)" % p for p in gone])

        big = []
        for f in sources(d, ".c"):
            with open(os.path.join(REPO, d, f), errors="replace") as fh:
                n = sum(1 for _ in fh)
            if n > FILE_MAX:
                big.append("%s/%s has %d lines" % (d, f, n))
        ok(not big, "%s/: no .c file over %d lines" % (d, FILE_MAX), big)

        longf = ["%s/%s:%d: a function of %d lines" % (d, f, at, n)
                 for f in sources(d, ".c")
                 for n, at in long_functions(os.path.join(REPO, d, f))]
        ok(not longf, "%s/: no function over %d lines" % (d, FUNC_MAX), longf)

        protos = ["%s/%s:%d: static prototype of %s, defined before its "
                  "first use" % (d, f, at, name)
                  for f in sources(d, ".c")
                  for at, name in static_prototypes(os.path.join(REPO, d, f))]
        ok(not protos, "%s/: no static prototype that is not needed" % d, protos)
    print("1..%d" % sum(1 for line in out if not line.startswith("#")))
    print("\n".join(out))


if __name__ == "__main__":
    main()
