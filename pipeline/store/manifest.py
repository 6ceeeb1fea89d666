"""Store root, manifest and the writer's lock: how files become visible, atomically."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pipeline.store.layout import DATASETS, SCHEMA_VERSION

MANIFEST = "_manifest.json"
LOCK = "_lock"
STAGING = "_staging"
SCHEMA_DIR = "_schema"


class StoreError(Exception):
    """The store is missing, unreadable or inconsistent; the message says what to do."""


class StoreLocked(StoreError):
    """Another writer holds the store's lock."""


def new_ingest_id(now: datetime | None = None) -> str:
    """A sortable unique id for one write: UTC start time plus random suffix."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S}Z-{uuid.uuid4().hex[:8]}"


@dataclass
class Manifest:
    """What is committed: per dataset, the data files (relative to the dataset folder)."""

    version: int = 0
    schema_version: int = SCHEMA_VERSION
    datasets: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": 1,
                "schema_version": self.schema_version,
                "version": self.version,
                "datasets": {k: sorted(v) for k, v in sorted(self.datasets.items())},
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        d = json.loads(text)
        return cls(
            version=d["version"], schema_version=d["schema_version"], datasets=d["datasets"]
        )


class Store:
    """A store root on the local file system."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def exists(self) -> bool:
        return (self.root / MANIFEST).is_file()

    def require(self) -> Store:
        """Raise StoreError unless a store has been written at the root."""
        self._not_a_file()
        if not self.exists():
            raise StoreError(
                f"no store at {self.root} (ingest something first, or point --store / "
                "DISCOVERY_HISTORY_STORE at an existing store)"
            )
        return self

    def _not_a_file(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"store path {self.root} is a file, not a folder")

    def manifest(self) -> Manifest:
        """The committed manifest (an empty one before the first write)."""
        try:
            return Manifest.from_json((self.root / MANIFEST).read_text())
        except FileNotFoundError:
            return Manifest()
        except (OSError, ValueError, KeyError) as e:
            raise StoreError(f"unreadable manifest {self.root / MANIFEST}: {e}") from e

    def files(self, dataset: str, manifest: Manifest | None = None) -> list[str]:
        """Absolute paths of a dataset's committed files, the zero-row schema file first."""
        m = manifest or self.manifest()
        base = self.root / dataset
        schema = self.root / SCHEMA_DIR / dataset / DATASETS[dataset].placeholder_path()
        return [str(schema)] + [str(base / rel) for rel in m.datasets.get(dataset, [])]

    @contextlib.contextmanager
    def writer(self, timeout: float = 60.0, ingest_id: str | None = None) -> Iterator[Writer]:
        """Hold the lock, give a Writer; nothing becomes visible until `Writer.commit()`."""
        self._not_a_file()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create store folder {self.root}: {e.strerror or e}") from e
        with _locked(self.root / LOCK, timeout):
            _sweep_staging(self.root)
            self._ensure_schema_files()
            w = Writer(self, ingest_id or new_ingest_id())
            try:
                yield w
            finally:
                _sweep_one(w.staging)  # uncommitted files go with the staging folder

    def _ensure_schema_files(self) -> None:
        import duckdb

        con = None
        for name, ds in DATASETS.items():
            path = self.root / SCHEMA_DIR / name / ds.placeholder_path()
            if path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            con = con or duckdb.connect()
            tmp = path.with_name(".tmp-" + path.name)
            con.execute(f"COPY ({ds.empty_select()}) TO '{_sql_path(tmp)}' (FORMAT parquet)")
            os.replace(tmp, path)
        if con is not None:
            con.close()


class Writer:
    """One transaction on the store: stage files, then commit them in one manifest rename."""

    def __init__(self, store: Store, ingest_id: str):
        self.store = store
        self.ingest_id = ingest_id
        self.staging = store.root / STAGING / ingest_id
        self.staging.mkdir(parents=True, exist_ok=True)
        self.base = store.manifest()
        self._added: dict[str, list[str]] = {}
        self._removed: dict[str, set[str]] = {}

    def scratch(self, name: str) -> Path:
        """A path inside this writer's staging folder (removed after the write)."""
        return self.staging / name

    def add_tree(self, dataset: str, produced: Path) -> list[str]:
        """Move every Parquet file under `produced` (hive folders kept) into the dataset."""
        moved: list[str] = []
        if not produced.exists():
            return moved
        dest_root = self.store.root / dataset
        intents = self.staging / "moved.jsonl"
        for src in sorted(produced.rglob("*.parquet")):
            rel = src.relative_to(produced).as_posix()
            dest = dest_root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            _fsync_file(src)
            with intents.open("a") as f:  # so a crash after the move can be swept
                f.write(json.dumps(str(dest)) + "\n")
            os.replace(src, dest)
            moved.append(rel)
        self._added.setdefault(dataset, []).extend(moved)
        return moved

    def remove(self, dataset: str, rels: list[str]) -> None:
        """Drop committed files from the dataset at commit (deleted after the commit)."""
        self._removed.setdefault(dataset, set()).update(rels)

    @property
    def changed(self) -> bool:
        return any(self._added.values()) or any(self._removed.values())

    def commit(self) -> Manifest:
        """Publish the staged changes atomically; a no-op when nothing changed."""
        if not self.changed:
            return self.base
        current = self.store.manifest()
        if current.version != self.base.version:
            raise StoreError("manifest changed under the lock; refusing to commit")
        datasets = {k: list(v) for k, v in current.datasets.items()}
        for name, rels in self._removed.items():
            datasets[name] = [r for r in datasets.get(name, []) if r not in rels]
        for name, rels in self._added.items():
            datasets.setdefault(name, []).extend(rels)
        new = Manifest(version=current.version + 1, datasets=datasets)
        _atomic_write(self.store.root / MANIFEST, new.to_json())
        (self.staging / "moved.jsonl").unlink(missing_ok=True)
        for name, rels in self._removed.items():
            for rel in rels:
                (self.store.root / name / rel).unlink(missing_ok=True)
        self.base = new
        self._added, self._removed = {}, {}
        return new


def _sql_path(p: Path) -> str:
    return str(p).replace("'", "''")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _sweep_staging(root: Path) -> None:
    """Remove what dead writers left: staging folders and files moved but never committed."""
    staging = root / STAGING
    if not staging.exists():
        return
    for leftover in staging.iterdir():
        _sweep_one(leftover)


def _sweep_one(folder: Path) -> None:
    """Delete a writer's staging folder and any file it moved into a dataset but never
    committed (listed in its intents file; a commit deletes that list)."""
    intents = folder / "moved.jsonl"
    if intents.exists():
        for line in intents.read_text().splitlines():
            with contextlib.suppress(ValueError, OSError):
                Path(json.loads(line)).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _locked(path: Path, timeout: float) -> Iterator[None]:
    """flock the lock file (released by the kernel if the holder dies: no stale locks)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "unknown"
                    raise StoreLocked(
                        f"store {path.parent} is locked by another writer ({holder}); "
                        "try again when it finishes"
                    ) from None
                time.sleep(0.1)
        info = f"pid {os.getpid()} on {socket.gethostname()} since {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
