"""The writers' lock on object storage: a lease object taken, renewed and released with
conditional requests, so that every change of holder is a compare-and-swap on its ETag.

* take: PUT `_lock` with `If-None-Match: *` (nobody holds it); if a holder's lease has expired
  (by this writer's clock: a writer that died), PUT with `If-Match: <that lease's ETag>`. Of
  several waiters that saw the same expired lease exactly one PUT succeeds; the others get 412
  and wait on the new holder.
* renew: PUT `If-Match: <our ETag>` with a later expiry, every `renew_every` seconds from a
  background thread and at the writer's steps (each upload, and always just before the commit).
  A failed renewal means another writer took the lease over: the lease is lost and every later
  step, the commit included, raises LeaseLost.
* release: DELETE `If-Match: <our ETag>`, which never deletes a successor's lease.
Each lease carries a random token, so a request whose response was lost and was retried (a 412
on our own earlier write) is recognised as ours. Expiry times are wall-clock seconds of the
writers' clocks: they must agree to well within a lease (an hour by default).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipeline.store.errors import LeaseLost, StoreLocked
from pipeline.store.remote import Conflict

LEASE_SECONDS = 3600.0
GONE: dict = {"holder": "nobody"}  # try_take: the lock vanished between two requests


@dataclass(frozen=True)
class LeasePolicy:
    """How long a lease lasts and how it is kept: `renew_every` seconds (default a quarter of
    the lease) by a background thread when `renewer`, and at every write step once that much
    time has passed by `clock` (seconds since the epoch; tests pass their own)."""

    seconds: float = LEASE_SECONDS
    renew_every: float | None = None
    renewer: bool = True
    clock: Callable[[], float] = field(default=time.time)
    poll: float = 0.2  # seconds between attempts while another writer holds the lease

    @property
    def period(self) -> float:
        return self.renew_every if self.renew_every is not None else self.seconds / 4


class Lease:
    """One writer's claim on the lock object at `path` of `objects` (remote.ConditionalObjects)."""

    def __init__(self, objects, path: str, policy: LeasePolicy | None = None,
                 holder: str | None = None):
        self.objects, self.path = objects, path
        self.policy = policy or LeasePolicy()
        self.holder = holder or f"pid {os.getpid()} on {socket.gethostname()}"
        self.token = uuid.uuid4().hex
        self.etag: str | None = None
        self.expires = 0.0
        self.renewed_at = 0.0
        self.renewals = 0
        self.lost = False
        self._since = ""
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- taking the lease ----------------------------------------------------------------

    def _doc(self, now: float) -> bytes:
        return json.dumps({"holder": self.holder, "since": self._since, "token": self.token,
                           "expires": now + self.policy.seconds,
                           "renewals": self.renewals}).encode()

    def try_take(self) -> dict | None:
        """One attempt: None when this writer now holds the lease, else the holder's lease as
        read (`GONE` when the lock vanished meanwhile: try again at once)."""
        seen = self.observe()  # a read first: waiters poll with GETs, not with writes
        if seen is None:
            return None if self.create() else GONE
        current, etag = seen
        if current.get("token") == self.token:  # our own create, retried after a lost reply
            self._taken(etag, self.policy.clock())
            return None
        if float(current.get("expires", 0) or 0) >= self.policy.clock():
            return current
        return None if self.take_over(etag) else current

    def create(self) -> bool:
        """Take the lease if nobody holds one (`If-None-Match: *`)."""
        now = self._now()
        try:
            self._taken(self.objects.put(self.path, self._doc(now), None), now)
            return True
        except Conflict:
            return False

    def observe(self) -> tuple[dict, str] | None:
        """The lease as it is now, and its ETag (None: there is none)."""
        got = self.objects.get(self.path)
        return None if got is None else (_parse(got[0]), got[1])

    def take_over(self, etag: str) -> bool:
        """Replace the (expired) lease whose ETag is `etag` by ours (`If-Match`): False if it
        changed meanwhile (renewed, or taken over by another waiter)."""
        now = self._now()
        try:
            self._taken(self.objects.put(self.path, self._doc(now), etag), now)
            return True
        except Conflict:
            return False

    def _now(self) -> float:
        now = self.policy.clock()
        self._since = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return now

    def _taken(self, etag: str, now: float) -> None:
        self.etag, self.expires, self.renewed_at = etag, now + self.policy.seconds, now

    def acquire(self, timeout: float) -> None:
        """Take the lease, waiting up to `timeout` seconds (real time) while a live holder has
        it; StoreLocked names the holder after that."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.try_take()
            if current is None:
                break
            if current is GONE:
                continue
            if time.monotonic() >= deadline:
                who = f"{current.get('holder', '?')} since {current.get('since', '?')}"
                raise StoreLocked(f"store is locked by another writer ({who}); try again later")
            time.sleep(self.policy.poll)
        if self.policy.renewer:
            self._thread = threading.Thread(target=self._renew_loop, daemon=True,
                                            name=f"lease-renewer {self.path}")
            self._thread.start()

    # ---- keeping it ----------------------------------------------------------------------

    def renew(self) -> None:
        """Extend the lease (a compare-and-swap on our ETag); LeaseLost if another writer took
        it over."""
        with self._mutex:
            if self.lost:
                raise self._lost()
            for _ in range(2):
                now = self.policy.clock()
                self.renewals += 1
                try:
                    self._taken(self.objects.put(self.path, self._doc(now), self.etag), now)
                    return
                except Conflict:
                    got = self.objects.get(self.path)
                    if got is None or _parse(got[0]).get("token") != self.token:
                        self.lost = True
                        raise self._lost() from None
                    self.etag = got[1]  # our own earlier renewal, retried: go again on it
            self.lost = True
            raise self._lost()

    def check(self) -> None:
        """At a write step: LeaseLost if the lease is lost; renew it when due (or when it has
        run out by our clock: only a successful compare-and-swap proves it is still ours)."""
        if self.lost:
            raise self._lost()
        now = self.policy.clock()
        if now >= self.renewed_at + self.policy.period or now >= self.expires:
            self.renew()

    def _lost(self) -> LeaseLost:
        return LeaseLost(f"this writer's lease on {self.path} ran out and another writer took "
                         "it over; nothing was committed (run the write again)")

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.policy.period):
            try:
                self.renew()
            except LeaseLost:
                return
            except OSError:  # the store is unreachable now: try again next period; the renewal
                continue     # before the commit finds out whether the lease is still ours

    # ---- giving it back ------------------------------------------------------------------

    def release(self) -> None:
        """Stop renewing and delete the lock object if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._mutex:
            if self.lost or self.etag is None:
                return
            with contextlib.suppress(Conflict):
                self.objects.delete(self.path, self.etag)
            self.etag = None


def _parse(body: bytes) -> dict:
    """A lease as read; an unreadable one counts as expired (no writer of ours wrote it)."""
    try:
        doc = json.loads(body)
        return doc if isinstance(doc, dict) else {}
    except ValueError:
        return {}


@contextlib.contextmanager
def held(objects, path: str, timeout: float, policy: LeasePolicy | None = None
         ) -> Iterator[Lease]:
    """Hold the lease on `path` for the duration (StoreLocked after `timeout` seconds)."""
    lease = Lease(objects, path, policy)
    lease.acquire(timeout)
    try:
        yield lease
    finally:
        lease.release()
