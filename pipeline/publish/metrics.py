"""Enrollment health as Prometheus metrics: the text exposition (Prometheus 0.0.4 or OpenMetrics,
built by prometheus_client) of `pipeline.query.health`, and writing it atomically for
node_exporter's textfile collector. Label values are bounded: clouds, the fleet's accounts and
regions, reasons from the rule table (never raw output), source origins (one per exporter)."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

from pipeline.query.health import CLOUDS, INGEST_COUNTS, Health

PREFIX = "discovery_history_"
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def _seconds(ns: int) -> float:
    return ns / 1e9


def families(h: Health) -> list:
    """The metric families of `h` (prometheus_client GaugeMetricFamily), in a fixed order."""
    from prometheus_client.core import GaugeMetricFamily as Gauge

    failing = Gauge(PREFIX + "instances_failing",
                    "Instances whose newest install attempt in the last 24 hours failed, by "
                    "cloud, account, region and failure reason (rule table).",
                    labels=["cloud", "account", "region", "reason"])
    for f in h.failing:
        failing.add_metric([f.cloud, f.account, f.region, f.reason], f.instances)
    attempts = Gauge(PREFIX + "attempts_last_hour",
                     "Install attempts whose result fell in the last hour, by cloud.",
                     labels=["cloud"])
    failed = Gauge(PREFIX + "failed_attempts_last_hour",
                   "Failed install attempts whose result fell in the last hour, by cloud.",
                   labels=["cloud"])
    for cloud in CLOUDS:
        attempts.add_metric([cloud], h.attempts.get(cloud, 0))
        failed.add_metric([cloud], h.failed_attempts.get(cloud, 0))
    fresh = Gauge(PREFIX + "source_newest_event_timestamp_seconds",
                  "Time of the newest stored event per source (an auth server's log folder, an "
                  "export prefix, a DynamoDB table, a spool), among the last 7 days' events.",
                  labels=["source"])
    for origin, ns in sorted(h.sources.items()):
        fresh.add_metric([origin], _seconds(ns))
    out = [failing, attempts, failed, fresh]
    if h.last_ingest is not None:
        out.append(Gauge(PREFIX + "last_ingest_timestamp_seconds",
                         "Finish time of the last successful (committed) events ingest.",
                         value=_seconds(h.last_ingest)))
        lines = Gauge(PREFIX + "last_ingest_lines",
                      "Lines of the last events ingest by outcome: read = stored + duplicates + "
                      "skipped + quarantined.", labels=["outcome"])
        for outcome in INGEST_COUNTS:
            lines.add_metric([outcome], h.last_ingest_counts[outcome])
        out.append(lines)
    snaps = Gauge(PREFIX + "last_snapshot_timestamp_seconds",
                  "Capture time of the newest node / user-task snapshot.", labels=["kind"])
    for kind, ns in h.snapshots.items():
        if ns is not None:
            snaps.add_metric([kind], _seconds(ns))
    out.append(snaps)
    return out


def exposition(h: Health, *, openmetrics: bool = False) -> bytes:
    """The text exposition of `h`: Prometheus 0.0.4, or OpenMetrics 1.0 (ends in `# EOF`)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client import generate_latest as prometheus_text
    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_text

    class _Collector:
        def collect(self):
            return families(h)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return (openmetrics_text if openmetrics else prometheus_text)(registry)


def store_exposition(store, now: datetime, *, openmetrics: bool = False) -> bytes:
    """The exposition of `store`'s health at `now` (a fresh connection, closed after)."""
    from pipeline.query import analytics, health

    with analytics.connect(store) as con:
        return exposition(health.collect(con, now), openmetrics=openmetrics)


def write_textfile(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (a temporary file in the same folder, fsynced, renamed),
    as node_exporter's textfile collector needs (it reads `*.prom` files only)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
