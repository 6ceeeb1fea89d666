"""Draining the event-handler receiver's spool (`pipeline.sources.spool`) into the store: the
closed spool files in one ingest, then moved to `archive/` (`discovery-history ingest spool`,
the ingest DAG with `source_kind=spool`)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from pipeline.ingest.events import ingest_events
from pipeline.sources.spool import SpoolError, closed_files, fsync_dir


def drain_spool(store, spool_dir: str | os.PathLike[str], **ingest_options):
    """Ingest every closed spool file in one `ingest_events`, then move them to `archive/`.
    Returns the IngestSummary, or None when there was nothing to drain. A crash between the
    two re-ingests those files next time: duplicates by uid, stored once."""
    root = Path(spool_dir)
    if not root.is_dir():
        raise SpoolError(f"no such spool folder: {root}")
    fd = os.open(root / ".drain.lock", os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # one drain at a time; the receiver is not blocked
        files = closed_files(root)
        if not files:
            return None
        summary = ingest_events(store, [str(f) for f in files], **ingest_options)
        archive = root / "archive"
        archive.mkdir(exist_ok=True)
        for f in files:
            os.replace(f, archive / f.name)
        fsync_dir(archive)
        fsync_dir(root)
        return summary
    finally:
        os.close(fd)
