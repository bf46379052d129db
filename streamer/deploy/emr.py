"""``streamer deploy emr``: blue-green deployments of streamer on EMR on EKS.

Each deployment is one long-running EMR on EKS job run that executes
``streamer run --config <emr.config_path> --color <color> --takeover``. The job warms up,
asks the current owner of the handoff lease (see :mod:`streamer.deploy.lease`) to drain,
and takes the lease over. The deployer only submits, watches and cancels job runs:

``start``
    submit the first job (``blue`` unless ``--color``) and wait until it owns the lease.
``promote``
    submit the other color's job, wait until it is ``RUNNING`` *and* the lease names it
    as the running owner at a newer epoch, and only then cancel the old job. When it does
    not own in ``emr.promote_timeout_seconds`` it is cancelled; the old job keeps running
    if it still owns and has not acknowledged a drain request (an unacknowledged one is
    withdrawn), and is otherwise re-submitted from its saved request.
``rollback``
    the same switch, back to the previous color with that color's saved request (its old
    image and settings), not one rendered from the current config.
``status``
    the deployment state, the job runs' EMR states and the lease, as JSON.

The StartJobRun request is rendered from a JSON template (``emr.template``) by
``string.Template``: every ``${name}`` is replaced by a value from :func:`template_values`,
JSON-escaped, so string placeholders sit inside quotes (``"${image}"``) and the number
``${max_attempts}`` stands bare. Monitoring blocks whose value is empty (no ``emr.log_uri``
or ``emr.log_group``) are dropped after parsing.

The deployment state (``emr.state_path``, a local file or ``s3://bucket/key``) holds per
app the active job, the previous one, a job submitted but not yet settled (``pending``),
and each color's last request. S3 writes are conditional on the ETag read before, so two
deployers cannot silently overwrite each other.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import itertools
import json
import logging
import os
import re
import string
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TextIO

from streamer.config import Config, EmrConfig
from streamer.deploy.lease import (
    DRAINING,
    RELEASED,
    RUNNING,
    Lease,
    LeaseConflict,
    LeaseStore,
    lease_store_for,
)
from streamer.errors import DeployError

log = logging.getLogger(__name__)

COLORS = ("blue", "green")
DEFAULT_CONFIG = "conf/emr.yaml"
STATE_FORMAT = 1

JOB_RUNNING = "RUNNING"
JOB_TERMINAL = frozenset({"FAILED", "CANCELLED", "COMPLETED"})
"""Job run states after which the job does nothing more (``CANCEL_PENDING`` is not yet)."""
JOB_DONE = JOB_TERMINAL | {"CANCEL_PENDING"}

_REQUIRED = ("virtual_cluster_id", "execution_role_arn", "image")
_ARROW_CONF = (
    ("spark.sql.execution.arrow.pyspark.enabled", "true"),
    ("spark.sql.execution.pythonUDF.arrow.enabled", "true"),
)


def other_color(color: str) -> str:
    return COLORS[1] if color == COLORS[0] else COLORS[0]


def _check_color(color: str) -> None:
    if color not in COLORS:
        raise DeployError(f"color {color!r} is not one of {', '.join(COLORS)}; pick one of them")


def job_name(app: str, color: str, now: datetime) -> str:
    return f"{app}-{color}-{now:%Y%m%d-%H%M%S}"


def spark_submit_parameters(emr: EmrConfig) -> str:
    """Arrow on for pandas UDFs, the job's image, then ``emr.spark_submit_parameters``."""
    conf = [("spark.kubernetes.container.image", emr.image), *_ARROW_CONF]
    parts = [f"--conf {key}={value}" for key, value in conf]
    if emr.spark_submit_parameters.strip():
        parts.append(emr.spark_submit_parameters.strip())
    return " ".join(parts)


def template_values(emr: EmrConfig, color: str, now: datetime) -> dict[str, str | int]:
    """What ``${name}`` placeholders in the job-run template may use."""
    return {
        "app": emr.app,
        "color": color,
        "name": job_name(emr.app, color, now),
        "virtual_cluster_id": emr.virtual_cluster_id,
        "execution_role_arn": emr.execution_role_arn,
        "release_label": emr.release_label,
        "image": emr.image,
        "entry_point": emr.entry_point,
        "config_path": emr.config_path,
        "spark_submit_parameters": spark_submit_parameters(emr),
        "log_uri": emr.log_uri or "",
        "log_group": emr.log_group or "",
        "log_stream_prefix": f"{emr.app}-{color}",
        "max_attempts": emr.max_attempts,
    }


def read_template(path: str | os.PathLike[str]) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise DeployError(
            f"cannot read the job-run template {path} ({exc.strerror}); set emr.template to "
            "its path (relative to the working directory, or absolute)"
        ) from exc


def render_request(
    emr: EmrConfig, color: str, template: str, *, now: datetime, source: str = "emr.template"
) -> dict[str, Any]:
    """The StartJobRun arguments for ``color``: ``template`` filled from ``emr``. Pure."""
    _check_color(color)
    for key in _REQUIRED:
        if not str(getattr(emr, key)).strip():
            raise DeployError(
                f"emr.{key} is empty; set it in the emr section of the config file (or "
                f"STREAMER_EMR__{key.upper()}) before deploying"
            )
    values = {
        key: str(value) if isinstance(value, int) else json.dumps(value)[1:-1]
        for key, value in template_values(emr, color, now).items()
    }
    try:
        text = string.Template(template).substitute(values)
    except KeyError as exc:
        raise DeployError(
            f"the job-run template {source} uses ${{{exc.args[0]}}}, which is not one of "
            f"{', '.join(sorted(values))}; fix the template"
        ) from None
    except ValueError as exc:
        raise DeployError(
            f"the job-run template {source} has a bad placeholder ({exc}); write $$ for a literal $"
        ) from None
    try:
        request = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DeployError(
            f"the job-run template {source} is not JSON once filled in ({exc}); string "
            'placeholders belong in quotes ("${image}"), ${max_attempts} stands bare'
        ) from None
    if not isinstance(request, dict):
        raise DeployError(f"the job-run template {source} must be a JSON object")
    _drop_empty_monitoring(request)
    _check_request(request, color, source)
    return request


def _drop_empty_monitoring(request: dict[str, Any]) -> None:
    monitoring = request.get("configurationOverrides", {}).get("monitoringConfiguration")
    if not isinstance(monitoring, dict):
        return
    for block, key in (
        ("s3MonitoringConfiguration", "logUri"),
        ("cloudWatchMonitoringConfiguration", "logGroupName"),
    ):
        if isinstance(monitoring.get(block), dict) and not monitoring[block].get(key):
            del monitoring[block]


def _check_request(request: dict[str, Any], color: str, source: str) -> None:
    """The deployer relies on these; a custom template must keep them."""
    for key in ("name", "virtualClusterId", "executionRoleArn", "releaseLabel", "jobDriver"):
        if not request.get(key):
            raise DeployError(f"the job-run template {source} lacks {key}; add it")
    driver = request["jobDriver"].get("sparkSubmitJobDriver") or {}
    if not driver.get("entryPoint"):
        raise DeployError(
            f"the job-run template {source} lacks jobDriver.sparkSubmitJobDriver.entryPoint"
        )
    args = driver.get("entryPointArguments") or []
    pairs = list(itertools.pairwise(args))
    if ("--color", color) not in pairs or "--takeover" not in args:
        raise DeployError(
            f"the job-run template {source}: entryPointArguments must pass --color ${{color}} "
            f"and --takeover (got {args}); without them the job never takes the lease"
        )


def with_fresh_name(request: Mapping[str, Any], app: str, color: str, now: datetime) -> dict:
    """A saved request, ready to submit again."""
    fresh = copy.deepcopy(dict(request))
    fresh["name"] = job_name(app, color, now)
    return fresh


def request_color(request: Mapping[str, Any]) -> str | None:
    args = request.get("jobDriver", {}).get("sparkSubmitJobDriver", {}).get("entryPointArguments")
    for flag, value in itertools.pairwise(args or []):
        if flag == "--color":
            return str(value)
    return None


class StateStore(Protocol):
    description: str

    def read(self) -> tuple[dict[str, Any], str | None]:
        """The state document (``{}`` when there is none) and its version token."""
        ...

    def write(self, doc: Mapping[str, Any], expect: str | None) -> str:
        """Write when the stored version is still ``expect``; return the new version."""
        ...


def _decode_state(data: bytes, where: str) -> dict[str, Any]:
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


def _encode_state(doc: Mapping[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n").encode()


class FileStateStore:
    """A local JSON file, replaced atomically (temp file + rename)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.description = str(self.path)

    def read(self) -> tuple[dict[str, Any], str | None]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}, None
        except OSError as exc:
            raise DeployError(f"cannot read the deployment state {self.path}: {exc}") from exc
        return _decode_state(data, self.description), hashlib.sha256(data).hexdigest()

    def write(self, doc: Mapping[str, Any], expect: str | None) -> str:
        _, current = self.read()
        if current != expect:
            raise DeployError(
                f"the deployment state {self.path} changed during this deploy (another "
                "deployer?); run `streamer deploy emr status` and reconcile"
            )
        data = _encode_state(doc)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}-", dir=self.path.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise DeployError(f"cannot write the deployment state {self.path}: {exc}") from exc
        return hashlib.sha256(data).hexdigest()


class S3StateStore:
    """``s3://bucket/key``; every write is conditional on the ETag read before it."""

    def __init__(self, url: str, client: Any) -> None:
        match = re.match(r"^s3a?://([^/]+)/(.*[^/])$", url)
        if not match:
            raise DeployError(
                f"emr.state_path = {url!r}: expected s3://bucket/key (an object, not a prefix)"
                " or a local file path"
            )
        self.bucket, self.key = match[1], match[2]
        self.description = f"s3://{self.bucket}/{self.key}"
        self._s3 = client

    def read(self) -> tuple[dict[str, Any], str | None]:
        try:
            obj = self._s3.get_object(Bucket=self.bucket, Key=self.key)
            data = obj["Body"].read()
        except self._s3.exceptions.NoSuchKey:
            return {}, None
        except Exception as exc:
            raise DeployError(
                f"cannot read the deployment state {self.description}: {exc}"
            ) from exc
        return _decode_state(data, self.description), str(obj["ETag"])

    def write(self, doc: Mapping[str, Any], expect: str | None) -> str:
        from botocore.exceptions import ClientError

        condition = {"IfMatch": expect} if expect else {"IfNoneMatch": "*"}
        try:
            response = self._s3.put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=_encode_state(doc),
                ContentType="application/json",
                **condition,
            )
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status in (409, 412):
                raise DeployError(
                    f"the deployment state {self.description} changed during this deploy "
                    "(another deployer?); run `streamer deploy emr status` and reconcile"
                ) from exc
            raise DeployError(
                f"cannot write the deployment state {self.description}: {exc}"
            ) from exc
        return str(response["ETag"])


def state_store_for(emr: EmrConfig, s3_client: Callable[[], Any]) -> StateStore:
    if emr.state_path.startswith(("s3://", "s3a://")):
        return S3StateStore(emr.state_path, s3_client())
    return FileStateStore(emr.state_path)


def _boto_client(service: str, kwargs: Mapping[str, str]) -> Any:
    import boto3

    return boto3.client(service, **dict(kwargs))


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Waited(NamedTuple):
    lease: Lease | None
    """The lease the new job owns; None when it did not become the owner."""
    why: str
    requested: bool
    """Whether the new job was seen asking the owner to drain: the owner may be handing over."""


def _requested_by(lease: Lease | None, color: str) -> bool:
    return lease is not None and lease.state == DRAINING and lease.successor == color


class EmrDeployer:
    """Submits, watches and cancels the job runs of one app; keeps the deployment state.

    Every wait polls every ``emr.poll_seconds`` for up to ``emr.promote_timeout_seconds``
    through the injected ``sleep`` and ``clock``; tests set both settings to fractions of a second.
    """

    def __init__(
        self,
        config: Config,
        *,
        emr_client: Any = None,
        state_store: StateStore | None = None,
        lease_store: LeaseStore | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.config = config
        self.emr = config.emr
        if lease_store is None and config.offsets.store != "s3":
            raise DeployError(
                f"offsets.store = {config.offsets.store!r}: EMR jobs keep their offsets and "
                "the handoff lease on S3, where the deployer reads the lease; set "
                "offsets.store: s3 and offsets.path: s3://bucket/prefix"
            )
        self.jobs = emr_client or _boto_client("emr-containers", self.emr.client)
        self.state = state_store or state_store_for(
            self.emr, lambda: _boto_client("s3", self.emr.client)
        )
        self.lease = lease_store or lease_store_for(config)
        self.sleep = sleep
        self.clock = clock
        self.now = now
        self.timeout = self.emr.promote_timeout_seconds
        self.poll = self.emr.poll_seconds

    # --- EMR and lease access -------------------------------------------------------------

    def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.jobs, method)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise DeployError(f"EMR on EKS {what} failed: {exc}") from exc

    def describe(self, job_id: str) -> dict[str, Any]:
        response = self._call(
            f"DescribeJobRun {job_id}",
            "describe_job_run",
            id=job_id,
            virtualClusterId=self.emr.virtual_cluster_id,
        )
        return dict(response["jobRun"])

    def job_state(self, job_id: str) -> str:
        return str(self.describe(job_id)["state"])

    def submit(self, request: Mapping[str, Any], color: str) -> str:
        response = self._call("StartJobRun", "start_job_run", **request)
        job_id = str(response["id"])
        log.info(
            'job run submitted app="%s" color="%s" job="%s" name="%s"',
            self.emr.app,
            color,
            job_id,
            request.get("name"),
        )
        return job_id

    def cancel(self, job_id: str, color: str) -> None:
        """Cancel unless the job already ended."""
        state = self.job_state(job_id)
        if state in JOB_DONE:
            log.info('job run already ended job="%s" color="%s" state="%s"', job_id, color, state)
            return
        self._call(
            f"CancelJobRun {job_id}",
            "cancel_job_run",
            id=job_id,
            virtualClusterId=self.emr.virtual_cluster_id,
        )
        log.info('job run cancelled job="%s" color="%s" was="%s"', job_id, color, state)

    def read_lease(self) -> Lease | None:
        lease, _ = self.lease.read()
        return lease

    def _epoch(self) -> int:
        lease = self.read_lease()
        return lease.epoch if lease else 0

    def await_owner(self, job_id: str, color: str, after_epoch: int) -> Waited:
        """Wait until ``job_id`` is RUNNING and the lease names ``color`` running at an epoch
        above ``after_epoch``; on failure say why (the job ended, or the time ran out).

        Errors reading EMR or the lease count as "not yet": a wait outlives a blip.
        """
        deadline = self.clock() + self.timeout
        state, lease, error, requested = "unknown", None, "", False
        while True:
            try:
                job = self.describe(job_id)
                state = str(job["state"])
                if state not in JOB_DONE:
                    lease = self.read_lease()
                    error = ""
                    requested = requested or _requested_by(lease, color)
            except DeployError as exc:
                error = str(exc)
                log.warning('waiting for the owner: read failed job="%s" error="%s"', job_id, exc)
            if state in JOB_DONE:
                details = job.get("failureReason") or job.get("stateDetails") or ""
                why = f"job {job_id} ended {state}" + (f" ({details})" if details else "")
                return Waited(None, why, requested)
            if (
                state == JOB_RUNNING
                and lease is not None
                and lease.owner == color
                and lease.state == RUNNING
                and lease.epoch > after_epoch
            ):
                log.info(
                    'job run owns the lease job="%s" color="%s" %s', job_id, color, lease.describe()
                )
                return Waited(lease, "", requested)
            if self.clock() >= deadline:
                now = lease.describe() if lease else "no lease"
                extra = f"; last error: {error}" if error else ""
                return Waited(None, f"job {job_id} is {state}, lease {now}{extra}", requested)
            self.sleep(self.poll)

    def await_ended(self, job_id: str) -> str:
        """Wait (bounded) for a cancelled job to stop, so it cannot touch the lease later."""
        deadline = self.clock() + self.timeout
        while True:
            try:
                state = self.job_state(job_id)
            except DeployError as exc:
                log.warning(
                    'waiting for the job to end: read failed job="%s" error="%s"', job_id, exc
                )
                state = "unknown"
            if state in JOB_TERMINAL or self.clock() >= deadline:
                return state
            self.sleep(self.poll)

    def _keeps_input(self, owner: str, successor: str) -> bool:
        """Whether ``owner`` still consumes: it owns the lease running, or ``successor``'s
        drain request was not yet acknowledged and could be withdrawn."""
        for _ in range(10):
            lease, token = self.lease.read()
            if lease is None or lease.owner != owner:
                return False
            if lease.state == RUNNING:
                return True
            if lease.state != DRAINING or lease.handing_over or lease.successor != successor:
                return False
            try:
                self.lease.write(replace(lease, state=RUNNING, successor=None), token)
            except LeaseConflict:
                continue  # the owner's heartbeat wrote; look again (it may have acknowledged)
            log.warning("drain request of the cancelled job withdrawn %s", lease.describe())
            return True
        return False

    def _redirect_takeover(self, to: str, away_from: str) -> None:
        """A cancelled successor's drain request would block every other taker: hand it to
        ``to`` instead, so the draining owner releases to the job about to be submitted."""
        for _ in range(10):
            lease, token = self.lease.read()
            if lease is None or lease.state != DRAINING or lease.successor != away_from:
                return
            try:
                self.lease.write(replace(lease, successor=to), token)
            except LeaseConflict:
                continue
            log.warning('takeover request redirected %s successor="%s"', lease.describe(), to)
            return

    # --- deployment state -----------------------------------------------------------------

    def load(self) -> tuple[dict[str, Any], dict[str, Any], str | None]:
        """The whole state document, this app's entry in it, and the version token."""
        doc, token = self.state.read()
        doc = doc or {"format": STATE_FORMAT, "apps": {}}
        app = doc.setdefault("apps", {}).setdefault(
            self.emr.app, {"active": None, "previous": None, "pending": None, "requests": {}}
        )
        return doc, app, token

    def save(self, doc: dict[str, Any], app: dict[str, Any], token: str | None) -> str | None:
        app["updated_at"] = self.now().isoformat()
        return self.state.write(doc, token)

    def _ref(self, job_id: str, color: str, request: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "job_id": job_id,
            "color": color,
            "name": request.get("name"),
            "submitted_at": self.now().isoformat(),
        }

    def _submit_pending(
        self,
        doc: dict[str, Any],
        app: dict[str, Any],
        token: str | None,
        request: Mapping[str, Any],
        color: str,
    ) -> tuple[str, str | None]:
        """Submit, and record the job as pending, so an interrupted deploy leaves a trace."""
        job_id = self.submit(request, color)
        app["pending"] = self._ref(job_id, color, request)
        try:
            return job_id, self.save(doc, app, token)
        except DeployError:
            self.cancel(job_id, color)
            raise

    def _check_pending(self, app: dict[str, Any]) -> None:
        pending = app.get("pending")
        if not pending:
            return
        try:
            state = self.job_state(pending["job_id"])
        except DeployError:
            state = "unknown"
        if state not in JOB_TERMINAL:
            raise DeployError(
                f"{pending['color']} job {pending['job_id']} from an unfinished deploy is "
                f"{state}; wait for that deploy, or cancel the job (aws emr-containers "
                f"cancel-job-run --id {pending['job_id']} --virtual-cluster-id "
                f"{self.emr.virtual_cluster_id}) and retry"
            )
        app["pending"] = None

    def _render(self, color: str) -> dict[str, Any]:
        return render_request(
            self.emr,
            color,
            read_template(self.emr.template),
            now=self.now(),
            source=self.emr.template,
        )

    # --- commands ---------------------------------------------------------------------------

    def start(self, color: str = "blue") -> dict[str, Any]:
        """The first deployment: submit ``color`` and wait until it owns the lease."""
        _check_color(color)
        doc, app, token = self.load()
        self._check_pending(app)
        active = app.get("active")
        if active:
            state = self.job_state(active["job_id"])
            if state not in JOB_DONE:
                raise DeployError(
                    f"{active['color']} job {active['job_id']} of app {self.emr.app} is "
                    f"{state}; use `streamer deploy emr promote` to replace it"
                )
        request = self._render(color)
        before = self.read_lease()
        if before is not None and before.state != RELEASED:
            log.warning(
                "a lease exists while no job of this app runs; the new job takes it over %s",
                before.describe(),
            )
        job_id, token = self._submit_pending(doc, app, token, request, color)
        lease, why, _ = self.await_owner(job_id, color, before.epoch if before else 0)
        if lease is None:
            self.cancel(job_id, color)
            app["pending"] = None
            self.save(doc, app, token)
            raise DeployError(
                f"{color} did not become owner in {self.timeout:.0f}s ({why}); its job "
                f"{job_id} was cancelled. Check the job's driver log"
            )
        if active:
            app["previous"] = active
        ref = app["active"] = app["pending"]
        app["pending"] = None
        app.setdefault("requests", {})[color] = request
        self.save(doc, app, token)
        return {"action": "start", "active": ref, "epoch": lease.epoch}

    def promote(self) -> dict[str, Any]:
        """Replace the active job by the other color's, rendered from the current config."""
        doc, app, token = self.load()
        self._check_pending(app)
        active = self._active(app)
        color = other_color(active["color"])
        request = self._render(color)
        return self._switch(doc, app, token, "promote", color, request)

    def rollback(self) -> dict[str, Any]:
        """Switch back to the previous color, with that color's saved request."""
        doc, app, token = self.load()
        self._check_pending(app)
        active = self._active(app)
        previous = app.get("previous")
        saved = (app.get("requests") or {}).get(previous["color"]) if previous else None
        if not previous or not saved or previous["color"] == active["color"]:
            raise DeployError(
                f"app {self.emr.app} has no previous deployment to roll back to (state "
                f"{self.state.description}); deploy a fixed build with promote instead"
            )
        color = previous["color"]
        request = with_fresh_name(saved, self.emr.app, color, self.now())
        return self._switch(doc, app, token, "rollback", color, request)

    def _active(self, app: dict[str, Any]) -> dict[str, Any]:
        active = app.get("active")
        if not active:
            raise DeployError(
                f"nothing is deployed for app {self.emr.app} (state {self.state.description});"
                " run `streamer deploy emr start` first"
            )
        return dict(active)

    def _switch(
        self,
        doc: dict[str, Any],
        app: dict[str, Any],
        token: str | None,
        action: str,
        color: str,
        request: dict[str, Any],
    ) -> dict[str, Any]:
        """Start ``color``, wait until it owns, then cancel the old job: in that order."""
        old = self._active(app)
        old_state = self.job_state(old["job_id"])
        if old_state != JOB_RUNNING:
            log.warning(
                'the active job is not running; the new one takes over its lease job="%s" '
                'color="%s" state="%s"',
                old["job_id"],
                old["color"],
                old_state,
            )
        after = self._epoch()
        job_id, token = self._submit_pending(doc, app, token, request, color)
        waited = self.await_owner(job_id, color, after)
        lease = waited.lease
        if lease is not None:
            self.cancel(old["job_id"], old["color"])
            app["previous"] = old
            app["active"], app["pending"] = app["pending"], None
            app.setdefault("requests", {})[color] = request
            self.save(doc, app, token)
            log.info(
                '%s done app="%s" active="%s" job="%s" epoch="%d" cancelled="%s"',
                action,
                self.emr.app,
                color,
                job_id,
                lease.epoch,
                old["job_id"],
            )
            return {
                "action": action,
                "active": app["active"],
                "previous": old,
                "epoch": lease.epoch,
            }
        return self._recover(doc, app, token, color, job_id, waited)

    def _recover(
        self,
        doc: dict[str, Any],
        app: dict[str, Any],
        token: str | None,
        color: str,
        job_id: str,
        waited: Waited,
    ) -> dict[str, Any]:
        """The new job did not take over: cancel it, and keep or restart the old color.

        The old job keeps the input when it still runs and owns the lease, and has not
        acknowledged a drain request (``handing_over``): an unacknowledged request left by
        the cancelled job is withdrawn with a compare-and-swap, which the old owner's
        acknowledgement would make fail. An owner that has acknowledged hands over for good,
        so then its color is restarted; the restarted job takes over through the lease.
        """
        old = self._active(app)
        failed = f"{color} did not become owner in {self.timeout:.0f}s ({waited.why})"
        log.error('%s; rolling back job="%s"', failed, job_id)
        self.cancel(job_id, color)
        ended = self.await_ended(job_id)
        app["pending"] = None
        old_state = self.job_state(old["job_id"])
        if old_state == JOB_RUNNING and self._keeps_input(old["color"], color):
            self.save(doc, app, token)
            raise DeployError(
                f"{failed}; rolled back, {old['color']} job {old['job_id']} keeps running"
            )
        lease = self.read_lease()
        asked = waited.requested or _requested_by(lease, color)
        because = (
            f"its job is {old_state}, lease {lease.describe() if lease else 'none'}"
            + (f", asked to drain by {color}" if asked else "")
            + f"; {color} job {job_id} is {ended}"
        )
        self._redirect_takeover(to=old["color"], away_from=color)
        saved = (app.get("requests") or {}).get(old["color"]) or self._render(old["color"])
        request = with_fresh_name(saved, self.emr.app, old["color"], self.now())
        after = self._epoch()
        restart_id, token = self._submit_pending(doc, app, token, request, old["color"])
        restarted, why_not, _ = self.await_owner(restart_id, old["color"], after)
        if restarted is None:
            self.cancel(restart_id, old["color"])
            app["pending"] = None
            self.save(doc, app, token)
            raise DeployError(
                f"{failed}; {old['color']} job {old['job_id']} no longer owned the input "
                f"({because}) and its restart, job "
                f"{restart_id}, did not become owner either ({why_not}). Nothing may be "
                "consuming: run `streamer deploy emr status`, then `streamer deploy emr start "
                f"--color {old['color']}`"
            )
        self.cancel(old["job_id"], old["color"])
        app["active"], app["pending"] = app["pending"], None
        app.setdefault("requests", {})[old["color"]] = request
        self.save(doc, app, token)
        raise DeployError(
            f"{failed}; rolled back: {old['color']} job {old['job_id']} no longer owned the "
            f"input ({because}), so {old['color']} was restarted as job {restart_id}, which "
            f"owns it at epoch {restarted.epoch}"
        )

    def status(self) -> dict[str, Any]:
        doc, _ = self.state.read()
        app = (doc.get("apps") or {}).get(self.emr.app)
        jobs: dict[str, Any] = {}
        for role in ("active", "previous", "pending"):
            ref = (app or {}).get(role)
            if not ref:
                continue
            try:
                job = self.describe(ref["job_id"])
                jobs[role] = {
                    "id": ref["job_id"],
                    "color": ref["color"],
                    **{
                        k: job.get(k)
                        for k in (
                            "state",
                            "stateDetails",
                            "failureReason",
                            "createdAt",
                            "finishedAt",
                        )
                        if job.get(k) is not None
                    },
                }
            except DeployError as exc:
                jobs[role] = {"id": ref["job_id"], "color": ref["color"], "error": str(exc)}
        try:
            lease = self.read_lease()
            lease_doc: Any = json.loads(lease.encode()) if lease else None
        except DeployError as exc:
            lease_doc = {"error": str(exc)}
        return {
            "app": self.emr.app,
            "state_path": self.state.description,
            "state": app,
            "jobs": jobs,
            "lease_store": self.lease.description,
            "lease": lease_doc,
        }


def add_parser(subparsers: Any, config: str | None = None) -> argparse.ArgumentParser:
    """Register ``deploy emr {start,promote,rollback,status}`` on the ``streamer`` parser;
    ``config`` is the ``--config`` default from ``STREAMER_CONFIG``, if set."""
    deploy = subparsers.add_parser(
        "deploy",
        help="blue-green deployments (EMR on EKS)",
        description="Deploy streamer as long-running jobs that hand the input over through "
        "the lease beside the offsets.",
    )
    targets = deploy.add_subparsers(dest="target", required=True)
    emr = targets.add_parser(
        "emr",
        help="EMR on EKS job runs",
        description="Submit, switch and inspect streamer job runs on EMR on EKS. promote "
        "cancels the old job only after the new one owns the lease; on a timeout it cancels "
        "the new job and the old one keeps (or regains) the input.",
    )
    actions = emr.add_subparsers(dest="emr_action", required=True)
    helps = {
        "start": "submit the first job and wait until it owns the lease",
        "promote": "start the other color from the current config; cancel the old job once "
        "the new one owns",
        "rollback": "switch back to the previous color with its saved request",
        "status": "print the deployment state, the job runs' states and the lease as JSON",
    }
    for action, text in helps.items():
        sub = actions.add_parser(action, help=text, description=text)
        sub.add_argument(
            "--config",
            default=config or DEFAULT_CONFIG,
            help=f"YAML config file (env STREAMER_CONFIG; default {DEFAULT_CONFIG})",
        )
        if action == "start":
            sub.add_argument("--color", choices=COLORS, default="blue")
    return deploy


def run(
    args: argparse.Namespace,
    config: Config,
    out: TextIO,
    *,
    deployer: EmrDeployer | None = None,
) -> int:
    """Run one ``deploy emr`` action; DeployError propagates to the CLI's error handling."""
    from streamer.logs import configure_logging

    configure_logging(config.logging.level, "text")
    deployer = deployer or EmrDeployer(config)
    action = args.emr_action
    if action == "status":
        print(json.dumps(deployer.status(), indent=2, sort_keys=True, default=str), file=out)
        return 0
    if action == "start":
        result = deployer.start(args.color)
    elif action == "promote":
        result = deployer.promote()
    elif action == "rollback":
        result = deployer.rollback()
    else:
        raise DeployError(f"unknown deploy emr action {action!r}")
    active = result["active"]
    line = (
        f"{result['action']} app={config.emr.app} color={active['color']} "
        f"job={active['job_id']} epoch={result['epoch']}"
    )
    if result.get("previous"):
        line += f" cancelled={result['previous']['job_id']}"
    print(line, file=out, flush=True)
    return 0
