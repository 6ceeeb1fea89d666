"""Benchmark 4, incremental cost: the hour after a long history ingested into (a hard-link copy
of) the history store vs into an empty store (schema files already written), interleaved; then
the same hour again (every line a duplicate, as the DAG's lookback re-reads part of the last
hour), into the history plus that hour vs the day so far plus that hour in an otherwise empty
store, so both read the same partition and differ only by the history. Also: the uid index's
size, and the time to build it from scratch and to merge it whole (once each)."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.data import (
    Ctx,
    Increment,
    empty_store,
    ensure_generated_history,
    ensure_history,
    increment_of,
    link_copy,
)
from bench.harness import Check, Row, interleave, log, median, timed
from bench.scales import human

NAME = "incremental"


def _once(ctx: Ctx, template: Path, files: list[str], name: str) -> dict:
    from pipeline.ingest.events import ingest_events
    from pipeline.store import Store

    dst = ctx.tmp(name)
    link_copy(template, dst)
    secs, s = timed(lambda: ingest_events(Store(dst), files))
    shutil.rmtree(dst, ignore_errors=True)
    return {"seconds": secs, "read": s.read, "stored": s.stored, "duplicates": s.duplicates}


def _template(ctx: Ctx, base: Path, files: list[str], name: str) -> Path:
    """A copy of store `base` with `files` ingested (built once per session, not timed)."""
    from pipeline.ingest.events import ingest_events
    from pipeline.store import Store

    dst = ctx.work / "templates" / name
    shutil.rmtree(dst, ignore_errors=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    link_copy(base, dst)
    if files:
        ingest_events(Store(dst), files)
    return dst


def _index_facts(ctx: Ctx, inc: Increment) -> dict:
    """Size of the history's uid index against the store's, and one full rebuild and one
    whole merge of it (each on a copy, timed once)."""
    import duckdb

    from pipeline.store import Store, uidbuild, uidindex
    from pipeline.store.layout import DATASETS, INDEXED, UID_INDEX

    store = Store(inc.store)
    m = store.manifest()

    def size(name: str) -> int:  # committed files only (not retired ones kept for readers)
        return sum((inc.store / name / rel).stat().st_size for rel in m.datasets.get(name, []))

    files = {d: uidindex.files_of(m, d) for d in INDEXED}
    facts = {"index_bytes": size(UID_INDEX), "files": files,
             "store_bytes": sum(size(name) for name in DATASETS)}
    for what in ("rebuild", "merge"):
        dst = ctx.tmp(f"index-{what}")
        link_copy(inc.store, dst)
        copy = Store(dst)
        with copy.writer() as w:
            con = duckdb.connect()
            con.execute("SET memory_limit = '512MB'")
            con.execute(f"SET temp_directory = '{w.scratch('spill')}'")

            def work(w=w, con=con, what=what) -> None:
                if what == "rebuild":
                    uidbuild.build(con, w)
                else:
                    for d in INDEXED:
                        uidindex.merge(w, d, uidindex.files_of(w.base, d),
                                       uidindex.live_parts(w, d))
            facts[f"{what}_seconds"], _ = timed(work)
            w.commit()
        shutil.rmtree(dst, ignore_errors=True)
        log(f"  uid index {what}: {facts[f'{what}_seconds']:.1f}s")
    return facts


def run(ctx: Ctx) -> list[Row]:
    inc = ensure_generated_history(ctx) if ctx.history == "generated" else \
        increment_of(ensure_history(ctx))
    empty = empty_store(ctx)
    runs = max(ctx.runs, 5)  # each run is short: more runs, steadier median
    hist, base = interleave(runs, lambda: _once(ctx, inc.store, inc.hour_files, "inc-history"),
                            lambda: _once(ctx, empty, inc.hour_files, "inc-empty"), "incremental")
    ours, bare = median([r["seconds"] for r in hist]), median([r["seconds"] for r in base])
    ratio = ours / bare
    what = (f"{ctx.scale.history_days} d history ({human(inc.events)} events, "
            f"{'generate --store' if inc.kind == 'generated' else 'ingested'})")
    rows = [Row(
        NAME, f"1 h after a {what}", ours, "s", baseline=bare,
        baseline_what="the same hour into an empty store",
        ratio=ratio, ratio_what="history time / empty time", target="<= 1.5x",
        checks=[Check("ratio", "max", 1.5, ratio)],
        note=f"hour = {hist[0]['read']} lines ({hist[0]['stored']} stored); history store "
             f"built once and hard-link copied per run (copy not timed); uid index on",
        samples={"history": hist, "empty": base, "history_store": inc.doc})]
    log("   the same hour again (duplicates)")
    day = _template(ctx, empty, inc.head_files + inc.hour_files, "day+hour")
    history = _template(ctx, inc.store, inc.hour_files, "history+hour")
    hist2, base2 = interleave(runs, lambda: _once(ctx, history, inc.hour_files, "dup-history"),
                              lambda: _once(ctx, day, inc.hour_files, "dup-day"), "duplicates")
    ours2, bare2 = median([r["seconds"] for r in hist2]), median([r["seconds"] for r in base2])
    rows.append(Row(
        NAME, f"the same hour again (all duplicates) after a {what}", ours2, "s",
        baseline=bare2, baseline_what="the same into a store holding only that day so far",
        ratio=ours2 / bare2, ratio_what="history time / day-only time", target="<= 1.5x",
        checks=[Check("ratio", "max", 1.5, ours2 / bare2)],
        note=f"{hist2[0]['duplicates']} duplicates of {hist2[0]['read']} lines; both sides read "
             "the hour's partition (the day so far)",
        samples={"history": hist2, "day": base2}))
    shutil.rmtree(ctx.work / "templates", ignore_errors=True)
    facts = _index_facts(ctx, inc)
    rows.append(Row(
        NAME, f"uid index of the {what}", facts["index_bytes"] / 2**20, "MiB",
        baseline=facts["store_bytes"] / 2**20, baseline_what="the datasets' files",
        ratio=facts["index_bytes"] / facts["store_bytes"], ratio_what="index / store bytes",
        note=f"{sum(len(v) for v in facts['files'].values())} index files; built from scratch "
             f"in {facts['rebuild_seconds']:.1f} s, merged whole in {facts['merge_seconds']:.1f} s"
             " (one run each, info)",
        samples=facts))
    return rows
