"""The EMR on EKS StartJobRun request rendered from deploy/emr-eks/job-run.json.tmpl."""

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streamer.config import EmrConfig, load_config
from streamer.deploy.emr import (
    read_template,
    render_request,
    request_color,
    spark_submit_parameters,
    with_fresh_name,
)
from streamer.errors import DeployError

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = read_template(ROOT / "deploy" / "emr-eks" / "job-run.json.tmpl")
NOW = datetime(2026, 3, 1, 12, 30, 45, tzinfo=UTC)

EMR = EmrConfig(
    app="fraud",
    virtual_cluster_id="vc123",
    execution_role_arn="arn:aws:iam::123456789012:role/streamer-job",
    release_label="emr-spark-8.0.0-latest",
    image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/streamer:1.2.3",
    entry_point="local:///opt/streamer/entrypoint.py",
    config_path="/opt/streamer/conf/emr.yaml",
    spark_submit_parameters="--conf spark.executor.instances=3",
    log_uri="s3://logs/streamer/",
    log_group="/emr-on-eks/streamer",
    max_attempts=4,
)


def render(emr=EMR, color="green"):
    return render_request(emr, color, TEMPLATE, now=NOW)


def test_request_names_the_job_and_passes_cluster_role_and_release():
    request = render()
    assert request["name"] == "fraud-green-20260301-123045"
    assert request["virtualClusterId"] == "vc123"
    assert request["executionRoleArn"] == "arn:aws:iam::123456789012:role/streamer-job"
    assert request["releaseLabel"] == "emr-spark-8.0.0-latest"
    assert request["tags"] == {"app": "fraud", "color": "green"}
    assert request["retryPolicyConfiguration"] == {"maxAttempts": 4}


def test_entry_point_runs_streamer_with_the_color_and_takeover():
    driver = render()["jobDriver"]["sparkSubmitJobDriver"]
    assert driver["entryPoint"] == "local:///opt/streamer/entrypoint.py"
    assert driver["entryPointArguments"] == [
        "run",
        "--config",
        "/opt/streamer/conf/emr.yaml",
        "--color",
        "green",
        "--takeover",
    ]
    assert request_color(render(color="blue")) == "blue"


def test_spark_submit_parameters_switch_arrow_on_name_the_image_and_append_the_config():
    params = render()["jobDriver"]["sparkSubmitJobDriver"]["sparkSubmitParameters"]
    tokens = params.split()
    assert "spark.sql.execution.arrow.pyspark.enabled=true" in tokens
    assert "spark.sql.execution.pythonUDF.arrow.enabled=true" in tokens
    assert f"spark.kubernetes.container.image={EMR.image}" in tokens
    assert params.endswith("--conf spark.executor.instances=3")
    assert params == spark_submit_parameters(EMR)
    bare = spark_submit_parameters(dataclasses.replace(EMR, spark_submit_parameters="  "))
    assert bare.count("--conf") == 3 and not bare.endswith(" ")


def test_spark_defaults_carry_the_image_and_the_pod_labels():
    (defaults,) = render()["configurationOverrides"]["applicationConfiguration"]
    assert defaults["classification"] == "spark-defaults"
    props = defaults["properties"]
    assert props["spark.kubernetes.container.image"] == EMR.image
    assert props["spark.kubernetes.driver.label.color"] == "green"
    assert props["spark.kubernetes.executor.label.app"] == "fraud"


def test_monitoring_with_s3_and_cloudwatch_logs():
    monitoring = render()["configurationOverrides"]["monitoringConfiguration"]
    assert monitoring == {
        "persistentAppUI": "ENABLED",
        "s3MonitoringConfiguration": {"logUri": "s3://logs/streamer/"},
        "cloudWatchMonitoringConfiguration": {
            "logGroupName": "/emr-on-eks/streamer",
            "logStreamNamePrefix": "fraud-green",
        },
    }


@pytest.mark.parametrize(
    ("log_uri", "log_group", "blocks"),
    [
        (None, None, set()),
        ("s3://logs/x/", None, {"s3MonitoringConfiguration"}),
        (None, "/g", {"cloudWatchMonitoringConfiguration"}),
    ],
)
def test_monitoring_blocks_only_for_configured_destinations(log_uri, log_group, blocks):
    emr = dataclasses.replace(EMR, log_uri=log_uri, log_group=log_group)
    monitoring = render(emr)["configurationOverrides"]["monitoringConfiguration"]
    assert monitoring["persistentAppUI"] == "ENABLED"
    assert set(monitoring) - {"persistentAppUI"} == blocks


@pytest.mark.parametrize("key", ["virtual_cluster_id", "execution_role_arn", "image"])
def test_a_missing_required_value_names_the_config_key_and_the_fix(key):
    with pytest.raises(DeployError, match=rf"emr\.{key} is empty.*STREAMER_EMR__{key.upper()}"):
        render(dataclasses.replace(EMR, **{key: " "}))


def test_values_are_json_escaped():
    emr = dataclasses.replace(EMR, spark_submit_parameters='--conf a="b\\c"')
    params = render(emr)["jobDriver"]["sparkSubmitJobDriver"]["sparkSubmitParameters"]
    assert params.endswith('--conf a="b\\c"')


def test_template_errors_name_the_problem():
    with pytest.raises(DeployError, match=r"\$\{nope\}, which is not one of"):
        render_request(EMR, "blue", TEMPLATE.replace("${app}", "${nope}"), now=NOW)
    with pytest.raises(DeployError, match="not JSON once filled in"):
        render_request(EMR, "blue", TEMPLATE.replace('"${name}"', "${name}"), now=NOW)
    with pytest.raises(DeployError, match="must pass --color"):
        render_request(EMR, "blue", TEMPLATE.replace(', "--takeover"', ""), now=NOW)
    with pytest.raises(DeployError, match="not one of blue, green"):
        render(color="red")
    with pytest.raises(DeployError, match="cannot read the job-run template"):
        read_template(ROOT / "no-such.tmpl")


def test_a_saved_request_is_resubmitted_under_a_fresh_name_and_left_unchanged():
    saved = render(color="blue")
    later = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC)
    fresh = with_fresh_name(saved, "fraud", "blue", later)
    assert fresh["name"] == "fraud-blue-20260302-080000"
    assert saved["name"] == "fraud-blue-20260301-123045"
    assert {k: v for k, v in fresh.items() if k != "name"} == {
        k: v for k, v in saved.items() if k != "name"
    }


def test_shipped_emr_yaml_loads_and_renders():
    config = load_config(ROOT / "conf" / "emr.yaml", env={})
    assert config.spark.master is None
    assert config.kafka.backend == "jvm"
    assert config.offsets.store == "s3" and config.offsets.path.startswith("s3://")
    assert config.handoff.color is None
    assert config.emr.state_path.startswith("s3://")
    assert (ROOT / config.emr.template).is_file()
    request = render_request(config.emr, "blue", TEMPLATE, now=NOW)
    assert request["jobDriver"]["sparkSubmitJobDriver"]["entryPointArguments"][2] == (
        config.emr.config_path
    )
    json.dumps(request)
