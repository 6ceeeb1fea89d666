"""Report test builders (rows at fixed UTC instants), the shared fixture set, and golden files.

Regenerate golden files with `pytest tests/report --update-golden` (or UPDATE_GOLDEN=1), then
review the diff by eye before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.report.rows import NodeRow, RunResult

GOLDEN = Path(__file__).parent / "golden"
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
T0 = 1_777_888_800 * SECOND  # 2026-05-04T10:00:00Z

AWS_ACCOUNT = "123456789012"
AZURE_SUB = "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b"


def make_run(exit_code: int = 0, at: int = T0, *, failed: bool | None = None, output: str = "",
             api_error: str = "") -> RunResult:
    """A run result; failed defaults to "exit code != 0 or API error" (tctl reads the event code)."""
    if failed is None:
        failed = exit_code != 0 or bool(api_error)
    return RunResult(time_ns=at, exit_code=exit_code, output=output, api_error=api_error,
                     is_failure=failed)


def make_row(key: str, cloud: str = "aws", **fields) -> NodeRow:
    """A report row keyed by `key` (EC2 id or VM id) with plausible identity defaults."""
    if cloud == "aws":
        base = {"instance_id": key, "account_id": AWS_ACCOUNT, "region": "us-east-1"}
    else:
        base = {"vm_id": key, "account_id": AZURE_SUB, "region": "westeurope",
                "resource_group": "rg-web", "vm_name": "web-1"}
    return NodeRow(cloud=cloud, key=key.lower() if cloud == "azure" else key, **(base | fields))


JOIN_FAILURE = (
    "Installing teleport 18.1.0 from https://cdn.teleport.dev ...\n"
    "ERROR: node did not become ready (join cluster) within 5m0s\n"
    "teleport.service: Failed with result 'exit-code'.\n"
    "join failure: token is expired or not found"
)
AZURE_API_ERROR = (
    "AuthorizationFailed: The client 'f3b1c2d4-0000-4000-8000-000000000001' with object id "
    "'f3b1c2d4-0000-4000-8000-000000000001' does not have authorization to perform action "
    "'Microsoft.Compute/virtualMachines/runCommands/write'"
)


def fixture_rows() -> list[NodeRow]:
    """The golden fixture set, in the order tctl sorts it (account, region, time desc; AWS first)."""
    return [
        make_row("i-0c0ffee0123456789", is_online=True, expiry_ns=T0 + 10 * MINUTE,
                 run=make_run(0, T0 + 5 * MINUTE + SECOND // 2, output="Teleport installed.")),
        make_row("i-0a1b2c3d4e5f67890", run=make_run(150, T0 + 2 * MINUTE, output=JOIN_FAILURE)),
        make_row("i-0fedcba9876543210", account_id="210987654321", region="eu-west-1",
                 is_online=True, expiry_ns=T0 + 9 * MINUTE + 123_456_789),
        make_row("i-0123456789abcdef0", account_id="210987654321", region="eu-west-1",
                 run=make_run(1, T0 + MINUTE, output="bash: line 1: curl: command not found"),
                 user_task_id="8c0e0c5a-6b2d-5f1e-9a3b-0d4c2e1f7a6b",
                 user_task_issue="ec2-ssm-script-failure"),
        make_row("0F8E7D6C-5B4A-4392-8170-6F5E4D3C2B1A", cloud="azure",
                 run=make_run(1, T0 + 3 * MINUTE, output="curl: (6) Could not resolve host"),
                 resource_id="/subscriptions/6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b/resourceGroups/"
                             "rg-web/providers/Microsoft.Compute/virtualMachines/web-1",
                 user_task_id="d2f4e6a8-1b3c-5d7e-9f0a-2b4c6d8e0f1a",
                 user_task_issue="azure-vm-enrollment-error"),
        make_row("1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", cloud="azure", region="eastus",
                 resource_group="", vm_name="", account_id="a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d",
                 is_online=True, expiry_ns=T0 + 10 * MINUTE),
        make_row("9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", cloud="azure", region="eastus",
                 account_id="a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d", vm_name="db-1",
                 resource_group="rg-db", run=make_run(0, T0 + 4 * MINUTE, api_error=AZURE_API_ERROR)),
    ]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/report/golden/* from the current renderers")


@pytest.fixture
def golden(request: pytest.FixtureRequest):
    """`golden(name, actual_bytes)`: compare byte for byte, or rewrite when updating."""
    update = request.config.getoption("--update-golden", default=False) or os.environ.get(
        "UPDATE_GOLDEN") == "1"

    def check(name: str, actual: bytes) -> None:
        path = GOLDEN / name
        if update:
            path.write_bytes(actual)
            return
        assert path.exists(), f"{path} missing: run `pytest tests/report --update-golden`"
        expected = path.read_bytes()
        assert actual == expected, f"{name} differs from golden; diff it, then --update-golden"

    return check


def edge_rows() -> list[NodeRow]:
    """Awkward strings for the escapers: HTML, emoji, tabs, trailing spaces, U+2028, long lines."""
    noisy = ("line one with trailing spaces  \n\tindented <b>&amp;</b> 😀 done\u2028"
             + " ".join(["folding"] * 14))
    return [
        make_row("i-0e1e2e3e4e5e6e7e8", region="y", account_id="000123456789",
                 run=make_run(-1, T0, output=noisy)),
        make_row("i-0d1d2d3d4d5d6d7d8", region="ap-south-1",
                 run=make_run(1, T0 - MINUTE, output="日本語の出力 " * 12),
                 user_task_id="t-1", user_task_issue="ec2-brand-new-issue"),
        make_row("VM-é", cloud="azure", region="Brazil South", resource_group="rg-café",
                 run=make_run(0, T0 - 2 * MINUTE, api_error="first line\nsecond: line\n")),
    ]


# --- real Go (tests/goracle): built once per session when the toolchain and libraries are here ---

_ORACLE: list = []  # the session's GoOracle, for the terminal summary


@pytest.fixture(scope="session")
def goracle(tmp_path_factory):
    """The Go oracle process (tests/report/goracle.py); skips, or fails under CI, without Go."""
    from tests.report.goracle import GoOracle

    if reason := GoOracle.missing():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the Go differential tests: {reason} (.ci/run installs it)")
        pytest.skip(reason)
    oracle = GoOracle.build(tmp_path_factory.mktemp("goracle"))
    _ORACLE.append(oracle)
    yield oracle
    oracle.close()


def pytest_terminal_summary(terminalreporter) -> None:
    for oracle in _ORACLE:
        terminalreporter.write_line(oracle.summary())
