"""Session-wide fixtures: one broker, one SparkSession, fresh topics per test.

The broker is, in order: ``$KAFKA_BOOTSTRAP_SERVERS``; a testcontainers Kafka when a Docker
engine answers; tansu when ``STREAMER_TEST_BROKER=tansu``; else an embedded Apache Kafka
(``streamer broker``'s, jars from the user cache). The SparkSession carries Spark's Kafka
connector, so each guarantee test runs on both backends (``kafka_backend``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from streamer.jvm import JvmPaths
from streamer.kafka.admin import cluster_id, create_topics, is_tansu

BACKENDS = ("jvm", "python")


def _docker_engine_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def jvm_paths() -> JvmPaths:
    return JvmPaths.from_env(os.environ)


@pytest.fixture(scope="session")
def broker_kind() -> str:
    """What the session's broker is: external, testcontainers, tansu or kafka (embedded)."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return "external"
    if os.environ.get("STREAMER_TEST_BROKER") == "tansu":
        return "tansu"
    if _docker_engine_answers():
        return "testcontainers"
    return "kafka"


@pytest.fixture(scope="session")
def kafka_bootstrap(broker_kind: str, jvm_paths: JvmPaths) -> Iterator[str]:
    """A real broker, chosen as :func:`broker_kind` says."""
    if broker_kind == "external":
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    if broker_kind == "testcontainers":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as kafka:
            yield kafka.get_bootstrap_server()
        return
    from streamer.kafka.broker import embedded_broker

    with embedded_broker(broker_kind, jars_root=jvm_paths.cache) as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def kafka_is_tansu(kafka_bootstrap: str) -> bool:
    return is_tansu(cluster_id(kafka_bootstrap, {}))


@pytest.fixture(scope="session")
def new_topic(kafka_bootstrap: str):
    """``new_topic(partitions=1)`` creates a uuid-named topic and returns its name."""

    def make(partitions: int = 1, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        create_topics(kafka_bootstrap, {}, {name: partitions})
        return name

    return make


FIGURES: list[str] = []
"""Lines a guarantee test reports (lost, duplicates, gaps), printed at the end of the run."""


@pytest.fixture(scope="session")
def figures() -> list[str]:
    return FIGURES


@pytest.fixture(params=BACKENDS)
def kafka_backend(request) -> str:
    """Each guarantee test runs once per Kafka backend: Spark's own (jvm), then ours."""
    return request.param


@pytest.fixture(scope="session")
def spark(jvm_paths: JvmPaths, kafka_bootstrap: str):
    """Depends on the broker only to stop before it: Spark's cached Kafka producers would
    otherwise log refused connections at exit."""
    import pyspark

    from streamer.jvm import connector_conf
    from streamer.session import build_session

    conf = {"spark.sql.shuffle.partitions": "2", "spark.driver.memory": "2g"}
    conf.update(
        connector_conf("jvm", pyspark.__version__, jvm_paths.spark_home, conf, jvm_paths.cache)
    )
    session = build_session(
        master="local[2]", app_name="streamer-tests", arrow_batch_size=10_000, conf=conf
    )
    yield session
    session.stop()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """How many tests ran on the jvm backend, and against which broker."""
    passed = terminalreporter.stats.get("passed", [])
    jvm = [r for r in passed if "jvm" in r.nodeid and "integration" in r.nodeid]
    kind = os.environ.get("STREAMER_TEST_BROKER") or (
        "external" if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else "kafka"
    )
    broker = {"kafka": "Apache Kafka (embedded)", "tansu": "tansu"}.get(kind, kind)
    for line in FIGURES:
        terminalreporter.write_line(f"streamer figures: {line}")
    terminalreporter.write_line(
        f"streamer: {len(jvm)} tests passed on the jvm backend against {broker}; "
        f"{len(passed)} passed in all"
    )
