"""A small demo store shared by the `sql` and `metrics` tests: the generator's fleet (7 days, 60
EC2 instances, 20 Azure VMs, ending 2026-05-31) plus one more ingest from an exporter's folder
(a failed run and a line that is not JSON), so the last ingest quarantined a line and the store
has two sources."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import make_run, write_lines

DEMO_END = datetime(2026, 5, 31, tzinfo=UTC)
EXPORTER_RUN_AT = datetime(2026, 5, 30, 23, 30, tzinfo=UTC)


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory) -> Path:
    """The demo store's root (read-only for tests: copy it to change it)."""
    from pipeline.gen.tostore import generate_fleet_store
    from pipeline.ingest.events import ingest_events
    from pipeline.store import Store

    root = tmp_path_factory.mktemp("demo") / "lake"
    generate_fleet_store(root, days=7, end=DEMO_END, aws_instances=60, azure_vms=20)
    exporter = write_lines(root.parent / "exporter" / "events.jsonl", [
        make_run("i-0e0e0e0e0e0e0e0e0", "TDS00W", EXPORTER_RUN_AT, exit_code=104,
                 account="999999999999", region="sa-east-1"),
        "this line is not JSON",
    ])
    summary = ingest_events(Store(root), [str(exporter)])
    assert (summary.stored, summary.quarantined) == (1, 1)
    return root
