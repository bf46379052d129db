import subprocess
import sys
import uuid

import pytest

from streamer.config import Config
from streamer.kafka.broker import free_port
from tests.helpers import assert_eventually
from tests.integration.cluster import spark_cluster  # noqa: F401 (a fixture)
from tests.integration.models import register_classifier, register_regressor
from tests.integration.runner import config_for
from tests.integration.s3 import S3Server


@pytest.fixture(scope="session")
def mlflow_root(tmp_path_factory):
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="session")
def tracking_uri(mlflow_root):
    return f"sqlite:///{mlflow_root}/mlflow.db"


@pytest.fixture(scope="session")
def fraud_classifier(tracking_uri, mlflow_root):
    return register_classifier(
        tracking_uri, str(mlflow_root / "artifacts"), f"fraud-{uuid.uuid4().hex[:6]}"
    )


@pytest.fixture(scope="session")
def amount_regressor(tracking_uri, mlflow_root):
    return register_regressor(
        tracking_uri, str(mlflow_root / "artifacts"), f"amount-{uuid.uuid4().hex[:6]}"
    )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A local S3-compatible server (moto's server mode), reached over real HTTP."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = S3Server(f"http://127.0.0.1:{port}")

    def answers():
        assert process.poll() is None, "moto server exited"
        try:
            server.client().list_buckets()
        except Exception as exc:
            raise AssertionError(f"moto not ready: {exc}") from exc

    assert_eventually(answers, timeout=60)
    yield server
    process.terminate()
    process.wait(timeout=10)
    log.close()


@pytest.fixture
def restartable_broker(jvm_paths, tmp_path):
    """An Apache Kafka of the test's own, on a data directory that survives ``stop()``, so
    ``start()`` brings it back on the same port with its topics and offsets (an outage)."""
    from streamer.kafka.apache import ApacheKafkaBroker

    broker = ApacheKafkaBroker(jars_root=jvm_paths.cache, data_dir=tmp_path / "kafka")
    with broker:
        yield broker


@pytest.fixture
def service_topics(new_topic):
    """``service_topics(partitions=2)``: a fresh input topic of ``partitions`` partitions,
    and fresh output and dead-letter topics, as the ``topics`` that ``config_for`` takes."""

    def make(partitions: int = 2) -> dict[str, str]:
        return {"in": new_topic(partitions=partitions), "out": new_topic(), "dlq": new_topic()}

    return make


@pytest.fixture
def service_config(request, tmp_path):
    """``service_config(topics, **sections)``: the service's config in ``tmp_path`` for
    ``topics`` on the session's broker (or ``bootstrap=``), scored by the session's fraud
    classifier (or ``model=``); ``sections`` add or override keys, as in ``config_for``."""

    def make(topics: dict[str, str], *, bootstrap=None, model=None, **sections) -> Config:
        return config_for(
            tmp_path,
            bootstrap=bootstrap or request.getfixturevalue("kafka_bootstrap"),
            topics=topics,
            model=model or request.getfixturevalue("fraud_classifier"),
            **sections,
        )

    return make
