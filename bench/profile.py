"""Where our ingest spends its time: py-spy samples `bench.child ingest` on the benchmark input.

    .venv/bin/pip install py-spy                 # not a project dependency
    .venv/bin/python -m bench.profile [--scale medium] [--events 1000000] [--native]

Samples wall time (`--idle`: a line waiting on DuckDB's worker threads counts). Prints the
hottest lines of `pipeline/` (each sample charged to the innermost frame in the
package: time inside a DuckDB statement lands on the line that ran it) and the hottest leaf
frames (with --native: DuckDB's own C++ functions), and keeps the raw collapsed stacks in
`bench/results/profile-ingest-<scale>.txt` (open with speedscope or flamegraph.pl).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench.data import Ctx, ensure_fleet, write_list
from bench.harness import REPO
from bench.scales import SCALES

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _frames(stack: str) -> list[tuple[str, str, str]]:
    out = []
    for f in stack.split(";"):
        m = _FRAME.match(f.strip())
        out.append((m["func"], m["file"], m["line"] or "") if m else (f.strip(), "", ""))
    return out


def summarise(raw: Path, top: int = 8) -> str:
    """Top lines of pipeline/ code and top leaf frames, as shares of all samples."""
    ours: collections.Counter = collections.Counter()
    leaves: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = _frames(stack)
        mine = [f for f in frames if f[1].startswith("pipeline/") or "/pipeline/" in f[1]]
        ours[f"{mine[-1][1].split('/pipeline/')[-1]}:{mine[-1][2]} {mine[-1][0]}"
             if mine else "(outside pipeline/)"] += n
        leaf = frames[-1]
        leaves[f"{leaf[0]} ({Path(leaf[1]).name}{':' + leaf[2] if leaf[2] else ''})"] += n
    if not total:
        return "no samples"
    out = [f"{total} samples", "", "innermost pipeline/ line:"]
    out += [f"  {100 * n / total:5.1f}%  {k}" for k, n in ours.most_common(top)]
    out += ["", "leaf frame:"]
    out += [f"  {100 * n / total:5.1f}%  {k}" for k, n in leaves.most_common(top)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile")
    p.add_argument("--scale", choices=sorted(SCALES), default="medium")
    p.add_argument("--events", type=int, default=None, help="default: the scale's first ingest")
    p.add_argument("--native", action="store_true", help="sample C/C++ frames too (DuckDB)")
    p.add_argument("--rate", type=int, default=100, help="samples per second")
    p.add_argument("--work-dir", type=Path, default=REPO / "bench" / ".work")
    p.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("bench.profile: py-spy not found; install it: .venv/bin/pip install py-spy",
              file=sys.stderr)
        return 2
    scale = SCALES[args.scale]
    ctx = Ctx(scale=scale, work=args.work_dir.resolve() / args.scale, runs=1)
    fleet = ensure_fleet(ctx, "ingest", args.events or scale.ingest_sizes[0], scale.input_days)
    listfile = write_list(ctx.work / "tmp" / "profile-files.txt", fleet.files)
    out = ctx.tmp("profile-out")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    raw = args.results_dir / f"profile-ingest-{args.scale}{'-native' if args.native else ''}.txt"
    cmd = [spy, "record", "--format", "raw", "-o", str(raw), "-r", str(args.rate),
           *([] if args.native else ["--nonblocking"]), "--idle",  # wall time, not CPU
           *(["--native"] if args.native else []), "--",
           sys.executable, "-m", "bench.child", "ingest", str(out), str(listfile)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    shutil.rmtree(out, ignore_errors=True)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return 1
    result = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    print(f"ingest of {fleet.lines} lines under py-spy: {result[-1] if result else '?'}")
    print(summarise(raw))
    print(f"\nraw stacks: {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
