"""Stores on object storage (`s3://…` or any fsspec URL): no rename, so design for it.

* Data files are uploaded straight to their final, unique names: they are invisible until the
  manifest names them, so no rename is needed.
* The commit is one PUT of `_manifest.json` (an object PUT is atomic for readers).
* The writers' lock is an object created with a conditional PUT (If-None-Match: *), holding the
  holder and a lease expiry; an expired lease (a writer that died) is taken over.
* Before uploading, a writer records the names it will upload in `_staging/<ingest-id>.json`;
  the next writer deletes any of those files the manifest does not name, then the record.
Credentials come from the standard AWS chain (env, profile, instance role), endpoint from
`AWS_ENDPOINT_URL` when set.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

LEASE_SECONDS = 3600.0


def is_url(root: str) -> bool:
    """True for an fsspec URL other than a local `file://` path."""
    return "://" in root and not root.startswith("file://")


def filesystem(url: str):
    """(fsspec filesystem, bucket/prefix path without protocol) for a store URL."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    return fs, path.rstrip("/")


@contextlib.contextmanager
def locked(fs, lock_path: str, timeout: float, errors) -> Iterator[None]:
    """Hold the store's lock object for the duration; StoreLocked (from `errors`) on timeout."""
    holder = {
        "holder": f"pid {os.getpid()} on {socket.gethostname()}",
        "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "expires": time.time() + LEASE_SECONDS,
    }
    deadline = time.monotonic() + timeout
    while True:
        try:
            fs.pipe_file(lock_path, json.dumps(holder).encode(), mode="create")
            break
        except FileExistsError:
            current = _read_lock(fs, lock_path)
            if current and current.get("expires", 0) < time.time():
                with contextlib.suppress(FileNotFoundError):
                    fs.rm_file(lock_path)  # the holder's lease ran out: it died
                continue
            if time.monotonic() >= deadline:
                who = f"{current.get('holder')} since {current.get('since')}" if current else "?"
                raise errors(f"store is locked by another writer ({who}); try again later") from None
            time.sleep(0.2)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(lock_path)


def _read_lock(fs, path: str) -> dict | None:
    try:
        return json.loads(fs.cat_file(path))
    except (FileNotFoundError, ValueError):
        return None


def sweep(fs, base: str, committed: set[str]) -> None:
    """Delete what dead writers uploaded but never committed, as their records list."""
    staging = f"{base}/_staging"
    try:
        records = fs.ls(staging, detail=False)
    except FileNotFoundError:
        return
    for record in records:
        with contextlib.suppress(FileNotFoundError, ValueError):
            for rel in json.loads(fs.cat_file(record)):
                if rel not in committed:
                    with contextlib.suppress(FileNotFoundError):
                        fs.rm_file(f"{base}/{rel}")
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(record)
