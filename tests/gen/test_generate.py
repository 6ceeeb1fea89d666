"""Tests of the synthetic fleet generator (`pipeline.gen.generate`): determinism, layout, event
shapes per spec §1, cluster state per spec §2. Small fleets so the module runs in seconds."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.gen.generate import DEFAULT_END, FleetSummary, GenerateError, generate_fleet
from pipeline.gen.state import dumps_indent

SMALL = {"days": 3, "aws_instances": 120, "azure_vms": 40}
ENVELOPE = ["ei", "event", "uid", "code", "time", "cluster_name"]
SSM_FIELDS = ["command_id", "instance_id", "exit_code", "status", "account_id", "region", "stdout",
              "stderr", "invocation_url", "platform_name", "platform_type", "platform_version"]
AZURE_FIELDS = ["subscription_id", "resource_group", "resource_id", "region", "vm_id", "vm_name",
                "exit_code", "execution_state", "stdout", "stderr"]
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
DAY_FILE_RE = re.compile(r"^\d{4}-\d\d-\d\d\.00:00:00\.log$")
GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
EC2_ISSUES = {"ec2-ssm-script-failure", "ec2-ssm-agent-connection-lost", "ec2-ssm-unsupported-os",
              "ec2-join-failure"}
AZURE_ISSUES = {"azure-vm-enrollment-error", "azure-vm-agent-not-available",
                "azure-vm-missing-run-commands-permission", "azure-vm-not-running"}


# --- builders -----------------------------------------------------------------------------

def parse_time(s: str) -> datetime:
    """RFC 3339 with 0-9 fractional digits -> aware datetime (microseconds kept)."""
    base, _, frac = s.rstrip("Z").partition(".")
    return datetime.fromisoformat(base).replace(
        tzinfo=UTC, microsecond=int((frac or "0").ljust(9, "0")[:6]))


def time_key(s: str) -> str:
    """Sortable form of an event time (nanoseconds padded)."""
    base, _, frac = s.rstrip("Z").partition(".")
    return base + "." + frac.ljust(9, "0")


def log_lines(root: Path) -> list[tuple[str, str, str]]:
    """(server, file name, line) for every line of every day file, in file order."""
    out = []
    for server in sorted(os.listdir(root / "auth")):
        for name in sorted(os.listdir(root / "auth" / server)):
            if name == "events.log":
                continue
            text = (root / "auth" / server / name).read_text(encoding="utf-8")
            out += [(server, name, line) for line in text.splitlines()]
    return out


def classify(line: str) -> str:
    """'event', or the kind of malformed line: 'truncated', 'not-object', 'no-time'."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return "truncated"
    if not isinstance(value, dict):
        return "not-object"
    return "event" if "time" in value else "no-time"


def events(lines: list[tuple[str, str, str]]) -> list[dict]:
    """Parsed well-formed events, each tagged with `_server` and `_file`."""
    out = []
    for server, name, line in lines:
        if classify(line) == "event":
            out.append(json.loads(line) | {"_server": server, "_file": name})
    return out


def unique_runs(evs: list[dict]) -> list[dict]:
    """ssm.run / azure.run events, one per uid, in time order."""
    seen: dict[str, dict] = {}
    for e in evs:
        if e["event"] in ("ssm.run", "azure.run"):
            seen.setdefault(e["uid"], e)
    return sorted(seen.values(), key=lambda e: time_key(e["time"]))


def key_of(e: dict) -> str:
    return e.get("instance_id") or e["vm_id"]


def tree(root: Path) -> dict[str, bytes | str]:
    """Every file under root as bytes, symlinks as 'link -> target'."""
    out: dict[str, bytes | str] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link -> " + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_bytes()
    return out


# --- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> tuple[Path, FleetSummary]:
    root = tmp_path_factory.mktemp("fleet")
    return root, generate_fleet(root, **SMALL)


@pytest.fixture(scope="module")
def lines(fleet) -> list[tuple[str, str, str]]:
    return log_lines(fleet[0])


@pytest.fixture(scope="module")
def evs(lines) -> list[dict]:
    return events(lines)


@pytest.fixture(scope="module")
def runs(evs) -> list[dict]:
    return unique_runs(evs)


# --- determinism and layout ---------------------------------------------------------------

def test_same_seed_same_bytes_other_seed_differs(tmp_path, fleet):
    root, _ = fleet
    generate_fleet(tmp_path / "again", **SMALL)
    assert tree(tmp_path / "again") == tree(root)
    generate_fleet(tmp_path / "other", seed=8, **SMALL)
    other = tree(tmp_path / "other")
    assert other.keys() == tree(root).keys()
    assert other["nodes.json"] != tree(root)["nodes.json"]
    assert other["auth/server-1/2026-05-30.00:00:00.log"] != (
        root / "auth/server-1/2026-05-30.00:00:00.log").read_bytes()


def test_regenerating_into_same_dir_replaces_old_layout(tmp_path):
    generate_fleet(tmp_path, days=3, aws_instances=5, azure_vms=2)
    generate_fleet(tmp_path, days=1, aws_instances=5, azure_vms=2, auth_servers=1)
    assert sorted(p.name for p in (tmp_path / "auth").iterdir()) == ["server-1"]
    assert sorted(os.listdir(tmp_path / "auth" / "server-1")) == [
        "2026-05-30.00:00:00.log", "events.log"]
    assert not (tmp_path / ".auth.partial").exists()


def test_one_file_per_day_per_server_and_events_log_link(fleet):
    root, summary = fleet
    days = [f"{DEFAULT_END.date() - timedelta(days=d)}.00:00:00.log" for d in (3, 2, 1)]
    for server in ("server-1", "server-2"):
        folder = root / "auth" / server
        assert sorted(os.listdir(folder)) == days + ["events.log"]
        link = folder / "events.log"
        assert link.is_symlink() and os.readlink(link) == days[-1]  # relative, newest
        assert all(DAY_FILE_RE.match(d) for d in days)
    assert summary.log_files == [f"{s}/{d}" for s in ("server-1", "server-2") for d in days]
    assert summary.files_written == len(summary.log_files) + 2
    assert sorted(p.name for p in root.iterdir()) == ["auth", "nodes.json", "user_tasks.json"]


def test_summary_counts_match_files(fleet, lines, evs):
    _, summary = fleet
    assert summary.lines_written == len(lines)
    assert summary.bytes_written == sum(len(line.encode()) + 1 for *_, line in lines)
    per_type = Counter(e["event"] for e in {e["uid"]: e for e in evs}.values())
    assert dict(per_type) == summary.events_by_type
    assert summary.run_events == per_type["ssm.run"] + per_type["azure.run"]
    assert summary.noise_events == sum(per_type.values()) - summary.run_events
    assert summary.window_start == DEFAULT_END - timedelta(days=3)
    assert summary.window_end == DEFAULT_END
    assert (summary.aws_instances, summary.azure_vms) == (120, 40)


def test_duplicates_appear_once_in_each_server(fleet, evs):
    _, summary = fleet
    servers_of = defaultdict(list)
    for e in evs:
        servers_of[e["uid"]].append(e["_server"])
    dups = {u: s for u, s in servers_of.items() if len(s) > 1}
    assert len(dups) == summary.duplicates_injected >= 1
    assert all(sorted(s) == ["server-1", "server-2"] for s in dups.values())


def test_files_in_time_order_within_window_and_day(lines, evs):
    last: dict[tuple[str, str], str] = {}
    start = DEFAULT_END - timedelta(days=3)
    for e in evs:
        assert TIME_RE.match(e["time"]), e["time"]
        assert start <= parse_time(e["time"]) < DEFAULT_END
        assert e["time"][:10] == e["_file"][:10]
        k = (e["_server"], e["_file"])
        assert time_key(e["time"]) >= last.get(k, "")
        last[k] = time_key(e["time"])
    assert any(len(e["time"]) == len("2026-05-30T00:00:00.123456789Z") for e in evs)


# --- every line is an event or an intended malformed line ---------------------------------

def test_malformed_lines_are_the_intended_ones(fleet, lines):
    _, summary = fleet
    kinds = Counter(classify(line) for *_, line in lines)
    assert kinds["event"] == len(lines) - summary.malformed_lines
    assert summary.malformed_lines == 5
    assert kinds["truncated"] == 2 and kinds["not-object"] == 2 and kinds["no-time"] == 1
    files_with_bad = {(s, n) for s, n, line in lines if classify(line) != "event"}
    assert len(files_with_bad) >= 2  # spread over files


def test_malformed_count_follows_argument(tmp_path):
    summary = generate_fleet(tmp_path, days=1, aws_instances=10, azure_vms=0, malformed_lines=0)
    assert summary.malformed_lines == 0
    assert all(classify(line) == "event" for *_, line in log_lines(tmp_path))


def test_envelope_first_in_teleport_order(evs):
    for e in evs:
        assert list(e)[:6] == ENVELOPE
        assert isinstance(e["ei"], int) and e["cluster_name"] == "teleport.example.com"
        uid = uuid.UUID(e["uid"])
        assert (uid.version, uid.variant, str(uid)) == (4, uuid.RFC_4122, e["uid"])


# --- run events per spec §1 ---------------------------------------------------------------

def test_ssm_run_fields(runs):
    ssm = [e for e in runs if e["event"] == "ssm.run"]
    assert ssm
    for e in ssm:
        assert list(e)[6:-2] == SSM_FIELDS  # exactly these, in this order (then _server, _file)
        assert re.fullmatch(r"i-[0-9a-f]{17}", e["instance_id"])
        assert re.fullmatch(r"\d{12}", e["account_id"])
        assert isinstance(e["exit_code"], int) and GUID_RE.match(e["command_id"])
        assert e["code"] in ("TDS00I", "TDS00W")
    assert len({e["account_id"] for e in ssm}) >= 3
    assert len({e["region"] for e in ssm}) >= 4


def test_azure_run_fields(runs):
    az = [e for e in runs if e["event"] == "azure.run"]
    assert az
    for e in az:
        keys = list(e)[6:-2]
        assert keys[:10] == AZURE_FIELDS and set(keys[10:]) <= {"api_error", "status"}
        assert GUID_RE.match(e["vm_id"]) and GUID_RE.match(e["subscription_id"])
        assert e["resource_id"] == (f"/subscriptions/{e['subscription_id']}/resourceGroups/"
                                    f"{e['resource_group']}/providers/Microsoft.Compute/"
                                    f"virtualMachines/{e['vm_name']}")
        assert e["region"] == e["region"].lower()
        assert e["code"] in ("TAZ00I", "TAZ00W")
        if "api_error" in e:
            assert e["code"] == "TAZ00W" and e["exit_code"] == 0
            assert e["stdout"] == e["stderr"] == e["execution_state"] == ""
            assert e["status"] == "API call failed"
        if e["code"] == "TAZ00I":
            assert e["status"] == "Installation completed successfully."
            assert e["execution_state"] == "Succeeded"
    assert len({e["subscription_id"] for e in az}) >= 2


def test_failure_is_decided_by_code_not_exit_code(runs):
    for e in runs:
        assert e["code"][-1] in "IW"
        if e["code"][-1] == "I":
            assert e["exit_code"] == 0
    failed_exit0 = [e for e in runs if e["code"][-1] == "W" and e["exit_code"] == 0]
    assert any(e["event"] == "ssm.run" and e["status"] == "Failed" for e in failed_exit0)
    assert any(e["event"] == "azure.run" for e in failed_exit0)  # API errors


def test_realistic_failure_mix(runs):
    exits = Counter(e["exit_code"] for e in runs if e["code"][-1] == "W")
    assert {-1, 0} <= set(exits) and len(set(exits) & {100, 101, 102, 103, 104, 150, 6}) >= 3
    lost = [e for e in runs if e["exit_code"] == -1]
    assert all(e["stdout"] == e["stderr"] == "" and e["status"] in ("TimedOut", "Failed")
               for e in lost)
    join = [e for e in runs if e["exit_code"] == 150]
    assert all("ERROR: node did not become ready (join cluster) within 5m0s" in e["stderr"]
               and "Active: " in e["stderr"] for e in join)
    ok = [e for e in runs if e["event"] == "ssm.run" and e["code"] == "TDS00I"]
    assert any(e["stdout"].count("\n") >= 5 for e in ok)  # multi-line installer progress


def test_instance_attributes_constant_over_its_life(runs):
    seen: dict[str, set] = defaultdict(set)
    for e in runs:
        seen[key_of(e)].add((e.get("account_id") or e["subscription_id"], e["region"],
                             e.get("resource_group"), e.get("vm_name")))
    assert seen and all(len(v) == 1 for v in seen.values())


def test_failing_instance_retried_about_every_ten_minutes(runs):
    by_inst: dict[str, list[datetime]] = defaultdict(list)
    for e in runs:
        if e["code"][-1] == "W":
            by_inst[key_of(e)].append(parse_time(e["time"]))
    cadences = []
    for times in by_inst.values():
        gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
        if len(gaps) >= 5 and all(480 <= g <= 720 for g in gaps):
            cadences.append(sum(gaps) / len(gaps))
    assert cadences and all(560 <= c <= 640 for c in cadences)


def test_two_step_invocations_and_overlapping_matcher_runs(runs):
    by_cmd = defaultdict(list)
    for e in runs:
        if e["event"] == "ssm.run":
            by_cmd[e["command_id"]].append(e)
    steps = [v for v in by_cmd.values() if len(v) == 2]
    assert steps and all(len({key_of(e) for e in v}) == 1 for v in steps)
    assert all(v[0]["code"] == "TDS00I" for v in steps)  # first document step went fine
    starts: dict[str, list[datetime]] = defaultdict(list)
    for cmd in by_cmd.values():
        starts[key_of(cmd[-1])].append(parse_time(cmd[-1]["time"]))
    near = [b - a for t in starts.values() for a, b in zip(sorted(t), sorted(t)[1:], strict=False)
            if b - a < timedelta(minutes=2)]
    assert near and all(timedelta(seconds=45) <= d <= timedelta(seconds=75) for d in near)


def test_noise_events(fleet, evs):
    _, summary = fleet
    noise = [e for e in {e["uid"]: e for e in evs}.values()
             if e["event"] not in ("ssm.run", "azure.run")]
    assert {e["event"] for e in noise} == {"instance.join", "session.start", "user.login"}
    assert abs(len(noise) / summary.lines_written - 0.05) < 0.01
    joins = [e for e in noise if e["event"] == "instance.join"]
    for e in joins:
        assert e["code"] in ("TJ002I", "TJ002E") and e["role"] == "Node"
        assert e["method"] in ("ec2", "iam", "azure") and isinstance(e["attributes"], dict)
        assert e["node_name"] and GUID_RE.match(e["host_id"]) and e["token_name"]
    iam = [e for e in joins if e["method"] == "iam"]
    assert all(re.search(r"/i-[0-9a-f]{17}$", e["attributes"]["arn"]) for e in iam)


# --- cluster state: nodes.json and user_tasks.json (spec §2) -------------------------------

def test_nodes_json_shape(fleet, runs):
    root, summary = fleet
    text = (root / "nodes.json").read_text()
    nodes = json.loads(text)
    assert text == dumps_indent(nodes) + "\n" == json.dumps(nodes, indent=4) + "\n"
    assert len(nodes) == summary.online_nodes + summary.non_cloud_nodes
    assert [n["metadata"]["name"] for n in nodes] == sorted(n["metadata"]["name"] for n in nodes)
    vm_ids = {e["vm_id"] for e in runs if e["event"] == "azure.run"}
    kinds = Counter()
    for n in nodes:
        assert (n["kind"], n["version"]) == ("node", "v2") and GUID_RE.match(n["metadata"]["name"])
        expires = n["metadata"]["expires"]
        assert TIME_RE.match(expires)
        assert DEFAULT_END < parse_time(expires) < DEFAULT_END + timedelta(minutes=15)
        labels, spec = n["metadata"]["labels"], n["spec"]
        assert spec["hostname"]
        if "teleport.dev/instance-id" in labels:
            kinds["aws"] += 1
            assert labels["teleport.dev/account-id"] and labels["teleport.dev/discovered-name"]
            aws = spec.get("cloud_metadata", {}).get("aws")
            if aws:
                assert aws["instance_id"] == labels["teleport.dev/instance-id"]
                assert aws["account_id"] == labels["teleport.dev/account-id"]
                assert aws["region"] and aws["vpc_id"].startswith("vpc-")
        elif "teleport.internal/vm-id" in labels:
            kinds["azure"] += 1
            vm = labels["teleport.internal/vm-id"]
            assert vm == vm.upper() and GUID_RE.match(vm.lower())
            for k in ("subscription-id", "resource-group", "region"):
                assert labels[f"teleport.internal/{k}"]
            kinds["azure-with-events"] += vm.lower() in vm_ids
        else:
            kinds["other"] += 1
    assert kinds["aws"] > 0 and kinds["azure-with-events"] > 0
    assert kinds["other"] == summary.non_cloud_nodes == 5


def test_online_nodes_have_a_successful_run(fleet, runs):
    root, _ = fleet
    nodes = json.loads((root / "nodes.json").read_text())
    online = {n["metadata"]["labels"].get("teleport.dev/instance-id")
              or n["metadata"]["labels"].get("teleport.internal/vm-id", "").lower() for n in nodes}
    succeeded = {key_of(e) for e in runs if e["code"][-1] == "I"
                 and not e["stdout"].startswith("Content downloaded")}
    with_events = {key_of(e) for e in runs}
    assert online & with_events <= succeeded
    assert len(online & with_events) > 0.7 * len(with_events)
    assert with_events - online  # failing and gone instances are not nodes


def test_user_tasks_shape_and_members(fleet, runs):
    root, summary = fleet
    tasks = json.loads((root / "user_tasks.json").read_text())
    assert len(tasks) == summary.user_tasks > 0
    last = {}
    for e in runs:
        last[key_of(e)] = e
    groups = set()
    for t in tasks:
        assert (t["kind"], t["version"], t["spec"]["state"]) == ("user_task", "v1", "OPEN")
        assert GUID_RE.match(t["metadata"]["name"]) and TIME_RE.match(t["status"]["last_state_change"])
        spec = t["spec"]
        assert spec["integration"]
        if spec["task_type"] == "discover-ec2":
            assert spec["issue_type"] in EC2_ISSUES
            d = spec["discover_ec2"]
            groups.add((spec["integration"], spec["issue_type"], d["account_id"], d["region"]))
            for iid, inst in d["instances"].items():
                assert inst["instance_id"] == iid and inst["discovery_config"]
                assert inst["discovery_group"] and TIME_RE.match(inst["sync_time"])
                if spec["issue_type"] != "ec2-ssm-unsupported-os":
                    assert last[iid]["code"] == "TDS00W" and last[iid]["region"] == d["region"]
        else:
            assert spec["task_type"] == "discover-azure-vm" and spec["issue_type"] in AZURE_ISSUES
            d = spec["discover_azure_vm"]
            groups.add((spec["integration"], spec["issue_type"], d["subscription_id"],
                        d["region"], d["resource_group"]))
            for vm_id, inst in d["instances"].items():
                assert inst["vm_id"] == vm_id and last[vm_id]["code"] == "TAZ00W"
                assert inst["resource_id"] == last[vm_id]["resource_id"]
    assert len(groups) == len(tasks)  # one task per (integration, issue, account, region)


# --- arguments ----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, needle", [
    pytest.param({"days": 0}, "days=0", id="no-days"),
    pytest.param({"noise_ratio": 1.0}, "noise_ratio=1.0", id="noise-all"),
    pytest.param({"auth_servers": 0}, "auth_servers=0", id="no-server"),
    pytest.param({"end": datetime(2026, 5, 31)}, "no timezone", id="naive-end"),
])
def test_bad_arguments(tmp_path, kwargs, needle):
    with pytest.raises(GenerateError, match=needle):
        generate_fleet(tmp_path, **kwargs)


def test_empty_fleet_and_custom_end(tmp_path, capsys):
    end = datetime(2026, 1, 10, 12, 30, tzinfo=UTC)
    summary = generate_fleet(tmp_path, days=1, end=end, aws_instances=0, azure_vms=0,
                             auth_servers=1, progress=True)
    assert summary.run_events == summary.lines_written == 0
    assert summary.log_files == ["server-1/2026-01-09.00:00:00.log",
                                 "server-1/2026-01-10.00:00:00.log"]
    assert len(json.loads((tmp_path / "nodes.json").read_text())) == 5
    assert json.loads((tmp_path / "user_tasks.json").read_text()) == []
    assert capsys.readouterr().err == ""  # progress only on a terminal


# --- Athena layout ------------------------------------------------------------------------

def test_athena_parquet_holds_the_same_events(tmp_path, fleet, lines):
    import pyarrow.parquet as pq

    from pipeline.gen.generate import generate_events_parquet_athena

    root, summary = fleet
    athena = generate_events_parquet_athena(tmp_path, **SMALL)
    assert athena.malformed_lines == 0
    assert athena.lines_written == summary.lines_written - summary.malformed_lines
    assert (tmp_path / "nodes.json").read_bytes() == (root / "nodes.json").read_bytes()
    rows = []
    for rel in athena.log_files:
        day, name = rel.split("/")
        assert uuid.UUID(name.removesuffix(".parquet")).version == 7
        pf = pq.ParquetFile(tmp_path / "athena" / rel)
        assert pf.schema_arrow.names == ["uid", "session_id", "event_type", "event_time", "user",
                                         "event_data"]
        assert pf.metadata.row_group(0).column(0).compression == "SNAPPY"
        for r in pf.read().to_pylist():
            e = json.loads(r["event_data"])
            assert (r["uid"], r["event_type"], r["user"]) == (e["uid"], e["event"],
                                                              e.get("user", ""))
            assert r["event_time"].strftime("%Y-%m-%d") == day == e["time"][:10]
            assert 0 <= (parse_time(e["time"]) - r["event_time"]).total_seconds() < 0.001
            rows.append(r["event_data"])
    assert Counter(rows) == Counter(line for *_, line in lines if classify(line) == "event")


def test_athena_files_in_time_order_and_deterministic(tmp_path):
    import pyarrow.parquet as pq

    from pipeline.gen.generate import generate_events_parquet_athena

    small = {"days": 2, "aws_instances": 40, "azure_vms": 10}
    first = generate_events_parquet_athena(tmp_path / "a", **small)
    again = generate_events_parquet_athena(tmp_path / "b", **small)
    assert first.log_files == again.log_files
    for rel in first.log_files:
        a = pq.read_table(tmp_path / "a" / "athena" / rel)
        assert a.equals(pq.read_table(tmp_path / "b" / "athena" / rel))
        keys = [(r["event_time"], json.loads(r["event_data"])["time"]) for r in a.to_pylist()]
        assert [time_key(t) for _, t in keys] == sorted(time_key(t) for _, t in keys)


def test_athena_empty_fleet(tmp_path):
    from pipeline.gen.generate import generate_events_parquet_athena

    summary = generate_events_parquet_athena(tmp_path, days=1, aws_instances=0, azure_vms=0)
    assert summary.lines_written == 0 and summary.log_files == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["athena", "nodes.json",
                                                          "user_tasks.json"]


# --- the vectorised renderer ----------------------------------------------------------------

def test_rendered_times_match_rfc3339_nano():
    import pyarrow as pa

    from pipeline.gen.plan import DAY, NS
    from pipeline.gen.render import Renderer
    from pipeline.gen.state import rfc3339

    day0 = int(datetime(2026, 5, 1, tzinfo=UTC).timestamp()) * NS
    tpl = pa.table({f"seg{j}": pa.array([], pa.string()) for j in range(7)}
                   | {f"c{j}": pa.array([], pa.int8()) for j in range(1, 7)})
    render = Renderer(tpl, day0, 3)
    ns = [day0, day0 + 1, day0 + NS - 1, day0 + 120_000_000, day0 + 5 * NS + 100,
          day0 + DAY - 1, day0 + DAY, day0 + 2 * DAY + 13 * 3600 * NS + 7 * 60 * NS + 59 * NS + 10]
    assert render.times(pa.array(ns)).to_pylist() == [rfc3339(n) for n in ns]


def test_output_does_not_depend_on_worker_count(tmp_path, fleet, monkeypatch):
    from pipeline.gen import writer

    root, _ = fleet
    monkeypatch.setattr(writer, "WORKERS", 1)
    monkeypatch.setattr(writer, "PIECE_ROWS", 100)  # many pieces per file
    monkeypatch.setattr(writer, "BACKGROUND", False)
    generate_fleet(tmp_path, **SMALL)
    assert tree(tmp_path) == tree(root)


def test_every_kind_of_malformed_line(tmp_path):
    generate_fleet(tmp_path, days=2, aws_instances=30, azure_vms=10, malformed_lines=12)
    kinds = Counter(classify(line) for *_, line in log_lines(tmp_path))
    assert (kinds["truncated"], kinds["not-object"], kinds["no-time"]) == (4, 4, 4)
    not_objects = {line for *_, line in log_lines(tmp_path) if classify(line) == "not-object"}
    assert not_objects == {"null", '["ssm.run"]', '"azure.run"', "42"}


def test_cli_end_places_the_fleet_and_defaults_to_now(tmp_path):
    """`demo generate --end TIME`: the events cover [END - DAYS, END); without it END is now, so
    a demo fleet is recent enough for the scheduled (catchup=False) hourly ingest."""
    from datetime import UTC, datetime

    from click.testing import CliRunner

    from pipeline.cli.main import main

    small = ["--days", "1", "--aws-instances", "4", "--azure-vms", "1"]
    fixed = CliRunner().invoke(main, ["demo", "generate", str(tmp_path / "fixed"), *small,
                                      "--end", "2026-11-30T12:00:00Z"])
    assert fixed.exit_code == 0, fixed.output
    assert "for [2026-11-29T12:00:00Z, 2026-11-30T12:00:00Z)" in fixed.output
    days = {p.name[:10] for p in (tmp_path / "fixed").rglob("20*.log")}
    assert days == {"2026-11-29", "2026-11-30"}

    before = datetime.now(UTC)
    recent = CliRunner().invoke(main, ["demo", "generate", str(tmp_path / "now"), *small])
    after = datetime.now(UTC)
    assert recent.exit_code == 0, recent.output
    newest = max(p.name[:10] for p in (tmp_path / "now").rglob("20*.log"))
    assert newest in {f"{before:%Y-%m-%d}", f"{after:%Y-%m-%d}"}

    bad = CliRunner().invoke(main, ["demo", "generate", str(tmp_path / "bad"), *small,
                                    "--end", "yesterday-ish"])
    assert bad.exit_code != 0 and bad.output.count("\n") == 1 and "yesterday-ish" in bad.output
