"""bench/report.py - bench/RESULTS.md and its chart from bench/run.py's figures.

report(R, info, env, receivers, chart) returns the Markdown text; the
chart (messages/s against concurrency, one line per receiver and
durability level, a panel per message size) is drawn by gnuplot into
chart (a PNG) when the receive matrix was measured. The targets are
the ones of the work that made these figures (bench/CHANGES.md); each is
said met or missed with its figure, and a missed one gets a paragraph,
made from the measured figures, on where the time goes. Stdlib only.
"""

import os
import shutil
import statistics
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
GNUPLOT = shutil.which("gnuplot") or "/usr/bin/gnuplot"
KB = 1024

# chart lines: key, title, colour, dash
CHART_LINES = (
    ("smap", "smap, file+directory", "#1f77b4", 1),
    ("smap-file", "smap, file", "#1f77b4", 2),
    ("dynamic", "smap dynamic, file+directory", "#2ca02c", 1),
    ("dynamic-file", "smap dynamic, file", "#2ca02c", 2),
    ("tcpserver", "smap under tcpserver, file+directory", "#9467bd", 1),
    ("tcpserver-file", "smap under tcpserver, file", "#9467bd", 2),
    ("baseline", "baseline.c, file+directory", "#7f7f7f", 1),
    ("baseline-tcpserver", "baseline.c under tcpserver, file+directory", "#7f7f7f", 4),
    ("postfix", "Postfix smtpd, file", "#d62728", 2),
    ("opensmtpd", "OpenSMTPD, no fsync", "#ff7f0e", 3),
)


def pct(xs, p):
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def med(v, i=0):
    return statistics.median(x[i] for x in v) if v else None


def rate(R, size, conc, key):
    return med(R.get("recv", {}).get((size, conc, key)))


def cpu_ms(R, size, conc, key):
    v = med(R.get("recv", {}).get((size, conc, key)), 1)
    return v * 1e3 if v is not None else None


def f0(x):
    return "-" if x is None else "%.0f" % x


def f2(x):
    return "-" if x is None else "%.2f" % x


def ratio(a, b):
    return a / b if a is not None and b else None


def met(ok):
    return "**met**" if ok else "**MISSED**"


# --------------------------------------------------------------------------
# chart


def chart(R, env, path):
    """gnuplot: a panel per size, messages/s against concurrency."""
    if not R.get("recv") or not os.access(GNUPLOT, os.X_OK):
        return False
    work = tempfile.mkdtemp(prefix="smap-chart.")
    try:
        plots = []
        for size in env["sizes"]:
            lines = []
            for key, title, colour, dash in CHART_LINES:
                pts = [(c, rate(R, size, c, key)) for c in env["concs"]]
                pts = [(c, r) for c, r in pts if r is not None]
                if not pts:
                    continue
                dat = os.path.join(work, "%d-%s.dat" % (size, key))
                with open(dat, "w") as f:
                    f.writelines("%d %.1f\n" % p for p in pts)
                lines.append("'%s' using 1:2 with linespoints lw 2 pt 7 dt %d lc rgb '%s' title '%s'" % (
                    dat, dash, colour, title))
            plots.append((size, lines))
        gp = ["set terminal pngcairo size 1100,460 font 'sans,10'",
              "set output '%s'" % path,
              "set multiplot layout 1,%d title 'Receive: one message per connection "
              "(smtp-source), messages/s, median of %d'" % (len(plots), env["repeats"]),
              "set logscale x", "set xtics (%s)" % ", ".join("'%d' %d" % (c, c) for c in env["concs"]),
              "set xrange [%g:%g]" % (min(env["concs"]) * 0.8, max(env["concs"]) * 1.25),
              "set yrange [0:*]", "set grid", "set key top left font ',9'",
              "set xlabel 'concurrent clients'", "set ylabel 'messages/s'"]
        for size, lines in plots:
            gp.append("set title '%s messages'" % ("%d KiB" % (size // KB)))
            gp.append("plot " + ", ".join(lines))
        gp.append("unset multiplot")
        script = os.path.join(work, "receive.gp")
        with open(script, "w") as f:
            f.write("\n".join(gp) + "\n")
        p = subprocess.run([GNUPLOT, script], capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        return p.returncode == 0 and os.path.exists(path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------
# targets


def worst(R, env, num, den, sizes=None, concs=None):
    """(worst ratio num/den over the matrix, its size, its conc)"""
    out = None
    for s in sizes or env["sizes"]:
        for c in concs or env["concs"]:
            r = ratio(rate(R, s, c, num), rate(R, s, c, den))
            if r is not None and (out is None or r < out[0]):
                out = (r, s, c)
    return out


def where(R, env, num, den, w):
    """A paragraph: where the time goes at the worst point w."""
    r, s, c = w
    a, b = cpu_ms(R, s, c, num), cpu_ms(R, s, c, den)
    name = {"tcpserver": "smap under tcpserver", "tcpserver-file": "smap-file under tcpserver",
            "baseline-tcpserver": "baseline under tcpserver"}
    text = ["At %d KiB and %d clients %s received %s messages/s and %s %s (%.2f)." % (
        s // KB, c, name.get(num, num), f0(rate(R, s, c, num)), name.get(den, den),
        f0(rate(R, s, c, den)), r)]
    if a is not None and b is not None:
        text.append("CPU per message, the receiver's processes and their launcher or master: "
                    "%.2f ms against %.2f ms, %.2f ms more." % (a, b, a - b))
    cost = R.get("cost", {})
    if num in ("smap", "smap-file") and "smap" in cost and "baseline" in cost:
        text.append("One session alone (posix_spawn, no launcher): %.0f us of CPU for smap, "
                    "%.0f us for the dynamic build, %.0f us for baseline.c (medians)." % (
                        cost["smap"]["cpu_med"], cost["dynamic"]["cpu_med"], cost["baseline"]["cpu_med"]))
    pr = R.get("profile", {}).get("smap")
    if pr:
        big = sorted(((v, k) for k, v in pr["instr"].items()), reverse=True)[:3]
        calls = sorted(((v, k) for k, v in pr["count"].items()), reverse=True)[:2]
        text.append("Its profile (below): %d instructions, most in %s; %d system calls, most in %s." % (
            pr["instr_total"], ", ".join("%s (%d)" % (k, v) for v, k in big),
            sum(pr["count"].values()), ", ".join("%s (%d)" % (k, v) for v, k in calls)))
    if den == "postfix":
        text.append("Postfix's smtpd serves up to max_use sessions per process and hands the "
                    "message to cleanup(8) over a socket it keeps; smap pays exec, the jail and "
                    "the seccomp load for every connection, which at one client shows as latency "
                    "and at many as CPU.")
    return " ".join(text)


# Each receive target twice: with smap and baseline.c started by
# systemd-socket-activate, then by tcpserver (keys for each launcher).
LAUNCHED = (("", {"smap": "smap", "smap-file": "smap-file", "baseline": "baseline"}),
            (" (smap and baseline.c under tcpserver)",
             {"smap": "tcpserver", "smap-file": "tcpserver-file", "baseline": "baseline-tcpserver"}))


def receive_targets(R, env, notes):
    """The receive matrix's four targets, under each launcher measured."""
    L = []
    add = L.append
    big = [c for c in env["concs"] if c >= 10]
    small = [s for s in env["sizes"] if s < 100 * KB]
    large = [s for s in env["sizes"] if s >= 100 * KB]
    need_gap = 1 - (1 - 0.51) / 2
    for tail, k in LAUNCHED:
        for num, den, label, need, sizes, concs in (
                (k["smap"], k["baseline"], "smap (default durability) >= 0.95 x baseline.c, every "
                 "size and concurrency", 0.95, None, None),
                (k["smap-file"], "postfix", "smap at Postfix's durability (spool_fsync = file) >= "
                 "1.0 x Postfix smtpd, every size and concurrency", 1.0, None, None),
                (k["smap"], "postfix", "smap (default) >= 1.0 x Postfix at concurrency >= 10, "
                 "100 KiB", 1.0, large, big),
                (k["smap"], "postfix", "smap (default) / Postfix at 1 KiB: the gap at least halved "
                 "(0.51 before: >= %.3f)" % need_gap, need_gap, small, None)):
            if sizes == [] or concs == []:
                continue    # no such size or concurrency in this run
            w = worst(R, env, num, den, sizes=sizes, concs=concs)
            if w is None:
                continue
            extra = ""
            if not tail and num in ("smap", "smap-file") and sizes is None:
                st = worst(R, env, "dynamic" if num == "smap" else "dynamic-file", den)
                extra = ("; dynamic build: worst %.2f" % st[0]) if st else ""
            add("| %s%s | worst %.2f (%d KiB, %d clients)%s | %s |" % (
                label, tail, w[0], w[1] // KB, w[2], extra, met(w[0] >= need)))
            if w[0] < need:
                notes.append((label + tail, where(R, env, num, den, w)))
    return L


def targets(R, env):
    L = []
    add = L.append
    notes = []
    add("| target | measured | |")
    add("|---|---|---|")
    if R.get("recv"):
        L += receive_targets(R, env, notes)
    rss = R.get("rss", {})
    if "smap" in rss:
        hwm, priv = rss["smap"][:2]
        sh_, sp = rss.get("dynamic", (None, None))[:2]
        add("| one session's private memory <= 200 KiB | %d KiB (dynamic: %s KiB) | %s |" % (
            priv, sp, met(priv <= 200)))
        add("| one session's VmHWM <= 1.5 MB | %d KiB (dynamic: %s KiB) | %s |" % (
            hwm, sh_, met(hwm <= 1536)))
        if priv > 200 or hwm > 1536:
            notes.append(("memory", "The default build is static and maps only what smap has; "
                          "the dynamic one maps the shared C library, which the kernel maps in runs "
                          "around each page touched, all counted in VmHWM though shared with every "
                          "other process. Private memory is bss and stack pages written, and the "
                          "pages the loader relocates."))
    h = R.get("handoff", {})
    if "smapd" in h and "postfix" in h:
        r = h["smapd"][0] / h["postfix"][0]
        add("| smapd drain >= 2.5 x Postfix's relay rate | %.2f x | %s |" % (r, met(r >= 2.5)))
        if r < 2.5:
            notes.append(("the drain", "Both drains deliver to the same smtp-sink, whose dump files are "
                          "on a private tmpfs so that its file creation is not what is measured. For "
                          "each delivered message smapd makes the journal record durable (fdatasync), "
                          "removes the queue file and fsyncs queue/, so that a crash cannot deliver it "
                          "a second time. The run's processes make those flushes in turn, each one "
                          "covering every process that waited for it; a process waits for the "
                          "journal's before it may remove the message, and leaves the fsync of "
                          "queue/ after the removal to the run's next one, waiting for that only "
                          "once its next attempt is over. Pickup flushes the disk "
                          "once for up to 128 copies (syncfs), then fsyncs queue/ and new/. "
                          "Postfix's relay flushes nothing when it removes a delivered message. "
                          "The drain waits on the disk's flushes: at 2.5 x Postfix's rate it would "
                          "have to deliver a message every %.2f ms on two CPUs, flushes included." %
                          (1000.0 / (2.5 * h["postfix"][0]))))
    if R.get("lat"):
        p99 = pct(R["lat"], 99)
        add("| p99 smap 250 -> backend 250 <= 10 ms | %.1f ms | %s |" % (p99, met(p99 <= 10)))
        if p99 > 10:
            notes.append(("the hand-off latency", "Between smap's 250 and the backend's, smapd copies "
                          "the file into queue/, makes it durable (syncfs), names it, appends the "
                          "journal's record and fsyncs queue/ and new/; p50 %.1f ms. The tail is the "
                          "disk's slowest flushes." %
                          pct(R["lat"], 50)))
    add("")
    for title, text in notes:
        add("**Where the time goes (%s).** %s" % (title, text))
        add("")
    return L


# --------------------------------------------------------------------------
# tables


def t_receive(R, env, receivers):
    L = []
    add = L.append
    keys = [k for k in ("smap", "smap-file", "dynamic", "dynamic-file", "baseline", "postfix", "opensmtpd")
            if any((s, c, k) in R["recv"] for s in env["sizes"] for c in env["concs"])]
    head = ["%s (%s)" % (receivers[k][0], receivers[k][2]) for k in keys]
    pairs = [("smap", "baseline"), ("smap-file", "postfix"), ("dynamic", "baseline"),
             ("dynamic-file", "postfix"), ("smap", "postfix")]
    pairs = [p for p in pairs if p[0] in keys and p[1] in keys]
    short = {"smap": "smap", "smap-file": "smap file", "dynamic": "dynamic", "dynamic-file": "dynamic file",
             "baseline": "baseline", "postfix": "Postfix"}
    add("| size | clients | msgs/run | " + " | ".join(head) + " | " +
        " | ".join("%s / %s" % (short[a], short[b]) for a, b in pairs) + " |")
    add("|---" * (3 + len(keys) + len(pairs)) + "|")
    for s in env["sizes"]:
        for c in env["concs"]:
            row = ["%d KiB" % (s // KB), str(c), str(env["count"][c])]
            row += [f0(rate(R, s, c, k)) for k in keys]
            row += [f2(ratio(rate(R, s, c, a), rate(R, s, c, b))) for a, b in pairs]
            add("| " + " | ".join(row) + " |")
    add("")
    add("CPU per message (ms: the receiver's processes, with its launcher or Postfix's master and "
        "helpers, from /proc; the client's not counted):")
    add("")
    add("| size | clients | " + " | ".join(head) + " |")
    add("|---" * (2 + len(keys)) + "|")
    for s in env["sizes"]:
        for c in env["concs"]:
            add("| %d KiB | %d | %s |" % (s // KB, c, " | ".join(f2(cpu_ms(R, s, c, k)) for k in keys)))
    return L


def t_launchers(R, env):
    keys = [k for k in ("smap", "tcpserver", "xinetd", "tcpserver-file", "baseline-tcpserver")
            if any((s, c, k) in R["recv"] for s in env["sizes"] for c in env["concs"])]
    if len(keys) < 2:
        return []
    names = {"smap": "smap, systemd-socket-activate", "tcpserver": "smap, tcpserver",
             "xinetd": "smap, xinetd", "tcpserver-file": "smap (file), tcpserver",
             "baseline-tcpserver": "baseline.c, tcpserver"}
    pairs = [p for p in (("tcpserver", "baseline-tcpserver"), ("tcpserver-file", "postfix"),
                         ("tcpserver", "postfix")) if p[0] in keys and
             any((s, c, p[1]) in R["recv"] for s in env["sizes"] for c in env["concs"])]
    short = {"tcpserver": "smap", "tcpserver-file": "smap file", "baseline-tcpserver": "baseline",
             "postfix": "Postfix"}
    L = ["| size | clients | " + " | ".join("%s msg/s (ms CPU)" % names[k] for k in keys) + " | " +
         " | ".join("tcpserver: %s / %s" % (short[a], short[b]) for a, b in pairs) + " |",
         "|---" * (2 + len(keys) + len(pairs)) + "|"]
    for s in env["sizes"]:
        for c in env["concs"]:
            L.append("| %d KiB | %d | %s |" % (s // KB, c, " | ".join(
                ["%s (%s)" % (f0(rate(R, s, c, k)), f2(cpu_ms(R, s, c, k))) for k in keys] +
                [f2(ratio(rate(R, s, c, a), rate(R, s, c, b))) for a, b in pairs])))
    return L


def t_flood(R, env, receivers):
    fl = R["flood"]
    keys = [k for k in ("smap", "dynamic", "tcpserver", "baseline", "baseline-tcpserver", "postfix")
            if any((c, k) in fl for c in env["flood_concs"])]
    L = ["| clients | " + " | ".join("%s sessions/s" % receivers[k][0] for k in keys) + " | " +
         " | ".join("%s ms CPU/session" % receivers[k][0] for k in keys) + " |",
         "|---" * (1 + 2 * len(keys)) + "|"]
    for c in env["flood_concs"]:
        L.append("| %d | %s | %s |" % (c, " | ".join(f0(med(fl.get((c, k)))) for k in keys),
                                       " | ".join(f2(med(fl.get((c, k)), 1) * 1e3 if fl.get((c, k)) else None)
                                                  for k in keys)))
    return L


def t_session(R):
    c, rss, ins = R.get("cost", {}), R.get("rss", {}), R.get("instr", {})
    cols = [("smap", "smap"), ("dynamic", "smap dynamic"), ("baseline", "baseline.c"),
            ("postfix", "Postfix smtpd")]
    L = ["| | " + " | ".join(n for _, n in cols) + " |", "|---" * (1 + len(cols)) + "|"]

    def row(label, fn):
        L.append("| %s | %s |" % (label, " | ".join(fn(k) for k, _ in cols)))
    row("CPU per session, median (min), us", lambda k: "%.0f (%.0f)" % (
        c[k]["cpu_med"], c[k]["cpu_min"]) if k in c else "-")
    row("minor page faults, median", lambda k: "%.0f" % c[k]["flt_med"] if k in c else "-")
    row("VmHWM after the 250, KiB", lambda k: "%d" % rss[k][0] if k in rss else "-")
    row("private memory then (Private_Clean + Private_Dirty), KiB",
        lambda k: "%d" % rss[k][1] if k in rss else "-")
    row("of which written (Private_Dirty), KiB",
        lambda k: "%d" % rss[k][2] if k in rss and len(rss[k]) > 2 else "-")
    row("instructions (callgrind, user space, exec to exit)",
        lambda k: "{:,}".format(ins[k]) if k in ins else "not measured")
    return L


def t_profile(R):
    pr = R["profile"]
    d = pr["smap"]
    st = pr.get("dynamic", d)
    L = ["| phase | system calls | dynamic | strace -T, ms | instructions | dynamic | the calls |",
         "|---|---|---|---|---|---|---|"]
    for ph in d["count"]:
        what = ", ".join("%s %d" % kv for kv in sorted(d["calls"][ph].items(), key=lambda kv: -kv[1])[:6])
        L.append("| %s | %d | %d | %.2f | %s | %s | %s |" % (
            ph, d["count"][ph], st["count"][ph], d["time"][ph] * 1e3, "{:,}".format(d["instr"].get(ph, 0)),
            "{:,}".format(st["instr"].get(ph, 0)), what))
    L.append("| total | %d | %d | %.2f | %s | %s | |" % (
        sum(d["count"].values()), sum(st["count"].values()), sum(d["time"].values()) * 1e3,
        "{:,}".format(d["instr_total"]), "{:,}".format(st["instr_total"])))
    return L


def t_fsync(R, receivers):
    n = R["fsync"]["n"]
    L = ["| | fsync | fdatasync | per message |", "|---|---|---|---|"]
    for k, label in (("smap", "smap, file+directory"), ("smap-file", "smap, spool_fsync = file"),
                     ("postfix", "Postfix"), ("opensmtpd", "OpenSMTPD")):
        if k in R["fsync"]:
            c = R["fsync"][k]
            L.append("| %s | %d | %d | %.2f |" % (label, c["fsync"], c["fdatasync"],
                                                  (c["fsync"] + c["fdatasync"]) / n))
    return L


def t_handoff(R, env):
    h = R["handoff"]
    L = ["smtp-sink writes one file per message, on a private tmpfs.", "",
         "| | messages/s | messages | seconds |", "|---|---|---|---|"]
    for k, label in (("smapd", "smapd draining the spool (smtp: transport, its default of 20 processes)"),
                     ("smapd1", "smapd with default_destination_concurrency_limit = 1"),
                     ("postfix", "Postfix relaying its queue (postsuper -H ALL; postqueue -f)")):
        if k in h:
            L.append("| %s | %.0f | %d | %.1f |" % (label, h[k][0], env["drain_n"], h[k][1]))
    if R.get("lat"):
        lat = R["lat"]
        L += ["", "Latency from smap's 250 to smtp-sink's 250 for the data (strace -ttt of the sink), "
              "smapd idle, %d messages one at a time: p50 %.1f ms, p99 %.1f ms, max %.1f ms." % (
                  len(lat), pct(lat, 50), pct(lat, 99), max(lat))]
    return L


# --------------------------------------------------------------------------


def conditions(info, env):
    L = []
    add = L.append
    if not env.get("quiet", True):
        add("**Taken under load: the 1-minute load average was %.2f when the measured runs started "
            "(after waiting %.0fs of at most %ds for it to fall below 0.7) and %.2f at the end; "
            "other jobs shared the 2 CPUs. Ratios from the same run are fairer than the absolute "
            "figures; re-measure on a quiet machine before relying on either.**" % (
                env["load_start"], env["waited"], env["load_wait"], env.get("load_end", 0)))
        add("")
    add("Command: `make bench` (tools/deps bench, then `python3 bench/run.py`)%s, %s, smap %s%s." % (
        " with BENCH_ONLY=%s BENCH_RECEIVERS=%s" % (",".join(env["parts"]), ",".join(env["receivers"]))
        if env["partial"] else "", env["date"], info["rev"], " (with uncommitted changes)"
        if info.get("dirty") else ""))
    add("")
    add("Machine: %s CPUs (`nproc`), %s, kernel %s, %s RAM, Postfix %s." % (
        info["nproc"], info["os"], info["kernel"], info["mem"], info["postfix"]))
    add("Filesystem of every spool and queue: %s." % env["fs"])
    if "load_start" in env:
        add("Load average (1 min): %.2f at the start of the measured runs, %.2f at the end." % (
            env["load_start"], env.get("load_end", 0)))
    add("")
    add("```")
    add(info["lscpu"])
    add("```")
    return L


def report(R, info, env, receivers, chart_path):
    L = ["# smap benchmarks", "",
         "Written by `make bench` (bench/run.py, bench/report.py); the same text is printed at the "
         "end of the run.", ""]
    add = L.append
    if chart(R, env, chart_path):
        add("![Receive: messages/s against concurrent clients, per receiver and durability level]"
            "(%s)" % os.path.basename(chart_path))
        add("")
    if env.get("error"):
        add("**This run stopped early (%s): the tables below have what it measured before.**" %
            env["error"])
        add("")
    for key, why in sorted(env.get("failed", {}).items()):
        add("**%s left out of the receive matrix: its run failed (%s).**" % (
            receivers.get(key, (key,))[0], why))
        add("")
    add("### Targets")
    add("")
    L += targets(R, env)
    L += conditions(info, env)
    add("")
    if R.get("recv"):
        add("### Receive: smtp-source, one message per connection, messages/s (median of %d)" % env["repeats"])
        add("")
        L += t_receive(R, env, receivers)
        add("")
        add("Durability: smap file+directory fsyncs the file and new/ before its 250 (the "
            "baseline.c does the same); smap with spool_fsync = file and Postfix fsync the file "
            "only, and rely on the file system to make its name durable with it; OpenSMTPD "
            "answers 250 without an fsync. Each level is compared with the peer of the same level. "
            "smap and baseline.c start a process per connection (fork and exec by "
            "systemd-socket-activate --accept --inetd, the inetd model; the launchers table below "
            "has both under tcpserver too, and the targets above are given under each); Postfix's "
            "smtpd serves "
            "many connections per process (max_use 100 here). smap is the default build, linked "
            "with -static-pie (no loader) and %s's C library; smap dynamic is smap/smap-dynamic, the same code linked "
            "with the shared C library, which a static smap runs in its place when TLS is on "
            "(and what make STATIC=0 builds as smap/smap)." % env.get("libc", "the build's"))
        if env.get("osmtpd"):
            add("")
            add("OpenSMTPD %s (Debian's package, unpacked with `dpkg-deb -x`: it conflicts with "
                "postfix) ran in private mount and network namespaces with a resolv.conf naming no "
                "server, its queue on the same filesystem, mta and mda paused (`-P mta -P mda`) so "
                "that it holds what it accepts; smtp-source ran in its namespace (nsenter). Its "
                "build listens with a backlog of 5; here bench/listen_shim.so (LD_PRELOAD) made "
                "listen(2) ask for 4096, and the kernel reported a backlog of %s for its socket "
                "(ss -ltn), so its column is its speed, not its queue of pending connections." % (
                    env["osmtpd"], env.get("osmtpd_backlog")))
        elif "opensmtpd" in env["receivers"] and "osmtpd_skip" in env:
            add("")
            add("OpenSMTPD not run: %s" % env["osmtpd_skip"])
        add("")
        add("Every run was checked: files in smap's (and baseline's) new/ == messages sent; Postfix: "
            "`postqueue -p` count == files in the hold queue == messages sent; OpenSMTPD: message "
            "files in its queue == messages sent.")
        add("")
        la = t_launchers(R, env)
        if la:
            add("### Launchers: smap (file+directory unless named) under each, messages/s (CPU per "
                "message, ms)")
            add("")
            L += la
            add("")
            add("tcpserver ran with -H -R -l 0 (no DNS or ident lookups), -c 1000 (its default "
                "allows 40 sessions at once) and -b 1024 (its default backlog is 20); xinetd with "
                "the shipped entry's settings but instances, per_source and cps lifted (the shipped "
                "cps = 50 10 pauses the service for 10 s after 50 connections in a second). "
                "systemd's own socket activation (smap.socket, Accept=yes) starts a service "
                "instance per connection and was not measured here.")
            add("")
    if R.get("flood"):
        add("### Connection flood: connect, EHLO, QUIT (bench/flood.c, %d sessions a run, median of %d)" % (
            env["flood_n"], env["repeats"]))
        add("")
        L += t_flood(R, env, receivers)
        add("")
        add("What spam bots do most. CPU per session: every process of the receiver (smap and its "
            "launcher; Postfix's master, smtpd, anvil and the rest), from /proc.")
        add("")
    if R.get("cost") or R.get("rss"):
        add("### Cost per session (1 KiB message)")
        add("")
        L += t_session(R)
        add("")
        add("CPU and faults: the session's own process, started with posix_spawn (no launcher), "
            "its rusage at exit; the three programs in turn, %d sessions each, so that each meets "
            "the same noise. Memory: VmHWM and smaps_rollup of the process holding the connection "
            "after the 250, before QUIT, a first session of the same server held open at its 250 "
            "too, so that the program's text, shared by every session, is not counted as the "
            "second one's own (the median of seven such pairs: which text pages a session maps that "
            "the first has not changes from pair to pair); Postfix smtpd's is a fresh smtpd's (its first session), "
            "and a Postfix session also runs cleanup(8), trivial-rewrite(8) and others, not "
            "counted. Instructions: valgrind's callgrind (`perf stat -e instructions` is not "
            "supported on this machine); valgrind cannot run under seccomp, so the smaps counted "
            "are smap/smap-static-vg and smap/smap-vg: the same builds linked with "
            "tests/nosandbox.c in place of the filter." % int(os.environ.get("BENCH_SESSIONS", "300")))
        add("")
    if R.get("profile"):
        add("### Where one session's time goes")
        add("")
        L += t_profile(R)
        add("")
        add("One 1 KiB session (EHLO, MAIL, RCPT, DATA, QUIT), the default (static) build and "
            "the dynamic one. System calls: strace -f -T, each call put in a phase by what it touches "
            "(bench/session_profile.py); strace's own cost per call inflates its times, so the column says "
            "where the kernel time goes, not how much there is. Instructions: callgrind, inclusive, "
            "by the function that starts each phase (startup_load, startup_log and log_msg, "
            "layout_users and jail_user, layout_check_config, jail_enter, store_* and "
            "layout_commit); the SMTP dialogue is main's rest, exec and dynamic loading "
            "everything before main. \"users\" is mail_owner and smapd_user: read from "
            "/etc/passwd when nsswitch.conf sends passwd to files first (common/jail.c).")
        add("")
    path = os.path.join(HERE, "CHANGES.md")
    if os.path.exists(path):
        with open(path) as f:
            add(f.read().rstrip())
        add("")
    if R.get("fsync"):
        add("### fsync per message (strace -f -c -e trace=fsync,fdatasync, %d messages, 1 KiB)" %
            R["fsync"]["n"])
        add("")
        L += t_fsync(R, receivers)
        add("")
    if R.get("handoff"):
        add("### Hand-off to smtp-sink (1 KiB messages)")
        add("")
        L += t_handoff(R, env)
        add("")
    return "\n".join(L) + "\n"
