"""Every input layout of the same events stores, skips and quarantines exactly the same lines.

One corpus of lines (events over three days, with duplicates, a uid conflict, events without uid,
unknown event types, blank lines and bad lines of every kind) is written as one large file (cut
into byte ranges at line ends and staged side by side, `sources.duck.split`), as Teleport's day
files, as many small files, as gzip'd day files, and as Athena Parquet. Each is ingested into its
own store: the conservation counts, the stored rows and the quarantine (reason, raw bytes, and the
line each came from, mapped back to the corpus through each layout's own file names and line
numbers) must be identical to the day files'."""

from __future__ import annotations

import gzip
import json
import os
import random
import uuid
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.ingest import staging
from pipeline.ingest.events import ingest_events
from pipeline.sources import duck
from pipeline.sources.files import SourceFile
from pipeline.store import Store, uidbuild, uidindex
from pipeline.store.layout import INDEXED
from tests.conftest import T0, make_azure_run, make_run, query
from tests.ingest.test_events import make_join

DAYS = 3
PER_DAY = 900
SMALL_FILE_LINES = 40
# bad lines each layout must treat alike, spread at random
BAD = [b"{", b"null", b"[1]", b"not json", b'{"event": "ssm.run"}', b"\x00", b"", b"   ", b"\t",
       b"\xef\xbb\xbf" + json.dumps(make_run("i-bom", uid="u-bom")).encode()]  # a BOM before a record
# lines that make DuckDB's reader refuse their range (read by the Arrow reader alone), at
# (day, position)
RARE = {
    (0, 100): json.dumps(make_run("i-cr", uid="u-cr")).encode() + b"\r",  # CRLF
    (0, 700): b"\xff\xfe not utf-8",  # Athena's event_data cannot hold it
    (1, 500): b'{"event": "ssm.run", "uid": "u\x01"}',  # the reader's delimiter byte
    (2, 300): b'{"event": "ssm.run",\r"uid": "u-lone-cr"}',  # a lone CR inside a line
}


def corpus(utf8_only: bool = False) -> list[tuple[int, bytes]]:
    """(day, line) in file order: every day's events, bad lines spread through them."""
    rng = random.Random(18)
    out: list[tuple[int, bytes]] = []
    seen: dict[tuple[int, int], dict] = {}
    for d in range(DAYS):
        at = T0 + timedelta(days=d)
        for i in range(PER_DAY):
            t = at + timedelta(seconds=37 * i)
            kind = i % 9
            if kind < 5:
                ev = make_run(f"i-{i % 97:03}", "TDS00I" if i % 4 else "TDS00W", t,
                              uid=f"u-{d}-{i}", exit_code=0 if i % 4 else 1)
            elif kind < 7:
                ev = make_azure_run(f"vm-{i % 31}", at=t, uid=f"a-{d}-{i}")
            elif kind == 7:
                ev = make_join(f"host-{i % 13}", t, uid=f"j-{d}-{i}")
            else:
                ev = {"event": "user.login", "time": t.isoformat().replace("+00:00", "Z"),
                      "uid": f"l-{d}-{i}"}
            if i % 101 == 50:
                del ev["uid"]  # derived from the record
            out.append((d, json.dumps(ev).encode()))
            seen[d, i] = ev
            if d and i % 150 == 3:  # a copy of the day before's event (an overlapping export)
                out.append((d, json.dumps(seen[d - 1, i]).encode()))
            if d == 2 and i == 10:  # and one with another exit code: a conflict across days
                out.append((d, json.dumps({**seen[0, i], "exit_code": 7}).encode()))
            if i % 113 == 7:
                out.append((d, json.dumps(ev).encode()))  # an exact duplicate
            if i == 400 and d == 1:  # the same uid with another exit code: a conflict
                out.append((d, json.dumps({**ev, "exit_code": 99}).encode()))
            if rng.random() < 0.03:
                out.append((d, rng.choice(BAD)))
            if (d, i) in RARE:
                out.append((d, RARE[d, i]))
    out.append((DAYS - 1, json.dumps(make_run("i-last", uid="u-last")).encode()))  # no final \n
    if utf8_only:
        out = [(d, line) for d, line in out if _utf8(line)]
    return out


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _day(d: int) -> str:
    return (T0 + timedelta(days=d)).strftime("%Y-%m-%d")


def _join(lines: list[bytes]) -> bytes:
    return b"\n".join(lines)


def write_layout(layout: str, lines: list[tuple[int, bytes]], root: Path) -> tuple[list[str], dict]:
    """Write `lines` as `layout` under `root`: (paths to ingest, {(file, line_no): corpus index})."""
    root.mkdir(parents=True)
    where: dict[tuple[str, int], int] = {}
    files: dict[str, list[int]] = {}
    if layout == "one large file":
        files["all.log"] = list(range(len(lines)))
    elif layout in ("day files", "gzip day files", "athena parquet"):
        for i, (d, _) in enumerate(lines):
            name = (f"{_day(d)}/{uuid.UUID(int=d)}.parquet" if layout == "athena parquet"
                    else f"{_day(d)}.00:00:00.log" + (".gz" if layout == "gzip day files" else ""))
            files.setdefault(name, []).append(i)
    elif layout == "many small files":
        for start in range(0, len(lines), SMALL_FILE_LINES):
            files[f"part-{start // SMALL_FILE_LINES:05}.log"] = list(
                range(start, min(start + SMALL_FILE_LINES, len(lines))))
    paths = []
    for name, idx in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        data = [lines[i][1] for i in idx]
        if layout == "athena parquet":
            pq.write_table(pa.table({"event_data": pa.array([b.decode() for b in data], pa.string())}), p)
        else:
            # a day file ends with \n; the last file (holding the corpus's last line) does not
            raw = _join(data) + (b"" if idx[-1] == len(lines) - 1 else b"\n")
            p.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
        paths.append(str(p))
        where.update({(str(p), n): i for n, i in enumerate(idx, start=1)})
    return paths, where


def ingest_layout(layout: str, lines, tmp: Path, tag: str = "") -> tuple[tuple, dict]:
    name = layout.replace(" ", "-") + tag
    paths, where = write_layout(layout, lines, tmp / name)
    store = Store(tmp / f"store-{name}")
    s = ingest_events(store, paths)
    assert s.balanced
    counts = (s.read, s.stored, s.duplicates, s.skipped, s.quarantined, s.conflicts, s.runs, s.joins)
    runs = query(store, "runs", "SELECT * EXCLUDE (source, ingest_id) FROM t ORDER BY ALL")
    joins = query(store, "joins", "SELECT * EXCLUDE (source, ingest_id) FROM t ORDER BY ALL")
    quarantine = query(store, "quarantine", "SELECT source, line_no, reason, raw FROM t")
    return counts, {
        "runs": runs,
        "joins": joins,
        "uid_index": index_entries(store),
        # each quarantined line as the corpus line it is, whatever file and number it had here
        "quarantine": sorted((where[(q[0], q[1])], q[2], bytes(q[3])) for q in quarantine),
    }


def index_entries(store: Store) -> dict[str, list[tuple[int, str]]]:
    """Every uid index entry (hash, partition folder) per indexed dataset, sorted."""
    m = store.manifest()
    out = {}
    for ds in INDEXED:
        t = uidbuild.read_all(store, m, ds, store.root / "_cache")
        out[ds] = sorted(zip(t.column("uid_hash").to_pylist(),
                             t.column("part").cast(pa.string()).to_pylist(), strict=True))
    return out


@pytest.fixture
def small_ranges(monkeypatch):
    """Ranges of about 64 KiB of files over 512 KiB: the one large file (about 1 MiB) is cut
    into many ranges, the day files (about 330 KiB) are staged whole, a group each."""
    monkeypatch.setattr(staging, "GROUP_BYTES", 64 * 1024)
    monkeypatch.setattr(staging, "RANGE_BYTES", 64 * 1024)
    monkeypatch.setattr(staging, "SPLIT_BYTES", 512 * 1024)


@pytest.mark.parametrize("layout", ["one large file", "many small files", "gzip day files"])
def test_layouts_store_skip_and_quarantine_the_same_lines(layout: str, tmp_path: Path,
                                                          small_ranges) -> None:
    lines = corpus()
    expected = ingest_layout("day files", lines, tmp_path)
    got = ingest_layout(layout, lines, tmp_path)
    assert got[0] == expected[0]
    assert got[1] == expected[1]
    assert expected[0][0] == len(lines)  # every line read once
    assert expected[0][4] > 20 and expected[0][5] == 2  # bad lines and the conflicts are there


def test_athena_parquet_stores_skips_and_quarantines_the_same_lines(tmp_path: Path,
                                                                    small_ranges) -> None:
    """The corpus without the line that is not UTF-8 (an Athena event_data is a string)."""
    lines = corpus(utf8_only=True)
    assert ingest_layout("athena parquet", lines, tmp_path) == ingest_layout("day files", lines,
                                                                             tmp_path)


def test_the_large_file_is_cut_into_ranges_both_readers_share(tmp_path: Path, small_ranges) -> None:
    """The differential case above really splits: many ranges, most read by DuckDB, some (a CR,
    the delimiter byte, a leading BOM) by the Arrow reader; numbered without a gap."""
    lines = corpus()
    paths, _ = write_layout("one large file", lines, tmp_path / "in")
    ranges = list(duck.split(SourceFile(paths[0], paths[0]), staging.RANGE_BYTES, staging.WORKERS))
    assert len(ranges) >= 14 and len(ranges) % staging.WORKERS == 0
    assert 0 < sum(not r.plain for r in ranges) < len(ranges) // 2
    assert [r.first_line for r in ranges] == [1, *(r.first_line + r.lines for r in ranges[:-1])]
    assert sum(r.lines for r in ranges) == len(lines)
    assert [r.offset for r in ranges[1:]] == [r.offset + r.length for r in ranges[:-1]]


@pytest.mark.parametrize("content, target, expected", [
    # 20 lines of 10 bytes: cut just past the \n at or after every 100th byte
    (b"abcdefghi\n" * 20, 100,
     [(0, 100, 1, 10, True), (100, 100, 11, 10, True)]),
    # a CR in the first range, a BOM starting the second: both for the Arrow reader
    (b"aaaaaaa\r\n" + b"b" * 90 + b"\n" + b"\xef\xbb\xbfccccc\n" + b"d" * 86 + b"\n", 100,
     [(0, 100, 1, 2, False), (100, 96, 3, 2, False)]),
    # one line longer than the target: one range; no final newline counts the last line
    (b"x" * 250 + b"\ny", 100, [(0, 251, 1, 1, True), (251, 1, 2, 1, True)]),
], ids=["even", "cr and bom", "long line, no final newline"])
def test_split_cuts_at_line_ends(content: bytes, target: int, expected: list, tmp_path: Path) -> None:
    p = tmp_path / "f.log"
    p.write_bytes(content)
    got = [(r.offset, r.length, r.first_line, r.lines, r.plain)
           for r in duck.split(SourceFile(str(p), str(p)), target)]
    assert got == expected


def test_split_leaves_gzip_to_the_arrow_reader(tmp_path: Path) -> None:
    p = tmp_path / "f.log"
    p.write_bytes(gzip.compress(b'{"a": 1}\n' * 1000))
    assert duck.split(SourceFile(str(p), str(p)), 100) is None


def _staged_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in (store / "_staging").glob("*/staged/*") if p.is_file())


@pytest.mark.parametrize("layout", ["one large file", "day files"])
def test_bounded_batches_store_skip_and_quarantine_the_same_lines(layout: str, tmp_path: Path,
                                                                  small_ranges, monkeypatch) -> None:
    """A large ingest runs in batches of about BATCH_BYTES of input (issue 18.3), each judged
    against what the earlier ones wrote: the same counts, rows and quarantine as one pass (the
    corpus repeats events across days, and holds a conflict), with its scratch space held to
    about a batch's."""
    lines = corpus()
    expected = ingest_layout("day files", lines, tmp_path)
    monkeypatch.setattr(staging, "BATCH_BYTES", 200 * 1024)
    paths, _ = write_layout(layout, lines, tmp_path / "probe")
    assert len(list(staging.batches([SourceFile(p, p) for p in paths]))) >= 4
    assert ingest_layout(layout, lines, tmp_path, "-batched") == expected


@pytest.mark.parametrize("layout", ["gzip day files", "athena parquet"])
def test_bounded_batches_count_compressed_inputs_by_their_uncompressed_size(
        layout: str, tmp_path: Path, small_ranges, monkeypatch) -> None:
    """A gzip'd or Parquet input counts toward BATCH_BYTES by its uncompressed size (issue 18.1:
    10M lines gzip'd were ONE batch), so it is cut into as many batches as the plain day files,
    and stores, skips and quarantines the same lines as they do, with the same uid index."""
    lines = corpus(utf8_only=True)
    expected = ingest_layout("day files", lines, tmp_path)
    monkeypatch.setattr(staging, "BATCH_BYTES", 200 * 1024)
    paths, _ = write_layout(layout, lines, tmp_path / "probe")
    assert sum(os.path.getsize(p) for p in paths) < 200 * 1024  # one batch by bytes on disk
    assert len(list(staging.batches([SourceFile(p, p) for p in paths]))) == DAYS
    assert ingest_layout(layout, lines, tmp_path, "-batched") == expected


def test_batched_ingest_merges_the_uid_index_once_after_the_last_batch(
        tmp_path: Path, small_ranges, monkeypatch) -> None:
    """The uid index tiers are merged once, after the last batch, when the scratch database
    holds no batch's tables (issue 18.1: a merge beside them took the 10M-line peak over
    1 GiB); the entries are the same as a one-batch ingest's."""
    lines = corpus()
    expected = ingest_layout("day files", lines, tmp_path)
    monkeypatch.setattr(staging, "BATCH_BYTES", 200 * 1024)
    events: list[str] = []
    real_stage, real_merge = staging.stage_all, uidindex.merge

    def stage(*args, **kw):
        events.append("stage")
        return real_stage(*args, **kw)

    def merge(*args, **kw):
        events.append("merge")
        return real_merge(*args, **kw)

    monkeypatch.setattr(staging, "stage_all", stage)
    monkeypatch.setattr(uidindex, "merge", merge)
    got = ingest_layout("day files", lines, tmp_path, "-batched")
    assert events.count("stage") >= 4 and "merge" in events
    assert "stage" not in events[events.index("merge"):]
    assert events.count("merge") <= len(INDEXED)
    assert got == expected


def test_bounded_batches_bound_the_scratch_space(tmp_path: Path, small_ranges, monkeypatch) -> None:
    """A batch's staged parts are removed once it is written: each batch starts with none, and
    the most any batch holds is a fraction of what the one-pass ingest stages."""
    lines = corpus()
    paths, _ = write_layout("one large file", lines, tmp_path / "in")
    real = staging.stage_all
    peaks = []
    for batch_bytes in (1 << 40, 200 * 1024):
        monkeypatch.setattr(staging, "BATCH_BYTES", batch_bytes)
        root = tmp_path / f"store-{batch_bytes}"
        seen: list[tuple[int, int]] = []  # staged bytes before and after each batch's pass 1

        def observed(*args, root=root, seen=seen, **kw):
            before = _staged_bytes(root)
            out = real(*args, **kw)
            seen.append((before, _staged_bytes(root)))
            return out

        monkeypatch.setattr(staging, "stage_all", observed)
        s = ingest_events(Store(root), paths)
        assert s.balanced and s.read == len(lines)
        assert all(before == 0 for before, _ in seen)
        peaks.append((len(seen), max(after for _, after in seen)))
    assert peaks[0][0] == 1 and peaks[1][0] >= 4
    assert 0 < peaks[1][1] < peaks[0][1] / 2


@pytest.mark.parametrize("kernel_copy", [True, False], ids=["copy_file_range", "pread-write"])
def test_a_range_is_copied_byte_for_byte(kernel_copy: bool, tmp_path: Path, monkeypatch) -> None:
    """Where the kernel cannot copy (not Linux; another filesystem: EXDEV) a plain copy does."""
    if not kernel_copy:
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    p = tmp_path / "f.log"
    p.write_bytes(b"".join(b"line %d\n" % i for i in range(200_000)))
    ranges = list(duck.split(SourceFile(str(p), str(p)), 300_000))
    copies = [r.copy_to(str(tmp_path / f"r{i}")) for i, r in enumerate(ranges)]
    assert b"".join(Path(c.url).read_bytes() for c in copies) == p.read_bytes()
    assert all(c.name == str(p) for c in copies)


def test_input_bytes_of_small_and_plain_inputs(tmp_path: Path) -> None:
    """A tiny gzip file (larger compressed than not) counts by its own few bytes, not by a
    wrapped trailer; a plain file by its size."""
    tiny, plain = tmp_path / "tiny.gz", tmp_path / "plain.log"
    tiny.write_bytes(gzip.compress(b"{}\n"))
    plain.write_bytes(b"{}\n" * 100)
    assert staging.input_bytes(str(tiny)) == 3
    assert staging.input_bytes(str(plain)) == 300
    assert staging.input_bytes(str(tmp_path / "missing.gz")) == 0
