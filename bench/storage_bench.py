"""Benchmark 7, storage: store bytes / raw JSON bytes (whole store folder: data, schema files,
quarantine, logs, manifest), next to the bare COPY's Parquet; files per partition before and
after `maintenance.compact` on a history store that took one more (hourly) ingest."""

from __future__ import annotations

import json
import shutil
from collections import Counter

from bench.data import Ctx, dir_bytes, ensure_history, link_copy
from bench.harness import Check, Row, median, timed
from bench.ingest_bench import ingest_pair
from bench.scales import human

NAME = "storage"
LIMIT_PCT = 12.0
MAX_FILES = 3  # "a few files per partition after maintenance"


def _files_per_partition(store) -> Counter:
    manifest = json.loads((store / "_manifest.json").read_text())
    return Counter(r.rsplit("/", 1)[0] for r in manifest["datasets"].get("runs", []))


def run(ctx: Ctx) -> list[Row]:
    from pipeline.ingest.events import ingest_events
    from pipeline.store import Store
    from pipeline.store.maintenance import compact

    rows = []
    events = ctx.scale.ingest_sizes[0]
    p = ingest_pair(ctx, events)
    raw = p["fleet"].raw_bytes
    ours = 100 * median([r["out_bytes"] for r in p["ours"]]) / raw
    bare = 100 * median([r["out_bytes"] for r in p["bare"]]) / raw
    runs_pct = 100 * median([r["runs_bytes"] for r in p["ours"]]) / raw
    rows.append(Row(
        NAME, f"store / raw JSON, {human(events)} ingest", ours, "%", baseline=bare,
        baseline_what="bare DuckDB COPY's Parquet (snappy, all columns) / the same raw JSON",
        ratio=ours / bare, ratio_what="ours bytes / bare bytes", target=f"<= {LIMIT_PCT:g}%",
        checks=[Check("ours", "max", LIMIT_PCT, ours)],
        note=f"runs dataset alone {runs_pct:.1f}%; raw {raw / 2**20:.0f} MiB; "
             f"{p['ours'][0]['runs_files']} runs files in {p['ours'][0]['runs_partitions']} "
             "partitions",
        samples={"raw_bytes": raw, "ours_bytes": [r["out_bytes"] for r in p["ours"]],
                 "bare_bytes": [r["out_bytes"] for r in p["bare"]]}))

    h = ensure_history(ctx)
    size = dir_bytes(h.store)
    pct = 100 * size / h.doc["raw_bytes"]
    rows.append(Row(
        NAME, f"store / raw JSON, history ({human(h.doc['ingest']['stored'])} events)", pct, "%",
        target=f"<= {LIMIT_PCT:g}%", checks=[Check("ours", "max", LIMIT_PCT, pct)],
        note=f"{size / 2**20:.0f} MiB store for {h.doc['raw_bytes'] / 2**20:.0f} MiB of JSON",
        samples={"store_bytes": size, "raw_bytes": h.doc["raw_bytes"]}))

    dst = ctx.tmp("compact")
    link_copy(h.store, dst)
    ingest_events(Store(dst), h.hour_files)
    before = _files_per_partition(dst)
    secs, summary = timed(lambda: compact(Store(dst)))
    after = _files_per_partition(dst)
    shutil.rmtree(dst, ignore_errors=True)
    worst = float(max(after.values(), default=0))
    rows.append(Row(
        NAME, "runs files/partition after compact", worst, "files",
        baseline=float(max(before.values(), default=0)),
        baseline_what="max files/partition before compact (history + one hourly ingest)",
        target=f"<= {MAX_FILES}", checks=[Check("ours", "max", MAX_FILES, worst)],
        note=f"{len(after)} partitions; compact took {secs:.2f}s ({summary})",
        samples={"before": dict(before), "after_max": worst, "compact_seconds": secs}))
    return rows
