"""Go text/tabwriter and asciitable.MakeTableWithTruncatedColumn, byte for byte."""

from __future__ import annotations

import pytest

from pipeline.report.table import (
    TableWidthError,
    TabWriter,
    column_limits,
    rune_count,
    truncate_column,
    truncated_table,
)

COLUMNS = [b"Cloud", b"Account", b"Region", b"Instance", b"Time", b"Status", b"Details"]


def tabwrite(data: bytes, minwidth: int = 0, padding: int = 1, chunks: int = 1) -> bytes:
    tw = TabWriter(minwidth=minwidth, tabwidth=0, padding=padding, padchar=b".")
    step = max(1, len(data) // chunks)
    for i in range(0, len(data), step):
        tw.write(data[i:i + step])
    return tw.flush()


@pytest.mark.parametrize(
    ("given", "minwidth", "expected"),
    [
        pytest.param(b"a\tb\tc\n", 0, b"a.b.c\n", id="one-line"),
        pytest.param(b"a\tb\n", 5, b"a....b\n", id="minwidth"),
        pytest.param(b"a\t\n", 0, b"a.\n", id="empty-last-cell-after-tab"),
        pytest.param(b"a\t\tc\n", 0, b"a..c\n", id="empty-middle-cell-padded"),
        pytest.param(b"a\tb", 0, b"a.b", id="unterminated-line-flushed"),
        pytest.param(b"aaa\tb\nc\td\n", 0, b"aaa.b\nc...d\n", id="shared-column"),
        pytest.param(b"a\tb\nccc\ndd\te\n", 0, b"a.b\nccc\ndd.e\n", id="one-cell-line-flushes"),
        pytest.param(b"a\tb\tc\naaaa\tbb\nx\ty\tz\n", 0, b"a....b.c\naaaa.bb\nx....y.z\n",
                     id="column-blocks-split-by-shorter-line"),
        pytest.param(b"a\tbbbb\tc\nx\ty\n", 0, b"a.bbbb.c\nx.y\n",
                     id="last-cell-not-a-column"),
        pytest.param("é\tb\nab\tc\n".encode(), 0, "é..b\nab.c\n".encode(), id="width-in-runes"),
        pytest.param(b"\xe2\x82\tb\nabc\tc\n", 0, b"\xe2\x82..b\nabc.c\n",
                     id="invalid-bytes-count-one-each"),
        pytest.param(b"\xffab\xff\tc\nabcd\td\n", 0, b"\xffab\xff...c\nabcd.d\n",
                     id="escape-sequence-width"),
        pytest.param(b"a\vb\tc\nxx\tyy\tz\n", 0, b"a..b..c\nxx.yy.z\n", id="vtab-ends-cell"),
        pytest.param(b"a\tb\fcc\td\n", 0, b"a.b\ncc.d\n", id="formfeed-flushes"),
    ],
)
def test_tabwriter(given, minwidth, expected):
    assert tabwrite(given, minwidth) == expected


def test_tabwriter_is_a_stream():
    data = "α\tβ\tγ\nlonger\tx\t\n".encode()
    assert {tabwrite(data, chunks=n) for n in (1, 2, 3, len(data))} == {tabwrite(data)}


@pytest.mark.parametrize(
    ("given", "expected"),
    [(b"", 0), (b"abc", 3), ("é日😀".encode(), 3), (b"\xe2\x82", 2), (b"\xe2\x82A", 3), (b"\xff", 1)],
)
def test_rune_count(given, expected):
    assert rune_count(given) == expected


@pytest.mark.parametrize(
    ("cell", "limit", "expected"),
    [
        pytest.param(b"abcdef", 0, b"abcdef", id="zero-means-uncut"),
        pytest.param(b"abcdef", 6, b"abcdef", id="fits"),
        pytest.param(b"abcdef", 3, b"abc...", id="cut"),
        pytest.param("ééé".encode(), 3, b"\xc3\xa9\xc3...", id="cut-inside-rune"),
    ],
)
def test_truncate_column(cell, limit, expected):
    assert truncate_column([cell, b""], limit) == [expected, b""]


def test_truncate_column_negative_limit_is_an_error():
    with pytest.raises(TableWidthError, match="limit -1"):
        truncate_column([b"abc"], -1)


def test_column_limits_for_spec_example_at_80():
    rows = [[b"AWS", b"123456789012", b"us-east-1", b"i-0c0ffee0123456789", b"2026-05-04T10:00:00Z",
             b"Failed (exit code=1)", b"SSM Script failure"],
            [b"Azure", b"6f1d2c3b-4a5e", b"westeurope", b"rg-web/0f8e", b"2026-05-04T10:00:00Z",
             b"Online", b""]]
    # cap = (80-16)//6 = 10; used = 6 + 14 + 11 + 14 + 14 + 14 = 73; Details = 80-73-4 = 3
    assert column_limits(COLUMNS, rows, b"Details", 80) == [5, 10, 10, 10, 10, 10, 3]


@pytest.mark.parametrize(
    ("width", "expected"),
    [
        pytest.param(40, [4, 4, 4, 4, 4, 4, 0], id="titles-count-too-details-floor-0"),
        pytest.param(22, [1, 1, 1, 1, 1, 1, 0], id="cap-1"),
        pytest.param(15, [0, 0, 0, 0, 0, 0, 0], id="go-division-truncates-toward-zero"),
    ],
)
def test_column_limits_narrow(width, expected):
    rows = [[b"Azure", b"1234567890", b"eu-west-1", b"i-0123456789", b"2026-05-04T10:00:00Z",
             b"Online", b"details"]]
    assert column_limits(COLUMNS, rows, b"Details", width) == expected


@pytest.mark.parametrize(("width", "ok"), [(10, False), (11, True)])
def test_truncated_table_too_narrow_is_an_error(width, ok):
    rows = [[b"AWS", b"1", b"r", b"i", b"t", b"s", b"d"]]
    if ok:  # (11-16)/6 is 0 in Go: every limit 0, nothing cut
        assert truncated_table(COLUMNS, rows, b"Details", width).startswith(b"Cloud Account")
    else:
        with pytest.raises(TableWidthError, match="limit -1"):
            truncated_table(COLUMNS, rows, b"Details", width)


def test_truncated_table_pads_runes_but_measures_bytes():
    # asciitable sizes columns (and dash lines) in bytes; tabwriter pads in runes.
    rows = [[b"AWS", b"acct", "réservé".encode(), b"i-1", b"t", b"Online", b"d"],
            [b"AWS", b"acct", b"us-east-1", b"i-2", b"t", b"Online", b"d"]]
    assert truncated_table(COLUMNS, rows, b"Details", 200).decode() == (
        "Cloud Account Region    Instance Time Status Details \n"
        "----- ------- --------- -------- ---- ------ ------- \n"
        "AWS   acct    réservé   i-1      t    Online d       \n"
        "AWS   acct    us-east-1 i-2      t    Online d       \n"
    )


def test_truncated_table_cut_inside_a_rune():
    # cap at W=34 is 3 (titles are never cut): "éé" (4 bytes) keeps é + half a rune, then "...";
    # the dangling byte counts as one rune when tabwriter pads: 5 runes in a 7-wide block.
    rows = [[b"AWS", b"a", "éé".encode(), b"i", b"t", b"s", b"d"]]
    assert truncated_table(COLUMNS, rows, b"Details", 34) == (
        b"Cloud Account Region Instance Time Status Details \n"
        b"----- ------- ------ -------- ---- ------ ------- \n"
        b"AWS   a       \xc3\xa9\xc3...  i        t    s      d       \n"
    )


def test_truncated_table_cell_with_newlines_flushes_blocks():
    # "1\n2\n3" splits the row over three tabwriter lines; "2" alone is a one-cell line, which
    # flushes: the lines after it start fresh column blocks, as Go's tabwriter does.
    rows = [[b"AWS", b"1\n2\n3", b"us-east-1", b"i-1", b"t", b"Online", b""],
            [b"AWS", b"acct", b"us-east-1", b"i-2", b"t", b"Online", b"d"]]
    assert truncated_table(COLUMNS, rows, b"Details", 200) == (
        b"Cloud Account Region    Instance Time Status Details \n"
        b"----- ------- --------- -------- ---- ------ ------- \n"
        b"AWS   1\n"
        b"2\n"
        b"3    us-east-1 i-1       t    Online        \n"
        b"AWS  acct      us-east-1 i-2  t      Online d    \n"
    )


def test_truncated_table_rejects_ragged_rows():
    with pytest.raises(ValueError, match="7 cells"):
        truncated_table(COLUMNS, [[b"AWS"]], b"Details", 80)
