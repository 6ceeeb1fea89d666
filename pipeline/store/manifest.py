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
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline.store import coverage as cov
from pipeline.store import layout, lease, remote
from pipeline.store.errors import LeaseLost, StoreError, StoreLocked
from pipeline.store.layout import DATASETS, INDEXED, SCHEMA_VERSION, UID_INDEX

MANIFEST = "_manifest.json"
LOCK = "_lock"
STAGING = "_staging"
SCHEMA_DIR = "_schema"
# A file a commit drops (compaction, retention, a rollup rebuilt) stays on disk this long, so a
# reader that listed it before the commit (a notebook, a long report) can still read it.
RETIRE_GRACE = timedelta(hours=24)


__all__ = ["LeaseLost", "Manifest", "Store", "StoreError", "StoreLocked", "Writer"]


def new_ingest_id(now: datetime | None = None) -> str:
    """A sortable unique id for one write: UTC start time plus random suffix."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S}Z-{uuid.uuid4().hex[:8]}"


@dataclass
class Manifest:
    """What is committed: per dataset, the data files (relative to the dataset folder); the
    files commits dropped that are kept until RETIRE_GRACE has passed ("dataset/rel" -> when);
    and the event-time windows the store holds whole (`coverage`, see `pipeline.store.coverage`:
    recorded by the ingests that read every source file of their window, committed with their
    data, so a reader never sees a window as covered before its events are visible).

    `schema_version` is the oldest layout a committed file may have (a write keeps it; only a
    migration raises it). `uid_index` is the format of the uid index (`pipeline.store.uidindex`)
    when it lists every stored event, else 0: a commit by a version that does not know the index
    drops the key, and the next ingest rebuilds the index."""

    version: int = 0
    schema_version: int = SCHEMA_VERSION
    datasets: dict[str, list[str]] = field(default_factory=dict)
    retired: dict[str, str] = field(default_factory=dict)
    coverage: list[cov.Interval] = field(default_factory=list)
    uid_index: int = 0

    def to_json(self) -> str:
        d = {
            "format": 1,
            "schema_version": self.schema_version,
            "version": self.version,
            "datasets": {k: sorted(v) for k, v in sorted(self.datasets.items())},
            "retired": dict(sorted(self.retired.items())),
        }
        if self.coverage:  # absent until a first complete window (older stores read the same)
            d["coverage"] = cov.to_json(self.coverage)
        if self.uid_index:
            d["uid_index"] = self.uid_index
        return json.dumps(d, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        d = json.loads(text)
        return cls(version=d["version"], schema_version=d["schema_version"],
                   datasets=d["datasets"], retired=d.get("retired", {}),
                   coverage=cov.from_json(d.get("coverage", [])),
                   uid_index=int(d.get("uid_index", 0)))

    def kept(self) -> set[str]:
        """Files (`dataset/rel`) a sweep must leave: committed, or retired and in their grace."""
        return {f"{k}/{r}" for k, v in self.datasets.items() for r in v} | set(self.retired)

    def expired(self, now: datetime) -> set[str]:
        """Retired files whose grace period is over."""
        return {rel for rel, at in self.retired.items()
                if now - datetime.fromisoformat(at) >= RETIRE_GRACE}


class Store:
    """A store root: a local folder, or an object-storage URL (see `pipeline.store.remote`)."""

    def __init__(self, root: str | os.PathLike[str], *,
                 lease_policy: lease.LeasePolicy | None = None):
        self.url = str(root)
        self.remote = remote.is_url(self.url)
        self.lease_policy = lease_policy  # object storage: the writers' lease (None: defaults)
        self._objects = None
        if self.remote:
            self.fs, self._base = remote.filesystem(self.url)
            self.root = None  # no local folder
        else:
            self.fs = None
            self.root = Path(self.url[len("file://"):] if self.url.startswith("file://") else self.url)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def path(self, *parts: str) -> str:
        """Full path (local) or URL (remote) of a file under the root."""
        if self.remote:
            return self.fs.unstrip_protocol("/".join([self._base, *parts]))
        return str(self.root.joinpath(*parts))

    def fs_path(self, *parts: str) -> str:
        """The object-storage key (no protocol) of a path under a remote root, for `self.fs`."""
        return "/".join([self._base, *parts])

    def register(self, con) -> None:
        """Let a DuckDB connection read this store's files (object storage through fsspec)."""
        if self.remote:
            con.register_filesystem(self.fs)

    def exists(self) -> bool:
        if self.remote:
            self.fs.invalidate_cache()  # listings are cached; another process may have written
            return self.fs.exists(f"{self._base}/{MANIFEST}")
        return (self.root / MANIFEST).is_file()

    def require(self) -> Store:
        """Raise StoreError unless a store has been written at the root."""
        self._not_a_file()
        if not self.exists():
            raise StoreError(
                f"no store at {self.url} (ingest something first, or point --store / "
                "DISCOVERY_HISTORY_STORE at an existing store)"
            )
        return self

    def _not_a_file(self) -> None:
        if not self.remote and self.root.exists() and not self.root.is_dir():
            raise StoreError(f"store path {self.root} is a file, not a folder")

    def manifest(self) -> Manifest:
        """The committed manifest (an empty one before the first write)."""
        return self._manifest_and_etag(versioned=False)[0]

    def _manifest_and_etag(self, versioned: bool = True) -> tuple[Manifest, str | None]:
        """The committed manifest and, on object storage when `versioned`, the ETag it was read
        with (None: no manifest yet), for the commit's compare-and-swap."""
        etag = None
        try:
            if self.remote and versioned:
                got = self.objects().get(f"{self._base}/{MANIFEST}")
                if got is None:
                    return Manifest(), None
                text, etag = got[0].decode(), got[1]
            elif self.remote:
                text = self.fs.cat_file(f"{self._base}/{MANIFEST}").decode()
            else:
                text = (self.root / MANIFEST).read_text()
            return Manifest.from_json(text), etag
        except FileNotFoundError:
            return Manifest(), None
        except (OSError, ValueError, KeyError) as e:
            raise StoreError(f"unreadable manifest {self.path(MANIFEST)}: {e}") from e

    def objects(self) -> remote.ConditionalObjects:
        """Conditional requests on this (object-storage) store: StoreError where there are none."""
        if self._objects is None:
            try:
                self._objects = remote.ConditionalObjects(self.fs, self.url)
            except NotImplementedError as e:
                raise StoreError(str(e)) from None
        return self._objects

    def coverage(self) -> list[cov.Interval]:
        """The committed coverage: the event-time windows this store holds whole."""
        return self.manifest().coverage

    def cover(self, start: datetime, end: datetime, timeout: float = 60.0) -> Manifest:
        """Commit that the store holds every event of [start, end) (for writers whose data went
        in by another commit, such as a spool drain); a no-op when it already does."""
        with self.writer(timeout=timeout) as w:
            w.cover(start, end)
            return w.commit()

    def files(self, dataset: str, manifest: Manifest | None = None) -> list[str]:
        """Paths (or URLs) of a dataset's committed files, the zero-row schema file first."""
        m = manifest or self.manifest()
        return [self.schema_file(dataset)] + [self.path(dataset, rel)
                                              for rel in m.datasets.get(dataset, [])]

    def schema_file(self, dataset: str) -> str:
        """Path (or URL) of the dataset's zero-row file that anchors its schema."""
        return self.path(SCHEMA_DIR, dataset, layout.dataset(dataset).placeholder_path())

    def locked(self, timeout: float = 60.0):
        """The writers' lock (a context manager giving its guard: `check()` at each write step,
        `renew()` before a commit, both raising LeaseLost once another writer has the store)
        without a Writer: for checks that read a store that must not change meanwhile. Raises
        StoreLocked after `timeout` seconds."""
        if self.remote:
            return lease.held(self.objects(), self.fs_path(LOCK), timeout, self.lease_policy)
        return _locked(self.root / LOCK, timeout)

    @contextlib.contextmanager
    def writer(self, timeout: float = 60.0, ingest_id: str | None = None) -> Iterator[Writer]:
        """Hold the lock, give a Writer; nothing becomes visible until `Writer.commit()`."""
        self._not_a_file()
        if not self.remote:
            if "\\" in str(self.root):
                raise StoreError(f"store path {self.root} holds a backslash, which DuckDB's "
                                 "partitioned writes take for a folder separator; use a path "
                                 "without one")
            try:
                _mkdirs(self.root)
            except OSError as e:
                raise StoreError(f"cannot create store folder {self.root}: {e.strerror or e}") from e
        with self.locked(timeout) as guard:
            m, etag = self._manifest_and_etag()
            m, etag = self._sweep(m, etag)
            expired = self._delete_expired(m)
            self._ensure_schema_files()
            w = Writer(self, ingest_id or new_ingest_id(), expired, guard=guard, base=(m, etag))
            try:
                yield w
            finally:
                w.abandon()  # uncommitted files go with the staging folder

    def _sweep(self, m: Manifest, etag: str | None) -> tuple[Manifest, str | None]:
        """Delete what writers that never committed left. On object storage such a writer may
        only have lost its lease, not died: the manifest is first re-committed under a new
        version (a fence), so that a late commit of that writer, naming files swept here, fails
        its compare-and-swap."""
        kept = m.kept()
        if not self.remote:
            _sweep_staging(self.root, {str(self.root / rel) for rel in kept})
            return m, etag
        records = remote.staging_records(self.fs, self._base)
        if records:
            m = Manifest(version=m.version + 1, schema_version=m.schema_version,
                         datasets=m.datasets, retired=m.retired, coverage=m.coverage,
                         uid_index=m.uid_index)
            etag = self._write_manifest(m, etag)
        remote.sweep(self.fs, self._base, kept, records)
        return m, etag

    def _delete_expired(self, m: Manifest) -> set[str]:
        """Delete the retired files past their grace; the next commit forgets them."""
        expired = m.expired(datetime.now(UTC))
        for rel in sorted(expired):
            self._delete(rel)
        return expired

    def _put(self, src: Path, rel: str) -> None:
        """Place a finished local file at `rel` under the root (rename, or upload)."""
        if self.remote:
            self.fs.put_file(str(src), f"{self._base}/{rel}")
            src.unlink()
        else:
            dest = self.root / rel
            _mkdirs(dest.parent)
            _no_world_access(src)
            _fsync_file(src)
            os.replace(src, dest)

    def _delete(self, rel: str) -> None:
        if self.remote:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(f"{self._base}/{rel}")
        else:
            (self.root / rel).unlink(missing_ok=True)

    def _write_manifest(self, m: Manifest, etag: str | None = None) -> str | None:
        """Replace the manifest; on object storage only if it still has the ETag `etag` (None:
        only if there is none yet), returning the new ETag."""
        if not self.remote:
            _atomic_write(self.root / MANIFEST, m.to_json())
            return None
        try:
            return self.objects().put(f"{self._base}/{MANIFEST}", m.to_json().encode(), etag)
        except remote.Conflict:
            raise StoreError("manifest changed under the lock (another writer committed); "
                             "nothing was committed (run the write again)") from None

    def _ensure_schema_files(self) -> None:
        missing = []
        for name, ds in DATASETS.items():
            rel = f"{SCHEMA_DIR}/{name}/{ds.placeholder_path()}"
            present = self.fs.exists(f"{self._base}/{rel}") if self.remote else (self.root / rel).exists()
            if not present:
                missing.append(name)
        self.rewrite_schema_files(missing)

    def rewrite_schema_files(self, names: list[str]) -> None:
        """(Re)write the zero-row schema anchors of datasets `names` in the current layout (each
        replaced in one step: a rename, or one PUT). For writers holding the lock."""
        import tempfile

        import duckdb

        if not names:
            return
        con = duckdb.connect()
        try:
            for name in names:
                ds = DATASETS[name]
                with tempfile.TemporaryDirectory() as tmp:
                    local = Path(tmp) / "schema.parquet"
                    con.execute(f"COPY ({ds.empty_select()}) TO '{_sql_path(local)}' "
                                "(FORMAT parquet)")
                    self._put(local, f"{SCHEMA_DIR}/{name}/{ds.placeholder_path()}")
        finally:
            con.close()


def _unused(rel: str, taken: set[str]) -> str:
    """`rel`, or `<stem>-b<n>.parquet` for the first n >= 2 not in `taken` (which it joins)."""
    stem, n, out = rel.removesuffix(".parquet"), 2, rel
    while out in taken:
        out, n = f"{stem}-b{n}.parquet", n + 1
    taken.add(out)
    return out


class Writer:
    """One transaction on the store: stage files, then commit them in one manifest write."""

    def __init__(self, store: Store, ingest_id: str, expired: set[str] = frozenset(), *,
                 guard=None, base: tuple[Manifest, str | None] | None = None):
        import tempfile

        self.store = store
        self.ingest_id = ingest_id
        if store.remote:  # scratch space is local; uploads go straight to final names
            self.staging = Path(tempfile.mkdtemp(prefix=f"discovery-history-{ingest_id}-"))
        else:
            self.staging = store.root / STAGING / ingest_id
            _mkdirs(self.staging)
        self.base, self._etag = base or store._manifest_and_etag()
        self._guard = guard or _NO_GUARD
        self.schema_version = self.base.schema_version  # a migration raises it
        self.uid_index = self.base.uid_index  # pipeline.store.uidindex keeps it
        self._expired = set(expired)  # retired files deleted when this writer started
        self._added: dict[str, list[str]] = {}
        self._removed: dict[str, set[str]] = {}
        self._intents: list[str] = []
        self._coverage: list[cov.Interval] = list(self.base.coverage)

    def scratch(self, name: str) -> Path:
        """A local path inside this writer's staging folder (removed after the write)."""
        return self.staging / name

    def add_tree(self, dataset: str, produced: Path) -> list[str]:
        """Place every Parquet file under `produced` (hive folders kept) into the dataset;
        invisible to readers until `commit()`."""
        if not produced.exists():
            return []
        srcs = sorted(produced.rglob("*.parquet"))
        rels = [src.relative_to(produced).as_posix() for src in srcs]
        return self.add_files(dataset, dict(zip(rels, srcs, strict=True)))

    def add_files(self, dataset: str, files: dict[str, Path]) -> list[str]:
        """Place finished local files (by their path relative to the dataset folder) into the
        dataset; invisible to readers until `commit()`. Checks the writer still holds the lock."""
        self._guard.check()
        taken = set(self._added.get(dataset, ()))
        # a name this write already used (an earlier batch of one ingest): numbered on
        files = {_unused(rel, taken): files[rel] for rel in sorted(files)}
        rels = sorted(files)
        self._record_intents([f"{dataset}/{rel}" for rel in rels])  # so a crash can be swept
        for rel in rels:
            self.store._put(files[rel], f"{dataset}/{rel}")
        self._added.setdefault(dataset, []).extend(rels)
        return rels

    def added(self, dataset: str) -> list[str]:
        """Files placed into `dataset` by this writer and not yet committed."""
        return list(self._added.get(dataset, []))

    def removed(self, dataset: str) -> set[str]:
        """Committed files of `dataset` this writer drops at its commit."""
        return set(self._removed.get(dataset, set()))

    def _record_intents(self, rels: list[str]) -> None:
        self._intents.extend(rels)
        if self.store.remote:
            fs = self.store.fs
            fs.pipe_file(f"{self.store._base}/{STAGING}/{self.ingest_id}.json",
                         json.dumps(self._intents).encode())
        else:
            with (self.staging / "moved.jsonl").open("a") as f:
                for rel in rels:
                    f.write(json.dumps(str(self.store.root / rel)) + "\n")

    def remove(self, dataset: str, rels: list[str]) -> None:
        """Drop committed files from the dataset at commit (deleted after RETIRE_GRACE)."""
        self._removed.setdefault(dataset, set()).update(rels)

    def discard(self, dataset: str, rels: list[str]) -> None:
        """Take back files this writer placed (not committed): forgotten and deleted now."""
        gone = set(rels)
        self._added[dataset] = [r for r in self._added.get(dataset, []) if r not in gone]
        for rel in rels:
            self.store._delete(f"{dataset}/{rel}")

    def cover(self, start: datetime, end: datetime) -> None:
        """Record at commit that the store holds every event of [start, end): call it only when
        this write read every source that can hold events of the window."""
        self._coverage = cov.merge([*self._coverage, (start, end)])

    def uncover_before(self, cutoff: datetime) -> None:
        """Forget coverage before `cutoff` at commit (retention dropped those events)."""
        self._coverage = cov.clip(self._coverage, cutoff)

    @property
    def changed(self) -> bool:
        return (any(self._added.values()) or any(self._removed.values())
                or self._coverage != self.base.coverage)

    def commit(self) -> Manifest:
        """Publish the staged changes atomically; a no-op when nothing changed."""
        if not self.changed:  # (a uid index marked complete over no events need not be saved)
            return self.base
        self._guard.renew()  # proves the lock is still ours (object storage: LeaseLost if not)
        self._check_indexed()
        if self.store.remote:  # the PUT below is conditional on the manifest we started from
            current = self.base
        else:
            current = self.store.manifest()
            if current.version != self.base.version:
                raise StoreError("manifest changed under the lock; refusing to commit")
        datasets = {k: list(v) for k, v in current.datasets.items()}
        for name, rels in self._removed.items():
            datasets[name] = [r for r in datasets.get(name, []) if r not in rels]
        for name, rels in self._added.items():
            datasets.setdefault(name, []).extend(rels)
        # removed files are retired, not deleted: a reader that listed them keeps reading; a
        # writer starting after RETIRE_GRACE deletes them (Store._delete_expired)
        now = datetime.now(UTC).isoformat()
        retired = {rel: at for rel, at in current.retired.items() if rel not in self._expired}
        retired |= {f"{name}/{rel}": now for name, rels in self._removed.items() for rel in rels}
        new = Manifest(version=current.version + 1, schema_version=self.schema_version,
                       datasets=datasets, retired=retired, coverage=self._coverage,
                       uid_index=self.uid_index)
        self._etag = self.store._write_manifest(new, self._etag)
        self._clear_intents()
        self.base = new
        self._added, self._removed = {}, {}
        return new

    def _check_indexed(self) -> None:
        """While the uid index lists every stored event, events are only added with their
        entries (pipeline.store.uidindex), or in a partition this commit rewrites."""
        if not self.uid_index:
            return
        indexed = {r.split("/", 1)[0] for r in self._added.get(UID_INDEX, [])}
        for name in INDEXED:
            rewritten = {r.rsplit("/", 1)[0] for r in self._removed.get(name, ())}
            new = [r for r in self._added.get(name, []) if r.rsplit("/", 1)[0] not in rewritten]
            if new and name not in indexed:
                raise StoreError(f"internal error: {name} files added without uid index "
                                 "entries; nothing was committed")

    def _clear_intents(self) -> None:
        self._intents = []
        if self.store.remote:
            self.store._delete(f"{STAGING}/{self.ingest_id}.json")
        else:
            (self.staging / "moved.jsonl").unlink(missing_ok=True)

    def abandon(self) -> None:
        """Delete what was placed but not committed, and the staging folder."""
        kept = self.base.kept()  # the current manifest: we hold the lock, and commit updates it
        if self.store.remote:
            for rel in self._intents:
                if rel not in kept:
                    self.store._delete(rel)
            self._clear_intents()
            shutil.rmtree(self.staging, ignore_errors=True)
        else:
            _sweep_one(self.staging, {str(self.store.root / rel) for rel in kept})


# Nothing the store writes is world-accessible: folders and files get the umask's bits less
# "other" (with the usual umask 022: rwxr-x--- and rw-r-----).
DIR_MODE = 0o770
FILE_MODE = 0o660


def _mkdirs(path: Path) -> None:
    """Create `path` and its missing parents with DIR_MODE (as masked by the umask)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            folder.mkdir(mode=DIR_MODE)


def _no_world_access(path: Path) -> None:
    """Drop the "other" bits of a file DuckDB or Arrow wrote with the umask's default."""
    mode = os.stat(path).st_mode & 0o7777
    if mode & 0o007:
        os.chmod(path, mode & ~0o007)


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
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE), "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _sweep_staging(root: Path, committed: set[str]) -> None:
    """Remove what dead writers left: staging folders and files placed but never committed,
    and a manifest they were writing (never read: the manifest is replaced by a rename)."""
    for half in root.glob(f".{MANIFEST}.tmp-*"):
        half.unlink(missing_ok=True)
    staging = root / STAGING
    if not staging.exists():
        return
    for leftover in staging.iterdir():
        _sweep_one(leftover, committed)


def _sweep_one(folder: Path, committed: set[str]) -> None:
    """Delete a writer's staging folder and the files it placed in a dataset (listed in its
    intents file) that the manifest does not name."""
    intents = folder / "moved.jsonl"
    if intents.exists():
        for line in intents.read_text().splitlines():
            with contextlib.suppress(ValueError, OSError):
                path = json.loads(line)
                if path not in committed:
                    Path(path).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


class _Flock:
    """The guard of a local store's lock: a flock cannot be lost while the holder lives."""

    def check(self) -> None:
        pass

    def renew(self) -> None:
        pass


_NO_GUARD = _Flock()


@contextlib.contextmanager
def _locked(path: Path, timeout: float) -> Iterator[_Flock]:
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
            yield _NO_GUARD
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
