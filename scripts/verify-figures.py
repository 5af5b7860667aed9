#!/usr/bin/env python3
"""The README's Performance table: runs the verify benchmark RUNS times (default 3) and
prints, for each benchmark and each target ratio, the median over the runs and the range.

Usage: scripts/verify-figures.py [runs]

Each run is `cargo bench --bench verify -- --warm-up-time 1 --measurement-time 3
'^(verify|verify_threads|issue)/'`; the figures are criterion's median estimates, read from
target/criterion after each run. A target is "met" only if every run meets it.
"""

import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILTER = "^(verify|verify_threads|issue)/"
BENCHES = [
    "verify/floor",
    "verify/memory",
    "verify/memory_dyn",
    "verify/floor_one_token",
    "verify/memory_one_token",
    "verify/memory_reject_garbage",
    "verify/prefixed-api-key",
    "verify_threads/1",
    "verify_threads/2",
    "verify_threads/1_same_token",
    "verify_threads/2_same_token",
    "verify_threads/floor_1",
    "verify_threads/floor_2",
    "verify_threads/floor_1_same_token",
    "verify_threads/floor_2_same_token",
    "issue/floor",
    "issue/memory",
]
# (label, numerator, denominator, target, met when), ratios of medians in the same run.
# The thread ratios are throughput ratios: time per verify on 1 thread over time on 2.
RATIOS = [
    ("`verify/memory` ÷ `verify/floor` (1 000 000 tokens)",
     "verify/memory", "verify/floor", "≤ 1.3", lambda r: r <= 1.3),
    ("`verify/memory_one_token` ÷ `verify/floor_one_token`",
     "verify/memory_one_token", "verify/floor_one_token", "≤ 1.3", lambda r: r <= 1.3),
    ("`verify/memory_reject_garbage` ÷ `verify/floor`",
     "verify/memory_reject_garbage", "verify/floor", "≤ 0.3", lambda r: r <= 0.3),
    ("`verify/memory` ÷ `verify/prefixed-api-key`",
     "verify/memory", "verify/prefixed-api-key", "< 1", lambda r: r < 1),
    ("`verify/memory_one_token` ÷ `verify/prefixed-api-key` (both one key in cache)",
     "verify/memory_one_token", "verify/prefixed-api-key", "< 1", lambda r: r < 1),
    ("`verify_threads/2` throughput ÷ `verify_threads/1`",
     "verify_threads/1", "verify_threads/2", "≥ 1.9", lambda r: r >= 1.9),
    ("`verify_threads/2_same_token` throughput ÷ `…/1_same_token`",
     "verify_threads/1_same_token", "verify_threads/2_same_token", "≥ 1.9",
     lambda r: r >= 1.9),
    # What the machine allows: the floor on two threads against one (no target).
    ("the floor's own `verify_threads/floor_2` throughput ÷ `…/floor_1`",
     "verify_threads/floor_1", "verify_threads/floor_2", "(the machine)", lambda r: True),
    ("the floor's own `…/floor_2_same_token` throughput ÷ `…/floor_1_same_token`",
     "verify_threads/floor_1_same_token", "verify_threads/floor_2_same_token",
     "(the machine)", lambda r: True),
    ("`issue/memory` ÷ `issue/floor`",
     "issue/memory", "issue/floor", "≤ 2", lambda r: r <= 2),
]


def median_ns(bench):
    path = os.path.join(ROOT, "target", "criterion", bench, "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]


def load():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def fmt_ns(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.1f} ns"


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    results, interleaved = [], []
    print(f"load average before the first run: {load()}")
    for i in range(runs):
        print(f"run {i + 1} of {runs}, load average {load()}", file=sys.stderr, flush=True)
        out = subprocess.run(
            ["cargo", "bench", "--bench", "verify", "--", "--warm-up-time", "1",
             "--measurement-time", "3", FILTER],
            cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True).stdout
        results.append({b: median_ns(b) for b in BENCHES})
        m = re.search(r"verify/memory vs verify/floor: interleaved medians .* ratio ([0-9.]+)", out)
        if m:
            interleaved.append(float(m.group(1)))
    print(f"load average after the runs: {load()}")
    print()
    print("| what | ratio (range) | target | |")
    print("|---|---|---|---|")
    for label, num, den, target, ok in RATIOS:
        ratios = [r[num] / r[den] for r in results]
        if target.startswith("("):
            verdict = ""
        else:
            verdict = "met" if all(ok(x) for x in ratios) else "missed"
        print(f"| {label} | **{statistics.median(ratios):.2f}** "
              f"({min(ratios):.2f}–{max(ratios):.2f}) | {target} | {verdict} |")
    if interleaved:
        verdict = "met" if all(x <= 1.3 for x in interleaved) else "missed"
        print(f"| `verify/memory` ÷ `verify/floor`, alternating rounds in one run | "
              f"**{statistics.median(interleaved):.2f}** ({min(interleaved):.2f}–"
              f"{max(interleaved):.2f}) | ≤ 1.3 | {verdict} |")
    print()
    print("| benchmark | median (range) |")
    print("|---|---|")
    for b in BENCHES:
        values = [r[b] for r in results]
        print(f"| `{b}` | {fmt_ns(statistics.median(values))} "
              f"({fmt_ns(min(values))}–{fmt_ns(max(values))}) |")


if __name__ == "__main__":
    main()
