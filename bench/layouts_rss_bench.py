"""Benchmark: peak RSS of our ingest in every input layout at the scale's largest memory size
(issue 18.1: <= 1 GiB at 10M lines in each layout; `--scale full`: 10M, medium 3M), next to the
bare DuckDB COPY of the same layout. ONE run of each per layout (a fresh process each,
`bench.child`): at 10M lines five layouts times N interleaved runs take hours, and a peak RSS
varies far less than a time. Their times are recorded as information only; the timed
comparison, N interleaved runs, is the `layouts` benchmark at the first ingest size.

The layouts are those of `layouts` (`layouts_bench.ensure_layouts`), written once from the
ingest fleet of that size (10M lines: about 18 GB more than the day files; a disk with less than
`SPARE_GB` free after them gets each layout deleted after its runs)."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.data import Ctx, write_list
from bench.harness import Check, Row, code_fingerprint, log
from bench.ingest_bench import child, warm
from bench.layouts_bench import LAYOUTS, LIMIT_MIB, ensure_layouts
from bench.scales import human

NAME = "layouts-rss"
SPARE_GB = 8


def run(ctx: Ctx) -> list[Row]:
    events = max(ctx.scale.memory_sizes)
    layouts = ensure_layouts(ctx, events)
    free = shutil.disk_usage(ctx.work).free / 1e9
    log(f"  layouts of ~{human(events)} lines ready; disk free {free:.1f} GB")
    rows = []
    for layout in LAYOUTS:
        files = layouts[layout]
        listfile = write_list(ctx.work / "tmp" / f"layout-rss-{layout.replace(' ', '-')}.txt",
                              files)
        warm(files)
        runs = {}
        for who, mode in (("ours", "ingest"), ("bare", "bare")):
            res = child(mode, ctx.work / "tmp" / f"layout-rss-{who}-out", listfile)
            res["code"] = code_fingerprint()
            runs[who] = res
            log(f"  {layout} {who}: {res['seconds']:.1f}s, peak RSS "
                f"{res['maxrss_bytes'] / 2**20:.0f} MiB")
        ours, bare = runs["ours"], runs["bare"]
        peak = ours["maxrss_bytes"] / 2**20
        size = sum(Path(f).stat().st_size for f in files)
        rows.append(Row(
            NAME, f"peak RSS ingest {human(events)}: {layout}", peak, "MiB",
            baseline=bare["maxrss_bytes"] / 2**20,
            baseline_what="bare DuckDB COPY of the same files (read_ndjson; Athena: read_parquet"
            " + json_transform) -> PARTITION_BY (event, event_date), default memory_limit",
            ratio=peak / (bare["maxrss_bytes"] / 2**20), ratio_what="ours peak / bare peak",
            target=f"<= {LIMIT_MIB} MiB", checks=[Check("ours", "max", LIMIT_MIB, peak)],
            note=f"ONE run each; {len(files)} files, {size / 2**20:.0f} MiB, {ours['read']} "
                 f"lines; VmHWM of a fresh process; times (info, one run): ours "
                 f"{ours['seconds']:.1f}s, bare {bare['seconds']:.1f}s "
                 f"({ours['seconds'] / bare['seconds']:.2f}x)",
            samples={"ours": ours, "bare": bare, "files": len(files), "bytes": size}))
        if layout != "day files" and shutil.disk_usage(ctx.work).free / 1e9 < SPARE_GB:
            root = Path(files[0]).parents[1 if layout in ("gzip day files", "athena parquet")
                                          else 0]
            log(f"  disk short: deleting the {layout} layout ({root}); the next run writes "
                "them all again")
            (root.parent / "done.json").unlink(missing_ok=True)
            shutil.rmtree(root, ignore_errors=True)
    return rows
