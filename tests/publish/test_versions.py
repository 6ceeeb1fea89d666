"""Where a built report lands (pipeline.publish.versions): a mailed folder never changes, a
different rebuild is the next version, an identical one changes nothing, an unmailed version is
replaced, `latest` only moves forward, and no staging folder is left behind."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.publish.versions import publish_report, versions

END = datetime(2026, 5, 5, tzinfo=UTC)
DAY = timedelta(days=1)


def builder(text: str):
    def build(folder: Path) -> dict:
        folder.mkdir(parents=True)
        (folder / "index.html").write_text(text)
        (folder / "failures.csv").write_text(f"InstanceKey\n{text}\n")
        return {"failures": 1}
    return build


def publish(root: Path, text: str, *, label: str = "2026-05-04", end: datetime = END,
            mail: bool = True, corrections: str = "mail") -> dict:
    return publish_report(root, label=label, start=end - DAY, end=end, mail=mail,
                          build=builder(text), corrections=corrections)


def mailed(folder: Path) -> None:
    (folder / "sent.json").write_text("{}")  # what pipeline.publish.mail leaves after a send


def test_versions_of_a_mailed_report(tmp_path):
    first = publish(tmp_path, "a")
    assert (first["action"], first["version"], first["mail"]) == ("built", 1, True)
    again = publish(tmp_path, "b")  # not mailed yet: replaced in place
    assert (again["action"], again["dir"]) == ("replaced", first["dir"])
    assert (tmp_path / "2026-05-04" / "index.html").read_text() == "b"

    mailed(tmp_path / "2026-05-04")
    same = publish(tmp_path, "b")
    assert (same["action"], same["mail"], same["dir"]) == ("unchanged", False, first["dir"])

    changed = publish(tmp_path, "c")
    assert (changed["action"], changed["version"], changed["correction"], changed["mail"]) == (
        "corrected", 2, True, True)
    assert (tmp_path / "2026-05-04" / "index.html").read_text() == "b"  # what was mailed
    assert (tmp_path / "2026-05-04.v2" / "index.html").read_text() == "c"
    assert json.loads((tmp_path / "2026-05-04.v2" / "report.json").read_text())["version"] == 2

    replaced = publish(tmp_path, "d")  # v2 was not mailed (yet): replaced, still v2
    assert (replaced["action"], replaced["version"]) == ("replaced", 2)
    mailed(tmp_path / "2026-05-04.v2")
    kept = publish(tmp_path, "e", corrections="keep")
    assert (kept["action"], kept["version"], kept["mail"]) == ("corrected", 3, False)
    assert [n for n, _ in versions(tmp_path, "2026-05-04")] == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "2026-05-04", "2026-05-04.v2", "2026-05-04.v3"]


def test_latest_only_moves_forward(tmp_path):
    out = publish(tmp_path, "new", label="latest", end=END, mail=False)
    assert out["action"] == "built" and not out["mail"]
    older = publish(tmp_path, "old", label="latest", end=END - 5 * timedelta(hours=1), mail=False)
    assert older["action"] == "stale" and "only moves forward" in older["reason"]
    assert (tmp_path / "latest" / "index.html").read_text() == "new"
    same_end = publish(tmp_path, "filled", label="latest", end=END, mail=False)
    assert same_end["action"] == "replaced"  # a backfill filled a hole: same end, new data
    publish(tmp_path, "newer", label="latest", end=END + timedelta(hours=1), mail=False)
    assert (tmp_path / "latest" / "index.html").read_text() == "newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    def broken(folder: Path) -> dict:
        folder.mkdir(parents=True)
        (folder / "index.html").write_text("half")
        raise RuntimeError("the store went away")

    publish(tmp_path, "a")
    with pytest.raises(RuntimeError, match="went away"):
        publish_report(tmp_path, label="2026-05-04", start=END - DAY, end=END, mail=True,
                       build=broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026-05-04"]
    assert (tmp_path / "2026-05-04" / "index.html").read_text() == "a"
    with pytest.raises(ValueError, match="corrections"):
        publish(tmp_path, "a", corrections="sometimes")
