"""Snapshots of cluster state from a command (`tctl get nodes --format=json`) or a file.

The command runs without a shell (`shlex.split`), with a timeout, stdin closed; its stdout is
streamed to a file (renamed into place only on success), its stderr kept for the error message.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

KINDS = ("nodes", "user_tasks")


class SnapshotCommandError(Exception):
    """A snapshot command could not run, timed out or exited non-zero (one-line message)."""


class SnapshotStale(Exception):
    """The run's capture time is too far in the past for a snapshot taken now to stand for it, or
    older than the newest capture stored."""


def _display(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def _last_line(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output on stderr"


def _run(argv: list[str], stdout, timeout: float) -> tuple[int, bytes]:
    """Run argv in its own process group; on timeout kill the whole group (tctl's children too)."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return proc.returncode, stderr


def run_snapshot(command: str | Sequence[str], out_path: str | os.PathLike[str], *,
                 timeout: float) -> Path:
    """Run `command` (a string split like a shell would, or an argv), writing its stdout to
    `out_path`. Raises SnapshotCommandError when it cannot start, times out or exits non-zero;
    `out_path` is then left untouched."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if not argv:
        raise SnapshotCommandError("empty snapshot command")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        with partial.open("wb") as f:
            returncode, stderr = _run(argv, f, timeout)
    except FileNotFoundError:
        partial.unlink(missing_ok=True)
        raise SnapshotCommandError(
            f"snapshot command `{_display(argv)}`: {argv[0]} not found (install it, or configure "
            "a snapshot file instead)") from None
    except PermissionError as e:
        partial.unlink(missing_ok=True)
        raise SnapshotCommandError(f"snapshot command `{_display(argv)}`: {e}") from None
    except subprocess.TimeoutExpired:
        partial.unlink(missing_ok=True)
        raise SnapshotCommandError(
            f"snapshot command `{_display(argv)}` timed out after {timeout:g}s") from None
    if returncode != 0:
        partial.unlink(missing_ok=True)
        how = f"was killed by signal {-returncode}" if returncode < 0 else f"exited {returncode}"
        raise SnapshotCommandError(f"snapshot command `{_display(argv)}` {how}: {_last_line(stderr)}")
    os.replace(partial, out)
    return out


def capture_snapshot(store, kind: str, *, at: datetime, now: datetime,
                     command: str | Sequence[str] | None = None, file: str | None = None,
                     timeout: timedelta = timedelta(minutes=2),
                     max_lag: timedelta = timedelta(0)) -> dict:
    """Store a `kind` snapshot captured at `at`: from `file` when given, else from `command`'s
    stdout. Raises SnapshotStale when `max_lag` > 0 and `now − at > max_lag` (the cluster's state
    now cannot stand for `at`) or when a newer capture is stored (a backfill's hour: the history
    is kept as changes, in capture order), SnapshotCommandError when the command fails. Returns
    the ingest summary as a dict (a rerun for the same `at` stores nothing: duplicates)."""
    from pipeline.ingest.snapshot_store import CaptureOutOfOrder
    from pipeline.ingest.snapshots import ingest_snapshot

    if kind not in KINDS:
        raise ValueError(f"unknown snapshot kind {kind!r} (expected one of {', '.join(KINDS)})")
    if max_lag > timedelta(0) and now - at > max_lag:
        raise SnapshotStale(
            f"{kind} snapshot for {at:%Y-%m-%dT%H:%M:%SZ} skipped: it is {now - at} old, more "
            f"than the allowed lag {max_lag}; cluster state now cannot stand for that time")
    if not file and not command:
        raise SnapshotCommandError(f"no {kind} snapshot command or file configured")
    try:
        if file:
            return ingest_snapshot(store, kind, file, at).to_dict()
        with tempfile.TemporaryDirectory(prefix=f"discovery-{kind}-") as tmp:
            path = run_snapshot(command, Path(tmp) / f"{kind}-{at:%Y%m%dT%H%M%SZ}.json",
                                timeout=timeout.total_seconds())
            return ingest_snapshot(store, kind, str(path), at).to_dict()
    except CaptureOutOfOrder as e:  # a backfill's hour: the history already runs past it
        raise SnapshotStale(f"{kind} snapshot for {at:%Y-%m-%dT%H:%M:%SZ} skipped: {e}") from None
