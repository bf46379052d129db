"""docker-compose.yml, checked without a Docker engine: wiring, topics, ports, versions."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from streamer.config import load_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKER_CONF = load_config(ROOT / "conf" / "docker.yaml", env={})

EXPECTED = {
    "kafka",
    "kafka-init",
    "postgres",
    "minio",
    "minio-init",
    "mlflow",
    "trainer",
    "producer",
    "streamer",
    "prometheus",
    "grafana",
}


def test_the_production_layout_is_there():
    assert set(SERVICES) >= EXPECTED


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_depends_on_targets_exist_and_can_meet_their_condition(name):
    for target, spec in (SERVICES[name].get("depends_on") or {}).items():
        assert target in SERVICES, f"{name} depends on unknown {target}"
        condition = spec["condition"]
        if condition == "service_healthy":
            assert "healthcheck" in SERVICES[target], f"{name} waits for {target}'s health"
        elif condition == "service_completed_successfully":
            assert SERVICES[target].get("restart", "no") == "no", f"{target} must run once"
        else:
            assert condition == "service_started", condition


def test_kafka_runs_kraft_single_node_with_a_healthcheck():
    env = SERVICES["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert "healthcheck" in SERVICES["kafka"]


def test_topic_init_creates_exactly_the_configured_topics():
    script = " ".join(SERVICES["kafka-init"]["command"])
    created = set(re.findall(r"([\w.]+):\d+", script.split("do")[0]))
    kafka = DOCKER_CONF.kafka
    assert created == {kafka.input_topic, kafka.output_topic, kafka.dead_letter_topic}


def test_service_wiring_matches_conf_docker_yaml():
    streamer = SERVICES["streamer"]
    assert streamer["command"] == ["run", "--config", "/app/conf/docker.yaml"]
    assert f"{DOCKER_CONF.metrics.port}:{DOCKER_CONF.metrics.port}" in streamer["ports"]
    assert DOCKER_CONF.metrics.host == "0.0.0.0"
    assert streamer["environment"]["MLFLOW_TRACKING_URI"] == DOCKER_CONF.model.tracking_uri
    assert SERVICES["trainer"]["environment"]["MLFLOW_TRACKING_URI"] == (
        DOCKER_CONF.model.tracking_uri
    )
    assert DOCKER_CONF.kafka.bootstrap_servers == "kafka:9092"
    assert DOCKER_CONF.kafka.backend == "jvm"
    producer = SERVICES["producer"]["command"]
    assert producer[producer.index("--topic") + 1] == DOCKER_CONF.kafka.input_topic
    assert (
        producer[producer.index("--bootstrap-servers") + 1] == DOCKER_CONF.kafka.bootstrap_servers
    )
    state = DOCKER_CONF.offsets.path
    assert any(v.endswith(":/state") for v in streamer["volumes"]) and state.startswith("/state")
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == [
        f"streamer:{DOCKER_CONF.metrics.port}"
    ]


def test_trainer_registers_the_model_the_service_serves():
    assert SERVICES["trainer"]["command"] == ["train"]
    assert DOCKER_CONF.model.uri == "models:/fraud-detector@champion"


def test_every_build_context_exists():
    for name, service in SERVICES.items():
        build = service.get("build")
        if build is None:
            continue
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = context / (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        assert context.is_dir(), f"{name}: build context {context} missing"
        assert dockerfile.is_file(), f"{name}: {dockerfile} missing"


def test_mounted_files_exist():
    for name, service in SERVICES.items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="no docker compose binary here",
)
def test_docker_compose_config_passes():
    result = subprocess.run(
        ["docker", "compose", "config", "-q"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
