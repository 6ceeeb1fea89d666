"""What a query command pays for before it answers (issue 18.2): the `nodes` process imports
neither the ingest (pydantic, the staging engine) nor PyYAML unless asked for YAML, and opening a
store binds one footer per dataset, not one per file of the history."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from tests.cli.conftest import DEMO_END

# run the console script's entry point in a process of its own and list what it imported
PROBE = """
import json, sys
from pipeline.cli.main import main
try:
    main(sys.argv[1:], standalone_mode=True)
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def imported(args: list[str]) -> tuple[int, set[str]]:
    p = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                       timeout=600)
    out = json.loads(p.stderr.strip().splitlines()[-1])
    return out["code"], set(out["modules"])


@pytest.mark.parametrize("window", [
    ["--last", "24h", "--to", "2026-05-31"],
    ["--from", "2026-05-30T00:00:00Z", "--to", "2026-05-31T00:00:00.5+00:00"],
], ids=["last", "rfc3339"])
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_nodes_imports_no_ingest_pydantic_or_yaml(demo_store: Path, window, fmt) -> None:
    code, modules = imported(["--store", str(demo_store), "nodes", *window, "--failures-only",
                              "--format", fmt])
    assert code in (0, None)
    roots = {m.split(".")[0] for m in modules}
    assert not roots & {"pydantic", "yaml", "airflow"}, sorted(roots & {"pydantic", "yaml"})
    assert not [m for m in modules if m.startswith("pipeline.ingest.")
                and m != "pipeline.ingest.errors"]
    assert "pipeline.models" not in modules


def test_yaml_still_renders_with_its_library(demo_store: Path) -> None:
    code, modules = imported(["--store", str(demo_store), "nodes", "--last", "24h", "--to",
                              "2026-05-31", "--failures-only", "--format", "yaml"])
    assert code in (0, None)
    assert "yaml" in modules


def _damage_a_day(store: Path, day: str) -> Path:
    """Overwrite the runs files of `day` with bytes that are no Parquet file."""
    files = sorted((store / "runs").glob(f"cloud=*/event_date={day}/*.parquet"))
    assert files
    for f in files:
        f.write_bytes(b"not parquet" * 100)
    return files[0]


def test_a_damaged_file_of_another_day_does_not_stop_the_report(demo_store: Path,
                                                                 tmp_path: Path) -> None:
    """Opening the store binds the runs view from one footer: before, it read every runs
    file's footer (a year: ~730 of them, 0.17 s), so one damaged file of any day failed every
    command; now a report of other days answers and `verify` names the damaged file."""
    from pipeline.query.views import connect
    from pipeline.report.nodes import nodes_frame

    store = tmp_path / "lake"
    shutil.copytree(demo_store, store)
    _damage_a_day(store, (DEMO_END - timedelta(days=6)).date().isoformat())
    with connect(store) as con:
        frame = nodes_frame(con, DEMO_END - timedelta(days=1), DEMO_END)
        assert frame.num_rows > 0
        # the damaged day itself is an error naming the file, not a silent gap
        with pytest.raises(Exception, match="parquet|Parquet|magic"):
            con.execute("SELECT count(*) FROM runs").fetchall()
    p = subprocess.run([str(Path(sys.executable).with_name("discovery-history")), "--store",
                        str(store), "verify"], capture_output=True, text=True, timeout=600)
    assert p.returncode != 0
    assert "event_date=" in p.stdout + p.stderr


def test_a_connection_through_one_relation_defines_what_it_needs(demo_store: Path) -> None:
    """`nodes` defines the relations up to discovery_nodes (its inputs load before it), not the
    analytics after it; the report is the same as on a connection with everything."""
    from pipeline.query.views import connect
    from pipeline.report.nodes import nodes_frame

    with connect(demo_store, through="discovery_nodes") as con, connect(demo_store) as full:
        macros = {r[0] for r in con.execute(
            "SELECT function_name FROM duckdb_functions() WHERE function_type = 'table_macro'"
        ).fetchall()}
        assert {"discovery_nodes", "latest_runs", "registered_nodes"} <= macros
        assert "run_attempts" not in macros
        window = (DEMO_END - timedelta(days=1), DEMO_END)
        assert nodes_frame(con, *window).equals(nodes_frame(full, *window))
    with pytest.raises(ValueError, match="no sql/ file defines 'nodes'"):
        connect(demo_store, through="nodes")
