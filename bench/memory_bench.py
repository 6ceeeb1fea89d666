"""Benchmark 3, memory: peak RSS (VmHWM of a fresh process) of our ingest at two input
sizes, next to the bare DuckDB COPY's peak on the same input; flat = the ratio of the peaks."""

from __future__ import annotations

from bench.data import Ctx
from bench.harness import Check, Row, median
from bench.ingest_bench import ingest_pair
from bench.scales import human

NAME = "memory"
LIMIT_MIB = 1024
FLAT = 1.25  # "flat": the larger input may peak at most this much higher


def run(ctx: Ctx) -> list[Row]:
    rows = []
    peaks = {}
    for events in ctx.scale.memory_sizes:
        p = ingest_pair(ctx, events)
        ours = median([r["maxrss_bytes"] for r in p["ours"]]) / 2**20
        bare = median([r["maxrss_bytes"] for r in p["bare"]]) / 2**20
        peaks[events] = (ours, bare, p["fleet"])
        rows.append(Row(
            NAME, f"peak RSS ingest {human(events)}", ours, "MiB", baseline=bare,
            baseline_what="bare DuckDB COPY of the same input (default memory_limit)",
            ratio=ours / bare, ratio_what="ours peak / bare peak",
            target=f"<= {LIMIT_MIB} MiB", checks=[Check("ours", "max", LIMIT_MIB, ours)],
            note=f"{p['fleet'].lines} lines, {p['fleet'].raw_bytes / 2**20:.0f} MiB of JSON; "
                 "VmHWM of the ingest process (Python + imports included)",
            samples={"ours_maxrss": [r["maxrss_bytes"] for r in p["ours"]],
                     "bare_maxrss": [r["maxrss_bytes"] for r in p["bare"]]}))
    small, big = min(peaks), max(peaks)
    if small != big:
        growth = peaks[big][0] / peaks[small][0]
        rows.append(Row(
            NAME, f"RSS growth {human(small)} -> {human(big)}", growth, "x",
            baseline=peaks[big][1] / peaks[small][1], baseline_what="bare COPY's growth",
            target=f"<= {FLAT}x (flat)", checks=[Check("ours", "max", FLAT, growth)],
            note=f"input grows {peaks[big][2].lines / peaks[small][2].lines:.1f}x"))
    return rows
