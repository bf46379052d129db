"""The driver's endpoint scraped while a real stream runs: counters, lag, probes."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamer.kafka.broker import free_port
from tests.helpers import assert_eventually, produce
from tests.integration.models import event_records
from tests.integration.runner import Running

pytestmark = pytest.mark.integration

GOOD, BAD = 400, 12


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _samples(base: str) -> dict[tuple[str, tuple], float]:
    status, text = _get(f"{base}/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples, metric, **labels) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), float("nan"))


def test_endpoint_reports_the_stream(
    spark, kafka_bootstrap, fraud_classifier, kafka_backend, service_topics, service_config
):
    topics = service_topics(partitions=3)
    bad = [(f"bad-{i}".encode(), b"{nope" if i % 2 else b"[1, 2]") for i in range(BAD)]
    port = free_port()
    config = service_config(
        topics,
        spark={"trigger": "500 milliseconds"},
        metrics={"host": "127.0.0.1", "port": port, "lag_interval_seconds": 0.5},
        kafka={"backend": kafka_backend},
    )
    base = f"http://127.0.0.1:{port}"
    running = Running(config, spark)
    try:
        # The input topic is still empty, so no micro-batch can run: the query is up and
        # lag is measured, yet the service is not ready, and the endpoint says why.
        def measuring():
            s = _samples(base)
            lags = {k: v for (n, k), v in s.items() if n == "streamer_consumer_lag"}
            assert len(lags) == 3 and set(lags.values()) == {0.0}, lags
            assert _value(s, "streamer_query_active") == 1

        assert_eventually(measuring, timeout=60)
        status, reason = _get(f"{base}/readyz")
        batches = _value(_samples(base), "streamer_batches_total")  # read after the probe
        assert batches == 0, f"{batches} batches completed on an empty topic"
        assert status == 503, f"ready before any micro-batch completed: {reason!r}"
        assert "first micro-batch" in reason
        assert _get(f"{base}/healthz")[0] == 200

        produce(kafka_bootstrap, topics["in"], [*event_records(GOOD, seed=51), *bad])

        def lagging():
            lags = [v for (n, _), v in _samples(base).items() if n == "streamer_consumer_lag"]
            assert sum(lags) > 0, lags

        assert_eventually(lagging, timeout=60)

        assert_eventually(lambda: _expect(_get(f"{base}/readyz"), 200), timeout=240)
        assert _value(_samples(base), "streamer_batches_total") >= 1, "ready, yet no batch"

        def counted():
            s = _samples(base)
            assert _value(s, "streamer_input_rows_total") == GOOD + BAD
            assert _value(s, "streamer_output_rows_total") == GOOD
            dead = sum(v for (n, _), v in s.items() if n == "streamer_dead_letters_total")
            assert dead == BAD
            assert _value(s, "streamer_dead_letters_total", reason="invalid_json") == BAD / 2
            assert _value(s, "streamer_dead_letters_total", reason="not_an_object") == BAD / 2
            assert _value(s, "streamer_end_to_end_latency_seconds_count") == GOOD
            assert _value(s, "streamer_end_to_end_latency_seconds_bucket", le="+Inf") == GOOD
            lags = {k: v for (n, k), v in s.items() if n == "streamer_consumer_lag"}
            assert len(lags) == 3 and set(lags.values()) == {0.0}, lags
            return s

        s = assert_eventually(counted, timeout=240)
        assert _value(s, "streamer_batches_total") >= 1
        assert _value(s, "streamer_model_loads_total") >= 1
        assert _value(s, "streamer_last_batch_timestamp_seconds") > 0
        assert _value(s, "streamer_query_active") == 1
        assert (
            _value(
                s,
                "streamer_model_info",
                name=fraud_classifier.name,
                version=fraud_classifier.version,
                uri=fraud_classifier.uri,
            )
            == 1
        )
        assert _value(s, "streamer_batch_phase_seconds", phase="addBatch") >= 0
        assert _value(s, "streamer_batch_duration_seconds_count") >= 1
    finally:
        result = running.stop()
    assert result.outcome == "stopped"


def _expect(response: tuple[int, str], status: int) -> None:
    assert response[0] == status, response
