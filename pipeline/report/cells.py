"""tctl's per-row text, a column at a time over a report frame (`pipeline.report.frame`).

Each function is the column-wise twin of one in `pipeline.report.rows` / `gofmt`, with the same
bytes: the common values (printable ASCII, the usual escapes) are built by Arrow kernels, and the
rare rest (other control characters, non-ASCII in a quoted output, ...) by the per-value Python
function, so Go's rules live in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.report import gofmt, rows
from pipeline.report.frame import floor_div
from pipeline.report.rows import GO_SPACE, GO_ZERO_TIME_NS
from pipeline.report.titles import user_task_title

NS = 1_000_000_000
GO_ZERO_S = GO_ZERO_TIME_NS // NS
_HMS: list[pa.Array] = []  # "HH:MM:SS" of every second of a day, built on first use
STR = pa.string()
Cols = Mapping[str, pa.Array]  # a frame's columns (`frame.arrays`)


def _hms() -> pa.Array:
    if not _HMS:
        two = [f"{i:02d}" for i in range(60)]
        _HMS.append(pa.array([f"{h}:{m}:{s}" for h in two[:24] for m in two for s in two]))
    return _HMS[0]


def by_value(values: pa.Array, fn: Callable[[str], str]) -> pa.Array:
    """`fn` of each distinct value (few: days, issue types), taken back per row; nulls stay."""
    distinct = pc.unique(values).drop_null()
    return pa.array([fn(v) for v in distinct.to_pylist()], STR).take(pc.index_in(values, distinct))


def patched(values: pa.Array, fast: pa.Array, fast_values: pa.Array,
            slow: Callable[[str], str]) -> pa.Array:
    """`fast_values` where `fast` is true, else `slow` of the value (Python, one value at a time)."""
    fast = pc.fill_null(fast, True)
    if pc.all(fast).as_py():
        return fast_values
    rest = pc.invert(fast)
    done = [slow(v) for v in pc.filter(values, rest).to_pylist()]
    return pc.replace_with_mask(fast_values, rest, pa.array(done, STR))


def rfc3339(seconds: pa.Array) -> pa.Array:
    """`gofmt.rfc3339` of whole seconds since the epoch (null stays null)."""
    days = floor_div(seconds, 86_400)
    in_day = pc.subtract(seconds, pc.multiply(days, 86_400))
    return pc.binary_join_element_wise(by_value(days, gofmt.date_and_t), _hms().take(in_day), "Z", "")


def rfc3339nano(seconds: pa.Array, nanos: pa.Array) -> pa.Array:
    """`gofmt.rfc3339nano` of (seconds, nanoseconds within the second): zeros of the fraction
    trimmed, no fraction when it is zero."""
    digits = pc.utf8_rtrim(pc.cast(pc.add(nanos, NS), STR), characters="0")
    fraction = pc.if_else(pc.equal(nanos, 0), "",
                          pc.utf8_replace_slice(digits, start=0, stop=1, replacement="."))
    base = pc.utf8_slice_codeunits(rfc3339(seconds), 0, 19)
    return pc.binary_join_element_wise(base, fraction, "Z", "")


def _is_go_zero(seconds: pa.Array, nanos: pa.Array) -> pa.Array:
    return pc.and_kleene(pc.equal(seconds, GO_ZERO_S), pc.equal(nanos, 0))


def last_time(f: Cols) -> pa.Array:
    """`rows.last_time_ns` as RFC 3339 seconds: the run's time unless Go's zero time, else the
    expiry unless Go's zero time; '' when neither."""
    run = pc.fill_null(pc.and_kleene(f["has_run"], pc.invert(
        _is_go_zero(f["run_s"], f["run_n"]))), False)
    expiry = pc.if_else(pc.fill_null(_is_go_zero(f["expiry_s"], f["expiry_n"]), False),
                        pa.scalar(None, pa.int64()), f["expiry_s"])
    return pc.fill_null(rfc3339(pc.if_else(run, f["run_s"], expiry)), "")


def status(f: Cols) -> pa.Array:
    """`rows.status` column-wise."""
    failed = pc.and_(f["has_run"], f["is_failure"])
    run_status = pc.if_else(pc.not_equal(f["api_error"], ""), "API error", pc.binary_join_element_wise(
        "exit code=", pc.cast(pc.fill_null(f["exit_code"], 0), STR), ""))
    online = pc.if_else(failed, pc.binary_join_element_wise("Online, ", run_status, ""), "Online")
    offline = pc.if_else(pc.invert(f["has_run"]), "Unknown", pc.if_else(
        failed, pc.binary_join_element_wise("Failed (", run_status, ")", ""),
        "Installed (offline)"))
    return pc.if_else(f["is_online"], online, offline)


def instance(f: Cols) -> pa.Array:
    """`rows.instance_text`: the EC2 id, or `<resource group>/<vm id>` (the vm id alone)."""
    rg = pc.binary_join_element_wise(f["resource_group"], f["vm_id"], "/")
    azure = pc.if_else(pc.equal(f["resource_group"], ""), f["vm_id"], rg)
    return pc.if_else(pc.equal(f["cloud"], "aws"), f["instance_id"], azure)


# printable ASCII plus the three escapes almost every script output holds
_PLAIN_QUOTABLE = r"^[\x20-\x7e\t\n\r]*$"
_QUOTE_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))


def trim_escape(values: pa.Array) -> pa.Array:
    """`rows.trim_escape` column-wise: Go-trimmed, cut to 100 bytes + "...", then `%q`; ''
    when empty."""
    trimmed = pc.utf8_trim(values, characters=GO_SPACE)
    fast = pc.match_substring_regex(trimmed, _PLAIN_QUOTABLE)
    long = pc.greater(pc.utf8_length(trimmed), 100)
    cut = pc.if_else(long, pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(trimmed, 0, 100), "...", ""), trimmed)
    for old, new in _QUOTE_ESCAPES:
        cut = pc.replace_substring(cut, old, new)
    quoted = pc.if_else(pc.equal(trimmed, ""), "", pc.binary_join_element_wise('"', cut, '"', ""))
    return patched(values, fast, quoted, rows.trim_escape)


def details(f: Cols) -> pa.Array:
    """`rows.details` column-wise (tctl's: the task title, then the quoted output or API
    error)."""
    title = by_value(f["user_task_issue"], user_task_title)
    extra = pa.nulls(len(title), STR)
    if pc.any(f["has_run"]).as_py():
        out, api = (trim_escape(pc.filter(f[c], f["has_run"])) for c in ("output", "api_error"))
        text = pc.if_else(pc.not_equal(out, ""), pc.binary_join_element_wise(
            "Script output: ", out, ""), pc.if_else(pc.not_equal(api, ""), pc.binary_join_element_wise(
                "API error: ", api, ""), ""))
        extra = pc.replace_with_mask(extra, f["has_run"], text)
    extra = pc.fill_null(extra, "")
    both = pc.and_(pc.not_equal(title, ""), pc.not_equal(extra, ""))
    return pc.if_else(both, pc.binary_join_element_wise(title, extra, ". "),
                      pc.if_else(pc.equal(title, ""), extra, title))


_JSON_PLAIN = r'^[^"\\\x00-\x1f<>&\x{2028}\x{2029}]*$'


def json_string(values: pa.Array) -> pa.Array:
    """`gofmt.json_string` column-wise: the quoted JSON string, HTML-safe, as Go writes it."""
    fast = pc.match_substring_regex(values, _JSON_PLAIN)
    quoted = pc.binary_join_element_wise('"', values, '"', "")
    return patched(values, fast, quoted, gofmt.json_string)
