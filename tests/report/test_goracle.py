"""The renderers against real Go (tests/goracle): %q, RFC 3339, encoding/json, ghodss/yaml and the
tabwriter table, on Hypothesis strings (all of Unicode, controls, UTF-8 cut mid-rune, long runs,
newlines) and hostile rows. Skips without Go or the Debian Go libraries (fails under CI)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.report import gounicode
from pipeline.report.gofmt import (
    go_bytes,
    go_bytes_each,
    go_json_dumps,
    go_quote,
    rfc3339,
    rfc3339nano,
)
from pipeline.report.goyaml import GoYAMLError
from pipeline.report.render import TEXT_COLUMNS, render_json, render_yaml, text_cells
from pipeline.report.rows import GO_ZERO_TIME_NS as GO_ZERO
from pipeline.report.table import TableWidthError, truncated_table
from tests.report.goracle import go_binary
from tests.report.test_render_differential import ODD, ROWS, TIME_NS, node_rows


def _load_generator():
    """scripts/gen_go_unicode.py as a module (scripts/ is not a package)."""
    path = Path(__file__).resolve().parents[2] / "scripts" / "gen_go_unicode.py"
    spec = importlib.util.spec_from_file_location("gen_go_unicode", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# GORACLE_EXAMPLES scales the runs for a soak (e.g. 10 for ten times as many examples)
_SCALE = float(os.environ.get("GORACLE_EXAMPLES", "1"))
MANY = settings(max_examples=int(1000 * _SCALE), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=int(300 * _SCALE), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

ANY_CHAR = st.characters(codec="utf-8")  # all of Unicode but lone surrogates (UTF-8 has none)
CONTROLS = st.characters(max_codepoint=0xA0) | st.sampled_from(
    "\u0085\u00ad\u061c\u180e\u200b\u200e\u2028\u2029\u2060\u2066\ufeff\ufff9\ufffe\uffff\U000e0001")
STRINGS = st.one_of(
    st.text(ANY_CHAR, max_size=60),
    st.text(CONTROLS | ANY_CHAR, max_size=30),
    st.lists(st.sampled_from(ODD) | st.text(ANY_CHAR, max_size=4), max_size=10).map("".join),
    st.builds(lambda c, n: c * n, st.text(ANY_CHAR, min_size=1, max_size=3), st.integers(1, 120)),
    st.text(" ab\n\t\r", max_size=200),
)


@st.composite
def cut_bytes(draw) -> bytes:
    """UTF-8 of a string cut at any byte (maybe mid-rune), maybe with tctl's "..." after the cut."""
    raw = draw(STRINGS).encode("utf-8", "surrogatepass")
    cut = draw(st.integers(0, len(raw)))
    return raw[:cut] + draw(st.sampled_from([b"", b"...", raw[cut + 1:]]))


@MANY
@given(b=cut_bytes())
def test_quote_matches_go(goracle, b):
    assert go_quote(b) == goracle.quote(b)


@MANY
@given(s=STRINGS)
def test_quote_of_text_matches_go(goracle, s):
    assert go_quote(s) == goracle.quote(go_bytes(s))


def test_printability_table_is_what_go_generates(goracle):
    """pipeline/report/gounicode.py is exactly this Go's strconv.IsPrint (regenerated here)."""
    generator = _load_generator()
    table = generator.go_print_table(go_binary())
    assert generator.render_module(table) == Path(gounicode.__file__).read_text()
    assert goracle.print_ranges()["ranges"] == table["ranges"]


@MANY
@given(ns=TIME_NS | st.just(0))
def test_times_match_go(goracle, ns):
    assert rfc3339(ns) == goracle.rfc3339(ns)
    assert rfc3339nano(ns) == goracle.rfc3339(ns, nano=True)


@MANY
@given(strings=st.lists(STRINGS | st.text(max_size=20), max_size=6))
def test_json_strings_match_go(goracle, strings):
    assert go_json_dumps(strings).encode() == goracle.json_strings(strings)


@SOME
@given(rows=ROWS)
def test_json_rows_match_go(goracle, rows):
    assert render_json(rows) == goracle.nodes("json", rows).out


def yaml_outcome(rows):
    """What the YAML writer prints (earlier documents) and whether it then fails."""
    try:
        return render_yaml(rows), False
    except GoYAMLError as err:
        return err.partial, True


@SOME
@given(rows=st.lists(node_rows(), min_size=1, max_size=6))
def test_yaml_rows_match_go(goracle, rows):
    go = goracle.nodes("yaml", rows)
    assert yaml_outcome(rows) == (go.out, bool(go.err))


# what yaml.v2 reads or writes specially: breaks (NEL raw in Go's JSON), separators, newline runs,
# document markers, spaces, quotes, indicators, refused characters, long words for folding
YAML_PIECES = ("\x85", "\u2028", "\u2029", "\n", "\n\n", "\r", " ", "  ", "\t", "---", "...", "'",
               '"', "#", ": ", "- ", "a", "xyz", "é", "😀", "\ufeff", "\x7f", "\x9f", "\ufffe",
               "word " * 20)
YAML_TEXT = st.lists(st.sampled_from(YAML_PIECES), min_size=1, max_size=8).map("".join)


@SOME
@given(values=st.lists(YAML_TEXT, min_size=1, max_size=4), cloud=st.sampled_from(["aws", "azure"]))
def test_yaml_hostile_values_match_go(goracle, values, cloud):
    from tests.report.conftest import make_row, make_run

    rows = [make_row(f"k-{i}", cloud=cloud, region=v, run=make_run(1, output=v, api_error=v[::-1]))
            for i, v in enumerate(values)]
    go = goracle.nodes("yaml", rows)
    assert yaml_outcome(rows) == (go.out, bool(go.err))


@SOME
@given(rows=st.lists(node_rows(), min_size=1, max_size=6))
def test_time_cell_is_go_rfc3339_of_the_last_time(goracle, rows):
    """tctl's Time: the run's time unless Go's zero time, else the expiry; blank only for zero."""
    for row in rows:
        at = row.run.time_ns if row.run is not None and row.run.time_ns != GO_ZERO else row.expiry_ns
        want = "" if at is None or at == GO_ZERO else goracle.rfc3339(at)
        assert text_cells(row)[4] == want


@SOME
@given(rows=st.lists(node_rows(), min_size=1, max_size=8),
       width=st.integers(11, 300) | st.integers(1, 30))
def test_text_table_matches_go(goracle, rows, width):
    columns = [c.encode() for c in TEXT_COLUMNS]
    cells = [go_bytes_each(text_cells(row)) for row in rows]
    go = goracle.table(columns, cells, b"Details", width)
    if go.panic:
        assert width <= 10
        with pytest.raises(TableWidthError):
            truncated_table(columns, cells, b"Details", width)
    else:
        assert truncated_table(columns, cells, b"Details", width) == go.out
