"""A secured Kafka, for real: Apache Kafka with a SASL_SSL listener (SCRAM-SHA-512, a CA of
the test's own), reached with settings in the one client dialect (the Java client's names).

``streamer run`` scores over it on both backends, a librdkafka producer with the translated
settings and ``streamer offsets`` use it, the lag probe reads it; a wrong password or an untrusted CA ends start-up with one line;
and the password appears in no output: logs, metrics, the printed config, ``streamer
offsets``, Spark's UI (REST) and Spark's event log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from streamer.kafka.admin import create_topics
from streamer.kafka.apache import ApacheKafkaBroker
from streamer.kafka.broker import free_port
from streamer.kafka.dialect import to_librdkafka
from streamer.kafka.secured import SaslSsl, write_certificates
from tests.helpers import assert_eventually, produce
from tests.integration.models import event_records
from tests.integration.runner import outputs_of, source_positions

pytestmark = pytest.mark.integration

EVENTS = 300


@pytest.fixture(scope="module")
def secured(jvm_paths) -> ApacheKafkaBroker:
    with ApacheKafkaBroker(jars_root=jvm_paths.cache, sasl_ssl=True) as broker:
        yield broker


def _access(broker: ApacheKafkaBroker) -> SaslSsl:
    assert broker.sasl_ssl is not None
    return broker.sasl_ssl


def _topics(broker: ApacheKafkaBroker) -> dict[str, str]:
    name = uuid.uuid4().hex[:10]
    topics = {"in": f"sec-in-{name}", "out": f"sec-out-{name}", "dlq": f"sec-dlq-{name}"}
    create_topics(broker.bootstrap_servers, {}, {topics["in"]: 2, topics["out"]: 1, topics["dlq"]: 1})
    return topics


def _config(tmp_path: Path, access: SaslSsl, topics, model, backend: str, **client) -> Path:
    document = {
        "kafka": {
            "bootstrap_servers": access.bootstrap_servers,
            "input_topic": topics["in"],
            "output_topic": topics["out"],
            "dead_letter_topic": topics["dlq"],
            "backend": backend,
            "client": {**access.client(), **client},
        },
        "model": {"uri": model.uri, "tracking_uri": model.tracking_uri},
        "offsets": {"path": str(tmp_path / "offsets")},
        "metrics": {"port": free_port(), "lag_interval_seconds": 1},
        "spark": {
            "master": "local[2]",
            "conf": {
                "spark.ui.enabled": "true",
                "spark.ui.port": str(free_port()),
                "spark.eventLog.enabled": "true",
                "spark.eventLog.dir": str(tmp_path / "events"),
                "spark.eventLog.compress": "false",  # plain JSON lines, to search
            },
        },
        "logging": {"level": "DEBUG"},
    }
    (tmp_path / "events").mkdir(exist_ok=True)
    path = tmp_path / "streamer.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _streamer(*args: str, **kwargs) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "streamer.cli", *args],
        env={k: v for k, v in os.environ.items() if not k.startswith("STREAMER_")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read().decode()


def _spark_ui(port: int) -> str:
    """Every REST page of Spark's UI that shows settings, options or plans."""
    apps = json.loads(_get(f"http://127.0.0.1:{port}/api/v1/applications"))
    pages = [json.dumps(apps)]
    for app in apps:
        base = f"http://127.0.0.1:{port}/api/v1/applications/{app['id']}"
        for page in ("environment", "sql?details=true&planDescription=true", "jobs", "stages"):
            pages.append(_get(f"{base}/{page}"))
    return "\n".join(pages)


@pytest.mark.timeout(900)
def test_service_scores_over_sasl_ssl_and_shows_no_secret(
    secured, fraud_classifier, tmp_path, kafka_backend, figures
):
    access = _access(secured)
    topics = _topics(secured)
    config = _config(tmp_path, access, topics, fraud_classifier, kafka_backend)
    settings = yaml.safe_load(config.read_text())
    produced = produce(
        access.bootstrap_servers,
        topics["in"],
        event_records(EVENTS, seed=3),
        **to_librdkafka(access.client()),
    )
    assert produced == EVENTS

    process = _streamer("run", "--config", str(config))
    try:
        records = outputs_of(process, secured.bootstrap_servers, topics["out"], EVENTS)
        assert sum(source_positions(records).values()) == EVENTS
        metrics_url = f"http://127.0.0.1:{settings['metrics']['port']}/metrics"

        def lag_is_zero() -> str:
            text = _get(metrics_url)
            lines = [x for x in text.splitlines() if x.startswith("streamer_consumer_lag{")]
            assert lines and all(line.endswith(" 0.0") for line in lines), lines
            return text

        metrics = assert_eventually(lag_is_zero, timeout=120)
        ui = _spark_ui(int(settings["spark"]["conf"]["spark.ui.port"]))
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    assert set(source_positions(records).values()) == {1}, "an event scored twice"
    shown = subprocess.run(
        [sys.executable, "-m", "streamer.cli", "offsets", "--config", str(config), "show"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shown.returncode == 0, shown.stderr
    assert topics["in"] in shown.stdout
    events = "\n".join(p.read_text(errors="replace") for p in (tmp_path / "events").rglob("*") if p.is_file())
    assert "SparkListenerEnvironmentUpdate" in events, "no event log written"
    channels = {
        "stdout": out,
        "stderr (logs)": err,
        "metrics": metrics,
        "Spark UI": ui,
        "event log": events,
        "streamer offsets": shown.stdout + shown.stderr,
    }
    leaks = [name for name, text in channels.items() if access.password in text]
    figures.append(
        f"sasl_ssl backend={kafka_backend}: events={EVENTS} outputs={len(records)} "
        f"channels_checked={len(channels)} leaks={leaks}"
    )
    assert not leaks, f"the password appears in {leaks}"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("wrong", ["password", "ca"])
def test_a_wrong_password_or_an_untrusted_ca_ends_start_up_with_one_line(
    secured, fraud_classifier, tmp_path, wrong
):
    access = _access(secured)
    if wrong == "password":
        client = access.client(password="not-the-password")
        expected = "rejected the credentials"
    else:
        other, _ = write_certificates(tmp_path)
        client = access.client(ca_path=other)
        expected = "TLS with Kafka"
    config = _config(tmp_path, access, _topics(secured), fraud_classifier, "python", **client)
    process = _streamer("run", "--config", str(config))
    _, err = process.communicate(timeout=120)  # start-up checks Kafka before Spark starts
    assert process.returncode != 0
    last = err.strip().splitlines()[-1]
    assert last.startswith("streamer: ") and expected in last, err[-2000:]
    assert "not-the-password" not in err and access.password not in err
