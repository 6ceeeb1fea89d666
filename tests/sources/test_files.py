"""JSON-lines and Athena sources over real files: expansion, line splitting, gzip, errors."""

from __future__ import annotations

import gzip
import json
import os
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.sources import LINE_SCHEMA, SourceError
from pipeline.sources.files import (
    SourceFile,
    expand,
    read_athena,
    read_batches,
    read_lines,
)
from tests.conftest import make_azure_run, make_run

# --------------------------------------------------------------------------- helpers


def src(path: Path) -> SourceFile:
    return SourceFile(name=str(path), url=str(path))


def lines_of(path: Path, block_size: int | None = None) -> list[tuple[int, bytes, str | None]]:
    """(line_no, line, error) of every item read_lines yields, checking the batch schema."""
    kwargs = {} if block_size is None else {"block_size": block_size}
    out = []
    for batch in read_lines(src(path), **kwargs):
        assert batch.schema == LINE_SCHEMA
        for row in batch.to_pylist():
            assert row["source"] == str(path)
            out.append((row["line_no"], row["line"], row["error"]))
    return out


def athena_rows(path: Path) -> list[dict]:
    out = []
    for batch in read_athena(src(path), batch_rows=2):
        assert batch.schema == LINE_SCHEMA
        out.extend(batch.to_pylist())
    return out


def rel(files: list[SourceFile], root: Path) -> list[str]:
    return [os.path.relpath(f.name, root) for f in files]


def teleport_file_log(root: Path) -> Path:
    """Two auth servers' folders of daily files, each with `events.log` → today's file."""
    log = root / "log"
    for server in ("auth-a", "auth-b"):
        d = log / server
        d.mkdir(parents=True)
        for day in ("2026-05-03", "2026-05-04"):
            (d / f"{day}.00:00:00.log").write_text(json.dumps(make_run("i-1")) + "\n")
        os.symlink(d / "2026-05-04.00:00:00.log", d / "events.log")
    return log


DAILY = [
    "auth-a/2026-05-03.00:00:00.log",
    "auth-a/2026-05-04.00:00:00.log",
    "auth-b/2026-05-03.00:00:00.log",
    "auth-b/2026-05-04.00:00:00.log",
]


# --------------------------------------------------------------------------- expand


def test_expand_teleport_file_log_reads_each_file_once(tmp_path: Path) -> None:
    log = teleport_file_log(tmp_path)
    files = expand([str(log)])
    assert rel(files, log) == DAILY  # events.log is the same file as the newest day: not twice
    assert [f.day() for f in files] == [date(2026, 5, 3), date(2026, 5, 4)] * 2
    assert len({os.path.realpath(f.url) for f in files}) == 4


@pytest.mark.parametrize(
    ("patterns", "want"),
    [
        pytest.param(["log"], DAILY, id="folder"),
        pytest.param(["log", "log"], DAILY, id="folder-twice"),
        pytest.param(["log/auth-a", "log/auth-b"], DAILY, id="each-server-folder"),
        pytest.param(["log/*/2026-05-04.*.log"], [DAILY[1], DAILY[3]], id="glob-one-day"),
        pytest.param(["log/auth-*"], DAILY, id="glob-of-folders"),
        pytest.param(["log/**/*.log"], DAILY, id="recursive-glob"),
        pytest.param(["log/auth-a/events.log"], ["auth-a/events.log"], id="symlink-alone-is-read"),
        pytest.param(
            ["log/auth-a/events.log", "log/auth-a"],
            ["auth-a/2026-05-03.00:00:00.log", "auth-a/events.log"],
            id="symlink-then-its-target-once",
        ),
    ],
)
def test_expand_paths_and_globs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, patterns: list[str], want: list[str]
) -> None:
    log = teleport_file_log(tmp_path)
    monkeypatch.chdir(tmp_path)
    files = expand(patterns)
    assert rel(files, log) == want


def test_expand_file_url_prefix(tmp_path: Path) -> None:
    log = teleport_file_log(tmp_path)
    assert rel(expand([f"file://{log}"]), log) == DAILY


@pytest.mark.parametrize(
    ("name", "picked"),
    [
        pytest.param("a.json", True, id="json"),
        pytest.param("a.jsonl", True, id="jsonl"),
        pytest.param("a.ndjson", True, id="ndjson"),
        pytest.param("a.log", True, id="log"),
        pytest.param("a.jsonl.gz", True, id="jsonl-gz"),
        pytest.param("a.log.gz", True, id="log-gz"),
        pytest.param("2026-05-04.00:00:00.log.gz", True, id="rotated-day-gz"),
        pytest.param("a.parquet", True, id="athena-parquet"),
        pytest.param("notes.txt", False, id="txt"),
        pytest.param("data.csv", False, id="csv"),
        pytest.param("README", False, id="no-suffix"),
        pytest.param("a.json.bak", False, id="backup"),
        pytest.param("session.tar", False, id="session-recording"),
        pytest.param("a.txt.gz", True, id="any-gz"),  # exporters name gzip objects freely
    ],
)
def test_expand_folder_picks_event_files(tmp_path: Path, name: str, picked: bool) -> None:
    d = tmp_path / "export" / "sub"
    d.mkdir(parents=True)
    (d / name).write_bytes(b"{}\n")
    (d / "always.jsonl").write_bytes(b"{}\n")
    got = rel(expand([str(tmp_path / "export")]), tmp_path / "export")
    assert got == sorted(["sub/always.jsonl"] + (["sub/" + name] if picked else []))


def test_expand_folder_picks_fluentd_s3_gz_objects(tmp_path: Path) -> None:
    d = tmp_path / "bucket" / "teleport"
    d.mkdir(parents=True)
    (d / "20260504-10_0.gz").write_bytes(
        gzip.compress(json.dumps(make_run("i-1")).encode() + b"\n")
    )
    assert rel(expand([str(tmp_path / "bucket")]), tmp_path / "bucket") == [
        "teleport/20260504-10_0.gz"
    ]


def test_expand_explicit_file_with_any_name_is_read(tmp_path: Path) -> None:
    f = tmp_path / "dump.txt"
    f.write_text("{}\n")
    assert [x.name for x in expand([str(f)])] == [str(f)]


def test_expand_order_is_stable_by_name(tmp_path: Path) -> None:
    for name in ("b.log", "a.log", "c/a.log"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}\n")
    one = expand([str(tmp_path / "c"), str(tmp_path / "b.log"), str(tmp_path / "a.log")])
    two = expand([str(tmp_path)])
    assert rel(one, tmp_path) == rel(two, tmp_path) == ["a.log", "b.log", "c/a.log"]


@pytest.mark.parametrize(
    "missing",
    [
        pytest.param("nope", id="missing-file"),
        pytest.param("nope/", id="missing-folder"),
        pytest.param("log/*/2099-*.log", id="glob-matching-nothing"),
    ],
)
def test_expand_missing_path_names_it(tmp_path: Path, missing: str) -> None:
    teleport_file_log(tmp_path)
    bad = str(tmp_path / missing)
    with pytest.raises(SourceError) as e:
        expand([str(tmp_path / "log"), bad])
    assert bad in str(e.value)


def test_expand_empty_folder_gives_no_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert expand([str(tmp_path / "empty")]) == []


# --------------------------------------------------------------------------- read_lines

LINES = [b'{"n":%d,"pad":"%s"}' % (i, b"x" * (i * 7 % 23)) for i in range(1, 40)]


@pytest.mark.parametrize("block_size", [1, 2, 7, 13, 64, 1 << 20], ids=lambda b: f"block-{b}")
def test_read_lines_numbers_lines_across_blocks(tmp_path: Path, block_size: int) -> None:
    f = tmp_path / "a.log"
    f.write_bytes(b"\n".join(LINES) + b"\n")
    got = lines_of(f, block_size)
    assert got == [(i, line, None) for i, line in enumerate(LINES, start=1)]


@pytest.mark.parametrize(
    ("data", "want"),
    [
        pytest.param(b"", [], id="empty-file"),
        pytest.param(b"a\nb\n", [b"a", b"b"], id="trailing-newline"),
        pytest.param(b"a\nb", [b"a", b"b"], id="no-trailing-newline"),
        pytest.param(b"x", [b"x"], id="one-byte-no-newline"),
        pytest.param(b"\n", [b""], id="only-newline"),
        pytest.param(b"a\n\n\nb\n", [b"a", b"", b"", b"b"], id="blank-lines-keep-numbers"),
        pytest.param(b"a\r\nb\r\n", [b"a\r", b"b\r"], id="crlf-cr-kept-for-parser"),
        pytest.param(b"a\r\n\r\nb", [b"a\r", b"\r", b"b"], id="crlf-blank-and-no-newline"),
        pytest.param(b"\xff\xfe{\n", [b"\xff\xfe{"], id="invalid-utf8-kept-as-bytes"),
        pytest.param(b"\x1f\n", [b"\x1f"], id="half-gzip-magic-is-text"),
    ],
)
@pytest.mark.parametrize("block_size", [1, 3, 1 << 20], ids=lambda b: f"block-{b}")
def test_read_lines_edges(tmp_path: Path, data: bytes, want: list[bytes], block_size: int) -> None:
    f = tmp_path / "a.log"
    f.write_bytes(data)
    assert lines_of(f, block_size) == [(i, w, None) for i, w in enumerate(want, start=1)]


def _gz_members(*parts: bytes) -> bytes:
    return b"".join(gzip.compress(p) for p in parts)


@pytest.mark.parametrize(
    ("name", "blob", "want"),
    [
        pytest.param("a.jsonl.gz", gzip.compress(b"a\nb\n"), [b"a", b"b"], id="single-member"),
        pytest.param(
            "a.jsonl.gz",
            _gz_members(b"a\nb\n", b"c\n", b"d\ne\n"),
            [b"a", b"b", b"c", b"d", b"e"],
            id="multi-member",
        ),
        pytest.param(
            "a.jsonl.gz",
            _gz_members(b"a\nb", b"c\n"),
            [b"a", b"bc"],
            id="multi-member-joined-like-zcat",
        ),
        pytest.param(
            "a.jsonl.gz",
            _gz_members(b"a\n", b"", b"b\n"),
            [b"a", b"b"],
            id="empty-member-inside",
        ),
        pytest.param("a.jsonl.gz", gzip.compress(b""), [], id="empty-stream"),
        pytest.param("a.gz", gzip.compress(b"a\r\nb"), [b"a\r", b"b"], id="crlf-no-newline"),
        pytest.param(
            "plain.log", gzip.compress(b"a\nb\n"), [b"a", b"b"], id="magic-without-gz-name"
        ),
        pytest.param(
            "2026-05-04.00:00:00.log",
            _gz_members(b"a\n", b"b\n"),
            [b"a", b"b"],
            id="magic-in-day-file",
        ),
        pytest.param("plain.log.gz", b"a\nb\n", [b"a", b"b"], id="gz-name-but-plain-text"),
    ],
)
@pytest.mark.parametrize("block_size", [1, 7, 1 << 20], ids=lambda b: f"block-{b}")
def test_read_lines_gzip(
    tmp_path: Path, name: str, blob: bytes, want: list[bytes], block_size: int
) -> None:
    f = tmp_path / name
    f.write_bytes(blob)
    assert lines_of(f, block_size) == [(i, w, None) for i, w in enumerate(want, start=1)]


def test_read_lines_gzip_many_lines_small_blocks(tmp_path: Path) -> None:
    f = tmp_path / "big.jsonl.gz"
    events = [json.dumps(make_run(f"i-{i:04d}")).encode() for i in range(500)]
    f.write_bytes(_gz_members(b"\n".join(events[:250]) + b"\n", b"\n".join(events[250:]) + b"\n"))
    got = lines_of(f, 7)
    assert [n for n, _, _ in got] == list(range(1, 501))
    assert [line for _, line, _ in got] == events


@pytest.mark.parametrize("block_size", [7, 1 << 20], ids=lambda b: f"block-{b}")
@pytest.mark.parametrize("name", ["cut.jsonl.gz", "cut.log"], ids=["gz-name", "magic-only"])
def test_read_lines_truncated_gzip(tmp_path: Path, block_size: int, name: str) -> None:
    events = [
        json.dumps(make_azure_run(f"vm-{i:03d}", stdout="y" * (i % 50))).encode()
        for i in range(300)
    ]
    blob = gzip.compress(b"\n".join(events) + b"\n")
    f = tmp_path / name
    f.write_bytes(blob[: len(blob) * 2 // 3])
    got = lines_of(f, block_size)
    *complete, last = got
    assert complete, "complete lines before the cut are delivered"
    assert [(n, line, err) for n, line, err in complete] == [
        (i, events[i - 1], None) for i in range(1, len(complete) + 1)
    ]
    n, partial, err = last
    assert n == len(complete) + 1  # the error item sits on the partial line's number
    assert err is not None and "truncated or corrupt gzip" in err
    assert events[n - 1].startswith(partial) and partial != events[n - 1]


def test_read_lines_gzip_cut_inside_header(tmp_path: Path) -> None:
    f = tmp_path / "cut.gz"
    f.write_bytes(gzip.compress(b"a\nb\n")[:5])
    [(n, line, err)] = lines_of(f)
    assert (n, line) == (1, b"")
    assert "truncated or corrupt gzip" in err


def test_read_lines_gzip_corrupt_tail_keeps_complete_member(tmp_path: Path) -> None:
    f = tmp_path / "tail.jsonl.gz"
    f.write_bytes(gzip.compress(b"abc\ndef\n") + b"garbage!")
    got = lines_of(f)
    assert got[:2] == [(1, b"abc", None), (2, b"def", None)]
    assert len(got) == 3 and got[2][0] == 3 and "corrupt" in got[2][2]


def test_read_lines_directory_is_an_error_item(tmp_path: Path) -> None:
    d = tmp_path / "folder.log"
    d.mkdir()
    [(n, line, err)] = lines_of(d)
    assert (n, line) == (1, b"")
    assert err.startswith("unreadable")


@pytest.mark.parametrize("suffix", [".log", ".parquet"])
def test_unreadable_file_is_an_error_item(tmp_path: Path, suffix: str) -> None:
    f = tmp_path / f"secret{suffix}"
    f.write_bytes(b"{}\n")
    f.chmod(0)
    try:
        if os.access(f, os.R_OK):
            pytest.skip("running as a user that can read mode-000 files (root)")
        rows = [r for b in read_batches(src(f)) for r in b.to_pylist()]
    finally:
        f.chmod(0o600)
    assert len(rows) == 1
    assert rows[0]["line_no"] == 1 and rows[0]["line"] == b""
    assert rows[0]["error"].startswith("unreadable")
    assert "ermission" in rows[0]["error"]


# --------------------------------------------------------------------------- read_athena


def write_athena(path: Path, events: list[dict], *, with_event_data: bool = True) -> Path:
    """A Parquet file as Teleport's Athena backend writes it (Snappy, ms timestamps)."""
    cols: dict[str, pa.Array] = {
        "uid": pa.array([e["uid"] for e in events], pa.string()),
        "session_id": pa.array([""] * len(events), pa.string()),
        "event_type": pa.array([e["event"] for e in events], pa.string()),
        "event_time": pa.array([1777888800000 + i for i in range(len(events))], pa.timestamp("ms")),
        "user": pa.array([""] * len(events), pa.string()),
    }
    if with_event_data:
        cols["event_data"] = pa.array([json.dumps(e) for e in events], pa.string())
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), path, compression="snappy")
    return path


@pytest.mark.parametrize("n", [0, 1, 2, 5], ids=lambda n: f"{n}-rows")
def test_read_athena_event_data_lines(tmp_path: Path, n: int) -> None:
    events = [make_run(f"i-{i}") for i in range(n)]
    f = write_athena(
        tmp_path / "2026-05-04" / "0196a0b0-0000-7000-8000-000000000001.parquet", events
    )
    rows = athena_rows(f)
    assert [r["line_no"] for r in rows] == list(range(1, n + 1))
    assert [json.loads(r["line"]) for r in rows] == events
    assert all(r["error"] is None and r["source"] == str(f) for r in rows)


def test_read_batches_dispatches_parquet_to_athena(tmp_path: Path) -> None:
    ev = make_azure_run("vm-1")
    f = write_athena(tmp_path / "x.parquet", [ev])
    [row] = [r for b in read_batches(src(f)) for r in b.to_pylist()]
    assert json.loads(row["line"]) == ev


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(
            lambda p: write_athena(p, [make_run("i-1")], with_event_data=False),
            "no event_data column",
            id="no-event-data",
        ),
        pytest.param(
            lambda p: p.write_bytes(b"not parquet at all"), "unreadable Parquet", id="garbage"
        ),
        pytest.param(lambda p: p.write_bytes(b""), "unreadable Parquet", id="empty-file"),
    ],
)
def test_read_athena_bad_file_is_one_error_item(tmp_path: Path, make, reason: str) -> None:
    f = tmp_path / "bad.parquet"
    make(f)
    rows = athena_rows(f)
    assert len(rows) == 1
    assert rows[0]["source"] == str(f) and rows[0]["line_no"] == 1 and rows[0]["line"] == b""
    assert reason in rows[0]["error"]
