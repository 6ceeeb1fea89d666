"""Per-instance planning: who the instances are and which install attempts they get.

Randomness here is Python `random.Random(seed)`, drawn per instance (never per event); the
SQL stage expands each episode (first attempt time, attempt count, outcome kind) into events.
"""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass, field
from itertools import accumulate

import pyarrow as pa

from pipeline.gen import catalog as cat

NS = 1_000_000_000
HOUR = 3600 * NS
DAY = 24 * HOUR
RETRY_NS = cat.RETRY_SECONDS * NS

_STR = ("cloud", "key", "account", "region", "resource_group", "vm_name", "resource_id",
        "integration", "name", "platform_name", "platform_type", "platform_version", "os_id",
        "pkg", "hostname", "ip", "vpc_id", "host_id")
_BOOL = ("pre_window", "unsupported", "dup", "conflict", "offline", "node_meta")
INST_SCHEMA = pa.schema([("inst", pa.int64())] + [(c, pa.string()) for c in _STR]
                        + [(c, pa.bool_()) for c in _BOOL])
EP_SCHEMA = pa.schema([("inst", pa.int64()), ("ep", pa.int64()), ("t0", pa.int64()),
                       ("n", pa.int64()), ("kind", pa.string())])


@dataclass
class FleetPlan:
    """Columns of the instance table and the episode table, plus fleet-wide constants."""

    start_ns: int
    end_ns: int
    aws_accounts: list[str]
    azure_subscriptions: list[str]
    azure_client_id: str
    azure_tenant_id: str
    inst: dict[str, list] = field(default_factory=dict)
    ep: dict[str, list] = field(default_factory=lambda: {"inst": [], "ep": [], "t0": [],
                                                         "n": [], "kind": []})

    def add(self, **row: object) -> int:
        """Append one instance row; return its index."""
        cols = self.inst
        if not cols:
            cols.update((name, []) for name in INST_SCHEMA.names)
        idx = len(cols["inst"])
        cols["inst"].append(idx)
        for k, v in row.items():
            cols[k].append(v)
        return idx

    def episode(self, idx: int, t0: int, n: int, kind: str) -> None:
        """Append one episode: `n` attempts of outcome `kind` from `t0`, every RETRY_NS."""
        self.ep["inst"].append(idx)
        self.ep["ep"].append(len(self.ep["ep"]))
        self.ep["t0"].append(t0)
        self.ep["n"].append(n)
        self.ep["kind"].append(kind)

    def tables(self) -> tuple[pa.Table, pa.Table]:
        """The instance and episode tables, typed even when empty."""
        inst = {name: self.inst.get(name, []) for name in INST_SCHEMA.names}
        return (pa.Table.from_pydict(inst, schema=INST_SCHEMA),
                pa.Table.from_pydict(self.ep, schema=EP_SCHEMA))


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def guid(rng: random.Random) -> str:
    """A UUID v4 string: str(uuid.UUID(int=rng.getrandbits(128), version=4)), faster."""
    h = f"{rng.getrandbits(128) & _V4_CLEAR | _V4_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _Weighted:
    """`rng.choices(population, weights)[0]` with the cumulative weights computed once (the
    same draw: one `rng.random()` and the same bisection)."""

    def __init__(self, population, weights) -> None:
        self.population = tuple(population)
        self.cum = list(accumulate(weights))
        self.total = self.cum[-1] + 0.0
        self.hi = len(self.population) - 1

    def __call__(self, rng: random.Random):
        return self.population[bisect(self.cum, rng.random() * self.total, 0, self.hi)]


def _pairs(pairs: tuple[tuple[str, int], ...]) -> _Weighted:
    return _Weighted([k for k, _ in pairs], [w for _, w in pairs])


_AWS_FAIL = _pairs(cat.AWS_FAILURES)
_AZURE_FAIL = _pairs(cat.AZURE_FAILURES)
_ACCOUNT = _Weighted(range(len(cat.AWS_ACCOUNT_WEIGHTS)), cat.AWS_ACCOUNT_WEIGHTS)
_REGION = _Weighted(cat.AWS_REGIONS, cat.AWS_REGION_WEIGHTS)
_PLATFORM = _Weighted(cat.PLATFORMS, cat.PLATFORM_WEIGHTS)


def _discovered_at(rng: random.Random, start: int, end: int) -> int:
    """40% in the initial sweep at the window start, the rest trickle in (autoscaling)."""
    span = end - start
    if rng.random() < 0.4:
        return start + rng.randrange(min(6 * HOUR, span // 4))
    return start + rng.randrange(max(span - 15 * 60 * NS, 1))


def _episodes(plan: FleetPlan, rng: random.Random, idx: int, t0: int, fails: _Weighted,
              ok: str) -> None:
    """Lifecycle mix: first-try success, fixed after retries, given up, days, relapse, stuck."""
    kind = fails(rng)
    p = rng.random()
    if p < 0.76:
        plan.episode(idx, t0, 1, ok)
    elif p < 0.87:
        n = rng.randint(1, 6) if rng.random() < 0.7 else rng.randint(7, 72)
        plan.episode(idx, t0, n, kind)
        plan.episode(idx, t0 + n * RETRY_NS, 1, ok)
    elif p < 0.92:  # given up after some hours (instance stopped or matcher changed)
        plan.episode(idx, t0, rng.randint(6, 48), kind)
    elif p < 0.935:  # fails for days, then fixed
        n = rng.randint(144, 432)
        plan.episode(idx, t0, n, kind)
        plan.episode(idx, t0 + n * RETRY_NS, 1, ok)
    elif p < 0.99:  # installed, agent later gone, re-install fails for a while
        plan.episode(idx, t0, 1, ok)
        t1 = t0 + HOUR + rng.randrange(7 * DAY)
        n = rng.randint(6, 60)
        plan.episode(idx, t1, n, fails(rng))
        if rng.random() < 0.5:
            plan.episode(idx, t1 + n * RETRY_NS, 1, ok)
    else:  # stuck: retried until the end of the window
        plan.episode(idx, t0, (plan.end_ns - t0) // RETRY_NS + 1, kind)


def _common(rng: random.Random) -> dict[str, object]:
    """Per-instance flags shared by both clouds."""
    u = rng.random()
    dup = rng.random() < 0.03
    return {"host_id": guid(rng), "pre_window": u < 0.05, "unsupported": False,
            "dup": dup, "conflict": dup and rng.random() < 0.35,
            "offline": rng.random() < 0.03, "node_meta": rng.random() < 0.95}


def _add_aws(plan: FleetPlan, rng: random.Random, vpcs: dict) -> None:
    a = _ACCOUNT(rng)
    region = _REGION(rng)
    pf = _PLATFORM(rng)
    iid = "i-" + _hex(rng, 17)
    ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    row = _common(rng)
    row["unsupported"] = not row["pre_window"] and rng.random() < 0.01
    idx = plan.add(
        cloud="aws", key=iid, account=plan.aws_accounts[a], region=region, resource_group="",
        vm_name="", resource_id="", integration=cat.AWS_INTEGRATIONS[a],
        name=f"{rng.choice(('web', 'api', 'worker', 'batch', 'db'))}-{_hex(rng, 4)}",
        platform_name=pf.name, platform_type=pf.type, platform_version=pf.version,
        os_id=pf.os_id, pkg=pf.pkg, ip=ip,
        hostname=f"ip-{ip.replace('.', '-')}.{region}.compute.internal",
        vpc_id=vpcs.setdefault((a, region), "vpc-" + _hex(rng, 17)), **row)
    if not (row["pre_window"] or row["unsupported"]):
        t0 = _discovered_at(rng, plan.start_ns, plan.end_ns)
        _episodes(plan, rng, idx, t0, _AWS_FAIL, "aws_ok")


def _add_azure(plan: FleetPlan, rng: random.Random, groups: list) -> None:
    sub, rg, region = rng.choice(groups)
    pf = _PLATFORM(rng)
    vm = f"vm-{rg.lower().removeprefix('rg-')}-{_hex(rng, 5)}"
    rid = (f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute"
           f"/virtualMachines/{vm}")
    row = _common(rng)
    idx = plan.add(
        cloud="azure", key=guid(rng), account=sub, region=region, resource_group=rg,
        vm_name=vm, resource_id=rid, integration=cat.AZURE_INTEGRATION, name=vm,
        platform_name=pf.name, platform_type=pf.type, platform_version=pf.version,
        os_id=pf.os_id, pkg=pf.pkg, hostname=vm, vpc_id="", **row,
        ip=f"10.{100 + rng.randrange(100)}.{rng.randrange(256)}.{rng.randrange(4, 255)}")
    if not row["pre_window"]:
        t0 = _discovered_at(rng, plan.start_ns, plan.end_ns)
        _episodes(plan, rng, idx, t0, _AZURE_FAIL, "az_ok")


def plan_fleet(seed: int, start_ns: int, end_ns: int, aws: int, azure: int) -> FleetPlan:
    """Deterministic fleet for `seed`: AWS instances first, then Azure VMs, in index order."""
    rng = random.Random(seed)
    accounts = ["0" + str(rng.randrange(10**10, 10**11))] + [
        str(rng.randrange(10**11, 10**12)) for _ in range(len(cat.AWS_INTEGRATIONS) - 1)]
    subs = [guid(rng) for _ in range(cat.AZURE_SUBSCRIPTIONS)]
    plan = FleetPlan(start_ns, end_ns, accounts, subs, guid(rng), guid(rng))
    groups = [(s, rg, rng.choice(cat.AZURE_REGIONS))
              for s in subs for rg in rng.sample(cat.AZURE_RESOURCE_GROUPS, 3)]
    vpcs: dict = {}
    for _ in range(aws):
        _add_aws(plan, rng, vpcs)
    for _ in range(azure):
        _add_azure(plan, rng, groups)
    return plan
