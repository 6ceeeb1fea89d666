"""The DynamoDB source against a real DynamoDB-compatible server (moto_server, a separate
process on 127.0.0.1) holding a table in Teleport's shape; throttling comes from real botocore
(a `before-send` hook answering with DynamoDB's own 400 error body)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest

pytest.importorskip("boto3")

from botocore.awsrequest import AWSResponse  # noqa: E402

from pipeline.sources import SourceError  # noqa: E402
from pipeline.sources.dynamo import (  # noqa: E402
    INDEX,
    Backoff,
    DynamoDay,
    created_at_bounds,
    dates_between,
    dynamo_days,
    item_event,
    make_client,
)
from tests.conftest import T0, make_azure_run, make_run, ts  # noqa: E402

DAY = timedelta(days=1)
CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


# --------------------------------------------------------------------------- server and table


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def endpoint():
    """A moto_server process on loopback for this module; stopped (by its pid) afterwards."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def client(endpoint):
    return make_client("us-east-1", endpoint, **CREDS)


@pytest.fixture
def table(client) -> str:
    """A fresh events table as Teleport creates it (keys, attribute types, the V2 index)."""
    name = f"teleport-events-{uuid.uuid4().hex[:8]}"
    client.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "SessionID", "AttributeType": "S"},
            {"AttributeName": "EventIndex", "AttributeType": "N"},
            {"AttributeName": "CreatedAt", "AttributeType": "N"},
            {"AttributeName": "CreatedAtDate", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "SessionID", "KeyType": "HASH"},
            {"AttributeName": "EventIndex", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[{
            "IndexName": INDEX,
            "KeySchema": [
                {"AttributeName": "CreatedAtDate", "KeyType": "HASH"},
                {"AttributeName": "CreatedAt", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
            "ProvisionedThroughput": {"ReadCapacityUnits": 10, "WriteCapacityUnits": 10},
        }],
        ProvisionedThroughput={"ReadCapacityUnits": 10, "WriteCapacityUnits": 10},
    )
    return name


def av(value):
    """A JSON value as a DynamoDB AttributeValue, as Go's attributevalue marshals a map."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": str(value)}
    if value is None:
        return {"NULL": True}
    if isinstance(value, dict):
        return {"M": {k: av(v) for k, v in value.items()}}
    if isinstance(value, list):
        return {"L": [av(v) for v in value]}
    return {"S": str(value)}


def teleport_item(ev: dict, *, legacy: bool = False) -> dict:
    """The item Teleport writes for one event (FieldsMap, or the older Fields JSON string)."""
    at = datetime.fromisoformat(ev["time"][:19]).replace(tzinfo=UTC)
    item = {
        "SessionID": {"S": str(uuid.uuid4())},
        "EventIndex": {"N": str(ev.get("ei", 0))},
        "EventType": {"S": ev["event"]},
        "EventNamespace": {"S": "default"},
        "CreatedAt": {"N": str(int(at.timestamp()))},
        "CreatedAtDate": {"S": at.strftime("%Y-%m-%d")},
        "Expires": {"N": str(int(at.timestamp()) + 365 * 86400)},
    }
    item["Fields" if legacy else "FieldsMap"] = {"S": json.dumps(ev)} if legacy else av(ev)
    return item


def put(client, table: str, events: list[dict], *, legacy: bool = False) -> None:
    items = [teleport_item(e, legacy=legacy) for e in events]
    for i in range(0, len(items), 25):
        client.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": it}} for it in items[i:i + 25]]}
        )


def read(days: list[DynamoDay]) -> list[dict]:
    """Every event the sources deliver, parsed; source errors fail the test."""
    out = []
    for d in days:
        for batch in d.batches():
            rows = batch.to_pylist()
            assert all(r["error"] is None for r in rows), rows
            assert all(r["source"] == d.name for r in rows)
            out += [json.loads(r["line"]) for r in rows]
    return out


def make_join(host: str, at: datetime = T0) -> dict:
    return {"ei": 0, "event": "instance.join", "uid": f"join-{host}", "code": "TJ002I",
            "time": ts(at), "cluster_name": "c", "node_name": host, "host_id": host,
            "role": "Node", "method": "iam", "token_name": "t",
            "attributes": {"Arn": f"arn:aws:sts::1:assumed-role/r/{host}", "Nested": [1, "x"]}}


def other(at: datetime = T0, event: str = "user.login") -> dict:
    return {"ei": 0, "event": event, "uid": f"o-{uuid.uuid4()}", "code": "T1000I",
            "time": ts(at), "user": "alice"}


def count_queries(client) -> list[int]:
    calls: list[int] = []
    client.meta.events.register("after-call.dynamodb.Query", lambda **_: calls.append(1))
    return calls


# --------------------------------------------------------------------------- pure parts


S0 = int(T0.timestamp())


@pytest.mark.parametrize(
    ("start", "end", "want"),
    [
        pytest.param(T0, T0 + timedelta(seconds=1), (S0, S0), id="one-second"),
        pytest.param(T0, T0 + DAY, (S0, S0 + 86399), id="one-day"),
        pytest.param(T0 + timedelta(milliseconds=500), T0 + timedelta(seconds=1, milliseconds=500),
                     (S0, S0 + 1), id="sub-second-bounds-widen-to-whole-seconds"),
        pytest.param(T0 - timedelta(microseconds=1), T0, (S0 - 1, S0 - 1), id="end-exclusive"),
    ],
)
def test_created_at_bounds(start, end, want) -> None:
    assert created_at_bounds((start, end)) == want


@pytest.mark.parametrize("window", [(T0, T0), (T0, T0 - DAY), (T0.replace(tzinfo=None), T0 + DAY)],
                         ids=["empty", "reversed", "naive"])
def test_created_at_bounds_rejects_bad_windows(window) -> None:
    with pytest.raises(SourceError, match="start < end"):
        created_at_bounds(window)


def test_dates_between_spans_midnight_in_utc() -> None:
    midnight = int(datetime(2026, 5, 5, tzinfo=UTC).timestamp())
    assert [d.isoformat() for d in dates_between(midnight - 1, midnight)] == [
        "2026-05-04", "2026-05-05"]
    assert [d.isoformat() for d in dates_between(midnight, midnight + 86399)] == ["2026-05-05"]


def test_query_is_one_date_partition_of_the_v2_index_filtered_by_type() -> None:
    (day,) = dynamo_days("t", (T0, T0 + timedelta(hours=1)), client=object(), page_limit=50)
    req = day.query_input()
    assert req["IndexName"] == "timesearchV2"
    assert req["KeyConditionExpression"] == "CreatedAtDate = :date AND CreatedAt BETWEEN :lo AND :hi"
    assert req["FilterExpression"] == "EventType IN (:t0, :t1, :t2)"
    assert req["ExpressionAttributeValues"][":date"] == {"S": "2026-05-04"}
    assert [req["ExpressionAttributeValues"][f":t{i}"]["S"] for i in range(3)] == [
        "ssm.run", "azure.run", "instance.join"]
    assert req["Limit"] == 50
    assert day.name == "dynamodb:t/2026-05-04"


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    b = Backoff(attempts=6, base=0.1, cap=1.0)
    assert [b.delay(k, lambda: 1.0) for k in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert b.delay(3, lambda: 0.25) == 0.2


@pytest.mark.parametrize(
    ("item", "want"),
    [
        pytest.param({"FieldsMap": {"M": {"b": {"N": "150"}, "a": {"S": "x"}}}},
                     (b'{"a":"x","b":150}', None), id="fieldsmap-sorted-compact"),
        pytest.param({"FieldsMap": {"M": {"f": {"N": "1.5"}, "big": {"N": "1.7E+18"}}}},
                     (b'{"big":1700000000000000000,"f":1.5}', None), id="numbers"),
        pytest.param({"Fields": {"S": '{"event":"ssm.run"}'}}, (b'{"event":"ssm.run"}', None),
                     id="legacy-fields-verbatim"),
        pytest.param({"SessionID": {"S": "s"}, "EventIndex": {"N": "3"}},
                     (b"", "DynamoDB item s/3 has neither FieldsMap nor Fields"), id="no-body"),
    ],
)
def test_item_event(item, want) -> None:
    assert item_event(item) == want


# --------------------------------------------------------------------------- against the server


def test_pagination_reads_every_matching_event_once(client, table) -> None:
    runs = [make_run(f"i-{n:04d}", at=T0 + timedelta(seconds=n)) for n in range(120)]
    put(client, table, runs + [other(T0 + timedelta(seconds=n)) for n in range(60)])
    calls = count_queries(client)
    days = dynamo_days(table, (T0, T0 + timedelta(hours=1)), client=client, page_limit=7)
    got = read(days)
    assert sorted(e["uid"] for e in got) == sorted(e["uid"] for e in runs)
    assert len(calls) >= 180 // 7  # Limit applies before the filter: many pages
    assert [e["time"] for e in got] == sorted(e["time"] for e in got)  # index order


def test_window_bounds_are_half_open_across_dates(client, table) -> None:
    start, end = T0, T0 + 2 * DAY
    at = {"before": start - timedelta(seconds=1), "start": start, "next-day": start + DAY,
          "last": end - timedelta(seconds=1), "end": end}
    put(client, table, [make_run(f"i-{k}", at=t) for k, t in at.items()])
    days = dynamo_days(table, (start, end), client=client)
    assert [d.day.isoformat() for d in days] == ["2026-05-04", "2026-05-05", "2026-05-06"]
    assert sorted(e["instance_id"] for e in read(days)) == ["i-last", "i-next-day", "i-start"]


def test_type_filter_keeps_runs_and_joins_only(client, table) -> None:
    events = [make_run("i-1"), make_azure_run("vm-1"), make_join("i-1"),
              other(), other(event="session.start"), other(event="ssm.runs")]
    put(client, table, events)
    window = (T0, T0 + timedelta(minutes=1))
    assert sorted(e["event"] for e in read(dynamo_days(table, window, client=client))) == [
        "azure.run", "instance.join", "ssm.run"]
    only = dynamo_days(table, window, client=client, event_types=["azure.run"])
    assert [e["event"] for e in read(only)] == ["azure.run"]


def test_fieldsmap_and_legacy_fields_give_back_the_event(client, table) -> None:
    new = [make_run("i-new", exit_code=150, stderr="ERROR: node did not become ready"),
           make_join("i-new")]
    old = [make_run("i-old", at=T0 + timedelta(seconds=5), exit_code=-1)]
    put(client, table, new)
    put(client, table, old, legacy=True)
    got = {e["uid"]: e for e in read(dynamo_days(table, (T0, T0 + DAY), client=client))}
    assert got == {e["uid"]: e for e in new + old}
    assert isinstance(got[new[0]["uid"]]["exit_code"], int)


def test_item_without_body_is_delivered_as_a_source_error(client, table) -> None:
    item = teleport_item(make_run("i-x"))
    del item["FieldsMap"]
    client.put_item(TableName=table, Item=item)
    (day,) = dynamo_days(table, (T0, T0 + timedelta(seconds=1)), client=client)
    rows = [r for b in day.batches() for r in b.to_pylist()]
    assert [(r["line"], r["error"]) for r in rows] == [
        (b"", f"DynamoDB item {item['SessionID']['S']}/0 has neither FieldsMap nor Fields")]


def throttle_first(client, n: int, code: str) -> list[int]:
    """Make the next `n` Query calls come back as DynamoDB's throttling error (real botocore
    parsing and error classes); returns the list of throttled calls."""
    seen: list[int] = []

    class Raw:
        def __init__(self, body: bytes):
            self.body = body

        def stream(self, **_):
            yield self.body

    def hook(request, **_):
        if len(seen) >= n:
            return None
        seen.append(1)
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}",
                           "message": "Rate of requests exceeds the allowed throughput."}).encode()
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "t"}
        return AWSResponse(request.url, 400, headers, Raw(body))

    client.meta.events.register("before-send.dynamodb.Query", hook)
    return seen


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException"])
def test_throttling_is_retried_with_backoff(client, table, code) -> None:
    put(client, table, [make_run("i-1"), make_run("i-2", at=T0 + timedelta(seconds=1))])
    throttled = throttle_first(client, 3, code)
    slept: list[float] = []
    days = dynamo_days(table, (T0, T0 + DAY), client=client, page_limit=1,
                       backoff=Backoff(attempts=5, base=0.1, cap=10), sleep=slept.append,
                       rng=lambda: 0.5)
    assert sorted(e["instance_id"] for e in read(days)) == ["i-1", "i-2"]
    assert len(throttled) == 3
    assert slept == [0.05, 0.1, 0.2]


def test_throttling_that_never_ends_is_a_clear_error(client, table) -> None:
    throttle_first(client, 100, "ProvisionedThroughputExceededException")
    slept: list[float] = []
    (day,) = dynamo_days(table, (T0, T0 + timedelta(hours=1)), client=client,
                         backoff=Backoff(attempts=4, base=0.01), sleep=slept.append)
    with pytest.raises(SourceError, match="still failing after 4 attempts.*read capacity"):
        list(day.batches())
    assert len(slept) == 3


def test_missing_table_is_a_clear_error(client) -> None:
    (day,) = dynamo_days("no-such-table", (T0, T0 + timedelta(hours=1)), client=client)
    with pytest.raises(SourceError, match="ResourceNotFoundException.*table name and region"):
        list(day.batches())


def test_ingest_from_the_table_is_exactly_once(client, table, store) -> None:
    from pipeline.ingest.events import ingest_events

    runs = [make_run(f"i-{n}", at=T0 + timedelta(minutes=n)) for n in range(30)]
    put(client, table, runs[:20])
    put(client, table, runs[20:], legacy=True)
    put(client, table, [other(), make_join("i-1")])
    window = (T0, T0 + DAY)
    first = ingest_events(store, dynamo_days(table, window, client=client, page_limit=8),
                          window=window)
    assert (first.read, first.runs, first.joins, first.quarantined) == (31, 30, 1, 0)
    assert first.sources == [f"dynamodb:{table}/2026-05-04", f"dynamodb:{table}/2026-05-05"]
    again = ingest_events(store, dynamo_days(table, window, client=client), window=window)
    assert (again.stored, again.duplicates) == (0, 31)


def test_ingest_dynamodb_command(endpoint, client, table, tmp_path, monkeypatch) -> None:
    from tests.cli.test_receive import invoke

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")  # the standard credential chain
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    put(client, table, [make_run("i-1"), make_run("i-2", at=T0 + DAY), other()])
    args = ["--store", str(tmp_path / "lake"), "ingest", "dynamodb", "--table", table,
            "--region", "us-east-1", "--endpoint-url", endpoint]
    r = invoke(*args, "--since", "2026-05-04", "--until", "2026-05-05")
    assert (r.exit_code, r.stdout) == (0, "read 1 = stored 1 + duplicates 0 + skipped 0 + "
                                          "quarantined 0\n")
    missing = invoke(*args[:5], "nope", *args[6:], "--last", "1h")
    assert missing.exit_code == 1
    assert missing.stderr.startswith("discovery-history: error: DynamoDB table nope: "
                                     "ResourceNotFoundException")
