"""The `receive`, `ingest spool` and `ingest dynamodb` commands: argument errors as one line,
and a drain and a DynamoDB ingest through the command, on the real `discovery-history` group."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli.ingest import dynamo_window
from pipeline.cli.main import main
from pipeline.cli.receive import parse_listen
from pipeline.sources.spool import Spool
from pipeline.timeutil import InputError
from tests.conftest import T0, make_run

PREFIX = "discovery-history: error: "


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(
    ("addr", "want"),
    [("127.0.0.1:8888", ("127.0.0.1", 8888)), (":9880", ("", 9880)), ("[::1]:0", ("::1", 0))],
)
def test_parse_listen(addr, want) -> None:
    assert parse_listen(addr) == want


@pytest.mark.parametrize("addr", ["8888", "host:", "host:http", "h:70000"])
def test_parse_listen_rejects(addr) -> None:
    with pytest.raises(InputError, match="HOST:PORT"):
        parse_listen(addr)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "nope"], "--listen wants HOST:PORT"),
        (["--listen", ":0", "--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
        (["--listen", ":0", "--tls-client-ca", "ca.pem"], "--tls-client-ca needs --tls-cert"),
    ],
)
def test_receive_argument_errors_are_one_line(tmp_path: Path, args, message) -> None:
    r = invoke("receive", "--spool", str(tmp_path / "s"), *args)
    assert r.exit_code == 1
    assert r.stderr.startswith(PREFIX + message) and r.stderr.count("\n") == 1


def test_receive_on_a_spool_in_use_is_one_line(tmp_path: Path) -> None:
    held = Spool(tmp_path / "s")
    try:
        r = invoke("receive", "--spool", str(tmp_path / "s"), "--listen", "127.0.0.1:0")
    finally:
        held.close()
    assert r.exit_code == 1 and "in use by another receiver" in r.stderr


def test_ingest_spool_drains_closed_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    spool.append(b"".join(json.dumps(make_run(f"i-{n}")).encode() + b"\n" for n in range(3)))
    spool.close()
    store = str(tmp_path / "lake")
    r = invoke("--store", store, "ingest", "spool", str(tmp_path / "s"), "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["stored"] == 3
    assert r.stderr == "read 3 = stored 3 + duplicates 0 + skipped 0 + quarantined 0\n"
    again = invoke("--store", store, "ingest", "spool", str(tmp_path / "s"))
    assert (again.exit_code, again.stderr) == (0, f"nothing to drain in {tmp_path / 's'}\n")
    missing = invoke("--store", store, "ingest", "spool", str(tmp_path / "nope"))
    assert missing.exit_code == 1 and missing.stderr.startswith(PREFIX + "no such spool folder")


NOW = datetime(2026, 5, 4, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("since", "until", "last", "want"),
    [
        ("2026-05-04", "2026-05-05", None, (T0.replace(hour=0), T0.replace(day=5, hour=0))),
        ("2026-05-04T10:00:00Z", None, None, (T0, NOW)),
        (None, None, "2h", (T0, NOW)),
    ],
)
def test_dynamo_window(since, until, last, want) -> None:
    assert dynamo_window(since, until, last, NOW) == want


@pytest.mark.parametrize(
    ("since", "until", "last", "message"),
    [
        (None, None, None, "give the window"),
        ("2026-05-04", None, "1h", "either --last or --since/--until"),
        ("2026-05-05", "2026-05-04", None, "--until must be after --since"),
    ],
)
def test_dynamo_window_errors(since, until, last, message) -> None:
    with pytest.raises(InputError, match=message):
        dynamo_window(since, until, last, NOW)


def test_ingest_dynamodb_without_window_is_one_line(tmp_path: Path) -> None:
    r = invoke("--store", str(tmp_path / "lake"), "ingest", "dynamodb", "--table", "t")
    assert r.exit_code == 1 and r.stderr.startswith(PREFIX + "give the window")
