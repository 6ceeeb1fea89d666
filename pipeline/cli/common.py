"""What every command module shares: the one-line error contract, progress on stderr, the store
of the invocation, windows, clouds and the terminal width. Imports no command module."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from functools import wraps

import click

from pipeline.timeutil import InputError, parse_duration_ns, parse_instant_ns

ENV_STORE = "DISCOVERY_HISTORY_STORE"


def fail(message: str, code: int = 1) -> None:
    """`discovery-history: error: <message>` on stderr, then exit with `code`."""
    click.echo(f"discovery-history: error: {message}", err=True)
    sys.exit(code)


def friendly(fn: Callable) -> Callable:
    """Turn the library's user-facing errors into one line on stderr and exit status 1."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        from pipeline.ingest.errors import SnapshotError
        from pipeline.report.table import TableWidthError
        from pipeline.report.yamlv2 import GoYAMLError
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


class OneLineGroup(click.Group):
    """The root group, whose usage errors (an invalid choice, a missing argument, an unknown
    option) keep the one-line contract: `discovery-history: error: …` on stderr, exit status 2,
    instead of click's usage text."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:  # a group alone: its help, as click does
            e.show()
            sys.exit(e.exit_code)
        except click.UsageError as e:
            hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
            fail(" ".join(e.format_message().split()) + hint, e.exit_code)
        except click.ClickException as e:
            fail(" ".join(e.format_message().split()), e.exit_code)
        except click.Abort:
            fail("aborted", 1)
        sys.exit(code if isinstance(code, int) else 0)


def choice(values) -> click.Choice:
    """A case-insensitive choice (like --cloud): `CSV` is `csv`."""
    return click.Choice(list(values), case_sensitive=False)


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
    """The store named by `--store` (or $DISCOVERY_HISTORY_STORE, else `lake`) of this
    invocation; a command invoked outside the root group reads the same defaults."""
    from pipeline.store import Store

    return Store((ctx.obj or {}).get("store") or os.environ.get(ENV_STORE) or "lake")


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


def resolve_window(last: str | None, start: str | None, end: str | None, now_ns: int,
                   default_last: str | None = "1h") -> tuple[int, int]:
    """The half-open window [from, to) in integer nanoseconds, every typed digit kept: --from
    [--to] (to: now); --last ending at --to or now; --to alone: `default_last` ending there (None:
    all history up to it); nothing: `default_last` ending now. A reversed or empty window is an
    error naming both ends as typed."""
    if last and start:
        raise InputError("use either --last or --from/--to, not both")
    to = parse_instant_ns(end) if end else now_ns
    if start:
        frm = parse_instant_ns(start)
        if to <= frm:
            shown = f"--to {end}" if end else f"now ({rfc3339_ns(now_ns)})"
            raise InputError(f"empty window: {shown} is not after --from {start}")
        return frm, to
    span = last or default_last
    return (to - parse_duration_ns(span) if span else 0), to


def rfc3339_ns(ns: int) -> str:
    """An instant as RFC 3339 with its nanoseconds (trailing zeros dropped), UTC."""
    from pipeline.report.gofmt import rfc3339nano

    return rfc3339nano(ns)


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
