"""Model lifecycle on a real broker, SparkSession and sqlite MLflow registry: the stream
follows an alias move at a batch boundary, refuses a broken version, and scores a shadow
model beside the main one without letting it touch the main output."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass

import mlflow
import pytest
from confluent_kafka import Producer

from streamer.kafka.io import read_to_end, send
from tests.helpers import assert_eventually, consume_all, produce
from tests.integration.models import event_records, register_classifier
from tests.integration.runner import Running

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Delivery:
    """What a :class:`Trickle` delivered: ``sent`` counts acknowledged events only;
    ``errors`` are failed deliveries and anything the producer thread raised; ``undelivered``
    is what was still unacknowledged when the final flush gave up."""

    sent: int
    errors: list
    undelivered: int


class Trickle:
    """Produces classifier events at about ``rate``/s on its own thread until stopped.

    Nothing is asserted on the producer thread (a failure there would only be a pytest
    warning): :meth:`stop` joins it and returns a :class:`Delivery` for the test to check.
    """

    def __init__(self, bootstrap: str, topic: str, rate: float = 300.0) -> None:
        self.bootstrap, self.topic, self.rate = bootstrap, topic, rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._errors: list = []
        self._undelivered = -1

    def __enter__(self) -> Trickle:
        self._thread.start()
        return self

    def _run(self) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})
        try:
            chunk = max(1, int(self.rate / 10))
            round_ = 0
            while not self._stop.wait(0.1):
                records = event_records(chunk, seed=round_, prefix=f"r{round_}")
                for key, value in records:
                    send(producer, self.topic, value, key, on_delivery=self._delivered)
                producer.poll(0)
                round_ += 1
        except Exception as exc:  # reported by stop(), on the test's thread
            self._errors.append(exc)
        finally:
            self._undelivered = producer.flush(30)

    def _delivered(self, error, _message) -> None:
        if error is not None:
            self._errors.append(error)
        else:
            self.sent += 1

    def stop(self) -> Delivery:
        """Stop producing and wait for the final flush; idempotent."""
        self._stop.set()
        self._thread.join(timeout=60)
        if self._thread.is_alive():
            return Delivery(self.sent, [*self._errors, "producer thread still running"], -1)
        return Delivery(self.sent, list(self._errors), self._undelivered)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _bodies(bootstrap: str, topic: str, expected: int) -> list[dict]:
    return [json.loads(r.value) for r in consume_all(bootstrap, topic, expected)]


def _versions_seen(bootstrap: str, topic: str) -> set[str]:
    return {
        json.loads(m.value())["model"]["version"]
        for m in read_to_end(bootstrap, {}, [topic], timeout=120)
    }


def test_alias_move_swaps_at_one_batch_boundary_and_a_broken_version_is_refused(
    spark,
    kafka_bootstrap,
    tracking_uri,
    mlflow_root,
    kafka_backend,
    figures,
    service_topics,
    service_config,
):
    artifacts = str(mlflow_root / "artifacts")
    name = f"swap-{uuid.uuid4().hex[:6]}"
    v1 = register_classifier(tracking_uri, artifacts, name, seed=1)
    v2 = register_classifier(tracking_uri, artifacts, name, alias=None, seed=2)
    v3 = register_classifier(
        tracking_uri, artifacts, name, alias=None, seed=3, extra_column="device id"
    )
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    topics = service_topics(partitions=2)
    config = service_config(
        topics,
        model={
            "uri": v1.uri,
            "tracking_uri": tracking_uri,
            "follow_alias": True,
            "poll_seconds": 1,
        },
        kafka={"backend": kafka_backend},
    )
    running = Running(config, spark)
    service = running.service

    def swaps(outcome: str) -> float:
        sample = service.metrics.registry.get_sample_value(
            "streamer_model_swaps_total", {"outcome": outcome}
        )
        return sample or 0.0

    with Trickle(kafka_bootstrap, topics["in"]) as trickle:
        assert_eventually(
            lambda: _assert_has(_versions_seen(kafka_bootstrap, topics["out"]), v1.version), 120
        )
        client.set_registered_model_alias(name, "champion", v2.version)
        assert_eventually(
            lambda: _assert_has(_versions_seen(kafka_bootstrap, topics["out"]), v2.version), 180
        )
        client.set_registered_model_alias(name, "champion", v3.version)
        assert_eventually(lambda: _assert_equal(swaps("refused"), 1), 120)
        scored_before = service.stats.totals().outputs
        assert_eventually(
            lambda: _assert_more(service.stats.totals().outputs, scored_before + 300), 120
        )
        delivery = trickle.stop()
    assert not delivery.errors, delivery.errors[:3]
    assert delivery.undelivered == 0, f"{delivery.undelivered} events never acknowledged"
    sent = delivery.sent
    assert_eventually(lambda: _assert_equal(service.stats.totals().input_rows, sent), 120)
    result = running.stop()
    assert result.outcome == "stopped", result.error
    assert swaps("swapped") == 1

    bodies = _bodies(kafka_bootstrap, topics["out"], sent)
    sources = Counter((b["source"]["partition"], b["source"]["offset"]) for b in bodies)
    figures.append(
        f"hot swap backend={kafka_backend}: events={sent} lost={sent - len(sources)} "
        f"duplicates={sum(sources.values()) - len(sources)}"
    )
    assert len(sources) == sent, "lost events"
    assert max(sources.values()) == 1, "duplicated events"
    assert sum(1 for _ in consume_all(kafka_bootstrap, topics["dlq"], 0, timeout=5)) == 0

    versions = Counter(b["model"]["version"] for b in bodies)
    assert set(versions) == {v1.version, v2.version}, versions
    by_partition: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for b in bodies:
        by_partition[b["source"]["partition"]][b["model"]["version"]].append(b["source"]["offset"])
    for partition, offsets in by_partition.items():
        if offsets[v1.version] and offsets[v2.version]:
            assert max(offsets[v1.version]) < min(offsets[v2.version]), (
                f"partition {partition}: versions interleave"
            )
    # The last v1 record and the first v2 record are adjacent in every partition: one
    # boundary, nothing skipped between them.
    for offsets in by_partition.values():
        all_offsets = sorted(offsets[v1.version] + offsets[v2.version])
        assert all_offsets == list(range(all_offsets[0], all_offsets[0] + len(all_offsets)))


def _assert_has(seen: set, version: str) -> None:
    assert version in seen, f"version {version} not among {sorted(seen)}"


def _assert_equal(value, expected) -> None:
    assert value == expected, f"{value} != {expected}"


def _assert_more(value, minimum) -> None:
    assert value >= minimum, f"{value} < {minimum}"


SHADOW_EVENTS = 1500


def _plain(row: dict) -> dict:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


@pytest.mark.parametrize(
    ("backend", "score_in_source"),
    [("jvm", False), ("python", True), ("python", False)],
    ids=["jvm", "python-in-source", "python-udf"],
)
def test_shadow_scores_every_event_and_compare_reports_the_known_agreement(
    spark,
    kafka_bootstrap,
    new_topic,
    tracking_uri,
    mlflow_root,
    tmp_path,
    capsys,
    backend,
    score_in_source,
    service_topics,
    service_config,
):
    import mlflow.pyfunc
    import numpy as np

    from streamer import cli
    from tests.integration.models import feature_frame

    artifacts = str(mlflow_root / "artifacts")
    name = f"champ-{uuid.uuid4().hex[:6]}"
    champion = register_classifier(tracking_uri, artifacts, name, seed=1)
    challenger = register_classifier(tracking_uri, artifacts, name, alias=None, seed=5)
    topics = service_topics(partitions=2)
    shadow_topic = new_topic()
    features = feature_frame(SHADOW_EVENTS, seed=11)
    events = [
        (f"e-{i}".encode(), json.dumps(_plain(row)).encode())
        for i, row in enumerate(features.to_dict(orient="records"))
    ]
    produce(kafka_bootstrap, topics["in"], events)
    config = service_config(
        topics,
        model={
            "uri": champion.uri,
            "tracking_uri": tracking_uri,
            "threshold": 0.5,
            "score_column": "1",
        },
        shadow={"model_uri": challenger.uri, "topic": shadow_topic},
        kafka={"backend": backend, "score_in_source": score_in_source},
    )
    running = Running(config, spark)
    assert_eventually(
        lambda: _assert_equal(running.service.stats.totals().input_rows, SHADOW_EVENTS), 180
    )
    result = running.stop()
    assert result.outcome == "stopped", result.error
    assert result.totals.shadow_outputs == SHADOW_EVENTS
    assert result.totals.shadow_failures == 0

    live = _bodies(kafka_bootstrap, topics["out"], SHADOW_EVENTS)
    shadow = _bodies(kafka_bootstrap, shadow_topic, SHADOW_EVENTS)
    source = lambda b: (b["source"]["partition"], b["source"]["offset"])  # noqa: E731
    assert len(live) == len(shadow) == SHADOW_EVENTS
    assert {source(b) for b in live} == {source(b) for b in shadow}
    assert {b["model"]["version"] for b in shadow} == {challenger.version}
    assert {b["key"] for b in shadow} == {b["key"] for b in live}

    # What compare must report, from the two models scored offline on the same events.
    p_live = mlflow.pyfunc.load_model(champion.uri).predict(features)[:, 1]
    p_shadow = mlflow.pyfunc.load_model(challenger.uri).predict(features)[:, 1]
    agreement = float(np.mean((p_live >= 0.5) == (p_shadow >= 0.5)))
    correlation = float(np.corrcoef(p_live, p_shadow)[0, 1])
    assert agreement < 1.0, "the two models should disagree somewhere for this test to bite"

    plot = tmp_path / "diff.png"
    args = ["compare", "--live", topics["out"], "--shadow", shadow_topic]
    args += ["--bootstrap-servers", kafka_bootstrap, "--json", "--plot", str(plot)]
    assert cli.main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["matched"] == SHADOW_EVENTS
    assert report["counts"]["live_only"] == report["counts"]["shadow_only"] == 0
    assert report["kind"] == "classifier"
    assert report["agreement"]["rate"] == pytest.approx(agreement, abs=1e-9)
    assert report["scores"]["correlation"] == pytest.approx(correlation, abs=1e-6)
    assert plot.read_bytes().startswith(b"\x89PNG")


class _FailsOnBigBatches(mlflow.pyfunc.PythonModel):
    """Scores its two-row input example, raises on anything bigger."""

    def predict(self, context, model_input, params=None):
        if len(model_input) > 2:
            raise RuntimeError("shadow model broke")
        return model_input["amount ($)"] * 0.0


def test_a_failing_shadow_never_touches_the_main_output(
    spark, kafka_bootstrap, new_topic, tracking_uri, kafka_backend, service_topics, service_config
):
    from mlflow.models import infer_signature

    from tests.integration.models import feature_frame

    example = feature_frame(2)[["amount ($)"]]
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=_FailsOnBigBatches(),
            signature=infer_signature(example, example["amount ($)"]),
            input_example=example,
        )
    topics = service_topics(partitions=2)
    shadow_topic = new_topic()
    n = 600
    produce(kafka_bootstrap, topics["in"], event_records(n, seed=3))
    config = service_config(
        topics,
        shadow={"model_uri": info.model_uri, "topic": shadow_topic},
        kafka={"backend": kafka_backend},
    )
    running = Running(config, spark)
    assert running.service.shadow is not None
    assert_eventually(lambda: _assert_equal(running.service.stats.totals().input_rows, n), 180)
    result = running.stop()
    assert result.outcome == "stopped", result.error
    assert result.totals.outputs == n
    totals = result.totals
    assert totals.shadow_failures > 0
    assert totals.shadow_outputs + totals.shadow_failures == n
    live = _bodies(kafka_bootstrap, topics["out"], n)
    assert len({(b["source"]["partition"], b["source"]["offset"]) for b in live}) == n
    # Chunks of one or two records are scored; whatever the shadow wrote is counted.
    shadow = consume_all(kafka_bootstrap, shadow_topic, totals.shadow_outputs, timeout=30)
    assert len(shadow) == totals.shadow_outputs
