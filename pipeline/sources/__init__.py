"""Sources: where Teleport's events are read (files, folders, URLs, Parquet, DynamoDB) or
received (the event-handler receiver and its spool). Each yields Arrow record batches of raw
lines.

A batch has the columns of `LINE_SCHEMA`: `source` (file name), `line_no` (1-based line, or row
index for Parquet), `line` (the raw bytes of one event) and `error` (set when the source itself
could not deliver a line, e.g. a truncated gzip stream). Nothing here parses events: that is
done in bulk by `pipeline.ingest`.
"""

from __future__ import annotations

import pyarrow as pa

LINE_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("line_no", pa.int64()),
        ("line", pa.large_binary()),
        ("error", pa.string()),
    ]
)


class SourceError(Exception):
    """A source path cannot be read at all (missing, not a file log, no permission)."""
