"""The store's datasets: names, columns (DuckDB types) and hive partition keys.

One place defines every stored column; the ingest writes these columns, the SQL views read
them, `verify` checks them. SCHEMA_VERSION is written into the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

# 2: runs/joins keep `extra` (the keys this version does not model) instead of the whole line
# 3: node and user-task snapshots kept as presence intervals and per-capture values (the change
#    history) instead of one full copy per capture; `discovery-history migrate` converts
SCHEMA_VERSION = 3
# The manifest's schema_version is the oldest layout a committed file may have. Layouts 1 and 2
# differ in the columns of runs/joins files (OLDER_COLUMNS; compaction rewrites them, in
# `pipeline.store.migrate_files`); layouts 2 and 3 in which snapshot datasets exist (full copies,
# LEGACY, vs the change history; `discovery-history migrate` converts, `pipeline.store.migrate`).
# What each older layout had in place of a current column: {version: {dataset: {current column:
# (older column, type)}}}. Such files still read (views use union_by_name).
OLDER_COLUMNS = {1: {"runs": {"extra": ("raw", "VARCHAR")}, "joins": {"extra": ("raw", "VARCHAR")}}}


@dataclass(frozen=True)
class Dataset:
    """A hive-partitioned Parquet dataset under `<store>/<name>/`."""

    name: str
    columns: tuple[tuple[str, str], ...]
    partition: tuple[tuple[str, str], ...] = ()
    monthly: bool = False  # its DATE partition value is the first day of a month it spans
    parquet: str = ""  # extra Parquet writer options (COPY … (FORMAT parquet, …<here>))

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    def columns_at(self, version: int) -> tuple[tuple[str, str], ...]:
        """The file columns this dataset had in schema `version` (the current ones by default)."""
        cols = self.columns
        for v in range(SCHEMA_VERSION - 1, version - 1, -1):
            older = OLDER_COLUMNS.get(v, {}).get(self.name, {})
            cols = tuple(older.get(c, (c, t)) for c, t in cols)
        return cols

    def empty_select(self) -> str:
        """SQL selecting zero rows with exactly this dataset's file columns and types."""
        cols = ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in self.columns)
        return f"SELECT {cols} LIMIT 0"

    def date_of(self, path: str) -> date | None:
        """The DATE partition value of a partition folder, or of a file's path relative to the
        dataset (None: the dataset has no DATE key, or the path no such folder)."""
        values = dict(p.split("=", 1) for p in path.split("/") if "=" in p)
        for col, typ in self.partition:
            if typ == "DATE" and col in values:
                return date.fromisoformat(values[col])
        return None

    def partition_end(self, path: str) -> date | None:
        """The first day after the span of a partition folder (or a file's relative path): the
        next day, or the next month for a `monthly` dataset; None without a DATE key."""
        start = self.date_of(path)
        if start is None:
            return None
        if self.monthly:
            return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        return start + timedelta(days=1)

    def placeholder_path(self) -> str:
        """Relative path of the zero-row file that anchors the schema of an empty dataset."""
        parts = [f"{c}={_PLACEHOLDER_VALUE[t]}" for c, t in self.partition]
        return "/".join([*parts, "_empty.parquet"])


_PLACEHOLDER_VALUE = {"VARCHAR": "__none__", "DATE": "1970-01-01"}

ENVELOPE = (
    ("uid", "VARCHAR"),
    ("event", "VARCHAR"),
    ("code", "VARCHAR"),
    ("time", "TIMESTAMP_NS"),
    ("time_text", "VARCHAR"),
    ("ei", "BIGINT"),
    ("cluster_name", "VARCHAR"),
    ("is_failure", "BOOLEAN"),
)
# `extra`: a JSON object of the event's keys that the typed columns do not hold (NULL when
# none), so typed columns + extra give back every field Teleport wrote.
PROVENANCE = (("extra", "VARCHAR"), ("source", "VARCHAR"), ("ingest_id", "VARCHAR"))


def typed_keys(kind: str) -> list[str]:
    """The JSON keys of a `kind` (run | join) event that the store keeps in typed columns: the
    models' fields (by their JSON name) that are columns of runs or joins, sorted."""
    from pipeline import models  # here: pydantic (~0.1 s) is for writers, not the query path

    stored = {c for ds in (RUNS, JOINS) for c in ds.column_names}
    return sorted({info.alias or name for ev, m in models.MODELS.items()
                   if (ev == models.INSTANCE_JOIN) == (kind == "join")
                   for name, info in m.model_fields.items()} & stored)


def extra_sql(kind: str, line: str, parsed: str | None = None) -> str:
    """SQL for `extra` of a `kind` (run | join) event whose JSON record is `line` and `from_json`
    struct is `parsed` (if at hand: a shortcut): its keys the store has no typed column for, as
    a JSON object; NULL when there are none (almost always)."""
    fields = typed_keys(kind)
    unknown = f"list_filter(json_keys({line}), lambda k: NOT list_contains({fields}, k))"
    value = f"json_extract({line}, '$.\"' || replace(k, '\"', '\\\"') || '\"')"
    # every non-null field of `parsed` is a key of the line (from_json matches keys exactly), so
    # a line with no more keys than that has no unknown key: the key-by-key scan is skipped
    ident = lambda f: '"' + f.replace('"', '""') + '"'  # noqa: E731
    known = (f"len(json_keys({line})) > "
             + " + ".join(f"({parsed}.{ident(f)} IS NOT NULL)::INT" for f in fields) + " AND "
             if parsed else "")
    return (f"CASE WHEN {known}len({unknown}) > 0 "
            f"THEN CAST(to_json(map_from_entries(list_transform("
            f"{unknown}, lambda k: struct_pack(k := k, v := {value})))) AS VARCHAR) END")


RUNS = Dataset(
    "runs",
    ENVELOPE
    + (
        ("instance_key", "VARCHAR"),  # EC2 instance id, or the Azure VM id lower-cased
        ("instance_id", "VARCHAR"),
        ("vm_id", "VARCHAR"),
        ("account_id", "VARCHAR"),  # AWS account id, or the Azure subscription id
        ("region", "VARCHAR"),
        ("exit_code", "BIGINT"),
        ("status", "VARCHAR"),
        ("stdout", "VARCHAR"),
        ("stderr", "VARCHAR"),
        ("api_error", "VARCHAR"),
        ("command_id", "VARCHAR"),
        ("invocation_url", "VARCHAR"),
        ("platform_name", "VARCHAR"),
        ("platform_type", "VARCHAR"),
        ("platform_version", "VARCHAR"),
        ("subscription_id", "VARCHAR"),
        ("resource_group", "VARCHAR"),
        ("resource_id", "VARCHAR"),
        ("vm_name", "VARCHAR"),
        ("execution_state", "VARCHAR"),
    )
    + PROVENANCE,
    (("cloud", "VARCHAR"), ("event_date", "DATE")),
)

JOINS = Dataset(
    "joins",
    ENVELOPE
    + (
        ("node_name", "VARCHAR"),
        ("host_id", "VARCHAR"),
        ("role", "VARCHAR"),
        ("method", "VARCHAR"),
        ("token_name", "VARCHAR"),
        ("attributes", "VARCHAR"),  # JSON text
    )
    + PROVENANCE,
    (("event_date", "DATE"),),
)

QUARANTINE = Dataset(
    "quarantine",
    (
        ("ingest_id", "VARCHAR"),
        ("source", "VARCHAR"),
        ("line_no", "BIGINT"),
        ("reason", "VARCHAR"),
        ("raw", "BLOB"),
        ("quarantined_at", "TIMESTAMP_NS"),
    ),
    (("ingest_date", "DATE"),),
)

# Node and user-task history (schema 3): what a snapshot (`tctl get nodes|user_tasks`) holds is
# kept as presence intervals, one per run of consecutive captures of a kind in which a row with
# the same identity (every column the relations read) appears. Rows of `<kind>_history` are
# partitioned by `period`, the first day of a month: a period holds every interval present at
# one of its captures (carried over at the month's first capture, with the interval's first
# capture and raw), so the rows at any capture come from one period's files. An interval's last
# capture is written when it ends, in `<kind>_history_ends` (period: that capture's month); an
# interval without one is present in the newest capture. Per-capture values the relations need
# (a node's `expires`) are in `node_expiry`, one row per node present per capture, as nanoseconds
# after the capture time (delta-encoded Parquet: about 5 bytes per row, 1 when whole seconds).
NODE_IDENTITY = (
    ("name", "VARCHAR"),
    ("hostname", "VARCHAR"),
    ("cloud", "VARCHAR"),  # aws, azure, or NULL for other nodes
    ("instance_key", "VARCHAR"),
    ("instance_id", "VARCHAR"),
    ("vm_id", "VARCHAR"),
    ("account_id", "VARCHAR"),
    ("region", "VARCHAR"),
    ("resource_group", "VARCHAR"),
)
USER_TASK_IDENTITY = (
    ("name", "VARCHAR"),
    ("task_type", "VARCHAR"),
    ("issue_type", "VARCHAR"),
    ("state", "VARCHAR"),
    ("cloud", "VARCHAR"),
    ("instance_key", "VARCHAR"),  # one row per affected instance (NULL: task lists none)
)
_V2 = "PARQUET_VERSION V2"  # delta-encoded integers: capture offsets and sorted ids cost bits
_INTERVAL = (("interval_id", "BIGINT"), ("first_seen", "TIMESTAMP_NS"))
_PERIOD = (("period", "DATE"),)

NODE_HISTORY = Dataset(  # one row per node interval per month it is present in
    "node_history", _INTERVAL + NODE_IDENTITY + (("raw", "VARCHAR"),), _PERIOD, True, _V2)
NODE_HISTORY_ENDS = Dataset(  # one row per ended node interval: its last capture
    "node_history_ends", (("interval_id", "BIGINT"), ("last_seen", "TIMESTAMP_NS")), _PERIOD,
    True, _V2)
NODE_EXPIRY = Dataset(  # one row per node present per capture
    "node_expiry",
    (("captured_at", "TIMESTAMP_NS"), ("interval_id", "BIGINT"), ("expires_offset", "BIGINT")),
    (("capture_date", "DATE"),), parquet=_V2)
USER_TASK_HISTORY = Dataset(  # one row per (task, instance) interval per month it is present in
    "user_task_history", _INTERVAL + USER_TASK_IDENTITY + (("raw", "VARCHAR"),), _PERIOD, True,
    _V2)
USER_TASK_HISTORY_ENDS = Dataset(
    "user_task_history_ends", (("interval_id", "BIGINT"), ("last_seen", "TIMESTAMP_NS")),
    _PERIOD, True, _V2)

# Schema 1-2: one full copy per capture. Read (converted on the fly) until `migrate` runs.
NODE_SNAPSHOTS = Dataset(
    "node_snapshots",
    (("captured_at", "TIMESTAMP_NS"),) + NODE_IDENTITY
    + (("expires", "TIMESTAMP_NS"), ("raw", "VARCHAR")),
    (("capture_date", "DATE"),),
)
USER_TASK_SNAPSHOTS = Dataset(
    "user_task_snapshots",
    (("captured_at", "TIMESTAMP_NS"),) + USER_TASK_IDENTITY + (("raw", "VARCHAR"),),
    (("capture_date", "DATE"),),
)

SNAPSHOT_LOG = Dataset(
    "snapshot_log",
    (
        ("kind", "VARCHAR"),  # nodes | user_tasks
        ("captured_at", "TIMESTAMP_NS"),
        ("rows", "BIGINT"),
        ("source", "VARCHAR"),
        ("ingest_id", "VARCHAR"),
    ),
)

INGEST_LOG = Dataset(
    "ingest_log",
    (
        ("ingest_id", "VARCHAR"),
        ("kind", "VARCHAR"),  # events | nodes | user_tasks
        ("started_at", "TIMESTAMP_NS"),
        ("finished_at", "TIMESTAMP_NS"),
        ("sources", "VARCHAR[]"),
        ("read", "BIGINT"),
        ("stored", "BIGINT"),
        ("duplicates", "BIGINT"),
        ("skipped", "BIGINT"),
        ("quarantined", "BIGINT"),
        ("files_added", "BIGINT"),
    ),
)

# Rollups (pipeline/query/rollups.py): derived from `runs`, rebuilt by `discovery-history rollup`. Each
# file's name ends in the fingerprint of the runs files (and SQL) it was computed from; a reader
# uses only those whose fingerprint still matches, so a stale rollup is never read.
ROLLUP_LATEST = Dataset(  # the newest run per instance of each month: runs' rows, keys included
    "rollup_latest",
    RUNS.columns + RUNS.partition,
    (("event_month", "DATE"),),
)

ROLLUP_TRENDS = Dataset(  # failure_trends rows of each day, bucket 'day', every dimension
    "rollup_trends",
    (
        ("dimension", "VARCHAR"),
        ("bucket_start", "TIMESTAMP"),
        ("key", "VARCHAR"),
        ("attempts", "BIGINT"),
        ("failures", "BIGINT"),
        ("failing_instances", "BIGINT"),
        ("instances", "BIGINT"),
    ),
    (("event_date", "DATE"),),
)

# The uid index (pipeline/store/uidindex.py): files under `uid_index/<dataset>/`, listed in the
# manifest as dataset `uid_index`; not Parquet, not a view. INDEXED: the datasets it covers.
UID_INDEX = "uid_index"
INDEXED = ("runs", "joins")

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        RUNS,
        JOINS,
        QUARANTINE,
        NODE_HISTORY,
        NODE_HISTORY_ENDS,
        NODE_EXPIRY,
        USER_TASK_HISTORY,
        USER_TASK_HISTORY_ENDS,
        SNAPSHOT_LOG,
        INGEST_LOG,
        ROLLUP_LATEST,
        ROLLUP_TRENDS,
    )
}
ROLLUPS = (ROLLUP_LATEST.name, ROLLUP_TRENDS.name)
HISTORY = (NODE_HISTORY.name, NODE_HISTORY_ENDS.name, NODE_EXPIRY.name, USER_TASK_HISTORY.name,
           USER_TASK_HISTORY_ENDS.name)
# datasets of earlier schemas: no longer written, read (and converted) while a store has files
LEGACY: dict[str, Dataset] = {d.name: d for d in (NODE_SNAPSHOTS, USER_TASK_SNAPSHOTS)}


def dataset(name: str) -> Dataset:
    """The dataset of that name, current or legacy (KeyError for neither)."""
    return DATASETS[name] if name in DATASETS else LEGACY[name]


def legacy_in(datasets: dict[str, list[str]]) -> list[str]:
    """The legacy datasets a manifest still lists files of (empty once migrated)."""
    return [name for name in LEGACY if datasets.get(name)]


def uniform_since(name: str, version: int) -> bool:
    """Whether every committed file of dataset `name` has the current columns in a store whose
    oldest layout (manifest schema_version) is `version`: no layout from `version` on had other
    columns for it. Readers then bind one file's footer instead of every file's."""
    return not any(name in OLDER_COLUMNS.get(v, {}) for v in range(version, SCHEMA_VERSION))


def oldest_layout(runs_current: bool, datasets: dict[str, list[str]]) -> int:
    """The manifest's schema_version (the oldest layout a committed file may have) of a store
    listing `datasets`: 1 while runs/joins files of schema 1 may remain, 2 while snapshots are
    full copies, else the current one."""
    if not runs_current:
        return 1
    return 2 if legacy_in(datasets) else SCHEMA_VERSION


# How the ingest derives stored columns from an event's typed fields; `verify` checks partition
# folders against the same expressions.
DERIVED = {
    "cloud": "CASE event WHEN 'ssm.run' THEN 'aws' ELSE 'azure' END",
    "instance_key": "CASE event WHEN 'ssm.run' THEN instance_id ELSE lower(vm_id) END",
    "account_id": "CASE event WHEN 'ssm.run' THEN account_id ELSE subscription_id END",
    "is_failure": "right(code, 1) IN ('W', 'E')",
    "event_date": "CAST(time AS DATE)",
}


def derived(column: str) -> str:
    """The SQL expression of a stored column over an event's typed fields (as an ingest stages
    them; most are stored as read)."""
    return DERIVED.get(column, column)
