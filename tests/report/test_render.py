"""Renderers against golden files (byte for byte), the spec's W=80 example, and empty reports."""

from __future__ import annotations

import csv
import io

import pytest

from pipeline.report.goyaml import GoYAMLError
from pipeline.report.render import (
    ANALYST_COLUMNS,
    RENDERERS,
    TEXT_COLUMNS,
    render_csv,
    render_json,
    render_markdown,
    render_text,
    render_yaml,
)
from pipeline.report.rows import GO_ZERO_TIME_NS

from .conftest import MINUTE, T0, edge_rows, fixture_rows, make_row, make_run

GOLDEN_CASES = [
    pytest.param("text_w80.txt", lambda rows: render_text(rows, 80), id="text-w80"),
    pytest.param("text_w200.txt", lambda rows: render_text(rows, 200), id="text-w200"),
    pytest.param("nodes.json", render_json, id="json"),
    pytest.param("nodes.yaml", render_yaml, id="yaml"),
    pytest.param("nodes.csv", render_csv, id="csv"),
    pytest.param("nodes.md", render_markdown, id="markdown"),
]


@pytest.mark.parametrize(("name", "render"), GOLDEN_CASES)
def test_fixture_set_matches_golden(golden, name, render):
    golden(name, render(fixture_rows()))


@pytest.mark.parametrize(("name", "render"), GOLDEN_CASES)
def test_edge_set_matches_golden(golden, name, render):
    golden("edge_" + name, render(edge_rows()))


SPEC_EXAMPLE = """\
Cloud Account       Region     Instance      Time          Status        Details
----- ------------- ---------- ------------- ------------- ------------- -------
AWS   1234567890... us-east-1  i-0c0ffee0... 2026-05-04... Online
AWS   1234567890... us-east-1  i-0a1b2c3d... 2026-05-04... Failed (ex... SSM...
Azure 6f1d2c3b-4... westeurope rg-web/0f8... 2026-05-04... Failed (ex... Scr...
"""


def test_spec_example_at_80_columns():
    rows = [
        make_row("i-0c0ffee0123456789", is_online=True, expiry_ns=T0 + 10 * MINUTE,
                 run=make_run(0, T0 + 5 * MINUTE)),
        make_row("i-0a1b2c3d4e5f67890", run=make_run(1, T0 + 2 * MINUTE, output="oops"),
                 user_task_id="task-1", user_task_issue="ec2-ssm-script-failure"),
        make_row("0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", cloud="azure",
                 run=make_run(1, T0 + 3 * MINUTE, output="curl: (6) Could not resolve host")),
    ]
    out = render_text(rows, 80).decode()
    assert out == (
        "Cloud Account       Region     Instance      Time          Status        Details \n"
        "----- ------------- ---------- ------------- ------------- ------------- ------- \n"
        "AWS   1234567890... us-east-1  i-0c0ffee0... 2026-05-04... Online                \n"
        "AWS   1234567890... us-east-1  i-0a1b2c3d... 2026-05-04... Failed (ex... SSM...  \n"
        "Azure 6f1d2c3b-4... westeurope rg-web/0f8... 2026-05-04... Failed (ex... Scr...  \n"
    )
    assert "".join(line.rstrip() + "\n" for line in out.splitlines()) == SPEC_EXAMPLE
    # not 80: the Details title (7) is wider than its 3-byte limit + "...", and every cell pads
    assert {len(line) for line in out.splitlines()} == {81}


def test_text_pads_non_ascii_by_runes():
    rows = [make_row("i-1", region="région", is_online=True, expiry_ns=T0 + 10 * MINUTE),
            make_row("i-2", is_online=True, expiry_ns=T0 + 10 * MINUTE)]
    assert render_text(rows, 200).decode() == (
        "Cloud Account      Region    Instance Time                 Status Details \n"
        "----- ------------ --------- -------- -------------------- ------ ------- \n"
        "AWS   123456789012 région    i-1      2026-05-04T10:10:00Z Online         \n"
        "AWS   123456789012 us-east-1 i-2      2026-05-04T10:10:00Z Online         \n"
    )


def test_text_time_is_empty_only_for_go_zero_time():
    row = make_row("i-1", run=make_run(0, GO_ZERO_TIME_NS))
    assert render_text([row], 200).splitlines()[2] == (
        b"AWS   123456789012 us-east-1 i-1           Installed (offline)         "
    )


def test_text_time_at_the_unix_epoch_is_a_time():
    """tctl tests time.IsZero (year 1): a run at 1970-01-01T00:00:00Z shows its time."""
    row = make_row("i-1", run=make_run(0, 0))
    assert render_text([row], 200).splitlines()[2] == (
        b"AWS   123456789012 us-east-1 i-1      1970-01-01T00:00:00Z Installed (offline)         "
    )


@pytest.mark.parametrize(
    ("render", "expected"),
    [
        pytest.param(render_text, b"No instances found.\n", id="text"),
        pytest.param(render_json, b"[]\n", id="json"),
        pytest.param(render_yaml, b"[]", id="yaml-no-newline"),
        pytest.param(render_csv, (",".join(TEXT_COLUMNS + ANALYST_COLUMNS) + "\r\n").encode(),
                     id="csv-header-only"),
        pytest.param(render_markdown,
                     ("| " + " | ".join(TEXT_COLUMNS + ANALYST_COLUMNS) + " |\n|"
                      + "---|" * 15 + "\n\nNo instances found.\n").encode(), id="markdown"),
    ],
)
def test_empty_report(render, expected):
    assert render([]) == expected


def test_renderers_by_format_name():
    assert set(RENDERERS) == {"text", "json", "yaml", "csv", "markdown"}


def test_yaml_documents_are_separated_not_terminated():
    out = render_yaml(fixture_rows()[:2]).decode()
    assert out.count("---\n") == 1
    assert not out.startswith("---") and out.endswith("\n") and not out.endswith("---\n")


def test_csv_round_trips_full_details():
    rows = fixture_rows()
    parsed = list(csv.reader(io.StringIO(render_csv(rows).decode(), newline="")))
    assert parsed[0] == list(TEXT_COLUMNS + ANALYST_COLUMNS)
    failed = dict(zip(parsed[0], parsed[2], strict=True))
    assert failed["Details"].startswith("Script output: Installing teleport")
    assert failed["Details"].endswith("token is expired or not found")  # not cut at 100 bytes
    assert failed["ExitCode"] == "150" and failed["IsFailure"] == "true"


def test_markdown_escapes_pipes_backslashes_and_newlines():
    row = make_row("i-1", run=make_run(1, output="a|b\\c\nd\r\ne"))
    body = render_markdown([row]).decode().splitlines()[2]
    assert "Script output: a\\|b\\\\c<br>d<br>e |" in body
    assert body.count(" | ") == 14


def test_yaml_fails_like_tctl_on_raw_del():
    row = make_row("i-1", run=make_run(1, output="bell\x7f"))
    with pytest.raises(GoYAMLError, match="U\\+007F") as err:
        render_yaml([row])
    assert err.value.partial == b""
    assert b'"output": "bell\x7f"' in render_json([row])


def test_yaml_error_carries_the_documents_tctl_printed_before_it():
    good, bad = make_row("i-1"), make_row("i-2", run=make_run(1, output="bell\x7f"))
    with pytest.raises(GoYAMLError) as err:
        render_yaml([good, good, bad, good])
    assert err.value.partial == render_yaml([good, good]) + b"---\n"
