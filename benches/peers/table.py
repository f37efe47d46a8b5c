#!/usr/bin/env python3
"""table.py RESULTS.TSV — the Markdown table of benches/run.sh.

Each RESULTS.TSV line: rep, workload, program, then either the program's
`RESULT key=value ...` / `SKIP ...` line and its `LIMIT ...` line, or FAILED and why.
Per workload and metric: one row per program with the median and min–max over the
repetitions, and for each peer the ratio greenhub/peer taken within each repetition,
then its median. Figures only: nothing here judges a time.
"""
import statistics
import sys
from collections import defaultdict

NAMES = {"st": "State Threads", "greenhub": "greenhub", "corosensei": "corosensei floor (bare switch, no API)",
         "corosensei-nested": "corosensei floor, nested resume (no dispatcher in between)"}

# workload -> [(key, label, goal for greenhub (issue 6) or "")]
SCALE = [
    ("reached", "greenlets parked", "1,000,000 under vm.max_map_count 65530"),
    ("rss_per_kib", "RSS per greenlet, KiB", "≤ 4.5 KiB"),
    ("maps", "mappings (/proc/self/maps)", "no mapping per stack"),
    ("pass_ms", "one pass waking all (timers due at once), ms", ""),
    ("exit_ms", "one pass letting all exit, ms", ""),
]
SPEC = {
    "handoff": [("ns", "ns per round trip (yield: gh_sleep(0) / st_usleep(0))", "≤ 0.45× State Threads (≈ 20 ns)")],
    "handoff-cond": [("ns", "ns per round trip (direct wake: semaphore / st_cond)", "")],
    "spawn": [("ns", "ns per spawn+run+join", "≤ 0.17× State Threads")],
    "pingpong": [
        ("rt_per_s", "round trips/s", "≥ 1.0× the best of libev/libuv/libevent"),
        ("ns", "ns per round trip", ""),
    ],
    "timers": [
        ("cpu_s", "CPU s", "≤ 1.0× libev"),
        ("wall_s", "wall s", ""),
        ("rss_mib", "max RSS MiB", "≤ 1.2× libev"),
        ("late_ms", "max lateness ms", "≤ libev's"),
        # A second figure (peers.h): against each timer's own deadline — greenhub's count
        # from the start call, the peers' from their loop time before the starts.
        (
            "own_late_ms",
            "max lateness vs the timer's own deadline ms (greenhub: start call + delay; peers: loop time + delay)",
            "",
        ),
    ],
    # The same n timers started again once the first n fired, in the memory they used.
    "timers-again": [
        ("start_ns", "second burst: ns per start", ""),
        ("late_ms", "second burst: max lateness ms", "≤ libev's"),
    ],
    "sleepers": [
        ("wall_s", "total s", "≤ 0.4× State Threads"),
        ("rss_per_task_kib", "RSS per task, KiB", "≤ 4.5 KiB"),
        ("n", "tasks", ""),
    ],
    "echo": [
        ("req_s", "requests/s", "≥ 1.0× libev"),
        ("p50_us", "p50 µs", ""),
        ("p99_us", "p99 µs", ""),
    ],
}
ORDER = ["handoff", "handoff-cond", "spawn", "pingpong", "timers", "timers-again", "sleepers", "echo"]


def fmt(v):
    a = abs(v)
    if v == int(v) and a >= 10:
        return f"{int(v):,}"
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def scale_n(w):
    """scale-10k -> 10000, for ordering the scale levels."""
    n = w[len("scale-"):]
    mult = {"k": 1000, "M": 1000000}.get(n[-1:], 1)
    n = n.rstrip("kM")
    return int(n) * mult if n.isdigit() else 0


def parse(path):
    runs = {}  # (workload, prog) -> {rep: dict or str}
    progs = defaultdict(list)
    for line in open(path, encoding="utf-8"):
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 4:
            continue
        rep, w, p = int(parts[0]), parts[1], parts[2]
        if p not in progs[w]:
            progs[w].append(p)
        body = parts[3]
        entry = runs.setdefault((w, p), {})
        if body == "FAILED":
            entry[rep] = "FAILED (" + (parts[4] if len(parts) > 4 else "?") + ")"
            continue
        kv = dict(f.split("=", 1) for f in body.split()[1:] if "=" in f)
        if body.startswith("SKIP"):
            entry[rep] = "skipped: " + kv.get("reason", "?") + (f" (fits {int(kv['fits']):,})" if "fits" in kv else "")
            continue
        limit = parts[4] if len(parts) > 4 else ""
        if limit:
            lk = dict(f.split("=", 1) for f in limit.split()[1:] if "=" in f)
            kv["_limit"] = f"{lk.get('code', '?')} at {int(lk.get('reached', 0)):,}"
        entry[rep] = kv
    return runs, progs


def main():
    runs, progs = parse(sys.argv[1])
    workloads = [w for w in ORDER if w in progs] + sorted((w for w in progs if w.startswith("scale-")), key=scale_n)
    workloads += [w for w in progs if w not in workloads]
    print("| workload | metric | program | median | min–max | greenhub/program | goal (issue 6) |")
    print("|---|---|---|---|---|---|---|")
    for w in workloads:
        spec = SPEC.get(w, SCALE if w.startswith("scale-") else [])
        gh = runs.get((w, "greenhub"), {})
        for key, label, goal in spec:
            for p in progs[w]:
                reps = runs[(w, p)]
                vals = {r: float(d[key]) for r, d in reps.items() if isinstance(d, dict) and key in d}
                notes = sorted({d for d in reps.values() if isinstance(d, str)})
                limits = sorted({d["_limit"] for d in reps.values() if isinstance(d, dict) and "_limit" in d})
                name = NAMES.get(p, p)
                if not vals:
                    print(f"| {w} | {label} | {name} | {'; '.join(notes) or '—'} | | | |")
                    continue
                v = sorted(vals.values())
                med = statistics.median(v)
                span = f"{fmt(v[0])}–{fmt(v[-1])}" if len(v) > 1 else ""
                if notes:
                    span += f" ({len(reps) - len(vals)} of {len(reps)}: {'; '.join(notes)})"
                if limits and key in ("reached", "n"):
                    span += f" (stopped: {'; '.join(limits)})"
                ratio = "—"
                if p != "greenhub":
                    rs = [
                        float(gh[r][key]) / x
                        for r, x in vals.items()
                        if isinstance(gh.get(r), dict) and key in gh[r] and x != 0
                    ]
                    if rs:
                        ratio = f"{statistics.median(rs):.2f}×"
                print(f"| {w} | {label} | {name} | {fmt(med)} | {span} | {ratio} | {goal if p == 'greenhub' else ''} |")


if __name__ == "__main__":
    main()
