"""The ingest's user-facing errors, in a module of their own: the CLI catches them around every
command without importing the ingest (pydantic, the staging engine) on the query path."""

from __future__ import annotations


class SnapshotError(Exception):
    """A snapshot file cannot be read as a tctl listing (JSON or YAML)."""
