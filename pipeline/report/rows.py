"""The report's row vocabulary: one `NodeRow` per instance, as tctl's `instanceInfo`.

Times are integers: nanoseconds since the Unix epoch, UTC (Teleport writes nanoseconds;
Python's datetime would drop them).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Literal

from pipeline.report.gofmt import go_bytes, go_quote
from pipeline.report.titles import user_task_title

Cloud = Literal["aws", "azure"]


@dataclass(frozen=True, slots=True)
class RunResult:
    """The newest install attempt of an instance in the window."""

    time_ns: int
    exit_code: int
    output: str  # trimmed stdout and trimmed stderr joined by one newline (see combine_output)
    api_error: str
    is_failure: bool


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One instance of the report (tctl's instanceInfo), already merged and decorated."""

    cloud: Cloud
    key: str  # tctl's key: EC2 instance id, or the Azure VM id exactly as written
    region: str = ""
    is_online: bool = False
    expiry_ns: int | None = None
    run: RunResult | None = None
    user_task_id: str = ""
    user_task_issue: str = ""
    # identity: AWS uses instance_id/account_id; Azure uses vm_id, account_id (= subscription id),
    # vm_name, resource_group, resource_id
    instance_id: str = ""
    account_id: str = ""
    vm_id: str = ""
    vm_name: str = ""
    resource_group: str = ""
    resource_id: str = ""



def rows_from_columns(columns: Mapping[str, Sequence]) -> list[NodeRow]:
    """NodeRows from equal-length columns, one per NodeRow field, filled a column at a time."""
    # A frozen dataclass's __init__ costs ~2 µs a row (a Python call, one object.__setattr__
    # per field); the slot descriptors set a whole column in one C-level pass, same objects.
    n = len(columns["key"])
    rows = list(map(object.__new__, repeat(NodeRow, n)))
    for name in NodeRow.__slots__:
        deque(map(getattr(NodeRow, name).__set__, rows, columns[name]), maxlen=0)
    return rows


# --- tctl's per-row text: one function per column, byte-identical to tctl ------------------

# Go's unicode.IsSpace (what strings.TrimSpace trims). Python's str.strip also trims \x1c-\x1f.
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"

CLOUD_NAMES = {"aws": "AWS", "azure": "Azure"}
_RUN_OUTPUT_MAX_BYTES = 100


def go_trim_space(s: str) -> str:
    """Go strings.TrimSpace: strips Go's Unicode spaces only (not \\x1c-\\x1f as str.strip does)."""
    return s.strip(GO_SPACE)


def combine_output(stdout: str, stderr: str) -> str:
    """Trimmed stdout and trimmed stderr joined by one newline; whichever is non-empty alone."""
    return "\n".join(part for part in (go_trim_space(stdout), go_trim_space(stderr)) if part)


def status(row: NodeRow) -> str:
    """tctl's Status column: online state, then the newest run (an API error outranks the code)."""
    run = row.run
    run_status = ""
    if run is not None and run.is_failure:
        run_status = "API error" if run.api_error else f"exit code={run.exit_code}"
    if row.is_online:
        return "Online, " + run_status if run_status else "Online"
    if run is None:
        return "Unknown"
    return f"Failed ({run_status})" if run.is_failure else "Installed (offline)"


def trim_escape(s: str) -> str:
    """tctl's trimEscape: TrimSpace, cut to 100 bytes + "..." (may split a rune), then %q."""
    raw = go_bytes(go_trim_space(s))
    if not raw:
        return ""
    if len(raw) > _RUN_OUTPUT_MAX_BYTES:
        raw = raw[:_RUN_OUTPUT_MAX_BYTES] + b"..."
    return go_quote(raw)


def details(row: NodeRow, text: Callable[[str], str] | None = None) -> str:
    """tctl's Details column: task title, then `Script output: %q` or `API error: %q`, ". "-joined.
    `text` replaces tctl's trim-cut-quote of the output (CSV/Markdown pass the full text)."""
    text = text or trim_escape
    title = user_task_title(row.user_task_issue)
    extra = ""
    if row.run is not None:
        if out := text(row.run.output):
            extra = "Script output: " + out
        elif api_error := text(row.run.api_error):
            extra = "API error: " + api_error
    return f"{title}. {extra}" if title and extra else title or extra


def instance_text(row: NodeRow) -> str:
    """tctl's Instance column: the EC2 id, or `<resource-group>/<vm-id>` (bare vm id without RG)."""
    if row.cloud == "aws":
        return row.instance_id
    return f"{row.resource_group}/{row.vm_id}" if row.resource_group else row.vm_id


# Go's zero time.Time (0001-01-01T00:00:00Z) in ns since the epoch: tctl's "no time". The Unix
# epoch itself (0) is an ordinary time.
GO_ZERO_TIME_NS = -62_135_596_800 * 1_000_000_000


def last_time_ns(row: NodeRow) -> int | None:
    """The row's last time: the run's time unless it is Go's zero time, else the expiry; None when
    neither is a time (tctl leaves the cell blank)."""
    if row.run is not None and row.run.time_ns != GO_ZERO_TIME_NS:
        return row.run.time_ns
    return None if row.expiry_ns == GO_ZERO_TIME_NS else row.expiry_ns
