"""The report files (`build_report`) and their delivery (`send_report`) through a real SMTP
server on loopback (aiosmtpd)."""

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

from pipeline.config import SmtpConfig
from pipeline.ingest.events import ingest_events
from pipeline.ingest.snapshots import ingest_snapshot
from pipeline.query import connect, nodes_report
from pipeline.report.build import build_report
from pipeline.report.mail import MailError, send_report
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
        # i-a: 3 attempts, 2 failures, last one succeeded
        make_run("i-a", "TDS00W", h(1), exit_code=150), make_run("i-a", "TDS00W", h(2), exit_code=150),
        make_run("i-a", "TDS00I", h(3)),
        # i-b: 2 failures, both 104, hostile output
        make_run("i-b", "TDS00W", h(4), exit_code=104, stderr="cannot reach proxy"),
        make_run("i-b", "TDS00W", h(5), exit_code=104, stdout=HOSTILE),
        # Azure: an API error, in a hostile resource group
        make_azure_run(VM, "TAZ00E", h(6), api_error="AuthorizationFailed <b>", exit_code=0,
                       resource_group="rg-<i>web</i>"),
        # 8 days earlier: outside the 7-day summary
        make_run("i-old", "TDS00W", DAY - timedelta(days=7, hours=1), exit_code=101),
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


# --- build_report -----------------------------------------------------------------------------


def test_build_writes_markdown_csv_and_html_of_the_failures(day_store: Store, tmp_path: Path):
    out = tmp_path / "reports" / "2026-05-04"
    summary = build_report(day_store, out, start=DAY, end=END)
    rows = _expected(day_store)

    assert sorted(p.name for p in out.iterdir()) == ["failures.csv", "failures.md", "index.html"]
    assert (out / "failures.csv").read_bytes() == RENDERERS["csv"](rows)
    assert (out / "failures.md").read_bytes() == RENDERERS["markdown"](rows)
    assert [r.key for r in rows] == ["i-b", "i-a", VM.lower()]  # newest first; i-a: a user task
    assert summary["failures"] == 3
    assert summary["start"] == "2026-05-04T00:00:00Z" and summary["end"] == "2026-05-05T00:00:00Z"
    # the 7-day summary: 6 attempts in the period (i-old is 8 days old)
    assert (summary["summary_attempts"], summary["summary_failures"]) == (6, 5)
    assert (summary["summary_failing_instances"], summary["summary_still_failing"]) == (3, 2)


def test_html_is_self_contained_and_escapes_every_event_text(day_store: Store, tmp_path: Path):
    build_report(day_store, tmp_path, start=DAY, end=END)
    page = (tmp_path / "index.html").read_text()

    tags = set(re.findall(r"<\s*([a-zA-Z0-9]+)", page))
    assert tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "code",
                    "table", "tr", "th", "td"}
    assert "src=" not in page.replace("src=x", "") and "href" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x" in page
    assert "rg-&lt;i&gt;web&lt;/i&gt;/" + VM in page
    assert "API error" in page and "Failed (API error)" in page


def test_html_summary_counts_by_cloud_and_exit_code(day_store: Store, tmp_path: Path):
    build_report(day_store, tmp_path, start=DAY, end=END)
    page = (tmp_path / "index.html").read_text()
    cells = lambda *c: "<tr>" + "".join(f"<td>{x}</td>" for x in c) + "</tr>"  # noqa: E731
    assert cells("AWS", 5, 4, 2, 1) in page  # attempts, failures, failing, still failing
    assert cells("Azure", 1, 1, 1, 1) in page
    assert cells("AWS", 104, 2, 2, 1) in page
    assert cells("AWS", 150, 2, 2, 1) in page
    assert cells("Azure", "API error", 1, 1, 1) in page
    assert cells("AWS", 0, 1, 0, 0) in page
    assert "101" not in re.sub(r"<h1>.*?</h1>", "", page)  # outside the summary period


def test_an_empty_window_still_builds_a_report(day_store: Store, tmp_path: Path):
    start = DAY - timedelta(days=20)  # before any event or snapshot
    summary = build_report(day_store, tmp_path, start=start, end=start + timedelta(days=1))
    assert summary["failures"] == 0 and summary["summary_attempts"] == 0
    assert "No instances found." in (tmp_path / "index.html").read_text()
    assert (tmp_path / "failures.csv").read_text().count("\n") == 1  # the header only


def test_build_rejects_an_empty_window(day_store: Store, tmp_path: Path):
    with pytest.raises(ValueError, match="not after start"):
        build_report(day_store, tmp_path, start=END, end=END)


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


@pytest.fixture
def smtp(recwarn):
    """aiosmtpd on 127.0.0.1 requiring AUTH; yields (SmtpConfig for it, inbox)."""
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
        yield SmtpConfig(host="127.0.0.1", port=port, user=USER, password=PASSWORD, timeout=10), inbox
    finally:
        ctl.stop()


@pytest.fixture
def report_dir(day_store: Store, tmp_path: Path) -> Path:
    out = tmp_path / "reports" / "2026-05-04"
    build_report(day_store, out, start=DAY, end=END)
    return out


def _send(folder: Path, config: SmtpConfig, recipients=("ops@example.com", "sre@example.com")):
    return send_report(folder, smtp=config, sender="discovery@example.com",
                       recipients=list(recipients), subject="Discovery failures 2026-05-04", now=NOW)


def test_mail_carries_the_page_and_the_csv_and_is_sent_once(report_dir: Path, smtp):
    config, inbox = smtp
    result = _send(report_dir, config)
    assert result["sent"] is True and result["recipients"] == 2
    assert len(inbox.messages) == 1
    sender, rcpts, raw = inbox.messages[0]
    assert (sender, rcpts) == ("discovery@example.com", ["ops@example.com", "sre@example.com"])

    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == "Discovery failures 2026-05-04"
    assert msg["To"] == "ops@example.com, sre@example.com"
    html = msg.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert html == (report_dir / "index.html").read_text()
    assert "attached CSV" in msg.get_body(("plain",)).get_content()
    (attachment,) = msg.iter_attachments()
    assert attachment.get_filename() == "failures-2026-05-04.csv"
    assert attachment.get_content_type() == "text/csv"
    table = list(csv.DictReader(io.StringIO(attachment.get_content())))
    assert [r["InstanceKey"] for r in table] == ["i-b", "i-a", VM.lower()]
    assert HOSTILE in table[0]["Details"]

    marker = json.loads((report_dir / "sent.json").read_text())
    assert marker["recipients"] == ["ops@example.com", "sre@example.com"]
    assert marker["message_id"] == msg["Message-ID"] and marker["sent_at"] == "2026-05-05T00:31:00Z"

    again = _send(report_dir, config)
    assert again["sent"] is False and "already sent" in again["reason"]
    assert len(inbox.messages) == 1


def test_a_refused_login_fails_without_showing_the_password(report_dir: Path, smtp):
    config, inbox = smtp
    wrong = SmtpConfig(host=config.host, port=config.port, user=USER, password="wrong-Secret-1")
    with pytest.raises(MailError, match=f"through 127.0.0.1:{config.port} failed") as exc:
        _send(report_dir, wrong)
    assert "wrong-Secret-1" not in str(exc.value)
    assert not (report_dir / "sent.json").exists() and inbox.messages == []


def test_an_unreachable_server_fails_and_records_nothing(report_dir: Path):
    config = SmtpConfig(host="127.0.0.1", port=_free_port(), user=USER, password=PASSWORD,
                        timeout=5)
    with pytest.raises(MailError, match="ConnectionRefusedError") as exc:
        _send(report_dir, config)
    assert PASSWORD not in str(exc.value)
    assert not (report_dir / "sent.json").exists()


def test_no_recipients_is_an_error(report_dir: Path, smtp):
    with pytest.raises(MailError, match="no recipients"):
        _send(report_dir, smtp[0], recipients=())


def test_smtp_config_repr_hides_the_password():
    text = repr(SmtpConfig(host="mail", port=587, user="u", password="hunter2", starttls=True))
    assert "hunter2" not in text and "u:***@mail:587" in text
