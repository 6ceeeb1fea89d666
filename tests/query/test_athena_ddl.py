"""The Athena DDL under sql/athena/ against the store: columns exactly the layout's, and the
partition projection templates matching the folders a real ingest writes."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pipeline.ingest.events import ingest_events
from pipeline.ingest.snapshots import ingest_snapshot
from pipeline.query.nodes import CLOUDS
from pipeline.store import Store
from pipeline.store.layout import (
    JOINS,
    NODE_EXPIRY,
    NODE_HISTORY,
    NODE_HISTORY_ENDS,
    RUNS,
    USER_TASK_HISTORY,
    USER_TASK_HISTORY_ENDS,
    Dataset,
)
from tests.conftest import (
    T0,
    make_aws_node,
    make_azure_run,
    make_run,
    make_task,
    write_json,
    write_lines,
)

ATHENA = Path(__file__).resolve().parents[2] / "sql" / "athena"
ROOT = "s3://YOUR-BUCKET/lake"
ATHENA_TYPE = {"VARCHAR": "string", "TIMESTAMP_NS": "timestamp", "BIGINT": "bigint",
               "BOOLEAN": "boolean", "DATE": "date"}
TABLES = {
    "discovery_runs": RUNS,
    "discovery_joins": JOINS,
    "discovery_node_history": NODE_HISTORY,
    "discovery_node_history_ends": NODE_HISTORY_ENDS,
    "discovery_node_expiry": NODE_EXPIRY,
    "discovery_user_task_history": USER_TASK_HISTORY,
    "discovery_user_task_history_ends": USER_TASK_HISTORY_ENDS,
}
JAVA_DATE = {"yyyy": r"\d{4}", "MM": r"\d{2}", "dd": r"\d{2}"}


def parse_ddl(text: str) -> dict:
    """Table name, columns, partition keys, location and TBLPROPERTIES of one CREATE TABLE."""
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    m = re.search(r"CREATE EXTERNAL TABLE IF NOT EXISTS (\w+) \((.*?)\)\s*PARTITIONED BY \((.*?)\)"
                  r"\s*STORED AS PARQUET\s*LOCATION '([^']+)'\s*TBLPROPERTIES \((.*?)\);\s*$",
                  body, re.S)
    assert m, "not the expected CREATE EXTERNAL TABLE shape"

    def cols(s: str) -> list[tuple[str, str]]:
        return [tuple(re.fullmatch(r"`(\w+)`\s+(\S+)", c.strip()).groups()) for c in s.split(",")]

    props = dict(re.findall(r"'([^']+)'\s*=\s*'([^']*)'", m.group(5)))
    return {"name": m.group(1), "columns": cols(m.group(2)), "partition": cols(m.group(3)),
            "location": m.group(4), "props": props}


def ddl(table: str) -> dict:
    return parse_ddl((ATHENA / f"{table}.sql").read_text())


def expected(ds: Dataset, keys) -> list[tuple[str, str]]:
    return [(c, ATHENA_TYPE[t]) for c, t in keys]


def test_every_athena_file_is_a_known_relation() -> None:
    assert sorted(p.stem for p in ATHENA.glob("*.sql")) == sorted(
        [*TABLES, "discovery_runs_unique"])


@pytest.mark.parametrize("table", TABLES)
def test_columns_match_the_layout_exactly(table) -> None:
    d, ds = ddl(table), TABLES[table]
    assert d["name"] == table
    assert d["columns"] == expected(ds, ds.columns)
    assert d["partition"] == expected(ds, ds.partition)


@pytest.mark.parametrize("table", TABLES)
def test_projection_covers_every_partition_key(table) -> None:
    d, ds = ddl(table), TABLES[table]
    props = d["props"]
    assert props["projection.enabled"] == "true"
    for key, typ in ds.partition:
        if typ == "DATE":
            assert props[f"projection.{key}.type"] == "date"
            assert props[f"projection.{key}.format"] == "yyyy-MM-dd"
            assert props[f"projection.{key}.interval.unit"] == ("MONTHS" if ds.monthly
                                                                else "DAYS")
            assert props[f"projection.{key}.range"].endswith(",NOW")
        else:
            assert props[f"projection.{key}.type"] == "enum"
            assert props[f"projection.{key}.values"].split(",") == list(CLOUDS)
    template = props["storage.location.template"]
    assert template == d["location"] + "/".join(f"{k}=${{{k}}}" for k, _ in ds.partition) + "/"
    assert d["location"] == f"{ROOT}/{ds.name}/"


def template_regex(table: str) -> re.Pattern:
    """The folder names (relative to the store root) that the table's template projects."""
    props = ddl(table)["props"]
    pattern = re.escape(props["storage.location.template"].removeprefix(ROOT + "/"))
    for key in re.findall(r"\$\{(\w+)\}", props["storage.location.template"]):
        if props[f"projection.{key}.type"] == "enum":
            value = "|".join(map(re.escape, props[f"projection.{key}.values"].split(",")))
        else:
            value = props[f"projection.{key}.format"]
            for java, rx in JAVA_DATE.items():
                value = value.replace(java, rx)
        pattern = pattern.replace(re.escape(f"${{{key}}}"), f"(?P<{key}>{value})")
    return re.compile(pattern)


@pytest.fixture
def written_store(tmp_path: Path) -> Store:
    """A store written by the real ingests: runs of both clouds over two days, a join, and
    node and user-task snapshots in two captures (the second ends an interval of each)."""
    store = Store(tmp_path / "lake")
    join = {"ei": 0, "event": "instance.join", "uid": "j-1", "code": "TJ002I",
            "time": "2026-05-04T10:00:00Z", "cluster_name": "c", "node_name": "n", "host_id": "h",
            "role": "Node", "method": "iam", "token_name": "t", "attributes": {}}
    log = write_lines(tmp_path / "auth" / "2026-05-04.00:00:00.log", [
        make_run("i-1"), make_run("i-2", at=T0 + timedelta(days=1)), make_azure_run("vm-1"), join])
    ingest_events(store, [str(log)])
    at = datetime.fromisoformat("2026-05-05T00:00:00+00:00")
    ingest_snapshot(store, "nodes", str(write_json(tmp_path / "n.json", [make_aws_node("i-1")])), at)
    tasks = write_json(tmp_path / "t.json", [make_task("t1", "ec2-ssm-script-failure", ["i-1"])])
    ingest_snapshot(store, "user_tasks", str(tasks), at)
    later = at + timedelta(days=31)
    ingest_snapshot(store, "nodes", str(write_json(tmp_path / "n2.json", [make_aws_node("i-2")])),
                    later)
    ingest_snapshot(store, "user_tasks", str(write_json(tmp_path / "t2.json", [])), later)
    return store


@pytest.mark.parametrize("table", TABLES)
def test_template_matches_the_folders_an_ingest_writes(table, written_store: Store) -> None:
    ds, rx = TABLES[table], template_regex(table)
    data_dir = str(written_store.root / ds.name) + "/"
    committed = [f for f in written_store.files(ds.name) if f.startswith(data_dir)]  # no anchors
    assert committed, f"the fixture wrote no {ds.name}"
    listed = sorted((written_store.root / ds.name).rglob("*.parquet"))  # what Athena lists
    assert sorted(map(str, listed)) == sorted(committed)
    for path in listed:
        folder = path.parent.relative_to(written_store.root).as_posix() + "/"
        m = rx.fullmatch(folder)
        assert m, f"{folder} is not projected by {table}"
        for key, typ in ds.partition:
            if typ == "DATE":
                day = datetime.strptime(m.group(key), "%Y-%m-%d")
                assert day.day == 1 or not ds.monthly, "a month projection lists first days"
        assert not path.name.startswith(("_", ".")), "Athena skips such names"


def test_runs_folders_cover_both_clouds_and_days(written_store: Store) -> None:
    rx = template_regex("discovery_runs")
    got = sorted({(m["cloud"], m["event_date"]) for f in written_store.files("runs")
                  if (m := rx.fullmatch(Path(f).parent.relative_to(written_store.root).as_posix()
                                        + "/"))})
    assert got == [("aws", "2026-05-04"), ("aws", "2026-05-05"), ("azure", "2026-05-04")]
