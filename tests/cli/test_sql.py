"""`discovery-history sql`: read-only for real (a table of attempts, each refused in one line with
the store unchanged, and refused by DuckDB's own settings even past the parser check), every
output format against the same rows, text within the width, results that stream, `--list` and
`--describe` from the sql/ headers, and the README's SRE queries on the demo store."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pipeline.cli.main import main
from pipeline.query import catalog, sandbox
from pipeline.query.views import connect, sql_files
from pipeline.report.gofmt import rfc3339nano
from tests.cli.conftest import DEMO_END

PREFIX = "discovery-history: error: "
AT = "2026-05-31T00:00:00Z"
README = Path(__file__).resolve().parents[2] / "README.md"


def sql(store: Path, *args: str, input: str | None = None):
    return CliRunner().invoke(main, ["--store", str(store), "sql", *args], input=input)


def tree_digest(root: Path) -> str:
    """Every file under `root` (path, size, content hash): equal digests, unchanged store."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    """A folder beside the store with a Parquet file and a CSV in it."""
    d = tmp_path_factory.mktemp("outside")
    duckdb.sql(f"COPY (SELECT 1 AS a) TO '{d / 'secret.parquet'}'")
    (d / "secret.csv").write_text("a\n1\n")
    return d


# (id, statement); {store} and {outside} are filled in. Each must be refused.
ATTEMPTS = [
    ("insert", "INSERT INTO failure_reasons VALUES (1, 'x', 'exit_code', '1', 'y')"),
    ("update", "UPDATE failure_reasons SET reason = 'x'"),
    ("delete", "DELETE FROM failure_reasons"),
    ("create-table", "CREATE TABLE t AS SELECT 1"),
    ("create-temp-table", "CREATE TEMP TABLE t AS SELECT 1"),
    ("create-view", "CREATE OR REPLACE VIEW runs AS SELECT 1"),
    ("create-macro", "CREATE TEMP MACRO m(x) AS x"),
    ("drop", "DROP VIEW runs"),
    ("alter", "ALTER VIEW runs RENAME TO r"),
    ("copy-to-outside", "COPY (SELECT 1) TO '{outside}/out.csv'"),
    ("copy-to-store", "COPY (SELECT 1) TO '{store}/runs/out.parquet'"),
    ("copy-from", "COPY failure_reasons FROM '{outside}/secret.csv'"),
    ("export-database", "EXPORT DATABASE '{outside}/export'"),
    ("export-into-store", "EXPORT DATABASE '{store}/export'"),
    ("attach-file", "ATTACH '{outside}/x.duckdb' AS x"),
    ("attach-memory", "ATTACH ':memory:' AS x"),
    ("detach", "DETACH system"),
    ("install", "INSTALL httpfs"),
    ("load", "LOAD httpfs"),
    ("update-extensions", "UPDATE EXTENSIONS"),
    ("set", "SET threads = 1"),
    ("set-external-access", "SET enable_external_access = true"),
    ("reset", "RESET allowed_directories"),
    ("set-variable", "SET VARIABLE runs_files = ['{outside}/secret.parquet']"),
    ("use", "USE system"),
    ("pragma-setting", "PRAGMA threads = 1"),
    ("pragma-function", "PRAGMA table_info('runs')"),
    ("call", "CALL enable_logging()"),
    ("checkpoint", "CHECKPOINT"),
    ("vacuum", "VACUUM"),
    ("begin", "BEGIN TRANSACTION"),
    ("secret", "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')"),
    ("explain-analyze-copy", "EXPLAIN ANALYZE COPY (SELECT 1) TO '{store}/x.csv'"),
    ("prepare", "PREPARE p AS SELECT 1"),
    ("two-statements", "SELECT 1; SELECT 2"),
    ("read-csv-passwd", "SELECT * FROM read_csv('/etc/passwd')"),
    ("read-text-passwd", "SELECT * FROM read_text('/etc/passwd')"),
    ("read-parquet-outside", "SELECT * FROM read_parquet('{outside}/secret.parquet')"),
    ("read-outside-via-dotdot", "SELECT * FROM read_parquet('{store}/../../{outside_name}/secret.parquet')"),
    ("sibling-prefix", "SELECT * FROM read_text('{store}2/x')"),
    ("glob-outside", "SELECT * FROM glob('/etc/*')"),
    ("url", "SELECT * FROM read_csv('https://example.com/x.csv')"),
    ("query-function", "SELECT * FROM query('CREATE TABLE z (a INT)')"),
]


def _fill(statement: str, store: Path, outside: Path) -> str:
    return statement.format(store=store, outside=outside, outside_name=outside.name)


@pytest.mark.parametrize(("statement"), [a[1] for a in ATTEMPTS], ids=[a[0] for a in ATTEMPTS])
def test_attempts_are_refused_in_one_line_and_change_nothing(demo_store, outside, statement):
    before, outside_before = tree_digest(demo_store), tree_digest(outside)
    res = sql(demo_store, _fill(statement, demo_store, outside))
    assert res.exit_code == 1, res.output
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX), res.stderr
    assert tree_digest(demo_store) == before and tree_digest(outside) == outside_before


# what DuckDB's own settings refuse even when a statement gets past the parser check (the
# read-only database, external access off but for the store, the configuration locked)
ENGINE_REFUSES = ["insert", "update", "delete", "create-table", "create-view", "drop", "alter",
                  "copy-to-outside", "copy-from", "export-database", "attach-file",
                  "attach-memory", "install", "load", "set", "set-external-access", "reset",
                  "pragma-setting", "secret", "read-csv-passwd", "read-text-passwd",
                  "read-parquet-outside", "read-outside-via-dotdot", "sibling-prefix",
                  "glob-outside", "url", "query-function", "call"]


@pytest.mark.parametrize("name", ENGINE_REFUSES)
def test_duckdb_itself_refuses_past_the_parser_check(demo_store, outside, name):
    statement = _fill(dict(ATTEMPTS)[name], demo_store, outside)
    with sandbox.open_read_only(demo_store) as con:
        with pytest.raises(duckdb.Error):
            con.execute(statement).fetchall()
        assert con.execute("SELECT count(*) FROM failure_reasons").fetchone()[0] > 0


def test_the_store_itself_is_readable_by_path(demo_store):
    with connect(demo_store) as con:
        runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
    res = sql(demo_store, f"SELECT count(*) AS n FROM read_parquet('{demo_store}/runs/**/*.parquet')",
              "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == [{"n": runs}]


def test_query_errors_are_one_line(demo_store):
    for statement in ("SELEC 1", "SELECT * FROM no_such_table", "SELECT CAST('x' AS INTEGER)", ""):
        res = sql(demo_store, statement)
        assert res.exit_code == 1 and res.stdout == ""
        assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith(PREFIX), res.stderr


WIDE = ("SELECT cloud, instance_key, time, exit_code, stdout, stderr, is_failure, [exit_code, 1] "
        "AS codes FROM runs ORDER BY time, uid LIMIT 300")


def _expected(store: Path, query: str) -> pa.Table:
    with connect(store) as con:
        return con.sql(query).to_arrow_table()


def test_csv_json_parquet_and_markdown_hold_the_same_rows(demo_store, tmp_path):
    table = _expected(demo_store, WIDE)
    want = table.set_column(2, "time", table.column("time").cast(pa.int64())).to_pylist()
    assert len(want) == 300
    as_json = json.loads(sql(demo_store, WIDE, "--format", "json").stdout)
    as_csv = list(csv.DictReader(io.StringIO(sql(demo_store, WIDE, "--format", "csv").stdout)))
    res = sql(demo_store, WIDE, "--format", "parquet", "--out", str(tmp_path / "r.parquet"))
    assert res.exit_code == 0 and res.stderr == f"wrote 300 rows to {tmp_path / 'r.parquet'}\n"
    as_parquet = pq.read_table(tmp_path / "r.parquet")
    markdown = sql(demo_store, WIDE, "--format", "markdown").stdout.splitlines()
    assert len(markdown) == 2 + 300
    assert as_parquet.equals(table)
    for got_json, got_csv, w in zip(as_json, as_csv, want, strict=True):
        assert got_json["instance_key"] == got_csv["instance_key"] == w["instance_key"]
        assert got_json["exit_code"] == w["exit_code"] and got_csv["exit_code"] == str(w["exit_code"])
        assert got_json["codes"] == [w["exit_code"], 1] and got_csv["codes"] == json.dumps([w["exit_code"], 1])
        assert got_json["is_failure"] is w["is_failure"]
        assert got_json["stdout"] == got_csv["stdout"] == w["stdout"]
        assert got_json["time"] == got_csv["time"] == rfc3339nano(w["time"])  # UTC, all ns


def test_parquet_goes_to_a_file_only_and_a_failed_query_leaves_no_file(demo_store, tmp_path):
    res = sql(demo_store, "SELECT 1", "--format", "parquet")
    assert res.exit_code == 1 and "--out" in res.stderr
    out = tmp_path / "bad.csv"
    res = sql(demo_store, "SELECT CAST(s AS INTEGER) FROM (VALUES ('1'), ('x')) t(s)",
              "--format", "csv", "--out", str(out))
    assert res.exit_code == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("width", [60, 80, 132, 250])  # 8 columns of >= 5 characters
def test_text_fits_the_width(demo_store, width):
    res = sql(demo_store, WIDE, "--width", str(width))
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    names = ["cloud", "instance_key", "time", "exit_code", "stdout", "stderr", "is_failure",
             "codes"]
    assert all(name.startswith(head.removesuffix("..."))  # headers are cut with their column
               for head, name in zip(lines[0].split(), names, strict=True))
    assert lines[-1] == "(300 rows)" and len(lines) == 2 + 300 + 1
    assert max(len(line) for line in lines) <= width


def test_text_width_defaults_to_columns(demo_store, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    assert max(map(len, sql(demo_store, WIDE).stdout.splitlines())) <= 60


def test_results_stream_batch_by_batch():
    """The writer asks for the next batch only after writing the previous one: a result is never
    held whole."""
    from pipeline.publish.results import write_results

    schema = pa.schema([("n", pa.int64())])
    pulled, seen_at_write = [], []

    def batches():
        for i in range(5):
            pulled.append(i)
            yield pa.record_batch([pa.array(range(i * 10, i * 10 + 10))], schema=schema)

    class Sink(io.BytesIO):
        def write(self, b):
            seen_at_write.append(len(pulled))
            return super().write(b)

    for fmt in ("text", "csv", "json", "markdown"):
        pulled.clear(), seen_at_write.clear()
        assert write_results(batches(), schema, fmt, Sink()) == 50
        # every batch is written before the next is pulled
        assert {1, 2, 3, 4, 5} <= set(seen_at_write) and seen_at_write == sorted(seen_at_write)


def test_a_large_result_streams_to_csv(demo_store, tmp_path):
    out = tmp_path / "big.csv"
    res = sql(demo_store, "SELECT i, md5(i::VARCHAR) AS h FROM range(300000) t(i)",
              "--format", "csv", "--out", str(out))
    assert res.exit_code == 0, res.output
    with out.open() as f:
        assert sum(1 for _ in f) == 300001


def test_query_from_stdin_and_file(demo_store, tmp_path):
    q = tmp_path / "q.sql"
    q.write_text("-- a comment\nSELECT 42 AS answer;\n")
    for args, stdin in ((["-"], q.read_text()), (["--file", str(q)], None),
                        (["--file", "-"], q.read_text())):
        res = sql(demo_store, *args, "--format", "json", input=stdin)
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout) == [{"answer": 42}]


def test_now_is_the_invocation_time_or_at(demo_store):
    res = sql(demo_store, "SELECT getvariable('now') AS now", "--at", AT, "--format", "json")
    assert json.loads(res.stdout) == [{"now": "2026-05-31T00:00:00Z"}]


def test_list_shows_every_relation_from_the_sql_headers(demo_store):
    res = sql(demo_store, "--list", "--format", "json")
    assert res.exit_code == 0, res.output
    listed = {r["name"]: r for r in json.loads(res.stdout)}
    for path in sql_files():
        rel = catalog.parse_header(path.read_text())
        assert rel.name == path.stem.split("_", 1)[1]
        assert listed[rel.name]["grain"] == rel.grain and rel.grain
        assert listed[rel.name]["inputs"] == rel.inputs and rel.inputs
        assert listed[rel.name]["description"] == rel.summary and len(rel.summary) > 10
    assert {"runs", "joins", "ingest_log", "runs_on_days"} <= set(listed)
    text = sql(demo_store, "--list", "--width", "120").stdout
    assert "latest_runs(" in text and max(map(len, text.splitlines())) <= 120


@pytest.mark.parametrize("path", sql_files(), ids=lambda p: p.name)
def test_every_relation_can_be_described(demo_store, path):
    rel = catalog.parse_header(path.read_text())
    res = sql(demo_store, "--describe", rel.name, "--format", "json")
    assert res.exit_code == 0, res.output
    columns = json.loads(res.stdout)
    assert columns and all(c["column_name"] and c["column_type"] for c in columns)


def test_describe_shows_the_header_and_columns(demo_store):
    res = sql(demo_store, "--describe", "latest_runs")
    assert res.exit_code == 0, res.output
    head = res.stdout.splitlines()
    assert head[0] == "latest_runs(from_ts, to_ts)  (table macro)"
    assert head[2] == "grain: one row per (cloud, instance_key, vm_id)"
    with connect(demo_store) as con:
        want = con.sql("DESCRIBE SELECT * FROM latest_runs(TIMESTAMP_NS '2026-05-01', "
                       "TIMESTAMP_NS '2026-05-02')").fetchall()
    got = json.loads(sql(demo_store, "--describe", "LATEST_RUNS", "--format", "json").stdout)
    assert [(c["column_name"], c["column_type"]) for c in got] == [(w[0], w[1]) for w in want]
    res = sql(demo_store, "--describe", "no_such")
    assert res.exit_code == 1 and res.stderr == f"{PREFIX}no relation 'no_such' (discovery-history sql --list shows them)\n"


# --- the README's queries for SREs, on the demo store ---------------------------------------


def readme_queries() -> dict[str, str]:
    """The ```sql blocks of the README's 'Queries for SREs' section, by their first comment."""
    section = README.read_text().split("### Queries for SREs", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, re.S)
    return {b.splitlines()[0].removeprefix("-- ").split(":")[0]: b for b in blocks}


def run_readme(store: Path, name: str) -> list[dict]:
    res = sql(store, "--file", "-", "--at", AT, "--format", "json", input=readme_queries()[name])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_the_readme_has_five_sre_queries():
    assert list(readme_queries()) == [
        "Instances failing for more than a day", "Accounts by failure rate this week",
        "Instances that flap", "First failure of each reason", "Instances never online"]


def _attempts(store: Path, days: int) -> list[dict]:
    with connect(store) as con:
        table = con.sql(
            "SELECT * FROM classified_attempts(make_timestamp_ns($1) - to_days($2), "
            "make_timestamp_ns($1)) ORDER BY time, ei, uid",
            params=[int(DEMO_END.timestamp()) * 10**9, days]).to_arrow_table()
    return table.cast(pa.schema([  # timestamps as integer ns: Python datetimes drop them
        pa.field(f.name, pa.int64()) if pa.types.is_timestamp(f.type) else f
        for f in table.schema])).to_pylist()


def _by_instance(attempts: list[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for a in attempts:
        out.setdefault((a["cloud"], a["instance_key"]), []).append(a)
    return out


def test_readme_failing_for_more_than_a_day(demo_store):
    from datetime import timedelta

    want = set()
    for key, atts in _by_instance(_attempts(demo_store, 7)).items():
        streak = []
        for a in atts:
            streak = [*streak, a] if a["is_failure"] else []
        if streak and streak[0]["time"] < int((DEMO_END - timedelta(days=1)).timestamp()) * 10**9:
            want.add(key)
    got = {(r["cloud"], r["instance_key"]) for r in run_readme(demo_store, "Instances failing for more than a day")}
    assert got == want and want


def test_readme_accounts_by_failure_rate(demo_store):
    atts = _attempts(demo_store, 7)
    rows = run_readme(demo_store, "Accounts by failure rate this week")
    assert sum(r["attempts"] for r in rows) == len(atts)
    assert sum(r["failures"] for r in rows) == sum(a["is_failure"] for a in atts)
    assert [r["failure_pct"] for r in rows] == sorted((r["failure_pct"] for r in rows), reverse=True)


def test_readme_instances_that_flap(demo_store):
    want = {}
    for key, atts in _by_instance(_attempts(demo_store, 7)).items():
        flips = sum(a["is_failure"] != b["is_failure"] for a, b in zip(atts, atts[1:], strict=False))
        if flips >= 2:
            want[key] = flips
    got = {(r["cloud"], r["instance_key"]): r["flips"] for r in run_readme(demo_store, "Instances that flap")}
    assert got == want and want


def test_readme_first_failure_of_each_reason(demo_store):
    atts = [a for a in _attempts(demo_store, 365 * 60) if a["is_failure"]]
    rows = run_readme(demo_store, "First failure of each reason")
    assert {r["reason"]: r["failed_attempts"] for r in rows} == {
        reason: sum(a["reason"] == reason for a in atts) for reason in {a["reason"] for a in atts}}
    for r in rows:
        first = min((a for a in atts if a["reason"] == r["reason"]), key=lambda a: a["time"])
        assert r["first_instance"] == first["instance_key"]


def test_readme_instances_never_online(demo_store):
    with connect(demo_store) as con:
        seen = set(con.execute("SELECT DISTINCT cloud, instance_key FROM node_snapshots").fetchall())
    want = {(a["cloud"], a["instance_key"]) for a in _attempts(demo_store, 30)} - seen
    got = {(r["cloud"], r["instance_key"]) for r in run_readme(demo_store, "Instances never online")}
    assert got == want and want
