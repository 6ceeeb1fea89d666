"""Store: hive-partitioned Parquet datasets under one root, committed through a manifest; the
only writer of Parquet (`write`), its layout, upkeep (`maintenance`: compaction, retention) and
`verify`.

Layout (`<root>/`):
  _manifest.json          the committed file list of every dataset (atomic replace)
  _lock                   writers' lock (flock; on object storage a lease, `lease.py`), holding the
                          current writer's pid/host/start
  _schema/<dataset>/...   zero-row files that anchor each dataset's schema
  _staging/<ingest-id>/   a writer's scratch space (removed after commit; orphans swept)
  runs/cloud=aws/event_date=2026-05-04/part-<ingest-id>-0.parquet
  joins/, quarantine/, node_snapshots/, user_task_snapshots/, snapshot_log/, ingest_log/

Readers (`pipeline.query.views.connect`) only read files named in the manifest, so a crashed or
running writer is never half-visible: a commit is one rename of `_manifest.json`.
"""

from pipeline.store.manifest import LeaseLost, Store, StoreError, StoreLocked

__all__ = ["LeaseLost", "Store", "StoreError", "StoreLocked"]
