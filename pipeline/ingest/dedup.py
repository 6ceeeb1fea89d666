"""Dedup on uid: judge each staged event against the rest of the input and against the store.

Only narrow columns are read (uid, a content signature, position, partition keys), and of the
store only the partitions the uid index (`pipeline.store.uidindex`) names for the input's uids,
wherever they are (another day, another cloud): the cost follows the input, not the history.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.store import Store, uidindex
from pipeline.store.layout import RUNS, Dataset, derived
from pipeline.store.manifest import Writer


@dataclass(frozen=True)
class Verdicts:
    fresh: int
    duplicates: int
    conflicts: int


def signature(kind: str) -> str:
    """What makes two events with one uid "the same": type, code, time to the second, key, exit
    code (a 64-bit hash: only copies of one uid are compared, so a collision is out of reach).
    To the second, as an instant: Fluentd's time column keeps whole seconds in a local offset, so
    one event read through Fluentd and through the file log is one event, not a conflict."""
    key = "instance_id || vm_id" if kind == "run" else "host_id"
    code = "exit_code" if kind == "run" else "''"
    return f"hash(event, code, {_SECOND}, {key}, {code})"


# the event time floored to the second, in nanoseconds (HUGEINT: the floor of the earliest
# storable time is below BIGINT's range)
_SECOND = "(epoch_ns(time)::HUGEINT - (epoch_ns(time) % 1000000000 + 1000000000) % 1000000000)"
# fraction digits of the time a copy was read with: of several copies in one input, the most
# precise is kept (an integer epoch counts by its size: milli-, micro-, nanoseconds)
_PRECISION = ("CASE WHEN regexp_full_match(time_text, '[0-9]+') THEN CASE WHEN length(time_text) "
              "> 17 THEN 9 WHEN length(time_text) > 14 THEN 6 WHEN length(time_text) > 11 THEN 3 "
              "ELSE 0 END ELSE length(regexp_extract(time_text, '\\.([0-9]+)', 1)) END")


def _partition_keys(ds: Dataset) -> list[str]:
    return [c for c, _ in ds.partition]


def judge(con, store: Store, w: Writer, ds: Dataset, kind: str) -> Verdicts:
    """Create table `verdict_<kind>` (source, line_no, uid, verdict; not TEMP: cursors read it)
    of the staged events that are not fresh: the first copy of a uid in the input (its time read
    with the most fraction digits, then file order, then line order) is fresh unless the store
    has it; another copy (or a stored one) with the same signature is a `duplicate`, with another
    a `conflict`. Temp table `judged` holds every staged event of `kind`, narrow (with the uid
    index's hash of its uid, `uid_hash`)."""
    keys = _partition_keys(ds)
    pk = ", ".join(f"{derived(k)} AS {k}" for k in keys)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE judged AS SELECT source, line_no, uid, {signature(kind)} "
        f"AS sig, {_PRECISION} AS prec, {uidindex.hash_sql()} AS uid_hash, {pk} FROM staged "
        f"WHERE kind = '{kind}'"
    )
    existing = _stored_signatures(con, store, w, ds, kind)
    # only uids seen more than once are ranked (a window over every event cost more than the
    # rest of the judgement)
    con.execute(
        f"""CREATE OR REPLACE TABLE verdict_{kind} AS
        WITH stored AS (SELECT DISTINCT ON (uid) uid, sig FROM ({existing})),
        repeated AS (
            SELECT source, line_no, uid, sig, row_number() OVER w AS rn, first_value(sig) OVER w
                AS first_sig
            FROM judged WHERE uid IN (SELECT uid FROM judged GROUP BY uid HAVING count(*) > 1)
            WINDOW w AS (PARTITION BY uid ORDER BY prec DESC, source, line_no))
        SELECT j.source, j.line_no, j.uid,
            CASE WHEN j.sig = s.sig THEN 'duplicate' ELSE 'conflict' END AS verdict
        FROM judged j JOIN stored s USING (uid)
        UNION ALL
        SELECT r.source, r.line_no, r.uid,
            CASE WHEN r.sig = r.first_sig THEN 'duplicate' ELSE 'conflict' END
        FROM repeated r ANTI JOIN stored s USING (uid) WHERE r.rn > 1"""
    )
    total = con.execute("SELECT count(*) FROM judged").fetchall()[0][0]
    counts = dict(con.execute(f"SELECT verdict, count(*) FROM verdict_{kind} GROUP BY 1").fetchall())
    duplicates, conflicts = counts.get("duplicate", 0), counts.get("conflict", 0)
    return Verdicts(total - duplicates - conflicts, duplicates, conflicts)


def _stored_signatures(con, store: Store, w: Writer, ds: Dataset, kind: str) -> str:
    """(uid, sig) of the stored copies of the input's uids: read from the partitions the uid
    index names for them, and only those."""
    parts = uidindex.partitions_holding(con, w, ds.name, "SELECT uid_hash FROM judged")
    # what earlier batches of this ingest wrote counts as stored (the index has them too)
    rels = [r for r in [*w.base.datasets.get(ds.name, []), *w.added(ds.name)]
            if r[: r.rfind("/")] in parts]
    if not rels:
        return "SELECT NULL::VARCHAR AS uid, NULL::VARCHAR AS sig WHERE false"
    con.execute(f"SET VARIABLE stored_{kind} = $1", [[store.path(ds.name, r) for r in rels]])
    sig = signature("run" if ds is RUNS else "join")
    # only stored rows whose uid the input has: the signature is computed for those alone
    return (f"SELECT uid, {sig} AS sig FROM read_parquet(getvariable('stored_{kind}')) "
            "WHERE uid IN (SELECT uid FROM judged)")
