"""FROZEN ORACLE: snapshots as schema 1-2 stored them (one full copy per capture) and the
relations that read them, kept as the differential tests' reference for the change history
(schema 3). The `*.sql` files are `sql/` as of commit 9b3117e, verbatim; `legacy.py` builds full
copies as that commit's `ingest_snapshot` did. Do not edit or "improve" them."""
