"""Session-wide fixtures: one broker, one SparkSession, fresh topics per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from streamer.kafka.admin import cluster_id, create_topics, is_tansu


def _docker_engine_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real broker: $KAFKA_BOOTSTRAP_SERVERS, else testcontainers Kafka, else embedded tansu."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    if _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as kafka:
            yield kafka.get_bootstrap_server()
        return
    from streamer.kafka.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
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


@pytest.fixture(scope="session")
def spark():
    from streamer.session import build_session

    session = build_session(
        master="local[2]",
        app_name="streamer-tests",
        arrow_batch_size=10_000,
        conf={"spark.sql.shuffle.partitions": "2", "spark.driver.memory": "2g"},
    )
    yield session
    session.stop()
