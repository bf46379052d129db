"""``streamer deploy emr`` against moto's EMR on EKS and S3, over HTTP.

moto runs job runs nowhere: they are RUNNING as soon as they are started. A fake job runner
thread stands in for the streamer jobs: for every new running job it takes the handoff lease
on S3 as that job's ``--color`` at the next epoch, as ``streamer run --takeover`` would.
It can ignore a color (a job that never takes over), optionally after asking the owner to
drain, and can make the owner release and exit when a job of an ignored color appears (the
old job honoured a takeover request).
"""

import argparse
import io
import json
import threading
import uuid
from dataclasses import replace
from pathlib import Path

import boto3
import pytest

from streamer.config import Config, EmrConfig, FrozenMap, OffsetsConfig
from streamer.deploy import emr as deploy_emr
from streamer.deploy.emr import EmrDeployer, request_color
from streamer.errors import DeployError
from streamer.handoff.lease import Lease, LeaseConflict, S3LeaseStore

ROOT = Path(__file__).resolve().parents[2]
ROLE = "arn:aws:iam::123456789012:role/streamer-job"


class Events:
    """What happened, in order, across the deployer and the fake jobs."""

    def __init__(self):
        self.items: list[tuple] = []
        self._lock = threading.Lock()

    def add(self, *event):
        with self._lock:
            self.items.append(event)

    def index(self, event):
        return self.items.index(event)

    def kinds(self, kind):
        return [e for e in self.items if e[0] == kind]


class RecordingEmr:
    """The deployer's emr-containers client, noting every submit and, for every cancel, who
    owned the lease at that moment."""

    def __init__(self, client, lease: S3LeaseStore, events: Events):
        self._client, self._lease, self._events = client, lease, events

    def __getattr__(self, name):
        return getattr(self._client, name)

    def start_job_run(self, **request):
        response = self._client.start_job_run(**request)
        self._events.add("submit", request_color(request), response["id"])
        return response

    def cancel_job_run(self, **kwargs):
        lease, _ = self._lease.read()
        owner = (lease.owner, lease.epoch, lease.state) if lease else (None, None, None)
        self._events.add("cancel", kwargs["id"], *owner)
        return self._client.cancel_job_run(**kwargs)


class FakeJobs(threading.Thread):
    def __init__(self, client, cluster: str, lease: S3LeaseStore, events: Events):
        super().__init__(name="fake-emr-jobs", daemon=True)
        self.client, self.cluster, self.lease, self.events = client, cluster, lease, events
        self.ignore: set[str] = set()
        self.owner_exits_on_takeover = False
        self.ignored_asks_to_drain = False
        self.owner_acknowledges = True
        self.errors: list[BaseException] = []
        self._seen: set[str] = set()
        self._halt = threading.Event()

    def run(self):
        while not self._halt.wait(0.03):
            try:
                runs = self.client.list_job_runs(virtualClusterId=self.cluster, states=["RUNNING"])
                for job in runs["jobRuns"]:
                    if job["id"] not in self._seen:
                        self._seen.add(job["id"])
                        self._on_running(job)
            except BaseException as exc:
                self.errors.append(exc)
                return

    def _on_running(self, job):
        color = request_color(job)
        if color in self.ignore:
            self.events.add("ignored", color, job["id"])
            if self.ignored_asks_to_drain:
                current, token = self.lease.read()
                request = replace(current, state="draining", successor=color)
                self.lease.write(request, token)
                self.events.add("asked", color)
                if self.owner_acknowledges:
                    current, token = self.lease.read()
                    self.lease.write(replace(current, handing_over=True), token)
                    self.events.add("acknowledged", current.owner)
            if self.owner_exits_on_takeover:
                self._owner_exits()
            return
        while True:
            current, token = self.lease.read()
            if current and current.state == "draining" and current.successor != color:
                self.events.add("refused", color, job["id"])  # as LeaseHolder.acquire does
                return
            mine = Lease(
                owner=color,
                epoch=(current.epoch if current else 0) + 1,
                state="running",
                instance=job["id"],
            )
            try:
                self.lease.write(mine, token)
            except LeaseConflict:
                continue
            self.events.add("owner", color, mine.epoch, job["id"])
            return

    def _owner_exits(self):
        current, token = self.lease.read()
        self.lease.write(replace(current, state="released"), token)
        self.client.cancel_job_run(id=current.instance, virtualClusterId=self.cluster)
        self.events.add("exited", current.owner, current.instance)

    def stop(self):
        self._halt.set()
        self.join(timeout=10)


@pytest.fixture
def aws(s3_server):
    """A fresh virtual cluster and bucket on the shared moto server."""
    kwargs = s3_server.client_kwargs()
    emr = boto3.client("emr-containers", **kwargs)
    s3 = boto3.client("s3", **kwargs)
    suffix = uuid.uuid4().hex[:8]
    cluster = emr.create_virtual_cluster(
        name=f"streamer-{suffix}",
        containerProvider={
            "type": "EKS",
            "id": "eks-1",
            "info": {"eksInfo": {"namespace": suffix}},
        },
    )["id"]
    bucket = f"streamer-{suffix}"
    s3.create_bucket(Bucket=bucket)
    return argparse.Namespace(kwargs=kwargs, emr=emr, s3=s3, cluster=cluster, bucket=bucket)


@pytest.fixture
def lease(aws):
    return S3LeaseStore(f"s3://{aws.bucket}/streamer/offsets", aws.kwargs)


@pytest.fixture
def events():
    return Events()


@pytest.fixture
def jobs(aws, lease, events):
    runner = FakeJobs(aws.emr, aws.cluster, lease, events)
    runner.start()
    yield runner
    runner.stop()
    assert not runner.errors, runner.errors


# moto's emr-containers accepts only emr-X.Y.0 labels, not the emr-spark-8.0.0 (Spark 4)
# label the real config uses; the label is passed through as data either way.
RELEASE = "emr-8.0.0-latest"


def make_config(aws, tmp_path, *, state="file", timeout=10.0, image="repo/streamer:v1"):
    state_path = (
        f"s3://{aws.bucket}/streamer/deployments.json"
        if state == "s3"
        else str(tmp_path / "state" / "deployments.json")
    )
    return Config(
        offsets=OffsetsConfig(
            store="s3",
            path=f"s3://{aws.bucket}/streamer/offsets",
            s3_client=FrozenMap(aws.kwargs),
        ),
        emr=EmrConfig(
            app="fraud",
            release_label=RELEASE,
            virtual_cluster_id=aws.cluster,
            execution_role_arn=ROLE,
            image=image,
            spark_submit_parameters="--conf spark.executor.instances=2",
            log_uri=f"s3://{aws.bucket}/streamer/emr-logs/",
            log_group="/emr-on-eks/streamer",
            state_path=state_path,
            template=str(ROOT / "deploy" / "emr-eks" / "job-run.json.tmpl"),
            promote_timeout_seconds=timeout,
            poll_seconds=0.05,
            max_attempts=3,
            client=FrozenMap(aws.kwargs),
        ),
    )


def make_deployer(config, aws, lease, events):
    return EmrDeployer(config, emr_client=RecordingEmr(aws.emr, lease, events))


def job(aws, job_id):
    return aws.emr.describe_job_run(id=job_id, virtualClusterId=aws.cluster)["jobRun"]


def read_state(aws, config):
    if config.emr.state_path.startswith("s3://"):
        key = config.emr.state_path.split("/", 3)[3]
        return json.loads(aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read())
    return json.loads(Path(config.emr.state_path).read_text())


def cli(config, deployer, *argv):
    parser = argparse.ArgumentParser(prog="streamer")
    deploy_emr.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["deploy", "emr", *argv])
    assert args.command == "deploy" and args.target == "emr"
    out = io.StringIO()
    assert deploy_emr.run(args, config, out, deployer=deployer) == 0
    return out.getvalue()


def test_start_submits_the_rendered_request_and_waits_for_the_lease(
    aws, lease, events, jobs, tmp_path
):
    config = make_config(aws, tmp_path)
    deployer = make_deployer(config, aws, lease, events)
    line = cli(config, deployer, "start", "--config", "conf/emr.yaml")
    (submitted,) = events.kinds("submit")
    blue = submitted[2]
    assert line.strip() == f"start app=fraud color=blue job={blue} epoch=1"

    received = job(aws, blue)
    assert received["state"] == "RUNNING"
    assert received["name"].startswith("fraud-blue-")
    assert received["executionRoleArn"] == ROLE
    assert received["releaseLabel"] == RELEASE
    assert received["tags"] == {"app": "fraud", "color": "blue"}
    driver = received["jobDriver"]["sparkSubmitJobDriver"]
    assert driver["entryPoint"] == "local:///opt/streamer/entrypoint.py"
    assert driver["entryPointArguments"] == [
        "run",
        "--config",
        "/opt/streamer/conf/emr.yaml",
        "--color",
        "blue",
        "--takeover",
    ]
    params = driver["sparkSubmitParameters"].split()
    assert "spark.sql.execution.arrow.pyspark.enabled=true" in params
    assert "spark.sql.execution.pythonUDF.arrow.enabled=true" in params
    assert "spark.kubernetes.container.image=repo/streamer:v1" in params
    assert params[-2:] == ["--conf", "spark.executor.instances=2"]
    overrides = received["configurationOverrides"]
    assert overrides["monitoringConfiguration"] == {
        "persistentAppUI": "ENABLED",
        "s3MonitoringConfiguration": {"logUri": f"s3://{aws.bucket}/streamer/emr-logs/"},
        "cloudWatchMonitoringConfiguration": {
            "logGroupName": "/emr-on-eks/streamer",
            "logStreamNamePrefix": "fraud-blue",
        },
    }
    (defaults,) = overrides["applicationConfiguration"]
    assert defaults["properties"]["spark.kubernetes.container.image"] == "repo/streamer:v1"

    current, _ = lease.read()
    assert (current.owner, current.epoch, current.state) == ("blue", 1, "running")
    app = read_state(aws, config)["apps"]["fraud"]
    assert app["active"]["job_id"] == blue and app["active"]["color"] == "blue"
    assert app["previous"] is None and app["pending"] is None
    saved = app["requests"]["blue"]
    assert saved["retryPolicyConfiguration"] == {"maxAttempts": 3}
    assert saved["jobDriver"] == received["jobDriver"]

    with pytest.raises(DeployError, match=f"blue job {blue} of app fraud is RUNNING.*promote"):
        deployer.start()
    assert len(events.kinds("submit")) == 1


@pytest.mark.parametrize("state", ["file", "s3"])
def test_promote_cancels_the_old_job_only_after_the_new_one_owns_the_lease(
    aws, lease, events, jobs, tmp_path, state
):
    config = make_config(aws, tmp_path, state=state)
    deployer = make_deployer(config, aws, lease, events)
    blue = deployer.start()["active"]["job_id"]
    line = cli(config, deployer, "promote")
    green = events.kinds("submit")[-1][2]
    assert line.strip() == f"promote app=fraud color=green job={green} epoch=2 cancelled={blue}"

    assert events.items == [
        ("submit", "blue", blue),
        ("owner", "blue", 1, blue),
        ("submit", "green", green),
        ("owner", "green", 2, green),
        ("cancel", blue, "green", 2, "running"),
    ]
    assert job(aws, blue)["state"] == "CANCELLED"
    assert job(aws, green)["state"] == "RUNNING"
    app = read_state(aws, config)["apps"]["fraud"]
    assert (app["active"]["job_id"], app["active"]["color"]) == (green, "green")
    assert (app["previous"]["job_id"], app["previous"]["color"]) == (blue, "blue")
    assert set(app["requests"]) == {"blue", "green"}
    assert app["pending"] is None


def test_promote_timeout_cancels_the_new_job_and_the_old_keeps_running(
    aws, lease, events, jobs, tmp_path
):
    config = make_config(aws, tmp_path, timeout=1.0)
    deployer = make_deployer(config, aws, lease, events)
    blue = deployer.start()["active"]["job_id"]
    before = read_state(aws, config)["apps"]["fraud"]
    jobs.ignore.add("green")

    with pytest.raises(
        DeployError, match=f"green did not become owner in 1s.*rolled back, blue job {blue} keeps"
    ):
        deployer.promote()
    green = events.kinds("submit")[-1][2]
    assert events.kinds("cancel") == [("cancel", green, "blue", 1, "running")]
    assert job(aws, green)["state"] == "CANCELLED"
    assert job(aws, blue)["state"] == "RUNNING"
    current, _ = lease.read()
    assert (current.owner, current.epoch, current.state) == ("blue", 1, "running")
    after = read_state(aws, config)["apps"]["fraud"]
    for key in ("active", "previous", "pending", "requests"):
        assert after[key] == before[key]


def test_promote_timeout_restarts_the_old_color_when_it_had_drained(
    aws, lease, events, jobs, tmp_path
):
    config = make_config(aws, tmp_path, timeout=1.0)
    deployer = make_deployer(config, aws, lease, events)
    blue = deployer.start()["active"]["job_id"]
    saved = read_state(aws, config)["apps"]["fraud"]["requests"]["blue"]
    jobs.ignore.add("green")
    jobs.owner_exits_on_takeover = True

    with pytest.raises(
        DeployError,
        match=f"green did not become owner.*blue job {blue} no longer owned.*blue was restarted",
    ) as err:
        deployer.promote()
    submits = events.kinds("submit")
    assert [s[1] for s in submits] == ["blue", "green", "blue"]
    green, restarted = submits[1][2], submits[2][2]
    assert f"as job {restarted}, which owns it at epoch 2" in str(err.value)
    assert events.index(("exited", "blue", blue)) < events.index(("submit", "blue", restarted))
    assert job(aws, green)["state"] == "CANCELLED"
    assert job(aws, restarted)["state"] == "RUNNING"
    current, _ = lease.read()
    assert (current.owner, current.epoch, current.instance) == ("blue", 2, restarted)
    app = read_state(aws, config)["apps"]["fraud"]
    assert (app["active"]["job_id"], app["active"]["color"]) == (restarted, "blue")
    assert app["previous"] is None and app["pending"] is None
    resubmitted = job(aws, restarted)
    assert resubmitted["jobDriver"] == saved["jobDriver"]
    assert resubmitted["name"].startswith("fraud-blue-")


def test_promote_timeout_after_a_drain_request_hands_the_request_to_a_restarted_old_color(
    aws, lease, events, jobs, tmp_path
):
    config = make_config(aws, tmp_path, timeout=1.0)
    deployer = make_deployer(config, aws, lease, events)
    blue = deployer.start()["active"]["job_id"]
    jobs.ignore.add("green")
    jobs.ignored_asks_to_drain = True

    with pytest.raises(
        DeployError, match=f"blue job {blue} no longer owned.*asked to drain by green.*restarted"
    ):
        deployer.promote()
    green, restarted = (s[2] for s in events.kinds("submit")[1:])
    assert events.items[2:] == [
        ("submit", "green", green),
        ("ignored", "green", green),
        ("asked", "green"),
        ("acknowledged", "blue"),
        ("cancel", green, "blue", 1, "draining"),
        ("submit", "blue", restarted),
        ("owner", "blue", 2, restarted),
        ("cancel", blue, "blue", 2, "running"),
    ]
    assert [job(aws, j)["state"] for j in (blue, green, restarted)] == [
        "CANCELLED",
        "CANCELLED",
        "RUNNING",
    ]
    app = read_state(aws, config)["apps"]["fraud"]
    assert app["active"]["job_id"] == restarted and app["pending"] is None


def test_promote_timeout_withdraws_an_unacknowledged_drain_request_and_keeps_the_old_job(
    aws, lease, events, jobs, tmp_path
):
    config = make_config(aws, tmp_path, timeout=1.0)
    deployer = make_deployer(config, aws, lease, events)
    blue = deployer.start()["active"]["job_id"]
    jobs.ignore.add("green")
    jobs.ignored_asks_to_drain = True
    jobs.owner_acknowledges = False  # blue's heartbeat has not seen the request yet

    with pytest.raises(DeployError, match=f"rolled back, blue job {blue} keeps running"):
        deployer.promote()
    assert [s[1] for s in events.kinds("submit")] == ["blue", "green"]
    assert job(aws, blue)["state"] == "RUNNING"
    current, _ = lease.read()
    assert (current.owner, current.state, current.successor) == ("blue", "running", None)


def test_rollback_returns_to_the_previous_color_with_its_saved_request(
    aws, lease, events, jobs, tmp_path
):
    v1 = make_config(aws, tmp_path, image="repo/streamer:v1")
    v2 = make_config(aws, tmp_path, image="repo/streamer:v2")
    with pytest.raises(DeployError, match=r"nothing is deployed for app fraud.*start"):
        make_deployer(v1, aws, lease, events).rollback()
    blue = make_deployer(v1, aws, lease, events).start()["active"]["job_id"]
    with pytest.raises(DeployError, match="no previous deployment to roll back to"):
        make_deployer(v1, aws, lease, events).rollback()
    green = make_deployer(v2, aws, lease, events).promote()["active"]["job_id"]
    assert (
        "streamer:v2"
        in job(aws, green)["jobDriver"]["sparkSubmitJobDriver"]["sparkSubmitParameters"]
    )

    line = cli(v2, make_deployer(v2, aws, lease, events), "rollback")
    back = events.kinds("submit")[-1][2]
    assert line.strip() == f"rollback app=fraud color=blue job={back} epoch=3 cancelled={green}"
    assert events.index(("owner", "blue", 3, back)) < events.index(
        ("cancel", green, "blue", 3, "running")
    )
    received = job(aws, back)
    assert received["state"] == "RUNNING"
    assert received["jobDriver"] == job(aws, blue)["jobDriver"]
    assert (
        "spark.kubernetes.container.image=repo/streamer:v1"
        in (received["jobDriver"]["sparkSubmitJobDriver"]["sparkSubmitParameters"])
    )
    assert job(aws, green)["state"] == "CANCELLED"
    app = read_state(aws, v2)["apps"]["fraud"]
    assert (app["active"]["job_id"], app["active"]["color"]) == (back, "blue")
    assert (app["previous"]["job_id"], app["previous"]["color"]) == (green, "green")


def test_status_prints_state_job_states_and_lease(aws, lease, events, jobs, tmp_path):
    config = make_config(aws, tmp_path, state="s3")
    deployer = make_deployer(config, aws, lease, events)
    empty = json.loads(cli(config, deployer, "status"))
    assert empty["state"] is None and empty["jobs"] == {} and empty["lease"] is None
    blue = deployer.start()["active"]["job_id"]
    green = deployer.promote()["active"]["job_id"]

    status = json.loads(cli(config, deployer, "status", "--config", "conf/emr.yaml"))
    assert status["app"] == "fraud"
    assert status["state_path"] == f"s3://{aws.bucket}/streamer/deployments.json"
    assert status["state"] == read_state(aws, config)["apps"]["fraud"]
    assert status["jobs"]["active"]["id"] == green
    assert status["jobs"]["active"]["state"] == "RUNNING"
    assert (status["jobs"]["previous"]["id"], status["jobs"]["previous"]["state"]) == (
        blue,
        "CANCELLED",
    )
    assert status["lease_store"] == f"s3://{aws.bucket}/streamer/offsets/lease.json"
    assert status["lease"]["owner"] == "green" and status["lease"]["epoch"] == 2


def test_a_file_offsets_store_is_refused(aws, tmp_path):
    config = make_config(aws, tmp_path)
    config = replace(config, offsets=OffsetsConfig(store="file", path=str(tmp_path)))
    with pytest.raises(DeployError, match=r"offsets\.store = 'file'.*set offsets\.store: s3"):
        EmrDeployer(config)


@pytest.mark.parametrize("state", ["file", "s3"])
def test_state_writes_are_conditional_on_the_version_read(aws, tmp_path, state):
    config = make_config(aws, tmp_path, state=state)
    store = EmrDeployer(config, emr_client=aws.emr).state
    assert store.read() == ({}, None)
    first = store.write({"format": 1, "apps": {}}, None)
    with pytest.raises(DeployError, match="changed during this deploy"):
        store.write({"format": 1, "apps": {"x": {}}}, None)
    second = store.write({"format": 1, "apps": {"y": {}}}, first)
    with pytest.raises(DeployError, match="changed during this deploy"):
        store.write({"format": 1, "apps": {}}, first)
    assert store.read() == ({"format": 1, "apps": {"y": {}}}, second)
    if state == "file":
        assert [p.name for p in (tmp_path / "state").iterdir()] == ["deployments.json"]
