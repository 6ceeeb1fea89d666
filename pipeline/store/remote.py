"""Stores on object storage (`s3://…` or any fsspec URL): no rename, so design for it.

* Data files are uploaded straight to their final, unique names: they are invisible until the
  manifest names them, so no rename is needed.
* The commit is one PUT of `_manifest.json` (an object PUT is atomic for readers), made
  conditional on the ETag of the manifest the writer started from (`If-Match`; `If-None-Match: *`
  for the first), so a commit never replaces one it has not seen.
* The writers' lock is a lease object taken, renewed and released with conditional requests
  (`pipeline.store.lease`).
* Before uploading, a writer records the names it will upload in `_staging/<ingest-id>.json`;
  the next writer deletes any of those files the manifest does not name, then the record.
Conditional requests need the S3 API (AWS S3: `If-None-Match` on PUT since August 2024,
`If-Match` on PUT since November 2024, on DELETE since September 2025; S3-compatible servers
vary): a store on another fsspec filesystem can be read but not written.
Credentials come from the standard AWS chain (env, profile, instance role), endpoint from
`AWS_ENDPOINT_URL` when set.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable


def is_url(root: str) -> bool:
    """True for an fsspec URL other than a local `file://` path."""
    return "://" in root and not root.startswith("file://")


def filesystem(url: str):
    """(fsspec filesystem, bucket/prefix path without protocol) for a store URL."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    return fs, path.rstrip("/")


class Conflict(Exception):
    """A conditional request lost: its precondition failed (412), the object it was conditional
    on is gone (404), or a concurrent conditional write to the key won (409)."""


_CONFLICT_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "NotFound"}
_CONFLICT_STATUS = {404, 409, 412}


class ConditionalObjects:
    """Conditional GET / PUT / DELETE of small objects (the lock, the manifest) through the S3
    client of an s3fs filesystem. Errors other than a lost condition are raised as OSError."""

    def __init__(self, fs, url: str):
        if not (hasattr(fs, "get_s3") and hasattr(fs, "split_path")):
            raise NotImplementedError(
                f"writing to {url} needs conditional requests, which only the S3 API offers "
                "here (s3:// URLs); this store can be read, not written")
        self.fs = fs

    def _run(self, fn: Callable, *args):
        from fsspec.asyn import sync

        return sync(self.fs.loop, fn, *args)

    async def _client(self, bucket: str):
        await self.fs.set_session()
        return await self.fs.get_s3(bucket)

    def get(self, path: str) -> tuple[bytes, str] | None:
        """(body, ETag) of the object at `path`, read in one request; None if there is none."""
        async def go():
            bucket, key, _ = self.fs.split_path(path)
            s3 = await self._client(bucket)
            try:
                resp = await s3.get_object(Bucket=bucket, Key=key)
            except Exception as e:  # noqa: BLE001 - sorted by _conflict below
                if _is_conflict(e):
                    return None
                raise _os_error("GET", path, e) from e
            async with resp["Body"] as body:
                return await body.read(), resp["ETag"]
        return self._run(go)

    def put(self, path: str, data: bytes, etag: str | None) -> str:
        """PUT `data` only if the object's ETag is still `etag` (None: only if there is no
        object); returns the new ETag. Raises Conflict when the condition does not hold."""
        cond = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}

        async def go():
            bucket, key, _ = self.fs.split_path(path)
            s3 = await self._client(bucket)
            try:
                resp = await s3.put_object(Bucket=bucket, Key=key, Body=data, **cond)
            except Exception as e:  # noqa: BLE001
                if _is_conflict(e):
                    raise Conflict(f"PUT {path}: {_code(e)}") from e
                raise _os_error("PUT", path, e) from e
            self.fs.invalidate_cache(path)
            return resp["ETag"]
        return self._run(go)

    def delete(self, path: str, etag: str) -> None:
        """DELETE the object only if its ETag is still `etag`; Conflict when it is not (an
        object already gone counts as deleted)."""
        async def go():
            bucket, key, _ = self.fs.split_path(path)
            s3 = await self._client(bucket)
            try:
                await s3.delete_object(Bucket=bucket, Key=key, IfMatch=etag)
            except Exception as e:  # noqa: BLE001
                if _code(e) in ("NoSuchKey", "NotFound", "404"):
                    return
                if _is_conflict(e):
                    raise Conflict(f"DELETE {path}: {_code(e)}") from e
                raise _os_error("DELETE", path, e) from e
            self.fs.invalidate_cache(path)
        self._run(go)


def _code(e: Exception) -> str:
    response = getattr(e, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _is_conflict(e: Exception) -> bool:
    response = getattr(e, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return _code(e) in _CONFLICT_CODES or status in _CONFLICT_STATUS


def _os_error(verb: str, path: str, e: Exception) -> OSError:
    return OSError(f"{verb} {path} failed: {e}")


def staging_records(fs, base: str) -> list[str]:
    """The upload records of writers that never finished (`_staging/<ingest-id>.json`)."""
    fs.invalidate_cache(f"{base}/_staging")  # listings are cached; others may have written
    try:
        return fs.ls(f"{base}/_staging", detail=False)
    except FileNotFoundError:
        return []


def sweep(fs, base: str, committed: set[str], records: list[str]) -> None:
    """Delete what dead writers uploaded but never committed, as their records list."""
    for record in records:
        with contextlib.suppress(FileNotFoundError, ValueError):
            for rel in json.loads(fs.cat_file(record)):
                if rel not in committed:
                    with contextlib.suppress(FileNotFoundError):
                        fs.rm_file(f"{base}/{rel}")
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(record)
