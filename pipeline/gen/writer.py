"""Bulk writer for the Teleport file-log layout: `auth/<server>/<YYYY-MM-DD>.00:00:00.log`."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

LOG_SUFFIX = ".00:00:00.log"
CURRENT_LINK = "events.log"


def log_paths(auth_dir: Path, servers: list[str], first_day: date, n_days: int) -> list[Path]:
    """Paths indexed by file_idx = server * n_days + day (the order `lines_query` sorts by)."""
    return [auth_dir / srv / f"{first_day + timedelta(days=d):%Y-%m-%d}{LOG_SUFFIX}"
            for srv in servers for d in range(n_days)]


def _spans(batch: pa.RecordBatch):
    """Yield (file_idx, data buffer, byte start, byte stop) for each run of equal file_idx."""
    lines = batch.column(1)
    if lines.type not in (pa.string(), pa.large_string()):
        lines = lines.cast(pa.large_string())
    offsets = memoryview(lines.buffers()[1]).cast("i" if lines.type == pa.string() else "q")
    data = lines.buffers()[2]
    ree = pc.run_end_encode(batch.column(0))
    row = 0
    for idx, end in zip(ree.values.to_pylist(), ree.run_ends.to_pylist(), strict=True):
        yield idx, data, offsets[lines.offset + row], offsets[lines.offset + end]
        row = end


def prefetch(items: Iterable, depth: int = 2) -> Iterator:
    """Iterate `items` in a background thread, up to `depth` ahead (DuckDB releases the GIL,
    so the next chunk is computed while this thread writes the current one). Closing the
    iterator early stops and joins the producer; its exceptions re-raise here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
        except BaseException as exc:  # handed over to the consumer
            put((None, exc))
            return
        put((done, None))

    producer = threading.Thread(target=run, name="generate-prefetch", daemon=True)
    producer.start()
    try:
        while True:
            item, exc = q.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        producer.join()


def write_logs(batches: Iterable[pa.RecordBatch], paths: list[Path],
               tick: Callable[[int], None] | None = None) -> int:
    """Create every file in `paths` (empty if it gets no line), then append the batches' lines.

    Batches hold (file_idx, line) rows; across all batches each file's rows are contiguous and
    in order (a file's rows may span batches). Lines carry their newline. Returns the number of
    bytes written; `tick(rows)` is called after each batch.
    """
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    total = 0
    for batch in batches:
        for idx, data, start, stop in _spans(batch):
            with open(paths[idx], "ab") as f:
                f.write(memoryview(data)[start:stop])
            total += stop - start
        if tick:
            tick(batch.num_rows)
    return total


def link_current(server_dir: Path) -> Path:
    """Point `events.log` at the newest day file of a server folder (relative symlink)."""
    newest = max(p.name for p in server_dir.glob(f"*{LOG_SUFFIX}"))
    link = server_dir / CURRENT_LINK
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(newest, link)
    return link
