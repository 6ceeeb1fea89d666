"""FROZEN ORACLE: snapshots as schema 1-2 stored them (one full copy per capture) and the
relations that read them, kept as the differential tests' reference for the change history
(schema 3). The `*.sql` files are the relations that read full copies (and online_nodes, which
reads registered_nodes), verbatim from `sql/` on main as of 4de48f5: snapshot_at (unchanged
since 9b3117e), issue 12's registered_nodes, online_nodes and user_tasks_at, issue 13's
instance_joins and instance_history. `legacy.py` builds full copies as commit 9b3117e's
`ingest_snapshot` did (with today's parsing). Do not edit or "improve" them; when another issue changes
one of these relations' other parts, refreeze its full-copy version from that change."""
