"""Node and user-task snapshots (`tctl get … --format=json`) into the store, for real."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipeline.ingest.snapshots import SnapshotError, ingest_snapshot
from pipeline.query.views import connect
from pipeline.store import Store
from tests.conftest import T0, make_aws_node, make_azure_node, make_task, query, write_json

VM = "0f8a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b"
SUB = "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b"
EXPIRES = datetime(2026, 5, 4, 10, 10)  # T0 + 10 min, naive UTC as stored

# --------------------------------------------------------------------------- helpers


def snap(store: Store, tmp_path: Path, kind: str, doc, at: datetime = T0, name: str = "snap.json"):
    path = write_json(tmp_path / name, doc) if not isinstance(doc, bytes) else tmp_path / name
    if isinstance(doc, bytes):
        path.write_bytes(doc)
    s = ingest_snapshot(store, kind, str(path), at)
    assert s.read == s.stored + s.duplicates + s.skipped + s.quarantined, s
    return s


NODE_COLS = "cloud, instance_key, instance_id, vm_id, account_id, region, resource_group, expires"


def azure_public(vm_id: str, internal_vm: str) -> dict:
    """An Azure node with both public teleport.dev/* and the installer's internal labels."""
    node = make_azure_node(internal_vm)
    node["metadata"]["labels"].update(
        {
            "teleport.dev/vm-id": vm_id,
            "teleport.dev/subscription-id": "public-sub",
            "teleport.dev/resource-group": "public-rg",
            "teleport.dev/region": "northeurope",
        }
    )
    return node


def aws_mixed() -> dict:
    """cloud_metadata disagrees with the labels: cloud metadata wins (account and id)."""
    node = make_aws_node("i-0meta", account="111111111111", region="eu-west-1")
    node["metadata"]["labels"].update(
        {"teleport.dev/instance-id": "i-0label", "teleport.dev/account-id": "222222222222"}
    )
    return node


# --------------------------------------------------------------------------- nodes


@pytest.mark.parametrize(
    ("node", "want"),
    [
        pytest.param(
            make_aws_node("i-0a", account="123456789012", region="us-east-1"),
            ("aws", "i-0a", "i-0a", "", "123456789012", "us-east-1", "", EXPIRES),
            id="aws-cloud-metadata",
        ),
        pytest.param(
            make_aws_node("i-0b", account="999999999999", region="us-east-1", labels_only=True),
            ("aws", "i-0b", "i-0b", "", "999999999999", "", "", EXPIRES),
            id="aws-labels-only-no-region",
        ),
        pytest.param(
            aws_mixed(),
            ("aws", "i-0meta", "i-0meta", "", "111111111111", "eu-west-1", "", EXPIRES),
            id="aws-cloud-metadata-wins-over-labels",
        ),
        pytest.param(
            make_azure_node(VM, resource_group="rg-web", region="westeurope"),
            ("azure", VM, "", VM.upper(), SUB, "westeurope", "rg-web", EXPIRES),
            id="azure-internal-labels-upper-case-id",
        ),
        pytest.param(
            azure_public("AAAA-public-VM", VM),
            (
                "azure",
                "aaaa-public-vm",
                "",
                "AAAA-public-VM",
                "public-sub",
                "northeurope",
                "public-rg",
                EXPIRES,
            ),
            id="azure-public-labels-win",
        ),
        pytest.param(
            {
                "kind": "node",
                "metadata": {
                    "name": "bastion",
                    "labels": {"env": "prod"},
                    "expires": "2026-05-04T10:10:00Z",
                },
                "spec": {"hostname": "bastion"},
            },
            (None, None, "", "", "", "", "", EXPIRES),
            id="non-cloud-node",
        ),
        pytest.param(
            {"kind": "node", "metadata": {"name": "static"}, "spec": {}},
            (None, None, "", "", "", "", "", None),
            id="no-labels-no-expiry",
        ),
        pytest.param(
            {
                "metadata": {
                    "name": "no-kind",
                    "labels": {"teleport.dev/instance-id": "i-0k"},
                    "expires": "2026-05-04T12:10:00+02:00",
                }
            },
            ("aws", "i-0k", "i-0k", "", "", "", "", EXPIRES),
            id="kind-absent-offset-expiry",
        ),
    ],
)
def test_node_rows(store: Store, tmp_path: Path, node: dict, want: tuple) -> None:
    s = snap(store, tmp_path, "nodes", [node])
    assert (s.read, s.stored, s.quarantined) == (1, 1, 0)
    [row] = query(
        store, "node_snapshots", f"SELECT {NODE_COLS}, name, captured_at, capture_date, raw FROM t"
    )
    assert row[:8] == want
    assert row[8] == node["metadata"]["name"]
    assert (row[9], str(row[10])) == (datetime(2026, 5, 4, 10), "2026-05-04")
    assert json.loads(row[11]) == node


def test_node_expiry_keeps_nanoseconds(store: Store, tmp_path: Path) -> None:
    node = make_aws_node("i-0a")
    node["metadata"]["expires"] = "2026-05-04T10:10:00.123456789Z"
    snap(store, tmp_path, "nodes", [node])
    assert query(store, "node_snapshots", "SELECT epoch_ns(expires) FROM t") == [
        (1777889400_123456789,)
    ]


def test_capture_time_is_stored_in_utc(store: Store, tmp_path: Path) -> None:
    at = datetime(2026, 5, 5, 1, 30, tzinfo=timezone(timedelta(hours=2)))  # 2026-05-04T23:30Z
    snap(store, tmp_path, "nodes", [make_aws_node("i-0a")], at=at)
    [(captured, day)] = query(store, "node_snapshots", "SELECT captured_at, capture_date FROM t")
    assert (captured, str(day)) == (datetime(2026, 5, 4, 23, 30), "2026-05-04")
    assert query(store, "snapshot_log", "SELECT captured_at FROM t") == [
        (datetime(2026, 5, 4, 23, 30),)
    ]


def test_naive_capture_time_is_refused(store: Store, tmp_path: Path) -> None:
    path = write_json(tmp_path / "n.json", [make_aws_node("i-0a")])
    with pytest.raises(ValueError, match="timezone-aware"):
        ingest_snapshot(store, "nodes", str(path), datetime(2026, 5, 4, 10))
    assert store.manifest().version == 0


# --------------------------------------------------------------------------- user tasks


@pytest.mark.parametrize(
    ("task", "want"),
    [
        pytest.param(
            make_task("t-ssm", "ec2-ssm-script-failure", ["i-0b", "i-0a", "i-0c"]),
            [
                ("t-ssm", "discover-ec2", "ec2-ssm-script-failure", "OPEN", "aws", k)
                for k in ("i-0a", "i-0b", "i-0c")
            ],
            id="aws-one-row-per-instance",
        ),
        pytest.param(
            make_task("t-az", "azure-vm-enrollment-error", [VM.upper(), "ABC-def"], cloud="azure"),
            [
                ("t-az", "discover-azure-vm", "azure-vm-enrollment-error", "OPEN", "azure", k)
                for k in (VM.upper(), "ABC-def")
            ],
            id="azure-keys-as-listed",
        ),
        pytest.param(
            make_task("t-none", "ec2-join-failure", []),
            [("t-none", "discover-ec2", "ec2-join-failure", "OPEN", "aws", None)],
            id="no-instances-one-row",
        ),
        pytest.param(
            {
                "kind": "user_task",
                "metadata": {"name": "t-other"},
                "spec": {
                    "task_type": "discover-eks",
                    "issue_type": "eks-failure",
                    "state": "OPEN",
                    "discover_eks": {"clusters": {"c1": {}}},
                },
            },
            [("t-other", "discover-eks", "eks-failure", "OPEN", None, None)],
            id="other-task-type-no-cloud",
        ),
    ],
)
def test_user_task_rows(store: Store, tmp_path: Path, task: dict, want: list[tuple]) -> None:
    s = snap(store, tmp_path, "user_tasks", [task])
    assert (s.read, s.stored) == (1, 1)
    rows = query(
        store,
        "user_task_snapshots",
        "SELECT name, task_type, issue_type, state, cloud, instance_key, raw FROM t "
        "ORDER BY instance_key NULLS LAST",
    )
    assert [r[:6] for r in rows] == want
    assert all(json.loads(r[6]) == task for r in rows)
    assert query(store, "snapshot_log", "SELECT kind, rows FROM t") == [("user_tasks", len(want))]


# --------------------------------------------------------------------------- duplicates, empty, log


@pytest.mark.parametrize("kind", ["nodes", "user_tasks"])
def test_same_kind_and_instant_twice_is_a_duplicate(
    store: Store, tmp_path: Path, kind: str
) -> None:
    doc = (
        [make_aws_node("i-0a"), make_azure_node(VM)]
        if kind == "nodes"
        else [make_task("t1", "ec2-ssm-script-failure", ["i-0a"])]
    )
    first = snap(store, tmp_path, kind, doc)
    version = store.manifest().version
    again = snap(
        store,
        tmp_path,
        kind,
        doc + doc,
        at=T0.astimezone(timezone(timedelta(hours=-3))),
        name="other.json",
    )  # same instant, other offset, other file
    assert (again.stored, again.duplicates, again.read) == (0, 2 * len(doc), 2 * len(doc))
    assert store.manifest().version == version
    assert first.stored == len(doc)
    other = "user_tasks" if kind == "nodes" else "nodes"
    assert snap(store, tmp_path, other, [], name="e.json").duplicates == 0  # per kind
    later = snap(store, tmp_path, kind, doc, at=T0 + timedelta(seconds=1))
    assert later.stored == len(doc)
    assert query(store, "snapshot_log", f"SELECT count(*) FROM t WHERE kind = '{kind}'") == [(2,)]


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param([], id="empty-array"),
        pytest.param(b"", id="empty-file"),
        pytest.param(b"  \n\n", id="whitespace-only"),
    ],
)
def test_empty_snapshot_counts_as_the_latest(store: Store, tmp_path: Path, doc) -> None:
    snap(store, tmp_path, "nodes", [make_aws_node("i-0a"), make_aws_node("i-0b")], name="full.json")
    s = snap(store, tmp_path, "nodes", doc, at=T0 + timedelta(hours=1), name="empty.json")
    assert (s.read, s.stored) == (0, 0)
    with connect(store) as con:
        log = con.execute(
            "SELECT kind, captured_at, rows, source FROM snapshot_log ORDER BY captured_at"
        ).fetchall()
        assert [r[:3] for r in log] == [
            ("nodes", datetime(2026, 5, 4, 10), 2),
            ("nodes", datetime(2026, 5, 4, 11), 0),
        ]
        assert log[1][3].endswith("empty.json")
        latest = con.execute(
            "SELECT snapshot_at('nodes', TIMESTAMP_NS '2026-05-04 12:00:00')"
        ).fetchone()
        assert latest == (datetime(2026, 5, 4, 11),)
        online = con.execute(
            "SELECT count(*) FROM online_nodes(TIMESTAMP_NS '2026-05-04 12:00:00')"
        ).fetchone()
        assert online == (0,)  # the empty snapshot hides the earlier one
        before = con.execute(
            "SELECT count(*) FROM online_nodes(TIMESTAMP_NS '2026-05-04 10:30:00')"
        ).fetchone()
        assert before == (2,)


def test_ingest_log_records_snapshot(store: Store, tmp_path: Path) -> None:
    s = snap(store, tmp_path, "nodes", [make_aws_node("i-0a"), "not a node", {"kind": "node"}])
    [row] = query(
        store,
        "ingest_log",
        "SELECT ingest_id, kind, sources, read, stored, duplicates, skipped, quarantined FROM t",
    )
    assert row == (s.ingest_id, "nodes", [str(tmp_path / "snap.json")], 3, 1, 0, 1, 1)


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param([make_aws_node("i-0a"), {"kind": "node"}], id="with-quarantine"),
        pytest.param([], id="empty"),
    ],
)
def test_files_added_matches_files_committed(store: Store, tmp_path: Path, doc) -> None:
    s = snap(store, tmp_path, "nodes", doc)
    committed = sum(len(v) for v in store.manifest().datasets.values())
    assert query(store, "ingest_log", "SELECT files_added FROM t") == [(committed,)]
    assert s.files_added == committed


# --------------------------------------------------------------------------- invalid items


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        pytest.param({"kind": "node"}, "metadata", id="no-metadata"),
        pytest.param({"kind": "node", "metadata": "x"}, "metadata", id="metadata-not-object"),
        pytest.param(
            {"kind": "node", "metadata": {"name": "n", "expires": "tomorrow"}},
            "tomorrow",
            id="bad-expires",
        ),
        pytest.param(
            {"kind": "node", "metadata": {"name": "n", "labels": {"teleport.dev/instance-id": 5}}},
            "labels",
            id="label-not-string",
        ),
        pytest.param(
            {"kind": "node", "metadata": {"name": "n"}, "spec": []}, "spec", id="spec-not-object"
        ),
    ],
)
def test_invalid_node_is_quarantined(store: Store, tmp_path: Path, item: dict, reason: str) -> None:
    s = snap(store, tmp_path, "nodes", [make_aws_node("i-0a"), item, make_aws_node("i-0b")])
    assert (s.read, s.stored, s.quarantined) == (3, 2, 1)
    [(source, line_no, why, raw)] = query(
        store, "quarantine", "SELECT source, line_no, reason, raw FROM t"
    )
    assert (source, line_no) == (str(tmp_path / "snap.json"), 2)
    assert why.startswith("node #2: ") and reason in why
    assert "\n" not in why
    assert json.loads(raw) == item
    assert query(store, "node_snapshots", "SELECT instance_key FROM t ORDER BY 1") == [
        ("i-0a",),
        ("i-0b",),
    ]
    assert query(store, "snapshot_log", "SELECT rows FROM t") == [(2,)]


@pytest.mark.parametrize(
    ("kind", "item"),
    [
        pytest.param("nodes", "a string", id="string"),
        pytest.param("nodes", 42, id="number"),
        pytest.param("nodes", ["nested"], id="array"),
        pytest.param("nodes", {"kind": "user_task", "metadata": {"name": "t"}}, id="other-kind"),
        pytest.param("user_tasks", make_aws_node("i-0z"), id="node-in-user-tasks"),
    ],
)
def test_items_that_are_not_resources_of_the_kind_are_skipped(
    store: Store, tmp_path: Path, kind: str, item
) -> None:
    good = (
        make_aws_node("i-0a") if kind == "nodes" else make_task("t", "ec2-join-failure", ["i-0a"])
    )
    s = snap(store, tmp_path, kind, [good, item])
    assert (s.read, s.stored, s.skipped, s.quarantined) == (2, 1, 1, 0)


@pytest.mark.parametrize(
    ("doc", "want_keys"),
    [
        pytest.param(make_aws_node("i-0a"), ["i-0a"], id="single-object"),
        pytest.param(
            b"\n".join(json.dumps(make_aws_node(i)).encode() for i in ("i-0a", "i-0b")) + b"\n",
            ["i-0a", "i-0b"],
            id="json-lines",
        ),
    ],
)
def test_single_object_and_json_lines_are_accepted(
    store: Store, tmp_path: Path, doc, want_keys
) -> None:
    snap(store, tmp_path, "nodes", doc)
    assert query(store, "node_snapshots", "SELECT instance_key FROM t ORDER BY 1") == [
        (k,) for k in want_keys
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"this is not json", "is not a tctl listing", id="text"),
        pytest.param(b'[{"kind": "node"', "is not a tctl listing", id="cut-array"),
        pytest.param(b"<html>502 Bad Gateway</html>", "is not a tctl listing", id="html"),
        pytest.param(b'\xff\xfe[{"kind": "node"}]', "is not UTF-8", id="not-utf8"),
        pytest.param(None, "cannot read", id="missing-file"),
        pytest.param("dir", "cannot read", id="a-folder"),
    ],
)
def test_unreadable_snapshot_file_is_snapshot_error(
    store: Store, tmp_path: Path, content, message
) -> None:
    path = tmp_path / "nodes.json"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(SnapshotError) as e:
        ingest_snapshot(store, "nodes", str(path), T0)
    assert message in str(e.value) and str(path) in str(e.value)
    assert not store.root.exists()  # rejected before touching the store
