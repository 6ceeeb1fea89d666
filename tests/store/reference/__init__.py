"""FROZEN ORACLE: snapshots as schema 1-2 stored them (one full copy per capture) and the
relations that read them, kept as the differential tests' reference for the change history
(schema 3). The `*.sql` files are the relations that read full copies, verbatim from `sql/` on
main: snapshot_at, online_nodes, user_tasks_at as of commit 9b3117e; instance_joins and
instance_history as of 79b2af7 (issue 13's definitions). `legacy.py` builds full copies as
commit 9b3117e's `ingest_snapshot` did. Do not edit or "improve" them; when another issue changes
one of these relations' other parts, refreeze its full-copy version from that change."""
