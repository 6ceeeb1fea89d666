"""The report's row vocabulary: one `NodeRow` per instance, as tctl's `instanceInfo`.

Times are integers: nanoseconds since the Unix epoch, UTC (Teleport writes nanoseconds;
Python's datetime would drop them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
