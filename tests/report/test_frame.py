"""The report as Arrow columns: each column-wise twin gives, value for value, what its per-row
function in `rows` / `gofmt` gives (the renderers' differential tests cover whole tables), and
a frame holds its NodeRows unchanged."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.report import cells, frame, gofmt
from pipeline.report.rows import GO_SPACE, GO_ZERO_TIME_NS, NodeRow, combine_output, trim_escape

from .test_render_differential import node_rows

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NS = 1_000_000_000
# text an Arrow string can hold (no lone surrogate), weighted to what outputs look like: the
# column-wise fast paths (printable ASCII and \n \t \r) beside the per-value fallbacks
OUTPUT = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200),
    st.text(alphabet=st.sampled_from("ab <>&\"\\'\n\t\r\v:é日" + GO_SPACE), max_size=180),
    st.lists(st.sampled_from(["Installing teleport", "ERROR: node did not become ready\n",
                              " ", "\t", "x" * 60, "curl: (6) Could not resolve host"]),
             max_size=6).map("".join))
VALUES = st.lists(OUTPUT, max_size=30)


@SETTINGS
@given(values=VALUES)
def test_trim_escape_is_rows_trim_escape(values):
    assert cells.trim_escape(pa.array(values, pa.string())).to_pylist() == list(
        map(trim_escape, values))


@SETTINGS
@given(values=VALUES)
def test_json_string_is_gofmt_json_string(values):
    assert cells.json_string(pa.array(values, pa.string())).to_pylist() == list(
        map(gofmt.json_string, values))


@SETTINGS
@given(pairs=st.lists(st.tuples(OUTPUT, OUTPUT), max_size=20))
def test_combined_output_is_combine_output(pairs):
    out, err = (pa.array(list(side), pa.string()) for side in zip(*pairs, strict=True)) if pairs \
        else (pa.array([], pa.string()),) * 2
    assert frame.combined_output(out, err).to_pylist() == [combine_output(o, e) for o, e in pairs]


TIMES = st.lists(st.one_of(st.integers(-62_135_596_800 * NS, 253_402_300_799 * NS),
                           st.integers(-3 * NS, 3 * NS), st.just(GO_ZERO_TIME_NS),
                           st.just(GO_ZERO_TIME_NS + 1)),
                 max_size=30)


@SETTINGS
@given(times=TIMES)
def test_times_are_gofmt_times(times):
    s, n = (pa.array([divmod(t, NS)[i] for t in times], pa.int64()) for i in (0, 1))
    assert cells.rfc3339(s).to_pylist() == list(map(gofmt.rfc3339, times))
    assert cells.rfc3339nano(s, n).to_pylist() == list(map(gofmt.rfc3339nano, times))


@SETTINGS
@given(a=st.integers(-(2**62), 2**62), b=st.integers(1, 10**12))
def test_floor_div_rounds_down(a, b):
    assert frame.floor_div(pa.array([a]), b).to_pylist() == [a // b]


@SETTINGS
@given(rows=st.lists(node_rows(), max_size=12))
def test_a_frame_holds_its_rows(rows):
    want = [row for row in rows if not any(
        "\ud800" <= ch <= "\udfff" for v in _texts(row) for ch in v)]
    assert frame.to_rows(frame.from_rows(want)) == want


def _texts(row: NodeRow) -> list[str]:
    out = [getattr(row, f) for f in NodeRow.__slots__ if isinstance(getattr(row, f), str)]
    return out + ([] if row.run is None else [row.run.output, row.run.api_error])


def test_lone_surrogates_are_go_replacement_characters():
    row = NodeRow(cloud="aws", key="k", region="us-\ud800")
    assert frame.to_rows(frame.from_rows([row]))[0].region == "us-\ufffd"

