"""Security: user input never reaches SQL (or a shell) as text, secrets stay out of messages,
the store is not world-readable, event text is inert in reports.

Report escaping is tested where the reports are: tests/publish/test_history_report.py
(`<script>` in stdout and API errors, escaped in HTML and Markdown, inert in headless Chromium)
and tests/publish/test_build_mail.py (every event text escaped, no tag but the page's own)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socketserver
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from pipeline.cli.main import main
from pipeline.ingest.events import ingest_events
from pipeline.ingest.snapshots import ingest_snapshot
from pipeline.query.views import connect
from pipeline.sources import LINE_SCHEMA
from pipeline.store import Store
from pipeline.store.maintenance import compact
from pipeline.store.manifest import LOCK
from pipeline.store.verify import verify
from tests.conftest import (
    T0,
    make_aws_node,
    make_azure_run,
    make_run,
    make_task,
    write_json,
    write_lines,
)
from tests.reliability.conftest import tally

SCRIPT = Path(sys.executable).with_name("discovery-history")
CANARY = "PWNED"  # what an executed payload would create in the working folder
PAYLOADS = [
    "'; DROP TABLE runs; --",
    '") OR 1=1 --',
    f"$(touch {CANARY})",
    f"`touch {CANARY}`; touch {CANARY}",
    "\\'; SELECT 1; --",
    "i-0a' OR '1'='1",
    "%' OR instance_key LIKE '%",
    "i-0a\\",
]
VM = "0f8a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b"
H = timedelta(hours=1)


def events() -> list[dict]:
    return [make_run("i-0a", "TDS00W", T0, exit_code=150, stdout="<script>x</script>"),
            make_run("i-0b", at=T0 + H), make_azure_run(VM, "TAZ00E", T0, api_error="denied")]


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sec")
    store = Store(root / "lake")
    ingest_events(store, [str(write_lines(root / "events.log", events()))])
    ingest_snapshot(store, "nodes", str(write_json(root / "nodes.json", [make_aws_node("i-0b")])),
                    T0 + 2 * H)
    return root / "lake"


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != LOCK}


# (command, the option's arguments with {p} for the payload, exit codes, what the output says)
INJECTION_POINTS = [
    (["nodes", "--cloud", "{p}"], {1}, "unknown cloud provider"),
    (["nodes", "--from", "{p}"], {1}, "invalid"),
    (["nodes", "--from", "2026-05-04", "--to", "{p}"], {1}, "invalid"),
    (["nodes", "--last", "{p}"], {1}, "invalid duration"),
    (["history", "{p}"], {1}, "no install attempts of instance"),
    (["history", "i-0a", "--from", "{p}"], {1}, "invalid"),
    (["trends", "--by", "{p}"], {2}, "Invalid value for '--by'"),
    (["trends", "--last", "{p}"], {1}, "invalid duration"),
    (["report", "--out", "{out}", "--from", "{p}"], {1}, "invalid"),
    (["ingest", "events", "{p}"], {1}, "no such file or folder"),
    (["ingest", "events", "--since", "{p}", "{events}"], {1}, "invalid"),
    (["ingest", "nodes", "{nodes}", "--at", "{p}"], {1}, "invalid"),
]


def test_injection_strings_in_every_option_are_only_data(lake: Path, tmp_path: Path,
                                                         monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DISCOVERY_HISTORY_STORE", raising=False)
    events_file = write_lines(tmp_path / "ev.log", events())
    nodes_file = write_json(tmp_path / "nodes.json", [make_aws_node("i-0b")])
    before, runner, tried = tree(lake), CliRunner(), 0
    for args, codes, says in INJECTION_POINTS:
        for p in PAYLOADS:
            argv = ["--store", str(lake)] + [a.format(p=p, out=tmp_path / "r", events=events_file,
                                                      nodes=nodes_file) for a in args]
            r = runner.invoke(main, argv, catch_exceptions=False)
            shown = r.output  # stdout and stderr
            assert r.exit_code in codes, (argv, shown)
            assert says in shown and "Traceback" not in shown, (argv, shown)
            if r.exit_code == 1:  # the CLI's own errors: one line, naming the bad value
                lines = r.stderr.splitlines()
                assert len(lines) == 1 and lines[0].startswith("discovery-history: error: ")
            tried += 1
    for p in PAYLOADS[:3]:  # a folder named like a payload is just a folder
        r = runner.invoke(main, ["--store", str(lake), "report", "--out", str(tmp_path / p),
                                 "--from", "2026-05-04", "--to", "2026-05-05"])
        assert r.exit_code == 0 and (tmp_path / p / "index.html").is_file(), r.output
        tried += 1
    assert not (tmp_path / CANARY).exists()
    assert tree(lake) == before  # not one byte of the store changed
    with connect(Store(lake)) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchall() == [(3,)]
    tally("security", "injection strings tried in CLI options", tried)


def test_payloads_as_values_are_stored_and_found_verbatim(tmp_path: Path, monkeypatch) -> None:
    """The same strings as event data and as the instance a user asks about: stored as given,
    found exactly (no LIKE, no quote games), nothing executed."""
    monkeypatch.chdir(tmp_path)
    store = Store(tmp_path / "lake")
    evil = [make_run(p, "TDS00W", T0 + n * H, exit_code=1, uid=f"evil-{n}", stdout=p)
            for n, p in enumerate(PAYLOADS)]
    assert ingest_events(store, [str(write_lines(tmp_path / "evil.log", evil))]).stored == len(evil)
    runner = CliRunner()
    for p in PAYLOADS:
        r = runner.invoke(main, ["--store", str(store.root), "history", p, "--format", "json"],
                          catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert f'"instance_key": {json.dumps(p)}' in r.output
        assert r.output.count('"uid": "evil-') == 1  # exactly its own attempt
    assert not (tmp_path / CANARY).exists()
    tally("security", "injection strings stored and looked up as data", len(PAYLOADS))


def test_quotes_and_glob_characters_in_store_and_input_paths(tmp_path: Path) -> None:
    """Paths reach DuckDB as SQL literals or parameters: a store and an input whose names hold
    quotes, backslashes and glob characters work end to end, through the real console script."""
    folder = tmp_path / "it's \"here\" [1] * {x}"
    store, log = folder / "la'ke", folder / "in \\ put" / "events'; DROP TABLE runs; --.log"
    write_lines(log, events())
    env = {k: v for k, v in os.environ.items() if k != "DISCOVERY_HISTORY_STORE"}
    ingest = subprocess.run([str(SCRIPT), "--store", str(store), "ingest", "events", str(log)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert ingest.returncode == 0, ingest.stderr
    assert "read 3 = stored 3 + duplicates 0 + skipped 0 + quarantined 0" in ingest.stdout
    nodes = subprocess.run([str(SCRIPT), "--store", str(store), "nodes", "--from", "2026-05-04",
                            "--to", "2026-05-05", "--format", "csv"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert nodes.returncode == 0, nodes.stderr
    assert "i-0a" in nodes.stdout and VM in nodes.stdout
    again = ingest_events(Store(store), [str(log)])  # dedup reads the stored files by path
    assert (again.stored, again.duplicates) == (0, 3)
    out = folder / "report's dir"
    r = CliRunner().invoke(main, ["--store", str(store), "report", "--out", str(out), "--from",
                                  "2026-05-04", "--to", "2026-05-05"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert (out / "index.html").exists()
    assert compact(Store(store))["partitions"] >= 0 and verify(Store(store)) == []


def test_a_store_path_with_a_backslash_is_refused_in_one_line(tmp_path: Path) -> None:
    """DuckDB's partitioned writes take a backslash for a folder separator, so such a store
    cannot be written correctly: the writer refuses it before touching anything."""
    store = tmp_path / "la\\ke"
    p = subprocess.run([str(SCRIPT), "--store", str(store), "ingest", "events",
                        str(write_lines(tmp_path / "a.log", events()))],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and p.stdout == "", p.stderr
    assert p.stderr.startswith("discovery-history: error: ") and p.stderr.count("\n") == 1
    assert "backslash" in p.stderr and not store.exists()


def test_snapshot_commands_run_without_a_shell(tmp_path: Path, monkeypatch) -> None:
    from pipeline.ingest.snapshot_cmd import run_snapshot

    monkeypatch.chdir(tmp_path)
    cmd = f"printf %s '[]' ; touch {CANARY} && $(touch {CANARY}) | tee {CANARY} `touch {CANARY}`"
    out = run_snapshot(cmd, tmp_path / "nodes.json", timeout=30)
    # printf got every metacharacter as an argument; nothing ran
    assert out.read_text().startswith("[];touch")
    assert not (tmp_path / CANARY).exists()


# --------------------------------------------------------------------------- secrets

SECRET = "s3cr3t-Hunter2-XyZ"


def test_configuration_errors_never_show_the_smtp_password(monkeypatch) -> None:
    from pipeline.schedule.config import ConfigError, load_settings

    with pytest.raises(ConfigError) as e:  # a misspelt key holding a secret
        load_settings({"smtp_pasword": SECRET, "lookback": "soon"})
    assert SECRET not in str(e.value) and SECRET not in repr(e.value)
    # the settings of the hand-built SMTP client are refused, naming the Airflow connection
    # to use instead, never echoing their values
    monkeypatch.setenv("DISCOVERY_HISTORY_SMTP_PASSWORD", SECRET)
    for overrides in ({}, {"smtp_password": SECRET}):
        with pytest.raises(ConfigError, match="smtp_password are no longer read") as e:
            load_settings(overrides)
        assert SECRET not in str(e.value) and "AIRFLOW_CONN_SMTP_DEFAULT" in str(e.value)
    monkeypatch.delenv("DISCOVERY_HISTORY_SMTP_PASSWORD")
    s = load_settings()
    for text in (repr(s), str(s), s.model_dump_json(), repr(s.model_dump())):
        assert SECRET not in text


class _EchoingSMTP(socketserver.StreamRequestHandler):
    """An SMTP server that refuses every login and quotes the client's AUTH data back (as some
    servers quote a bad command): what ends up in the error message the client raises?"""

    def handle(self) -> None:
        self.wfile.write(b"220 echo ESMTP\r\n")
        for raw in self.rfile:
            cmd = raw.decode(errors="replace").strip()
            if cmd.upper().startswith(("EHLO", "HELO")):
                self.wfile.write(b"250-echo\r\n250 AUTH PLAIN\r\n")
            elif cmd.upper().startswith("QUIT"):
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(f"535 5.7.8 authentication failed for: {cmd}\r\n".encode())


@contextlib.contextmanager
def echoing_smtp() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _EchoingSMTP)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _encodings(user: str, password: str) -> list[str]:
    """The password as SMTP AUTH sends it (PLAIN and LOGIN), besides itself."""
    plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return [password, plain, base64.b64encode(password.encode()).decode()]


def test_a_refusing_server_cannot_make_the_password_appear_in_the_error(tmp_path: Path,
                                                                       monkeypatch) -> None:
    from pipeline.publish.mail import MailError, send_report

    (tmp_path / "index.html").write_text("<p>report</p>")
    (tmp_path / "failures.csv").write_text("a\n")
    with echoing_smtp() as port:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_ECHO", f"smtp://reporter:{SECRET}@127.0.0.1:{port}"
                           "?disable_ssl=true&disable_tls=true&timeout=5&retry_limit=0")
        with pytest.raises(MailError) as e:
            send_report(tmp_path, conn_id="smtp_echo", sender="d@example.com",
                        recipients=["o@example.com"], subject="s", now=T0)
    text = str(e.value) + repr(e.value)
    assert not [enc for enc in _encodings("reporter", SECRET) if enc in text], text


# --------------------------------------------------------------------------- file modes


def _world_accessible(root: Path) -> list[str]:
    out = []
    for p in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(os.lstat(p).st_mode)
        if mode & 0o007:
            out.append(f"{oct(mode)} {p.relative_to(root.parent)}")
    return out


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


class _Probe:
    """A Source whose reading looks at the writer's staging folder while the lock is held: the
    folders that gate it (the root, `_staging`, the writer's own) admit no one else, so what
    DuckDB writes inside with its own modes is private."""

    name = "probe"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seen: list[str] = []

    def batches(self):
        gates = [self.root, self.root / "_staging", *(self.root / "_staging").iterdir()]
        assert len(gates) == 3  # the writer's own staging folder exists
        self.seen = [str(p) for p in gates if os.stat(p).st_mode & 0o007]
        yield pa.RecordBatch.from_pylist(
            [{"source": self.name, "line_no": 1, "line": b"{}", "error": None}], schema=LINE_SCHEMA)


@pytest.mark.parametrize("mask", [0o022, 0o000], ids=["umask-022", "umask-000"])
def test_the_store_writes_nothing_world_accessible(tmp_path: Path, mask: int) -> None:
    root = tmp_path / "lake"
    store, probe = Store(root), _Probe(root)
    with umask(mask):
        ingest_events(store, [str(write_lines(tmp_path / "a.log", events() + ["{bad"])), probe])
        ingest_events(store, [str(write_lines(tmp_path / "b.log", [make_run("i-0c", at=T0)]))])
        ingest_snapshot(store, "nodes", str(write_json(tmp_path / "n.json", [make_aws_node("i-0b")])),
                        T0)
        ingest_snapshot(store, "user_tasks",
                        str(write_json(tmp_path / "t.json", [make_task("t", "x", ["i-0a"])])), T0)
        compact(store)
    assert probe.seen == []  # staging, while the writer works
    assert _world_accessible(root) == []  # data, schema anchors, manifest, lock, folders
    assert verify(store) == []


def test_the_console_script_writes_nothing_world_accessible(tmp_path: Path) -> None:
    log = write_lines(tmp_path / "a.log", events())
    p = subprocess.run([str(SCRIPT), "--store", str(tmp_path / "lake"), "ingest", "events", str(log)],
                       capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(0))
    assert p.returncode == 0, p.stderr
    assert _world_accessible(tmp_path / "lake") == []
