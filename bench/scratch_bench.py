"""Benchmark: one large ingest's scratch space (issue 18.3). The history fleet (at `--scale full`
the ~48M-line, 365-day year) is ingested by ONE `ingest_events` call into an empty store, in a
fresh process (`bench.child`), while this process samples, every `INTERVAL` seconds, the bytes
under the store's `_staging/` folder (the writer's scratch: staged parts, DuckDB's spill, byte
ranges of large files, partition files before they are placed, uid index files), the store's
output so far, the disk's free space and the child's resident set.

The code exposes no deterministic scratch figure, so the peak is a sample: a file that lives
less than `INTERVAL` can be missed (the samples around the peak are kept in the results).

Same-session baselines: the store's own output (target: scratch peak <= 2x it), and DuckDB's
bare partitioned COPY of one month of the same fleet (its rate and peak RSS; the whole year is
not cheap for it: about 1 GB of RSS per million lines). The conservation line is checked
against what the generator wrote (unique run and join events, injected duplicates, malformed
lines)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.data import Ctx, dir_bytes, ensure_fleet, write_list
from bench.harness import REPO, Check, Row, code_fingerprint, log
from bench.ingest_bench import child as bare_child
from bench.scales import human

NAME = "scratch"
TARGET = 2.0  # scratch peak / the ingest's Parquet output
LIMIT_MIB = 1024
INTERVAL = 0.25  # seconds between scratch samples
OUTPUT_EVERY = 8  # the store's output (a longer walk) every this many samples
BARE_DAYS = 30


def tree_bytes(root: Path, level: int = 1) -> tuple[int, int, dict[str, int]]:
    """(allocated bytes, apparent bytes, allocated bytes by kind of entry `level` folders
    down: under `_staging/`, 1 = inside each writer's folder) under `root`; files vanishing
    meanwhile are skipped."""
    alloc = apparent = 0
    kinds: dict[str, int] = {}
    stack: list[tuple[str, str | None, int]] = [(str(root), None, 0)]
    while stack:
        path, kind, depth = stack.pop()
        try:
            with os.scandir(path) as it:
                for e in it:
                    k = kind or (_kind(e.name) if depth == level else None)
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append((e.path, k, depth + 1))
                            continue
                        st = e.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    alloc += st.st_blocks * 512
                    apparent += st.st_size
                    k = k or e.name
                    kinds[k] = kinds.get(k, 0) + st.st_blocks * 512
        except (FileNotFoundError, NotADirectoryError):
            continue
    return alloc, apparent, kinds


def _kind(name: str) -> str:
    """The scratch entry `name` (first level under a writer's staging folder) by kind."""
    for prefix, kind in (("out-", "out-* (partition files before placing)"),
                         ("uid-index-", "uid-index-*"), ("staged", "staged"), ("spill", "spill"),
                         ("ranges", "ranges")):
        if name.startswith(prefix):
            return kind
    return name


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def sampled_ingest(out: Path, listfile: Path) -> tuple[dict, dict]:
    """Our ingest of `listfile` into a new store at `out` in a fresh process (`bench.child`),
    sampled; (the child's result, the sampling's figures and timeline)."""
    shutil.rmtree(out, ignore_errors=True)
    staging = out / "_staging"
    free0 = shutil.disk_usage(out.parent).free
    proc = subprocess.Popen([sys.executable, "-m", "bench.child", "ingest", str(out),
                             str(listfile)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    t0 = time.perf_counter()
    peak = {"alloc": 0, "apparent": 0}
    min_free, out_bytes, n = free0, 0, 0
    timeline, recent = [], []
    while proc.poll() is None:
        t = time.perf_counter() - t0
        alloc, apparent, kinds = tree_bytes(staging)
        if n % OUTPUT_EVERY == 0:
            out_bytes = dir_bytes(out) if out.exists() else 0
        free = shutil.disk_usage(out.parent).free
        min_free = min(min_free, free)
        s = {"t": round(t, 2), "scratch": alloc, "apparent": apparent, "kinds": kinds,
             "output": out_bytes, "rss": _rss(proc.pid), "free": free}
        recent = (recent + [s])[-6:]
        if alloc > peak["alloc"]:
            peak = {"alloc": alloc, "apparent": max(peak["apparent"], apparent), "at": s,
                    "before": recent[:-1], "after": []}
        elif len(peak.get("after", [None] * 5)) < 5:
            peak["after"].append(s)
        peak["apparent"] = max(peak["apparent"], apparent)
        if n % OUTPUT_EVERY == 0:
            timeline.append(s)
        n += 1
        time.sleep(INTERVAL)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        alloc, _, kinds = tree_bytes(staging)
        raise RuntimeError(
            f"bench.child ingest failed (rc {proc.returncode}) after "
            f"{time.perf_counter() - t0:.0f}s; scratch then {alloc / 2**30:.2f} GiB {kinds}, "
            f"peak {peak['alloc'] / 2**30:.2f} GiB, disk free {shutil.disk_usage(out.parent).free / 2**30:.1f}"
            f" GiB:\n{stderr[-4000:]}")
    res = json.loads(stdout.strip().splitlines()[-1])
    return res, {"peak_scratch": peak["alloc"], "peak_apparent": peak["apparent"],
                 "peak": peak, "samples": n, "interval": INTERVAL, "wall": wall,
                 "disk_used_peak": free0 - min_free, "timeline": timeline}


def _lines(path: str) -> int:
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            n += chunk.count(b"\n")
    return n


def expected(summary: dict) -> dict:
    """What the ingest should count, from the generator's summary: every unique run and join
    event stored, every injected copy a duplicate, every malformed line quarantined, the other
    noise (sessions, logins) skipped."""
    joins = summary["events_by_type"].get("instance.join", 0)
    return {"stored": summary["run_events"] + joins,
            "duplicates": summary["duplicates_injected"],
            "quarantined": summary["malformed_lines"],
            "skipped": summary["noise_events"] - joins}


def stored_rows(out: Path) -> int:
    """Rows in the store's runs and joins files (Parquet metadata)."""
    import duckdb

    manifest = json.loads((out / "_manifest.json").read_text())
    files = [str(out / ds / r) for ds in ("runs", "joins") for r in manifest["datasets"].get(ds, [])]
    if not files:
        return 0
    con = duckdb.connect()
    try:
        return con.execute("SELECT sum(num_rows) FROM (SELECT DISTINCT file_name, num_rows FROM "
                           "parquet_file_metadata($1))", [files]).fetchall()[0][0]
    finally:
        con.close()


def run(ctx: Ctx) -> list[Row]:
    s = ctx.scale
    fleet = ensure_fleet(ctx, "history", s.history_events, s.history_days)
    listfile = write_list(ctx.work / "tmp" / "scratch-files.txt", fleet.files)
    raw = fleet.raw_bytes
    out = ctx.work / "tmp" / "scratch-store"
    log(f"  one ingest of {fleet.lines} lines ({len(fleet.files)} files, {raw / 2**30:.1f} GiB)"
        f" into an empty store; disk free {shutil.disk_usage(ctx.work).free / 2**30:.1f} GiB")
    code = code_fingerprint()
    res, smp = sampled_ingest(out, listfile)
    res["code"] = code
    rows_in_store = stored_rows(out)
    shutil.rmtree(out, ignore_errors=True)
    peak, out_b = smp["peak_scratch"], res["out_bytes"]
    log(f"  ours: {res['seconds']:.1f}s, scratch peak {peak / 2**30:.2f} GiB, output "
        f"{out_b / 2**30:.2f} GiB, peak RSS {res['maxrss_bytes'] / 2**20:.0f} MiB")
    days = sorted({Path(f).name[:10] for f in fleet.files})[:BARE_DAYS]
    part = [f for f in fleet.files if Path(f).name[:10] in days]
    part_lines = sum(_lines(f) for f in part)
    bare = bare_child("bare", ctx.work / "tmp" / "scratch-bare-out",
                      write_list(ctx.work / "tmp" / "scratch-bare-files.txt", part))
    log(f"  bare COPY of {len(days)} days ({part_lines} lines): {bare['seconds']:.1f}s, "
        f"peak RSS {bare['maxrss_bytes'] / 2**20:.0f} MiB")

    n = res["read"]
    want = expected(fleet.summary)
    got = {k: res[k] for k in want}
    line = (f"read {n} = stored {res['stored']} + duplicates {res['duplicates']} + skipped "
            f"{res['skipped']} + quarantined {res['quarantined']} "
            f"({'balanced' if res['balanced'] else 'MISMATCH'})")
    at = smp["peak"].get("at", {})
    where = ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in
                      sorted(at.get("kinds", {}).items(), key=lambda kv: -kv[1]))
    size = f"{human(n)} lines ({fleet.lines} written, {raw / 2**30:.1f} GiB of JSON, " \
           f"{len(fleet.files)} files)"
    samples = {"ours": res, "bare": bare, "bare_days": len(days), "bare_lines": part_lines,
               "raw_bytes": raw, "sampling": smp, "expected": want, "rows_in_store": rows_in_store}
    return [
        Row(NAME, f"one ingest of {human(n)} lines: scratch peak / output", peak / 2**30, "GB",
            baseline=out_b / 2**30, baseline_what="the same ingest's store output (Parquet "
            "datasets, uid index, manifest)", ratio=peak / out_b,
            ratio_what="peak allocated bytes under the store's _staging/ / output bytes",
            target=f"<= {TARGET:g}x output", checks=[Check("ratio", "max", TARGET, peak / out_b)],
            note=f"{size}; sampled every {INTERVAL}s ({smp['samples']} samples); peak at "
                 f"{at.get('t', 0):.0f}s of the process's {smp['wall']:.0f}s: {where}; apparent-size peak "
                 f"{smp['peak_apparent'] / 2**30:.2f} GiB; disk used at most "
                 f"{smp['disk_used_peak'] / 2**30:.2f} GiB (whole machine: others write too)",
            samples=samples),
        Row(NAME, f"one ingest of {human(n)} lines: throughput", n / res["seconds"], "ev/s",
            baseline=part_lines / bare["seconds"], baseline_what=f"bare DuckDB COPY "
            f"(read_ndjson -> PARTITION_BY) of the fleet's first {len(days)} days "
            f"({human(part_lines)} lines), fresh process, one run",
            ratio=(res["seconds"] / n) / (bare["seconds"] / part_lines),
            ratio_what="ours time per line / bare time per line", target="info (one run)",
            note=f"ours {res['seconds']:.1f}s for {n} lines, bare {bare['seconds']:.1f}s for "
                 f"{part_lines}"),
        Row(NAME, f"one ingest of {human(n)} lines: peak RSS", res["maxrss_bytes"] / 2**20,
            "MiB", baseline=bare["maxrss_bytes"] / 2**20,
            baseline_what=f"bare COPY of {len(days)} days ({human(part_lines)} lines)",
            ratio=res["maxrss_bytes"] / bare["maxrss_bytes"], ratio_what="ours / bare",
            target=f"<= {LIMIT_MIB} MiB",
            checks=[Check("ours", "max", LIMIT_MIB, res["maxrss_bytes"] / 2**20)],
            note="VmHWM of the ingest process (Python and imports included)"),
        Row(NAME, f"one ingest of {human(n)} lines: conservation", res["stored"], "count",
            baseline=want["stored"], baseline_what="unique run and join events the generator "
            "wrote", ratio=None,
            target="balanced; counts = the generator's",
            checks=[Check("mismatches", "max", 0,
                          (not res["balanced"]) + sum(got[k] != want[k] for k in want)
                          + (rows_in_store != res["stored"]))],
            note=f"{line}; expected from the generator: {want}; rows in the store's runs and "
                 f"joins files: {rows_in_store}; {res['runs_files']} runs files in "
                 f"{res['runs_partitions']} partitions (at most {res['max_files_per_partition']}"
                 " per partition)"),
    ]
