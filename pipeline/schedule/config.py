"""Settings of the scheduled pipeline (the Airflow DAGs); the windows of their runs are in
`pipeline.schedule.windows`.

One pydantic-settings model, read at task start (never at DAG parse): environment variables
`DISCOVERY_HISTORY_<FIELD>` (e.g. `DISCOVERY_HISTORY_STORE`, `DISCOVERY_HISTORY_LOOKBACK=15m`),
overridden by the JSON object in the Airflow Variable `discovery_history`
(`{"lookback": "30m", "report_recipients": ["ops@example.com"]}`). SMTP credentials come from the
Airflow Connection `smtp_conn_id` (Airflow's SMTP provider).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pipeline.schedule.windows import RunWindow
from pipeline.timeutil import InputError, parse_duration_ns

ENV_PREFIX = "DISCOVERY_HISTORY_"
AIRFLOW_VARIABLE = "discovery_history"
_ISO_DATE = re.compile(r"(\d{4}-\d\d-\d\d)")


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names it (env var and Variable key)."""


def _duration(value: Any) -> Any:
    """Go-style durations (`15m`, `1h30m`, `2d`), `0`, or plain seconds; timedeltas pass."""
    if isinstance(value, str):
        text = value.strip()
        if text in ("0", "0s"):
            return timedelta(0)
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return timedelta(seconds=float(text))
        if not text.startswith("P"):  # ISO 8601 (PT15M) is left to pydantic
            try:
                return timedelta(microseconds=parse_duration_ns(text) // 1000)
            except InputError as e:
                raise ValueError(str(e)) from None
    return value


class Settings(BaseSettings):
    """Everything the DAGs need; see the module docstring for where values come from."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    store: str = Field("lake", min_length=1, description="store root folder")
    # filelog | athena | export: files/folders/URLs in `source`; dynamodb: the audit table named
    # by `source`; spool: the receiver's spool folder in `source` (see docs/sources.md)
    source_kind: Literal["filelog", "athena", "export", "dynamodb", "spool"] = "filelog"
    aws_region: str | None = None  # for dynamodb; default: the standard AWS chain
    source: str = Field("/var/lib/teleport/log", min_length=1,
                        description="audit events: folder, file, glob or fsspec URL")
    lookback: timedelta = Field(timedelta(minutes=15), description="re-read before each interval")
    time_key: str = Field("time", min_length=1,
                          description="record key of the event time (Fluentd <inject> time_key)")
    nodes_command: str = "tctl get nodes --format=json"
    user_tasks_command: str = "tctl get user_tasks --format=json"
    nodes_file: str | None = None  # when set, read instead of running nodes_command
    user_tasks_file: str | None = None
    snapshot_timeout: timedelta = timedelta(minutes=2)
    snapshot_max_lag: timedelta = Field(
        timedelta(hours=1), description="skip a snapshot whose capture time is older (0: never)")
    reports: str | None = Field(None, description="report folder; default <store>/reports")
    report_recipients: Annotated[list[str], NoDecode] = Field(default_factory=list)
    report_sender: str = "discovery-history@localhost"
    report_summary_days: int = Field(7, ge=1)
    # a mailed report is never changed; a later build that differs is a new version, mailed
    # as a correction ("mail") or only kept beside it ("keep")
    report_corrections: Literal["mail", "keep"] = "mail"
    # the Airflow Connection the report mail goes through (SMTP provider: host, port, login,
    # password; extras disable_ssl, disable_tls, from_email, timeout, retry_limit)
    smtp_conn_id: str = "smtp_default"
    retention_days: int | None = Field(None, ge=1)
    # node_exporter textfile collector file (*.prom) the ingest DAG writes metrics to after a run
    metrics_textfile: str | None = None

    _durations = field_validator("lookback", "snapshot_timeout", "snapshot_max_lag",
                                 mode="before")(_duration)

    @field_validator("lookback", "snapshot_max_lag")
    @classmethod
    def _not_negative(cls, v: timedelta) -> timedelta:
        if v < timedelta(0):
            raise ValueError("must not be negative")
        return v

    @field_validator("metrics_textfile")
    @classmethod
    def _prom_file(cls, v: str | None) -> str | None:
        if v and not v.endswith(".prom"):
            raise ValueError("must name a *.prom file (node_exporter's textfile collector reads "
                             "only those)")
        return v or None

    @field_validator("snapshot_timeout")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("must be greater than zero")
        return v

    @field_validator("nodes_command", "user_tasks_command")
    @classmethod
    def _argv(cls, v: str) -> str:
        try:
            argv = shlex.split(v)
        except ValueError as e:
            raise ValueError(f"cannot split {v!r} into arguments: {e}") from None
        if not argv:
            raise ValueError("empty command")
        return v

    @field_validator("report_recipients", mode="before")
    @classmethod
    def _recipients(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [p.strip() for p in v.split(",") if p.strip()]
        return v

    @field_validator("report_recipients")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        for addr in v:
            if not re.fullmatch(r"[^@\s,<>]+@[^@\s,<>]+", addr):
                raise ValueError(f"not an e-mail address: {addr!r}")
        return v

    def argv(self, kind: str) -> list[str]:
        """The snapshot command of `kind` ("nodes" | "user_tasks") as an argument list."""
        return shlex.split(self.nodes_command if kind == "nodes" else self.user_tasks_command)

    def snapshot_file(self, kind: str) -> str | None:
        """The configured snapshot file of `kind`, if any (it wins over the command)."""
        return self.nodes_file if kind == "nodes" else self.user_tasks_file

    def event_sources(self, window: tuple[datetime, datetime]) -> list:
        """What one ingest of `window` reads: paths, or Source objects for DynamoDB (a spool is
        drained instead, see `pipeline.ingest.drain.drain_spool`)."""
        if self.source_kind == "dynamodb":
            from pipeline.sources.dynamo import dynamo_days

            return list(dynamo_days(self.source, window, region=self.aws_region))
        return self.event_paths(window)

    def event_paths(self, window: tuple[datetime, datetime]) -> list[str]:
        """The source files that may hold events of `window`: files named for a UTC day are kept
        when the day is within [start − 1 day, end] (events land in the file of the day they
        were written); files without a day in their name are always kept."""
        from pipeline.sources.files import expand

        first = window[0].astimezone(UTC).date() - timedelta(days=1)
        last = (window[1].astimezone(UTC) - timedelta(microseconds=1)).date()
        keep = []
        for f in expand([self.source]):
            day = _file_day(self.source_kind, f.url)
            if day is None or first <= day <= last:
                keep.append(f.url)
        return keep


def _file_day(kind: str, url: str) -> date | None:
    """The UTC day a source file covers, from its name as `kind` names files (None: unknown)."""
    from pipeline.sources.files import DAY_FILE_RE

    base = url.rstrip("/").rsplit("/", 1)[-1]
    if kind == "filelog":
        m = DAY_FILE_RE.match(base)
    elif kind == "athena":  # <prefix>/<YYYY-MM-DD>/<uuid>.parquet
        m = re.fullmatch(r"(\d{4}-\d\d-\d\d)", url.rstrip("/").rsplit("/", 2)[-2]) if "/" in url else None
    else:  # exports: the last ISO date anywhere in the path (Fluentd time-sliced names)
        found = _ISO_DATE.findall(url)
        m = _ISO_DATE.match(found[-1]) if found else None
    try:
        return date.fromisoformat(m.group(1)) if m else None
    except ValueError:
        return None


# SMTP settings read before the mail went through Airflow's SMTP provider: refused with the fix
RETIRED_SMTP = {f"smtp_{k}" for k in ("host", "port", "user", "password", "ssl", "starttls",
                                      "timeout")}


def load_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Settings from the environment, with `overrides` (the Airflow Variable) winning.

    Raises ConfigError naming the environment variable and the Variable key of each bad value."""
    overrides = dict(overrides or {})
    retired = sorted({k for k in overrides if k in RETIRED_SMTP}
                     | {k.removeprefix(ENV_PREFIX).lower() for k in os.environ
                        if k.removeprefix(ENV_PREFIX).lower() in RETIRED_SMTP
                        and k.startswith(ENV_PREFIX)})
    if retired:
        raise ConfigError(
            f"setting(s) {', '.join(retired)} are no longer read: the report mail goes through "
            "Airflow's SMTP provider, configured as the Airflow Connection smtp_conn_id "
            "(default smtp_default), e.g. AIRFLOW_CONN_SMTP_DEFAULT="
            "'smtp://user:password@mail.example.com:587?disable_ssl=true'")
    try:
        return Settings(**overrides)
    except ValidationError as e:
        raise ConfigError(_explain(e, overrides)) from None


def _explain(e: ValidationError, overrides: Mapping[str, Any]) -> str:
    lines = []
    for err in e.errors(include_url=False):
        name = str(err["loc"][0]) if err["loc"] else "?"
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown setting {name!r} in Airflow Variable {AIRFLOW_VARIABLE} "
                         f"(known: {', '.join(sorted(Settings.model_fields))})")
            continue
        where = (f"Airflow Variable {AIRFLOW_VARIABLE}[{name!r}]" if name in overrides
                 else f"{ENV_PREFIX}{name.upper()}")
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"invalid setting {where}: {msg}")
    return "invalid configuration: " + "; ".join(lines)


def airflow_settings() -> Settings:
    """Settings for a running Airflow task: env, then the Airflow Variable `discovery_history`.

    Call at task start only (it talks to the Airflow API server)."""
    import json

    from airflow.sdk import Variable

    raw = Variable.get(AIRFLOW_VARIABLE, default=None)
    if raw in (None, ""):
        return load_settings()
    try:
        overrides = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as e:
        raise ConfigError(f"Airflow Variable {AIRFLOW_VARIABLE} is not JSON: {e.msg}") from None
    if not isinstance(overrides, dict):
        raise ConfigError(f"Airflow Variable {AIRFLOW_VARIABLE} must be a JSON object of settings")
    return load_settings(overrides)


def reports_root(settings: Settings) -> str:
    """The reports folder: the `reports` setting, `<store>/reports/` by default (a local store;
    a store on object storage needs the `reports` setting: a local folder)."""
    if settings.reports:
        return settings.reports
    if "://" in settings.store and not settings.store.startswith("file://"):
        raise ConfigError(f"the store {settings.store} is on object storage: set "
                          f"{ENV_PREFIX}REPORTS to a local folder for the report files")
    return os.path.join(settings.store.removeprefix("file://"), "reports")


def report_dir(settings: Settings, window: RunWindow) -> str:
    """Where a report's first version lives: `<reports_root>/<label>/` (later versions of a
    mailed report: `pipeline.report.publish`)."""
    return os.path.join(reports_root(settings), window.label)
