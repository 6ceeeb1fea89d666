# FROZEN ORACLE: pipeline/report/rows.py as of commit 570e1d2, before the renderers were optimised.
# Kept verbatim (imports redirected here) so tests/report/test_render_differential.py can check
# the fast renderers stay byte-identical to it. Do not edit or "improve" it.
# ISSUE 16 (Go parity) changed these rules on purpose; the reference takes them from the pipeline,
# whose definitions tests/report/test_goracle.py checks against real Go (now the authority):
# user task titles (pipeline/report/titles.py) and the Unix epoch as a time (last_time_ns).
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

from pipeline.report import rows, titles  # issue 16
from tests.report.reference.gofmt import go_bytes, go_quote

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
    key: str  # join key: EC2 instance id, or the Azure VM id lower-cased
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


def run_results(has_run: Sequence[bool], time_ns: Sequence, exit_code: Sequence,
                stdout: Sequence[str], stderr: Sequence[str], api_error: Sequence[str],
                is_failure: Sequence[bool]) -> list[RunResult | None]:
    """The `run` column: a RunResult where `has_run`, else None (output via combine_output)."""
    return [RunResult(time_ns=t, exit_code=code, output=combine_output(out, err),
                      api_error=api, is_failure=failed) if has else None
            for has, t, code, out, err, api, failed
            in zip(has_run, time_ns, exit_code, stdout, stderr, api_error, is_failure,
                   strict=True)]

# --- tctl's per-row text: one function per column, byte-identical to tctl ------------------

# Go's unicode.IsSpace (what strings.TrimSpace trims). Python's str.strip also trims \x1c-\x1f.
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"

EC2_ISSUE_TITLES = {
    "ec2-ssm-script-failure": "SSM Script failure",
    "ec2-ssm-agent-connection-lost": "SSM Agent lost connection",
    "ec2-ssm-unsupported-os": "Unsupported Operating System",
    "ec2-join-failure": "EC2 Join Failure",
}
AZURE_ISSUE_TITLES = {
    "azure-vm-enrollment-error": "Enrollment failed",
    "azure-vm-agent-not-available": "VM agent not available",
    "azure-vm-missing-run-commands-permission": "Missing Run Command permissions",
    "azure-vm-not-running": "VMs not running",
}
CLOUD_NAMES = {"aws": "AWS", "azure": "Azure"}
_RUN_OUTPUT_MAX_BYTES = 100


def go_trim_space(s: str) -> str:
    """Go strings.TrimSpace: strips Go's Unicode spaces only (not \\x1c-\\x1f as str.strip does)."""
    return s.strip(GO_SPACE)


def combine_output(stdout: str, stderr: str) -> str:
    """Trimmed stdout and trimmed stderr joined by one newline; whichever is non-empty alone."""
    return "\n".join(part for part in (go_trim_space(stdout), go_trim_space(stderr)) if part)


def user_task_title(cloud: Cloud, issue: str) -> str:
    """Title of a user task issue; the raw issue when unknown, "" without one (issue 16)."""
    return titles.user_task_title(issue)


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


def _trim_escape(s: str) -> str:
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
    text = text or _trim_escape
    title = user_task_title(row.cloud, row.user_task_issue)
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


def last_time_ns(row: NodeRow) -> int | None:
    """The row's last time (issue 16: the epoch is a time, only Go's zero time is none)."""
    return rows.last_time_ns(row)
