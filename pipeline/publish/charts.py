"""The report's charts, drawn with matplotlib's object API (a `Figure` rendered by Agg: no pyplot,
no global backend switch, so notebooks keep theirs). Figures take plain rows (`records` of the
analytics tables) and return a Figure; `png` turns one into bytes (no timestamp metadata, so the
same rows give the same file).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from pipeline.publish.history import DAY_NS, HOUR_NS, HistoryReport, records

OTHER = "Other"
COLORS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
          "#ff9da7", "#9c755f", "#bab0ac")
TREND_PNG = "failure-trend.png"
REASONS_PNG = "top-reasons.png"


def _dt(ns: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)


def buckets(start_ns: int, end_ns: int, bucket: str) -> list[int]:
    """Every bucket start (UTC hour or day) that overlaps [start_ns, end_ns)."""
    step = HOUR_NS if bucket == "hour" else DAY_NS
    first = start_ns - start_ns % step
    return list(range(first, end_ns, step))


def trend_series(rows: Sequence[dict], starts: Sequence[int], top: int = 6
                 ) -> tuple[dict[str, list[int]], list[float | None]]:
    """Failures per bucket for the `top` reasons (most failures first) and `Other`, and the
    failure rate per bucket (None where there were no attempts), from failure_trends rows by
    category."""
    totals: dict[str, int] = {}
    for r in rows:
        totals[r["key"]] = totals.get(r["key"], 0) + r["failures"]
    ranked = sorted(totals, key=lambda k: (-totals[k], k))
    keep = ranked if len(ranked) <= top + 1 else ranked[:top]  # never an `Other` of one
    index = {s: i for i, s in enumerate(starts)}
    series = {k: [0] * len(starts) for k in keep}
    if len(ranked) > len(keep):
        series[OTHER] = [0] * len(starts)
    attempts = [0] * len(starts)
    failures = [0] * len(starts)
    for r in rows:
        i = index.get(r["bucket_start"])
        if i is None:
            continue
        series[r["key"] if r["key"] in series else OTHER][i] += r["failures"]
        attempts[i] = r["attempts"]  # for categories: the bucket's total attempts
        failures[i] += r["failures"]
    rates = [f / a if a else None for f, a in zip(failures, attempts, strict=True)]
    return series, rates


def trend_figure(rows: Sequence[dict], start_ns: int, end_ns: int, bucket: str):
    """Stacked bars of failed attempts per bucket by reason, with the failure rate as a line."""
    from matplotlib import dates as mdates
    from matplotlib.figure import Figure

    starts = buckets(start_ns, end_ns, bucket)
    series, rates = trend_series(rows, starts)
    fig = Figure(figsize=(10, 4.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    xs = [_dt(s) for s in starts]
    width = (1 / 24 if bucket == "hour" else 1) * 0.85
    bottom = [0] * len(starts)
    for (name, values), color in zip(series.items(), COLORS, strict=False):
        # each bar is centred on its bucket's tick (the day's or hour's start)
        ax.bar(xs, values, width=width, bottom=bottom, label=name, color=color, align="center")
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("failed attempts")
    ax.set_title(f"Failed install attempts per {bucket} (UTC), by reason", loc="left")
    locator = bucket_locator(len(starts), bucket)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.grid(axis="y", alpha=0.3)
    if not any(bottom):
        ax.text(0.5, 0.5, "No failed attempts in this period", transform=ax.transAxes,
                ha="center", va="center", color="#666")
    rate_ax = ax.twinx()
    rate_ax.plot(xs, [None if r is None else r * 100 for r in rates], color="#222",
                 marker="o", markersize=3, linewidth=1.2, label="failure rate (%)")
    rate_ax.set_ylim(0, 105)
    rate_ax.set_ylabel("failure rate (% of attempts)")
    handles, labels = ax.get_legend_handles_labels()
    h2, l2 = rate_ax.get_legend_handles_labels()
    if handles or h2:
        ax.legend(handles + h2, labels + l2, loc="upper left", bbox_to_anchor=(1.08, 1),
                  fontsize=8, frameon=False)
    return fig


def bucket_locator(n: int, bucket: str, most: int = 12):
    """Ticks on bucket starts only (midnights, or whole hours), every k-th so that at most
    about `most` are labelled: a bar centred on its bucket's start sits on a tick."""
    from matplotlib import dates as mdates

    k = max(1, -(-n // most))
    if bucket == "hour" and k < 24:
        return mdates.HourLocator(byhour=range(0, 24, k))
    return mdates.DayLocator(interval=k if bucket == "day" else -(-k // 24))


def reasons_figure(rows: Sequence[dict], top: int = 10):
    """Horizontal bars of failed attempts per reason (most first), labelled with the count and
    the number of failing instances."""
    from matplotlib.figure import Figure

    rows = list(rows)[:top]
    fig = Figure(figsize=(10, 0.45 * max(len(rows), 2) + 1.0), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    names = [r["reason"] for r in rows][::-1]
    values = [r["failures"] for r in rows][::-1]
    bars = ax.barh(names, values, color=COLORS[0])
    for bar, r in zip(bars, rows[::-1], strict=True):
        ax.annotate(f" {r['failures']:,} ({r['failing_instances']} inst.)",
                    (bar.get_width(), bar.get_y() + bar.get_height() / 2), va="center",
                    fontsize=8)
    ax.set_xlabel("failed attempts")
    ax.set_title("Top failure reasons", loc="left")
    ax.margins(x=0.2)
    if not rows:
        ax.text(0.5, 0.5, "No failed attempts in this period", transform=ax.transAxes,
                ha="center", va="center", color="#666")
    return fig


def png(fig) -> bytes:
    """The figure as PNG bytes (Agg), without the software/date metadata."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def report_charts(rep: HistoryReport) -> dict[str, bytes]:
    """The report's PNGs by file name; empty when matplotlib is not installed (the pages then
    say how to get charts)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return {}
    return {
        TREND_PNG: png(trend_figure(records(rep.trends), rep.trend_start_ns, rep.end_ns,
                                    rep.bucket)),
        REASONS_PNG: png(reasons_figure(records(rep.reasons))),
    }
