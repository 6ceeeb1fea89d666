"""Benchmark: ingest of the same file-log lines in every input layout (issue 18.1), each against
DuckDB's bare partitioned COPY of that same layout, interleaved in the same session, each run a
fresh process (`bench.child`).

Layouts, all made once from the ingest benchmark's day files (same lines, `bench/.work/inputs/`):
one file (their concatenation: a Fluentd or SIEM export, a backfill), the day files themselves,
many small files of `SMALL_LINES` lines (an exporter's objects), the day files gzip'd, and
Athena Parquet (one file per day file, the line as `event_data`)."""

from __future__ import annotations

import gzip
import shutil
import uuid
from pathlib import Path

from bench.data import Ctx, _done, _mark, ensure_fleet, write_list
from bench.harness import Check, Row, log, median
from bench.ingest_bench import interleaved, warm
from bench.scales import human

NAME = "layouts"
SMALL_LINES = 100
TARGET = 1.3
LIMIT_MIB = 1024
LAYOUTS = ("one file", "day files", "small files", "gzip day files", "athena parquet")


def ensure_layouts(ctx: Ctx, events: int) -> dict[str, list[str]]:
    """{layout: files} of the ~`events`-line ingest fleet, written once."""
    fleet = ensure_fleet(ctx, "ingest", events, ctx.scale.input_days)
    root = ctx.inputs / f"layouts-{human(events)}"
    if _done(root) is None:
        log(f"writing the layouts of {len(fleet.files)} day files -> {root}")
        shutil.rmtree(root, ignore_errors=True)
        for d in ("one", "small", "gzip", "athena"):
            (root / d).mkdir(parents=True)
        _write(fleet.files, root)
        _mark(root, {"from": str(fleet.root), "lines": fleet.lines})
    return {
        "one file": [str(root / "one" / "all.log")],
        "day files": fleet.files,
        "small files": sorted(str(p) for p in (root / "small").glob("*.log")),
        "gzip day files": sorted(str(p) for p in (root / "gzip").glob("*/*.log.gz")),
        "athena parquet": sorted(str(p) for p in (root / "athena").glob("*/*.parquet")),
    }


def _write(day_files: list[str], root: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    small, buf = 0, []
    with open(root / "one" / "all.log", "wb") as one:
        for i, f in enumerate(day_files):
            data = Path(f).read_bytes()
            one.write(data)
            server, day = Path(f).parent.name, Path(f).name
            (root / "gzip" / server).mkdir(exist_ok=True)
            (root / "gzip" / server / (day + ".gz")).write_bytes(gzip.compress(data, 6))
            lines = data.split(b"\n")
            if lines and lines[-1] == b"":
                lines.pop()
            folder = root / "athena" / day[:10]
            folder.mkdir(exist_ok=True)
            pq.write_table(pa.table({"event_data": pa.array([x.decode() for x in lines], pa.string())}),
                           folder / f"{uuid.UUID(int=i)}.parquet", compression="snappy")
            for line in lines:
                buf.append(line)
                if len(buf) == SMALL_LINES:
                    (root / "small" / f"{small:06}.log").write_bytes(b"\n".join(buf) + b"\n")
                    small, buf = small + 1, []
    if buf:
        (root / "small" / f"{small:06}.log").write_bytes(b"\n".join(buf) + b"\n")


def run(ctx: Ctx) -> list[Row]:
    events = ctx.scale.ingest_sizes[0]
    layouts = ensure_layouts(ctx, events)
    rows = []
    for layout in LAYOUTS:
        files = layouts[layout]
        listfile = write_list(ctx.work / "tmp" / f"layout-{layout.replace(' ', '-')}.txt", files)
        warm(files)
        ours, bare = interleaved(ctx, listfile, "layout-", layout)
        ours_t = median([r["seconds"] for r in ours])
        bare_t = median([r["seconds"] for r in bare])
        peak = median([r["maxrss_bytes"] for r in ours]) / 2**20
        n = ours[0]["read"]
        size = sum(Path(f).stat().st_size for f in files)
        rows.append(Row(
            NAME, f"ingest {human(events)}: {layout}", n / ours_t, "ev/s",
            baseline=n / bare_t, baseline_what="DuckDB read_ndjson (Athena: read_parquet + "
            "json_transform) -> COPY parquet PARTITION_BY (event, event_date), same files",
            ratio=ours_t / bare_t, ratio_what="ours time / bare time",
            target=f"<= {TARGET}x bare, peak RSS <= {LIMIT_MIB} MiB",
            checks=[Check("ratio", "max", TARGET, ours_t / bare_t),
                    Check("peak RSS MiB", "max", LIMIT_MIB, peak)],
            note=f"{len(files)} files, {size / 2**20:.0f} MiB, {n} lines; ours median "
                 f"{ours_t:.2f}s (peak {peak:.0f} MiB), bare {bare_t:.2f}s",
            samples={"ours": ours, "bare": bare, "files": len(files), "bytes": size}))
    return rows
