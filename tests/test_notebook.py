"""notebooks/analyst.py runs end to end (marimo, as a CI step would) against a demo-like store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.publish.test_history_report import demo_store

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "analyst.py"
SECTIONS = ("1. How much was attempted", "2. Is it getting better?",
            "3. Which failure reasons dominate", "4. Which instances failed",
            "5. Overlapping matchers", "6. How long does enrolment take",
            "7. What changed since the previous period", "8. The timeline of the most-failing",
            "tctl discovery nodes --failures-only")


def test_analyst_notebook_runs_end_to_end(tmp_path):
    store = demo_store(tmp_path, days=10, aws=150, azure=50)
    notebook = tmp_path / NOTEBOOK.name  # a copy: marimo caches the session next to the file
    shutil.copyfile(NOTEBOOK, notebook)
    out = tmp_path / "analyst.html"
    env = {**os.environ, "MARIMO_SKIP_UPDATE_CHECK": "1", "DISCOVERY_HISTORY_STORE": "unused"}
    p = subprocess.run(
        [sys.executable, "-m", "marimo", "export", "html", "--no-include-code", str(notebook),
         "-o", str(out), "-f", "--", "--store", str(store.root), "--days", "7"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )
    assert p.returncode == 0, p.stdout + p.stderr  # marimo exits 1 when any cell raised
    page = out.read_text()  # outputs only: what the cells displayed
    for section in SECTIONS:
        assert section in page, section
    assert page.count("data:image/png") >= 5  # trend, reasons, retries, duplicates, enrolment
    assert "2026-05-24 00:00" in page and "2026-05-31 00:00" in page  # the last 7 stored days
    assert "i-" in page and "SSM agent lost" in page
