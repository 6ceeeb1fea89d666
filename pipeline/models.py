"""Pydantic models of the audit events this project reads (spec §1).

The ingest hot path validates in bulk with DuckDB (see `pipeline.ingest.stage`); these models are
the single written definition of what a valid event is, they explain rejected lines, and they are
what tests and notebooks use to build or read one event. A property test keeps the two in step.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

# RFC 3339 parsing lives with the CLI's time parsing (no pydantic there); the models use it
from pipeline.timeutil import MAX_NS, MIN_NS, TIME_RE, parse_time_ns  # noqa: F401

SSM_RUN = "ssm.run"
AZURE_RUN = "azure.run"
INSTANCE_JOIN = "instance.join"
RUN_EVENTS = (SSM_RUN, AZURE_RUN)
KNOWN_EVENTS = (SSM_RUN, AZURE_RUN, INSTANCE_JOIN)

# Event times as they reach us: Teleport's RFC 3339, and what Fluentd writes in its time column or
# injects (`T` or a space before the time of day, an offset with or without a colon, after an
# optional space: `2026-05-04 12:00:00 +0200`), or an epoch number (see parse_event_time_ns).
EVENT_TIME_RE = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))? ?([Zz]|[+-]\d\d:?\d\d)$",
    re.ASCII,
)
EPOCH_RE = re.compile(r"^(\d{1,19})(?:\.(\d{1,9}))?$", re.ASCII)
# Fluentd out_file's default line: `<time>\t<tag>\t<record JSON>` (time or tag may be switched off)
FLUENTD_LINE_RE = re.compile(r"^([^\t]*)\t(?:([^\t]*)\t)?(\{.*)$")
DEFAULT_TIME_KEY = "time"
BLANK_RE = re.compile(r"[\t\n\f\r ]*")  # RE2's \s, as the bulk validator uses
INT_RE = re.compile(r"-?[0-9]+")


def parse_event_time_ns(text: str) -> int:
    """Nanoseconds since the epoch (UTC) of an event time: RFC 3339 (`parse_time_ns`), the forms
    of EVENT_TIME_RE, or an epoch number: seconds with up to 9 fraction digits, or an integer read
    by its size as Fluentd's time types write it (below 10^11 seconds, below 10^14 milliseconds,
    below 10^17 microseconds, else nanoseconds). ValueError if it is none of them."""
    m = EPOCH_RE.fullmatch(text)
    if m:
        whole, frac = int(m.group(1)), m.group(2)
        if frac is not None:
            if whole >= 10**11:
                raise ValueError(f"time {text!r}: epoch seconds out of range")
            ns = whole * 10**9 + int(frac.ljust(9, "0"))
        else:
            ns = whole * next(f for lim, f in _EPOCH_UNITS if whole < lim)
    else:
        m = EVENT_TIME_RE.fullmatch(text)
        if not m:
            raise ValueError(f"time {text!r} is not RFC 3339 (e.g. 2026-05-04T10:00:00.123456789Z)")
        y, mo, d, hh, mi, ss, frac, off = m.groups()
        off = off if off in ("Z", "z") else f"{off[:3]}:{off[-2:]}"
        return parse_time_ns(f"{y}-{mo}-{d}T{hh}:{mi}:{ss}" + (f".{frac}" if frac else "") + off)
    if not (MIN_NS <= ns <= MAX_NS):
        raise ValueError(f"time {text!r} is outside the supported range (1677..2262)")
    return ns


_EPOCH_UNITS = ((10**11, 10**9), (10**14, 10**6), (10**17, 10**3), (10**19, 1))


def split_fluentd_line(line: str) -> tuple[str | None, str]:
    """(time column, record) of a line Fluentd's out_file format wrote (`<time>\t<tag>\t<JSON>`,
    or `<time>\t<JSON>` / `<tag>\t<JSON>` with the tag or time switched off: a first column
    starting with a digit is the time); (None, line) for any other line, a JSON record alone."""
    if line.startswith("{"):
        return None, line
    m = FLUENTD_LINE_RE.match(line)
    if not m:
        return None, line
    first, second, body = m.groups()
    return (first if second or re.match("[0-9]", first) else None), body


def event_time(record: dict[str, Any], column: str | None, time_key: str = DEFAULT_TIME_KEY) -> Any:
    """The time of a record: its `time_key`, else its `time`, else the line's Fluentd time column
    (a JSON null counts as absent); None when there is none."""
    for value in (record.get(time_key), record.get(DEFAULT_TIME_KEY), column):
        if value is not None:
            return value
    return None


def missing_time_reason(time_key: str = DEFAULT_TIME_KEY) -> str:
    """Why a record with no time anywhere is rejected."""
    if time_key == DEFAULT_TIME_KEY:
        return "missing field time (and no Fluentd time column)"
    return f"missing fields {time_key} and time (and no Fluentd time column)"


def derived_uid(event: dict[str, Any]) -> str:
    """A stable id for an event without `uid`: sha256 of its canonical JSON, UUID-shaped."""
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    h = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _as_text(value: Any) -> Any:
    """Text fields take any JSON value: strings as they are, other values as their JSON text
    (Teleport writes strings; a number where a string belongs is kept, not rejected)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _none_to_empty(value: Any) -> Any:
    """JSON null in a text field reads as empty (older DynamoDB items store "" as NULL)."""
    return "" if value is None else _as_text(value)


def _as_int(value: Any) -> Any:
    """Integers: a JSON integer, or a string holding one (no sign but '-', no spaces)."""
    if value is None:
        return 0
    if isinstance(value, str) and INT_RE.fullmatch(value) and str(int(value)) == value:
        return int(value)  # canonical integer text only ("05", "-0" are not)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer")
    return value


INT64 = {"ge": -(2**63), "le": 2**63 - 1}
Text = Annotated[StrictStr, BeforeValidator(_none_to_empty)]  # required: missing rejected, null ""
OptText = Annotated[StrictStr, BeforeValidator(_none_to_empty)]
OptInt = Annotated[StrictInt, BeforeValidator(_as_int), Field(**INT64)]


class Envelope(BaseModel):
    """Fields every audit event carries; unknown keys are kept (extra="allow")."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event: Text
    time: Text  # from the record, or the line's Fluentd time column (see `event_time`)
    code: OptText = ""  # omitempty: an event without code is not a failure
    uid: OptText = ""
    ei: OptInt = 0
    cluster_name: OptText = ""

    @field_validator("time")
    @classmethod
    def _time_is_an_event_time(cls, v: str) -> str:
        parse_event_time_ns(v)
        return v

    @field_validator("event")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v:
            raise ValueError("must not be empty")
        return v

    @property
    def time_ns(self) -> int:
        return parse_event_time_ns(self.time)

    @property
    def raw(self) -> str:
        """The JSON line this event was parsed from ("" when built from a dict)."""
        return self.__pydantic_private__.get("_raw", "") if self.__pydantic_private__ else ""

    @property
    def is_failure(self) -> bool:
        """Failure exactly when the event code ends in W or E (never from exit code or status)."""
        return self.code[-1:] in ("W", "E")


class SSMRun(Envelope):
    """`ssm.run`: one SSM Run Command step on an EC2 instance; key `instance_id`."""

    key_field: ClassVar[str] = "instance_id"
    event: Literal["ssm.run"]
    instance_id: Text
    command_id: OptText = ""
    exit_code: OptInt = 0
    status: OptText = ""
    account_id: OptText = ""
    region: OptText = ""
    stdout: OptText = ""
    stderr: OptText = ""
    invocation_url: OptText = ""
    platform_name: OptText = ""
    platform_type: OptText = ""
    platform_version: OptText = ""


class AzureRun(Envelope):
    """`azure.run`: one Azure Run Command on a VM; key `vm_id` (a GUID, case-insensitive)."""

    key_field: ClassVar[str] = "vm_id"
    event: Literal["azure.run"]
    vm_id: Text
    subscription_id: OptText = ""
    resource_group: OptText = ""
    resource_id: OptText = ""
    region: OptText = ""
    vm_name: OptText = ""
    exit_code: OptInt = 0
    execution_state: OptText = ""
    stdout: OptText = ""
    stderr: OptText = ""
    api_error: OptText = ""
    status: OptText = ""


class InstanceJoin(Envelope):
    """`instance.join`: an agent joined (TJ002I) or failed to (TJ002E). The fields after
    `attributes` are typed here and stored in `extra` (the joins dataset has no columns for them)."""

    event: Literal["instance.join"]
    node_name: OptText = ""
    host_id: OptText = ""
    role: OptText = ""
    method: OptText = ""
    token_name: OptText = ""
    attributes: dict[str, Any] | None = None
    success: StrictBool | None = None
    error: OptText = ""
    message: OptText = ""
    token_expires: OptText = ""  # 0001-01-01T00:00:00Z for static tokens: kept as text
    addr_remote: OptText = Field("", alias="addr.remote")
    scope: OptText = ""
    roles: list[StrictStr] | None = None


MODELS: dict[str, type[Envelope]] = {SSM_RUN: SSMRun, AZURE_RUN: AzureRun, INSTANCE_JOIN: InstanceJoin}


def parse_event(line: str | bytes, time_key: str = DEFAULT_TIME_KEY) -> Envelope:
    """The model of one audit-event line (SSMRun, AzureRun, InstanceJoin, or Envelope for other
    types), keeping the raw line; a Fluentd out_file line gives its record, and the record's time
    is resolved as `event_time` says. Raises ValueError with `explain`'s one-line reason."""
    reason = explain(line, time_key)
    if reason:
        raise ValueError(reason)
    text = (line.decode("utf-8") if isinstance(line, bytes) else line).rstrip("\r\n")
    column, body = split_fluentd_line(text)
    obj = json.loads(body)
    obj = {**obj, "time": event_time(obj, column, time_key)}
    event = MODELS.get(_as_text(obj.get("event")), Envelope).model_validate(obj)
    object.__setattr__(event, "__pydantic_private__", {"_raw": text})
    return event


def explain(line: str | bytes, time_key: str = DEFAULT_TIME_KEY) -> str:
    """One line saying why `line` is not a valid event of a known type ("" when it is valid).
    A Fluentd out_file line is judged by its record, with the time column as its fallback time."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as e:
            return f"not UTF-8 ({e.reason} at byte {e.start})"
    if BLANK_RE.fullmatch(line):
        return ""  # a blank line is skipped, not rejected
    if "\x00" in line:
        return "contains a NUL byte"
    column, body = split_fluentd_line(line)
    try:
        obj = json.loads(body)
    except (json.JSONDecodeError, RecursionError) as e:
        return f"invalid JSON: {getattr(e, 'msg', str(e))} at column {getattr(e, 'colno', '?')}"
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {_json_kind(obj)}"
    event = _as_text(obj.get("event"))
    if not event:
        return "missing field event"
    model = MODELS.get(event)
    if model is None:
        return ""  # another event type: skipped, not rejected
    when = event_time(obj, column, time_key)
    if when is None:
        return missing_time_reason(time_key)
    try:
        model.model_validate({**obj, "time": when})
    except ValidationError as e:
        return "; ".join(_describe(err) for err in e.errors(include_url=False))
    return ""


def _json_kind(obj: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(obj), "a number"
    )


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "event"
    msg = err["msg"]
    if err["type"] == "missing":
        return f"missing field {loc}"
    return f"{loc}: {msg}"
