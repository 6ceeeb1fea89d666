"""The synthetic fleet written straight into a store: typed `runs`/`joins` rows, no JSON text.

`generate_fleet_store` expands the same plan as `pipeline.gen.generate.generate_fleet` (same
seed, same `ev` and `noise_src` tables); `pipeline.gen.storecols` selects each stored column
from them in DuckDB as the ingest would store it after parsing the rendered line, and
`pipeline.gen.storewrite` assembles the runs files in Arrow (joins, ~2 % of the rows, go
through the ingest's own COPY). The cross-server
duplicate deliveries and malformed lines of the file-log layout are never made: a store keeps
one copy of an event and quarantines the malformed ones, so they change no stored row.
`tests/gen/test_generate_store.py` compares the result with `generate_fleet` + `ingest_events`.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
from pydantic import BaseModel, ConfigDict

from pipeline.gen import state as gst
from pipeline.gen.events import Shape
from pipeline.gen.generate import (
    CHUNK_ROWS,
    DEFAULT_END,
    GenerateError,
    Progress,
    check_args,
    event_session,
    fleet_shape,
    noise_count,
)
from pipeline.gen.noise import build_noise_src
from pipeline.gen.plan import plan_fleet
from pipeline.gen.storecols import (
    build_run_values,
    build_sorted_events,
    file_rows,
    joins_sql,
    run_events_sql,
)
from pipeline.gen.storewrite import RunFiles
from pipeline.gen.writer import Background, per_file
from pipeline.ingest.events import IngestSummary, log_ingest
from pipeline.ingest.snapshots import ingest_snapshot
from pipeline.store import Store, uidbuild
from pipeline.store.layout import JOINS, RUNS
from pipeline.store.manifest import Writer
from pipeline.store.write import write_dataset

SORT_ROWS = 1_000_000  # events sorted into file order per query (bounds its memory; each
# query scans `ev` once, so fewer, larger spans keep the whole linear in the events)


class StoreSummary(BaseModel):
    """What `generate_fleet_store` stored; `read == stored + skipped` (the other noise types)."""

    model_config = ConfigDict(frozen=True)

    store: str
    seed: int
    window_start: datetime  # the events cover [window_start, window_end)
    window_end: datetime
    source: str  # the `source` of every stored event row
    ingest_id: str  # of the events' write (the snapshots are two more writes)
    run_events: int  # = runs rows
    failure_events: int
    noise_events: int  # other event types; the instance.join ones are the joins rows
    joins: int
    files_added: int  # runs and joins Parquet files
    instances_with_events: int
    failing_instances: int
    online_nodes: int
    user_tasks: int

    @property
    def stored(self) -> int:
        return self.run_events + self.joins

    def __str__(self) -> str:
        return (f"{self.run_events} runs and {self.joins} joins stored"
                f" ({self.noise_events - self.joins} other noise events skipped) in {self.files_added} files for"
                f" [{self.window_start:%Y-%m-%dT%H:%M:%SZ}, {self.window_end:%Y-%m-%dT%H:%M:%SZ});"
                f" {self.online_nodes} online nodes, {self.user_tasks} user tasks")


def _write_runs(con: duckdb.DuckDBPyConnection, w: Writer, s: Shape, source: str, rows: int,
                say: Progress) -> int:
    """The run events as `runs` files of `w`: a span of files sorted at a time (`evs`), read
    in pieces of whole files, one task per file; returns the files added."""
    rt = con.sql("SELECT * FROM rt ORDER BY g").to_arrow_table()
    files = RunFiles(rt, s.day0_ns, s.n_days, w.scratch("out-runs"), w.ingest_id)
    counts = file_rows(con, s)

    def chunks():
        for lo, hi in file_spans(counts, SORT_ROWS, s.n_days):
            build_sorted_events(con, s, lo, hi)
            piece = [(i, n) for i, n in counts if lo <= i < hi]
            for a, b in file_spans(piece, CHUNK_ROWS, s.n_days):
                yield con.sql(run_events_sql(s, a, b)).to_arrow_table()
        con.execute("DROP TABLE IF EXISTS evs")

    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        say(f"stored {done[0]}/{rows} run events")

    per_file(chunks(), files.write, tick, presorted=True)
    return len(w.add_tree(RUNS.name, files.out))


def file_spans(files: list[tuple[int, int]], rows: int, n_days: int) -> list[tuple[int, int]]:
    """[lo, hi) file_idx ranges of whole files of one cloud (`n_days` files each), about `rows`
    rows each, from (file_idx, rows) in file order."""
    spans: list[tuple[int, int]] = []
    lo, last, n = None, 0, 0
    for idx, count in files:
        if lo is not None and (n >= rows or idx // n_days != lo // n_days):
            spans.append((lo, last + 1))
            lo, n = None, 0
        lo = idx if lo is None else lo
        last, n = idx, n + count
    if lo is not None:
        spans.append((lo, last + 1))
    return spans


def _store_events(con: duckdb.DuckDBPyConnection, store: Store, s: Shape, source: str,
                  n_run: int, n_noise: int, say: Progress) -> tuple[str, int, int]:
    """One write: runs, joins and the ingest_log row that accounts for them (read = every
    generated event once, skipped = the noise of other types); (ingest id, joins, files)."""
    n_join = con.sql("SELECT count(*) FROM noise_src WHERE type = 'instance.join'"
                     ).fetchall()[0][0]
    with store.writer() as w:
        if any(w.base.datasets.get(ds.name) for ds in (RUNS, JOINS)):
            raise GenerateError(f"store {store.root} already holds events, which generated ones"
                                " are not deduplicated against; generate into a new store")
        build_run_values(con, s, source, w.ingest_id)
        files = _write_runs(con, w, s, source, n_run, say)
        files += write_dataset(con, w, JOINS, joins_sql(s, source, w.ingest_id))
        uidbuild.ensure(con, w)  # no events stored before these: an empty, complete index
        for ds in (RUNS, JOINS):
            uidbuild.index_added(con, w, ds.name)
        log_ingest(con, w, IngestSummary(
            ingest_id=w.ingest_id, sources=[source], read=n_run + n_noise,
            stored=n_run + n_join, skipped=n_noise - n_join, runs=n_run, joins=n_join,
            files_added=files), "events")
        w.commit()
    say(f"stored {n_run + n_join} events in {files} files")
    return w.ingest_id, n_join, files


def _source(seed: int, days: int, end: datetime, aws: int, azure: int, servers: int,
            noise: float) -> str:
    return (f"generate_fleet_store(seed={seed}, days={days}, end={end:%Y-%m-%dT%H:%M:%SZ},"
            f" aws_instances={aws}, azure_vms={azure}, auth_servers={servers},"
            f" noise_ratio={noise})")


def generate_fleet_store(store: Store | str | Path, *, seed: int = 7, days: int = 30,
                         end: datetime | None = None, aws_instances: int = 3000,
                         azure_vms: int = 1000, auth_servers: int = 2,
                         noise_ratio: float = 0.05, progress: bool = False) -> StoreSummary:
    """Store the fleet `generate_fleet` makes with the same arguments: the same runs and joins
    rows its `ingest_events` stores (but `source`: this call's arguments; `ingest_id`: this
    write's), in one write with its ingest_log row, then the nodes and user-task snapshots at
    `end` (two more writes, as `ingest_snapshot` makes them). Raises GenerateError for
    out-of-range arguments or a store that already holds events."""
    end = DEFAULT_END if end is None else end
    check_args(days, aws_instances, azure_vms, auth_servers, noise_ratio, 0, end)
    end = end.astimezone(UTC)
    store = store if isinstance(store, Store) else Store(store)
    say = Progress(progress)
    shape = fleet_shape(seed, days, end, auth_servers)
    plan = plan_fleet(seed, shape.start_ns, shape.end_ns, aws_instances, azure_vms)
    source = _source(seed, days, end, aws_instances, azure_vms, auth_servers, noise_ratio)
    con = event_session(plan, shape)
    state = None
    try:
        n_run, n_fail = con.sql("SELECT count(*), count(*) FILTER (WHERE failed) FROM ev"
                                ).fetchall()[0]
        with tempfile.TemporaryDirectory(prefix="discovery-history-gen-") as tmp:
            # nodes.json and user_tasks.json from the instances' last runs, meanwhile
            state = Background(gst.write_state, gst.instance_states(con), plan, seed,
                               shape.end_ns, Path(tmp))
            n_noise = noise_count(n_run, noise_ratio)
            build_noise_src(con, shape, n_noise, aws_instances + azure_vms)
            say(f"{aws_instances + azure_vms} instances, {n_run} run events, {n_noise} noise")
            ingest_id, n_join, files = _store_events(con, store, shape, source, n_run, n_noise,
                                                     say)
            facts = state.result()
            for kind in ("nodes", "user_tasks"):
                ingest_snapshot(store, kind, str(Path(tmp) / f"{kind}.json"), end)
    finally:
        if state is not None:
            state.thread.join()
        con.close()
    say("done")
    return StoreSummary(
        store=str(store.root), seed=seed, window_start=end - timedelta(days=days),
        window_end=end, source=source, ingest_id=ingest_id, run_events=n_run,
        failure_events=n_fail, noise_events=n_noise, joins=n_join, files_added=files, **facts)
