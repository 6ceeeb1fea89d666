"""tctl's JSON of a report frame, a column at a time: the bytes `render.json_object` and
`gofmt.go_json_dumps` make row by row (struct field order, omitempty, 4-space indent, HTML-safe
strings), built by Arrow kernels over 100k rows."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.report.cells import Cols, json_string, rfc3339nano
from pipeline.report.coltable import joined

I1, I2, I3 = "\n    ", "\n        ", "\n            "
STR = pa.string()
_FEW = ("region", "account_id", "user_task_id", "user_task_issue", "resource_group", "api_error")


def _quoted(f: Cols, name: str) -> pa.Array:
    """The column as JSON strings; a column of few distinct values quotes each value once."""
    if name in _FEW:
        enc = pc.dictionary_encode(f[name])
        return json_string(enc.dictionary).take(enc.indices)
    return json_string(f[name])


def _join(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _flag(values: pa.Array) -> pa.Array:
    return pc.if_else(values, "true", "false")


def _spread(mask: pa.Array, values: pa.Array) -> pa.Array:
    """`values` (one per true of `mask`) at those rows, '' elsewhere."""
    return pc.fill_null(pc.replace_with_mask(pa.nulls(len(mask), STR), mask, values), "")


def _subset(f: Cols, mask: pa.Array, names: tuple[str, ...]) -> Cols:
    return {name: pc.filter(f[name], mask) for name in names}


def _run_result(f: Cols) -> pa.Array:
    """`"run_result": {...},` of rows with a run."""
    return _join(
        f'{I2}"run_result": {{{I3}"api_error": ', _quoted(f, "api_error"),
        f',{I3}"exit_code": ', pc.cast(f["exit_code"], STR),
        f',{I3}"output": ', json_string(f["output"]),
        f',{I3}"time": "', rfc3339nano(f["run_s"], f["run_n"]),
        f'",{I3}"is_failure": ', _flag(f["is_failure"]), f"{I2}}},")


def _aws(f: Cols) -> pa.Array:
    return _join(f'{I2}"aws": {{{I3}"instance_id": ', json_string(f["instance_id"]),
                 f',{I3}"account_id": ', _quoted(f, "account_id"), f"{I2}}}")


_AZURE = (("vm_id", "vm_id"), ("vm_name", "vm_name"), ("subscription_id", "account_id"),
          ("resource_group", "resource_group"), ("resource_id", "resource_id"))


def _azure(f: Cols) -> pa.Array:
    """`"azure": {...}`: vm_id always, the others when non-empty (omitempty); a comma after a
    member only when one follows."""
    n = len(f["vm_id"])
    present = [pa.repeat(True, n)] + [pc.not_equal(f[col], "") for _, col in _AZURE[1:]]
    members, later = [], pa.repeat(False, n)
    for (key, col), has in reversed(list(zip(_AZURE, present, strict=True))):
        text = _join(f'{I3}"{key}": ', _quoted(f, col), pc.if_else(later, ",", ""))
        members.insert(0, pc.if_else(has, text, ""))
        later = pc.or_(later, has)
    return _join(f'{I2}"azure": {{', *members, f"{I2}}}")


def json_array(f: Cols) -> bytes:
    """tctl's JSON array of the frame's rows (at least one), ending in a newline."""
    expiry = pc.is_valid(f["expiry_s"])
    runs, aws = f["has_run"], pc.equal(f["cloud"], "aws")
    tasks = [pc.if_else(pc.not_equal(f[k], ""), _join(f'{I2}"{k}": ', _quoted(f, k), ","), "")
             for k in ("user_task_id", "user_task_issue")]
    cloud = pc.if_else(aws, _spread(aws, _aws(_subset(f, aws, ("instance_id", "account_id")))),
                       _spread(pc.invert(aws), _azure(_subset(f, pc.invert(aws), (
                           "vm_id", "vm_name", "account_id", "resource_group", "resource_id")))))
    run_fields = ("api_error", "exit_code", "output", "run_s", "run_n", "is_failure")
    obj = _join(
        f'{I1}{{{I2}"region": ', _quoted(f, "region"), f',{I2}"is_online": ',
        _flag(f["is_online"]), ",",
        pc.if_else(expiry, _join(f'{I2}"expiry": "', pc.fill_null(rfc3339nano(
            f["expiry_s"], f["expiry_n"]), ""), '",'), ""),
        _spread(runs, _run_result(_subset(f, runs, run_fields))), *tasks, cloud, f"{I1}}},")
    return joined(obj, prefix=b"[", suffix=b"\n]\n", drop=1)  # (drop the last row's comma)
