"""Workload sizes per `--scale`. Event counts are targets: fleets are sized from the generator's
plan (see `bench.data.fleet_size`) and land within a few percent; results record actual counts."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Scale:
    name: str
    runs: int  # N: every figure is a median of N interleaved runs
    gen_events: int  # generator benchmark: events per run (each format)
    gen_days: int
    ingest_sizes: tuple[int, ...]  # ingest throughput inputs (file-log lines, 30-day fleets)
    memory_sizes: tuple[int, ...]  # peak-RSS inputs (same shape as ingest inputs)
    input_days: int  # days covered by the ingest / memory inputs
    naive_sample: int  # lines through the naive per-event pydantic loop
    history_days: int  # the long-history store (incremental, report, storage)
    history_events: int
    report_runs: int  # in-process queries are quick: more runs
    cli_runs: int
    cli_events: int  # the small store the CLI queries

    def to_dict(self) -> dict:
        return asdict(self)


SCALES = {
    "small": Scale("small", runs=3, gen_events=20_000, gen_days=7, ingest_sizes=(20_000,),
                   memory_sizes=(20_000, 60_000), input_days=7, naive_sample=2_000,
                   history_days=7, history_events=40_000, report_runs=3, cli_runs=3,
                   cli_events=10_000),
    "medium": Scale("medium", runs=3, gen_events=500_000, gen_days=30,
                    ingest_sizes=(1_000_000,), memory_sizes=(1_000_000, 3_000_000),
                    input_days=30, naive_sample=50_000, history_days=90,
                    history_events=2_000_000, report_runs=7, cli_runs=5, cli_events=20_000),
    # the sizes: 1M and 10M ingests, a 50M-event one-year store
    "full": Scale("full", runs=3, gen_events=5_000_000, gen_days=30,
                  ingest_sizes=(1_000_000, 10_000_000), memory_sizes=(1_000_000, 10_000_000),
                  input_days=30, naive_sample=200_000, history_days=365,
                  history_events=50_000_000, report_runs=7, cli_runs=7, cli_events=20_000),
}


def human(n: int) -> str:
    """1000000 -> '1M', 20000 -> '20k', 1909948 -> '1.91M' (three significant digits)."""
    if n >= 1_000_000:
        return f"{float(f'{n / 1e6:.3g}'):g}M"
    if n >= 1000:
        return f"{float(f'{n / 1e3:.3g}'):g}k"
    return str(n)
