"""The report files of the DAG (`build_report`, an adapter over the history report) and their
delivery (`send_report`) through a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import asyncio
import csv
import email
import email.policy
import io
import json
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.ingest.events import ingest_events
from pipeline.ingest.snapshots import ingest_snapshot
from pipeline.publish.build import build_report
from pipeline.publish.mail import MailError, send_report
from pipeline.query.views import connect
from pipeline.report.nodes import nodes_report
from pipeline.report.render import RENDERERS
from pipeline.store import Store
from tests.conftest import (
    make_aws_node,
    make_azure_run,
    make_run,
    make_task,
    write_json,
    write_lines,
)

DAY = datetime(2026, 5, 4, tzinfo=UTC)
END = DAY + timedelta(days=1)
NOW = datetime(2026, 5, 5, 0, 31, tzinfo=UTC)
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)> & \"q\""
VM = "0f8e1b2a-1111-4222-8333-444455556666"


def h(hours: float) -> datetime:
    return DAY + timedelta(hours=hours)


def _events() -> list[dict]:
    return [
        # i-a: 3 attempts (SSM invocations), 2 failures, the last one succeeded
        make_run("i-a", "TDS00W", h(1), exit_code=150, command_id="cmd-a1"),
        make_run("i-a", "TDS00W", h(2), exit_code=150, command_id="cmd-a2"),
        make_run("i-a", "TDS00I", h(3), command_id="cmd-a3"),
        # i-b: 2 failed attempts, both 104; the second has two steps (one attempt), hostile output
        make_run("i-b", "TDS00W", h(4), exit_code=104, stderr="cannot reach proxy",
                 command_id="cmd-b1"),
        make_run("i-b", "TDS00I", h(5) - timedelta(minutes=1), stdout="step 1 done",
                 command_id="cmd-b2"),
        make_run("i-b", "TDS00W", h(5), exit_code=104, stdout=HOSTILE, command_id="cmd-b2"),
        # Azure: an API error, in a hostile resource group
        make_azure_run(VM, "TAZ00E", h(6), api_error="AuthorizationFailed <b>", exit_code=0,
                       resource_group="rg-<i>web</i>"),
        # 3 days earlier: in the 7-day summary, not in the day's report
        make_run("i-c", "TDS00W", DAY - timedelta(days=3), exit_code=127, command_id="cmd-c1"),
        # 8 days earlier: outside the 7-day summary
        make_run("i-old", "TDS00W", DAY - timedelta(days=7, hours=1), exit_code=101,
                 command_id="cmd-old"),
    ]


@pytest.fixture
def day_store(store: Store, tmp_path: Path) -> Store:
    path = write_lines(tmp_path / "auth" / "events.jsonl", _events())
    ingest_events(store, [str(path)])
    nodes = write_json(tmp_path / "nodes.json", [make_aws_node("i-a", expires=END)])
    tasks = write_json(tmp_path / "tasks.json",
                       [make_task("task-1", "ec2-ssm-script-failure", ["i-a"])])
    ingest_snapshot(store, "nodes", str(nodes), END)
    ingest_snapshot(store, "user_tasks", str(tasks), END)
    return store


def _expected(store: Store, start=DAY, end=END):
    with connect(store) as con:
        return nodes_report(con, start, end, failures_only=True)


def _csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


# --- build_report (an adapter over write_history_report) --------------------------------------

FILES = ["changes.csv", "failure-trend.png", "failures.csv", "failures.md", "index.html",
         "instances.csv", "reasons.csv", "report.md", "top-reasons.png", "trends.csv"]


def test_build_writes_the_history_report_with_the_failures_as_markdown_csv_and_html(
        day_store: Store, tmp_path: Path):
    out = tmp_path / "reports" / "2026-05-04"
    summary = build_report(day_store, out, start=DAY, end=END)
    rows = _expected(day_store)

    assert sorted(p.name for p in out.iterdir()) == FILES
    assert (out / "failures.csv").read_bytes() == RENDERERS["csv"](rows)
    assert (out / "failures.md").read_bytes() == RENDERERS["markdown"](rows)
    assert [r.key for r in rows] == ["i-b", "i-a", VM.lower()]  # newest first; i-a: a user task
    assert summary == {
        "dir": str(out), "start": "2026-05-04T00:00:00Z", "end": "2026-05-05T00:00:00Z",
        "failures": 3, "files": FILES,
        # the day: 7 events, 6 attempts (i-b's two steps are one), 5 failed, 3 instances
        "attempts": 6, "failed_attempts": 5, "failing_instances": 3,
        # the 7 days before the end: the day plus i-c (i-old is 8 days old); still failing:
        # instances whose newest attempt failed (i-b, the Azure VM, i-c; i-a recovered)
        "summary_days": 7, "summary_attempts": 7, "summary_failures": 6,
        "summary_failing_instances": 4, "summary_still_failing": 3,
    }


def test_html_is_self_contained_and_escapes_every_event_text(day_store: Store, tmp_path: Path):
    build_report(day_store, tmp_path, start=DAY, end=END)
    page = (tmp_path / "index.html").read_text()

    tags = set(re.findall(r"<\s*([a-zA-Z0-9]+)", page))
    assert tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "code",
                    "div", "b", "span", "img", "table", "tr", "th", "td", "wbr"}
    sources = re.findall(r'\ssrc="([^"]*)"', page)
    assert len(sources) == 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "href" not in page and "http://" not in page and "https://" not in page
    assert "default-src 'none'" in page  # the page's Content-Security-Policy
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert "rg-&lt;i&gt;web&lt;/i&gt;/" + VM in page
    assert "AuthorizationFailed &lt;b&gt;" in page and "Failed (API error)" in page


def test_the_page_shows_the_day_and_the_trend_of_the_summary_days(day_store: Store,
                                                                   tmp_path: Path):
    out = tmp_path / "report"
    build_report(day_store, out, start=DAY, end=END)
    page = (out / "index.html").read_text()
    card = lambda value, label: f"<b>{value}</b><span>{label}</span>"  # noqa: E731
    # the day's figures, attempts with SSM steps folded
    assert card(6, "install attempts (aws 5 · azure 1)") in page
    assert card(5, "failed attempts (83.3%)") in page
    assert card(3, "instances with a failure") in page
    assert card(2, "failing now (newest attempt failed)") in page
    assert "<h2>Failure trend (2026-04-28T00:00:00Z – 2026-05-05T00:00:00Z, per day)</h2>" in page
    # the day's failed attempts by reason, with their exit codes (also as a table on the page)
    reasons = _csv(out / "reasons.csv")
    assert [(r["reason"], r["failures"], r["exit_codes"]) for r in reasons] == [
        ("Agent did not join", "2", "150"), ("Proxy unreachable", "2", "104"),
        ("Missing Run Command permission", "1", "API error")]
    for r in reasons:
        assert f"<td>{r['reason']}</td><td class=\"n\">{r['failures']}</td>" in page
    # the trend covers the summary days per day: i-c 3 days before; i-old is outside
    trend = _csv(out / "trends.csv")
    assert [(r["bucket_start"], r["key"], r["failures"]) for r in trend] == [
        ("2026-05-01T00:00:00Z", "Unknown", "1"),
        ("2026-05-04T00:00:00Z", "Agent did not join", "2"),
        ("2026-05-04T00:00:00Z", "Proxy unreachable", "2"),
        ("2026-05-04T00:00:00Z", "Missing Run Command permission", "1")]
    assert "i-c" not in page  # the rest of the page is the day's
    for f in out.iterdir():
        if f.suffix != ".png":
            assert "i-old" not in f.read_text(), f.name


def test_an_empty_window_still_builds_a_report(day_store: Store, tmp_path: Path):
    start = DAY - timedelta(days=20)  # before any event or snapshot
    summary = build_report(day_store, tmp_path, start=start, end=start + timedelta(days=1))
    assert summary["failures"] == 0 and summary["attempts"] == 0
    assert summary["summary_attempts"] == 0 and summary["summary_still_failing"] == 0
    assert "No instances found." in (tmp_path / "index.html").read_text()
    assert (tmp_path / "failures.csv").read_text().count("\n") == 1  # the header only


def test_build_rejects_an_empty_window(day_store: Store, tmp_path: Path):
    with pytest.raises(ValueError, match="not after start"):
        build_report(day_store, tmp_path / "r", start=END, end=END)
    with pytest.raises(ValueError, match="summary_days must be at least 1"):
        build_report(day_store, tmp_path / "r", start=DAY, end=END, summary_days=0)
    assert not (tmp_path / "r").exists()


# --- send_report through a real SMTP server ---------------------------------------------------

USER, PASSWORD = "reporter", "pa55-Secret-9"


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connection(conn_id: str, port: int, password: str, monkeypatch) -> str:
    """An Airflow Connection for the SMTP provider, defined the standard way (env)."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}",
                       f"smtp://{USER}:{password}@127.0.0.1:{port}"
                       "?disable_ssl=true&disable_tls=true&timeout=10&retry_limit=0")
    return conn_id


@pytest.fixture
def smtp(recwarn, monkeypatch):
    """aiosmtpd on 127.0.0.1 requiring AUTH; yields (its Airflow Connection id, port, inbox)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    def check(server, session, envelope, mechanism, data):
        ok = (data.login, data.password) == (USER.encode(), PASSWORD.encode())
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 535 on failure

    inbox, port = _Inbox(), _free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, loop=asyncio.new_event_loop(),
                     authenticator=check, auth_required=True, auth_require_tls=False)
    ctl.start()
    try:
        yield connection("smtp_loopback", port, PASSWORD, monkeypatch), port, inbox
    finally:
        ctl.stop()


@pytest.fixture
def report_dir(day_store: Store, tmp_path: Path) -> Path:
    out = tmp_path / "reports" / "2026-05-04"
    build_report(day_store, out, start=DAY, end=END)
    return out


def _send(folder: Path, conn_id: str, recipients=("ops@example.com", "sre@example.com")):
    return send_report(folder, conn_id=conn_id, sender="discovery@example.com",
                       recipients=list(recipients), subject="Discovery failures 2026-05-04", now=NOW)


def test_mail_carries_the_page_and_the_csv_and_is_sent_once(report_dir: Path, smtp):
    conn_id, _, inbox = smtp
    result = _send(report_dir, conn_id)
    assert result["sent"] is True and result["recipients"] == 2
    assert len(inbox.messages) == 1
    sender, rcpts, raw = inbox.messages[0]
    assert (sender, rcpts) == ("discovery@example.com", ["ops@example.com", "sre@example.com"])

    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == "Discovery failures 2026-05-04"
    assert msg["To"] == "ops@example.com, sre@example.com"
    html = msg.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert html == (report_dir / "index.html").read_text()
    (attachment,) = msg.iter_attachments()
    assert attachment.get_filename() == "failures-2026-05-04.csv"
    # Airflow's SMTP hook attaches files as application/octet-stream; clients go by the name
    assert attachment.get_content_type() == "application/octet-stream"
    table = list(csv.DictReader(io.StringIO(attachment.get_content().decode())))
    assert [r["InstanceKey"] for r in table] == ["i-b", "i-a", VM.lower()]
    assert HOSTILE in table[0]["Details"]

    marker = json.loads((report_dir / "sent.json").read_text())
    assert marker["recipients"] == ["ops@example.com", "sre@example.com"]
    assert marker["message_id"] == msg["Message-ID"] and marker["sent_at"] == "2026-05-05T00:31:00Z"

    again = _send(report_dir, conn_id)
    assert again["sent"] is False and "already sent" in again["reason"]
    assert len(inbox.messages) == 1


def test_a_refused_login_fails_without_showing_the_password(report_dir: Path, smtp,
                                                            monkeypatch):
    _, port, inbox = smtp
    wrong = connection("smtp_wrong", port, "wrong-Secret-1", monkeypatch)
    with pytest.raises(MailError, match=f"through 127.0.0.1:{port} failed") as exc:
        _send(report_dir, wrong)
    assert "wrong-Secret-1" not in str(exc.value)
    assert not (report_dir / "sent.json").exists() and inbox.messages == []


def test_an_unreachable_server_fails_and_records_nothing(report_dir: Path, monkeypatch):
    nowhere = connection("smtp_nowhere", _free_port(), PASSWORD, monkeypatch)
    with pytest.raises(MailError, match="ConnectionRefusedError") as exc:
        _send(report_dir, nowhere)
    assert PASSWORD not in str(exc.value)
    assert not (report_dir / "sent.json").exists()


def test_no_recipients_is_an_error(report_dir: Path, smtp):
    with pytest.raises(MailError, match="no recipients"):
        _send(report_dir, smtp[0], recipients=())


def test_an_undefined_connection_is_named(report_dir: Path):
    with pytest.raises(MailError, match="through smtp_not_defined failed") as exc:
        _send(report_dir, "smtp_not_defined")
    assert "not found" in str(exc.value) and "\n" not in str(exc.value)
    assert not (report_dir / "sent.json").exists()
