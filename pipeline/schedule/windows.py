"""The windows of the scheduled runs: pure functions over what each DAG's helper read from the
Airflow context (intervals, asset events, run conf), given as plain values. All windows are
half-open UTC intervals [start, end).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from pipeline.timeutil import InputError, parse_instant


@dataclass(frozen=True)
class RunWindow:
    """A run's half-open window [start, end) and its label; `at` stamps snapshots."""

    start: datetime
    end: datetime
    label: str = ""
    mail: bool = True

    @property
    def at(self) -> datetime:
        return self.end


def utc(t: datetime) -> datetime:
    """A plain aware UTC datetime (pendulum's DateTime and naive UTC values accepted)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    t = t.astimezone(UTC)
    return datetime(t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond, tzinfo=UTC)


def conf_window(conf: Mapping[str, Any] | None) -> tuple[datetime, datetime] | None:
    """A window asked for in the run conf: `{"start": .., "end": ..}` (RFC 3339 or dates) or
    `{"date": "2026-05-30"}` (that UTC day); None when the conf names none."""
    conf = conf or {}
    if conf.get("date"):
        start = parse_instant(str(conf["date"]))
        return start, start + timedelta(days=1)
    if conf.get("start") or conf.get("end"):
        if not (conf.get("start") and conf.get("end")):
            raise InputError('run conf needs both "start" and "end" (or "date")')
        start, end = parse_instant(str(conf["start"])), parse_instant(str(conf["end"]))
        if end <= start:
            raise InputError(f'run conf "end" ({conf["end"]}) must be after "start"')
        return start, end
    return None


def ingest_window(*, conf: Mapping[str, Any] | None, interval_start: datetime | None,
                  interval_end: datetime | None, run_after: datetime,
                  lookback: timedelta) -> RunWindow:
    """The events an ingest run reads: the conf's window as given; else the data interval
    widened by `lookback` at the start; else (a manual run) the hour before `run_after`, widened
    the same way. `at` (snapshot capture time) is the end of the unwidened window."""
    asked = conf_window(conf)
    if asked is not None:
        return RunWindow(utc(asked[0]), utc(asked[1]), label="conf")
    if interval_start is not None and interval_end is not None and interval_end > interval_start:
        return RunWindow(utc(interval_start) - lookback, utc(interval_end), label="interval")
    end = utc(run_after)
    return RunWindow(end - timedelta(hours=1) - lookback, end, label="manual")


def _midnight(t: datetime) -> datetime:
    return datetime.combine(t.date(), time(), tzinfo=UTC)


def day_label(start: datetime, end: datetime) -> str | None:
    """`YYYY-MM-DD` when [start, end) is exactly one UTC day, else None."""
    if start == _midnight(start) and end - start == timedelta(days=1):
        return f"{start:%Y-%m-%d}"
    return None


def report_window(*, conf: Mapping[str, Any] | None, asset_ends: Sequence[datetime],
                  interval_end: datetime | None, run_after: datetime,
                  span: timedelta = timedelta(hours=24)) -> RunWindow:
    """The report a run renders, as [end − 24 h, end) and a folder label:

    * the conf's window (mailed; label = the day, or `<start>--<end>`);
    * after history updates (asset events carrying `window_end`): end = the newest ingested
      end; a midnight end gives that day's report (mailed), any other end the rolling
      `latest` report (not mailed: one mail a day);
    * otherwise (the daily schedule, a manual run) the UTC day before the run's time, mailed.
    """
    asked = conf_window(conf)
    if asked is not None:
        start, end = utc(asked[0]), utc(asked[1])
        label = day_label(start, end) or f"{start:%Y%m%dT%H%M%SZ}--{end:%Y%m%dT%H%M%SZ}"
        return RunWindow(start, end, label=label, mail=True)
    if asset_ends:
        end = max(utc(t) for t in asset_ends)
        if end == _midnight(end):
            return RunWindow(end - span, end, label=f"{end - span:%Y-%m-%d}", mail=True)
        return RunWindow(end - span, end, label="latest", mail=False)
    end = _midnight(utc(interval_end or run_after))
    return RunWindow(end - span, end, label=f"{end - span:%Y-%m-%d}", mail=True)


@dataclass(frozen=True)
class Readiness:
    """Whether a report run renders now (`ready`), polls again later (`wait`) or ends without a
    report (`skip`), and why (logged by the report DAG's sensor at every poke)."""

    state: str  # "ready" | "wait" | "skip"
    reason: str


INGEST_DAG = "discovery_ingest"


def backfill_hint(gaps: Sequence[tuple[datetime, datetime]]) -> str:
    """How an operator fills `gaps`: a conf-window run of the ingest DAG for each."""
    runs = "; ".join(
        f"airflow dags trigger {INGEST_DAG} --conf "
        f"'{{\"start\": \"{s:%Y-%m-%dT%H:%M:%SZ}\", \"end\": \"{e:%Y-%m-%dT%H:%M:%SZ}\"}}'"
        for s, e in gaps)
    return f"to load it: {runs} (or `airflow backfill create --dag-id {INGEST_DAG} ...`)"


def report_readiness(window: RunWindow, coverage: Sequence[tuple[datetime, datetime]], *,
                     ingest_pending: int, superseded: bool) -> Readiness:
    """The report DAG's gate (its `wait_for_history` sensor), in order:

    * `superseded` (an asset-triggered run while a newer history event exists): skip; the
      scheduler holds those events for the one run it starts next (max_active_runs=1), so a
      burst of ingests (a backfill) renders once, after its last interval;
    * ingest runs queued or running: wait (their windows, snapshots and events land first);
    * the window fully covered by committed ingest windows: ready;
    * otherwise the rolling report (not mailed) is skipped — the next ingest starts a newer
      one — and a mailed report waits for the missing part, naming it and how to load it.
    """
    from pipeline.store.coverage import describe, missing

    if superseded:
        return Readiness("skip", "superseded: newer history updates are queued for the next "
                                 "report run, which renders them all at once")
    if ingest_pending:
        return Readiness("wait", f"{ingest_pending} {INGEST_DAG} run(s) queued or running; "
                                 "the report waits for them")
    gaps = missing(coverage, window.start, window.end)
    if not gaps:
        return Readiness("ready", f"the store holds all of [{window.start:%Y-%m-%dT%H:%M:%SZ}, "
                                  f"{window.end:%Y-%m-%dT%H:%M:%SZ})")
    what = (f"the store does not yet hold all of report {window.label!r} "
            f"[{window.start:%Y-%m-%dT%H:%M:%SZ}, {window.end:%Y-%m-%dT%H:%M:%SZ}): missing "
            f"{describe(gaps)}")
    if not window.mail:
        return Readiness("skip", f"{what}; the rolling report is built by a later run")
    return Readiness("wait", f"{what}; {backfill_hint(gaps)}")
