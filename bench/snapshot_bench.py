"""Benchmark (issue 15), node history at the DAG's cadence: a year of hourly snapshots of a
100k-node fleet with 1 % daily churn, written in bulk (`bench.snapshot_data`). Measured: the
history's bytes (vs full copies, one per capture, as schema 2 stored them), `online_nodes` at
random instants of the year, one 100k-node snapshot ingest into that store, and the 24 h `nodes`
report over the history store's events with that snapshot history vs with a single snapshot."""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from bench.data import Ctx, dir_bytes, ensure_history, link_copy
from bench.harness import Check, Row, interleave, log, median, timed
from bench.snapshot_data import (
    HOUR_NS,
    YearSpec,
    ensure_year_store,
    listing_json,
    offset_sql,
    write_expiry,
)

NAME = "snapshots"
SPECS = {"small": YearSpec(2_000, 14), "medium": YearSpec(100_000, 365),
         "full": YearSpec(100_000, 365)}
HISTORY = ("node_history", "node_history_ends", "node_expiry", "user_task_history",
           "user_task_history_ends", "snapshot_log")
BYTES_LIMIT = 3e9
SAMPLE_DAYS = 28
BEFORE_COPIES = 120  # the measurement: 120 snapshots as full copies
INSTANTS = 25


def _ns(t: datetime) -> int:
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


def _bytes_rows(ctx: Ctx, spec: YearSpec, store: Path, doc: dict) -> list[Row]:
    """Bytes of the history datasets; full copies estimated from one written the old way."""
    per = {name: dir_bytes(store / name) for name in HISTORY}
    ours = sum(per.values())
    con = duckdb.connect(str(store.parent / "ids.duckdb"), read_only=True)
    one = ctx.tmp("full-copy") / "copy.parquet"
    one.parent.mkdir(parents=True)
    k = spec.captures // 2
    con.execute(f"""COPY (SELECT make_timestamp_ns({doc['start_ns'] + k * HOUR_NS}) AS captured_at,
        name, hostname, cloud, instance_key, instance_id, vm_id, account_id, region,
        resource_group, make_timestamp_ns({doc['start_ns'] + k * HOUR_NS}
          + {offset_sql(spec, str(k))}) AS expires, raw
        FROM node_ids WHERE first_k <= {k} AND last_k >= {k})
        TO '{one}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 32768)""")
    copies = one.stat().st_size * spec.captures
    seconds = ctx.tmp("expiry-seconds")
    s_spec = YearSpec(spec.nodes, spec.days, spec.churn_pct, "s", spec.seed)
    sample = min(spec.days, SAMPLE_DAYS)  # days are alike: a sample, scaled to the year
    s_bytes = write_expiry(con, s_spec, doc["start_ns"], seconds, "bench", sample) \
        * spec.days / sample
    shutil.rmtree(seconds, ignore_errors=True)
    con.close()
    s_total = ours - per["node_expiry"] + s_bytes
    rows_per = spec.nodes * spec.captures
    gb = ", ".join(f"{n} {b / 1e9:.2f} GB" for n, b in per.items())
    return [
        Row(NAME, f"snapshot history bytes: {spec.nodes // 1000}k nodes, {spec.days} days "
                  f"hourly, {spec.churn_pct}% daily churn, expiry to the ns", ours / 1e9, "GB",
            baseline=copies / 1e9, baseline_what="full copies: one capture written as schema 2 "
            f"did ({one.stat().st_size / 1e6:.1f} MB) x {spec.captures} captures",
            ratio=ours / copies, ratio_what="ours / full copies", target="<= 3 GB",
            checks=[Check("ours", "max", BYTES_LIMIT / 1e9, ours / 1e9)],
            note=f"{gb}; node_expiry {8 * per['node_expiry'] / rows_per:.1f} bits per node per "
                 f"capture (entropy of a uniform ns offset over 3 min: 37.4); "
                 f"{doc['node_intervals']} node intervals",
            samples={"bytes": per, "full_copy_bytes": one.stat().st_size}),
        Row(NAME, "the same, expiry to the second (Teleport's DynamoDB backend)", s_total / 1e9,
            "GB", target="<= 3 GB", checks=[Check("ours", "max", BYTES_LIMIT / 1e9,
                                                   s_total / 1e9)],
            note=f"node_expiry {s_bytes / 1e9:.2f} GB "
                 f"({8 * s_bytes / rows_per:.1f} bits per node per capture; {sample} days "
                 f"written, scaled to {spec.days}), the rest as above",
            samples={"expiry_bytes": s_bytes}),
    ]


def _single_store(ctx: Ctx, spec: YearSpec, year: Path, doc: dict, k: int, name: str) -> Path:
    """A store holding only the capture `k` of the year (its listing, ingested for real)."""
    from pipeline.ingest.snapshots import ingest_snapshot
    from pipeline.store import Store

    root = ctx.tmp(name)
    listing = root / "nodes.json"
    root.mkdir(parents=True)
    con = duckdb.connect(str(year.parent / "ids.duckdb"), read_only=True)
    listing_json(con, spec, doc["start_ns"], k, listing)
    con.close()
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=(doc["start_ns"] +
                                                                     k * HOUR_NS) // 1000)
    ingest_snapshot(Store(root / "lake"), "nodes", str(listing), at)
    return root / "lake"


def _online_rows(ctx: Ctx, spec: YearSpec, year: Path, doc: dict) -> list[Row]:
    from pipeline.query.views import connect

    rng = random.Random(15)
    start, end = doc["start_ns"], doc["start_ns"] + spec.captures * HOUR_NS
    instants = [start - 86_400 * 10**9, end + 86_400 * 10**9, start, end - HOUR_NS]
    instants += [rng.randrange(start, end) for _ in range(INSTANTS - len(instants))]
    single = _single_store(ctx, spec, year, doc, spec.captures // 2, "single")
    at_single = start + spec.captures // 2 * HOUR_NS
    ours, base = connect(year), connect(single)
    rows = []
    for what, sql in (("count(*)", "SELECT count(*) FROM online_nodes(make_timestamp_ns($1))"),
                      ("every column to Arrow", "SELECT * FROM online_nodes(make_timestamp_ns($1))")):
        def sweep(con, points, sql=sql):
            per = [timed(lambda t=t: con.sql(sql, params=[t]).to_arrow_table())[0] * 1000
                   for t in points]
            return {"seconds": sum(per) / 1000, "per_ms": per}
        a, b = interleave(ctx.runs, lambda: sweep(ours, instants),
                          lambda: sweep(base, [at_single] * len(instants)), f"online_nodes {what}")
        per_instant = [median([r["per_ms"][i] for r in a]) for i in range(len(instants))]
        typical, worst = median(per_instant), max(per_instant)
        single_ms = median([x for r in b for x in r["per_ms"]])
        rows.append(Row(
            NAME, f"online_nodes(as_of) {what}, {INSTANTS} instants of the year", typical, "ms",
            baseline=single_ms, baseline_what="the same relation on a store of one capture",
            ratio=typical / single_ms, ratio_what="ours / single capture", target="<= 20 ms",
            checks=[Check("worst instant", "max", 20, worst)],
            note=f"worst instant {worst:.1f} ms (before the first capture and after the last "
                 "included)", samples={"instants": instants, "per_instant_ms": per_instant,
                                        "base_ms": [x for r in b for x in r["per_ms"]]}))
    ours.close()
    base.close()
    shutil.rmtree(single.parent, ignore_errors=True)
    return rows


def _full_copies(ctx: Ctx, spec: YearSpec, year: Path, doc: dict) -> tuple[Path, list[int]]:
    """The last BEFORE_COPIES captures of the year as full copies, one file per capture as
    schema 2's ingest wrote them (built once), and their capture times."""
    root = ctx.inputs / f"{year.parent.name}-full-copies-{BEFORE_COPIES}"
    first = spec.captures - BEFORE_COPIES
    times = [doc["start_ns"] + k * HOUR_NS for k in range(first, spec.captures)]
    if (root / "done").exists():
        return root, times
    shutil.rmtree(root, ignore_errors=True)
    log(f"writing {BEFORE_COPIES} full copies (schema 2's layout) -> {root}")
    con = duckdb.connect(str(year.parent / "ids.duckdb"), read_only=True)
    for k, t in zip(range(first, spec.captures), times, strict=True):
        day = (datetime(1970, 1, 1) + timedelta(microseconds=t // 1000)).date()
        folder = root / "node_snapshots" / f"capture_date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        con.execute(f"""COPY (SELECT make_timestamp_ns({t}) AS captured_at, name, hostname, cloud,
            instance_key, instance_id, vm_id, account_id, region, resource_group,
            make_timestamp_ns({t} + {offset_sql(spec, str(k))}) AS expires, CAST(raw AS VARCHAR)
            AS raw FROM node_ids WHERE first_k <= {k} AND last_k >= {k}) TO
            '{folder / f"part-{k}-0.parquet"}' (FORMAT parquet, COMPRESSION zstd,
            ROW_GROUP_SIZE 32768)""")
    con.execute(f"""COPY (SELECT 'nodes' AS kind, make_timestamp_ns(t) AS captured_at
        FROM unnest({times}::BIGINT[]) u(t)) TO '{root / "snapshot_log.parquet"}'""")
    con.close()
    (root / "done").write_text("")
    return root, times


def _before_row(ctx: Ctx, spec: YearSpec, year: Path, doc: dict) -> Row:
    """online_nodes as schema 2 read it (the frozen relations of tests/store/reference/ over
    full copies: every file's footer, every row of the log) vs the change history now."""
    from bench.harness import REPO
    from pipeline.query.views import connect

    root, times = _full_copies(ctx, spec, year, doc)
    copies = list((root / "node_snapshots").rglob("*.parquet"))
    copy_bytes = sum(p.stat().st_size for p in copies) / len(copies)
    old = duckdb.connect()
    old.execute("SET VARIABLE f = $1", [sorted(map(str, copies))])
    old.execute("CREATE VIEW node_snapshots AS SELECT * FROM read_parquet(getvariable('f'), "
                "union_by_name = true, hive_partitioning = true, hive_types = {'capture_date': "
                "'DATE'})")
    old.execute(f"CREATE VIEW snapshot_log AS SELECT * FROM '{root / 'snapshot_log.parquet'}'")
    for name in ("010_snapshot_at", "015_registered_nodes", "020_online_nodes"):
        old.execute((REPO / "tests" / "store" / "reference" / f"{name}.sql").read_text())
    ours = connect(year)
    rng = random.Random(16)
    points = [times[0] + rng.randrange(times[-1] - times[0]) for _ in range(5)]
    sql = "SELECT * FROM online_nodes(make_timestamp_ns($1))"
    same = all(sorted(ours.execute(sql, [t]).fetchall()) == sorted(old.execute(sql, [t]).fetchall())
               for t in points[:2])

    def sweep(con):
        return {"seconds": sum(timed(lambda t=t: con.sql(sql, params=[t]).to_arrow_table())[0]
                               for t in points) / len(points)}
    a, b = interleave(ctx.runs, lambda: sweep(ours), lambda: sweep(old), "online_nodes now vs before")
    ours.close()
    old.close()
    now, before = median([x["seconds"] for x in a]) * 1000, median([x["seconds"] for x in b]) * 1000
    return Row(NAME, f"online_nodes every column: the year as changes vs {BEFORE_COPIES} full "
                     "copies (schema 2)", now, "ms", baseline=before,
               baseline_what=f"schema 2's online_nodes over its last {BEFORE_COPIES} hourly captures "
                             "as full copies (one file each)",
               ratio=now / before, ratio_what="now / before", target="info",
               note=f"same rows: {same}; a year of full copies ({spec.captures} files, "
                    f"~{copy_bytes * spec.captures / 1e9:.0f} GB) could not be stored here",
               samples={"now_s": a, "before_s": b})


def _ingest_row(ctx: Ctx, spec: YearSpec, year: Path, doc: dict) -> Row:
    """One listing of the hour after the year (40 nodes re-registered) into the year store."""
    from pipeline.ingest import snapshot_store
    from pipeline.ingest.snapshots import ingest_snapshot
    from pipeline.store import Store

    root = ctx.tmp("ingest")
    root.mkdir(parents=True)
    listing = root / "nodes.json"
    con = duckdb.connect(str(year.parent / "ids.duckdb"), read_only=True)
    n = listing_json(con, spec, doc["start_ns"], spec.captures, listing, renamed=40)
    con.close()
    size = listing.stat().st_size
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
        microseconds=(doc["start_ns"] + spec.captures * HOUR_NS) // 1000)
    store_secs: dict[bool, list[float]] = {True: [], False: []}
    real = snapshot_store.write_capture
    mode = [True]

    def timed_write(*args, **kwargs):
        secs, out = timed(lambda: real(*args, **kwargs))
        store_secs[mode[0]].append(secs)
        return out

    def once(into_year: bool) -> dict:
        dst = root / "lake"
        shutil.rmtree(dst, ignore_errors=True)
        if into_year:
            link_copy(year, dst)
        mode[0] = into_year
        secs, s = timed(lambda: ingest_snapshot(Store(dst), "nodes", str(listing), at))
        assert s.stored == n, s
        return {"seconds": secs}

    snapshot_store.write_capture = timed_write
    try:
        a, b = interleave(ctx.runs, lambda: once(True), lambda: once(False), "snapshot ingest")
    finally:
        snapshot_store.write_capture = real
    shutil.rmtree(root, ignore_errors=True)
    ours, base = median([x["seconds"] for x in a]), median([x["seconds"] for x in b])
    storing = median(store_secs[True])
    return Row(NAME, f"one snapshot ingest, {n // 1000}k nodes, into the year store", ours, "s",
               baseline=base, baseline_what="the same listing into an empty store (all new)",
               ratio=ours / base, ratio_what="ours / into an empty store", target="<= 1 s",
               checks=[Check("ours", "max", 1.0, ours)],
               note=f"listing {size / 1e6:.0f} MB; "
                    f"writing the changes (write_capture) ~{storing:.2f} s of it, the rest "
                    "reading and parsing the listing",
               samples={"ours_s": [x["seconds"] for x in a], "base_s": [x["seconds"] for x in b],
                        "write_capture_s": store_secs[True],
                        "write_capture_empty_s": store_secs[False]})


def _graft(events: Path, year: Path | None, dst: Path) -> None:
    """`dst`: a link copy of the events store with its nodes history replaced by the year's
    (or by none, when `year` is None)."""
    import pyarrow as pa

    from pipeline.store import Store
    from pipeline.store.layout import SNAPSHOT_LOG
    from pipeline.store.write import write_table

    link_copy(events, dst)
    store = Store(dst)
    with store.writer() as w:
        con = duckdb.connect()
        con.execute("SET VARIABLE f = $1", [store.files("snapshot_log", w.base)])
        kept = con.sql("SELECT * FROM read_parquet(getvariable('f')) WHERE kind <> 'nodes'"
                       ).to_arrow_table()
        for name in ("node_history", "node_history_ends", "node_expiry", "snapshot_log"):
            w.remove(name, w.base.datasets.get(name, []))
        if year is not None:
            ys = Store(year)
            for name in ("node_history", "node_history_ends", "node_expiry"):
                out = w.scratch(f"graft-{name}")
                for rel in ys.manifest().datasets.get(name, []):
                    (out / rel).parent.mkdir(parents=True, exist_ok=True)
                    (out / rel).hardlink_to(ys.path(name, rel))
                w.add_tree(name, out)
            con.execute("SET VARIABLE y = $1", [ys.files("snapshot_log")])
            nodes = con.sql("SELECT * FROM read_parquet(getvariable('y')) WHERE kind = 'nodes'"
                            ).to_arrow_table()
            kept = pa.concat_tables([kept, nodes])
        write_table(con, w, SNAPSHOT_LOG, kept)
        w.commit()
        con.close()


def _report_row(ctx: Ctx, spec: YearSpec, year: Path, doc: dict) -> Row:
    from pipeline.ingest.snapshots import ingest_snapshot
    from pipeline.query.views import connect
    from pipeline.report.nodes import nodes_report
    from pipeline.store import Store

    h = ensure_history(ctx)
    lo, hi = h.report_window
    k = (_ns(hi) - doc["start_ns"]) // HOUR_NS
    root = ctx.tmp("report")
    _graft(h.store, year, root / "history")
    _graft(h.store, None, root / "single")
    listing = root / "nodes.json"
    con = duckdb.connect(str(year.parent / "ids.duckdb"), read_only=True)
    listing_json(con, spec, doc["start_ns"], k, listing)
    con.close()
    ingest_snapshot(Store(root / "single"), "nodes", str(listing), hi)
    a_con, b_con = connect(root / "history"), connect(root / "single")
    same = nodes_report(a_con, lo, hi) == nodes_report(b_con, lo, hi)
    a, b = interleave(ctx.scale.report_runs,
                      lambda: {"seconds": timed(lambda: nodes_report(a_con, lo, hi))[0]},
                      lambda: {"seconds": timed(lambda: nodes_report(b_con, lo, hi))[0]},
                      "nodes 24h, year of snapshots vs one")
    n_rows = len(nodes_report(a_con, lo, hi))
    a_con.close()
    b_con.close()
    shutil.rmtree(root, ignore_errors=True)
    ours, base = median([x["seconds"] for x in a]), median([x["seconds"] for x in b])
    return Row(NAME, f"nodes 24h with a year of hourly snapshots ({h.doc['ingest']['stored']} "
                     "events store)", ours, "s", baseline=base,
               baseline_what="the same report, the store holding only the capture in force",
               ratio=ours / base, ratio_what="ours / single snapshot", target="<= 1.10x",
               checks=[Check("ratio", "max", 1.10, ours / base)],
               note=f"{n_rows} report rows, identical to the single snapshot's: {same}",
               samples={"ours_s": [x["seconds"] for x in a], "base_s": [x["seconds"] for x in b],
                        "same_rows": same})


def run(ctx: Ctx) -> list[Row]:
    from pipeline.gen.generate import DEFAULT_END

    spec = SPECS[ctx.scale.name]
    year, doc = ensure_year_store(ctx.inputs, spec, _ns(DEFAULT_END))
    log(f"year store {year}: {doc}")
    rows = _bytes_rows(ctx, spec, year, doc)
    rows += _online_rows(ctx, spec, year, doc)
    rows.append(_before_row(ctx, spec, year, doc))
    rows.append(_ingest_row(ctx, spec, year, doc))
    rows.append(_report_row(ctx, spec, year, doc))
    return rows
