"""Differential test of `generate_fleet_store`: the store it writes holds, row for row, what
`generate_fleet` followed by `ingest_events` (and the snapshot ingests) stores from the same
arguments; only the provenance columns `source` and `ingest_id` differ."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipeline.gen.generate import DEFAULT_END, GenerateError, generate_fleet
from pipeline.gen.tostore import generate_fleet_store
from pipeline.ingest.events import ingest_events
from pipeline.ingest.snapshots import ingest_snapshot
from pipeline.store import Store
from pipeline.store.layout import (
    JOINS,
    NODE_EXPIRY,
    NODE_HISTORY,
    RUNS,
    USER_TASK_HISTORY,
    Dataset,
)
from pipeline.store.verify import verify

# small, yet every value path occurs: per-event pid and command id inside the output, sampled
# SSM statuses, legacy lines (no URL), Azure API errors, failed joins (`error` in extra)
ARGS = {"seed": 3, "days": 3, "aws_instances": 120, "azure_vms": 40}
PROVENANCE = ("source", "ingest_id")


def rows(store: Store, ds: Dataset, where: str = "true") -> list[tuple]:
    """Every committed row of `ds` but the provenance columns, partition keys included,
    sorted by all columns (uid first where there is one)."""
    cols = [c for c, _ in ds.columns + ds.partition if c not in PROVENANCE]
    con = duckdb.connect()
    try:
        return con.execute(
            f"SELECT {', '.join(cols)} FROM read_parquet($1, hive_partitioning = true) "
            f"WHERE {where} ORDER BY ALL", [store.files(ds.name)]).fetchall()
    finally:
        con.close()


def column_values(store: Store, ds: Dataset, column: str) -> set:
    con = duckdb.connect()
    try:
        return {r[0] for r in con.execute(
            f"SELECT DISTINCT {column} FROM read_parquet($1, hive_partitioning = true)",
            [store.files(ds.name)]).fetchall()}
    finally:
        con.close()


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> tuple[Store, Store, object]:
    """(ingested from the JSON fleet, generated straight, its summary)."""
    root = tmp_path_factory.mktemp("gen-store")
    fleet = root / "fleet"
    generate_fleet(fleet, **ARGS)
    ingested = Store(root / "ingested")
    assert ingest_events(ingested, [str(fleet / "auth")]).duplicates > 0  # dups were there
    for kind in ("nodes", "user_tasks"):
        ingest_snapshot(ingested, kind, str(fleet / f"{kind}.json"), DEFAULT_END)
    direct = Store(root / "direct")
    return ingested, direct, generate_fleet_store(direct, **ARGS)


@pytest.mark.parametrize("ds", [RUNS, JOINS, NODE_HISTORY, NODE_EXPIRY, USER_TASK_HISTORY],
                         ids=lambda d: d.name)
def test_same_rows_as_generate_then_ingest(stores, ds):
    ingested, direct, _ = stores
    want, got = rows(ingested, ds), rows(direct, ds)
    assert len(got) == len(want)
    for w, g in zip(want, got, strict=True):  # the first differing row, not a 2000-row diff
        assert g == w


def test_fleet_exercises_every_value_path(stores):
    _, direct, _ = stores
    assert rows(direct, RUNS, "stderr LIKE '%held by process%'")  # {pid}
    assert rows(direct, RUNS, "stdout LIKE '%/orchestration/%'")  # {cmd} in stdout
    assert {"TimedOut", "Failed"} <= column_values(direct, RUNS, "status")
    assert rows(direct, RUNS, "cloud = 'aws' AND invocation_url = ''")  # legacy lines
    assert rows(direct, RUNS, "api_error <> ''")
    assert rows(direct, JOINS, "extra LIKE '%\"error\"%'")


def test_store_verifies_and_records_provenance(stores):
    _, direct, summary = stores
    assert verify(direct) == []
    assert column_values(direct, RUNS, "source") == {summary.source}
    assert column_values(direct, JOINS, "ingest_id") == {summary.ingest_id}
    assert summary.source.startswith("generate_fleet_store(seed=3, days=3,")
    assert summary.stored == len(rows(direct, RUNS)) + len(rows(direct, JOINS))


def test_empty_fleet_stores_no_events(tmp_path):
    store = Store(tmp_path / "lake")
    summary = generate_fleet_store(store, days=1, aws_instances=0, azure_vms=0)
    assert (summary.run_events, summary.joins) == (0, 0)
    assert rows(store, RUNS) == [] and rows(store, JOINS) == []


def test_empty_fleet_verifies(tmp_path):
    """Snapshots holding only non-cloud nodes: all-None columns are still typed as the layout."""
    store = Store(tmp_path / "lake")
    generate_fleet_store(store, days=1, aws_instances=0, azure_vms=0)
    assert verify(store) == []


def test_bad_arguments(tmp_path: Path):
    with pytest.raises(GenerateError, match="days=0"):
        generate_fleet_store(tmp_path / "lake", days=0)
    assert not (tmp_path / "lake").exists()


def test_cli_generates_a_store_once(tmp_path):
    from click.testing import CliRunner

    from pipeline.cli.main import main

    args = ["demo", "generate", str(tmp_path / "lake"), "--store", "--days", "1",
            "--aws-instances", "6", "--azure-vms", "2"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert first.output.startswith(f"wrote {tmp_path / 'lake'}: ") and "runs and" in first.output
    assert verify(Store(tmp_path / "lake")) == []
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1
    assert again.output.count("\n") == 1 and "already holds events" in again.output


def test_small_sort_spans_and_pieces_store_the_same_rows(stores, tmp_path, monkeypatch):
    """Events sorted a few files at a time and read in pieces of one or two files (what a
    year-long fleet does) store the same rows, each file in time order."""
    from pipeline.gen import tostore

    _, direct, _ = stores
    monkeypatch.setattr(tostore, "SORT_ROWS", 700)
    monkeypatch.setattr(tostore, "CHUNK_ROWS", 300)
    small = Store(tmp_path / "small")
    generate_fleet_store(small, **ARGS)
    for ds in (RUNS, JOINS):
        assert rows(small, ds) == rows(direct, ds)
    con = duckdb.connect()
    unordered = con.execute(
        "SELECT filename FROM (SELECT filename, time < lag(time) OVER (PARTITION BY filename "
        "ORDER BY file_row_number) AS back FROM read_parquet($1, filename = true, "
        "file_row_number = true)) WHERE back", [small.files(RUNS.name)]).fetchall()
    assert unordered == []


def test_file_spans_cut_whole_files_within_a_cloud():
    from pipeline.gen.tostore import file_spans

    files = [(0, 5), (1, 5), (2, 5), (3, 1), (4, 9), (5, 1)]  # 3 days: 0-2 aws, 3-5 azure
    assert file_spans(files, 10, 3) == [(0, 2), (2, 3), (3, 5), (5, 6)]
    assert file_spans(files, 100, 3) == [(0, 3), (3, 6)]
    assert file_spans([], 10, 3) == []
