"""Mail a built report through Airflow's SMTP provider (`SmtpHook`, the Airflow Connection
`smtp_conn_id`): the HTML page as the body, the failures CSV attached.

Once per report folder: a successful send records `sent.json` next to the report, and a folder
holding one is not sent again. (A crash between the server's acceptance and that write sends
twice on the rerun: at least once, never silently zero times.) Only the report DAG mails, so
Airflow is imported inside the functions: nothing on the CLI path loads it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from datetime import datetime
from email.utils import make_msgid
from pathlib import Path

MARKER = "sent.json"


class MailError(Exception):
    """The report could not be delivered; the message names the server, never the password."""


def smtp_connection_exists(conn_id: str) -> bool:
    """Whether the Airflow Connection `conn_id` is defined (UI, env `AIRFLOW_CONN_<ID>`, or a
    secrets backend)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def send_report(report_dir: str | os.PathLike[str], *, conn_id: str, sender: str,
                recipients: Sequence[str], subject: str, now: datetime) -> dict:
    """Send the report in `report_dir` through the SMTP connection `conn_id` unless its
    `sent.json` exists; record it after sending. The connection's `from_email` extra, when
    set, wins over `sender`. Raises MailError when the server refuses or cannot be reached."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    folder = Path(report_dir)
    marker = folder / MARKER
    if marker.exists():
        return {"sent": False, "reason": f"already sent (see {marker})", "marker": str(marker)}
    if not recipients:
        raise MailError("no recipients to send the report to")
    page = (folder / "index.html").read_text(encoding="utf-8")
    hook = SmtpHook(smtp_conn_id=conn_id)
    where, secrets, message_id = conn_id, [], ""
    with tempfile.TemporaryDirectory() as tmp:
        attachment = Path(tmp) / f"failures-{folder.name}.csv"  # the name the reader sees
        shutil.copyfile(folder / "failures.csv", attachment)
        try:
            with hook:  # connects, STARTTLS/SSL and login as the connection says
                where = f"{hook.host}:{hook.port}"
                secrets = [hook.smtp_user or "", hook.smtp_password or ""]
                from_email = hook.from_email or sender
                message_id = make_msgid(domain=from_email.rsplit("@", 1)[-1] or None)
                hook.send_email_smtp(to=list(recipients), subject=subject, html_content=page,
                                     from_email=from_email, files=[str(attachment)],
                                     custom_headers={"Message-ID": message_id})
        except Exception as e:  # noqa: BLE001 - smtplib, socket and Airflow errors alike
            if hook.smtp_connection is not None:
                where = f"{hook.host}:{hook.port}"
                secrets = [hook.smtp_user or "", hook.smtp_password or ""]
            raise MailError(f"sending the report through {where} failed: "
                            f"{type(e).__name__}: {_no_secret(str(e), *secrets)}") from None
    record = {"sent_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "server": where,
              "message_id": message_id, "subject": subject, "recipients": list(recipients)}
    tmp = marker.with_name(f".{MARKER}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, marker)
    return {"sent": True, "recipients": len(recipients), "marker": str(marker)}


def _no_secret(text: str, user: str = "", password: str = "") -> str:
    """The text without the password, as is or as the AUTH exchange encodes it (base64 of
    PLAIN `\\0user\\0password` and of LOGIN's bare password), should a server quote it back."""
    if not password:
        return text
    import base64

    forms = {password}
    for raw in (password, f"\0{user}\0{password}"):
        forms.add(base64.b64encode(raw.encode()).decode())
        forms.add(base64.b64encode(raw.encode()).decode().rstrip("="))
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text
