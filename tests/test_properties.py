"""Properties of ingest + report: order and duplicates do not matter; ingests compose."""

from __future__ import annotations

import random
import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.ingest.events import ingest_events
from pipeline.query.views import connect
from pipeline.report.nodes import nodes_report
from pipeline.store import Store
from tests.conftest import T0, make_azure_run, make_run, write_lines

FROM, TO = T0 - timedelta(hours=3), T0 + timedelta(hours=3)


@st.composite
def event_sets(draw):
    n = draw(st.integers(min_value=1, max_value=25))
    events = []
    for i in range(n):
        minute = draw(st.integers(min_value=-200, max_value=200))  # some fall outside the window
        failed = draw(st.booleans())
        at = T0 + timedelta(minutes=minute)
        if draw(st.booleans()):
            key = draw(st.sampled_from(["i-1", "i-2", "i-3", ""]))
            events.append(make_run(key, "TDS00W" if failed else "TDS00I", at, exit_code=int(failed),
                                   uid=f"aws-{i}", region=draw(st.sampled_from(["us-east-1", "eu-west-1"]))))
        else:
            key = draw(st.sampled_from(["aaaa", "AAAA", "bbbb"]))
            events.append(make_azure_run(key, "TAZ00W" if failed else "TAZ00I", at, uid=f"az-{i}"))
    return events


def run_report(batches: list[list[dict]]) -> tuple[list, set]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "lake")
        for i, batch in enumerate(batches):
            ingest_events(store, [str(write_lines(Path(tmp) / f"in-{i}.log", batch))])
        with connect(store) as con:
            rows = nodes_report(con, FROM, TO)
            uids = {u for (u,) in con.execute("SELECT uid FROM runs").fetchall()}
    return rows, uids


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(event_sets(), st.randoms(use_true_random=False))
def test_report_is_invariant_under_shuffling_and_duplication(events, rnd: random.Random):
    expected, uids = run_report([events])
    noisy = events + rnd.sample(events, k=len(events) // 2)  # re-delivered duplicates
    rnd.shuffle(noisy)
    got, got_uids = run_report([noisy])
    assert got == expected and got_uids == uids


@SETTINGS
@given(event_sets(), st.integers(min_value=-200, max_value=200))
def test_a_window_split_in_two_ingests_equals_one_ingest(events, cut_minute):
    cut = T0 + timedelta(minutes=cut_minute)
    first = [e for e in events if e["time"] < cut.strftime("%Y-%m-%dT%H:%M:%S")]
    second = [e for e in events if e not in first]
    assert run_report([first, second]) == run_report([events])
