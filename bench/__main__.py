"""`python -m bench [--scale small|medium|full] [--only NAME[,NAME]] [--runs N]`

Runs the issue-5 benchmarks, prints one table (stdout; progress on stderr) and writes
`bench/results/<benchmark>-<scale>.json` per benchmark. Never fails on a missed target: the
exit status is 0 unless a benchmark crashed (house style rule 11).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

from bench import (
    cli_bench,
    gen_bench,
    incremental_bench,
    ingest_bench,
    layouts_bench,
    layouts_rss_bench,
    memory_bench,
    nodes_bench,
    report_bench,
    scratch_bench,
    snapshot_bench,
    storage_bench,
)
from bench.data import Ctx
from bench.harness import (
    REPO,
    Row,
    code_fingerprint,
    loadavg,
    log,
    machine,
    table,
    write_result,
)
from bench.scales import SCALES

BENCHMARKS = {m.NAME: m for m in (gen_bench, ingest_bench, layouts_bench, layouts_rss_bench,
                                  memory_bench,
                                  incremental_bench, nodes_bench, report_bench, cli_bench, storage_bench,
                                  snapshot_bench, scratch_bench)}


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    p.add_argument("--scale", choices=sorted(SCALES), default="medium")
    p.add_argument("--only", default="", help=f"comma list of: {', '.join(BENCHMARKS)}")
    p.add_argument("--runs", type=int, default=None, help="N runs per figure (>= 3)")
    p.add_argument("--work-dir", type=Path,
                   default=Path(os.environ.get("BENCH_WORK", REPO / "bench" / ".work")),
                   help="inputs and stores, reused across runs (default bench/.work, $BENCH_WORK)")
    p.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    p.add_argument("--history", choices=("ingested", "generated"), default="ingested",
                   help="incremental, nodes, report: the history store from the generated fleet through "
                        "our ingest, or written by generate --store (no JSON ingest: minutes, "
                        "not a quarter of an hour; the report's raw baselines still read the JSON)")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark {', '.join(unknown)} (choose from {', '.join(BENCHMARKS)})")
    if args.runs is not None and args.runs < 3:
        p.error("--runs must be >= 3 (every figure is a median)")
    args.names = names
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    scale = SCALES[args.scale]
    ctx = Ctx(scale=scale, work=args.work_dir.resolve() / args.scale,
              runs=args.runs or scale.runs, history=args.history)
    ctx.work.mkdir(parents=True, exist_ok=True)
    meta = {"machine": machine(), "loadavg": loadavg(), "runs": ctx.runs,
            "code": code_fingerprint()}
    m = meta["machine"]
    log(f"scale {scale.name}, N={ctx.runs}, work dir {ctx.work}; {m['cpu_count']} x "
        f"{m['cpu_model']}, {m['ram_gib']} GiB, duckdb {m['duckdb']}, load {meta['loadavg']}")
    all_rows: list[Row] = []
    failed = []
    for name in args.names:
        log(f"== {name}")
        meta["code"] = code_fingerprint()
        t = time.perf_counter()
        try:
            rows = BENCHMARKS[name].run(ctx)
        except Exception:  # report and go on: one broken benchmark must not hide the others
            traceback.print_exc()
            failed.append(name)
            continue
        secs = time.perf_counter() - t
        code = code_fingerprint()
        if code != meta["code"]:
            log(f"   WARNING: pipeline/ or sql/ changed during {name} ({meta['code']} -> {code}):"
                " its figures may mix code versions")
            meta["code"] = f"{meta['code']} -> {code}"
            for r in rows:
                r.note += "; CODE CHANGED DURING THIS BENCHMARK"
        path = write_result(args.results_dir, name, scale.name, rows, meta,
                            scale.to_dict() | {"runs": ctx.runs}, secs)
        log(f"   {name} done in {secs:.1f}s -> {path}")
        all_rows += rows
    print(f"\nbench: scale={scale.name} N={ctx.runs} (median of interleaved runs) on "
          f"{m['cpu_count']} x {m['cpu_model']}, {m['ram_gib']} GiB RAM, python {m['python']},"
          f" duckdb {m['duckdb']}; git {m['git']['head'][:10]}"
          f"{' +' + str(m['git']['dirty_files']) + ' changed files' if m['git']['dirty_files'] else ''}"
          f"; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average before "
          f"{meta['loadavg']}, after {loadavg()}\n")
    print(table(all_rows))
    if failed:
        print(f"\nbench: FAILED to run: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
