"""``streamer deploy emr``: blue-green deployments of streamer on EMR on EKS.

Each deployment is one long-running EMR on EKS job run that executes
``streamer run --config <emr.config_path> --color <color> --takeover``. The job warms up,
asks the current owner of the handoff lease (see :mod:`streamer.handoff.lease`) to drain,
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

The package, in the order a deploy uses it:

* :mod:`~streamer.deploy.emr.requests`: the StartJobRun request, rendered from the
  job-run template (``emr.template``);
* :mod:`~streamer.deploy.emr.client`: the thin, typed boto3 ``emr-containers`` calls;
* :mod:`~streamer.deploy.emr.state`: the deployment state (``emr.state_path``);
* :mod:`~streamer.deploy.emr.rollout`: the state machine above (:class:`EmrDeployer`);
* :mod:`~streamer.deploy.emr.command`: the CLI subcommand (``add_parser``, ``run``).
"""

from streamer.deploy.emr.command import DEFAULT_CONFIG, add_parser, run
from streamer.deploy.emr.requests import (
    COLORS,
    JobRunRequest,
    read_template,
    render_request,
    request_color,
    spark_submit_parameters,
    template_values,
    with_fresh_name,
)
from streamer.deploy.emr.rollout import EmrDeployer

__all__ = [
    "COLORS",
    "DEFAULT_CONFIG",
    "EmrDeployer",
    "JobRunRequest",
    "add_parser",
    "read_template",
    "render_request",
    "request_color",
    "run",
    "spark_submit_parameters",
    "template_values",
    "with_fresh_name",
]
