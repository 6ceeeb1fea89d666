"""The fast renderers against the frozen pre-optimisation ones (tests/report/reference/): same bytes,
or the same error, for hostile rows; and once for a real 105k-row fleet report when it is at hand."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import fields, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.report import render
from pipeline.report.rows import NodeRow, RunResult
from tests.report.reference import render as reference

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NS = 1_000_000_000
# Text that trips every escaper: YAML's indicators and resolvers, Go's %q and JSON escapes, tabwriter's
# cell/line/escape bytes, multi-byte and non-BMP runes, lone surrogates, YAML-refused characters.
ODD = ("\t", "\n", "\r", "\v", "\f", "\x00", "\x1b", "\x7f", "\x85", "\xa0", "\xff", "\u2028",
       "\ufeff", "\ufffe", "\ud800", "é", "日", "😀", " ", "  ", '"', "'", "\\", "#", ":", ": ", "-",
       "- ", "?", "|", ">", ",", "[", "{", "&", "*", "!", "%", "@", "`", "<", "...", "---", "~")
WORDS = ("", "i-0c0ffee0123456789", "us-east-1", "123456789012", "0x1F", "1e5", "1_000", "0b101",
         ".5", "1:20", "2026-05-04", "2026-05-04T10:00:00Z", "yes", "No", "null", "true", ".inf",
         "Brazil South", "rg-web", "ec2-ssm-script-failure", "azure-vm-not-running", "folding " * 12)
TEXT = st.one_of(
    st.sampled_from(WORDS),
    st.lists(st.one_of(st.sampled_from(ODD + WORDS), st.text(max_size=8)), max_size=12).map("".join),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.text(alphabet=" ab\n", max_size=400),  # long spaced lines: YAML folds them at width 80
)
TIME_NS = st.one_of(st.just(0), st.integers(-62_135_596_800 * NS, 253_402_300_799 * NS),
                    st.integers(1_700_000_000 * NS, 1_800_000_000 * NS))


@st.composite
def node_rows(draw) -> NodeRow:
    cloud = draw(st.sampled_from(["aws", "azure"]))
    run = draw(st.none() | st.builds(
        RunResult, time_ns=TIME_NS, exit_code=st.integers(-(2**63), 2**63 - 1) | st.sampled_from(
            [0, 1, -1, 150]), output=TEXT, api_error=TEXT, is_failure=st.booleans()))
    issue = draw(st.sampled_from(["", "ec2-ssm-script-failure", "azure-vm-not-running"]) | TEXT)
    return NodeRow(cloud=cloud, key=draw(TEXT), region=draw(TEXT), is_online=draw(st.booleans()),
                   expiry_ns=draw(st.none() | TIME_NS), run=run,
                   user_task_id=draw(TEXT) if issue else "", user_task_issue=issue,
                   instance_id=draw(TEXT), account_id=draw(TEXT), vm_id=draw(TEXT),
                   vm_name=draw(TEXT), resource_group=draw(TEXT), resource_id=draw(TEXT))


def scrubbed(row: NodeRow, chars: Iterable[str]) -> NodeRow:
    """`row` without `chars` in any text field: keeps hostile rows off an early error or a slow
    path (all of them, or all but one), so the fast paths see them too."""
    pattern = "|".join(map(re.escape, chars)) or "(?!)"

    def scrub(obj):
        return replace(obj, **{f.name: re.sub(pattern, "", v) for f in fields(obj)
                               if isinstance(v := getattr(obj, f.name), str)})
    row = scrub(row)
    return row if row.run is None else replace(row, run=scrub(row.run))


ROWS = st.lists(node_rows(), max_size=12)
# what tabwriter splits cells and lines on; what yaml.v2's reader refuses (tctl's YAML fails)
TABWRITER_BYTES = ("\t", "\n", "\v", "\f")
YAML_REFUSED = tuple(map(chr, [*range(0x7F, 0x85), *range(0x86, 0xA0), 0xFFFE, 0xFFFF]))


def outcome(render_fn, *args) -> bytes | tuple[str, str]:
    """The rendered bytes, or the error's class name and message (the two sides' classes differ)."""
    try:
        return render_fn(*args)
    except ValueError as err:  # TableWidthError, GoYAMLError: the user errors renderers raise
        return type(err).__name__, str(err)


@SETTINGS
@given(rows=ROWS, width=st.integers(20, 300) | st.integers(-5, 19),
       scrub=st.sets(st.sampled_from(TABWRITER_BYTES)))
def test_text_matches_reference(rows, width, scrub):
    rows = [scrubbed(row, scrub) for row in rows]
    assert outcome(render.render_text, rows, width) == outcome(reference.render_text, rows, width)


@pytest.mark.parametrize("fmt", ["json", "yaml", "csv", "markdown"])
@SETTINGS
@given(rows=ROWS, scrub=st.booleans())
def test_format_matches_reference(fmt, rows, scrub):
    rows = [scrubbed(row, YAML_REFUSED if scrub else ()) for row in rows]
    assert outcome(render.RENDERERS[fmt], rows) == outcome(reference.RENDERERS[fmt], rows)


FLEET_STORE = Path(os.environ.get("FLEET_STORE", "bench/.work/inputs/history-50M-365d-s7/store-v2"))


@pytest.mark.slow
@pytest.mark.skipif(not FLEET_STORE.exists(), reason=f"{FLEET_STORE} not built (bench/)")
def test_fleet_report_matches_reference():
    """The 24 h report of the 50M-event bench store (105,694 rows), every format, once."""
    from pipeline.query.views import connect
    from pipeline.report.nodes import nodes_report

    con = connect(str(FLEET_STORE))
    # the window ends after the last event, or at the node snapshot when that is later (a store
    # written by generate --store takes it at the fleet's end)
    hi = con.execute("SELECT greatest(epoch_ns(max(time)) + 1, epoch_ns(snapshot_at('nodes', "
                     "TIMESTAMP_NS '2262-01-01'))) FROM runs_on_days(DATE '2026-05-29', "
                     "DATE '2026-05-31')").fetchall()[0][0]
    rows = nodes_report(con, hi - 86_400 * NS, hi)
    assert len(rows) > 100_000
    for width in (80, 200):
        assert render.render_text(rows, width) == reference.render_text(rows, width), width
    for fmt in ("json", "yaml", "csv", "markdown"):
        assert render.RENDERERS[fmt](rows) == reference.RENDERERS[fmt](rows), fmt
