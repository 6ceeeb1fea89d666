"""Where a built history report lands under the reports folder, so that what was mailed never
changes.

* A window's report is `<reports>/<label>/` (version 1). Once mailed (`sent.json` beside it) it
  is immutable: a later build of the same window that differs goes to `<label>.v2/`, `.v3/`,
  ... (mailed as a correction, or kept unmailed: `report_corrections`); one that is identical
  leaves everything as it is. A version not yet mailed is replaced by the next build.
* `latest/` (the rolling report, never mailed) only moves forward: a build for an end before
  the one it shows is discarded without being built.

Each folder carries `report.json` (label, window, version). A folder is built in a hidden
staging folder beside it and put in place by renames, so a reader never sees half a report.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

SENT = "sent.json"  # written by pipeline.publish.mail after a successful send
META = "report.json"
LATEST = "latest"
CORRECTIONS = ("mail", "keep")


def versions(root: Path, label: str) -> list[tuple[int, Path]]:
    """The existing versions of `label` under `root`, oldest first: (1, <label>),
    (2, <label>.v2), …"""
    found = []
    if (root / label).is_dir():
        found.append((1, root / label))
    pattern = re.compile(re.escape(label) + r"\.v(\d+)")
    if root.is_dir():
        for p in root.iterdir():
            if p.is_dir() and (m := pattern.fullmatch(p.name)) and int(m.group(1)) >= 2:
                found.append((int(m.group(1)), p))
    return sorted(found)


def shown_end(folder: Path) -> datetime | None:
    """The window end a report folder shows (from its report.json), None when unknown."""
    try:
        return datetime.fromisoformat(json.loads((folder / META).read_text())["end"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def publish_report(reports: str | os.PathLike[str], *, label: str, start: datetime,
                   end: datetime, mail: bool, build: Callable[[Path], dict],
                   corrections: str = "mail") -> dict:
    """Build the report of [start, end) named `label` with `build(folder)` and put it in place
    (module doc); `mail` says whether a new report of this label is to be mailed at all.

    Returns build's summary plus `dir` (the folder that now holds the window's report),
    `version`, `action` (`built`, `replaced`, `corrected`, `unchanged`, `stale`), `correction`
    (a new version of a mailed report) and `mail` (whether the mail task should send it)."""
    if corrections not in CORRECTIONS:
        raise ValueError(f"corrections must be one of {CORRECTIONS}, not {corrections!r}")
    root = Path(reports)
    root.mkdir(parents=True, exist_ok=True)
    meta = {"label": label, "start": start.isoformat(), "end": end.isoformat()}
    if label == LATEST:
        shown = shown_end(root / LATEST)
        if shown is not None and end < shown:
            return {**meta, "dir": str(root / LATEST), "version": 1, "action": "stale",
                    "correction": False, "mail": False,
                    "reason": f"latest already shows up to {shown.isoformat()}: it only moves "
                              "forward"}
    staging = root / f".building-{label}-{uuid.uuid4().hex[:8]}"
    try:
        out = build(staging)
        existing = versions(root, label)
        number, newest = existing[-1] if existing else (0, None)
        if newest is not None and (newest / SENT).exists():  # mailed: immutable
            _write_meta(staging, meta, number)
            if _same_report(staging, newest):
                return {**out, **meta, "dir": str(newest), "version": number,
                        "action": "unchanged", "correction": number > 1, "mail": False,
                        "reason": f"already mailed ({newest / SENT}); a rebuild is identical"}
            number += 1
            target = root / f"{label}.v{number}"
            _write_meta(staging, meta, number)
            os.rename(staging, target)
            return {**out, **meta, "dir": str(target), "version": number, "action": "corrected",
                    "correction": True, "mail": mail and corrections == "mail"}
        number = max(number, 1)
        target = newest or root / label
        _write_meta(staging, meta, number)
        action = "replaced" if newest is not None else "built"
        _swap(staging, target)
        return {**out, **meta, "dir": str(target), "version": number, "action": action,
                "correction": number > 1, "mail": mail}
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_meta(folder: Path, meta: dict, version: int) -> None:
    (folder / META).write_text(json.dumps({**meta, "version": version}, indent=1) + "\n")


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in (SENT, META)}


def _same_report(a: Path, b: Path) -> bool:
    """Byte-identical report files (the builder writes no timestamps), mail/meta aside."""
    return _contents(a) == _contents(b)


def _swap(new: Path, target: Path) -> None:
    """Put `new` where `target` is, by renames (the old folder is removed after)."""
    if not target.exists():
        os.rename(new, target)
        return
    old = target.with_name(f".replaced-{target.name}-{uuid.uuid4().hex[:8]}")
    os.rename(target, old)
    os.rename(new, target)
    shutil.rmtree(old, ignore_errors=True)
