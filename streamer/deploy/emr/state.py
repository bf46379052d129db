"""The deployment state: per app, which job runs are active, previous and pending.

One JSON document at ``emr.state_path`` (a local file or ``s3://bucket/key``), written by
compare-and-swap on the version read before (see :mod:`streamer.docstore`), so two
deployers cannot silently overwrite each other::

    {"format": 1, "apps": {"fraud": {
        "active": {"job_id": "...", "color": "blue", "name": "...", "submitted_at": "..."},
        "previous": null, "pending": null,
        "requests": {"blue": {<the StartJobRun request>}}, "updated_at": "..."}}}

``pending`` is a job submitted but not yet settled, so an interrupted deploy leaves a
trace; ``requests`` holds each color's last request, which ``rollback`` submits again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from streamer.config import EmrConfig
from streamer.docstore import Document, DocumentError, FileDocument, open_document
from streamer.errors import DeployError

STATE_FORMAT = 1


@dataclass(frozen=True)
class JobRef:
    """A job run as the state records it."""

    job_id: str
    color: str
    name: str | None = None
    submitted_at: str | None = None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> JobRef | None:
        if not doc:
            return None
        return cls(
            job_id=str(doc["job_id"]),
            color=str(doc["color"]),
            name=doc.get("name"),
            submitted_at=doc.get("submitted_at"),
        )


@dataclass
class AppState:
    """One app's entry in the state document."""

    active: JobRef | None = None
    previous: JobRef | None = None
    pending: JobRef | None = None
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    updated_at: str | None = None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AppState:
        return cls(
            active=JobRef.from_json(doc.get("active")),
            previous=JobRef.from_json(doc.get("previous")),
            pending=JobRef.from_json(doc.get("pending")),
            requests=dict(doc.get("requests") or {}),
            updated_at=doc.get("updated_at"),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Deployment:
    """An app's state as read, with the whole document and the version it was read at."""

    app: str
    state: AppState
    doc: dict[str, Any]
    version: str | None


def _decode(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise DeployError(
            f"the deployment state {where} is not JSON ({exc}); repair or remove it (then "
            "`streamer deploy emr start` records the running job anew)"
        ) from exc
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
        raise DeployError(
            f"the deployment state {where} is not a format-{STATE_FORMAT} state document; "
            "point emr.state_path elsewhere or remove it"
        )
    return doc


def _encode(doc: Mapping[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n").encode()


class StateStore:
    """The state document; a lost compare-and-swap is a :class:`DeployError` that says so."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self.description = document.description

    def read(self) -> tuple[dict[str, Any], str | None]:
        """The state document (``{}`` when there is none) and its version token."""
        try:
            found = self.document.read()
        except DocumentError as exc:
            raise DeployError(f"deployment state: {exc}") from exc
        return (_decode(found[0], self.description), found[1]) if found else ({}, None)

    def write(self, doc: Mapping[str, Any], expect: str | None) -> str:
        """Write when the stored version is still ``expect``; return the new version."""
        try:
            version = self.document.swap(_encode(doc), expect)
        except DocumentError as exc:
            raise DeployError(f"deployment state: {exc}") from exc
        if version is None:
            raise DeployError(
                f"the deployment state {self.description} changed during this deploy "
                "(another deployer?); run `streamer deploy emr status` and reconcile"
            )
        return version

    def load(self, app: str) -> Deployment:
        doc, version = self.read()
        doc = doc or {"format": STATE_FORMAT, "apps": {}}
        entry = doc.setdefault("apps", {}).get(app) or {}
        return Deployment(app, AppState.from_json(entry), doc, version)

    def save(self, deployment: Deployment, now: datetime) -> None:
        """Write ``deployment`` back, conditional on the version it was read (or saved) at."""
        deployment.state.updated_at = now.isoformat()
        deployment.doc["apps"][deployment.app] = deployment.state.to_json()
        deployment.version = self.write(deployment.doc, deployment.version)


def state_store_for(emr: EmrConfig) -> StateStore:
    """The state at ``emr.state_path``: an S3 object (a client from ``emr.client``) or a file."""
    if emr.state_path.startswith(("s3://", "s3a://")):
        try:
            return StateStore(open_document(emr.state_path, emr.client))
        except DocumentError:
            raise DeployError(
                f"emr.state_path = {emr.state_path!r}: expected s3://bucket/key (an object, not "
                "a prefix) or a local file path"
            ) from None
    return StateStore(FileDocument(emr.state_path))
