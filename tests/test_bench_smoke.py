"""The benchmark harness still runs end to end (no timing is asserted: benchmarks never gate CI).

`python -m bench --scale small --only cli` generates a small fleet, ingests it, times the CLI
against `python -c pass` and writes its result file; this checks the file's shape only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_cli_small_writes_result_file(tmp_path: Path) -> None:
    results = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--scale", "small", "--only", "cli",
         "--work-dir", str(tmp_path / "work"), "--results-dir", str(results)],
        cwd=REPO, capture_output=True, text=True, timeout=1800,  # a hang guard, not a timing
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "benchmark" in proc.stdout and "met?" in proc.stdout  # the table's header

    doc = json.loads((results / "cli-small.json").read_text())
    assert {"benchmark", "scale", "date", "command", "machine", "runs", "params", "rows"} <= set(doc)
    assert doc["benchmark"] == "cli" and doc["scale"] == "small" and doc["runs"] >= 3
    assert {"cpu_count", "cpu_model", "ram_bytes", "python", "duckdb"} <= set(doc["machine"])
    names = [r["name"] for r in doc["rows"]]
    assert names == ["`nodes --help` wall", "`nodes` 24h query, small store, wall",
                     "airflow modules imported by the CLI"]
    for row in doc["rows"]:
        assert {"ours", "unit", "baseline", "ratio", "target", "checks", "met", "samples"} <= set(row)
    help_row = doc["rows"][0]
    assert len(help_row["samples"]["ours_s"]) == doc["runs"]  # one sample per run, both sides
    assert len(help_row["samples"]["base_s"]) == doc["runs"]
    assert doc["rows"][2]["ours"] == 0, doc["rows"][2]["samples"]  # no Airflow on the CLI path
