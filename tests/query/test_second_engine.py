"""The store read by engines other than DuckDB gives the same latest status per instance as
DuckDB's `latest_runs`: pyarrow.dataset + plain Python (always), PySpark in local mode reading the
hive folders, and PySpark running the shipped Athena DDL verbatim (Hive dialect)."""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pytest

from pipeline.ingest.events import ingest_events
from pipeline.query.views import connect
from pipeline.store import Store
from tests.conftest import make_azure_run, make_run, write_lines

START = datetime(2026, 5, 1, tzinfo=UTC)
WINDOW = (START + timedelta(hours=30), START + timedelta(days=3))
KEYS = ("cloud", "instance_key", "uid", "time_ns", "is_failure", "exit_code")
ATHENA = Path(__file__).resolve().parents[2] / "sql" / "athena"


def ns(t: datetime) -> int:
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


def fleet(seed: int = 11) -> list[dict]:
    """Runs over four days: retries, failures, ties on time (broken by ei, then uid),
    upper-case VM ids, runs with an empty key, and events re-delivered."""
    rng = random.Random(seed)
    out: list[dict] = []
    for n in range(40):
        for _ in range(rng.randint(1, 6)):
            at = START + timedelta(seconds=rng.randrange(4 * 86400))
            fail = rng.random() < 0.4
            out.append(make_run(f"i-{n:017x}", "TDS00W" if fail else "TDS00I", at,
                                exit_code=rng.choice([1, 100, 150, -1]) if fail else 0,
                                ei=rng.randint(0, 3)))
    for n in range(15):
        vm = f"{n:08x}-0000-4000-8000-00000000000{n % 10}"
        for _ in range(rng.randint(1, 5)):
            at = START + timedelta(seconds=rng.randrange(4 * 86400))
            fail = rng.random() < 0.4
            out.append(make_azure_run(vm.upper() if rng.random() < 0.5 else vm,
                                      "TAZ00E" if fail else "TAZ00I", at, exit_code=int(fail)))
    tie = START + timedelta(days=2, hours=1)
    out += [make_run("i-tie", at=tie, ei=1, uid="u-b"), make_run("i-tie", "TDS00W", tie, ei=2,
            exit_code=1, uid="u-a"), make_run("i-tie2", at=tie, uid="u-1"),
            make_run("i-tie2", "TDS00W", tie, exit_code=3, uid="u-2"), make_run("", at=tie)]
    return out


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Store:
    """A store written by two real ingests (the second re-delivers part of the first)."""
    d = tmp_path_factory.mktemp("engine")
    events = fleet()
    store = Store(d / "lake")
    ingest_events(store, [str(write_lines(d / "a" / "events.log", events))])
    ingest_events(store, [str(write_lines(d / "b" / "events.log", events[::3]))])
    return store


@pytest.fixture(scope="module")
def duckdb_latest(lake: Store) -> set[tuple]:
    with connect(lake) as con:
        rows = con.execute(
            "SELECT cloud, instance_key, uid, epoch_ns(time), is_failure, exit_code "
            "FROM latest_runs(make_timestamp_ns($1), make_timestamp_ns($2))",
            [ns(WINDOW[0]), ns(WINDOW[1])]).fetchall()
    assert len(rows) > 40  # the window keeps most instances
    return set(rows)


def latest_in_python(rows: list[dict]) -> set[tuple]:
    """tctl's rule, by hand: in [from, to), non-empty key, newest by (time, ei, uid); Azure VM
    ids keyed as written (instance_key folds their case, vm_id keeps it)."""
    lo, hi = ns(WINDOW[0]), ns(WINDOW[1])
    best: dict[tuple, dict] = {}
    for r in rows:
        if lo <= r["time_ns"] < hi and r["instance_key"] != "":
            k = (r["cloud"], r["instance_key"], r["vm_id"])
            if k not in best or (r["time_ns"], r["ei"], r["uid"]) > (
                    best[k]["time_ns"], best[k]["ei"], best[k]["uid"]):
                best[k] = r
    return {tuple(r[c] for c in KEYS) for r in best.values()}


def test_pyarrow_dataset_agrees_with_duckdb(lake: Store, duckdb_latest) -> None:
    part = pads.partitioning(pa.schema([("cloud", pa.string()), ("event_date", pa.date32())]),
                             flavor="hive")
    table = pads.dataset(lake.root / "runs", format="parquet", partitioning=part).to_table(
        columns=["cloud", "instance_key", "vm_id", "uid", "time", "ei", "is_failure", "exit_code"])
    table = table.append_column("time_ns", pc.cast(table["time"], pa.int64()))
    assert latest_in_python(table.to_pylist()) == duckdb_latest


# --------------------------------------------------------------------------- PySpark


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    """A local-mode SparkSession with Hive support, its metastore and warehouse in tmp."""
    pytest.importorskip("pyspark", reason="PySpark is the `spark` extra")
    if shutil.which("java") is None:
        pytest.skip("PySpark needs a Java runtime (17+)")
    from pyspark.sql import SparkSession

    d = tmp_path_factory.mktemp("spark")
    session = (
        SparkSession.builder.master("local[2]").appName("discovery-history-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.warehouse.dir", str(d / "warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={d}")
        .config("spark.sql.variable.substitute", "false")  # keep ${cloud} in TBLPROPERTIES
        # DuckDB writes TIMESTAMP_NS as Parquet TIMESTAMP(NANOS), which Spark reads as a long
        .config("spark.sql.legacy.parquet.nanosAsLong", "true")
        .enableHiveSupport().getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def test_pyspark_agrees_with_duckdb(spark, lake: Store, duckdb_latest) -> None:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    runs = str(lake.root / "runs")
    df = spark.read.option("basePath", runs).parquet(runs)
    assert dict(df.dtypes)["event_date"] == "date" and dict(df.dtypes)["time"] == "bigint"
    lo, hi = ns(WINDOW[0]), ns(WINDOW[1])
    newest = Window.partitionBy("cloud", "instance_key", "vm_id").orderBy(
        F.col("time").desc(), F.col("ei").desc(), F.col("uid").desc())
    latest = (
        df.where(F.col("event_date").between(WINDOW[0].date(), WINDOW[1].date()))
        .where((F.col("time") >= lo) & (F.col("time") < hi) & (F.col("instance_key") != ""))
        .withColumn("rn", F.row_number().over(newest)).where("rn = 1")
        .select("cloud", "instance_key", "uid", F.col("time").alias("time_ns"), "is_failure",
                "exit_code")
    )
    assert {tuple(r) for r in latest.collect()} == duckdb_latest


def test_athena_ddl_runs_verbatim_in_spark_and_reads_the_store(spark, lake: Store) -> None:
    """Spark ignores partition projection, so partitions come from MSCK REPAIR (a listing,
    like Athena's); every column but `time` (nanosecond Parquet) is read through the DDL."""
    ddl = (ATHENA / "discovery_runs.sql").read_text().replace(
        "s3://YOUR-BUCKET/lake", lake.root.as_uri())
    spark.sql("DROP TABLE IF EXISTS discovery_runs")
    spark.sql(ddl.rstrip().rstrip(";"))
    spark.sql("MSCK REPAIR TABLE discovery_runs")
    parts = sorted(r[0] for r in spark.sql("SHOW PARTITIONS discovery_runs").collect())
    with connect(lake) as con:
        want_parts = sorted(f"cloud={c}/event_date={d}" for c, d in con.execute(
            "SELECT DISTINCT cloud, event_date FROM runs").fetchall())
        want = set(con.execute(
            "SELECT uid, cloud, event_date, exit_code, is_failure, stdout FROM runs").fetchall())
    assert parts == want_parts
    got = spark.sql("SELECT uid, cloud, event_date, exit_code, is_failure, stdout "
                    "FROM discovery_runs").collect()
    assert len(got) == len(want) and {tuple(r) for r in got} == want
