"""Bulk parse and validate a batch of raw lines in DuckDB, following the pydantic models.

`stage_sql()` is generated from `pipeline.models` (field names, which are required, which are
text / integers / objects), so the bulk path and the models cannot drift apart silently; a
property test checks that both accept exactly the same lines.
"""

from __future__ import annotations

import functools
import typing

from pipeline import models
from pipeline.models import AZURE_RUN, INSTANCE_JOIN, SSM_RUN

# regexp groups of Teleport's RFC 3339 times (same grammar as models.TIME_RE)
_TIME_RE = r"^(\d{4}-\d\d-\d\d)[Tt](\d\d):(\d\d):(\d\d)(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)$"
_INT64_MIN, _INT64_MAX = models.MIN_NS, models.MAX_NS


def _field_kinds(model: type[models.Envelope]) -> dict[str, tuple[str, bool]]:
    """name -> (kind, required) with kind in text | int | object, read from the model."""
    out: dict[str, tuple[str, bool]] = {}
    for name, info in model.model_fields.items():
        ann = info.annotation
        base = typing.get_args(ann)[0] if typing.get_origin(ann) is typing.Annotated else ann
        if name == "event":
            kind = "text"
        elif base is int:
            kind = "int"
        elif base is str:
            kind = "text"
        else:
            kind = "object"
        out[name] = (kind, info.is_required())
    return out


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _checks(event: str, model: type[models.Envelope]) -> list[tuple[str, str]]:
    """(condition, reason) pairs that reject a line of this event type, in model field order."""
    out: list[tuple[str, str]] = []
    for name, (kind, required) in _field_kinds(model).items():
        if name == "event":
            continue
        f = f"j.{name}"
        want = {"text": "'VARCHAR'", "int": "'BIGINT', 'UBIGINT'", "object": "'OBJECT'"}[kind]
        noun = {"text": "a string", "int": "an integer", "object": "an object"}[kind]
        if required:
            out.append((f"{f} IS NULL", f"missing field {name}"))
        bad_type = f"{f} IS NOT NULL AND json_type({f}) NOT IN ({want})"
        if kind == "int":
            bad_type += f" OR {f} IS NOT NULL AND TRY_CAST({f} AS BIGINT) IS NULL"
        out.append((bad_type, f"{name}: must be {noun}"))
    out.append(("j.code ->> '$' = ''", "code: must not be empty"))
    out.append(("ts IS NULL", "time: not an RFC 3339 time within 1677..2262"))
    return [(f"ev = {_q(event)} AND ({c})", r) for c, r in out]


@functools.cache
def stage_sql() -> str:
    """SQL over the registered Arrow batch `batch_lines` (LINE_SCHEMA) giving one staged row
    per line: its verdict (`kind`: run | join | skip | blank | quarantine), reason, typed fields."""
    typed = {**_field_kinds(models.SSMRun), **_field_kinds(models.AzureRun)}
    typed.update(_field_kinds(models.InstanceJoin))
    struct = "{" + ", ".join(f'"{n}": "JSON"' for n in typed) + "}"
    checks = [c for ev, m in models.MODELS.items() for c in _checks(ev, m)]
    verdict = "\n".join(f"        WHEN {c} THEN {_q(r)}" for c, r in checks)

    def text(n: str) -> str:
        return f"coalesce(j.{n} ->> '$', '') AS {n}"

    texts = ",\n    ".join(text(n) for n, (k, _) in typed.items() if k == "text" and n != "time")
    return f"""
WITH b AS (
    SELECT source, line_no, line, error, try(decode(line)) AS txt FROM batch_lines
), p AS (
    SELECT *, rtrim(txt, chr(13)) AS l,
        CASE WHEN txt IS NOT NULL AND json_valid(rtrim(txt, chr(13)))
             THEN json_type(rtrim(txt, chr(13))) END AS jt
    FROM b
), s AS (
    SELECT *, CASE WHEN jt = 'OBJECT' THEN from_json(l, '{struct}') END AS j FROM p
), e AS (
    SELECT *, j.event ->> '$' AS ev,
        regexp_extract(j.time ->> '$', '{_TIME_RE}', ['d', 'h', 'm', 's', 'f', 'o']) AS tm
    FROM s
), t AS (
    SELECT *,
        CASE WHEN tm.d <> '' AND tm.h::INT <= 23 AND tm.m::INT <= 59 AND tm.s::INT <= 59
             THEN epoch(TRY_CAST(tm.d || ' ' || tm.h || ':' || tm.m || ':' || tm.s AS TIMESTAMP))::HUGEINT
                  - CASE WHEN tm.o IN ('Z', 'z') THEN 0
                         ELSE (CASE WHEN left(tm.o, 1) = '+' THEN 1 ELSE -1 END)
                              * (substr(tm.o, 2, 2)::INT * 3600 + substr(tm.o, 5, 2)::INT * 60) END
        END AS utc_s,
        CASE WHEN tm.f = '' THEN 0 ELSE rpad(substr(tm.f, 2), 9, '0')::BIGINT END AS frac_ns
    FROM e
), n AS (
    SELECT *,
        CASE WHEN utc_s * 1000000000 + frac_ns BETWEEN {_INT64_MIN} AND {_INT64_MAX}
             THEN make_timestamp_ns((utc_s * 1000000000 + frac_ns)::BIGINT) END AS ts
    FROM t
), v AS (
    SELECT *,
        CASE
        WHEN error IS NOT NULL THEN error
        WHEN txt IS NULL THEN 'not UTF-8'
        WHEN jt IS NULL AND regexp_full_match(l, '[\t\n\f\r ]*') THEN NULL
        WHEN jt IS NULL THEN 'invalid JSON'
        WHEN jt <> 'OBJECT' THEN 'expected a JSON object'
        WHEN j.event IS NULL OR ev = '' THEN 'missing field event'
        WHEN json_type(j.event) <> 'VARCHAR' THEN 'event: must be a string'
{verdict}
        END AS reason
    FROM n
)
SELECT
    source, line_no,
    CASE
        WHEN reason IS NOT NULL THEN 'quarantine'
        WHEN jt IS NULL THEN 'blank'
        WHEN ev IN ({_q(SSM_RUN)}, {_q(AZURE_RUN)}) THEN 'run'
        WHEN ev = {_q(INSTANCE_JOIN)} THEN 'join'
        ELSE 'skip'
    END AS kind,
    reason,
    CASE WHEN reason IS NOT NULL THEN line END AS raw_bytes,
    CASE WHEN reason IS NULL THEN l END AS raw,
    ev AS event,
    ts AS time,
    j.time ->> '$' AS time_text,
    coalesce(TRY_CAST(j.ei AS BIGINT), 0) AS ei,
    coalesce(TRY_CAST(j.exit_code AS BIGINT), 0) AS exit_code,
    CAST(j.attributes AS VARCHAR) AS attributes,
    {texts}
FROM v
"""
