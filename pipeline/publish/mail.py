"""Mail a built report: the HTML page as the body, the CSV attached, through SMTP (smtplib).

Once per report folder: a successful send records `sent.json` next to the report, and a folder
holding one is not sent again. (A crash between the server's acceptance and that write sends
twice on the rerun: at least once, never silently zero times.)
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

MARKER = "sent.json"


@dataclass(frozen=True)
class SmtpConfig:
    """Where to deliver mail. `password` is never logged (repr hides it)."""

    host: str
    port: int
    user: str | None = None
    password: str | None = None
    ssl: bool = False
    starttls: bool = False
    timeout: float = 30.0
    sender: str | None = None

    def __repr__(self) -> str:
        auth = f"{self.user}:***@" if self.user else ""
        return f"SmtpConfig({auth}{self.host}:{self.port}, ssl={self.ssl}, starttls={self.starttls})"


class MailError(Exception):
    """The report could not be delivered; the message names the server, never the password."""


def build_message(report_dir: Path, *, sender: str, recipients: Sequence[str], subject: str,
                  now: datetime) -> EmailMessage:
    """The message: plain-text fallback, the HTML page as the alternative, the CSV attached."""
    page = (report_dir / "index.html").read_text(encoding="utf-8")
    csv = (report_dir / "failures.csv").read_bytes()
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(now.timestamp(), usegmt=True)
    msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1] or None)
    msg.set_content(f"{subject}\n\nThe report is the HTML part of this mail; every failure with "
                    "its full output is in the attached CSV.\n")
    msg.add_alternative(page, subtype="html")
    msg.add_attachment(csv, maintype="text", subtype="csv",
                       filename=f"failures-{report_dir.name}.csv")
    return msg


def _connect(smtp: SmtpConfig) -> smtplib.SMTP:
    if smtp.ssl:
        return smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout,
                                context=ssl.create_default_context())
    client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
    if smtp.starttls:
        client.starttls(context=ssl.create_default_context())
    return client


def send_report(report_dir: str | os.PathLike[str], *, smtp: SmtpConfig, sender: str,
                recipients: Sequence[str], subject: str, now: datetime) -> dict:
    """Send the report in `report_dir` unless its `sent.json` exists; record it after sending.
    Raises MailError when the server refuses or cannot be reached."""
    folder = Path(report_dir)
    marker = folder / MARKER
    if marker.exists():
        return {"sent": False, "reason": f"already sent (see {marker})", "marker": str(marker)}
    if not recipients:
        raise MailError("no recipients to send the report to")
    msg = build_message(folder, sender=smtp.sender or sender, recipients=recipients,
                        subject=subject, now=now)
    where = f"{smtp.host}:{smtp.port}"
    try:
        with _connect(smtp) as client:
            if smtp.user:
                client.login(smtp.user, smtp.password or "")
            refused = client.send_message(msg)
    except (smtplib.SMTPException, OSError) as e:
        raise MailError(f"sending the report through {where} failed: "
                        f"{type(e).__name__}: {_no_secret(str(e), smtp)}") from None
    accepted = [r for r in recipients if r not in refused]
    record = {"sent_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "server": where,
              "message_id": msg["Message-ID"], "subject": subject, "recipients": accepted,
              "refused": sorted(refused)}
    tmp = marker.with_name(f".{MARKER}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, marker)
    return {"sent": True, "recipients": len(accepted), "refused": len(refused),
            "marker": str(marker)}


def _no_secret(text: str, smtp: SmtpConfig) -> str:
    """The text without the password, as is or as the AUTH exchange encodes it (base64 of
    PLAIN `\\0user\\0password` and of LOGIN's bare password), should a server quote it back."""
    if not smtp.password:
        return text
    import base64

    forms = {smtp.password}
    for raw in (smtp.password, f"\0{smtp.user or ''}\0{smtp.password}"):
        forms.add(base64.b64encode(raw.encode()).decode())
        forms.add(base64.b64encode(raw.encode()).decode().rstrip("="))
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text
