"""The EMR on EKS job-run calls the deployer makes (boto3 ``emr-containers``), typed."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamer.deploy.emr.requests import JobRunRequest
from streamer.errors import DeployError

log = logging.getLogger(__name__)

JOB_RUNNING = "RUNNING"
JOB_TERMINAL = frozenset({"FAILED", "CANCELLED", "COMPLETED"})
"""Job run states after which the job does nothing more (``CANCEL_PENDING`` is not yet)."""
JOB_DONE = JOB_TERMINAL | {"CANCEL_PENDING"}

_DETAILS = ("stateDetails", "failureReason", "createdAt", "finishedAt")


@dataclass(frozen=True)
class JobRun:
    """What DescribeJobRun says about one job run."""

    id: str
    state: str
    details: Mapping[str, Any]
    """``stateDetails``, ``failureReason``, ``createdAt`` and ``finishedAt``, where given."""

    @classmethod
    def from_response(cls, job: Mapping[str, Any]) -> JobRun:
        details = {key: job[key] for key in _DETAILS if job.get(key) is not None}
        return cls(id=str(job["id"]), state=str(job["state"]), details=details)

    @property
    def done(self) -> bool:
        """Ended, or being cancelled."""
        return self.state in JOB_DONE

    def why_ended(self) -> str:
        reason = self.details.get("failureReason") or self.details.get("stateDetails") or ""
        return f"job {self.id} ended {self.state}" + (f" ({reason})" if reason else "")


def boto_client(service: str, kwargs: Mapping[str, str]) -> Any:
    import boto3

    return boto3.client(service, **dict(kwargs))


class EmrJobs:
    """Submit, describe and cancel the job runs of one virtual cluster; errors are
    :class:`DeployError`."""

    def __init__(self, client: Any, virtual_cluster_id: str, app: str) -> None:
        self._client = client
        self.cluster = virtual_cluster_id
        self.app = app

    def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._client, method)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise DeployError(f"EMR on EKS {what} failed: {exc}") from exc

    def describe(self, job_id: str) -> JobRun:
        response = self._call(
            f"DescribeJobRun {job_id}", "describe_job_run", id=job_id, virtualClusterId=self.cluster
        )
        return JobRun.from_response(response["jobRun"])

    def state(self, job_id: str) -> str:
        return self.describe(job_id).state

    def submit(self, request: JobRunRequest) -> str:
        response = self._call("StartJobRun", "start_job_run", **request.body)
        job_id = str(response["id"])
        log.info(
            'job run submitted app="%s" color="%s" job="%s" name="%s"',
            self.app,
            request.color,
            job_id,
            request.name,
        )
        return job_id

    def cancel(self, job_id: str, color: str) -> None:
        """Cancel unless the job already ended."""
        state = self.state(job_id)
        if state in JOB_DONE:
            log.info('job run already ended job="%s" color="%s" state="%s"', job_id, color, state)
            return
        self._call(
            f"CancelJobRun {job_id}", "cancel_job_run", id=job_id, virtualClusterId=self.cluster
        )
        log.info('job run cancelled job="%s" color="%s" was="%s"', job_id, color, state)
