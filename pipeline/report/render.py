"""Renderers, one per output format, each `rows -> bytes`; rows are rendered in the order given.

`text`, `json` and `yaml` are byte-identical to `tctl discovery nodes --format=...`. `csv` and
`markdown` are this project's: every cell uncut, plus analyst columns. Their Details holds the same
title and extra as tctl's, but the output / API error is the whole Go-trimmed text, raw (not cut at
100 bytes, not %q-quoted): CSV quoting and Markdown escaping keep it in its cell.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.report import cells as cells_of
from pipeline.report import coltable, frame, jsoncols
from pipeline.report.gofmt import go_bytes, rfc3339, rfc3339nano
from pipeline.report.rows import (
    CLOUD_NAMES,
    NodeRow,
    details,
    go_trim_space,
    instance_text,
    last_time_ns,
    status,
)
from pipeline.report.yamlv2 import GoYAMLError

TEXT_COLUMNS = ("Cloud", "Account", "Region", "Instance", "Time", "Status", "Details")
ANALYST_COLUMNS = ("InstanceKey", "Online", "ExitCode", "IsFailure", "RunTime", "Expiry",
                   "UserTaskID", "UserTaskIssue")
NO_INSTANCES = "No instances found."


def _time_text(row: NodeRow) -> str:
    ns = last_time_ns(row)
    return "" if ns is None else rfc3339(ns)


def text_cells(row: NodeRow) -> list[str]:
    """tctl's seven text cells for a row, before any truncation."""
    return [CLOUD_NAMES[row.cloud], row.account_id, row.region, instance_text(row),
            _time_text(row), status(row), details(row)]


def render_text(rows: Sequence[NodeRow] | pa.Table, width: int = 80) -> bytes:
    """tctl's text table for a terminal `width` (80 when not a terminal); a notice when empty.
    `rows` are NodeRows or a report frame (`pipeline.report.frame`)."""
    table = frame_of(rows)
    if not table.num_rows:
        return (NO_INSTANCES + "\n").encode()
    f = frame.arrays(table)
    cloud = pc.if_else(pc.equal(f["cloud"], "aws"), CLOUD_NAMES["aws"], CLOUD_NAMES["azure"])
    cells = [cloud, f["account_id"], f["region"], cells_of.instance(f), cells_of.last_time(f),
             cells_of.status(f), cells_of.details(f)]
    return coltable.truncated_table([c.encode() for c in TEXT_COLUMNS], cells, b"Details", width)


def frame_of(rows: Sequence[NodeRow] | pa.Table) -> pa.Table:
    """A report frame of `rows` (one already is)."""
    return rows if isinstance(rows, pa.Table) else frame.from_rows(rows)


def rows_of(rows: Sequence[NodeRow] | pa.Table) -> Sequence[NodeRow]:
    """NodeRows of `rows` (a frame is turned into them)."""
    return frame.to_rows(rows) if isinstance(rows, pa.Table) else rows


def json_object(row: NodeRow) -> dict:
    """tctl's instanceInfo as encoding/json writes it: struct field order, omitempty/omitzero."""
    obj: dict = {"region": row.region, "is_online": row.is_online}
    if row.expiry_ns is not None:
        obj["expiry"] = rfc3339nano(row.expiry_ns)
    if row.run is not None:
        obj["run_result"] = {"api_error": row.run.api_error, "exit_code": row.run.exit_code,
                             "output": row.run.output, "time": rfc3339nano(row.run.time_ns),
                             "is_failure": row.run.is_failure}
    if row.user_task_id:
        obj["user_task_id"] = row.user_task_id
    if row.user_task_issue:
        obj["user_task_issue"] = row.user_task_issue
    if row.cloud == "aws":
        obj["aws"] = {"instance_id": row.instance_id, "account_id": row.account_id}
    else:
        azure = {"vm_id": row.vm_id, "vm_name": row.vm_name, "subscription_id": row.account_id,
                 "resource_group": row.resource_group, "resource_id": row.resource_id}
        obj["azure"] = {k: v for k, v in azure.items() if v or k == "vm_id"}
    return obj


def render_json(rows: Sequence[NodeRow] | pa.Table) -> bytes:
    """tctl's JSON: one array (`[]` when empty), 4-space indent, HTML-escaped, newline-terminated.
    `rows` are NodeRows or a report frame."""
    table = frame_of(rows)
    if not table.num_rows:
        return b"[]\n"
    return jsoncols.json_array(frame.arrays(table))


def render_yaml(rows: Sequence[NodeRow] | pa.Table) -> bytes:
    """tctl's YAML: one yaml.v2 document per row, "---" between them; `[]` (no newline) when empty.
    A row yaml.v2 refuses raises GoYAMLError whose `partial` holds what tctl printed before it."""
    from pipeline.report.goyaml import go_yaml_dumps  # here: PyYAML only for this format

    rows = rows_of(rows)
    if not rows:
        return b"[]"
    docs: list[str] = []
    for row in rows:
        try:
            docs.append(go_yaml_dumps(json_object(row)))
        except GoYAMLError as err:  # tctl streams: the documents before (and a "---") are out
            err.partial = "".join(doc + "---\n" for doc in docs).encode()
            raise
    return "---\n".join(docs).encode()


def _full_details(row: NodeRow) -> str:
    """Details with the whole trimmed output (or API error) raw, after the task title."""
    return details(row, text=go_trim_space)


def _bool(v: bool) -> str:
    return "true" if v else "false"


def analyst_cells(row: NodeRow) -> list[str]:
    """CSV/Markdown cells: tctl's seven uncut (full Details), then the analyst columns."""
    run = row.run
    base = text_cells(row)[:6] + [_full_details(row)]
    return base + [
        row.key,
        _bool(row.is_online),
        "" if run is None else str(run.exit_code),
        "" if run is None else _bool(run.is_failure),
        "" if run is None else rfc3339nano(run.time_ns),
        "" if row.expiry_ns is None else rfc3339nano(row.expiry_ns),
        row.user_task_id,
        row.user_task_issue,
    ]


def render_csv(rows: Sequence[NodeRow] | pa.Table) -> bytes:
    """RFC 4180 CSV (CRLF line ends, minimal quoting), header always, UTF-8 without BOM."""
    rows = rows_of(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(TEXT_COLUMNS + ANALYST_COLUMNS)
    writer.writerows(analyst_cells(row) for row in rows)
    return go_bytes(buf.getvalue())


def _md_cell(s: str) -> str:
    s = s.replace("\\", "\\\\").replace("|", "\\|")
    return s.replace("\r\n", "<br>").replace("\n", "<br>").replace("\r", "<br>")


_MD_SPECIAL = re.compile(r"[\\|\r\n]")


def _md_line(cells: list[str]) -> str:
    # most rows have nothing to escape: one scan of the row instead of five per cell
    if _MD_SPECIAL.search("".join(cells)):
        cells = list(map(_md_cell, cells))
    return "| " + " | ".join(cells) + " |"


def render_markdown(rows: Sequence[NodeRow] | pa.Table) -> bytes:
    """A GitHub table (`\\`, `|` escaped, line breaks as <br>); a notice under the header when empty."""
    rows = rows_of(rows)
    header = TEXT_COLUMNS + ANALYST_COLUMNS
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [_md_line(analyst_cells(row)) for row in rows]
    if not rows:
        lines += ["", NO_INSTANCES]
    return go_bytes("\n".join(lines) + "\n")


RENDERERS: dict[str, Callable[[Sequence[NodeRow]], bytes]] = {
    "text": render_text,
    "json": render_json,
    "yaml": render_yaml,
    "csv": render_csv,
    "markdown": render_markdown,
}
