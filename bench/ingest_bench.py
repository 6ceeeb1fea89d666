"""Benchmark 2, ingest throughput: our full ingest vs DuckDB's bare partitioned COPY of the same
file-log JSON lines (each in a fresh process, interleaved), plus a naive per-event pydantic loop
on a sample, as a ratio to that bare limit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from bench.data import Ctx, ensure_fleet, write_list
from bench.harness import REPO, Check, Row, code_fingerprint, log, median, timed
from bench.scales import human

NAME = "ingest"


def child(mode: str, out, listfile) -> dict:
    """Run one measured ingest (`bench.child`) in a new process; its JSON result."""
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-m", "bench.child", mode, str(out), str(listfile)],
                          cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"bench.child {mode} failed:\n{proc.stderr[-3000:]}")
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def warm(files: list[str]) -> None:
    """Read the input once so that every measured run starts from the same (warm) page cache."""
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass


def ingest_pair(ctx: Ctx, events: int) -> dict:
    """N interleaved runs of ours and bare on the ~`events`-line input; shared in the session
    (the memory and storage benchmarks reuse the same runs)."""
    cache = ctx.shared.setdefault("ingest_pairs", {})
    if events in cache:
        return cache[events]
    fleet = ensure_fleet(ctx, "ingest", events, ctx.scale.input_days)
    listfile = write_list(ctx.work / "tmp" / f"files-{events}.txt", fleet.files)
    warm(fleet.files)
    ours, bare = interleaved(ctx, listfile, "", f"ingest {human(events)}")
    cache[events] = {"fleet": fleet, "ours": ours, "bare": bare}
    return cache[events]


def interleaved(ctx: Ctx, listfile, prefix: str, label: str) -> tuple[list[dict], list[dict]]:
    """`ctx.runs` runs each of our ingest and the bare COPY of the files in `listfile`, in
    alternating order (outputs under tmp/<prefix>ours-out and <prefix>bare-out)."""
    ours, bare = [], []
    for i in range(ctx.runs):
        order = [("ours", "ingest", ours), ("bare", "bare", bare)]
        for who, mode, out in order if i % 2 == 0 else order[::-1]:
            res = child(mode, ctx.work / "tmp" / f"{prefix}{who}-out", listfile)
            res["code"] = code_fingerprint()
            out.append(res)
            log(f"  {label} run {i + 1}/{ctx.runs} {who}: {res['seconds']:.2f}s, peak RSS "
                f"{res['maxrss_bytes'] / 2**20:.0f} MiB")
    return ours, bare


def naive_loop(lines: list[bytes], out) -> float:
    """The shape not to ship: one pydantic validation per line, rows in a list, pyarrow write."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pydantic import ValidationError

    from pipeline.models import AzureRun, SSMRun

    def go() -> None:
        rows, rejected = [], []
        for line in lines:
            try:
                rows.append(SSMRun.model_validate_json(line).model_dump())
            except ValidationError:
                try:
                    rows.append(AzureRun.model_validate_json(line).model_dump())
                except ValidationError:
                    rejected.append(line)
        pq.write_table(pa.Table.from_pylist(rows), out)

    return timed(go)[0]


def sample_lines(files: list[str], n: int) -> list[bytes]:
    out: list[bytes] = []
    for f in files:
        with open(f, "rb") as fh:
            for line in fh:
                out.append(line)
                if len(out) >= n:
                    return out
    return out


def run(ctx: Ctx) -> list[Row]:
    rows = []
    bare_per_event = None
    for events in ctx.scale.ingest_sizes:
        p = ingest_pair(ctx, events)
        n = p["fleet"].lines
        ours_t = median([r["seconds"] for r in p["ours"]])
        bare_t = median([r["seconds"] for r in p["bare"]])
        bare_per_event = bare_per_event or bare_t / n
        ctx.shared.setdefault("ours_rate", n / ours_t)
        ratio = ours_t / bare_t
        rows.append(Row(
            NAME, f"ingest {human(events)} file-log lines", n / ours_t, "ev/s",
            baseline=n / bare_t, baseline_what="DuckDB read_ndjson -> COPY parquet "
            "PARTITION_BY (event, event_date), fresh process, same input",
            ratio=ratio, ratio_what="ours time / bare time",
            target="<= 1.5x bare", checks=[Check("ratio", "max", 1.5, ratio)],
            note=f"{n} lines, {p['fleet'].raw_bytes / 2**20:.0f} MiB; ours median "
                 f"{ours_t:.2f}s, bare {bare_t:.2f}s",
            samples={"ours": p["ours"], "bare": p["bare"], "lines": n,
                     "raw_bytes": p["fleet"].raw_bytes}))
    p = ingest_pair(ctx, ctx.scale.ingest_sizes[0])
    lines = sample_lines(p["fleet"].files, ctx.scale.naive_sample)
    out = ctx.tmp("naive") / "naive.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    naive = []
    for i in range(ctx.runs):
        naive.append(naive_loop(lines, out))
        log(f"  naive pydantic loop run {i + 1}/{ctx.runs}: {naive[-1]:.2f}s for {len(lines)} lines")
    naive_rate = len(lines) / median(naive)
    slower = (1 / naive_rate) / bare_per_event
    rows.append(Row(
        NAME, f"naive pydantic loop ({human(len(lines))} sample)", naive_rate, "ev/s",
        baseline=1 / bare_per_event, baseline_what="the bare COPY rate above (same session)",
        ratio=slower, ratio_what="naive time per event / bare time per event",
        target="info (issue: ~5x)",
        note=f"ours is {naive_rate and (ctx.shared['ours_rate'] / naive_rate):.1f}x the naive "
             "rate; SSMRun.model_validate_json per line (AzureRun on failure), rows into a list, "
             "pa.Table.from_pylist + pq.write_table; no dedup, no partitioning",
        samples={"seconds": naive, "lines": len(lines)}))
    return rows
