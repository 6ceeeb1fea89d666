"""Bulk parse and validate a batch of raw lines in DuckDB, following the pydantic models.

`stage_sql()` is generated from `pipeline.models` (field names, which are required, which are
text / integers / objects), so the bulk path and the models cannot drift apart silently; a
property test checks that both accept exactly the same lines.
"""

from __future__ import annotations

import functools
import json
import types
import typing

import pyarrow as pa
import pyarrow.compute as pc

from pipeline import models
from pipeline.models import AZURE_RUN, INSTANCE_JOIN, SSM_RUN
from pipeline.store.layout import JOINS, RUNS, extra_sql

# Teleport's own form, checked cheaply then cast: 2026-05-04T10:00:00.123456789Z
_FAST_TIME_RE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?Z"
# any other event time form, same grammar as models.EVENT_TIME_RE / EPOCH_RE
_TIME_RE = r"^(\d{4}-\d\d-\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d{1,9})? ?([Zz]|[+-]\d\d:?\d\d)$"
_EPOCH_RE = r"^([0-9]{1,19})(\.[0-9]{1,9})?$"
_STORED = {c for ds in (RUNS, JOINS) for c in ds.column_names}  # typed columns of the store


def field_kinds(model: type[models.Envelope]) -> dict[str, tuple[str, bool]]:
    """JSON key -> (kind, required) with kind in text | int | bool | array | object, read from
    the model."""
    out: dict[str, tuple[str, bool]] = {}
    for name, info in model.model_fields.items():
        base = _base(info.annotation)
        kind = ("text" if name == "event" else {int: "int", str: "text", bool: "bool"}.get(base)
                or ("array" if typing.get_origin(base) is list else "object"))
        out[info.alias or name] = (kind, info.is_required())
    return out


def _base(ann):
    """The type under Annotated[...] and `X | None`."""
    while True:
        origin = typing.get_origin(ann)
        if origin is typing.Annotated:
            ann = typing.get_args(ann)[0]
        elif origin in (typing.Union, types.UnionType):
            ann = next(a for a in typing.get_args(ann) if a is not type(None))
        else:
            return ann


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _checks(time_key: str) -> list[tuple[str, str]]:
    """(condition, reason) pairs that reject a line, one per distinct rule, merged across the
    event types that share it (fewer branches: this CASE runs for every line)."""
    rules: dict[tuple[str, str], list[str]] = {}
    for event, model in models.MODELS.items():
        rules.setdefault(("tt IS NULL", models.missing_time_reason(time_key)), []).append(event)
        for name, (kind, required) in field_kinds(model).items():
            if name in ("event", "time"):
                continue
            f = f"j.{_ident(name)}"
            if required:  # absent; a JSON null reads as empty
                cond = f"{f} IS NULL AND json_type(body, {_q('$.' + _ident(name))}) IS NULL"
                rules.setdefault((cond, f"missing field {name}"), []).append(event)
            if kind == "int":  # canonical integer text only: round-trips through BIGINT
                cond = f"{f} IS DISTINCT FROM CAST(TRY_CAST({f} AS BIGINT) AS VARCHAR) AND {f} IS NOT NULL"
                rules.setdefault((cond, f"{name}: must be an integer"), []).append(event)
            elif kind in _JSON_TYPES:
                cond = f"{f} IS NOT NULL AND {_JSON_TYPES[kind].format(f=f)}"
                rules.setdefault((cond, f"{name}: must be {_KIND_NAMES[kind]}"), []).append(event)
        rules.setdefault(("ts IS NULL", "time: not an RFC 3339 time within 1677..2262"), []).append(event)
    out = []
    for (cond, reason), events in rules.items():
        evs = ", ".join(_q(e) for e in events)
        out.append((f"ev IN ({evs}) AND ({cond})", reason))
    return out


# JSON values a field of that kind refuses (the field read as JSON, non-null)
_JSON_TYPES = {
    "object": "json_type({f}) <> 'OBJECT'",
    "bool": "json_type({f}) <> 'BOOLEAN'",
    "array": "(json_type({f}) <> 'ARRAY' OR len(list_filter(CAST({f} AS JSON[]), "
             "lambda x: json_type(x) <> 'VARCHAR')) > 0)",
}
_KIND_NAMES = {"object": "an object", "bool": "a boolean", "array": "an array of strings"}
# a line that is not a JSON object alone may be Fluentd out_file's `<time>\t<tag>\t<record>`
_FLUENTD_RE = models.FLUENTD_LINE_RE.pattern


def body_sql(line: str) -> str:
    """SQL for the JSON record of the line `line` (an expression of its text): the record of a
    Fluentd out_file line, else the line itself (as `models.split_fluentd_line`)."""
    return (f"CASE WHEN left({line}, 1) <> '{{' AND regexp_matches({line}, {_q(_FLUENTD_RE)}) "
            f"THEN regexp_extract({line}, {_q(_FLUENTD_RE)}, 3) ELSE {line} END")


def decode_lines(batch: pa.Table) -> pa.Table:
    """Add `l`: each line as text (NULL where it is not UTF-8), a trailing CR removed.
    Vectorised; a per-line fallback runs only for a batch holding invalid UTF-8."""
    lines = batch.column("line").combine_chunks()
    try:
        text = lines.cast(pa.large_string())
    except pa.ArrowInvalid:
        text = pa.array([_utf8_or_none(b) for b in lines.to_pylist()], pa.large_string())
    if pc.any(pc.ends_with(text, "\r")).as_py():
        text = pc.utf8_rtrim(text, characters="\r")
    return batch.append_column("l", text)


def run_stage(con, batch: pa.Table, sink, time_key: str = models.DEFAULT_TIME_KEY) -> None:
    """Stage one batch: `sink(query)` runs a statement over the staged rows' query (a COPY, a
    SELECT). The fast form first; if the batch holds lines whose record is not a JSON object,
    only those lines take the per-row safe form. `time_key` as `stage_sql`."""
    import duckdb

    con.register("batch_lines", decode_lines(batch))
    try:
        try:
            sink(stage_sql(time_key=time_key))
        # DuckDB quotes the failing line in its message, cut at a byte count: cut inside a UTF-8
        # character, the message itself fails to decode (UnicodeDecodeError, not duckdb.Error)
        except (duckdb.Error, UnicodeDecodeError):
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE split AS SELECT *, CASE WHEN json_valid({body_sql('l')}) "
                f"THEN json_type({body_sql('l')}) = 'OBJECT' ELSE false END AS is_object FROM batch_lines"
            )
            # (the CASE keeps the fast parse off other lines whatever order the plan runs in)
            fast = stage_sql(source="(SELECT * REPLACE (CASE WHEN is_object THEN l END AS l) "
                                    "FROM split WHERE is_object)", time_key=time_key)
            safe = stage_sql(safe=True, source="(SELECT * FROM split WHERE NOT is_object)",
                             time_key=time_key)
            sink(f"({fast}) UNION ALL ({safe})")
    finally:
        con.unregister("batch_lines")


def _utf8_or_none(b: bytes | None) -> str | None:
    try:
        return None if b is None else b.decode("utf-8")
    except UnicodeDecodeError:
        return None


@functools.cache
def stage_sql(safe: bool = False, source: str = "batch_lines", raw_bytes: str = "line",
              keep_raw: bool = True, time_key: str = models.DEFAULT_TIME_KEY) -> str:
    """SQL over the registered Arrow table `batch_lines` (LINE_SCHEMA plus `l` from
    `decode_lines`), or any `source` relation with those columns, giving one staged row per
    line: its verdict (`kind`: run | join | skip | blank | quarantine), reason, typed fields,
    `extra` (the keys the store has no column for). The fast form fails on a batch holding a line
    whose record is not a JSON object; `run_stage` then sends only such lines to the `safe` form
    (a per-row `try` where a vector fails).

    A line is a JSON record, or Fluentd out_file's `<time>\t<tag>\t<record>` (`body_sql`). The
    event time is the record's `time_key`, else its `time`, else the line's time column
    (`models.event_time`); `time_text` keeps the text it came from.

    `raw_bytes` is the expression of a rejected line's bytes; `raw` (the line's text) is kept for
    every accepted line with `keep_raw`, else only where the uid is missing (it is derived from
    it). One JSON parse per line (from_json into a struct) plus one for `extra`; text fields read
    as VARCHAR (any JSON value becomes its text, null is empty), integers, booleans, arrays and
    objects checked as the models do."""
    fields = {**field_kinds(models.SSMRun), **field_kinds(models.AzureRun)}
    fields.update(field_kinds(models.InstanceJoin))
    if time_key not in fields:
        fields[time_key] = ("text", False)
    struct = json.dumps({n: "VARCHAR" if k in ("text", "int") else "JSON"
                         for n, (k, _) in fields.items()})
    checks = _checks(time_key)
    verdict = "\n".join(f"        WHEN {c} THEN {_q(r)}" for c, r in checks)
    out = [(n, k) for n, (k, _) in fields.items() if n in _STORED and n != "time"]
    texts = ",\n    ".join(f"coalesce(j.{_ident(n)}, '') AS {_ident(n)}" for n, k in out if k == "text")
    ints = ",\n    ".join(
        f"coalesce(TRY_CAST(j.{_ident(n)} AS BIGINT), 0) AS {_ident(n)}" for n, k in out if k == "int")
    when = ("coalesce(j.time, line_time)" if time_key == models.DEFAULT_TIME_KEY
            else f"coalesce(j.{_ident(time_key)}, j.time, line_time)")
    fluentd = f"regexp_extract(l, {_q(_FLUENTD_RE)}, ['a', 'b', 'body'])"
    return f"""
WITH b AS (
    SELECT source, line_no, line, error, l,
        CASE WHEN left(l, 1) <> '{{' THEN {fluentd} END AS fl
    FROM {source}
), p AS (
    SELECT * EXCLUDE (fl), CASE WHEN fl.body <> '' THEN fl.body ELSE l END AS body,
        CASE WHEN fl.body <> '' AND (fl.b <> '' OR regexp_matches(fl.a, '^[0-9]')) THEN fl.a END
            AS line_time
    FROM b
), s AS (
    SELECT *, {"try(" if safe else "("}from_json(body, {_q(struct)})) AS j FROM p
), e AS (
    SELECT *, j.event AS ev, {when} AS tt FROM s
), f AS (
    SELECT *, regexp_full_match(tt, '{_FAST_TIME_RE}') AS fast,
        CASE WHEN NOT regexp_full_match(tt, '{_FAST_TIME_RE}')
             THEN regexp_extract(tt, '{_TIME_RE}', ['d', 'h', 'm', 's', 'f', 'o']) END AS tm,
        CASE WHEN NOT regexp_full_match(tt, '{_FAST_TIME_RE}')
             THEN regexp_extract(tt, '{_EPOCH_RE}', ['i', 'f']) END AS ep
    FROM e
), o AS (
    SELECT *, CASE WHEN tm.d <> '' THEN
              (epoch(TRY_CAST(tm.d || ' ' || tm.h || ':' || tm.m || ':' || tm.s AS TIMESTAMP))::HUGEINT
              - CASE WHEN tm.o IN ('Z', 'z') THEN 0
                     ELSE (CASE WHEN left(tm.o, 1) = '+' THEN 1 ELSE -1 END)
                          * (TRY_CAST(substr(tm.o, 2, 2) AS INT) * 3600
                             + TRY_CAST(right(tm.o, 2) AS INT) * 60) END)
              * 1000000000
              + CASE WHEN tm.f = '' THEN 0 ELSE TRY_CAST(rpad(substr(tm.f, 2), 9, '0') AS BIGINT) END
          WHEN ep.i <> '' THEN {_epoch_ns("ep")} END AS slow_ns
    FROM f
), t AS (
    SELECT *, CASE
        WHEN fast THEN CASE WHEN TRY_CAST(tt AS TIMESTAMP_NS) >= make_timestamp_ns({models.MIN_NS})
                            THEN TRY_CAST(tt AS TIMESTAMP_NS) END
        WHEN (tm.d <> '' AND TRY_CAST(tm.h AS INT) <= 23 AND TRY_CAST(tm.m AS INT) <= 59
              AND TRY_CAST(tm.s AS INT) <= 59 OR ep.i <> '')
             AND slow_ns BETWEEN {models.MIN_NS} AND {models.MAX_NS}
        THEN make_timestamp_ns(slow_ns::BIGINT) END AS ts
    FROM o
), v AS (
    SELECT *,
        CASE
        WHEN error IS NOT NULL THEN error
        WHEN l IS NULL THEN 'not UTF-8'
        WHEN j IS NULL AND regexp_full_match(l, '[\t\n\f\r ]*') THEN NULL
        WHEN j IS NULL THEN 'invalid JSON or not an object'
        WHEN j.event IS NULL OR ev = '' THEN 'missing field event'
{verdict}
        END AS reason
    FROM t
), k AS (
    SELECT *, CASE
        WHEN reason IS NOT NULL THEN 'quarantine'
        WHEN j IS NULL THEN 'blank'
        WHEN ev IN ({_q(SSM_RUN)}, {_q(AZURE_RUN)}) THEN 'run'
        WHEN ev = {_q(INSTANCE_JOIN)} THEN 'join'
        ELSE 'skip'
    END AS kind
    FROM v
)
SELECT
    source, line_no, kind, reason,
    CASE WHEN reason IS NOT NULL THEN {raw_bytes} END AS raw_bytes,
    CASE WHEN reason IS NULL {"" if keep_raw else "AND coalesce(j.uid, '') = '' "}THEN l END AS raw,
    CASE kind WHEN 'run' THEN {extra_sql("run", "body", "j")}
              WHEN 'join' THEN {extra_sql("join", "body", "j")} END AS extra,
    ev AS event,
    ts AS time,
    CAST(ts AS DATE) AS event_date,
    tt AS time_text,
    CAST(j.attributes AS VARCHAR) AS attributes,
    {ints},
    {texts}
FROM k
"""


def _epoch_ns(ep: str) -> str:
    """SQL: nanoseconds of an epoch number split into `ep.i` (digits) and `ep.f` ('' or '.ddd'),
    as models.parse_event_time_ns reads it (NULL when out of range)."""
    i = f"TRY_CAST({ep}.i AS HUGEINT)"
    return (f"CASE WHEN {ep}.f <> '' THEN CASE WHEN {i} < 100000000000 THEN {i} * 1000000000 "
            f"+ CAST(rpad(substr({ep}.f, 2), 9, '0') AS BIGINT) END "
            f"WHEN {i} < 100000000000 THEN {i} * 1000000000 "
            f"WHEN {i} < 100000000000000 THEN {i} * 1000000 "
            f"WHEN {i} < 100000000000000000 THEN {i} * 1000 ELSE {i} END")
