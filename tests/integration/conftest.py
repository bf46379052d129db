import subprocess
import sys
import uuid

import pytest

from streamer.kafka.broker import free_port
from tests.helpers import assert_eventually
from tests.integration.cluster import spark_cluster  # noqa: F401 (a fixture)
from tests.integration.models import register_classifier, register_regressor
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
