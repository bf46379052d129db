"""The EMR on EKS StartJobRun request: rendered from the job-run template, checked, typed.

The request is rendered from a JSON template (``emr.template``) by ``string.Template``:
every ``${name}`` is replaced by a value from :func:`template_values`, JSON-escaped, so
string placeholders sit inside quotes (``"${image}"``) and the number ``${max_attempts}``
stands bare. Monitoring blocks whose value is empty (no ``emr.log_uri`` or
``emr.log_group``) are dropped after parsing. :class:`JobRunRequest` carries the result,
which is passed to EMR as it stands: the template may hold any field the API accepts.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from streamer.config import EmrConfig
from streamer.errors import DeployError

COLORS = ("blue", "green")

_REQUIRED = ("virtual_cluster_id", "execution_role_arn", "image")
_ARROW_CONF = (
    ("spark.sql.execution.arrow.pyspark.enabled", "true"),
    ("spark.sql.execution.pythonUDF.arrow.enabled", "true"),
)


def other_color(color: str) -> str:
    return COLORS[1] if color == COLORS[0] else COLORS[0]


def check_color(color: str) -> None:
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
    check_color(color)
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


@dataclass(frozen=True)
class JobRunRequest:
    """StartJobRun arguments (``name``, ``virtualClusterId``, ``jobDriver``, ...), as rendered."""

    body: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.body.get("name"))

    @property
    def color(self) -> str:
        color = request_color(self.body)
        if color is None:
            raise DeployError(f"the job-run request {self.name} passes no --color")
        return color

    def renamed(self, app: str, now: datetime) -> JobRunRequest:
        """The same request under a fresh job name, ready to submit again."""
        return JobRunRequest(with_fresh_name(self.body, app, self.color, now))

    def to_json(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self.body))
