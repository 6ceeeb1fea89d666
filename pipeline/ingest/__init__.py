"""Ingest: raw lines from the sources to rows in the store. Staging and typing in bulk
(`stage`, `staging`), dedup by uid (`dedup`), the event ingest (`events`), node and user-task
snapshots (`snapshots`, `snapshot_cmd`) and draining the receiver's spool (`drain`)."""
