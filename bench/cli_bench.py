"""Benchmark 6, CLI start-up: whole-process wall time of the console script vs `python -c pass`,
and which modules the CLI imports (`python -X importtime`): Airflow must not be among them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.data import Ctx, ensure_small_store
from bench.harness import Check, Row, interleave, median, timed

NAME = "cli"
HEAVY = ("airflow", "pandas", "sqlalchemy", "pydantic_settings", "s3fs", "matplotlib")


def script() -> str:
    return str(Path(sys.executable).with_name("discovery-history"))


def _wall(argv: list[str]) -> dict:
    def go():
        p = subprocess.run(argv, capture_output=True)
        if p.returncode != 0:
            raise RuntimeError(f"{argv} failed: {p.stderr.decode()[-2000:]}")
        return p
    secs, p = timed(go)
    return {"seconds": secs, "stdout_bytes": len(p.stdout)}


def import_profile(args: list[str]) -> dict:
    """Modules imported by `discovery-history ARGS` and the slowest top-level packages."""
    p = subprocess.run([sys.executable, "-X", "importtime", script(), *args],
                       capture_output=True, text=True)
    cumulative: dict[str, int] = {}
    modules = []
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        _, cum, raw = line[len("import time:"):].split("|")
        name = raw.strip()
        modules.append(name)
        if "." not in name and not name.startswith("_"):  # a package's own line: its subtree
            cumulative[name] = max(cumulative.get(name, 0), int(cum))
    heavy = sorted({m.split(".")[0] for m in modules} & set(HEAVY))
    slow = sorted(cumulative.items(), key=lambda kv: -kv[1])[:6]
    return {"modules": len(modules), "heavy": heavy,
            "airflow": [m for m in modules if m.split(".")[0] == "airflow"],
            "slowest_ms": {k: round(v / 1000, 1) for k, v in slow}, "exit": p.returncode}


def run(ctx: Ctx) -> list[Row]:
    store, (lo, hi) = ensure_small_store(ctx)
    runs = ctx.scale.cli_runs
    pass_cmd = [sys.executable, "-c", "pass"]
    query = ["--store", str(store), "nodes", "--from", lo.strftime("%Y-%m-%dT%H:%M:%SZ"),
             "--to", hi.strftime("%Y-%m-%dT%H:%M:%SZ"), "--width", "160"]
    rows = []
    for name, args, limit in (("`nodes --help` wall", ["nodes", "--help"], 0.5),
                              ("`nodes` 24h query, small store, wall", query, 1.0)):
        a, b = interleave(runs, lambda a=args: _wall([script(), *a]), lambda: _wall(pass_cmd),
                          name)
        ours, base = median([x["seconds"] for x in a]), median([x["seconds"] for x in b])
        prof = import_profile(args)
        rows.append(Row(
            NAME, name, ours, "s", baseline=base, baseline_what="`python -c pass` (interpreter)",
            ratio=ours / base, ratio_what="ours wall / bare interpreter wall",
            target=f"<= {limit:g} s", checks=[Check("ours", "max", limit, ours)],
            note=f"{prof['modules']} modules imported; slowest packages to import (ms, "
                 f"cumulative): {prof['slowest_ms']}",
            samples={"ours_s": [x["seconds"] for x in a], "base_s": [x["seconds"] for x in b],
                     "imports": prof, "output_bytes": a[0]["stdout_bytes"]}))
        ctx.shared.setdefault("cli_imports", {})[name] = prof
    profs = ctx.shared["cli_imports"]
    airflow = sorted({m for p in profs.values() for m in p["airflow"]})
    heavy = sorted({m for p in profs.values() for m in p["heavy"]})
    rows.append(Row(
        NAME, "airflow modules imported by the CLI", float(len(airflow)), "count",
        target="0 (assert)", checks=[Check("ours", "max", 0, float(len(airflow)))],
        note=f"python -X importtime of both commands; heavy packages seen: {heavy or 'none'}",
        samples={"airflow": airflow, "heavy": heavy}))
    return rows
