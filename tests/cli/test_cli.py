"""The real `discovery-history` console script: help, one-line errors, ingest and the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import click
import pytest

from pipeline.cli.common import parse_clouds, resolve_window, terminal_width
from pipeline.cli.main import main
from pipeline.timeutil import InputError
from tests.conftest import T0, make_aws_node, make_azure_run, make_run, write_json, write_lines

SCRIPT = Path(sys.executable).with_name("discovery-history")
PREFIX = "discovery-history: error: "
VM = "0f8a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b"
WINDOW = ["--from", "2026-05-04", "--to", "2026-05-05"]


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without the variables the CLI reads, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISCOVERY_HISTORY_STORE", "COLUMNS")}
    env.update(extra)
    return env


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_error(p: subprocess.CompletedProcess, *fragments: str) -> str:
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith(PREFIX)
    for f in fragments:
        assert f in lines[0]
    assert p.stdout == ""
    return lines[0]


@pytest.fixture(scope="module")
def events_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("events")
    write_lines(
        d / "auth" / "2026-05-04.00:00:00.log",
        [
            make_run("i-0a", uid="u-1"),
            make_run(
                "i-0b",
                "TDS00W",
                exit_code=150,
                stderr="ERROR: node did not become ready",
                uid="u-2",
            ),
            make_azure_run(VM, "TAZ00E", exit_code=1, stderr="boom " * 40, uid="u-3"),
            "not json",
            "",
        ],
    )
    return d


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, events_dir: Path) -> Path:
    """A tiny store built with the CLI itself (shared, read-only for the tests)."""
    root = tmp_path_factory.mktemp("lake") / "lake"
    p = run(["--store", str(root), "ingest", "events", str(events_dir)], events_dir)
    assert p.returncode == 0, p.stderr
    nodes = write_json(events_dir / "nodes.json", [make_aws_node("i-0a")])
    p = run(
        ["--store", str(root), "ingest", "nodes", str(nodes), "--at", "2026-05-04T10:05:00Z"],
        events_dir,
    )
    assert p.returncode == 0, p.stderr
    return root


# --------------------------------------------------------------------------- help


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    yield path, group
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


COMMANDS = [pytest.param(p, c, id=" ".join(p) or "main") for p, c in _commands(main)]


def test_every_command_is_covered() -> None:
    paths = {" ".join(p) for p, _ in _commands(main)}
    assert {"", "ingest", "ingest events", "ingest nodes", "ingest user-tasks", "nodes"} <= paths


@pytest.mark.parametrize(("path", "cmd"), COMMANDS)
def test_help_mentions_every_option(
    tmp_path: Path, path: tuple[str, ...], cmd: click.Command
) -> None:
    p = run([*path, "--help"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    assert p.stdout.startswith(f"Usage: discovery-history {' '.join(path)}".rstrip())
    for param in cmd.params:
        if isinstance(param, click.Option):
            for opt in param.opts:
                assert opt in p.stdout, f"{opt} missing from `{' '.join(path)} --help`"
        else:
            assert param.name.upper() in p.stdout
    if isinstance(cmd, click.Group):
        for name in cmd.commands:
            assert name in p.stdout
    short = run([*path, "-h"], tmp_path)
    assert short.stdout == p.stdout


def test_version(tmp_path: Path) -> None:
    p = run(["--version"], tmp_path)
    assert p.returncode == 0 and "0.1.0" in p.stdout


# --------------------------------------------------------------------------- one-line errors

NODES_ERRORS = [
    pytest.param(["nodes", "--last", "bogus"], ["invalid duration 'bogus'"], id="bad-last"),
    pytest.param(["nodes", "--last", "0s"], ["greater than zero"], id="zero-last"),
    pytest.param(["nodes", "--last", "-1h"], ["invalid duration '-1h'"], id="negative-last"),
    pytest.param(["nodes", "--cloud", "gcp"], ["'gcp'", "allowed: aws, azure"], id="unknown-cloud"),
    pytest.param(
        ["nodes", "--cloud", "aws,gcp"], ["'gcp'", "allowed: aws, azure"], id="unknown-in-list"
    ),
    pytest.param(
        ["nodes", "--cloud", "aws,,azure"],
        ["empty cloud", "allowed: aws, azure"],
        id="empty-element",
    ),
    pytest.param(
        ["nodes", "--cloud", "aws,"], ["empty cloud", "allowed: aws, azure"], id="trailing-comma"
    ),
    pytest.param(["nodes", "--cloud", ","], ["empty cloud"], id="only-comma"),
    pytest.param(
        ["nodes", "--last", "1h", "--from", "2026-05-04"], ["--last", "--from"], id="last-with-from"
    ),
    pytest.param(
        ["nodes", "--from", "2026-05-04", "--to", "2026-05-03"],
        ["--to", "after --from"],
        id="to-before-from",
    ),
    pytest.param(
        ["nodes", "--from", "2026-05-04T10:00:00Z", "--to", "2026-05-04T12:00:00+02:00"],
        ["after --from"],
        id="to-equals-from-other-offset",
    ),
    pytest.param(["nodes", "--format", "xml"], ["--format", "'xml'", "--help"], id="bad-format"),
    pytest.param(
        ["nodes", "--from", "last tuesday"], ["invalid time 'last tuesday'"], id="bad-from"
    ),
]


@pytest.mark.parametrize(("args", "fragments"), NODES_ERRORS)
def test_nodes_input_errors_are_one_line(lake: Path, tmp_path: Path, args, fragments) -> None:
    pytest.importorskip("pipeline.report.render")
    p = run(["--store", str(lake), *args], tmp_path)
    assert_one_line_error(p, *fragments)


def test_nodes_to_alone_or_with_last_ends_the_window_there(lake: Path, tmp_path: Path) -> None:
    explicit = run(["--store", str(lake), "nodes", "--from", "2026-05-04T09:05:00Z", "--to",
                    "2026-05-04T10:05:00Z", "--format", "json"], tmp_path)
    for args in (["--to", "2026-05-04T10:05:00Z"], ["--last", "1h", "--to", "2026-05-04T10:05:00Z"]):
        p = run(["--store", str(lake), "nodes", *args, "--format", "JSON"], tmp_path)
        assert (p.returncode, p.stdout) == (0, explicit.stdout), p.stderr


def test_nodes_missing_store_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("pipeline.report.render")
    p = run(["--store", str(tmp_path / "nowhere"), "nodes", *WINDOW], tmp_path)
    assert_one_line_error(p, "no store at", str(tmp_path / "nowhere"))
    assert not (tmp_path / "nowhere").exists()


def test_nodes_default_store_is_lake_in_cwd(tmp_path: Path) -> None:
    pytest.importorskip("pipeline.report.render")
    p = run(["nodes"], tmp_path)
    assert_one_line_error(p, "no store at lake")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        pytest.param(
            ["ingest", "events", "{tmp}/missing.log"],
            ["no such file or folder", "{tmp}/missing.log"],
            id="missing-path",
        ),
        pytest.param(
            ["ingest", "events", "{events}", "{tmp}/nope/*.log"],
            ["no such file or folder", "{tmp}/nope/*.log"],
            id="glob-matching-nothing",
        ),
        pytest.param(
            ["ingest", "events", "{events}", "--since", "soon"],
            ["invalid time 'soon'"],
            id="bad-since",
        ),
        pytest.param(
            ["ingest", "events", "{events}", "--until", "2026-02-30"],
            ["invalid date"],
            id="bad-until",
        ),
        pytest.param(
            ["ingest", "nodes", "{tmp}/missing.json"],
            ["cannot read", "{tmp}/missing.json"],
            id="missing-snapshot",
        ),
        pytest.param(
            ["ingest", "nodes", "{tmp}/binary.json"],
            ["not UTF-8", "{tmp}/binary.json"],
            id="snapshot-not-utf8",
        ),
        pytest.param(
            ["ingest", "user-tasks", "{tmp}/text.json"],
            ["is not a tctl listing", "tctl get user_tasks --format=json", "YAML", "{tmp}/text.json"],
            id="snapshot-not-a-listing",
        ),
        pytest.param(
            ["ingest", "nodes", "{events}/nodes-ok.json", "--at", "noon"],
            ["invalid time 'noon'"],
            id="bad-at",
        ),
    ],
)
def test_ingest_errors_are_one_line(tmp_path: Path, events_dir: Path, args, fragments) -> None:
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe[]")
    (tmp_path / "text.json").write_text("user tasks: none\n")
    write_json(events_dir / "nodes-ok.json", [])
    sub = {"{tmp}": str(tmp_path), "{events}": str(events_dir)}

    def fill(s: str) -> str:
        for k, v in sub.items():
            s = s.replace(k, v)
        return s

    store = tmp_path / "lake"
    p = run(["--store", str(store), *map(fill, args)], tmp_path)
    assert_one_line_error(p, *map(fill, fragments))
    assert not store.exists()  # nothing was written


def test_unreadable_snapshot_file_is_one_line(tmp_path: Path) -> None:
    f = write_json(tmp_path / "nodes.json", [make_aws_node("i-0a")])
    f.chmod(0)
    try:
        if os.access(f, os.R_OK):
            pytest.skip("running as a user that can read mode-000 files (root)")
        p = run(["--store", str(tmp_path / "lake"), "ingest", "nodes", str(f)], tmp_path)
    finally:
        f.chmod(0o600)
    assert_one_line_error(p, "cannot read", str(f), "ermission")


def test_store_path_that_is_a_file_is_one_line(tmp_path: Path, events_dir: Path) -> None:
    (tmp_path / "afile").write_text("x")
    p = run(["--store", str(tmp_path / "afile"), "ingest", "events", str(events_dir)], tmp_path)
    assert_one_line_error(p, str(tmp_path / "afile"))


# --------------------------------------------------------------------------- ingest


def test_ingest_events_prints_the_conservation_line(tmp_path: Path, events_dir: Path) -> None:
    store = tmp_path / "lake"
    p = run(["--store", str(store), "ingest", "events", str(events_dir / "auth")], tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "read 5 = stored 3 + duplicates 0 + skipped 1 + quarantined 1\n"
    again = run(["--store", str(store), "ingest", "events", str(events_dir / "auth")], tmp_path)
    assert again.stdout == "read 5 = stored 0 + duplicates 3 + skipped 1 + quarantined 1\n"
    assert "Traceback" not in p.stderr + again.stderr


def test_ingest_events_window_flags(tmp_path: Path) -> None:
    f = write_lines(
        tmp_path / "e.log", [make_run("i-1", at=T0), make_run("i-2", at=T0.replace(hour=12))]
    )
    p = run(
        [
            "--store",
            str(tmp_path / "lake"),
            "ingest",
            "events",
            str(f),
            "--since",
            "2026-05-04T09:00:00Z",
            "--until",
            "2026-05-04T12:00:00Z",
        ],
        tmp_path,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == "read 2 = stored 1 + duplicates 0 + skipped 1 + quarantined 0\n"


def test_ingest_json_summary_on_stdout_line_on_stderr(tmp_path: Path, events_dir: Path) -> None:
    p = run(
        ["--store", str(tmp_path / "lake"), "ingest", "events", "--json", str(events_dir / "auth")],
        tmp_path,
    )
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert (summary["read"], summary["stored"], summary["quarantined"]) == (5, 3, 1)
    assert p.stderr.strip() == "read 5 = stored 3 + duplicates 0 + skipped 1 + quarantined 1"


@pytest.mark.parametrize("kind", ["nodes", "user-tasks"])
def test_ingest_snapshot_prints_the_conservation_line(tmp_path: Path, kind: str) -> None:
    doc = (
        [make_aws_node("i-0a"), "junk"]
        if kind == "nodes"
        else [
            {"kind": "user_task", "metadata": {"name": "t"}, "spec": {"task_type": "discover-ec2"}}
        ]
    )
    f = write_json(tmp_path / "snap.json", doc)
    p = run(
        ["--store", str(tmp_path / "lake"), "ingest", kind, str(f), "--at", "2026-05-04"], tmp_path
    )
    assert p.returncode == 0, p.stderr
    want = (
        "read 2 = stored 1 + duplicates 0 + skipped 1 + quarantined 0"
        if kind == "nodes"
        else "read 1 = stored 1 + duplicates 0 + skipped 0 + quarantined 0"
    )
    assert p.stdout == want + "\n"


def test_env_store_is_honoured_and_flag_wins(tmp_path: Path, events_dir: Path) -> None:
    env_store = tmp_path / "from-env"
    p = run(
        ["ingest", "events", str(events_dir / "auth")],
        tmp_path,
        DISCOVERY_HISTORY_STORE=str(env_store),
    )
    assert p.returncode == 0, p.stderr
    assert (env_store / "_manifest.json").is_file()
    assert not (tmp_path / "lake").exists()
    flag_store = tmp_path / "from-flag"
    p = run(
        ["--store", str(flag_store), "ingest", "events", str(events_dir / "auth")],
        tmp_path,
        DISCOVERY_HISTORY_STORE=str(env_store),
    )
    assert p.returncode == 0 and (flag_store / "_manifest.json").is_file()
    assert "stored 3" in p.stdout  # a fresh store, not the env one


# --------------------------------------------------------------------------- nodes


def test_nodes_text_report(lake: Path, tmp_path: Path) -> None:
    pytest.importorskip("pipeline.report.render")
    p = run(["--store", str(lake), "nodes", *WINDOW], tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    lines = p.stdout.splitlines()
    assert lines[0].split() == [
        "Cloud",
        "Account",
        "Region",
        "Instance",
        "Time",
        "Status",
        "Details",
    ]
    assert lines[0].startswith("Cloud Account")
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert [line.split()[:3] for line in lines[2:]] == [
        ["AWS", "1234567890...", "us-east-1"],
        ["AWS", "1234567890...", "us-east-1"],
        ["Azure", "6f1d2c3b-4...", "westeurope"],
    ]
    assert lines[2].split()[3:6] == ["i-0a", "2026-05-04...", "Online"]


def test_nodes_env_store(lake: Path, tmp_path: Path) -> None:
    pytest.importorskip("pipeline.report.render")
    via_env = run(["nodes", *WINDOW], tmp_path, DISCOVERY_HISTORY_STORE=str(lake))
    via_flag = run(["--store", str(lake), "nodes", *WINDOW], tmp_path)
    assert via_env.returncode == 0, via_env.stderr
    assert via_env.stdout == via_flag.stdout


@pytest.mark.parametrize(
    ("args", "want_clouds"),
    [
        pytest.param(["--cloud", "AWS"], ["AWS", "AWS"], id="aws-upper-case"),
        pytest.param(["--cloud", " azure "], ["Azure"], id="azure-spaces"),
        pytest.param(["--cloud", "azure,aws"], ["AWS", "AWS", "Azure"], id="both-aws-first"),
        pytest.param(["--failures-only"], ["AWS", "Azure"], id="failures-only"),
    ],
)
def test_nodes_filters(lake: Path, tmp_path: Path, args, want_clouds) -> None:
    pytest.importorskip("pipeline.report.render")
    p = run(["--store", str(lake), "nodes", *WINDOW, *args], tmp_path)
    assert p.returncode == 0, p.stderr
    assert [line.split()[0] for line in p.stdout.splitlines()[2:]] == want_clouds


def test_nodes_empty_window(lake: Path, tmp_path: Path) -> None:
    pytest.importorskip("pipeline.report.render")
    p = run(["--store", str(lake), "nodes", "--from", "2020-01-01", "--to", "2020-01-02"], tmp_path)
    assert (p.returncode, p.stdout) == (0, "No instances found.\n")


def test_nodes_json(lake: Path, tmp_path: Path) -> None:
    pytest.importorskip("pipeline.report.render")
    p = run(["--store", str(lake), "nodes", *WINDOW, "--format", "json"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith('[\n    {\n        "region"')
    rows = json.loads(p.stdout)
    keys = [r["aws"]["instance_id"] if "aws" in r else r["azure"]["vm_id"] for r in rows]
    assert keys == ["i-0a", "i-0b", VM]  # AWS first; ties broken by key
    assert [r["is_online"] for r in rows] == [True, False, False]
    assert [r["run_result"]["exit_code"] for r in rows] == [0, 150, 1]
    assert rows[0]["expiry"] == "2026-05-04T10:10:00Z" and "expiry" not in rows[1]


def widest(text: str) -> int:
    return max(len(line.rstrip()) for line in text.splitlines())


def test_width_flag_and_columns_env_change_the_table(lake: Path, tmp_path: Path) -> None:
    pytest.importorskip("pipeline.report.render")
    base = ["--store", str(lake), "nodes", *WINDOW]
    default = run(base, tmp_path).stdout
    assert run([*base, "--width", "80"], tmp_path).stdout == default  # not a terminal: 80
    wide_flag = run([*base, "--width", "200"], tmp_path).stdout
    wide_env = run(base, tmp_path, COLUMNS="200").stdout
    narrow_env = run(base, tmp_path, COLUMNS="60").stdout
    assert wide_flag == wide_env
    assert len({default, wide_flag, narrow_env}) == 3
    assert widest(default) < widest(wide_flag)
    assert "1234567890..." in default  # W=80: cap 10 bytes
    assert "1234567..." in narrow_env and "1234567890..." not in narrow_env  # W=60: cap 7
    assert "123456789012 " in wide_flag and "2026-05-04T10:00:00Z" in wide_flag  # W=200: uncut
    assert run([*base, "--width", "200"], tmp_path, COLUMNS="60").stdout == wide_flag  # flag wins
    for bad in ("abc", "0", ""):
        assert run(base, tmp_path, COLUMNS=bad).stdout == default


def test_nodes_yaml_prints_the_documents_before_a_refused_row(tmp_path: Path) -> None:
    """As tctl: earlier documents are on stdout when yaml.v2 refuses a later row (DEL)."""
    pytest.importorskip("pipeline.report.render")
    events = tmp_path / "events"
    write_lines(events / "auth" / "2026-05-04.00:00:00.log", [
        make_run("i-0a", uid="y-1"),
        make_run("i-0b", "TDS00W", at=T0 - timedelta(minutes=1), exit_code=1, stderr="bell\x7f",
                 uid="y-2"),
    ])
    store = tmp_path / "lake"
    assert run(["--store", str(store), "ingest", "events", str(events)], tmp_path).returncode == 0
    p = run(["--store", str(store), "nodes", *WINDOW, "--format", "yaml"], tmp_path)
    assert p.returncode == 1
    assert p.stdout.startswith("aws:\n") and p.stdout.endswith("time: \"2026-05-04T10:00:00Z\"\n---\n")
    assert p.stdout.count("instance_id:") == 1
    assert len(p.stderr.splitlines()) == 1 and "U+007F" in p.stderr and "Traceback" not in p.stderr


def test_nodes_narrow_widths(lake: Path, tmp_path: Path) -> None:
    """W = 11..15: Go's integer division makes the cap 0, nothing is cut; W <= 10 (where tctl
    panics): one clear line, exit 1."""
    pytest.importorskip("pipeline.report.render")
    base = ["--store", str(lake), "nodes", *WINDOW]
    uncut = run([*base, "--width", "11"], tmp_path)
    assert uncut.returncode == 0 and "123456789012 " in uncut.stdout
    assert "2026-05-04T10:00:00Z " in uncut.stdout and "12345..." not in uncut.stdout
    assert run([*base, "--width", "15"], tmp_path).stdout == uncut.stdout
    line = assert_one_line_error(run([*base, "--width", "10"], tmp_path), "table too narrow",
                                 "at least 11")
    assert "--format json" in line or "--width" in line


# --------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("value", "want"),
    [
        pytest.param("", ["aws", "azure"], id="default-both"),
        pytest.param("aws", ["aws"], id="aws"),
        pytest.param("AZURE", ["azure"], id="upper-case"),
        pytest.param("azure, aws", ["azure", "aws"], id="list-with-space"),
        pytest.param("aws,AWS", ["aws"], id="repeated-once"),
    ],
)
def test_parse_clouds(value: str, want: list[str]) -> None:
    assert parse_clouds(value) == want


@pytest.mark.parametrize("value", ["gcp", "aws,", ",", " ", "aws;azure"])
def test_parse_clouds_rejects(value: str) -> None:
    with pytest.raises(InputError, match="allowed: aws, azure"):
        parse_clouds(value)


def test_resolve_window() -> None:
    from pipeline.timeutil import to_ns

    now, h = to_ns(T0), 3600 * 10**9
    assert resolve_window(None, None, None, now) == (now - h, now)  # default 1h
    assert resolve_window("90m", None, None, now) == (now - 90 * 60 * 10**9, now)
    assert resolve_window(None, "2026-05-04T09:00:00Z", None, now) == (now - h, now)
    # every digit typed counts; --to alone ends the default window there (None: all history)
    assert resolve_window(None, "2026-05-04T09:00:00.000000001Z", "2026-05-04T09:00:00.5Z",
                          now) == (now - h + 1, now - h + 5 * 10**8)
    assert resolve_window(None, None, "2026-05-04T09:00:00Z", now) == (now - 2 * h, now - h)
    assert resolve_window(None, None, "2026-05-04T09:00:00Z", now, None) == (0, now - h)
    assert resolve_window("2h", None, "2026-05-04T09:00:00Z", now) == (now - 3 * h, now - h)
    with pytest.raises(InputError, match="--to 2026-05-04 is not after --from 2026-05-04T09:00"):
        resolve_window(None, "2026-05-04T09:00", "2026-05-04", now)


@pytest.mark.parametrize(
    ("explicit", "columns", "want"),
    [
        pytest.param(120, "60", 120, id="flag-wins"),
        pytest.param(None, "60", 60, id="columns"),
        pytest.param(None, "x", 80, id="bad-columns"),
        pytest.param(None, None, 80, id="not-a-terminal"),
    ],
)
def test_terminal_width(monkeypatch: pytest.MonkeyPatch, explicit, columns, want) -> None:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert terminal_width(explicit) == want
