"""Harness core: interleaved medians, result rows with targets, machine facts, table, JSON.

Every figure is the median of N runs; ours and its baseline alternate run by run (ours first on
even runs, baseline first on odd ones) so machine noise and cache warmth hit both alike. Targets
are checked and printed, never asserted: benchmarks do not gate CI (house style rule 11).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_T0 = time.perf_counter()


def log(msg: str) -> None:
    """Progress on stderr (stdout carries only the table)."""
    print(f"[bench {time.perf_counter() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


@dataclass
class Check:
    """One target: `value` must be <= `limit` (kind "max") or >= it (kind "min")."""

    what: str  # which figure: "ours", "ratio", ...
    kind: str
    limit: float
    value: float | None

    @property
    def ok(self) -> bool | None:
        if self.value is None:
            return None
        return self.value <= self.limit if self.kind == "max" else self.value >= self.limit

    def miss(self) -> str:
        """How far from the target: "1.30x over" / "2.0x short" ("" when met or unknown)."""
        if self.ok is not False:
            return ""
        if self.kind == "max":
            return f"{self.value / self.limit:.2f}x over" if self.limit else "over"
        return f"{self.limit / self.value:.2f}x short" if self.value else "none"


@dataclass
class Row:
    """One line of the table: ours vs its same-session baseline, and the issue's target(s)."""

    bench: str
    name: str
    ours: float | None
    unit: str
    baseline: float | None = None
    baseline_what: str = ""
    ratio: float | None = None
    ratio_what: str = ""
    target: str = "info"
    checks: list[Check] = field(default_factory=list)
    note: str = ""
    samples: dict = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        states = [c.ok for c in self.checks]
        if not states or any(s is None for s in states):
            return None
        return all(states)

    def met_text(self) -> str:
        if self.met is None:
            return "-" if not self.checks else "?"
        if self.met:
            return "yes"
        return "NO " + ", ".join(c.miss() for c in self.checks if c.ok is False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["met"] = self.met
        d["checks"] = [{**asdict(c), "ok": c.ok, "miss": c.miss()} for c in self.checks]
        return d


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def sample(fn: Callable[[], object]) -> dict:
    """One timed call: seconds, milliseconds and what `fn` returned (`rows`)."""
    secs, out = timed(fn)
    return {"seconds": secs, "ms": secs * 1000, "rows": out}


def interleave(runs: int, ours: Callable[[], dict], base: Callable[[], dict],
               label: str = "") -> tuple[list[dict], list[dict]]:
    """Run `ours` and `base` `runs` times each, alternating which goes first."""
    a: list[dict] = []
    b: list[dict] = []
    for i in range(runs):
        order = ((a, ours, "ours"), (b, base, "base"))
        for out, fn, who in order if i % 2 == 0 else order[::-1]:
            res = fn()
            out.append(res)
            if label:
                log(f"  {label} run {i + 1}/{runs} {who}: {res.get('seconds', 0):.3f}s")
    return a, b


def machine() -> dict:
    """Facts about where the figures were measured."""
    import duckdb
    import pyarrow
    import pydantic

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model,
        "ram_bytes": mem,
        "ram_gib": round(mem / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pyarrow": pyarrow.__version__,
        "pydantic": pydantic.__version__,
        "git": _git(),
    }


def code_fingerprint() -> str:
    """A hash of the code under test (pipeline/, sql/): the tree may change while we measure."""
    import hashlib

    h = hashlib.sha1()
    for root in ("pipeline", "sql"):
        for path in sorted((REPO / root).rglob("*")):
            if path.suffix in (".py", ".sql") and path.is_file():
                h.update(str(path.relative_to(REPO)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()[:10]


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def _git() -> dict:
    """Read-only: HEAD and whether the tree had local changes (figures may include them)."""
    def run(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    status = run("status", "--porcelain")
    return {"head": run("rev-parse", "HEAD"), "dirty_files": len(status.splitlines())}


def write_result(results_dir: Path, bench: str, scale: str, rows: list[Row], meta: dict,
                 params: dict, seconds: float) -> Path:
    """bench/results/<bench>-<scale>.json: facts, command, scale, parameters, rows with samples."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{bench}-{scale}.json"
    doc = {
        "benchmark": bench,
        "scale": scale,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]]),
        "machine": meta["machine"],
        "loadavg_before": meta.get("loadavg"),
        "loadavg_after": loadavg(),
        "runs": meta["runs"],
        "code_fingerprint": meta.get("code"),
        "params": params,
        "seconds": round(seconds, 2),
        "rows": [r.to_dict() for r in rows],
    }
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    return path


_UNITS = {"ev/s", "s", "ms", "MiB", "GB", "%", "x", "files", "count", "bytes"}


def fmt(value: float | None, unit: str) -> str:
    """Human form of a figure in its unit."""
    if value is None:
        return "-"
    if unit == "ev/s":
        return f"{value / 1e6:.2f}M/s" if value >= 1e6 else f"{value / 1e3:.0f}k/s"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "MiB":
        return f"{value:.0f} MiB"
    if unit == "GB":
        return f"{value:.2f} GB" if value >= 0.1 else f"{value * 1000:.1f} MB"
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:g} {unit}".strip()


def table(rows: list[Row]) -> str:
    """The results table, then one footnote per row naming its baseline and ratio."""
    head = ("benchmark", "ours", "baseline", "ratio", "target", "met?")
    body = [(f"[{i}] {r.name}", fmt(r.ours, r.unit), fmt(r.baseline, r.unit),
             "-" if r.ratio is None else f"{r.ratio:.2f}x", r.target, r.met_text())
            for i, r in enumerate(rows, start=1)]
    widths = [max(len(str(x[c])) for x in [head, *body]) for c in range(len(head))]

    def line(cells) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(head), line(["-" * w for w in widths])] + [line(b) for b in body]
    out.append("")
    for i, r in enumerate(rows, start=1):
        parts = []
        if r.baseline_what:
            parts.append(f"baseline: {r.baseline_what}")
        if r.ratio_what:
            parts.append(f"ratio: {r.ratio_what}")
        if r.note:
            parts.append(r.note)
        if parts:
            out.append(f"[{i}] " + "; ".join(parts))
    return "\n".join(out)
