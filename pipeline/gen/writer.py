"""Bulk writers: files rendered in parallel, one task per output file, and the file-log layout
`auth/<server>/<YYYY-MM-DD>.00:00:00.log`."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.gen.events import SORT_KEYS
from pipeline.gen.render import Renderer

LOG_SUFFIX = ".00:00:00.log"
CURRENT_LINK = "events.log"
PIECE_ROWS = 4_096  # rows rendered at once (small buffers are reused, not faulted in afresh)
WORKERS = max(1, min(4, os.cpu_count() or 1))


BACKGROUND = True  # False: run it in place (for comparisons)


class Background:
    """`fn(*args)` in a thread; `result()` joins it and returns (or re-raises) its outcome."""

    def __init__(self, fn, *args) -> None:
        self.value: object = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.value = fn(*args)
            except BaseException as exc:  # handed over to result()
                self.error = exc

        self.thread = threading.Thread(target=run, name="generate-state", daemon=True)
        self.thread.start()
        if not BACKGROUND:
            self.thread.join()

    def result(self):
        """Wait for `fn`; its return value, or its exception raised here."""
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.value


def log_paths(auth_dir: Path, servers: list[str], first_day: date, n_days: int) -> list[Path]:
    """Paths indexed by file_idx = server * n_days + day (the order `rows_query` sorts by)."""
    return [auth_dir / srv / f"{first_day + timedelta(days=d):%Y-%m-%d}{LOG_SUFFIX}"
            for srv in servers for d in range(n_days)]


def file_runs(table: pa.Table) -> list[tuple[int, pa.Array]]:
    """(file_idx, row indices in file order) for each file of a `rows_query` table."""
    if not table.num_rows:
        return []
    perm = pc.sort_indices(table, sort_keys=SORT_KEYS)
    ree = pc.run_end_encode(table["file_idx"].take(perm).combine_chunks())
    out, row = [], 0
    for idx, end in zip(ree.values.to_pylist(), ree.run_ends.to_pylist(), strict=True):
        out.append((idx, perm.slice(row, end - row)))
        row = end
    return out


def file_slices(table: pa.Table) -> list[tuple[int, pa.Table]]:
    """(file_idx, its rows) for each file of a table already in file order."""
    if not table.num_rows:
        return []
    ree = pc.run_end_encode(table["file_idx"].combine_chunks())
    ends = ree.run_ends.to_pylist()
    return [(idx, table.slice(lo, hi - lo))
            for idx, lo, hi in zip(ree.values.to_pylist(), [0, *ends], ends, strict=False)]


def per_file(chunks: Iterable[pa.Table], task: Callable[[int, pa.Table], object],
             tick: Callable[[int], None] | None = None, presorted: bool = False) -> list:
    """Run `task(file_idx, rows)` in a thread pool for every file of every chunk (`rows` in
    file order, taken by the task's thread; `presorted` chunks are in file order already,
    any order within a file); return the results in submission order. Chunks hold whole
    files (no file spans two chunks); the next chunk is fetched while the tasks of this one
    run (at most two chunks in flight); `tick(rows)` when a chunk is done."""
    results: list[Future] = []
    pending: tuple[list[Future], int] | None = None

    def settle(futures: list[Future], rows: int) -> None:
        for f in futures:
            f.result()
        if tick:
            tick(rows)

    with ThreadPoolExecutor(WORKERS, thread_name_prefix="generate") as pool:
        try:
            for table in chunks:
                if presorted:
                    futures = [pool.submit(task, idx, rows) for idx, rows in file_slices(table)]
                else:
                    table = table.combine_chunks()  # else every take concatenates the chunks
                    futures = [pool.submit(lambda i, p, t=table: task(i, t.take(p)), idx, perm)
                               for idx, perm in file_runs(table)]
                results += futures
                if pending:
                    settle(*pending)
                pending = (futures, table.num_rows)
            if pending:
                settle(*pending)
        except BaseException:
            for f in results:
                f.cancel()
            raise
    return [f.result() for f in results]


def write_logs(chunks: Iterable[pa.Table], render: Renderer, paths: list[Path],
               tick: Callable[[int], None] | None = None) -> int:
    """Create every file in `paths` (empty if it gets no line), then write each file's lines.

    Chunks hold `rows_query` rows of whole days (so whole files), in any order. Lines end
    with a newline. Returns the number of bytes written; `tick(rows)` after each chunk.
    """
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")

    def task(idx: int, rows: pa.Table) -> int:
        total = 0
        with open(paths[idx], "wb") as f:
            for batch in rows.to_batches(max_chunksize=PIECE_ROWS):
                lines = render.lines(batch, newline=True)
                if lines.type not in (pa.string(), pa.large_string()):
                    lines = lines.cast(pa.large_string())
                offsets = memoryview(lines.buffers()[1]).cast(
                    "i" if lines.type == pa.string() else "q")
                lo, hi = offsets[lines.offset], offsets[lines.offset + len(lines)]
                f.write(memoryview(lines.buffers()[2])[lo:hi])
                total += hi - lo
        return total

    return sum(per_file(chunks, task, tick))


def link_current(server_dir: Path) -> Path:
    """Point `events.log` at the newest day file of a server folder (relative symlink)."""
    newest = max(p.name for p in server_dir.glob(f"*{LOG_SUFFIX}"))
    link = server_dir / CURRENT_LINK
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(newest, link)
    return link
