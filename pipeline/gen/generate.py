"""Deterministic synthetic Teleport fleet: audit file logs, `nodes.json`, `user_tasks.json`.

`generate_fleet` is the public entry point (used by the CLI and `make demo`). Same seed and
arguments give byte-identical files; the clock is never read (`end` defaults to a fixed
instant). Instances are planned in Python per instance (`pipeline.gen.plan`) and expanded
into events in DuckDB, one narrow row per line (`pipeline.gen.events`, `pipeline.gen.noise`);
each line's text is a per-(instance, outcome) template (`pipeline.gen.templates`) filled
column-wise in Arrow (`pipeline.gen.render`), one file per thread-pool task
(`pipeline.gen.writer`). The cluster state at `end` comes from each instance's last run
(`pipeline.gen.state`).

`generate_events_parquet_athena` writes the same fleet (same uids) in the Athena backend's
Parquet layout instead (`pipeline.gen.athena`); `pipeline.gen.tostore.generate_fleet_store`
writes it straight into a store, as ingesting it would (no JSON).
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
from pydantic import BaseModel, ConfigDict

from pipeline.gen import events as gev
from pipeline.gen import state as gst
from pipeline.gen.athena import write_athena
from pipeline.gen.noise import build_bad, build_noise
from pipeline.gen.plan import DAY, NS, FleetPlan, plan_fleet
from pipeline.gen.render import Renderer
from pipeline.gen.templates import build_templates
from pipeline.gen.writer import Background, link_current, log_paths, write_logs

DEFAULT_END = datetime(2026, 5, 31, tzinfo=UTC)
DUPLICATE_SHARE = 0.001  # run events re-emitted into a second auth server's file
CHUNK_ROWS = 150_000  # lines per DuckDB query (bounds memory, overlaps with rendering)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class GenerateError(ValueError):
    """An argument of `generate_fleet` is out of range; the message names it and the fix."""


class FleetSummary(BaseModel):
    """What `generate_fleet` wrote. `events_by_type` counts unique events (the duplicates and
    malformed lines are counted apart); `log_files` are relative to `out_dir/auth`."""

    model_config = ConfigDict(frozen=True)

    out_dir: str
    seed: int
    window_start: datetime  # the events cover [window_start, window_end)
    window_end: datetime
    auth_servers: int
    events_by_type: dict[str, int]
    run_events: int  # ssm.run + azure.run
    failure_events: int  # run events whose code ends in W
    noise_events: int
    duplicates_injected: int  # extra copies (same uid) in another server's file
    malformed_lines: int
    lines_written: int  # run + noise + duplicates + malformed
    bytes_written: int
    aws_instances: int
    azure_vms: int
    instances_with_events: int
    failing_instances: int  # last run failed (what user tasks list, integration permitting)
    online_nodes: int  # cloud nodes in nodes.json
    non_cloud_nodes: int
    user_tasks: int
    files_written: int  # day files + nodes.json + user_tasks.json
    log_files: list[str]

    def __str__(self) -> str:
        return (f"{self.lines_written} lines ({self.run_events} run events, {self.noise_events}"
                f" noise, {self.duplicates_injected} duplicates, {self.malformed_lines} malformed)"
                f" in {self.files_written} files for [{self.window_start:%Y-%m-%dT%H:%M:%SZ},"
                f" {self.window_end:%Y-%m-%dT%H:%M:%SZ}); {self.aws_instances} AWS instances,"
                f" {self.azure_vms} Azure VMs, {self.failing_instances} failing,"
                f" {self.online_nodes} online, {self.user_tasks} user tasks")


def check_args(days: int, aws: int, azure: int, servers: int, noise: float, bad: int,
           end: datetime) -> None:
    if end.tzinfo is None:
        raise GenerateError(f"end={end.isoformat()} has no timezone; pass an aware UTC datetime")
    for name, value, low in (("days", days, 1), ("aws_instances", aws, 0), ("azure_vms", azure, 0),
                             ("auth_servers", servers, 1), ("malformed_lines", bad, 0)):
        if value < low:
            raise GenerateError(f"{name}={value} must be >= {low}")
    if not 0 <= noise < 1:
        raise GenerateError(f"noise_ratio={noise} must be in [0, 1)")


class Progress:
    """`say(msg)`: a timed line on stderr when `on` and stderr is a terminal."""

    def __init__(self, on: bool) -> None:
        self.on = on and sys.stderr.isatty()
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if self.on:
            print(f"[generate {time.perf_counter() - self.t0:6.1f}s] {msg}", file=sys.stderr)


def fleet_shape(seed: int, days: int, end: datetime, servers: int) -> gev.Shape:
    delta = end.astimezone(UTC) - _EPOCH
    end_ns = (delta.days * 86400 + delta.seconds) * NS + delta.microseconds * 1000
    start_ns = end_ns - days * DAY
    day0 = start_ns - start_ns % DAY
    return gev.Shape(seed, start_ns, end_ns, day0, (end_ns - 1 - day0) // DAY + 1, servers)


def event_session(plan: FleetPlan, shape: gev.Shape) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB session holding the plan (`inst`, `ep`, `outcomes`) and the
    expanded run events (`ev`)."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    inst, ep = plan.tables()
    for name, table in (("inst", inst), ("ep", ep),
                        ("outcomes", gev.outcomes_table(plan.azure_client_id))):
        con.register(f"{name}_src", table)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_src")
        con.unregister(f"{name}_src")
    con.execute(gev.MACROS)
    gev.build_events(con, shape)
    return con


def _expand(plan: FleetPlan, shape: gev.Shape) -> tuple[duckdb.DuckDBPyConnection, Renderer]:
    """`event_session` plus the run events' templates (`tpl`) and their renderer."""
    con = event_session(plan, shape)
    build_templates(con, shape)
    tpl = con.sql("SELECT * FROM tpl ORDER BY g").to_arrow_table()
    return con, Renderer(tpl, shape.day0_ns, shape.n_days)


def day_spans(s: gev.Shape, rows: int) -> list[tuple[int, int]]:
    """[lo, hi) ns spans of whole days covering the fleet, about CHUNK_ROWS of `rows` each."""
    n = max(1, min(s.n_days, math.ceil(rows / CHUNK_ROWS)))
    bounds = [s.day0_ns + round(c * s.n_days / n) * DAY for c in range(n + 1)]
    return list(zip(bounds, bounds[1:], strict=False))


def _chunks(con: duckdb.DuckDBPyConnection, s: gev.Shape, lit: int, rows: int,
            athena: bool = False):
    """Tables of `rows_query` rows, a few whole days at a time."""
    for lo, hi in day_spans(s, rows):
        yield con.sql(gev.rows_query(s, lo, hi, lit, athena=athena)).to_arrow_table()


def _ticker(rows: int, say: Progress):
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        say(f"wrote {done[0]}/{rows} lines")

    return tick


def _write_audit(con: duckdb.DuckDBPyConnection, s: gev.Shape, render: Renderer, out: Path,
                 rows: int, say: Progress) -> tuple[list[str], int]:
    """Write `out/auth/<server>/<day>.log` aside, link `events.log`, swap it into place."""
    partial = out / ".auth.partial"
    shutil.rmtree(partial, ignore_errors=True)
    servers = [f"server-{n + 1}" for n in range(s.servers)]
    first_day = datetime.fromtimestamp(s.day0_ns // NS, UTC).date()
    paths = log_paths(partial, servers, first_day, s.n_days)
    nbytes = write_logs(_chunks(con, s, render.lit, rows), render, paths, _ticker(rows, say))
    for srv in servers:
        link_current(partial / srv)
    shutil.rmtree(out / "auth", ignore_errors=True)
    partial.rename(out / "auth")
    return [str(p.relative_to(partial)) for p in paths], nbytes


def noise_count(n_run: int, noise_ratio: float) -> int:
    """How many noise events go with `n_run` run events: `noise_ratio` of all events."""
    return round(n_run * noise_ratio / (1 - noise_ratio))


def _counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    rows = con.sql("""
        SELECT CASE WHEN kind LIKE 'aws%' THEN 'ssm.run' ELSE 'azure.run' END, count(*) FROM ev
        GROUP BY ALL UNION ALL SELECT type, count(*) FROM noise GROUP BY ALL""").fetchall()
    return dict(sorted(rows))


def _write_athena(con: duckdb.DuckDBPyConnection, s: gev.Shape, render: Renderer, out: Path,
                  rows: int, say: Progress) -> tuple[list[str], int]:
    """Write `out/athena/<day>/<uuidv7>.parquet` aside, then swap it into place."""
    partial = out / ".athena.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    files = write_athena(_chunks(con, s, render.lit, rows, athena=True), render, partial,
                         s.seed, s.n_days, _ticker(rows, say))
    say(f"wrote {rows} events in {len(files)} Parquet files")
    nbytes = sum(p.stat().st_size for p in files)
    shutil.rmtree(out / "athena", ignore_errors=True)
    partial.rename(out / "athena")
    return [str(p.relative_to(partial)) for p in files], nbytes


def _generate(out_dir: str | Path, writer, *, seed: int, days: int, end: datetime | None,
              aws_instances: int, azure_vms: int, auth_servers: int, noise_ratio: float,
              malformed_lines: int, progress: bool) -> FleetSummary:
    end = DEFAULT_END if end is None else end
    check_args(days, aws_instances, azure_vms, auth_servers, noise_ratio, malformed_lines, end)
    say = Progress(progress)
    out = Path(out_dir)
    shape = fleet_shape(seed, days, end, auth_servers)
    plan = plan_fleet(seed, shape.start_ns, shape.end_ns, aws_instances, azure_vms)
    con, render = _expand(plan, shape)
    state = None
    try:
        n_run, n_fail = con.sql("SELECT count(*), count(*) FILTER (WHERE failed) FROM ev"
                                ).fetchall()[0]
        out.mkdir(parents=True, exist_ok=True)
        # cluster state from `ev` on its own cursor, in parallel with the rest
        state = Background(gst.state_files, con.cursor(), plan, seed, shape.end_ns, out)
        n_noise = noise_count(n_run, noise_ratio)
        build_noise(con, shape, n_noise, aws_instances + azure_vms)
        n_dups = max(1, round(n_run * DUPLICATE_SHARE)) if auth_servers > 1 and n_run else 0
        n_bad = min(malformed_lines, n_run)
        gev.select_extras(con, shape, n_dups, n_bad)
        build_bad(con, shape, render)
        rows = n_run + n_noise + n_dups + n_bad
        say(f"{aws_instances + azure_vms} instances, {n_run} run events, {n_noise} noise events")
        log_files, nbytes = writer(con, shape, render, out, rows, say)
        by_type = _counts(con)
        facts = state.result()
    finally:
        if state is not None:
            state.thread.join()  # it reads through `con`'s database
        con.close()
    say(f"done: {rows} events, {nbytes} bytes")
    return FleetSummary(
        out_dir=str(out), seed=seed, window_start=end.astimezone(UTC) - timedelta(days=days),
        window_end=end.astimezone(UTC), auth_servers=auth_servers, events_by_type=by_type,
        run_events=n_run, failure_events=n_fail, noise_events=n_noise,
        duplicates_injected=n_dups, malformed_lines=n_bad, lines_written=rows,
        bytes_written=nbytes, aws_instances=aws_instances, azure_vms=azure_vms,
        non_cloud_nodes=len(gst.NON_CLOUD), files_written=len(log_files) + 2,
        log_files=log_files, **facts)


def generate_fleet(out_dir: str | Path, *, seed: int = 7, days: int = 30,
                   end: datetime | None = None, aws_instances: int = 3000, azure_vms: int = 1000,
                   auth_servers: int = 2, noise_ratio: float = 0.05, malformed_lines: int = 5,
                   progress: bool = False) -> FleetSummary:
    """Write a synthetic fleet's audit logs for [end - days, end) plus nodes/user tasks at `end`.

    Layout: `out_dir/auth/server-N/<YYYY-MM-DD>.00:00:00.log` (+ `events.log` symlink to the
    newest), `out_dir/nodes.json`, `out_dir/user_tasks.json`. Replaces `out_dir/auth` (built
    aside, then renamed). Raises GenerateError for out-of-range arguments.
    """
    return _generate(out_dir, _write_audit, seed=seed, days=days, end=end,
                     aws_instances=aws_instances, azure_vms=azure_vms, auth_servers=auth_servers,
                     noise_ratio=noise_ratio, malformed_lines=malformed_lines, progress=progress)


def generate_events_parquet_athena(out_dir: str | Path, *, seed: int = 7, days: int = 30,
                                   end: datetime | None = None, aws_instances: int = 3000,
                                   azure_vms: int = 1000, auth_servers: int = 2,
                                   noise_ratio: float = 0.05, progress: bool = False
                                   ) -> FleetSummary:
    """The same fleet as `generate_fleet` with the same arguments (same events and uids, no
    malformed lines) in the Athena layout: `out_dir/athena/<YYYY-MM-DD>/<uuidv7>.parquet`, one
    file per day per auth server, cross-server duplicates as duplicate deliveries; plus
    nodes.json and user_tasks.json. `log_files` are relative to `out_dir/athena`."""
    return _generate(out_dir, _write_athena, seed=seed, days=days, end=end,
                     aws_instances=aws_instances, azure_vms=azure_vms, auth_servers=auth_servers,
                     noise_ratio=noise_ratio, malformed_lines=0, progress=progress)
