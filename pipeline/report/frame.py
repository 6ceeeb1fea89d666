"""The report as Arrow columns: one row per instance, `NodeRow`'s fields flattened.

The 24 h report of a large fleet is 100k rows; the text and JSON renderers work on these columns
(`pipeline.report.cells`) instead of 100k `NodeRow` objects. Times are split into whole seconds
and the nanoseconds within the second (a `NodeRow` time is any Python integer; Go's range of
years 1..9999 overflows 64-bit nanoseconds). Text is Go's: lone surrogates of a Python string are
U+FFFD here, as every renderer writes them (`gofmt.go_string`).

    frame = from_query(nodes_table(con, start, end))      # the store's report, no NodeRow made
    frame = from_rows(rows)                               # any NodeRows (tests, the library)
    rows = to_rows(frame)
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.report.gofmt import go_string
from pipeline.report.rows import GO_SPACE, NodeRow, RunResult, rows_from_columns

NS = 1_000_000_000
_TEXT = ("cloud", "key", "region", "output", "api_error", "user_task_id", "user_task_issue",
         "instance_id", "account_id", "vm_id", "vm_name", "resource_group", "resource_id")
SCHEMA = pa.schema(
    [(name, pa.string()) for name in ("cloud", "key", "region")]
    + [("is_online", pa.bool_()), ("expiry_s", pa.int64()), ("expiry_n", pa.int64()),
       ("has_run", pa.bool_()), ("run_s", pa.int64()), ("run_n", pa.int64()),
       ("exit_code", pa.int64()), ("output", pa.string()), ("api_error", pa.string()),
       ("is_failure", pa.bool_())]
    + [(name, pa.string()) for name in ("user_task_id", "user_task_issue", "instance_id",
                                        "account_id", "vm_id", "vm_name", "resource_group",
                                        "resource_id")])


def floor_div(a: pa.Array, b: int) -> pa.Array:
    """Integer division rounding down (Arrow's `divide` truncates toward zero)."""
    q = pc.divide(a, b)
    return pc.subtract(q, pc.cast(pc.greater(pc.multiply(q, b), a), pa.int64()))


def _split(ns: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(whole seconds, nanoseconds within the second) of int64 ns; nulls stay null."""
    s = floor_div(ns, NS)
    return s, pc.subtract(ns, pc.multiply(s, NS))


def combined_output(stdout: pa.Array, stderr: pa.Array) -> pa.Array:
    """`rows.combine_output` column-wise: Go-trimmed stdout and stderr, "\\n"-joined when both."""
    out, err = (pc.utf8_trim(pc.fill_null(c, ""), characters=GO_SPACE) for c in (stdout, stderr))
    both = pc.and_(pc.not_equal(out, ""), pc.not_equal(err, ""))
    return pc.if_else(both, pc.binary_join_element_wise(out, err, "\n"),
                      pc.if_else(pc.equal(out, ""), err, out))


def from_query(table: pa.Table) -> pa.Table:
    """The frame of `pipeline.query.nodes.nodes_table`'s columns (nanosecond times, stdout and
    stderr apart), same rows in the same order."""
    cols = {name: table[name].combine_chunks() for name in table.column_names}
    has_run = pc.fill_null(cols["has_run"], False)
    out = {name: cols[name] for name in SCHEMA.names if name in cols}
    out["expiry_s"], out["expiry_n"] = _split(cols["expiry_ns"])
    out["run_s"], out["run_n"] = _split(cols["run_ns"])
    out["has_run"] = has_run
    out["exit_code"] = pc.if_else(has_run, cols["exit_code"], pa.scalar(None, pa.int64()))
    out["output"] = pc.if_else(has_run, combined_output(cols["stdout"], cols["stderr"]), "")
    for name in ("user_task_id", "user_task_issue"):
        out[name] = pc.fill_null(out[name], "")
    return pa.Table.from_arrays([pc.cast(out[f.name], f.type) for f in SCHEMA], schema=SCHEMA)


def from_rows(rows: Sequence[NodeRow]) -> pa.Table:
    """The frame of `rows`, in their order."""
    cols: dict[str, list] = {name: [] for name in SCHEMA.names}
    for r in rows:
        run = r.run
        for name in ("cloud", "key", "region", "user_task_id", "user_task_issue", "instance_id",
                     "account_id", "vm_id", "vm_name", "resource_group", "resource_id"):
            cols[name].append(go_string(getattr(r, name)))
        cols["is_online"].append(r.is_online)
        for prefix, ns in (("expiry", r.expiry_ns), ("run", None if run is None else run.time_ns)):
            s, n = (None, None) if ns is None else divmod(ns, NS)
            cols[f"{prefix}_s"].append(s)
            cols[f"{prefix}_n"].append(n)
        cols["has_run"].append(run is not None)
        cols["exit_code"].append(None if run is None else run.exit_code)
        cols["output"].append("" if run is None else go_string(run.output))
        cols["api_error"].append("" if run is None else go_string(run.api_error))
        cols["is_failure"].append(run is not None and run.is_failure)
    return pa.table(cols, schema=SCHEMA)


def arrays(frame: pa.Table) -> dict[str, pa.Array]:
    """The frame's columns, each one contiguous array (what the column-wise renderers take)."""
    return {name: frame[name].combine_chunks() for name in frame.column_names}


def to_rows(frame: pa.Table) -> list[NodeRow]:
    """The frame's rows as `NodeRow`s, in order."""
    c = {name: frame[name].to_pylist() for name in frame.column_names}
    c["expiry_ns"] = [None if s is None else s * NS + n for s, n in zip(c["expiry_s"],
                                                                          c["expiry_n"], strict=True)]
    c["run"] = [RunResult(time_ns=s * NS + n, exit_code=code, output=out, api_error=api,
                          is_failure=failed) if has else None
                for has, s, n, code, out, api, failed in zip(
                    c["has_run"], c["run_s"], c["run_n"], c["exit_code"], c["output"],
                    c["api_error"], c["is_failure"], strict=True)]
    return rows_from_columns(c)
