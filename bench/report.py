#!/usr/bin/env python3
"""Turns bench/run.sh's results.tsv and machine.txt into the Markdown results page.

Every figure is the median over the runs of that contender, each metric on its own.
CPU = user + system seconds of the process and every child it waited for (GNU time).
Peak RSS = the largest resident set of any single process in the tree (GNU time's %M).
MB = 10^6 bytes.
"""
import csv
import statistics
import sys

LABELS = {
    "cja-l6": "connect-job-archiver --once, level 6",
    "base-l6": "baseline archiver (BENCH_BASELINE) --once, level 6",
    "cja-l1": "connect-job-archiver --once, level 1",
    "cja-l6-1cpu": "connect-job-archiver --once, level 6, on 1 CPU (taskset -c 0)",
    "requests": "Python: requests + gzip, sequential, level 6",
    "curl": "shell: curl + jq + gzip -6, per job",
    "floor": "floor: gzip -6 over all logs as one stream",
}
ORDER = ["cja-l6", "base-l6", "cja-l1", "cja-l6-1cpu", "requests", "curl", "floor"]


def med(rows, f):
    return statistics.median(f(r) for r in rows)


def cpu(r):
    return float(r["user"]) + float(r["sys"])


def mb(n):
    return n / 1e6


def fmt(x, d=2):
    return ("%." + str(d) + "f") % x


def main():
    rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
    machine = dict(l.rstrip("\n").split("=", 1) for l in open(sys.argv[2]) if "=" in l)
    by = {}
    for r in rows:
        by.setdefault((r["group"], r["contender"]), []).append(r)

    out = []
    p = out.append
    p("# connect-job-archiver benchmark results")
    p("")
    p("Machine: %s CPUs (%s), %s, kernel %s, %s; disk %s." % (
        machine.get("nproc"), machine.get("cpu"), machine.get("mem"), machine.get("kernel"),
        machine.get("os"), machine.get("disk")))
    p("Software: %s; nginx %s; Python %s; %s." % (
        machine.get("archiver"), machine.get("nginx"), machine.get("python"),
        machine.get("tools")))
    if machine.get("baseline"):
        p("Baseline (base-l6): %s." % machine.get("baseline"))
    p("Parameters: %s." % machine.get("params"))
    if machine.get("load"):
        p("Load average (1, 5, 15 min): %s." % machine.get("load"))
    p("")

    main_rows = [r for r in rows if r["group"] == "main"]
    if main_rows:
        jobs = int(main_rows[0]["jobs"])
        nbytes = int(main_rows[0]["log_bytes"])
        p("## Main workload: %d jobs, %.1f MB of logs" % (jobs, mb(nbytes)))
        p("")
        floor = by.get(("main", "floor"))
        fl_cpu = med(floor, cpu) if floor else None
        fl_wall = med(floor, lambda r: float(r["wall"])) if floor else None
        fl_user = med(floor, lambda r: float(r["user"])) if floor else None
        p("| contender | runs | wall s | CPU s | user s | user ÷ floor user | wall ÷ floor wall | "
          "peak RSS MB | jobs/s | MB/s | archive MB | nginx CPU s | verified |")
        p("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
        for name in ORDER:
            rs = by.get(("main", name))
            if not rs:
                continue
            wall = med(rs, lambda r: float(r["wall"]))
            c = med(rs, cpu)
            rss = med(rs, lambda r: int(r["rss_kb"]) * 1024)
            ng = med(rs, lambda r: float(r["nginx_cpu"]))
            ab = med(rs, lambda r: int(r["archive_bytes"]))
            bad = [r for r in rs if r["rc"] != "0"]
            ver = "-" if name == "floor" else (
                "all %d ok" % len(rs) if all(r["verify"] == "ok" for r in rs) else
                "%d of %d FAILED" % (sum(r["verify"] != "ok" for r in rs), len(rs)))
            if bad:
                ver += "; %d exited non-zero" % len(bad)
            u = med(rs, lambda r: float(r["user"]))
            p("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                LABELS[name], len(rs), fmt(wall), fmt(c), fmt(u),
                fmt(u / fl_user) if fl_user else "-", fmt(wall / fl_wall) if fl_wall else "-",
                fmt(mb(rss), 1),
                "-" if name == "floor" else fmt(jobs / wall, 0),
                fmt(mb(nbytes) / wall, 1),
                "-" if name == "floor" else fmt(mb(ab), 1),
                "-" if name == "floor" else fmt(ng), ver))
        p("")

    extra = []
    for key, label in [(("idle", "idle-cycle"), None), (("idle", "first-pass"), None),
                       (("big", "cja-l6"), None), (("big", "base-l6"), None),
                       (("big", "floor"), None)]:
        rs = by.get(key)
        if rs:
            extra.append((key, rs))
    if extra:
        p("## connect-job-archiver alone, and the one large log")
        p("")
        p("| scenario | runs | wall s | CPU s | peak RSS MB | MB/s | verified |")
        p("|---|--:|--:|--:|--:|--:|---|")
        for (group, name), rs in extra:
            wall = med(rs, lambda r: float(r["wall"]))
            nb = int(rs[0]["log_bytes"])
            if group == "idle" and name == "idle-cycle":
                label = "idle cycle: %s content items, nothing new" % _param(machine, "idle_items")
            elif group == "idle":
                label = "first pass over those items (%s jobs, %.1f MB)" % (rs[0]["jobs"], mb(nb))
            elif name == "floor":
                label = "floor: gzip -6 over that log"
            elif name == "base-l6":
                label = "baseline archiver, the same log (level 6)"
            else:
                label = "one log of %.1f MB (level 6)" % mb(nb)
            ver = "-" if rs[0]["verify"] == "-" else (
                "ok" if all(r["verify"] == "ok" for r in rs) else "FAILED")
            if any(r["rc"] != "0" for r in rs):
                ver += "; exited non-zero"
            p("| %s | %d | %s | %s | %s | %s | %s |" % (
                label, len(rs), fmt(wall, 3), fmt(med(rs, cpu), 3),
                fmt(mb(med(rs, lambda r: int(r["rss_kb"]) * 1024)), 1),
                fmt(mb(nb) / wall, 1) if nb else "-", ver))
        p("")

    # Targets.
    t = []
    a6 = by.get(("main", "cja-l6"))
    a6p = by.get(("main", "cja-l6-1cpu"))
    floor = by.get(("main", "floor"))
    base = by.get(("main", "base-l6"))
    if a6 and floor:
        fu, fw = med(floor, lambda r: float(r["user"])), med(floor, lambda r: float(r["wall"]))
        u6, w6 = med(a6, lambda r: float(r["user"])), med(a6, lambda r: float(r["wall"]))
        t.append(("user CPU ≤ 0.6 × gzip -6 floor user CPU",
                  "%.2f s vs %.2f s floor = %.2f×" % (u6, fu, u6 / fu), u6 <= 0.6 * fu))
        t.append(("wall ≤ 0.5 × single-core gzip -6 floor wall",
                  "%.2f s vs %.2f s floor = %.2f×" % (w6, fw, w6 / fw), w6 <= 0.5 * fw))
        if a6p:
            wp = med(a6p, lambda r: float(r["wall"]))
            t.append(("(archiver pinned to 1 CPU: wall ≤ 1.3 × floor)",
                      "%.2f s vs %.2f s floor = %.2f×" % (wp, fw, wp / fw), wp <= 1.3 * fw))
    if a6 and base:
        s6, sb = med(a6, lambda r: int(r["archive_bytes"])), med(base, lambda r: int(r["archive_bytes"]))
        t.append(("archive size ≤ 1.02 × baseline's (level 6)",
                  "%.2f MB vs %.2f MB = %+.1f %%" % (mb(s6), mb(sb), 100.0 * (s6 / sb - 1)),
                  s6 <= 1.02 * sb))
    big_a, big_f = by.get(("big", "cja-l6")), by.get(("big", "floor"))
    if big_a and big_f:
        wa, wf = med(big_a, lambda r: float(r["wall"])), med(big_f, lambda r: float(r["wall"]))
        t.append(("one large log: wall ≤ 0.4 × gzip -6 over it",
                  "%.2f s vs %.2f s = %.2f×" % (wa, wf, wa / wf), wa <= 0.4 * wf))
    if a6:
        r6 = mb(med(a6, lambda r: int(r["rss_kb"]) * 1024))
        t.append(("peak RSS ≤ 20 MB (main workload)", "%.1f MB" % r6, r6 <= 20))
    big = by.get(("big", "cja-l6"))
    if big:
        rb = mb(med(big, lambda r: int(r["rss_kb"]) * 1024))
        t.append(("peak RSS ≤ 20 MB (%.0f MB log)" % mb(int(big[0]["log_bytes"])), "%.1f MB" % rb,
                  rb <= 20))
    idle = by.get(("idle", "idle-cycle"))
    if idle:
        wi = med(idle, lambda r: float(r["wall"]))
        t.append(("idle cycle over %s items < 1 s wall" % _param(machine, "idle_items"),
                  "%.3f s (CPU %.3f s)" % (wi, med(idle, cpu)), wi < 1.0))
    if t:
        p("## Targets")
        p("")
        p("| target | measured (medians) | met |")
        p("|---|---|---|")
        for name, val, ok in t:
            p("| %s | %s | %s |" % (name, val, "yes" if ok else "**no**"))
        p("")

    p("## Every run")
    p("")
    p("| group | contender | run | exit | wall s | user s | sys s | peak RSS KiB | nginx CPU s | verify |")
    p("|---|---|--:|--:|--:|--:|--:|--:|--:|---|")
    for r in rows:
        p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["group"], r["contender"], r["run"], r["rc"], r["wall"], r["user"], r["sys"],
            r["rss_kb"], r["nginx_cpu"], r["verify"]))
    p("")
    p("Medians of each metric over the runs. CPU = user + system of the process and all the "
      "children it waited for; peak RSS = the largest single process (GNU time `%M`); "
      "MB = 10^6 bytes; MB/s = uncompressed log bytes ÷ wall; nginx CPU = what the server's "
      "worker used during the run (not counted in CPU s).")
    print("\n".join(out))


def _param(machine, key):
    for part in machine.get("params", "").split():
        k, _, v = part.partition("=")
        if k == key:
            return "{:,}".format(int(v)) if v.isdigit() else v
    return "?"


if __name__ == "__main__":
    main()
