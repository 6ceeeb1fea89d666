"""Plain local files are read by DuckDB (`sources.duck`), everything else by Arrow: both paths must
store, skip and quarantine exactly the same lines, with the same line numbers and reasons.

Each case writes the same lines twice: as plain files (the DuckDB path) and gzip-compressed (the
Arrow path), ingests each into its own store and compares everything both stores hold."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from pipeline.ingest import staging
from pipeline.ingest.events import ingest_events
from pipeline.sources import duck
from pipeline.sources.files import SourceFile
from pipeline.store import Store
from tests.conftest import make_azure_run, make_run, query
from tests.ingest.test_events import make_join

RUN = json.dumps(make_run("i-0a", uid="u-1")).encode()
RUN_OTHER_CODE = json.dumps(make_run("i-0a", "TDS00W", uid="u-1", exit_code=1)).encode()
AZ = json.dumps(make_azure_run("vm-1", uid="u-2")).encode()
JOIN = json.dumps(make_join("host-1", uid="u-3")).encode()
NO_UID = json.dumps({k: v for k, v in make_run("i-0b").items() if k != "uid"}).encode()
EXTRA = json.dumps({**make_run("i-0c", uid="u-4"), "new_field": {"a": [1, 2]}}).encode()


def _fluentd(ev: dict, column: str = "2026-05-04T12:00:00+02:00") -> bytes:
    """Fluentd out_file's line of an event: time column, tag, the record without `time`."""
    record = {k: ev[k] for k in sorted(ev) if k != "time"}
    return f"{column}\ttest.log\t{json.dumps(record, separators=(',', ':'))}".encode()


FLUENT_RUN = _fluentd(make_run("i-0a", uid="u-1"))  # the file log's RUN again: a duplicate
FLUENT_AZ_NO_UID = _fluentd({k: v for k, v in make_azure_run("vm-9").items() if k != "uid"})
FLUENT_JOIN = _fluentd(make_join("host-9", uid="u-9"), "2026-05-04 08:00:00 +0000")


def _write(folder: Path, files: dict[str, list[bytes]], compress: bool) -> list[str]:
    folder.mkdir(parents=True)
    out = []
    for name, lines in files.items():
        data = b"".join(x + b"\n" for x in lines)
        p = folder / (name + (".gz" if compress else ""))
        p.write_bytes(gzip.compress(data) if compress else data)
        out.append(str(p))
    return out


def _everything(store: Store, names: dict[str, str]) -> dict:
    """What the store holds, with source paths replaced by the input's own names."""
    def src(s: str) -> str:
        return names[s]
    runs = query(store, "runs", "SELECT source, uid, code, time_text, extra, instance_key, "
                 "stdout FROM t ORDER BY ALL") if store.exists() else []
    joins = query(store, "joins", "SELECT source, uid, host_id FROM t ORDER BY ALL") if store.exists() else []
    quarantine = query(store, "quarantine", "SELECT source, line_no, reason, raw FROM t "
                       "ORDER BY ALL") if store.exists() else []
    return {
        "runs": sorted((src(r[0]), *r[1:]) for r in runs),
        "joins": sorted((src(r[0]), *r[1:]) for r in joins),
        "quarantine": sorted((src(r[0]), r[1], r[2], bytes(r[3])) for r in quarantine),
    }


def _both(tmp: Path, files: dict[str, list[bytes]]) -> tuple:
    results = []
    for compress in (False, True):
        paths = _write(tmp / f"in-{compress}", files, compress)
        store = Store(tmp / f"lake-{compress}")
        s = ingest_events(store, paths)
        names = {p: Path(p).name.removesuffix(".gz") for p in paths}
        counts = (s.read, s.stored, s.duplicates, s.skipped, s.quarantined, s.conflicts)
        results.append((counts, _everything(store, names)))
    return results[0], results[1]


CASES = {
    "clean": {"a.log": [RUN, AZ, JOIN]},
    "bad lines at many positions, three files": {
        "a.log": [b"{", RUN, b"", b"null", AZ, b"[1]", b"  "],
        "b.log": [b'{"event": "ssm.run"}', JOIN, b"\x00", EXTRA],
        "c.log": [b"not json", b'{"event":"x"}', b"{"],
    },
    "duplicates and a conflict across files": {
        "a.log": [RUN, AZ, RUN],
        "b.log": [RUN_OTHER_CODE, AZ, b"{"],
    },
    "derived uid": {"a.log": [NO_UID, NO_UID, RUN]},
    "unknown keys kept in extra": {"a.log": [EXTRA]},
    "no final newline, empty file": {"a.log": [RUN], "b.log": []},
    "fluentd out_file lines beside file-log lines": {
        "a.log": [RUN, AZ, JOIN],
        "fluentd.log": [FLUENT_RUN, FLUENT_AZ_NO_UID, b"2026-05-04T12:00:00+02:00\ttest.log\t{",
                        b"teleport.events\t" + FLUENT_RUN.split(b"\t")[2], FLUENT_JOIN],
    },
}


@pytest.mark.parametrize("files", CASES.values(), ids=CASES.keys())
def test_duckdb_and_arrow_paths_agree(files: dict, tmp_path: Path) -> None:
    plain, arrow = _both(tmp_path, files)
    assert plain == arrow
    assert plain[0][0] == sum(len(v) for v in files.values())  # every line read once


def test_conflicting_copy_is_quarantined_with_its_text_read_again(tmp_path: Path) -> None:
    """Pass 1 keeps no raw text for accepted lines on the DuckDB path: a uid conflict's text
    is read again from the file, so the quarantine still holds the exact line."""
    plain, _ = _both(tmp_path, CASES["duplicates and a conflict across files"])
    conflicts = [q for q in plain[1]["quarantine"] if q[2].startswith("uid ")]
    assert conflicts == [("b.log", 1, conflicts[0][2], RUN_OTHER_CODE)]


@pytest.mark.parametrize("content, plain", [
    (b'{"a": 1}\n{"b": 2}', 2),
    (b"", 0),
    (b"\n", 1),
    (b'{"a": 1}\r\n', None),  # a CR anywhere: the Arrow path
    (b'\xef\xbb\xbf{"a": 1}\n', None),  # byte-order mark
    (gzip.compress(b'{"a": 1}\n'), None),
], ids=["two lines", "empty", "one blank line", "crlf", "bom", "gzip"])
def test_which_files_duckdb_reads(content: bytes, plain: int | None, tmp_path: Path) -> None:
    p = tmp_path / "f.log"
    p.write_bytes(content)
    assert duck.plain_lines(SourceFile(str(p), str(p))) == plain


def test_a_file_duckdb_refuses_falls_back_alone(tmp_path: Path, monkeypatch) -> None:
    """Invalid UTF-8 makes DuckDB refuse the group: each file is then
    staged alone, and only the refused one takes the Arrow path."""
    arrow_read: list[str] = []
    real = staging.stage_arrow

    def spy(con, out, files, *args, **kw):
        arrow_read.extend(Path(f.name).name for f in files)
        return real(con, out, files, *args, **kw)

    monkeypatch.setattr(staging, "stage_arrow", spy)
    files = {"a.log": [RUN], "b.log": [b"\xff\xfe", AZ], "c.log": [JOIN]}
    plain, arrow = _both(tmp_path, files)
    assert plain == arrow
    assert plain[0][:5] == (4, 3, 0, 0, 1)
    assert arrow_read == ["b.log", "a.log.gz", "b.log.gz", "c.log.gz"]


def test_line_numbers_follow_positions_across_a_large_group(tmp_path: Path, monkeypatch) -> None:
    """Many files in one statement, several DuckDB threads: line numbers stay exact."""
    monkeypatch.setattr(staging, "GROUP_BYTES", 1 << 40)
    files = {f"f{i:02}.log": [b"{"] * (i % 3) + [json.dumps(make_run(f"i-{i}-{n}")).encode()
                                                    for n in range(500)] + [b"bad"]
             for i in range(12)}
    plain, arrow = _both(tmp_path, files)
    assert plain == arrow
    assert len(plain[1]["quarantine"]) == sum(i % 3 + 1 for i in range(12))


line_strategy = st.one_of(
    st.sampled_from([RUN, RUN_OTHER_CODE, AZ, JOIN, NO_UID, EXTRA, b"", b" ", b"{", b"null",
                     b"\x00", b"\xff", b"x\x01", b"\t{}", b'{"event": "ssm.run"}']),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")),
)


@settings(max_examples=int(os.environ.get("DISCOVERY_HISTORY_FUZZ_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(line_strategy, max_size=8), min_size=1, max_size=3))
@example([[b"\r"]])
@example([[RUN, b"\r", AZ], [JOIN]])
@example([[b"x\x01"]])  # DuckDB took a trailing delimiter for an empty second column
def test_paths_agree_on_fuzzed_files(tmp_path_factory, contents: list[list[bytes]]) -> None:
    # a plain file that starts like gzip is read as gzip by design (not a path difference)
    assume(not any(lines and lines[0].startswith(b"\x1f\x8b") for lines in contents))
    tmp = tmp_path_factory.mktemp("fuzz")
    plain, arrow = _both(tmp, {f"f{i}.log": lines for i, lines in enumerate(contents)})
    assert plain == arrow
