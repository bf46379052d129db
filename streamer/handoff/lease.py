"""The handoff lease: which color owns the input topic, fenced by an epoch.

One small JSON record lives next to the offsets (``lease.json`` in the file store's
directory, or under the S3 prefix). Every write is a compare-and-swap on the version read
just before it: an exclusive ``flock`` around read-compare-rename for files, a conditional
PUT (``If-Match`` / ``If-None-Match: *``) on S3. So two instances can never both move the
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

import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from streamer.config import Config
from streamer.errors import ConfigError, DeployError, LeaseLostError
from streamer.offsets.core import Offsets, format_offsets, parse_offsets

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
        except (ValueError, TypeError) as exc:
            raise DeployError(f"the lease record is unreadable ({exc}); inspect it") from exc

    def describe(self) -> str:
        extra = f' successor="{self.successor}"' if self.successor else ""
        return f'owner="{self.owner}" epoch="{self.epoch}" state="{self.state}"{extra}'


class LeaseStore(Protocol):
    description: str

    def read(self) -> tuple[Lease | None, str | None]:
        """The lease and its version token; ``(None, None)`` when there is none."""
        ...

    def write(self, lease: Lease, expect: str | None) -> str:
        """Write when the stored version is still ``expect`` (None: nothing stored).
        Returns the new version; raises :class:`LeaseConflict` otherwise."""
        ...


class FileLeaseStore:
    """``lease.json`` in a local directory; CAS under an exclusive ``flock``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.path = self.dir / LEASE_NAME
        self.description = f"file:{self.path}"

    @staticmethod
    def _token(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()[:16]

    def _read_locked(self) -> tuple[Lease | None, str | None]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None, None
        return Lease.decode(data), self._token(data)

    def _locked(self) -> Any:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lease.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def read(self) -> tuple[Lease | None, str | None]:
        fd = self._locked()
        try:
            return self._read_locked()
        finally:
            os.close(fd)

    def write(self, lease: Lease, expect: str | None) -> str:
        data = lease.encode()
        fd = self._locked()
        try:
            _, current = self._read_locked()
            if current != expect:
                raise LeaseConflict(f"lease changed under us ({self.description})")
            tmp_fd, tmp = tempfile.mkstemp(prefix=".lease-", dir=self.dir)
            with os.fdopen(tmp_fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            return self._token(data)
        finally:
            os.close(fd)


class S3LeaseStore:
    """``lease.json`` under an S3 prefix; CAS by conditional PUT on the ETag."""

    def __init__(self, url: str, client: Mapping[str, Any] | None = None) -> None:
        match = re.match(r"^s3a?://([^/]+)/?(.*)$", url)
        if not match:
            raise ConfigError(f"config error: offsets.path = {url!r}: expected s3://bucket/prefix")
        self.bucket = match[1]
        prefix = match[2].strip("/")
        self.key = f"{prefix}/{LEASE_NAME}" if prefix else LEASE_NAME
        self.description = f"s3://{self.bucket}/{self.key}"
        import boto3

        self._s3 = boto3.client("s3", **dict(client or {}))

    def read(self) -> tuple[Lease | None, str | None]:
        try:
            obj = self._s3.get_object(Bucket=self.bucket, Key=self.key)
        except self._s3.exceptions.NoSuchKey:
            return None, None
        except Exception as exc:
            raise DeployError(f"cannot read the lease {self.description}: {exc}") from exc
        return Lease.decode(obj["Body"].read()), str(obj["ETag"])

    def write(self, lease: Lease, expect: str | None) -> str:
        from botocore.exceptions import ClientError

        condition = {"IfMatch": expect} if expect else {"IfNoneMatch": "*"}
        try:
            response = self._s3.put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=lease.encode(),
                ContentType="application/json",
                **condition,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (
                409,
                412,
            ):
                raise LeaseConflict(f"lease changed under us ({self.description})") from exc
            raise DeployError(f"cannot write the lease {self.description}: {exc}") from exc
        return str(response["ETag"])


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


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Acquired:
    """How the lease was obtained, and what the previous owner left."""

    how: str
    """``new`` (no lease before), ``released`` (handed over) or ``stale`` (taken after timeout)."""
    previous: Lease | None
    waited_seconds: float


class LeaseHolder:
    """One instance's side of the protocol: acquire (or take over), heartbeat, release.

    ``acquire(takeover=True)`` asks a live owner to drain (state ``draining``, successor =
    our color), then waits until it is ``released`` or stale. Without ``takeover`` a live
    owner is an error. The heartbeat thread keeps the lease fresh and calls ``on_handoff``
    once a successor asks, or ``on_lost`` when the epoch moved on without us (we were
    declared dead): from then on :attr:`owned` is False, and the offsets listener must not
    write.
    """

    def __init__(
        self,
        store: LeaseStore,
        color: str,
        instance: str,
        *,
        lease_timeout: float,
        heartbeat: float,
        poll: float = 0.2,
    ) -> None:
        self.store = store
        self.color = color
        self.instance = instance
        self.lease_timeout = lease_timeout
        self.heartbeat = heartbeat
        self.poll = poll
        self.lease: Lease | None = None
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._position: Callable[[], Offsets | None] = lambda: None

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
        mine = self.lease
        if mine is None or current is None or _identity(current) != _identity(mine):
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
        for _ in range(10):
            lease, token = self.store.read()
            if lease is None or lease.state != DRAINING or lease.successor != self.color:
                return True
            if lease.handing_over:
                return False
            try:
                self.store.write(replace(lease, state=RUNNING, successor=None), token)
                log.warning("takeover withdrawn %s", lease.describe())
                return True
            except LeaseConflict:
                continue
        return False

    def start_heartbeat(
        self,
        *,
        on_handoff: Callable[[str], None],
        on_lost: Callable[[Lease | None], None],
        position: Callable[[], Offsets | None] = lambda: None,
    ) -> None:
        """Refresh the lease every ``heartbeat`` seconds until :meth:`release` or loss."""
        self._position = position

        def beat() -> None:
            asked = False
            while not self._stop.wait(self.heartbeat):
                try:
                    with self._lock:
                        if self._stop.is_set():
                            return
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
                    return
                except Exception as exc:  # store unreachable: the lease ages; keep trying
                    log.warning('lease heartbeat failed error="%s"', exc)
                    continue
                if lease.state == DRAINING and not asked:
                    asked = True
                    log.info('handoff requested successor="%s"', lease.successor)
                    on_handoff(lease.successor or "")

        self._thread = threading.Thread(target=beat, name="streamer-lease", daemon=True)
        self._thread.start()

    def _refresh(self) -> Lease:
        """One heartbeat: CAS our lease with a new timestamp, keeping a successor's request."""
        for _ in range(5):
            current, token = self.store.read()
            mine = self.lease
            if mine is None or current is None or _identity(current) != _identity(mine):
                raise LeaseLostError("the lease moved on")
            fresh = replace(
                current,
                heartbeat_at=_now_ms(),
                position=self._position(),
                handing_over=current.state == DRAINING,
            )
            try:
                self.store.write(fresh, token)
            except LeaseConflict:
                continue
            self.lease = fresh
            return fresh
        raise DeployError("lease heartbeat kept conflicting")

    def release(self, offsets: Offsets | None, last_output_at: int | None) -> bool:
        """Mark the lease released at ``offsets``; False when it was no longer ours."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.heartbeat + 10)
        with self._lock:
            if self._lost.is_set() or self.lease is None:
                return False
            for _ in range(10):
                current, token = self.store.read()
                if current is None or _identity(current) != _identity(self.lease):
                    self._lost.set()
                    return False
                done = replace(
                    current,
                    state=RELEASED,
                    heartbeat_at=_now_ms(),
                    offsets=offsets,
                    last_output_at=last_output_at,
                )
                try:
                    self.store.write(done, token)
                except LeaseConflict:
                    continue
                self.lease = done
                log.info(
                    'lease released %s offsets="%s"', done.describe(), format_offsets(offsets or {})
                )
                return True
        return False
