"""What every command module shares: the one-line error contract, progress on stderr, the store
of the invocation, windows, clouds and the terminal width. Imports no command module."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps

import click

from pipeline.timeutil import InputError, parse_duration_ns, parse_instant

ENV_STORE = "DISCOVERY_HISTORY_STORE"


def fail(message: str, code: int = 1) -> None:
    """`discovery-history: error: <message>` on stderr, then exit with `code`."""
    click.echo(f"discovery-history: error: {message}", err=True)
    sys.exit(code)


def friendly(fn: Callable) -> Callable:
    """Turn the library's user-facing errors into one line on stderr and exit status 1."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        from pipeline.ingest.snapshots import SnapshotError
        from pipeline.report.gofmt import GoYAMLError
        from pipeline.report.table import TableWidthError
        from pipeline.sources import SourceError
        from pipeline.store import StoreError

        try:
            return fn(*args, **kwargs)
        except (InputError, SourceError, StoreError, SnapshotError, GoYAMLError,
                TableWidthError) as e:
            fail(str(e))
        except BrokenPipeError:
            sys.stderr.close()  # `| head`: not an error
            sys.exit(0)
        except KeyboardInterrupt:
            fail("interrupted", 130)

    return wrapper


class Progress:
    """Throttled progress on stderr, only when stderr is a terminal."""

    def __init__(self, label: str, enabled: bool | None = None):
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.count = 0
        self._last = 0.0

    def __call__(self, name: str, n: int) -> None:
        import time

        self.count += n
        now = time.monotonic()
        if self.enabled and now - self._last > 0.2:
            self._last = now
            short = name if len(name) < 50 else "…" + name[-49:]
            sys.stderr.write(f"\r{self.label}: {self.count:,} lines ({short})\x1b[K")
            sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self._last:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def store_of(ctx: click.Context):
    """The store named by `--store` (or $DISCOVERY_HISTORY_STORE) of this invocation."""
    from pipeline.store import Store

    return Store(ctx.obj["store"])


def report_ingest(summary, as_json: bool) -> None:
    """The conservation line (stdout; stderr with --json, then the summary as JSON on stdout)."""
    import json

    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    click.echo(summary.conservation_line(), err=as_json)


def parse_clouds(value: str) -> list[str]:
    """tctl's --cloud: comma list of aws/azure, case-insensitive; empty means both."""
    if value == "":
        return ["aws", "azure"]
    out: list[str] = []
    for part in value.split(","):
        name = part.strip().lower()
        if name == "":
            raise InputError("empty cloud provider in --cloud (allowed: aws, azure)")
        if name not in ("aws", "azure"):
            raise InputError(f"unknown cloud provider {part!r} (allowed: aws, azure)")
        if name not in out:
            out.append(name)
    return out


def resolve_window(last: str | None, start: str | None, end: str | None, now: datetime):
    """The half-open window [from, to): --last ends now; --from/--to are explicit."""
    if last and (start or end):
        raise InputError("use either --last or --from/--to, not both")
    if start:
        frm = parse_instant(start)
        to = parse_instant(end) if end else now
        if to <= frm:
            raise InputError(f"--to ({to:%Y-%m-%dT%H:%M:%SZ}) must be after --from")
        return frm, to
    if end:
        raise InputError("--to needs --from (or use --last)")
    span = parse_duration_ns(last or "1h")
    return now - timedelta(microseconds=span // 1000), now


def terminal_width(explicit: int | None) -> int:
    """--width, else $COLUMNS, else the terminal's width, else 80 (tctl's default)."""
    if explicit:
        return explicit
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 0:
        return int(cols)
    if sys.stdout.isatty():
        return shutil.get_terminal_size((80, 24)).columns
    return 80
