"""One measured ingest in a fresh process, so its peak RSS is its own.

    python -m bench.child ingest OUT LISTFILE   # our full ingest into a new store at OUT
    python -m bench.child bare OUT LISTFILE     # DuckDB's bare read_ndjson -> partitioned COPY

LISTFILE names the input files, one per line. Prints one JSON object on stdout: seconds (the
work only, imports excluded), maxrss_bytes (the true high-water mark, not a
sample), out_bytes, and mode-specific counts.

Peak RSS is this process's VmHWM (/proc/self/status), not ru_maxrss: Linux carries ru_maxrss
across fork + exec, so a child of a big parent would report the parent's size.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path


def bare_columns() -> str:
    """read_ndjson `columns`: every field of the event models (text VARCHAR, integers BIGINT,
    objects JSON, time TIMESTAMP_NS). DuckDB's auto-detection cannot be used: the malformed
    lines real logs contain (e.g. a bare `null`) make it refuse the input as records."""
    from pipeline import models
    from pipeline.ingest.stage import field_kinds

    kinds: dict[str, str] = {}
    for model in models.MODELS.values():
        kinds.update({n: k for n, (k, _) in field_kinds(model).items()})
    sql = {"text": "VARCHAR", "int": "BIGINT", "object": "JSON", "bool": "BOOLEAN", "array": "JSON"}
    return "{" + ", ".join(f"'{n}': '{'TIMESTAMP_NS' if n == 'time' else sql[k]}'"
                           for n, k in kinds.items()) + "}"


def bare_sql(out: str, files: list[str]) -> str:
    """The engine's limit: parse every line, keep every column, partition like the store
    (Teleport's Athena Parquet: each row's `event_data` parsed the same way)."""
    listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    if files and all(f.endswith(".parquet") for f in files):
        shape = bare_columns().replace("'", '"')
        return (f"COPY (SELECT j.*, CAST(j.time AS DATE) AS event_date FROM (SELECT "
                f"try(json_transform(event_data, '{shape}')) AS j FROM read_parquet({listed})) "
                f"WHERE j IS NOT NULL) TO '{out}' (FORMAT parquet, PARTITION_BY (event, event_date))")
    return (f"COPY (SELECT *, CAST(time AS DATE) AS event_date FROM read_ndjson({listed}, "
            f"columns = {bare_columns()}, ignore_errors = true)) TO '{out}' "
            "(FORMAT parquet, PARTITION_BY (event, event_date))")


def _sizes(root: Path) -> tuple[int, int]:
    total = files = 0
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != "_staging"]
        for n in names:
            if n.endswith(".parquet"):
                files += 1
            total += os.path.getsize(os.path.join(dirpath, n))
    return total, files


def run_ingest(out: str, files: list[str]) -> dict:
    from pipeline.ingest.events import ingest_events
    from pipeline.store import Store

    t = time.perf_counter()
    summary = ingest_events(Store(out), files)
    seconds = time.perf_counter() - t
    size, _ = _sizes(Path(out))
    manifest = json.loads((Path(out) / "_manifest.json").read_text())
    runs = manifest["datasets"].get("runs", [])
    per_part = Counter(r.rsplit("/", 1)[0] for r in runs)
    return {"seconds": seconds, "out_bytes": size, "read": summary.read,
            "stored": summary.stored, "duplicates": summary.duplicates,
            "skipped": summary.skipped, "quarantined": summary.quarantined,
            "balanced": summary.balanced,
            "runs_files": len(runs), "runs_partitions": len(per_part),
            "max_files_per_partition": max(per_part.values(), default=0),
            "runs_bytes": sum(os.path.getsize(Path(out) / "runs" / r) for r in runs)}


def run_bare(out: str, files: list[str]) -> dict:
    import duckdb

    sql = bare_sql(out, files)
    t = time.perf_counter()
    con = duckdb.connect()
    con.execute(sql)
    con.close()
    seconds = time.perf_counter() - t
    size, n = _sizes(Path(out))
    return {"seconds": seconds, "out_bytes": size, "files": n}


def peak_rss() -> int:
    """High-water resident set size of this process's own address space, in bytes."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # elsewhere: best effort


def main(argv: list[str]) -> int:
    mode, out, listfile = argv
    files = [f for f in Path(listfile).read_text().splitlines() if f]
    res = run_ingest(out, files) if mode == "ingest" else run_bare(out, files)
    res["maxrss_bytes"] = peak_rss()
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
