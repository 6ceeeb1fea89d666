"""Schema evolution: events of older and newer Teleport versions share one dataset, and stores
written by earlier versions of this project (tests/fixtures/store-v<N>/, written once by
tests/fixtures/make_store_v1.py with the code of schema version N) stay readable and writable."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline import models
from pipeline.ingest.events import ingest_events
from pipeline.ingest.snapshots import ingest_snapshot
from pipeline.publish.build import write_history_report
from pipeline.query.views import connect
from pipeline.report.nodes import nodes_report
from pipeline.store import Store
from pipeline.store.layout import SCHEMA_VERSION
from pipeline.store.maintenance import compact
from pipeline.store.verify import verify
from tests.conftest import T0, make_run, write_lines
from tests.fixtures import make_store_v1 as v1

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STORES = sorted(FIXTURES.glob("store-v*"), key=lambda p: int(p.name.rsplit("v", 1)[1]))
WINDOW = (v1.T0, v1.T0 + timedelta(hours=4))
COUNTS = {"runs": 6, "joins": 1, "quarantine": 1, "node_snapshots": 1, "user_task_snapshots": 1,
          "snapshot_log": 2, "ingest_log": 3}
# (cloud, key, online, exit code, failed, output, api error, user task) of tctl's report
NODES = [
    ("aws", "i-0new", False, 0, False, "", "", ""),
    ("aws", "i-0aaa", True, 0, False, "Agent joined cluster.", "", ""),
    ("aws", "i-0bbb", False, 104, True, "<script>alert('v1')</script>", "", "task-v1"),
    ("aws", "i-0old", False, 0, True, "", "", ""),  # old Teleport: exit 0, failed by code
    # the key as the event wrote it (upper case), as tctl keys it
    ("azure", v1.VM.upper(), False, 0, True, "", "AuthorizationFailed", ""),
]


def report_rows(store: Store) -> list[tuple]:
    with connect(store) as con:
        return [(r.cloud, r.key, r.is_online, r.run.exit_code, r.run.is_failure, r.run.output,
                 r.run.api_error, r.user_task_id) for r in nodes_report(con, *WINDOW)]


def unknown_fields(store: Store, uid: str) -> dict:
    """The fields of a stored run that no model defines, whichever column keeps them (`raw`, the
    whole line, in schema 1; `extra`, only those fields, from schema 2)."""
    with connect(store) as con:
        cur = con.execute("SELECT * FROM runs WHERE uid = $1", [uid])
        row = dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
    doc = json.loads(row.get("extra") or row.get("raw") or "{}")
    return {k: v for k, v in doc.items() if k not in models.SSMRun.model_fields}


@pytest.fixture(params=STORES, ids=lambda p: p.name)
def old_store(request, tmp_path: Path) -> Store:
    """A copy of a fixture store (the fixture itself is never written)."""
    return Store(shutil.copytree(request.param, tmp_path / request.param.name))


def test_fixtures_are_small_and_what_their_names_say() -> None:
    assert [p.name for p in STORES][:2] == ["store-v1", "store-v2"]
    for p in STORES:
        assert sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) < 200_000
        assert json.loads((p / "_manifest.json").read_text())["schema_version"] == \
            int(p.name.rsplit("v", 1)[1])
        assert not (p / "_lock").exists() and not (p / "_staging").exists()
    assert int(STORES[-1].name.rsplit("v", 1)[1]) <= SCHEMA_VERSION


def test_an_old_store_reads_with_the_current_code(old_store: Store) -> None:
    with connect(old_store) as con:
        assert {n: con.execute(f"SELECT count(*) FROM {n}").fetchall()[0][0] for n in COUNTS} \
            == COUNTS
        con.execute("SELECT * FROM latest_runs(make_timestamp_ns($1), make_timestamp_ns($2))",
                    [models.parse_time_ns("2026-05-04T00:00:00Z"),
                     models.parse_time_ns("2026-05-05T00:00:00Z")]).fetchall()
    assert report_rows(old_store) == NODES
    assert unknown_fields(old_store, "v1-n1") == {
        "teleport_version": "19.0.0", "ssm_document": {"name": "AWS-RunShellScript", "attempt": 2}}


def test_the_history_report_of_an_old_store(old_store: Store, tmp_path: Path) -> None:
    summary = write_history_report(old_store, tmp_path / "report", start=WINDOW[0], end=WINDOW[1])
    assert (summary["attempts"], summary["failed_attempts"]) == (6, 4)
    page = (tmp_path / "report" / "index.html").read_text()
    assert "i-0bbb" in page and "&lt;script&gt;alert(" in page and "<script" not in page


def test_a_new_ingest_into_an_old_store(old_store: Store, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the fixture's `source` paths are relative: same names again
    paths = v1.write_input(Path(v1.INPUT))
    again = ingest_events(old_store, [str(paths["events"])])
    assert (again.read, again.stored, again.duplicates, again.skipped, again.quarantined) == \
        (9, 0, 7, 1, 1)  # dedup against the old files, and the quarantine is not doubled
    assert ingest_snapshot(old_store, "nodes", str(paths["nodes"]), v1.AT).stored == 0
    new = [make_run("i-0aaa", "TDS00W", v1.T0 + timedelta(hours=1), exit_code=1, uid="v2-a3"),
           {**make_run("i-0zzz", at=v1.T0 + timedelta(hours=2), uid="v2-z1"), "future": [1]}]
    s = ingest_events(old_store, [str(write_lines(tmp_path / "new.log", new))])
    assert (s.stored, s.duplicates, s.quarantined) == (2, 0, 0)
    with connect(old_store) as con:
        assert con.execute("SELECT count(*), count(DISTINCT uid) FROM runs").fetchall() == [(8, 8)]
        assert con.execute("SELECT count(*) FROM quarantine").fetchall() == [(1,)]
    rows = {r[1]: r for r in report_rows(old_store)}
    assert rows["i-0aaa"][3:5] == (1, True) and "i-0zzz" in rows
    assert unknown_fields(old_store, "v2-z1") == {"future": [1]}
    assert unknown_fields(old_store, "v1-n1")["teleport_version"] == "19.0.0"


def test_compacting_an_old_store_keeps_every_field(old_store: Store, tmp_path: Path) -> None:
    more = [make_run("i-0new", at=v1.T0 + timedelta(hours=2), uid="v2-n2")]  # same partition
    ingest_events(old_store, [str(write_lines(tmp_path / "more.log", more))])
    assert compact(old_store)["partitions"] >= 1
    assert unknown_fields(old_store, "v1-n1")["teleport_version"] == "19.0.0"
    assert report_rows(old_store)[0][:2] == ("aws", "i-0new")


# --------------------------------------------------------------------------- event versions

OLD_TELEPORT = {k: v for k, v in make_run("i-0old", "TDS00W", T0, exit_code=0, uid="e-old").items()
                if k not in ("stdout", "stderr", "invocation_url")}
NEW_TELEPORT = {**make_run("i-0new", "TDS00W", T0, exit_code="137", uid="e-new",
                           stderr="killed"),
                "teleport_version": "19.1.0", "ssm": {"document": "AWS-RunShellScript",
                                                      "steps": [{"name": "install", "exit": 137}]}}


def test_older_and_newer_teleport_events_share_one_dataset(tmp_path: Path) -> None:
    store = Store(tmp_path / "lake")
    assert OLD_TELEPORT["status"] == "Failed" and "stdout" not in OLD_TELEPORT
    for n, ev in enumerate((OLD_TELEPORT, NEW_TELEPORT, make_run("i-0mid", uid="e-mid"))):
        s = ingest_events(store, [str(write_lines(tmp_path / f"{n}.log", [ev]))])
        assert (s.stored, s.quarantined) == (1, 0)
    assert store.manifest().datasets["runs"] and verify(store) == []
    with connect(store) as con:
        rows = con.execute("SELECT uid, stdout, stderr, invocation_url, exit_code, status, "
                           "is_failure FROM runs ORDER BY uid").fetchall()
        files = {r[0].rsplit("/", 2)[-2] for r in con.execute(
            "SELECT DISTINCT filename FROM read_parquet(getvariable('runs_files'), "
            "filename = true) WHERE uid LIKE 'e-%'").fetchall()}
    assert rows == [("e-mid", "", "", "", 0, "Success", False),
                    ("e-new", "", "killed", "", 137, "Failed", True),
                    ("e-old", "", "", "", 0, "Failed", True)]  # failed by its code, exit 0
    assert files == {"event_date=2026-05-04"}  # one partition, three ingests, one schema
    assert unknown_fields(store, "e-new") == {k: NEW_TELEPORT[k] for k in ("teleport_version", "ssm")}
    assert models.parse_event(json.dumps(OLD_TELEPORT)).is_failure


# --------------------------------------------------------------------------- older layouts


def test_verify_passes_an_old_store_that_reads_correctly(old_store: Store, tmp_path: Path,
                                                         monkeypatch) -> None:
    assert verify(old_store) == []
    monkeypatch.chdir(tmp_path)
    new = [{**make_run("i-0zzz", at=v1.T0 + timedelta(hours=2), uid="v2-z1"), "future": [1]}]
    ingest_events(old_store, [str(write_lines(tmp_path / "new.log", new))])
    # a write keeps the manifest's oldest layout: files of schema 1 are still there
    assert old_store.manifest().schema_version == int(old_store.root.name.rsplit("v", 1)[1])
    assert verify(old_store) == []


def table_rows(store: Store, name: str, columns: str) -> list[tuple]:
    with connect(store) as con:
        return con.execute(f"SELECT {columns} FROM {name} ORDER BY uid").fetchall()


def test_compaction_migrates_schema_1_in_one_logged_step(tmp_path: Path) -> None:
    from pipeline.store.layout import JOINS, RUNS
    from pipeline.store.migrate import migrate

    store = Store(shutil.copytree(FIXTURES / "store-v1", tmp_path / "lake"))
    typed = {ds.name: ", ".join(c for c, _ in ds.columns if c != "extra") for ds in (RUNS, JOINS)}
    before = {n: table_rows(store, n, cols) for n, cols in typed.items()}
    fields = {uid: unknown_fields(store, uid) for uid in ("v1-n1", "v1-a1")}
    nodes = report_rows(store)

    summary = compact(store)

    assert summary["migrated"] == 3  # two runs files and one joins file
    m = store.manifest()
    assert m.schema_version == SCHEMA_VERSION
    assert {n: table_rows(store, n, cols) for n, cols in typed.items()} == before
    assert {uid: unknown_fields(store, uid) for uid in fields} == fields == {
        "v1-n1": {"teleport_version": "19.0.0",
                  "ssm_document": {"name": "AWS-RunShellScript", "attempt": 2}},
        "v1-a1": {}}
    assert report_rows(store) == nodes
    with connect(store) as con:
        assert "raw" not in [d[0] for d in con.execute("SELECT * FROM runs LIMIT 0").description]
        [(sources, stored)] = con.execute(
            "SELECT sources, stored FROM ingest_log WHERE kind = 'migrate'").fetchall()
    assert stored == 0 and sorted(sources) == sorted(
        [f"runs/{r}" for r in json.loads((FIXTURES / "store-v1" / "_manifest.json").read_text())
         ["datasets"]["runs"]] + [f"joins/{r}" for r in json.loads(
             (FIXTURES / "store-v1" / "_manifest.json").read_text())["datasets"]["joins"]])
    assert verify(store) == []
    assert migrate(store)["files"] == 0 and store.manifest().version == m.version  # done once
