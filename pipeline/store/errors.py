"""The store's exceptions (one module, so the lock and the manifest can both raise them)."""

from __future__ import annotations


class StoreError(Exception):
    """The store is missing, unreadable or inconsistent; the message says what to do."""


class StoreLocked(StoreError):
    """Another writer holds the store's lock."""


class LeaseLost(StoreError):
    """This writer's lease on an object-storage store ran out and another writer took it over:
    nothing this writer did is committed."""
