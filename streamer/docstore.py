"""Small JSON documents on a local disk or S3, read with a version and written by
compare-and-swap. The offsets, the handoff lease and the EMR deployment state live in them.

A document is bytes at a URL: a local path, or ``s3://bucket/key`` (``s3a://`` too). Each
user owns its JSON schema; this module owns how the bytes are stored, and one policy:

* :meth:`Document.read` gives ``(data, version)``, or None when nothing is stored.
* :meth:`Document.swap` writes only while the stored version is still the one expected
  (``None``: only while nothing is stored). It returns the new version, or None on a
  conflict. A conflict is never retried here: the caller re-reads and decides again.
* :meth:`Document.put` writes unconditionally. Either way a reader sees the whole old
  document or the whole new one, never a torn one.
* Every other failure raises :class:`DocumentError`, naming the document. Transient S3
  errors are retried by botocore's own retry policy (the client's configuration); nothing
  here adds retries of its own.

Files: a write goes to a temp file in the same directory, is fsynced, renamed over the
document (``os.replace``) and the directory is fsynced. A swap holds an exclusive
``flock`` around read-compare-rename, so two processes on one host never both move a
document from the same version. The version is a hash of the content.

S3: the version is the ETag, and a swap is a conditional PUT: ``If-Match: <etag>`` to
update, ``If-None-Match: *`` to create. ``412 PreconditionFailed`` or ``409
ConditionalRequestConflict`` is a conflict, and so is ``404`` on an ``If-Match`` (the
document was deleted since it was read).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from streamer.errors import StreamerError

_S3_URL = re.compile(r"^s3a?://([^/]+)/?(.*)$")
_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


class DocumentError(StreamerError):
    """A document cannot be read or written (not a conflict: that is a result)."""


class Document(Protocol):
    description: str

    def read(self) -> tuple[bytes, str] | None:
        """The stored bytes and their version; None when nothing is stored."""
        ...

    def swap(self, data: bytes, expect: str | None) -> str | None:
        """Write ``data`` while the stored version is ``expect`` (None: nothing stored).
        The new version, or None when the document moved on (a conflict)."""
        ...

    def put(self, data: bytes) -> None:
        """Write ``data`` whatever is stored."""
        ...

    def delete(self) -> None: ...


class Folder(Protocol):
    """A local directory or an S3 prefix holding documents by name."""

    description: str

    def names(self, prefix: str) -> list[str]:
        """The names of the documents starting with ``prefix`` (none when it is missing)."""
        ...

    def document(self, name: str) -> Document: ...


def split_s3_url(url: str) -> tuple[str, str] | None:
    """``(bucket, key or prefix)`` of an ``s3://`` or ``s3a://`` URL; None for a local path."""
    match = _S3_URL.match(url)
    return (match[1], match[2].strip("/")) if match else None


def s3_client(client: Mapping[str, Any] | None = None) -> Any:
    """A boto3 S3 client from ``client`` keyword arguments (endpoint, region, keys)."""
    import boto3

    return boto3.client("s3", **dict(client or {}))


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileDocument:
    """A local file, replaced atomically; swaps serialize on an exclusive ``flock``.

    The lock is taken on ``lock`` when given (a lock file beside the document), else on the
    document's directory itself, which leaves no extra file behind.
    """

    def __init__(self, path: str | os.PathLike[str], lock: str | os.PathLike[str] | None = None):
        self.path = Path(path)
        self.lock = Path(lock) if lock is not None else None
        self.description = f"file:{self.path}"

    def read(self) -> tuple[bytes, str] | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DocumentError(f"cannot read {self.description}: {exc}") from exc
        return data, _version(data)

    def swap(self, data: bytes, expect: str | None) -> str | None:
        with self._locked():
            found = self.read()
            if (found[1] if found else None) != expect:
                return None
            self.put(data)
        return _version(data)

    def put(self, data: bytes) -> None:
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}-", suffix=".tmp", dir=directory)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            _fsync_dir(directory)
        except OSError as exc:
            raise DocumentError(f"cannot write {self.description}: {exc}") from exc

    def delete(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise DocumentError(f"cannot delete {self.description}: {exc}") from exc

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.lock is None:
                fd = os.open(self.path.parent, os.O_RDONLY)
            else:
                fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise DocumentError(f"cannot lock {self.description}: {exc}") from exc
        try:
            yield
        finally:
            os.close(fd)  # closing the last descriptor releases the lock


class S3Document:
    """An S3 object; swaps are conditional PUTs on its ETag."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._s3 = client
        self.bucket = bucket
        self.key = key
        self.description = f"s3://{bucket}/{key}"

    def read(self) -> tuple[bytes, str] | None:
        try:
            obj = self._s3.get_object(Bucket=self.bucket, Key=self.key)
            data: bytes = obj["Body"].read()
        except self._s3.exceptions.NoSuchKey:
            return None
        except Exception as exc:
            raise DocumentError(f"cannot read {self.description}: {exc}") from exc
        return data, str(obj["ETag"])

    def swap(self, data: bytes, expect: str | None) -> str | None:
        condition = {"IfMatch": expect} if expect else {"IfNoneMatch": "*"}
        try:
            return self._put(data, condition)
        except Exception as exc:
            if _is_conflict(exc, updating=bool(expect)):
                return None
            raise DocumentError(f"cannot write {self.description}: {exc}") from exc

    def put(self, data: bytes) -> None:
        try:
            self._put(data, {})
        except Exception as exc:
            raise DocumentError(f"cannot write {self.description}: {exc}") from exc

    def delete(self) -> None:
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=self.key)
        except Exception as exc:
            raise DocumentError(f"cannot delete {self.description}: {exc}") from exc

    def _put(self, data: bytes, condition: Mapping[str, str]) -> str:
        response = self._s3.put_object(
            Bucket=self.bucket,
            Key=self.key,
            Body=data,
            ContentType="application/json",
            **condition,
        )
        return str(response["ETag"])


def _is_conflict(exc: Exception, *, updating: bool) -> bool:
    """Whether a failed conditional PUT says the object moved on (a botocore ClientError)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = response.get("Error", {}).get("Code", "")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in _CONFLICT_CODES or status in (409, 412) or (updating and status == 404)


class FileFolder:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.description = f"file:{self.path}"

    def names(self, prefix: str) -> list[str]:
        try:
            return [name for name in os.listdir(self.path) if name.startswith(prefix)]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise DocumentError(f"cannot list {self.description}: {exc}") from exc

    def document(self, name: str) -> FileDocument:
        return FileDocument(self.path / name)


class S3Folder:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self._s3 = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.description = f"s3://{bucket}/{self.prefix}"

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def names(self, prefix: str) -> list[str]:
        names: list[str] = []
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.key(prefix)
            )
            for page in pages:
                names.extend(obj["Key"].rsplit("/", 1)[-1] for obj in page.get("Contents", []))
        except Exception as exc:
            raise DocumentError(f"cannot list {self.description}: {exc}") from exc
        return names

    def document(self, name: str) -> S3Document:
        return S3Document(self._s3, self.bucket, self.key(name))


def open_folder(url: str, client: Mapping[str, Any] | None = None) -> FileFolder | S3Folder:
    """The folder at ``url``: an S3 prefix (a client built from ``client``) or a directory."""
    s3 = split_s3_url(url)
    if s3 is None:
        return FileFolder(url)
    return S3Folder(s3_client(client), *s3)


def open_document(url: str, client: Mapping[str, Any] | None = None) -> Document:
    """The document at ``url``: an S3 object (a client built from ``client``) or a file."""
    s3 = split_s3_url(url)
    if s3 is None:
        return FileDocument(url)
    if not s3[1]:
        raise DocumentError(f"{url!r} names a bucket, not an object: add a key")
    return S3Document(s3_client(client), *s3)
