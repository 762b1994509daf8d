#!/usr/bin/env python3
"""Turn the raw results of bench/run.sh into the markdown report.

    report.py --raw raw.tsv --machine machine.txt --notes notes.txt \
              --allocs "glibc jemalloc ..." [--refs "emptydso ..."] [--quick] [--plot burst.png]

raw.tsv has one line per value: round, allocator, benchmark, metric, value,
unit. For every metric the report shows each allocator's median over the
rounds, its ratio to the best peer of the same run (the peers are every
allocator but btmalloc; "best" is the lowest value, or the highest for Mops),
and btmalloc's ratio to glibc; a cell whose rounds spread by more than 10% of
the median says so. A table of the targets from the issues comes first.
References (--refs: run.sh's empty preloaded libraries) get their own columns
where they have values and are never peers; with them, a table of the start-up
floor follows the targets.
"""
import argparse
import collections
import statistics
import sys

BTM = "btmalloc"
# The reference that start-up cannot go under: an empty library linked
# without the C start files (run.sh).
FLOOR = "emptydso_nocrt"
FLOOR_METRICS = ["true_Ir", "true_wall", "pipe20_Ir", "pipe20_wall"]
HIGHER_IS_BETTER = {"Mops"}
# Facts about the workload, the same under every allocator: no ratios.
INFO_METRICS = {"burst_settled_live"}

SECTIONS = [
    ("churn", "Single-thread churn",
     "A ring of 256 live objects of one size; each operation frees a random slot and mallocs "
     "its replacement (`_new`: operator new and sized delete; `mixed`: each size drawn from "
     "the mixed small sizes, 16-1024 B). ns per malloc+free, thread CPU "
     "time, in the fastest of 10 slices of a run."),
    ("sites", "Many call sites",
     "64 B churn as above (window 1024) with the mallocs spread over 1, 256 or 1024 distinct call "
     "sites (each its own function; 1024 with mixed 16-512 B sizes); ns per malloc+free (thread "
     "CPU time) in the fastest of 10 slices; sitesN_rss is the resident set at the end, in MiB."),
    ("local", "Thread-local throughput",
     "Each thread mallocs a batch of 256 mixed small objects (16-1024 B) and frees them itself. "
     "Millions of malloc+free per second, summed over threads, in the best of 10 time windows."),
    ("prodcons", "Producer/consumer (cross-thread free)",
     "One thread mallocs, passes the pointer through a lock-free ring, the other frees. "
     "Millions of objects per second, in the best of 10 time windows."),
    ("scratch", "Handed-over objects, touched (cache-scratch)",
     "The main thread allocates one 1-byte object per worker and hands it over; each worker frees "
     "it, then 1000 times allocates a 1-byte object, writes and reads it 200k times, frees it. "
     "Wall time in ms of 1 and 2 workers: where the allocator puts the object is all of it."),
    ("mtstress", "Mixed sizes and lifetimes, 2 threads",
     "Each thread does 1M operations: 70% replace one of 64 short-lived objects, 20% one of 4000 "
     "long-lived ones, 10% swap a new object into a table shared by the threads and free what "
     "comes out; sizes 90% 16-1024 B, 9% 1-16 KiB, 1% 16-128 KiB. Wall time in ms."),
    ("latency", "malloc latency",
     "Per-call latency of malloc under a mixed workload whose live set swings between 3k and "
     "60k objects (sizes 16 B-1 MiB, mostly small), TSC-timed, timer cost subtracted. The TSC "
     "of this VM ticks in ~10 ns steps: percentiles are quantised to that, the mean is not."),
    ("scatter16k", "16 KiB scattered free",
     "4096 blocks of 16 KiB allocated, touched, then freed in random order, repeated; ns per "
     "free, per malloc, and per block for the whole cycle including the page touches."),
    ("burst", "Burst and aftermath (resident memory)",
     "400k objects of 16-1024 B from 8 call sites grown and churned, a random 90% freed, the "
     "survivors replaced at a steady pace (settle), then everything freed; no malloc_trim. RSS in "
     "MiB at each point; ratios are RSS over the live bytes at that point; drained is measured "
     "after a pause, drained_over_start is drained minus the RSS before the burst."),
    ("large_reuse", "Large blocks reused",
     "20 live buffers of 5-25 MiB, one replaced at random 2,000 times, each value-initialised "
     "(`new char[n]()`; `large_calloc_`: calloc); then all freed and idle. Wall and CPU time of the "
     "replacements in ms, their minor page faults, peak RSS and RSS at the end of the idle in MiB."),
    ("startup", "Short-lived processes",
     "/bin/true (1000 runs) and a 20-command shell pipeline (100 runs), every process preloaded: "
     "median wall time of a run in ms, mean CPU time (user+system) and system time of a run in ms, "
     "mean minor page faults of a run (all processes), the largest peak RSS of a process in MiB, and callgrind instructions (Ir) of one run summed "
     "over all its processes (first round only: they do not vary)."),
    ("hotpath", "Hot path instructions (callgrind)",
     "Instructions per malloc(64)+free: the difference between callgrind runs of two lengths "
     "divided by the difference in pairs. pair = free right after malloc; batch100 = 100 mallocs "
     "then 100 frees."),
    ("python", "Real program: Python",
     "bench/workloads/pyalloc.py with PYTHONMALLOC=malloc (dicts, lists, strings, JSON): wall "
     "time, CPU time (user+system) and system time in ms, minor page faults, peak RSS in MiB."),
    ("pss", "Per-process memory (machine-wide preload)",
     "Each program runs with its allocator named in /etc/ld.so.preload (a private mount "
     "namespace; bench/pss_probe.sh). `_pss`/`_anon`: Pss and anonymous Pss in KB of a process "
     "asleep after its start (python3 -c, perl -e, sh -c, sleep, an idle dbus-daemon); "
     "`idle_sum_pss` their sum; `_maxrss`: peak RSS in KB of python3 -c pass, perl -e 1, "
     "ls -la /usr/bin, sh -c true (median of 5)."),
    ("daemons", "Idle daemons (machine-wide preload)",
     "Ten Debian services (cron, rsyslog, dbus-daemon, sshd, nginx, postgres, redis, memcached, "
     "lighttpd, dnsmasq; bench/install-daemons.sh) started in the foreground with minimal "
     "configurations under /etc/ld.so.preload in a private mount namespace "
     "(bench/daemons_probe.sh); `d_<service>_pss`: Pss in KB of the service's process tree "
     "5 s after the start, `daemons_sum_pss` their sum."),
    ("gcc", "Real program: gcc",
     "gcc -O2 -c of a generated C file (bench/workloads/gen_c.py): wall time and CPU time "
     "(driver, cc1 and as; user+system, and system alone) in ms, minor page faults, peak RSS (of the largest process, cc1) in MiB."),
]

# (what, metric, reference, bound): passes when cost <= bound, where cost is
# btmalloc / reference (reference / btmalloc for higher-is-better metrics);
# reference "best" = best peer, "glibc", or "abs" = the bound is absolute.
TARGETS = [
    ("64 B churn within 1.3x of the fastest peer", "churn_64B", "best", 1.3),
    ("producer/consumer (64 B) at least as fast as the best peer", "prodcons_64B", "best", 1.0),
    ("malloc p999 no worse than the best peer", "lat_p999", "best", 1.0),
    ("/bin/true wall time within 5% of glibc", "true_wall", "glibc", 1.05),
    ("/bin/true instructions within 5% of glibc", "true_Ir", "glibc", 1.05),
    ("20-command pipeline wall time within 5% of glibc", "pipe20_wall", "glibc", 1.05),
    ("20-command pipeline instructions within 5% of glibc", "pipe20_Ir", "glibc", 1.05),
    ("Python wall time within 1.10x of glibc", "python_wall", "glibc", 1.10),
    ("Python peak RSS within 1.10x of glibc", "python_maxrss", "glibc", 1.10),
    ("gcc wall time within 1.10x of glibc", "gcc_wall", "glibc", 1.10),
    ("gcc peak RSS within 1.10x of glibc", "gcc_maxrss", "glibc", 1.10),
    ("burst: right after the 90% shrink at most 6x the live bytes", "burst_shrink_ratio", "abs", 6.0),
    ("burst: settled RSS at most 2.0x the live bytes", "burst_settled_ratio", "abs", 2.0),
    ("burst: settled RSS below every peer", "burst_settled_rss", "best", 1.0),
    ("burst: drained within 10 MiB of the starting RSS", "burst_drained_over_start", "abs", 10.0),
    ("burst: drained RSS below every peer", "burst_drained_rss", "best", 1.0),
    ("16 KiB scattered free no slower than 2x glibc", "scatter16k_free", "glibc", 2.0),
    ("large blocks reused: no slower than glibc", "large_reuse_wall", "glibc", 1.0),
    ("large blocks reused: within 1.1x of the best peer", "large_reuse_wall", "best", 1.1),
    ("large blocks reused, CPU time: no more than glibc", "large_reuse_cpu", "glibc", 1.0),
    ("large blocks reused, CPU time: within 1.1x of the best peer", "large_reuse_cpu", "best", 1.1),
    ("python3 asleep: Pss within 5% of glibc", "py_sleep_pss", "glibc", 1.05),
    ("perl asleep: Pss within 5% of glibc", "perl_sleep_pss", "glibc", 1.05),
    ("idle processes: summed Pss no more than glibc's", "idle_sum_pss", "glibc", 1.0),
    ("idle daemons: summed Pss no more than glibc's", "daemons_sum_pss", "glibc", 1.0),
    ("ls -la: peak RSS within 5% of glibc", "ls_la_maxrss", "glibc", 1.05),
    ("sh -c true: peak RSS within 5% of glibc", "sh_true_maxrss", "glibc", 1.05),
]


def fmt(v):
    a = abs(v)
    if a >= 100000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def load(path):
    """{metric: {alloc: [values]}}, {metric: unit}, {metric: bench}, metric order."""
    values = collections.defaultdict(lambda: collections.defaultdict(list))
    units, bench_of, order = {}, {}, []
    with open(path) as f:
        next(f)
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 6:
                continue
            _, alloc, bench, metric, value, unit = parts
            try:
                v = float(value)
            except ValueError:
                continue
            values[metric][alloc].append(v)
            units[metric] = unit
            bench_of[metric] = bench
            if metric not in order:
                order.append(metric)
    return values, units, bench_of, order


class Metric:
    def __init__(self, name, unit, per_alloc, refs=()):
        self.name = name
        self.unit = unit
        self.higher = unit in HIGHER_IS_BETTER
        self.median = {a: statistics.median(v) for a, v in per_alloc.items() if v}
        self.spread = {a: (max(v) - min(v)) / abs(statistics.median(v)) if statistics.median(v) else 0.0
                       for a, v in per_alloc.items() if v}
        self.rounds = {a: len(v) for a, v in per_alloc.items()}
        peers = {a: m for a, m in self.median.items() if a != BTM and a not in refs}
        self.best_peer = None
        if peers and name not in INFO_METRICS:
            pick = max if self.higher else min
            self.best_peer = pick(peers, key=peers.get)

    def ratio(self, alloc, ref):
        """value(alloc) / value(ref), or None."""
        a, r = self.median.get(alloc), self.median.get(ref)
        if a is None or r is None or r == 0:
            return None
        return a / r

    def cost(self, alloc, ref):
        """Like ratio, oriented so that above 1 is worse."""
        x = self.ratio(alloc, ref)
        if x is None:
            return None
        if self.higher:
            return 1 / x if x else float("inf")
        return x


def table(metrics, allocs, refs=()):
    has_btm = BTM in allocs
    shown_refs = [r for r in refs if any(r in m.median for m in metrics)]
    has_floor = has_btm and FLOOR in shown_refs
    allocs = allocs + shown_refs
    head = ["metric", "unit", "better"] + allocs + ["best peer"]
    if has_btm:
        head += ["btmalloc ÷ best peer", "btmalloc ÷ glibc"]
    if has_floor:
        head += [f"btmalloc ÷ {FLOOR}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in metrics:
        info = m.name in INFO_METRICS
        row = [f"`{m.name}`", m.unit, "" if info else ("higher" if m.higher else "lower")]
        for a in allocs:
            if a not in m.median:
                row.append("—")
                continue
            cell = fmt(m.median[a])
            if m.best_peer == a:
                cell = f"**{cell}**"
            r = m.ratio(a, m.best_peer) if m.best_peer else None
            if r is not None:
                cell += f" ({r:.2f})"
            if m.spread.get(a, 0) > 0.10 and m.rounds.get(a, 0) > 1:
                cell += f" ±{m.spread[a] * 50:.0f}%"
            row.append(cell)
        row.append(m.best_peer or "")
        if has_btm:
            r = m.ratio(BTM, m.best_peer) if m.best_peer else None
            g = m.ratio(BTM, "glibc") if not info else None
            row.append(f"{r:.2f}" if r is not None else "—")
            row.append(f"{g:.2f}" if g is not None else "—")
        if has_floor:
            f = m.ratio(BTM, FLOOR) if not info else None
            row.append(f"{f:.2f}" if f is not None else "—")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def floor_table(metrics, refs):
    """glibc, each reference and btmalloc side by side for the start-up metrics."""
    ms = [metrics[n] for n in FLOOR_METRICS if n in metrics and "glibc" in metrics[n].median]
    ms = [m for m in ms if any(r in m.median for r in refs)]
    if not ms:
        return None
    head = ["metric", "glibc"] + list(refs) + [BTM] + [f"{r} ÷ glibc" for r in refs] + ["btmalloc ÷ glibc"]
    if FLOOR in refs:
        head.append(f"btmalloc ÷ {FLOOR}")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in ms:
        cols = ["glibc"] + list(refs) + [BTM]
        row = [f"`{m.name}`"] + [f"{fmt(m.median[a])} {m.unit}" if a in m.median else "—" for a in cols]
        for a in list(refs) + [BTM]:
            x = m.ratio(a, "glibc")
            row.append(f"{x:.3f}" if x is not None else "—")
        if FLOOR in refs:
            x = m.ratio(BTM, FLOOR)
            row.append(f"{x:.3f}" if x is not None else "—")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def targets_table(metrics):
    lines = ["| target | metric | btmalloc | reference | ratio | met? |", "|---|---|---|---|---|---|"]
    for what, name, ref, bound in TARGETS:
        m = metrics.get(name)
        if m is None or BTM not in m.median:
            lines.append(f"| {what} | `{name}` | not measured | | | |")
            continue
        val = m.median[BTM]
        if ref == "abs":
            ok = val <= bound
            lines.append(f"| {what} | `{name}` | {fmt(val)} {m.unit} | ≤ {fmt(bound)} | | {'yes' if ok else '**no**'} |")
            continue
        ref_alloc = m.best_peer if ref == "best" else ref
        c = m.cost(BTM, ref_alloc) if ref_alloc else None
        if c is None:
            lines.append(f"| {what} | `{name}` | {fmt(val)} {m.unit} | no reference | | |")
            continue
        ok = c <= bound + 1e-9
        ratio = m.ratio(BTM, ref_alloc)
        lines.append(f"| {what} | `{name}` | {fmt(val)} {m.unit} | {ref_alloc} {fmt(m.median[ref_alloc])} | "
                     f"{ratio:.2f} | {'yes' if ok else '**no**'} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--machine", required=True)
    ap.add_argument("--notes")
    ap.add_argument("--allocs", required=True)
    ap.add_argument("--refs", default="")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--plot")
    args = ap.parse_args()

    values, units, bench_of, order = load(args.raw)
    allocs = args.allocs.split()
    refs = args.refs.split()
    metrics = {name: Metric(name, units[name], values[name], refs) for name in order}

    out = []
    out.append("# btmalloc benchmark results" + (" (quick mode: a harness check, not a result)" if args.quick else ""))
    out.append("")
    out.append("```")
    with open(args.machine) as f:
        out.append(f.read().rstrip())
    out.append("```")
    out.append("")
    out.append("Each cell is the median over the rounds; in parentheses, the ratio to the best peer of "
               "this run (peers: every allocator but btmalloc"
               + (f" and the references {', '.join(refs)}" if refs else "")
               + "; the best peer's value is in bold). "
               "±N% marks a cell whose rounds spread by more than ±5% around the median "
               "(half the max-min range, relative to the median).")
    out.append("")
    notes = []
    if args.notes:
        try:
            with open(args.notes) as f:
                notes = [line.strip() for line in f if line.strip()]
        except FileNotFoundError:
            pass
    if notes:
        out.append("## Notes from the run")
        out.append("")
        out.extend(f"- {n}" for n in notes)
        out.append("")
    if BTM in allocs:
        out.append("## Targets (issues 2 and 3)")
        out.append("")
        out.append(targets_table(metrics))
        out.append("")
        ft = floor_table(metrics, refs) if refs else None
        if ft:
            out.append("## Start-up floor: an empty preloaded library")
            out.append("")
            out.append("The start-up targets compare with glibc alone. Preloading any library, even one with "
                       "nothing in it, costs a process start ld.so's work for one more object; "
                       "emptydso is such a library as cc links it by default, emptydso_nocrt one linked "
                       "without the C start files (as libbtmalloc.so is), the least a preloaded library "
                       "can cost. A start-up target whose bound is below the floor's ratio to glibc "
                       "cannot be met by any preloaded allocator.")
            out.append("")
            out.append(ft)
            out.append("")
    known = set()
    for bench, title, text in SECTIONS:
        ms = [metrics[n] for n in order if bench_of[n] == bench]
        known.add(bench)
        if not ms:
            continue
        out.append(f"## {title} (`{bench}`)")
        out.append("")
        out.append(text)
        out.append("")
        out.append(table(ms, allocs, refs))
        out.append("")
        if bench == "burst" and args.plot:
            out.append(f"RSS over time: `{args.plot}`")
            out.append("")
    rest = [metrics[n] for n in order if bench_of[n] not in known]
    if rest:
        out.append("## Other")
        out.append("")
        out.append(table(rest, allocs, refs))
        out.append("")
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
