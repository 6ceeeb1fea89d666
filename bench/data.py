"""Benchmark inputs, made once and reused: generated fleets, the long-history store, the
one-hour increment, the CLI's small store. Generation is deterministic by seed, so a folder
with its `done.json` marker is reused as is; delete `bench/.work/` to start afresh.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness import log, timed
from bench.scales import Scale, human

SEED = 7
AZURE_SHARE = 0.25
LINES_PER_ATTEMPT = 1.145  # generated lines per planned attempt (duplicate runs, steps, noise)
CALIBRATION_INSTANCES = 20_000


@dataclass
class Ctx:
    """What every benchmark gets: sizes, where to put data, and results shared in one session."""

    scale: Scale
    work: Path
    runs: int
    shared: dict = field(default_factory=dict)
    history: str = "ingested"  # incremental: "generated" builds the history with generate --store

    @property
    def inputs(self) -> Path:
        """Generated inputs, shared by every scale (same size and seed: same files)."""
        return self.work.parent / "inputs"

    def tmp(self, name: str) -> Path:
        """A fresh scratch folder under the work dir (emptied first)."""
        p = self.work / "tmp" / name
        shutil.rmtree(p, ignore_errors=True)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


@dataclass
class Fleet:
    root: Path
    summary: dict
    files: list[str]  # the file-log day files (or Athena Parquet files), sorted

    @property
    def lines(self) -> int:
        return self.summary["lines_written"]

    @property
    def raw_bytes(self) -> int:
        return sum(os.path.getsize(f) for f in self.files)


def end_instant() -> datetime:
    from pipeline.gen.generate import DEFAULT_END

    return DEFAULT_END


def schema_version() -> int:
    from pipeline.store.layout import SCHEMA_VERSION

    return SCHEMA_VERSION


def fleet_size(events: int, days: int, seed: int = SEED) -> tuple[int, int]:
    """(aws_instances, azure_vms) for about `events` generated lines over `days`, from the plan
    (cheap, Python only): calibrate on a fleet, then re-plan at the estimate once."""
    from pipeline.gen.plan import DAY, NS, RETRY_NS, plan_fleet

    end_ns = int(end_instant().timestamp()) * NS
    start_ns = end_ns - days * DAY
    guess = CALIBRATION_INSTANCES
    for _ in range(2):
        azure = round(guess * AZURE_SHARE)
        plan = plan_fleet(seed, start_ns, end_ns, guess - azure, azure)
        # attempts before the end only (an episode may run past it)
        attempts = sum(min(n, max(0, -(-(end_ns - t0) // RETRY_NS)))
                       for n, t0 in zip(plan.ep["n"], plan.ep["t0"], strict=True))
        per = attempts * LINES_PER_ATTEMPT / guess
        guess = max(8, math.ceil(events / per))
    azure = round(guess * AZURE_SHARE)
    return guess - azure, azure


def generate(out: Path, events: int, days: int, *, athena: bool = False, seed: int = SEED):
    """Run the project's generator for about `events` lines; returns its FleetSummary."""
    from pipeline.gen.generate import generate_events_parquet_athena, generate_fleet

    aws, azure = fleet_size(events, days, seed)
    fn = generate_events_parquet_athena if athena else generate_fleet
    return fn(out, seed=seed, days=days, aws_instances=aws, azure_vms=azure)


def _done(folder: Path) -> dict | None:
    marker = folder / "done.json"
    return json.loads(marker.read_text()) if marker.is_file() else None


def _mark(folder: Path, doc: dict) -> None:
    (folder / "done.json").write_text(json.dumps(doc, indent=1, default=str))


def log_files(auth: Path) -> list[str]:
    """Teleport file-log day files under `auth/` (not the `events.log` symlinks)."""
    return sorted(str(p) for p in auth.glob("*/*.00:00:00.log") if not p.is_symlink())


def ensure_fleet(ctx: Ctx, kind: str, events: int, days: int) -> Fleet:
    """A cached file-log fleet of about `events` lines over `days` ending at the fixed end."""
    root = ctx.inputs / f"{kind}-{human(events)}-{days}d-s{SEED}"
    doc = _done(root)
    if doc is None:
        log(f"generating {kind} input: ~{human(events)} lines over {days} days -> {root}")
        shutil.rmtree(root, ignore_errors=True)
        secs, summary = timed(lambda: generate(root / "fleet", events, days))
        doc = {"summary": summary.model_dump(mode="json", exclude={"log_files"}),
               "seconds": secs}
        _mark(root, doc)
        log(f"  {summary.lines_written} lines, {summary.bytes_written / 2**20:.0f} MiB"
            f" in {secs:.1f}s")
    return Fleet(root / "fleet", doc["summary"], log_files(root / "fleet" / "auth"))


def write_list(path: Path, files: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(files) + "\n")
    return path


def dir_bytes(root: Path, skip: tuple[str, ...] = ("_staging", "_lock")) -> int:
    total = 0
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip]
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files if f not in skip)
    return total


def link_copy(src: Path, dst: Path) -> None:
    """Copy a store with hard links (ingest never rewrites a data file); the manifest is a real
    copy, the lock and staging folders are left out."""
    shutil.copytree(src, dst, copy_function=os.link,
                    ignore=shutil.ignore_patterns("_staging", "_lock", "_manifest.json"))
    if (src / "_manifest.json").exists():
        shutil.copyfile(src / "_manifest.json", dst / "_manifest.json")


def empty_store(ctx: Ctx) -> Path:
    """A store that exists (schema files written) but holds nothing: the fair 'empty' side."""
    from pipeline.store import Store

    root = ctx.inputs / f"empty-store-v{schema_version()}"
    if not (root / "_schema").is_dir():
        shutil.rmtree(root, ignore_errors=True)
        with Store(root).writer():
            pass
    return root


_TIME = re.compile(rb'"time":"([^"]{19})')


def _split_at(path: Path, cut: str, head: Path, tail: Path) -> tuple[int, int]:
    """Split a time-ordered day file at the first line whose time is >= `cut` (to the second)."""
    lines = path.read_bytes().splitlines(keepends=True)
    key = cut.encode()
    at = len(lines)
    for i, line in enumerate(lines):
        m = _TIME.search(line)
        if m and m.group(1) >= key:
            at = i
            break
    for p, part in ((head, lines[:at]), (tail, lines[at:])):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"".join(part))
    return at, len(lines) - at


@dataclass
class History:
    """A long history store plus the hour after it, from one generated fleet."""

    fleet: Fleet
    history_files: list[str]  # every line before `cut`
    hour_files: list[str]  # the lines in [cut, end)
    store: Path
    cut: datetime
    report_window: tuple[datetime, datetime]  # the last whole UTC day before the cut
    doc: dict

    def day_files(self, lo: datetime, hi: datetime) -> list[str]:
        """The raw day files covering [lo, hi) (Teleport names one file per UTC day)."""
        days = {(lo + timedelta(days=d)).strftime("%Y-%m-%d")
                for d in range((hi - timedelta(microseconds=1) - lo).days + 1)}
        return [f for f in self.history_files if Path(f).name[:10] in days]


def _add(a, b):
    """The sum of two ingest summaries (a backfill in several ingests)."""
    from dataclasses import fields, replace

    counts = {f.name: getattr(a, f.name) + getattr(b, f.name) for f in fields(a)
              if isinstance(getattr(a, f.name), int)}
    return replace(a, sources=a.sources + b.sources, **counts)


def ensure_history(ctx: Ctx, rollups: bool = True) -> History:
    """The history fleet (cached), split at end - 1h, its store built by our ingest once, with
    node and user-task snapshots taken at the end of the report window; its rollups brought up
    to date unless `rollups` is False."""
    from pipeline.ingest.events import ingest_events
    from pipeline.ingest.snapshots import ingest_snapshot
    from pipeline.store import Store

    s = ctx.scale
    fleet = ensure_fleet(ctx, "history", s.history_events, s.history_days)
    end = end_instant()
    cut = end - timedelta(hours=1)
    last = (end - timedelta(microseconds=1)).strftime("%Y-%m-%d")
    base = fleet.root.parent
    split = base / "split"
    heads = [str(split / "head" / Path(f).parent.name / Path(f).name) for f in fleet.files
             if Path(f).name.startswith(last)]
    hours = [h.replace("/head/", "/hour/") for h in heads]
    if _done(split) is None:
        shutil.rmtree(split, ignore_errors=True)
        split.mkdir(parents=True)
        counts = [_split_at(Path(f), cut.strftime("%Y-%m-%dT%H:%M:%S"), Path(h), Path(t))
                  for f, h, t in zip([f for f in fleet.files if Path(f).name.startswith(last)],
                                     heads, hours, strict=True)]
        _mark(split, {"head_lines": sum(c[0] for c in counts),
                      "hour_lines": sum(c[1] for c in counts)})
    history_files = [f for f in fleet.files if not Path(f).name.startswith(last)] + heads
    lo = datetime.combine((cut - timedelta(days=1)).date(), datetime.min.time(), UTC)
    window = (lo, lo + timedelta(days=1))
    store = base / f"store-v{schema_version()}"  # a store of another layout is rebuilt
    doc = _done(store)
    if doc is None:
        log(f"building the history store ({len(history_files)} files) with our ingest -> {store}")
        shutil.rmtree(store, ignore_errors=True)
        # one ingest per month, as a backfill would run: a single 50M-event ingest needs more
        # scratch disk for its dedup spill than this machine has
        months: dict[str, list[str]] = {}
        for f in history_files:
            months.setdefault(Path(f).name[:7], []).append(f)
        summary, secs = None, 0.0
        for month, files in sorted(months.items()):
            t, s_month = timed(lambda files=files: ingest_events(Store(store), files))
            secs += t
            log(f"  {month}: {s_month.conservation_line()} in {t:.1f}s")
            summary = s_month if summary is None else _add(summary, s_month)
        for kind, name in (("nodes", "nodes.json"), ("user_tasks", "user_tasks.json")):
            ingest_snapshot(Store(store), kind, str(fleet.root / name), window[1])
        doc = {"ingest": summary.to_dict() | {"sources": len(summary.sources)},
               "seconds": secs, "raw_bytes": sum(os.path.getsize(f) for f in history_files)}
        _mark(store, doc)
        log(f"  {summary.conservation_line()} in {secs:.1f}s")
    if rollups:
        doc = _refresh_rollups(store, doc)
    doc = doc | {"split": _done(split)}
    return History(fleet, history_files, hours, store, cut, window, doc)


def _refresh_rollups(store: Path, doc: dict) -> dict:
    """Rollups brought up to date, as the daily maintenance would have (a no-op when they are:
    any change to sql/ stales them); the time of the last real refresh is kept in the marker."""
    from pipeline.query import rollup_build
    from pipeline.store import Store

    secs, built = timed(lambda: rollup_build.refresh(Store(store), say=log))
    if built["months_built"] or built["days_built"]:
        log(f"  rollups: {built} in {secs:.1f}s")
        doc = doc | {"rollup": built | {"seconds": secs}}
        _mark(store, doc)
    return doc


def ensure_small_store(ctx: Ctx) -> tuple[Path, tuple[datetime, datetime]]:
    """A small store (the CLI's): a few days of a small fleet, snapshots at the end."""
    from pipeline.ingest.events import ingest_events
    from pipeline.ingest.snapshots import ingest_snapshot
    from pipeline.store import Store

    fleet = ensure_fleet(ctx, "cli", ctx.scale.cli_events, 3)
    end = end_instant()
    store = fleet.root.parent / f"store-v{schema_version()}"
    if _done(store) is None:
        shutil.rmtree(store, ignore_errors=True)
        summary = ingest_events(Store(store), fleet.files)
        for kind, name in (("nodes", "nodes.json"), ("user_tasks", "user_tasks.json")):
            ingest_snapshot(Store(store), kind, str(fleet.root / name), end)
        _mark(store, {"ingest": summary.to_dict() | {"sources": len(summary.sources)}})
    return store, (end - timedelta(days=1), end)


@dataclass
class Increment:
    """A history store (a template: runs copy it, never write it) and the hour after it, with
    the lines of that hour's day before it (`head_files`, already in the history store)."""

    kind: str  # "ingested" (the history fleet through our ingest) | "generated" (generate --store)
    store: Path
    head_files: list[str]
    hour_files: list[str]
    events: int  # events the history store holds
    doc: dict


def increment_of(h: History) -> Increment:
    """The standard history (its fleet ingested month by month) as an Increment."""
    heads = [f for f in h.history_files if "/split/head/" in f]
    return Increment("ingested", h.store, heads, h.hour_files, h.doc["ingest"]["stored"], h.doc)


def ensure_generated_year(ctx: Ctx) -> Path:
    """The history store written by the generator (`generate_fleet_store`: typed rows, no JSON;
    the same seed, fleet and end as the history fleet's JSON, so the same events), snapshots at
    the end; built once."""
    from pipeline.gen.tostore import generate_fleet_store

    s = ctx.scale
    aws, azure = fleet_size(s.history_events, s.history_days)
    base = ctx.inputs / f"genstore-{human(s.history_events)}-{s.history_days}d-s{SEED}"
    year = base / f"year-v{schema_version()}"
    if _done(year) is None:
        log(f"generating the history store: {aws} + {azure} instances over {s.history_days} days"
            f" -> {year}")
        shutil.rmtree(year, ignore_errors=True)
        secs, summary = timed(lambda: generate_fleet_store(
            year, seed=SEED, days=s.history_days, end=end_instant(), aws_instances=aws,
            azure_vms=azure))
        _mark(year, {"generate": summary.model_dump(mode="json"), "seconds": secs})
        log(f"  {summary} in {secs:.1f}s")
    return year


def ensure_generated_report_history(ctx: Ctx, rollups: bool = True) -> History:
    """The report benchmark's history with `--history generated`: the generated year store
    (no hour cut off: the report window is the fleet's last day, the snapshots taken at its end)
    next to the history fleet's JSON (the raw baselines read the window's day files of it); its
    rollups brought up to date unless `rollups` is False."""
    fleet = ensure_fleet(ctx, "history", ctx.scale.history_events, ctx.scale.history_days)
    year = ensure_generated_year(ctx)
    end = end_instant()
    doc = _done(year)
    gen = doc["generate"]
    doc = doc | {"ingest": {"stored": gen["run_events"] + gen["joins"], "how": "generate --store"},
                 "raw_bytes": fleet.raw_bytes}
    if rollups:
        doc = _refresh_rollups(year, doc)
    return History(fleet, fleet.files, [], year, end, (end - timedelta(days=1), end), doc)


def ensure_generated_history(ctx: Ctx) -> Increment:
    """A history store written by the generator (`generate_fleet_store`: typed rows, no JSON,
    so the 50M-event year fits on a small disk; its uid index built as it writes), then the day
    after it: the last day of a week-long fleet of the same size generated as JSON (past the
    first days' installs, so an hour holds a steady state's events), its first 23 hours ingested
    by our ingest into a hard-link copy of the history (so the hour's partition holds the day so
    far), its last hour the increment."""
    from pipeline.gen.generate import generate_fleet
    from pipeline.ingest.events import ingest_events
    from pipeline.store import Store

    s = ctx.scale
    aws, azure = fleet_size(s.history_events, s.history_days)
    year = ensure_generated_year(ctx)
    base = year.parent
    end = end_instant()
    day = base / "next-day"
    if _done(day) is None:
        shutil.rmtree(day, ignore_errors=True)
        secs, summary = timed(lambda: generate_fleet(
            day / "fleet", seed=SEED + 1, days=7, end=end + timedelta(days=1), aws_instances=aws,
            azure_vms=azure))
        last = end.strftime("%Y-%m-%d")
        cut = (end + timedelta(hours=23)).strftime("%Y-%m-%dT%H:%M:%S")
        counts = [_split_at(Path(f), cut, day / "head" / Path(f).parent.name / Path(f).name,
                            day / "hour" / Path(f).parent.name / Path(f).name)
                  for f in log_files(day / "fleet" / "auth") if Path(f).name.startswith(last)]
        shutil.rmtree(day / "fleet")  # the week's other days are not needed
        _mark(day, {"week_lines": summary.lines_written, "seconds": secs,
                    "head_lines": sum(c[0] for c in counts),
                    "hour_lines": sum(c[1] for c in counts)})
    heads = sorted(str(p) for p in (day / "head").rglob("*.log"))
    hours = sorted(str(p) for p in (day / "hour").rglob("*.log"))
    store = base / f"history-v{schema_version()}"
    doc = _done(store)
    if doc is None:
        shutil.rmtree(store, ignore_errors=True)
        link_copy(year, store)
        (store / "done.json").unlink()  # a hard link to the year's marker: not to be written
        secs, head = timed(lambda: ingest_events(Store(store), heads))
        log(f"  the next day's first 23 h: {head.conservation_line()} in {secs:.1f}s")
        doc = _done(year) | {"head": head.to_dict() | {"sources": len(head.sources),
                                                        "seconds": secs}}
        _mark(store, doc)
    events = doc["generate"]["run_events"] + doc["generate"]["joins"] + doc["head"]["stored"]
    return Increment("generated", store, heads, hours, events, doc | {"day": _done(day)})
