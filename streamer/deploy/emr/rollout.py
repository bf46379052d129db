"""The blue-green rollout on EMR on EKS: which job runs to submit, wait for and cancel.

Each deployment is one long-running job run of ``streamer run --color <color>
--takeover``. The job warms up, asks the lease's owner to drain, and takes the handoff
lease over (see :mod:`streamer.handoff.lease`). The deployer never touches the stream; it
watches the lease and moves the job runs through these steps::

    start:     submit ──► warm (RUNNING, owns the lease) ──► active
    promote:   submit other color ──► warm ──► retire the old job ──► active, old = previous
                                       │ not the owner within emr.promote_timeout_seconds
                                       ▼
               cancel the new job ──► old job still consumes? ── yes ──► keep it
                                                               └─ no ──► restart its color
    rollback:  promote, to the previous color with its saved request

The old job is cancelled only after the new one owns the lease at a newer epoch. The old
job still consumes when it owns the lease running, or when the cancelled job's drain
request was not yet acknowledged: that request is withdrawn with a compare-and-swap, which
the owner's acknowledgement would make fail. An owner that has acknowledged hands over for
good, so then its color is restarted, and the restarted job takes over through the lease.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple, NoReturn

from streamer.config import Config
from streamer.deploy.emr.client import JOB_DONE, JOB_RUNNING, JOB_TERMINAL, EmrJobs, boto_client
from streamer.deploy.emr.requests import (
    JobRunRequest,
    check_color,
    other_color,
    read_template,
    render_request,
)
from streamer.deploy.emr.state import AppState, Deployment, JobRef, StateStore, state_store_for
from streamer.errors import DeployError
from streamer.handoff.lease import (
    RELEASED,
    RUNNING,
    Lease,
    LeaseConflict,
    LeaseStore,
    asked_by,
    lease_store_for,
)

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Waited(NamedTuple):
    lease: Lease | None
    """The lease the new job owns; None when it did not become the owner."""
    why: str
    requested: bool
    """Whether the new job was seen asking the owner to drain: the owner may be handing over."""


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
        self.emr = emr = config.emr
        if lease_store is None and config.offsets.store != "s3":
            raise DeployError(
                f"offsets.store = {config.offsets.store!r}: EMR jobs keep their offsets and "
                "the handoff lease on S3, where the deployer reads the lease; set "
                "offsets.store: s3 and offsets.path: s3://bucket/prefix"
            )
        client = emr_client or boto_client("emr-containers", emr.client)
        self.jobs = EmrJobs(client, emr.virtual_cluster_id, emr.app)
        self.state = state_store or state_store_for(emr)
        self.lease = lease_store or lease_store_for(config)
        self.sleep = sleep
        self.clock = clock
        self.now = now
        self.timeout = emr.promote_timeout_seconds
        self.poll = emr.poll_seconds

    # --- the commands -----------------------------------------------------------------------

    def start(self, color: str = "blue") -> dict[str, Any]:
        """The first deployment: submit ``color`` and wait until it owns the lease."""
        check_color(color)
        deployment = self._load()
        active = deployment.state.active
        if active:
            state = self.jobs.state(active.job_id)
            if state not in JOB_DONE:
                raise DeployError(
                    f"{active.color} job {active.job_id} of app {self.emr.app} is "
                    f"{state}; use `streamer deploy emr promote` to replace it"
                )
        request = self._render(color)
        before = self.read_lease()
        if before is not None and before.state != RELEASED:
            log.warning(
                "a lease exists while no job of this app runs; the new job takes it over %s",
                before.describe(),
            )
        job_id = self._submit_pending(deployment, request)
        waited = self.await_owner(job_id, color, before.epoch if before else 0)
        if waited.lease is None:
            self._abandon(deployment, job_id, color)
            raise DeployError(
                f"{color} did not become owner in {self.timeout:.0f}s ({waited.why}); its job "
                f"{job_id} was cancelled. Check the job's driver log"
            )
        if active:
            deployment.state.previous = active
        ref = self._settle(deployment, request)
        return {"action": "start", "active": asdict(ref), "epoch": waited.lease.epoch}

    def promote(self) -> dict[str, Any]:
        """Replace the active job by the other color's, rendered from the current config."""
        deployment = self._load()
        color = other_color(self._active(deployment).color)
        return self._switch(deployment, "promote", self._render(color))

    def rollback(self) -> dict[str, Any]:
        """Switch back to the previous color, with that color's saved request."""
        deployment = self._load()
        active, previous = self._active(deployment), deployment.state.previous
        saved = deployment.state.requests.get(previous.color) if previous else None
        if not previous or not saved or previous.color == active.color:
            raise DeployError(
                f"app {self.emr.app} has no previous deployment to roll back to (state "
                f"{self.state.description}); deploy a fixed build with promote instead"
            )
        request = JobRunRequest(saved).renamed(self.emr.app, self.now())
        return self._switch(deployment, "rollback", request)

    def status(self) -> dict[str, Any]:
        doc, _ = self.state.read()
        app = (doc.get("apps") or {}).get(self.emr.app)
        jobs: dict[str, Any] = {}
        state = AppState.from_json(app or {})
        for role, ref in (
            ("active", state.active),
            ("previous", state.previous),
            ("pending", state.pending),
        ):
            if ref is None:
                continue
            try:
                job = self.jobs.describe(ref.job_id)
                jobs[role] = {"id": ref.job_id, "color": ref.color, "state": job.state}
                jobs[role].update(job.details)
            except DeployError as exc:
                jobs[role] = {"id": ref.job_id, "color": ref.color, "error": str(exc)}
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

    # --- the steps ----------------------------------------------------------------------------

    def _switch(
        self, deployment: Deployment, action: str, request: JobRunRequest
    ) -> dict[str, Any]:
        """Start ``request``'s color, wait until it owns, then cancel the old job: in that order."""
        old, color = self._active(deployment), request.color
        old_state = self.jobs.state(old.job_id)
        if old_state != JOB_RUNNING:
            log.warning(
                'the active job is not running; the new one takes over its lease job="%s" '
                'color="%s" state="%s"',
                old.job_id,
                old.color,
                old_state,
            )
        after = self._epoch()
        job_id = self._submit_pending(deployment, request)
        waited = self.await_owner(job_id, color, after)
        if waited.lease is None:
            self._recover(deployment, color, job_id, waited)
        self.jobs.cancel(old.job_id, old.color)
        deployment.state.previous = old
        ref = self._settle(deployment, request)
        log.info(
            '%s done app="%s" active="%s" job="%s" epoch="%d" cancelled="%s"',
            action,
            self.emr.app,
            color,
            job_id,
            waited.lease.epoch,
            old.job_id,
        )
        return {
            "action": action,
            "active": asdict(ref),
            "previous": asdict(old),
            "epoch": waited.lease.epoch,
        }

    def _recover(self, deployment: Deployment, color: str, job_id: str, waited: Waited) -> NoReturn:
        """The new job did not take over: cancel it, and keep or restart the old color."""
        old = self._active(deployment)
        failed = f"{color} did not become owner in {self.timeout:.0f}s ({waited.why})"
        log.error('%s; rolling back job="%s"', failed, job_id)
        self.jobs.cancel(job_id, color)
        ended = self.await_ended(job_id)
        deployment.state.pending = None
        old_state = self.jobs.state(old.job_id)
        if old_state == JOB_RUNNING and self._keeps_input(old.color, color):
            self._save(deployment)
            raise DeployError(f"{failed}; rolled back, {old.color} job {old.job_id} keeps running")
        lease = self.read_lease()
        asked = waited.requested or asked_by(lease, color)
        because = (
            f"its job is {old_state}, lease {lease.describe() if lease else 'none'}"
            + (f", asked to drain by {color}" if asked else "")
            + f"; {color} job {job_id} is {ended}"
        )
        self._redirect_takeover(to=old.color, away_from=color)
        saved = deployment.state.requests.get(old.color)
        request = (JobRunRequest(saved) if saved else self._render(old.color)).renamed(
            self.emr.app, self.now()
        )
        after = self._epoch()
        restart_id = self._submit_pending(deployment, request)
        restarted = self.await_owner(restart_id, old.color, after)
        if restarted.lease is None:
            self._abandon(deployment, restart_id, old.color)
            raise DeployError(
                f"{failed}; {old.color} job {old.job_id} no longer owned the input "
                f"({because}) and its restart, job {restart_id}, did not become owner either "
                f"({restarted.why}). Nothing may be consuming: run `streamer deploy emr "
                f"status`, then `streamer deploy emr start --color {old.color}`"
            )
        self.jobs.cancel(old.job_id, old.color)
        self._settle(deployment, request)
        raise DeployError(
            f"{failed}; rolled back: {old.color} job {old.job_id} no longer owned the "
            f"input ({because}), so {old.color} was restarted as job {restart_id}, which "
            f"owns it at epoch {restarted.lease.epoch}"
        )

    # --- watching the job runs and the lease --------------------------------------------------

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
                job = self.jobs.describe(job_id)
                state = job.state
                if job.done:
                    return Waited(None, job.why_ended(), requested)
                lease = self.read_lease()
                error = ""
                requested = requested or asked_by(lease, color)
            except DeployError as exc:
                error = str(exc)
                log.warning('waiting for the owner: read failed job="%s" error="%s"', job_id, exc)
            if state == JOB_RUNNING and _owns(lease, color, after_epoch):
                assert lease is not None
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
                state = self.jobs.state(job_id)
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

        def withdraw(lease: Lease | None) -> Lease | None:
            if asked_by(lease, successor) and lease.owner == owner and not lease.handing_over:
                return replace(lease, state=RUNNING, successor=None)
            return None

        try:  # a conflict: the owner's heartbeat wrote (it may have acknowledged); look again
            before, withdrawn = self.lease.update(withdraw)
        except LeaseConflict:
            return False
        if withdrawn is not None and before is not None:
            log.warning("drain request of the cancelled job withdrawn %s", before.describe())
            return True
        return before is not None and before.owner == owner and before.state == RUNNING

    def _redirect_takeover(self, to: str, away_from: str) -> None:
        """A cancelled successor's drain request would block every other taker: hand it to
        ``to`` instead, so the draining owner releases to the job about to be submitted."""

        def redirect(lease: Lease | None) -> Lease | None:
            return replace(lease, successor=to) if asked_by(lease, away_from) else None

        try:
            before, redirected = self.lease.update(redirect)
        except LeaseConflict:
            return
        if redirected is not None and before is not None:
            log.warning('takeover request redirected %s successor="%s"', before.describe(), to)

    # --- the deployment state -----------------------------------------------------------------

    def _load(self) -> Deployment:
        """This app's state, after settling a job left pending by an earlier deploy."""
        deployment = self.state.load(self.emr.app)
        pending = deployment.state.pending
        if pending:
            try:
                state = self.jobs.state(pending.job_id)
            except DeployError:
                state = "unknown"
            if state not in JOB_TERMINAL:
                raise DeployError(
                    f"{pending.color} job {pending.job_id} from an unfinished deploy is "
                    f"{state}; wait for that deploy, or cancel the job (aws emr-containers "
                    f"cancel-job-run --id {pending.job_id} --virtual-cluster-id "
                    f"{self.emr.virtual_cluster_id}) and retry"
                )
            deployment.state.pending = None
        return deployment

    def _save(self, deployment: Deployment) -> None:
        self.state.save(deployment, self.now())

    def _active(self, deployment: Deployment) -> JobRef:
        active = deployment.state.active
        if not active:
            raise DeployError(
                f"nothing is deployed for app {self.emr.app} (state {self.state.description});"
                " run `streamer deploy emr start` first"
            )
        return active

    def _render(self, color: str) -> JobRunRequest:
        template = read_template(self.emr.template)
        body = render_request(self.emr, color, template, now=self.now(), source=self.emr.template)
        return JobRunRequest(body)

    def _submit_pending(self, deployment: Deployment, request: JobRunRequest) -> str:
        """Submit, and record the job as pending, so an interrupted deploy leaves a trace."""
        job_id = self.jobs.submit(request)
        deployment.state.pending = JobRef(
            job_id, request.color, request.name, submitted_at=self.now().isoformat()
        )
        try:
            self._save(deployment)
        except DeployError:
            self.jobs.cancel(job_id, request.color)
            raise
        return job_id

    def _settle(self, deployment: Deployment, request: JobRunRequest) -> JobRef:
        """The pending job owns the lease: it becomes the active one, and its request the
        one its color is resubmitted with."""
        state = deployment.state
        active = state.active = state.pending
        assert active is not None
        state.pending = None
        state.requests[active.color] = request.to_json()
        self._save(deployment)
        return active

    def _abandon(self, deployment: Deployment, job_id: str, color: str) -> None:
        self.jobs.cancel(job_id, color)
        deployment.state.pending = None
        self._save(deployment)


def _owns(lease: Lease | None, color: str, after_epoch: int) -> bool:
    return (
        lease is not None
        and lease.owner == color
        and lease.state == RUNNING
        and lease.epoch > after_epoch
    )
