"""tctl's per-row strings: Status, Details, Instance, Time, and the Go trimming they rely on."""

from __future__ import annotations

import pytest

from pipeline.report.rows import (
    GO_ZERO_TIME_NS,
    combine_output,
    details,
    go_trim_space,
    instance_text,
    last_time_ns,
    status,
)
from pipeline.report.titles import ISSUE_TITLES, user_task_title

from .conftest import MINUTE, T0, make_row, make_run

FAIL_3 = make_run(3)
API_ERR = make_run(0, api_error="Conflict: run command in progress")
API_ERR_AND_CODE = make_run(7, api_error="boom")


@pytest.mark.parametrize(
    ("online", "run", "expected"),
    [
        pytest.param(True, None, "Online", id="online-no-run"),
        pytest.param(True, make_run(0), "Online", id="online-success"),
        pytest.param(True, FAIL_3, "Online, exit code=3", id="online-failure"),
        pytest.param(True, API_ERR, "Online, API error", id="online-api-error"),
        pytest.param(False, None, "Unknown", id="offline-no-run"),
        pytest.param(False, make_run(0), "Installed (offline)", id="offline-success"),
        pytest.param(False, FAIL_3, "Failed (exit code=3)", id="offline-failure"),
        pytest.param(False, make_run(-1), "Failed (exit code=-1)", id="offline-ssm-lost"),
        pytest.param(False, API_ERR, "Failed (API error)", id="offline-api-error"),
        pytest.param(False, API_ERR_AND_CODE, "Failed (API error)", id="api-error-outranks-code"),
        pytest.param(False, make_run(0, failed=True), "Failed (exit code=0)",
                     id="failure-decided-by-event-code-not-exit-code"),
        pytest.param(False, make_run(150, failed=False), "Installed (offline)",
                     id="nonzero-code-on-success-event"),
        pytest.param(False, make_run(0, failed=False, api_error="ignored"), "Installed (offline)",
                     id="api-error-on-success-event"),
    ],
)
def test_status(online, run, expected):
    assert status(make_row("i-1", is_online=online, run=run)) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({}, "", id="nothing"),
        pytest.param({"run": make_run(0)}, "", id="run-without-output"),
        pytest.param({"user_task_issue": "ec2-ssm-script-failure"}, "SSM Script failure",
                     id="title-only"),
        pytest.param({"run": make_run(1, output="curl: not found")},
                     'Script output: "curl: not found"', id="output-only"),
        pytest.param({"run": make_run(0, api_error="Throttled")}, 'API error: "Throttled"',
                     id="api-error-only"),
        pytest.param({"run": make_run(1, output="out", api_error="err")}, 'Script output: "out"',
                     id="output-wins-over-api-error"),
        pytest.param({"run": make_run(1, output=" \n\t", api_error=" err \n")}, 'API error: "err"',
                     id="blank-output-falls-back-to-api-error"),
        pytest.param({"run": make_run(1, output="a\nb"), "user_task_issue": "ec2-join-failure"},
                     'EC2 Join Failure. Script output: "a\\nb"', id="title-and-output"),
        pytest.param({"run": make_run(0, api_error="x"), "user_task_issue": "ec2-ssm-unsupported-os"},
                     'Unsupported Operating System. API error: "x"', id="title-and-api-error"),
        pytest.param({"user_task_issue": "ec2-ssm-agent-connection-lost"}, "SSM Agent lost connection",
                     id="agent-lost"),
        pytest.param({"user_task_issue": "ec2-brand-new-issue"}, "ec2-brand-new-issue",
                     id="unknown-issue-raw"),
        pytest.param({"user_task_issue": "azure-vm-not-running"}, "VMs not running",
                     id="titles-come-from-one-folder-whatever-the-cloud"),
        pytest.param({"user_task_issue": "ec2-perm-account-denied"}, "Missing AWS account permissions",
                     id="perm-account-denied"),
        pytest.param({"user_task_issue": "ec2-perm-org-denied"}, "Missing AWS organization permissions",
                     id="perm-org-denied"),
        pytest.param({"run": make_run(1, output='say "hi"\\')}, 'Script output: "say \\"hi\\"\\\\"',
                     id="quoted-with-go-escapes"),
    ],
)
def test_details_aws(fields, expected):
    assert details(make_row("i-1", **fields)) == expected


@pytest.mark.parametrize(
    ("issue", "title"),
    [
        ("azure-vm-enrollment-error", "Enrollment failed"),
        ("azure-vm-agent-not-available", "VM agent not available"),
        ("azure-vm-missing-run-commands-permission", "Missing Run Command permissions"),
        ("azure-vm-not-running", "VMs not running"),
        ("azure-vm-subscription-list-denied", "Cannot access Azure subscriptions"),
        ("ec2-ssm-script-failure", "SSM Script failure"),
        ("azure-vm-something-new", "azure-vm-something-new"),
        ("", ""),
    ],
)
def test_azure_titles(issue, title):
    assert user_task_title(issue) == title
    run = make_run(0, api_error="Conflict")
    row = make_row("VM-1", cloud="azure", user_task_issue=issue, run=run)
    assert details(row) == (f'{title}. API error: "Conflict"' if title else 'API error: "Conflict"')


def test_details_cuts_at_100_bytes_before_quoting():
    out = "0123456789" * 10 + "tail"
    assert details(make_row("i-1", run=make_run(1, output=out))) == (
        'Script output: "' + "0123456789" * 10 + '..."'
    )
    exactly_100 = "0123456789" * 10
    assert details(make_row("i-1", run=make_run(1, output=exactly_100))) == (
        f'Script output: "{exactly_100}"'
    )


def test_details_cut_splits_a_rune_into_invalid_bytes():
    out = "x" * 98 + "日本"  # 日 is 3 bytes: the cut keeps its first 2
    assert details(make_row("i-1", run=make_run(1, output=out))) == (
        'Script output: "' + "x" * 98 + '\\xe6\\x97..."'
    )


def test_details_counts_bytes_not_characters():
    out = "é" * 60  # 120 bytes: 50 characters survive
    assert details(make_row("i-1", run=make_run(1, output=out))) == (
        'Script output: "' + "é" * 50 + '..."'
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param("  a b \n", "a b", id="ascii-space"),
        pytest.param("\t\v\f\r\n x", "x", id="ascii-controls"),
        pytest.param("\x85\xa0\u2000\u200a\u2028\u2029\u202f\u205f\u3000\u1680x", "x",
                     id="unicode-spaces"),
        pytest.param("\x1cx\x1f", "\x1cx\x1f", id="file-separators-kept-unlike-str-strip"),
        pytest.param("\u200bx\ufeff", "\u200bx\ufeff", id="zero-width-kept"),
        pytest.param("\u180ex", "\u180ex", id="mongolian-vowel-separator-kept"),
    ],
)
def test_go_trim_space(given, expected):
    assert go_trim_space(given) == expected


def test_go_trim_space_differs_from_str_strip_on_x1c():
    assert "\x1cdata\x1c".strip() == "data"
    assert go_trim_space("\x1cdata\x1c") == "\x1cdata\x1c"
    row = make_row("i-1", run=make_run(1, output="\x1c"))
    assert details(row) == 'Script output: "\\x1c"'


@pytest.mark.parametrize(
    ("stdout", "stderr", "expected"),
    [
        pytest.param("", "", "", id="both-empty"),
        pytest.param(" out \n", "", "out", id="stdout-only"),
        pytest.param("", "\nerr\n", "err", id="stderr-only"),
        pytest.param("out\n", "  err", "out\nerr", id="both"),
        pytest.param("  \n", "err", "err", id="blank-stdout"),
        pytest.param("\x1c", "", "\x1c", id="go-space-rules"),
    ],
)
def test_combine_output(stdout, stderr, expected):
    assert combine_output(stdout, stderr) == expected


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        pytest.param(make_row("i-0abc"), "i-0abc", id="aws"),
        pytest.param(make_row("VM-GUID", cloud="azure", resource_group="rg-web"), "rg-web/VM-GUID",
                     id="azure-with-rg"),
        pytest.param(make_row("VM-GUID", cloud="azure", resource_group=""), "VM-GUID",
                     id="azure-vm-id-only"),
    ],
)
def test_instance_text(row, expected):
    assert instance_text(row) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({}, None, id="neither"),
        pytest.param({"expiry_ns": T0}, T0, id="expiry-only"),
        pytest.param({"expiry_ns": T0, "run": make_run(0, T0 - MINUTE)}, T0 - MINUTE,
                     id="run-wins-even-when-older"),
        pytest.param({"expiry_ns": T0, "run": make_run(0, 0)}, 0, id="unix-epoch-run-is-a-time"),
        pytest.param({"run": make_run(0, 0)}, 0, id="unix-epoch-run-no-expiry"),
        pytest.param({"expiry_ns": T0, "run": make_run(0, GO_ZERO_TIME_NS)}, T0,
                     id="go-zero-run-time-falls-back"),
        pytest.param({"expiry_ns": GO_ZERO_TIME_NS}, None, id="go-zero-expiry-is-no-time"),
    ],
)
def test_last_time_ns(fields, expected):
    assert last_time_ns(make_row("i-1", **fields)) == expected


def test_title_table_is_complete_for_the_description_files_read():
    """Every issue type whose description file (read for titles.py) starts with `# `."""
    assert {"ec2-ssm-script-failure", "ec2-ssm-agent-connection-lost", "ec2-ssm-unsupported-os",
            "ec2-join-failure", "ec2-perm-account-denied", "ec2-perm-org-denied",
            "azure-vm-enrollment-error", "azure-vm-agent-not-available",
            "azure-vm-missing-run-commands-permission", "azure-vm-not-running",
            "azure-vm-subscription-list-denied"} <= set(ISSUE_TITLES)
    assert all(title and title == title.strip() for title in ISSUE_TITLES.values())
