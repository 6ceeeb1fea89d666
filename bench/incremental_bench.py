"""Benchmark 4, incremental cost: ingest the hour after a long history into (a hard-link copy
of) the history store vs into an empty store (schema files already written), interleaved."""

from __future__ import annotations

import shutil

from bench.data import Ctx, empty_store, ensure_history, link_copy
from bench.harness import Check, Row, interleave, median, timed
from bench.scales import human

NAME = "incremental"


def _once(ctx: Ctx, template, files: list[str], name: str) -> dict:
    from pipeline.ingest.events import ingest_events
    from pipeline.store import Store

    dst = ctx.tmp(name)
    link_copy(template, dst)
    secs, s = timed(lambda: ingest_events(Store(dst), files))
    shutil.rmtree(dst, ignore_errors=True)
    return {"seconds": secs, "read": s.read, "stored": s.stored, "duplicates": s.duplicates}


def run(ctx: Ctx) -> list[Row]:
    h = ensure_history(ctx)
    empty = empty_store(ctx)
    runs = max(ctx.runs, 5)  # each run is short: more runs, steadier median
    hist, base = interleave(runs, lambda: _once(ctx, h.store, h.hour_files, "inc-history"),
                            lambda: _once(ctx, empty, h.hour_files, "inc-empty"), "incremental")
    ours, bare = median([r["seconds"] for r in hist]), median([r["seconds"] for r in base])
    ratio = ours / bare
    stored = h.doc["ingest"]["stored"]
    return [Row(
        NAME, f"1 h after a {ctx.scale.history_days} d history ({human(stored)} events)",
        ours, "s", baseline=bare,
        baseline_what="the same hour into an empty store",
        ratio=ratio, ratio_what="history time / empty time", target="<= 1.5x",
        checks=[Check("ratio", "max", 1.5, ratio)],
        note=f"hour = {hist[0]['read']} lines ({hist[0]['stored']} stored); history store "
             f"built once by our ingest and hard-link copied per run (copy not timed)",
        samples={"history": hist, "empty": base, "history_ingest": h.doc})]
