"""`discovery-history verify` and `compact`, on a sound store and on stores damaged on purpose
behind the store's back (files deleted, added, duplicated, moved, garbled). Through the real
CLI group in-process, and once as a real process running the registration lines."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli.main import main
from pipeline.ingest.events import ingest_events
from pipeline.ingest.snapshots import ingest_snapshot
from pipeline.query.views import connect
from pipeline.store import Store
from tests.conftest import T0, make_aws_node, make_azure_run, make_run, write_json, write_lines

# A real process: the command as users run it (`python -m pipeline.cli`)
REGISTERED = ["-m", "pipeline.cli"]
GROUP = main
PREFIX = "discovery-history: error: "
VM = "0f8a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b"
H = timedelta(hours=1)


class Ran:
    """What a command printed and its exit status (stdout and stderr apart)."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def cli(*args: str) -> Ran:
    r = CliRunner().invoke(GROUP, list(args), catch_exceptions=False,
                           env={"DISCOVERY_HISTORY_STORE": None})
    return Ran(r.exit_code, r.stdout, r.stderr)


def real_process(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DISCOVERY_HISTORY_STORE"}
    return subprocess.run([sys.executable, *REGISTERED, *args], capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """Two ingests touching the same partitions (so there is something to compact), a
    quarantined line, a node snapshot."""
    root = tmp_path_factory.mktemp("admin")
    store = Store(root / "lake")
    first = [make_run(f"i-{n}", "TDS00W" if n % 2 else "TDS00I", T0 + n * H, exit_code=n % 2)
             for n in range(6)] + [make_azure_run(VM, "TAZ00E", T0, api_error="denied")]
    second = [make_run(f"i-{n}", at=T0 + (n + 10) * H) for n in range(4)] + ["{not json"]
    ingest_events(store, [str(write_lines(root / "in" / "a.log", first))])
    ingest_events(store, [str(write_lines(root / "in" / "b.log", second))])
    ingest_snapshot(store, "nodes", str(write_json(root / "nodes.json", [make_aws_node("i-1")])),
                    T0 + 20 * H)
    return root / "lake"


@pytest.fixture
def lake(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "lake"))


def manifest(lake: Path) -> dict:
    return json.loads((lake / "_manifest.json").read_text())


def save_manifest(lake: Path, doc: dict) -> None:
    """Edit the manifest directly, as a careless tool (not the store's Writer) would."""
    (lake / "_manifest.json").write_text(json.dumps(doc, indent=1))


def first_run_file(lake: Path, contains: str = "cloud=aws") -> str:
    return next(r for r in manifest(lake)["datasets"]["runs"] if contains in r)


# --------------------------------------------------------------------------- damage


def deleted_file(lake: Path) -> list[str]:
    rel = first_run_file(lake)
    (lake / "runs" / rel).unlink()
    return [f"missing file runs/{rel}: in the manifest but not on disk"]


def orphan_file(lake: Path) -> list[str]:
    rel = first_run_file(lake)
    stray = rel.rsplit("/", 1)[0] + "/part-stray-0.parquet"
    shutil.copy(lake / "runs" / rel, lake / "runs" / stray)
    return [f"orphan file runs/{stray}: on disk but not in the manifest"]


def duplicate_uid(lake: Path) -> list[str]:
    rel = first_run_file(lake)
    copy = rel.rsplit("/", 1)[0] + "/part-copy-0.parquet"
    shutil.copy(lake / "runs" / rel, lake / "runs" / copy)
    doc = manifest(lake)
    doc["datasets"]["runs"].append(copy)
    save_manifest(lake, doc)
    return ["duplicate uid in runs: ", "row count mismatch: runs + joins hold"]


def wrong_partition(lake: Path) -> list[str]:
    rel = first_run_file(lake)  # cloud=aws/event_date=2026-05-04/...
    moved = rel.replace("event_date=2026-05-04", "event_date=2026-05-09")
    (lake / "runs" / moved).parent.mkdir(parents=True)
    (lake / "runs" / rel).rename(lake / "runs" / moved)
    doc = manifest(lake)
    doc["datasets"]["runs"] = [moved if r == rel else r for r in doc["datasets"]["runs"]]
    save_manifest(lake, doc)
    return [f"partition mismatch in runs/{moved}: ", "folder says event_date=2026-05-09"]


def azure_rows_in_aws_folder(lake: Path) -> list[str]:
    rel = first_run_file(lake, "cloud=azure")
    moved = rel.replace("cloud=azure", "cloud=aws").replace("/part-", "/part-az-")
    (lake / "runs" / moved).parent.mkdir(parents=True, exist_ok=True)
    (lake / "runs" / rel).rename(lake / "runs" / moved)
    doc = manifest(lake)
    doc["datasets"]["runs"] = [moved if r == rel else r for r in doc["datasets"]["runs"]]
    save_manifest(lake, doc)
    return [f"partition mismatch in runs/{moved}: 1 rows have cloud=azure, folder says cloud=aws"]


def not_parquet(lake: Path) -> list[str]:
    rel = first_run_file(lake)
    (lake / "runs" / rel).write_bytes(b"PAR1 but not really")
    return [f"unreadable file runs/{rel}"]


@pytest.mark.parametrize(
    "damage",
    [deleted_file, orphan_file, duplicate_uid, wrong_partition, azure_rows_in_aws_folder,
     not_parquet],
    ids=lambda f: f.__name__.replace("_", "-"),
)
def test_verify_lists_each_problem_and_exits_1(lake: Path, damage) -> None:
    expected = damage(lake)
    p = cli("--store", str(lake), "verify", "--lock-timeout", "5")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Traceback" not in p.stderr and p.stderr == ""
    head, *items = p.stdout.splitlines()
    assert head.startswith(f"store {lake}: ") and head.endswith(("problem", "problems"))
    assert int(head.split(": ")[1].split()[0]) == len(items) >= 1
    assert all(i.startswith("  - ") for i in items)
    for fragment in expected:
        assert any(fragment in i for i in items), (fragment, items)


def data_files(lake: Path) -> int:
    """Files of the datasets (the uid index files are not counted)."""
    return sum(len(v) for k, v in manifest(lake)["datasets"].items() if k != "uid_index")


def test_verify_on_a_sound_store_says_ok_with_counts(lake: Path) -> None:
    p = cli("--store", str(lake), "verify")
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    with connect(Store(lake)) as con:
        runs = con.execute("SELECT count(*) FROM runs").fetchall()[0][0]
    assert p.stdout == (
        f"store OK: {lake} (manifest v{manifest(lake)['version']}): runs {runs}, joins 0, "
        "quarantine 1, node_snapshots 1, user_task_snapshots 0, snapshot_log 1, ingest_log 3, "
        f"rollup_latest 0, rollup_trends 0 rows in {data_files(lake)} files\n")
    assert runs == 11


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        pytest.param(lambda d: d, "no store at", id="missing-store"),
        pytest.param(lambda d: (d.mkdir(), (d / "_manifest.json").write_text("{half"), d)[-1],
                     "unreadable manifest", id="garbage-manifest"),
        pytest.param(lambda d: (d.write_text("x"), d)[-1], "is a file, not a folder",
                     id="store-is-a-file"),
    ],
)
@pytest.mark.parametrize("command", ["verify", "compact", "rollup"])
def test_store_errors_are_one_line(tmp_path: Path, make, fragment: str, command: str) -> None:
    store = make(tmp_path / "lake")
    p = cli("--store", str(store), command)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.startswith(PREFIX) and p.stderr.count("\n") == 1, p.stderr
    assert fragment in p.stderr


def test_compact_merges_partitions_keeps_rows_and_verifies(lake: Path) -> None:
    def rows() -> list[tuple]:
        with connect(Store(lake)) as con:
            return sorted(con.execute("SELECT * EXCLUDE (ingest_id) FROM runs").fetchall(),
                          key=repr)

    before, files_before = rows(), len(manifest(lake)["datasets"]["runs"])
    p = cli("--store", str(lake), "compact")
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    assert p.stdout.startswith("compacted ") and "rows kept" in p.stdout
    assert rows() == before
    assert len(manifest(lake)["datasets"]["runs"]) < files_before
    assert cli("--store", str(lake), "verify").stdout.startswith("store OK: ")
    again = cli("--store", str(lake), "compact")
    assert again.stdout == "nothing to compact: every partition holds one file\n"


def test_compact_migrates_an_old_layout_first_and_says_so(tmp_path: Path) -> None:
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "store-v1"
    lake = shutil.copytree(fixture, tmp_path / "lake")
    p = cli("--store", str(lake), "compact")
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    assert p.stdout.splitlines()[0] == ("migrated 3 files of an older layout to the current one "
                                        "(logged in ingest_log as kind migrate)")
    assert manifest(lake)["schema_version"] == 2
    assert cli("--store", str(lake), "verify").stdout.startswith("store OK: ")


def test_compact_rebuilds_a_uid_index_verify_finds_short(lake: Path) -> None:
    from pipeline.store import uidindex

    store = Store(lake)
    with store.writer() as w:  # damage: the index loses its files, the manifest still vouches
        w.remove("uid_index", w.base.datasets["uid_index"])
        w.commit()
    damaged = cli("--store", str(lake), "verify")
    assert damaged.returncode == 1 and "uid index of runs lacks" in damaged.stdout
    p = cli("--store", str(lake), "compact", "--rebuild-index")
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    with connect(store) as con:
        stored = con.execute("SELECT (SELECT count(*) FROM runs) + (SELECT count(*) FROM joins)"
                             ).fetchall()[0][0]
    assert f"rebuilt the uid index: {stored} uids\n" in p.stdout
    assert len(uidindex.files_of(store.manifest(), "runs")) == 1
    assert cli("--store", str(lake), "verify").stdout.startswith("store OK: ")


def test_rollup_builds_then_has_nothing_to_do(lake: Path) -> None:
    days = {r.split("event_date=")[1][:10] for r in manifest(lake)["datasets"]["runs"]}
    p = cli("--store", str(lake), "rollup")
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    assert p.stdout == (f"rollups: built 1 month(s) and {len(days)} day(s); "
                        "removed 0 stale file(s)\n")
    assert cli("--store", str(lake), "verify").stdout.startswith("store OK: ")
    assert cli("--store", str(lake), "rollup").stdout == "rollups up to date\n"


def test_as_a_real_process(lake: Path) -> None:
    ok = real_process("--store", str(lake), "verify")
    assert (ok.returncode, ok.stderr) == (0, "") and ok.stdout.startswith(f"store OK: {lake} ")
    orphan_file(lake)
    bad = real_process("--store", str(lake), "verify")
    assert bad.returncode == 1 and bad.stdout.startswith(f"store {lake}: 1 problem\n  - orphan")
    missing = real_process("--store", str(lake / "nowhere"), "compact")
    assert missing.returncode == 1 and missing.stderr.startswith(PREFIX + "no store at")
