"""The ``streamer deploy emr {start,promote,rollback,status}`` command."""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from streamer.config import Config
from streamer.deploy.emr.requests import COLORS
from streamer.deploy.emr.rollout import EmrDeployer
from streamer.errors import DeployError

DEFAULT_CONFIG = "conf/emr.yaml"


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
