"""The handoff lease: which color owns the input topic, fenced by an epoch.

One small JSON record lives next to the offsets (``lease.json`` in the file store's
directory, or under the S3 prefix). Every write is a compare-and-swap on the version read
just before it (:mod:`streamer.docstore`: ``flock`` around read-compare-rename for files,
a conditional PUT on S3). So two instances can never both move the
lease from the same version, and an instance whose epoch was superseded finds out at its
next heartbeat.

A record::

    {"format": 1, "owner": "blue", "epoch": 3, "state": "running", "instance": "streamer-1a2b",
     "successor": null, "heartbeat_at": 1764000000000, "position": {...}, "offsets": null,
     "last_output_at": null, "handing_over": false}

States: ``running`` (the owner consumes), ``draining`` (a successor asked for it; once the
owner's heartbeat acknowledges with ``handing_over`` it finishes its batch, persists and
stops), ``released`` (the owner stopped; ``offsets`` is where). A successor that gives up
before the acknowledgement withdraws its request; after it, it cannot.

Liveness is judged by the reader's own monotonic clock: a lease whose version has not
changed for ``lease_timeout`` is stale. Heartbeats rewrite it every ``heartbeat`` seconds,
so no clock is compared across hosts.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeGuard

from streamer import docstore
from streamer.config import Config
from streamer.errors import ConfigError, DeployError, LeaseLostError
from streamer.offsets.core import Offsets, format_offsets, parse_offsets
from streamer.periodic import Periodic

log = logging.getLogger(__name__)

LEASE_NAME = "lease.json"
RUNNING, DRAINING, RELEASED = "running", "draining", "released"


class LeaseConflict(DeployError):
    """The lease changed between read and write; re-read and decide again."""


@dataclass(frozen=True)
class Lease:
    owner: str
    epoch: int
    state: str
    instance: str
    successor: str | None = None
    heartbeat_at: int = 0
    position: Offsets | None = None
    """The owner's persisted offsets as of its last heartbeat (for operators)."""
    offsets: Offsets | None = None
    """Where the owner stopped, once ``released``."""
    last_output_at: int | None = None
    """Wall-clock ms of the owner's last batch that produced output, once ``released``."""
    handing_over: bool = False
    """The owner has seen a ``draining`` request and is stopping; it can no longer be
    withdrawn."""

    def encode(self) -> bytes:
        doc: dict[str, Any] = {"format": 1, **asdict(self)}
        for key in ("position", "offsets"):
            if doc[key] is not None:
                doc[key] = json.loads(format_offsets(doc[key]))
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Lease:
        try:
            doc = json.loads(data)
            if doc.pop("format", None) != 1:
                raise ValueError("not a format-1 lease")
            for key in ("position", "offsets"):
                if doc.get(key) is not None:
                    doc[key] = parse_offsets(json.dumps(doc[key]))
            return cls(**doc)
        except (ValueError, TypeError, AttributeError) as exc:
            raise DeployError(f"the lease record is unreadable ({exc}); inspect it") from exc

    def describe(self) -> str:
        extra = f' successor="{self.successor}"' if self.successor else ""
        return f'owner="{self.owner}" epoch="{self.epoch}" state="{self.state}"{extra}'


class LeaseStore:
    """The lease document: read it with its version, write it by compare-and-swap.

    Storage errors are :class:`DeployError`; a lost compare-and-swap is :class:`LeaseConflict`.
    """

    def __init__(self, document: docstore.Document) -> None:
        self.document = document
        self.description = document.description

    def read(self) -> tuple[Lease | None, str | None]:
        """The lease and its version token; ``(None, None)`` when there is none."""
        try:
            found = self.document.read()
        except docstore.DocumentError as exc:
            raise DeployError(f"handoff lease: {exc}") from exc
        return (Lease.decode(found[0]), found[1]) if found else (None, None)

    def write(self, lease: Lease, expect: str | None) -> str:
        """Write when the stored version is still ``expect`` (None: nothing stored).
        Returns the new version; raises :class:`LeaseConflict` otherwise."""
        try:
            version = self.document.swap(lease.encode(), expect)
        except docstore.DocumentError as exc:
            raise DeployError(f"handoff lease: {exc}") from exc
        if version is None:
            raise LeaseConflict(f"lease changed under us ({self.description})")
        return version

    def update(
        self, change: Callable[[Lease | None], Lease | None], attempts: int = 10
    ) -> tuple[Lease | None, Lease | None]:
        """Read, ``change``, write; again on a conflict. ``(read, written)``: ``written`` is
        None when ``change`` wanted no write. Raises :class:`LeaseConflict` when every
        attempt conflicted."""
        for _ in range(attempts):
            current, token = self.read()
            wanted = change(current)
            if wanted is None:
                return current, None
            try:
                self.write(wanted, token)
            except LeaseConflict:
                continue
            return current, wanted
        raise LeaseConflict(f"the lease kept changing under us ({self.description})")


class FileLeaseStore(LeaseStore):
    """``lease.json`` in a local directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        # The lock file earlier versions use, so a mixed-version pair still excludes each other.
        lock = self.dir / ".lease.lock"
        super().__init__(docstore.FileDocument(self.dir / LEASE_NAME, lock=lock))


class S3LeaseStore(LeaseStore):
    """``lease.json`` under an S3 prefix."""

    def __init__(self, url: str, client: Mapping[str, Any] | None = None) -> None:
        location = docstore.split_s3_url(url)
        if location is None:
            raise ConfigError(f"config error: offsets.path = {url!r}: expected s3://bucket/prefix")
        bucket, prefix = location
        self.key = f"{prefix}/{LEASE_NAME}" if prefix else LEASE_NAME
        super().__init__(docstore.S3Document(docstore.s3_client(client), bucket, self.key))


def lease_store_for(config: Config) -> LeaseStore:
    """The lease store beside the configured offsets."""
    offsets = config.offsets
    if offsets.store == "file":
        return FileLeaseStore(offsets.path)
    if offsets.store == "s3":
        return S3LeaseStore(offsets.path, offsets.s3_client)
    raise ConfigError(
        f"config error: offsets.store = {offsets.store!r} has no place for the handoff lease; "
        "use file or s3"
    )


def _identity(lease: Lease) -> tuple[int, str]:
    """What makes a lease one holder's: its epoch and instance."""
    return lease.epoch, lease.instance


def asked_by(lease: Lease | None, color: str) -> TypeGuard[Lease]:
    """Whether ``lease`` carries ``color``'s request to drain."""
    return lease is not None and lease.state == DRAINING and lease.successor == color


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Acquired:
    """How the lease was obtained, and what the previous owner left."""

    how: str
    """``new`` (no lease before), ``released`` (handed over) or ``stale`` (taken after timeout)."""
    previous: Lease | None
    waited_seconds: float


@dataclass(eq=False)
class LeaseHolder:
    """One instance's side of the protocol: acquire (or take over), heartbeat, release.

    ``acquire(takeover=True)`` asks a live owner to drain (state ``draining``, successor =
    our color), then waits until it is ``released`` or stale. Without ``takeover`` a live
    owner is an error. The heartbeat thread keeps the lease fresh and calls ``on_handoff``
    once a successor asks, or ``on_lost`` when the epoch moved on without us (we were
    declared dead): from then on :attr:`owned` is False, and the offsets listener must not
    write.
    """

    store: LeaseStore
    color: str
    instance: str
    _: KW_ONLY
    lease_timeout: float
    heartbeat: float
    poll: float = 0.2
    lease: Lease | None = field(default=None, init=False)
    _lost: threading.Event = field(default_factory=threading.Event, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _beat: Periodic = field(init=False)
    _position: Callable[[], Offsets | None] = field(default=lambda: None, init=False)

    def __post_init__(self) -> None:
        self._beat = Periodic("streamer-lease", self.heartbeat, lambda: False)  # started later

    @property
    def owned(self) -> bool:
        return self.lease is not None and not self._lost.is_set()

    def still_owner(self) -> bool:
        """Read the lease now: is it still ours? The offsets listener asks before every
        persist, so a superseded owner stops writing at its next batch, not its next
        heartbeat. An unreadable lease counts as ours (the offsets beside it are then most
        likely unwritable too); the heartbeat keeps judging."""
        if not self.owned:
            return False
        try:
            current, _ = self.store.read()
        except Exception as exc:
            log.warning('lease unreadable before an offsets write error="%s"', exc)
            return True
        if not self._still_mine(current):
            self._lost.set()
            return False
        return True

    def acquire(
        self,
        *,
        takeover: bool,
        drain_timeout: float,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Acquired:
        started = time.monotonic()
        deadline = started + drain_timeout
        requested = False
        seen: tuple[str | None, float] = (None, started)
        while True:
            lease, token = self.store.read()
            now = time.monotonic()
            if token != seen[0]:
                seen = (token, now)
            stale = lease is not None and now - seen[1] >= self.lease_timeout
            try:
                if lease is None or lease.state == RELEASED or stale:
                    how = "new" if lease is None else ("stale" if stale else "released")
                    if how == "stale":
                        log.warning(
                            'lease stale; taking over %s unchanged_for="%.1fs"',
                            lease.describe() if lease else "",
                            now - seen[1],
                        )
                    mine = Lease(
                        owner=self.color,
                        epoch=(lease.epoch if lease else 0) + 1,
                        state=RUNNING,
                        instance=self.instance,
                        heartbeat_at=_now_ms(),
                    )
                    self.store.write(mine, token)
                    self.lease = mine
                    log.info(
                        'lease acquired %s how="%s" store="%s"',
                        mine.describe(),
                        how,
                        self.store.description,
                    )
                    return Acquired(how, lease, time.monotonic() - started)
                if not takeover:
                    raise DeployError(
                        f"the lease at {self.store.description} is held by {lease.owner} "
                        f"(epoch {lease.epoch}, {lease.state}); start with --takeover to take "
                        "over from it, or stop it first"
                    )
                if lease.state == DRAINING and lease.successor != self.color:
                    raise DeployError(
                        f"{lease.successor} is already taking over from {lease.owner} "
                        f"({self.store.description}); wait for it or stop it"
                    )
                if lease.state == RUNNING:
                    request = replace(lease, state=DRAINING, successor=self.color)
                    token = self.store.write(request, token)
                    seen = (token, now)
                    requested = True
                    log.info('takeover requested from %s color="%s"', lease.describe(), self.color)
            except LeaseConflict:
                continue
            if cancelled() or now >= deadline:
                why = (
                    "interrupted while waiting for the handoff lease"
                    if cancelled()
                    else f"{lease.owner} did not release the lease within {drain_timeout:.0f}s"
                )
                if requested and not self._withdraw():
                    raise DeployError(
                        f"{why} ({self.store.description}); {lease.owner} has acknowledged the "
                        "request and is handing over, so it will release the lease: run with "
                        "--takeover again to take it"
                    )
                raise DeployError(
                    f"{why} ({self.store.description}); the takeover request was withdrawn and "
                    f"{lease.owner} keeps running"
                )
            time.sleep(self.poll)

    def _withdraw(self) -> bool:
        """Undo our takeover request, so the owner carries on as if nothing happened.

        False when the owner has already acknowledged it (``handing_over``): it is draining
        and will release, and undoing the request then would leave nobody consuming.
        """

        def undo(lease: Lease | None) -> Lease | None:
            if asked_by(lease, self.color) and not lease.handing_over:
                return replace(lease, state=RUNNING, successor=None)
            return None

        try:
            before, withdrawn = self.store.update(undo)
        except LeaseConflict:
            return False
        if withdrawn is not None:
            log.warning("takeover withdrawn %s", withdrawn.describe())
        return not (asked_by(before, self.color) and before.handing_over)

    def start_heartbeat(
        self,
        *,
        on_handoff: Callable[[str], None],
        on_lost: Callable[[Lease | None], None],
        position: Callable[[], Offsets | None] = lambda: None,
    ) -> None:
        """Refresh the lease every ``heartbeat`` seconds until :meth:`release` or loss."""
        self._position = position
        asked = False

        def beat() -> bool:
            nonlocal asked
            try:
                with self._lock:
                    if self._beat.stopping:
                        return False
                    lease = self._refresh()
            except LeaseLostError:
                self._lost.set()
                current, _ = self.store.read()
                log.error(
                    'lease lost; stopping without writing mine_epoch="%d" now=%s',
                    self.lease.epoch if self.lease else -1,
                    current.describe() if current else "none",
                )
                on_lost(current)
                return False
            except Exception as exc:  # store unreachable: the lease ages; keep trying
                log.warning('lease heartbeat failed error="%s"', exc)
                return True
            if lease.state == DRAINING and not asked:
                asked = True
                log.info('handoff requested successor="%s"', lease.successor)
                on_handoff(lease.successor or "")
            return True

        self._beat = Periodic("streamer-lease", self.heartbeat, beat).start()

    def _still_mine(self, current: Lease | None) -> bool:
        mine = self.lease
        return mine is not None and current is not None and _identity(current) == _identity(mine)

    def _refresh(self) -> Lease:
        """One heartbeat: CAS our lease with a new timestamp, keeping a successor's request."""

        def fresh(current: Lease | None) -> Lease | None:
            if current is None or not self._still_mine(current):
                return None
            return replace(
                current,
                heartbeat_at=_now_ms(),
                position=self._position(),
                handing_over=current.state == DRAINING,
            )

        _, written = self.store.update(fresh, attempts=5)
        if written is None:
            raise LeaseLostError("the lease moved on")
        self.lease = written
        return written

    def release(self, offsets: Offsets | None, last_output_at: int | None) -> bool:
        """Mark the lease released at ``offsets``; False when it was no longer ours."""
        self._beat.stop(timeout=self.heartbeat + 10)

        def done(current: Lease | None) -> Lease | None:
            if current is None or not self._still_mine(current):
                return None
            return replace(
                current,
                state=RELEASED,
                heartbeat_at=_now_ms(),
                offsets=offsets,
                last_output_at=last_output_at,
            )

        with self._lock:
            if self._lost.is_set() or self.lease is None:
                return False
            try:
                _, released = self.store.update(done)
            except LeaseConflict:
                return False
            if released is None:
                self._lost.set()
                return False
            self.lease = released
            log.info(
                'lease released %s offsets="%s"', released.describe(), format_offsets(offsets or {})
            )
            return True
