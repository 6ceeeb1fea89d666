"""Event-handler exports as Fluentd writes them (tests/fixtures/teleport/: out_file lines, JSON
records with no time, injected times), gzip'd or not, alone and beside the file log."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import models
from pipeline.ingest.events import ingest_events
from pipeline.schedule.config import Settings
from pipeline.store import Store
from tests.conftest import query

TELEPORT = Path(__file__).resolve().parents[1] / "fixtures" / "teleport"
FILELOG = TELEPORT / "filelog" / "2026-05-04.00:00:00.log"
FLUENTD = TELEPORT / "fluentd"
CLI = [str(Path(sys.executable).with_name("discovery-history"))]
# the five events of the fixtures: uid suffix -> (UTC time in the file log, stored at seconds)
UIDS = [f"8f4b3a2e-5c61-4d7e-9a0b-1c2d3e4f5a0{i}" for i in range(1, 6)]
SECONDS = ["2026-05-04 10:00:00", "2026-05-04 10:05:07", "2026-05-04 10:10:00",
           "2026-05-04 10:15:30", "2026-05-04 10:20:45"]
PRECISE = {UIDS[0]: "2026-05-04T10:00:00.123456789Z", UIDS[1]: "2026-05-04T10:05:07.5Z",
           UIDS[2]: "2026-05-04T10:10:00.000001Z", UIDS[3]: "2026-05-04T10:15:30.25Z"}


def copy(tmp: Path, src: Path, *, gz: bool = False, name: str | None = None) -> Path:
    """The fixture `src` copied into `tmp` (gzip-compressed with `gz`)."""
    dst = tmp / ((name or src.name) + (".gz" if gz else ""))
    dst.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        dst.write_bytes(gzip.compress(src.read_bytes()))
    else:
        shutil.copyfile(src, dst)
    return dst


def balanced(s) -> None:
    assert s.read == s.stored + s.duplicates + s.skipped + s.quarantined, s
    assert "MISMATCH" not in s.conservation_line()


def stored(store: Store) -> dict[str, tuple]:
    """uid -> (event, time at µs as text, time_text) of every stored run and join."""
    out = {}
    for ds in ("runs", "joins"):
        for uid, event, t, text in query(store, ds, "SELECT uid, event, strftime(time, "
                                         "'%Y-%m-%d %H:%M:%S'), time_text FROM t"):
            out[uid] = (event, t, text)
    return out


def quarantined(store: Store) -> list[tuple]:
    return query(store, "quarantine", "SELECT line_no, reason FROM t ORDER BY 1") \
        if store.exists() else []


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_out_file_lines_take_their_time_from_the_time_column(store: Store, tmp_path: Path, gz):
    s = ingest_events(store, [str(copy(tmp_path, FLUENTD / "out_file.20260504.log", gz=gz))])
    balanced(s)
    assert (s.read, s.stored, s.quarantined, s.conflicts) == (5, 5, 0, 0)
    got = stored(store)
    assert sorted(got) == UIDS
    # the column's local time (+02:00) read as the instant it is: stored in UTC
    assert [got[u][1] for u in UIDS] == SECONDS
    assert got[UIDS[0]] == ("ssm.run", SECONDS[0], "2026-05-04T12:00:00+02:00")
    # the tag is Fluentd's, not the event's: not kept as an unknown key
    assert query(store, "runs", "SELECT count(*) FROM t WHERE extra IS NOT NULL") == [(0,)]
    [(host, extra)] = query(store, "joins", "SELECT host_id, extra FROM t")
    assert host == "5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f"
    assert json.loads(extra)["roles"] == ["Node"]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_json_records_with_no_time_anywhere_are_quarantined_with_that_reason(
        store: Store, tmp_path: Path, gz):
    s = ingest_events(store, [str(copy(tmp_path, FLUENTD / "format_json.20260504.log", gz=gz))])
    balanced(s)
    assert (s.read, s.stored, s.quarantined) == (5, 0, 5)
    reasons = {r for _, r in quarantined(store)}
    assert reasons == {models.missing_time_reason()}
    assert "missing field time" in reasons.pop()


def test_injected_time_key_is_read_with_the_time_key_option(store: Store, tmp_path: Path):
    f = copy(tmp_path, FLUENTD / "inject_string.20260504.log")
    s = ingest_events(store, [str(f)], time_key="fluentd_time")
    balanced(s)
    assert (s.stored, s.quarantined) == (5, 0)
    got = stored(store)
    assert [got[u][1] for u in UIDS] == SECONDS
    assert got[UIDS[0]][2] == "2026-05-04T10:00:00.000000000Z"
    # the injected key is not one of Teleport's: kept in `extra`
    [(extra,)] = query(store, "runs", "SELECT extra FROM t WHERE uid = $1", [UIDS[0]])
    assert json.loads(extra) == {"fluentd_time": "2026-05-04T10:00:00.000000000Z"}


def test_injected_time_key_without_the_option_has_no_time(store: Store, tmp_path: Path):
    s = ingest_events(store, [str(copy(tmp_path, FLUENTD / "inject_string.20260504.log"))])
    balanced(s)
    assert (s.stored, s.quarantined) == (0, 5)


def test_injected_float_time_under_time_is_an_epoch(store: Store, tmp_path: Path):
    s = ingest_events(store, [str(copy(tmp_path, FLUENTD / "inject_float.20260504.log", gz=True))])
    balanced(s)
    assert (s.stored, s.quarantined) == (5, 0)
    got = stored(store)
    assert [got[u][1] for u in UIDS] == SECONDS
    assert got[UIDS[0]][2] == "1777888800.0"


@pytest.mark.parametrize(
    "names",
    [("a-filelog.log", "b-fluentd.log"), ("b-filelog.log", "a-fluentd.log")],
    ids=["file-log-first", "fluentd-first"],
)
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_same_events_via_fluentd_and_file_log_are_duplicates_keeping_the_precise_time(
        store: Store, tmp_path: Path, names, gz):
    """Fluentd's copy has whole seconds in a local offset and other key order: one event, not a
    conflict; within one ingest the file log's nanosecond time is the one stored."""
    log = copy(tmp_path, FILELOG, name=names[0])
    flu = copy(tmp_path, FLUENTD / "out_file.20260504.log", gz=gz, name=names[1])
    s = ingest_events(store, [str(log), str(flu)])
    balanced(s)
    assert (s.read, s.stored, s.duplicates, s.conflicts, s.quarantined) == (9, 5, 4, 0, 0)
    got = stored(store)
    assert {u: got[u][2] for u in PRECISE} == PRECISE
    assert got[UIDS[4]][2] == "2026-05-04T12:20:45+02:00"  # only Fluentd saw it


@pytest.mark.parametrize("first", ["filelog", "fluentd"])
def test_same_events_in_separate_ingests_are_duplicates(store: Store, tmp_path: Path, first):
    """Across ingests the copy stored first stays (the store is append-only): a later copy of
    either kind is a duplicate, never a conflict."""
    log = copy(tmp_path, FILELOG)
    flu = copy(tmp_path, FLUENTD / "out_file.20260504.log")
    one, two = (log, flu) if first == "filelog" else (flu, log)
    balanced(ingest_events(store, [str(one)]))
    s = ingest_events(store, [str(two)])
    balanced(s)
    assert (s.duplicates, s.conflicts, s.quarantined) == (4, 0, 0)
    assert s.stored == (1 if first == "filelog" else 0)


def test_a_different_second_is_still_a_conflict(store: Store, tmp_path: Path):
    line = (FLUENTD / "out_file.20260504.log").read_text().splitlines()[0]
    moved = line.replace("2026-05-04T12:00:00+02:00", "2026-05-04T12:00:01+02:00", 1)
    f = tmp_path / "moved.log"
    f.write_text(moved + "\n")
    s = ingest_events(store, [str(copy(tmp_path, FILELOG)), str(f)])
    balanced(s)
    assert (s.conflicts, s.quarantined) == (1, 1)


def test_cli_time_key_option(store: Store, tmp_path: Path):
    f = copy(tmp_path, FLUENTD / "inject_string.20260504.log")
    out = subprocess.run(CLI + ["--store", str(store.root), "ingest", "events", str(f),
                                "--time-key", "fluentd_time"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "read 5 = stored 5 + duplicates 0 + skipped 0 + quarantined 0"
    bad = subprocess.run(CLI + ["--store", str(tmp_path / "other"), "ingest", "events", str(f),
                                "--time-key", " "], capture_output=True, text=True)
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "--time-key" in bad.stderr


def test_dag_settings_carry_the_time_key(monkeypatch):
    monkeypatch.setenv("DISCOVERY_HISTORY_TIME_KEY", "fluentd_time")
    assert Settings().time_key == "fluentd_time"
    monkeypatch.delenv("DISCOVERY_HISTORY_TIME_KEY")
    assert Settings().time_key == "time"


def test_dag_passes_the_time_key_to_the_ingest():
    """The ingest task hands the setting to `ingest_events` (read from the DAG file: importing
    it needs Airflow; the DAG's own run is tested in tests/dags)."""
    text = (Path(__file__).resolve().parents[2] / "dags" / "discovery_ingest.py").read_text()
    assert "time_key=settings.time_key" in text


def test_models_read_fluentd_lines_as_the_bulk_validator_does():
    line = (FLUENTD / "out_file.20260504.log").read_text().splitlines()[0]
    ev = models.parse_event(line)
    assert isinstance(ev, models.SSMRun) and ev.time == "2026-05-04T12:00:00+02:00"
    assert ev.time_ns == 1777888800 * 10**9 and ev.raw == line and ev.is_failure
    inject = (FLUENTD / "inject_string.20260504.log").read_text().splitlines()[0]
    assert models.parse_event(inject, "fluentd_time").time_ns == 1777888800 * 10**9
    assert "missing field" in models.explain(inject)
