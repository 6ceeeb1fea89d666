"""Dedup on uid: judge each staged event against the rest of the input and against the store.

Only narrow columns are read (uid, a content signature, position, partition keys), and only the
store partitions the input touches, so the cost follows the input, not the history.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.store import Store
from pipeline.store.layout import RUNS, Dataset
from pipeline.store.manifest import Writer


@dataclass(frozen=True)
class Verdicts:
    fresh: int
    duplicates: int
    conflicts: int


def signature(kind: str) -> str:
    """What makes two events with one uid "the same": type, code, time, key, exit code."""
    key = "instance_id || vm_id" if kind == "run" else "host_id"
    code = "exit_code" if kind == "run" else "''"
    return f"md5(concat_ws(chr(31), event, code, time_text, {key}, {code}))"


def _partition_keys(ds: Dataset) -> list[str]:
    return [c for c, _ in ds.partition]


def judge(con, store: Store, w: Writer, ds: Dataset, kind: str) -> Verdicts:
    """Create table `verdict_<kind>` (source, line_no, uid, verdict): the first copy of a uid in
    the input (file order, then line order) is `fresh` unless the store has it; a later copy
    (or a stored one) with the same signature is a `duplicate`, with another a `conflict`."""
    from pipeline.ingest.events import derived

    keys = _partition_keys(ds)
    pk = ", ".join(f"{derived(k)} AS {k}" for k in keys)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE ranked AS SELECT source, line_no, uid, sig, {', '.join(keys)}, "
        "row_number() OVER w AS rn, first_value(sig) OVER w AS first_sig FROM ("
        f"SELECT source, line_no, uid, {signature(kind)} AS sig, {pk} FROM staged "
        f"WHERE kind = '{kind}') WINDOW w AS (PARTITION BY uid ORDER BY source, line_no)"
    )
    existing = _stored_signatures(con, store, w, ds, kind, keys)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE verdict_{kind} AS
        SELECT r.source, r.line_no, r.uid, CASE
            WHEN e.uid IS NOT NULL AND e.sig = r.sig THEN 'duplicate'
            WHEN e.uid IS NOT NULL THEN 'conflict'
            WHEN r.rn > 1 AND r.sig = r.first_sig THEN 'duplicate'
            WHEN r.rn > 1 THEN 'conflict'
            ELSE 'fresh' END AS verdict
        FROM ranked r LEFT JOIN (SELECT DISTINCT ON (uid) uid, sig FROM ({existing})) e USING (uid)"""
    )
    counts = dict(con.execute(f"SELECT verdict, count(*) FROM verdict_{kind} GROUP BY 1").fetchall())
    return Verdicts(counts.get("fresh", 0), counts.get("duplicate", 0), counts.get("conflict", 0))


def _stored_signatures(con, store: Store, w: Writer, ds: Dataset, kind: str, keys) -> str:
    """(uid, sig) of what the store holds in the partitions the input touches."""
    touched = con.execute(f"SELECT DISTINCT {', '.join(keys)} FROM ranked").fetchall()
    prefixes = {"/".join(f"{k}={v}" for k, v in zip(keys, row, strict=True)) + "/" for row in touched}
    rels = [r for r in w.base.datasets.get(ds.name, []) if r[: r.rfind("/") + 1] in prefixes]
    if not rels:
        return "SELECT NULL::VARCHAR AS uid, NULL::VARCHAR AS sig WHERE false"
    con.execute(f"SET VARIABLE stored_{kind} = $1", [[store.path(ds.name, r) for r in rels]])
    sig = signature("run" if ds is RUNS else "join")
    # only stored rows whose uid the input has: the signature is computed for those alone
    return (f"SELECT uid, {sig} AS sig FROM read_parquet(getvariable('stored_{kind}')) "
            "WHERE uid IN (SELECT uid FROM ranked)")
