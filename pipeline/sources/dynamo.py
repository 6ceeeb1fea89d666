"""Teleport's DynamoDB audit events table as a source, one UTC date partition at a time.

Table shape (Teleport `lib/events/dynamoevents`): hash key `SessionID` (S), range key `EventIndex`
(N); global secondary index `timesearchV2` on `CreatedAtDate` (S, `YYYY-MM-DD`, the event's UTC
date) + `CreatedAt` (N, unix seconds), projecting all attributes; `EventType` (S) is the event
type. The event itself is the map attribute `FieldsMap`, or, in items written by older Teleport
versions, the JSON string `Fields`.

Each date is one Query on the index (the index cannot range over dates), filtered to the wanted
event types server-side, paginated with LastEvaluatedKey; throttling and transient errors are
retried with capped exponential backoff and full jitter. Needs the `aws` extra (boto3).
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa

from pipeline.sources import SourceError
from pipeline.sources.base import lines_batch

INDEX = "timesearchV2"
KEY_CONDITION = "CreatedAtDate = :date AND CreatedAt BETWEEN :lo AND :hi"
# `Fields` is a DynamoDB reserved word: the projection names its attributes through placeholders
PROJECTION = {"#s": "SessionID", "#i": "EventIndex", "#m": "FieldsMap", "#f": "Fields"}
EVENT_TYPES = ("ssm.run", "azure.run", "instance.join")
THROTTLED = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
TRANSIENT = THROTTLED | {"InternalServerError", "ServiceUnavailable"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class Backoff:
    """Retry policy: up to `attempts` tries; before try k+1 sleep U(0, min(cap, base * 2**k))."""

    attempts: int = 8
    base: float = 0.05
    cap: float = 5.0

    def delay(self, retry: int, rng: Callable[[], float]) -> float:
        """Full-jitter delay before retry number `retry` (0-based)."""
        return rng() * min(self.cap, self.base * (2**retry))


def make_client(region: str | None = None, endpoint_url: str | None = None, **kwargs: Any):
    """A boto3 DynamoDB client (standard AWS credential chain) whose own retries are off, so
    that this module's Backoff is the one policy in force."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as e:  # pragma: no cover - depends on the install
        raise SourceError("the DynamoDB source needs boto3: pip install 'discovery-history[aws]'") from e
    config = Config(retries={"mode": "standard", "total_max_attempts": 1})
    return boto3.client(
        "dynamodb", region_name=region, endpoint_url=endpoint_url, config=config, **kwargs
    )


def created_at_bounds(window: tuple[datetime, datetime]) -> tuple[int, int]:
    """The inclusive `CreatedAt` range (whole unix seconds) of the half-open window
    [start, end): floor(start) .. ceil(end) - 1. Raises SourceError for an empty window."""
    start, end = window
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise SourceError(f"DynamoDB window must be aware datetimes with start < end: {window}")
    lo = (start - _EPOCH) // _SECOND
    hi = -((_EPOCH - end) // _SECOND) - 1
    return lo, hi


def dates_between(lo: int, hi: int) -> list[date]:
    """The UTC dates of the seconds lo..hi (inclusive), oldest first."""
    first, last = (datetime.fromtimestamp(s, UTC).date() for s in (lo, hi))
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@dataclass(frozen=True)
class DynamoDay:
    """One `CreatedAtDate` partition of the table, clipped to [lo, hi] seconds: a Source."""

    client: Any = field(repr=False, compare=False)
    table: str
    day: date
    lo: int
    hi: int
    event_types: tuple[str, ...] = EVENT_TYPES
    page_limit: int | None = None
    backoff: Backoff = Backoff()
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    rng: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    @property
    def name(self) -> str:
        return f"dynamodb:{self.table}/{self.day.isoformat()}"

    def batches(self) -> Iterator[pa.RecordBatch]:
        """One LINE_SCHEMA batch per non-empty page, in index order (CreatedAt ascending)."""
        line_no = 1
        for items in self.pages():
            rows = [item_event(i) for i in items]
            if rows:
                yield lines_batch(self.name, [r[0] for r in rows], line_no, [r[1] for r in rows])
                line_no += len(rows)

    def query_input(self) -> dict[str, Any]:
        """The Query request of this partition, without the pagination key."""
        values: dict[str, Any] = {
            ":date": {"S": self.day.isoformat()},
            ":lo": {"N": str(self.lo)},
            ":hi": {"N": str(self.hi)},
        }
        req: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": INDEX,
            "KeyConditionExpression": KEY_CONDITION,
            "ProjectionExpression": ", ".join(PROJECTION),
            "ExpressionAttributeNames": dict(PROJECTION),
            "ScanIndexForward": True,
        }
        if self.event_types:
            names = [f":t{i}" for i in range(len(self.event_types))]
            values.update({n: {"S": t} for n, t in zip(names, self.event_types, strict=True)})
            req["FilterExpression"] = f"EventType IN ({', '.join(names)})"
        if self.page_limit:
            req["Limit"] = self.page_limit
        req["ExpressionAttributeValues"] = values
        return req

    def pages(self) -> Iterator[list[dict]]:
        """Raw items page by page until DynamoDB returns no LastEvaluatedKey."""
        req = self.query_input()
        while True:
            out = self._query(req)
            yield out.get("Items", [])
            last = out.get("LastEvaluatedKey")
            if not last:
                return
            req = {**req, "ExclusiveStartKey": last}

    def _query(self, req: dict[str, Any]) -> dict:
        from botocore import exceptions as bx

        last: Exception | None = None
        for retry in range(max(self.backoff.attempts, 1)):
            try:
                return self.client.query(**req)
            except bx.ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                if code not in TRANSIENT:
                    raise SourceError(self._explain(code, e)) from e
                last = e
            except (bx.ConnectionError, bx.HTTPClientError) as e:
                last = e
            except bx.BotoCoreError as e:  # no credentials, bad region, ...
                raise SourceError(f"DynamoDB table {self.table}: {e}") from e
            if retry + 1 < self.backoff.attempts:
                self.sleep(self.backoff.delay(retry, self.rng))
        raise SourceError(
            f"DynamoDB table {self.table} ({self.day}): still failing after "
            f"{self.backoff.attempts} attempts ({last}); raise the table's read capacity or retry"
        )

    def _explain(self, code: str, e: Exception) -> str:
        hint = {
            "ResourceNotFoundException": "check the table name and region",
            "ValidationException": f"is this a Teleport audit table with the {INDEX} index?",
            "AccessDeniedException": "the credentials need dynamodb:Query on the table and index",
        }.get(code, "")
        return f"DynamoDB table {self.table}: {code}: {e}" + (f" ({hint})" if hint else "")


def dynamo_days(
    table: str,
    window: tuple[datetime, datetime],
    *,
    client: Any = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    event_types: Sequence[str] = EVENT_TYPES,
    page_limit: int | None = None,
    backoff: Backoff = Backoff(),
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
) -> list[DynamoDay]:
    """The table's events of `event_types` with CreatedAt in the window, as one Source per UTC
    date (oldest first). Exact to the second (CreatedAt's resolution): pass the same window to
    `ingest_events` for sub-second bounds. No request is made until `batches()` is read."""
    lo, hi = created_at_bounds(window)
    client = client if client is not None else make_client(region, endpoint_url)
    return [
        DynamoDay(client, table, d, lo, hi, tuple(event_types), page_limit, backoff, sleep, rng)
        for d in dates_between(lo, hi)
    ]


def item_event(item: dict[str, dict]) -> tuple[bytes, str | None]:
    """The event JSON of one raw item (FieldsMap as compact JSON with sorted keys, as Teleport
    re-marshals it; legacy Fields verbatim), or empty bytes and the reason it has none."""
    if "M" in item.get("FieldsMap", {}):
        doc = plain(item["FieldsMap"])
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(), None
    if "S" in item.get("Fields", {}):
        return item["Fields"]["S"].encode(), None
    key = "/".join(str(plain(item[k])) for k in ("SessionID", "EventIndex") if k in item)
    return b"", f"DynamoDB item {key} has neither FieldsMap nor Fields"


def plain(value: dict[str, Any]) -> Any:
    """A DynamoDB AttributeValue as a JSON value (numbers as int when integral, binary base64)."""
    (kind, v), = value.items()
    if kind in ("S", "BOOL"):
        return v
    if kind == "N":
        return _number(v)
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: plain(x) for k, x in v.items()}
    if kind == "L":
        return [plain(x) for x in v]
    if kind == "SS":
        return list(v)
    if kind == "NS":
        return [_number(x) for x in v]
    if kind == "B":
        return base64.b64encode(v).decode()
    if kind == "BS":
        return [base64.b64encode(b).decode() for b in v]
    raise SourceError(f"unsupported DynamoDB attribute type {kind!r}")


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        d = Decimal(text)
        return int(d) if d == d.to_integral_value() else float(d)
