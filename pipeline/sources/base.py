"""The source extension point: anything with a `name` and `batches()` of LINE_SCHEMA rows.

`files.SourceFile` (file logs, exports, Athena Parquet), the DynamoDB table
(`dynamo.DynamoDay`) and any future source plug into `ingest_events` the same way:

    ingest_events(store, ["/var/lib/teleport/log", *dynamo_days(table, window)])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol, runtime_checkable

import pyarrow as pa

from pipeline.sources import LINE_SCHEMA


@runtime_checkable
class Source(Protocol):
    """One named input of raw events; `batches()` may be called once and streams."""

    @property
    def name(self) -> str:
        """Provenance stored with every row (`source` column); stable across re-reads."""
        ...

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The events as LINE_SCHEMA batches, `line_no` 1-based and increasing."""
        ...


def resolve(inputs: Iterable[str | Source]) -> list[Source]:
    """Paths, globs and URLs expanded by `files.expand` (stable order, first), then the given
    Source objects in their order. Raises SourceError for a path that matches nothing."""
    from pipeline.sources.files import expand

    items = list(inputs)
    paths = [i for i in items if isinstance(i, str)]
    return [*(expand(paths) if paths else []), *(i for i in items if not isinstance(i, str))]


def lines_batch(
    name: str, lines: Sequence[bytes], first_line_no: int, errors: Sequence[str | None] = ()
) -> pa.RecordBatch:
    """A LINE_SCHEMA batch of `lines` numbered from `first_line_no`; `errors` (same length,
    or empty for none) marks lines the source could not deliver intact."""
    n = len(lines)
    return pa.RecordBatch.from_arrays(
        [
            pa.array([name] * n, pa.string()),
            pa.array(range(first_line_no, first_line_no + n), pa.int64()),
            pa.array(lines, pa.large_binary()),
            pa.array(list(errors) if errors else [None] * n, pa.string()),
        ],
        schema=LINE_SCHEMA,
    )
