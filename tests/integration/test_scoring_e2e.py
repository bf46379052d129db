"""The spine end to end: real broker, real SparkSession, real MLflow registry.

Good events must each get exactly one output whose score equals ``model.predict`` offline;
every bad event must land in the dead-letter topic with the right reason; the model must
load at most once per Python worker, as counted by the observed metrics.
"""

from __future__ import annotations

import base64
import json
import threading

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import yaml

from streamer.config import load_config
from streamer.service import Service
from tests.helpers import consume_all, produce
from tests.integration.models import feature_frame

pytestmark = pytest.mark.integration

GOOD_EVENTS = 3000


def bad_records(template: dict) -> list[tuple[bytes | None, str]]:
    """At least ten kinds of bad input, each with the reason it must be dead-lettered for."""

    def enc(obj) -> bytes:
        return json.dumps(obj).encode()

    def without(field):
        return {k: v for k, v in template.items() if k != field}

    return [
        (None, "empty_value"),
        (b"", "empty_value"),
        (b"\xc3\x28 not utf-8", "invalid_utf8"),
        (b'{"amount ($)": 12.5,', "invalid_json"),
        (b"not json at all", "invalid_json"),
        (enc(template).replace(b'"hour": ', b'"hour": NaN, "x": '), "non_finite_number"),
        (b"[1, 2, 3]", "not_an_object"),
        (enc(without("hour")), "missing_field"),
        (enc({**template, "merchant category": None}), "null_field"),
        (enc({**template, "amount ($)": "lots"}), "wrong_type"),
        (enc({**template, "hour": 7.5}), "wrong_type"),
        (enc({**template, "card present?": "yes"}), "wrong_type"),
        (enc({**template, "hour": 2**40}), "out_of_range"),
        (b"x" * 70_000, "too_large"),
        (enc({**template, "merchant category": "casino"}), "model_error"),
    ]


def write_config(tmp_path, **sections) -> str:
    sections.setdefault("offsets", {"path": str(tmp_path / "offsets")})
    sections.setdefault("metrics", {"port": 0})
    path = tmp_path / "streamer.yaml"
    path.write_text(yaml.safe_dump(sections))
    return str(path)


@pytest.mark.parametrize(
    ("backend", "score_in_source"),
    [("jvm", False), ("python", True), ("python", False)],
    ids=["jvm", "python-in-source", "python-udf"],
)
def test_scores_every_good_event_and_dead_letters_every_bad_one(
    spark, kafka_bootstrap, fraud_classifier, tmp_path, backend, score_in_source, service_topics
):
    """Every path: Spark's Kafka source and sink around the pandas UDF (jvm), and the python
    source scoring in its task (the default) or feeding the same UDF."""
    topics = service_topics(partitions=4)
    features = feature_frame(GOOD_EVENTS, seed=7)
    rows = features.to_dict(orient="records")
    events = [
        (f"good-{i}".encode(), json.dumps({"event_id": i, **_plain(row)}).encode())
        for i, row in enumerate(rows)
    ]
    bad = bad_records(_plain(rows[0]))
    events += [(f"bad-{i}".encode(), value) for i, (value, _) in enumerate(bad)]
    produce(kafka_bootstrap, topics["in"], events)

    config = load_config(
        write_config(
            tmp_path,
            kafka={
                "bootstrap_servers": kafka_bootstrap,
                "input_topic": topics["in"],
                "output_topic": topics["out"],
                "dead_letter_topic": topics["dlq"],
                "backend": backend,
                "score_in_source": score_in_source,
            },
            model={
                "uri": fraud_classifier.uri,
                "tracking_uri": fraud_classifier.tracking_uri,
                "threshold": 0.5,
                "score_column": "1",
            },
            parse={"max_record_bytes": 65_536},
            spark={"trigger": "1 second", "max_offsets_per_trigger": 1000},
        ),
        env={},
    )
    service = Service(config, spark=spark)
    stop = threading.Event()
    service.start()
    results: list = []
    runner = threading.Thread(target=lambda: results.append(service.run_until(stop)))
    runner.start()
    try:
        outputs = consume_all(kafka_bootstrap, topics["out"], GOOD_EVENTS, timeout=240)
        dead = consume_all(kafka_bootstrap, topics["dlq"], len(bad), timeout=60)
    finally:
        stop.set()
        runner.join(timeout=120)

    # Every good event: exactly one output, scored exactly like the model does offline.
    by_key = {}
    for record in outputs:
        body = json.loads(record.value)
        assert body["key"] not in by_key, f"duplicate output for {body['key']}"
        by_key[body["key"]] = body
    assert sorted(by_key) == sorted(f"good-{i}" for i in range(GOOD_EVENTS))
    model = mlflow.pyfunc.load_model(fraud_classifier.uri)
    expected = np.asarray(model.predict(features))
    got = np.array(
        [[by_key[f"good-{i}"]["prediction"][c] for c in ("0", "1")] for i in range(GOOD_EVENTS)]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    labels = [by_key[f"good-{i}"]["label"] for i in range(GOOD_EVENTS)]
    assert labels == [bool(p >= 0.5) for p in expected[:, 1]]
    sample = by_key["good-0"]
    assert sample["model"] == {"name": fraud_classifier.name, "version": fraud_classifier.version}
    assert sample["source"]["topic"] == topics["in"]
    assert (
        isinstance(sample["source"]["timestamp"], int)
        and sample["scored_at"] >= sample["source"]["timestamp"]
    )
    assert all(r.key == body["key"].encode() for r in outputs for body in [json.loads(r.value)])

    # Every bad event: one dead letter with the right reason, the raw value, the source.
    letters = {json.loads(r.value)["key"]: json.loads(r.value) for r in dead}
    assert sorted(letters) == sorted(f"bad-{i}" for i in range(len(bad)))
    for i, (value, reason) in enumerate(bad):
        letter = letters[f"bad-{i}"]
        assert letter["reason"] == reason, (i, letter)
        assert letter["error"]
        assert letter["source"]["topic"] == topics["in"]
        assert isinstance(letter["source"]["offset"], int)
        raw = _raw_value(letter)
        assert raw == value, (i, letter["value_encoding"], raw if raw is None else raw[:80])
    assert letters["bad-2"]["value_encoding"] == "base64"
    assert all(letters[f"bad-{i}"]["value_encoding"] == "utf8" for i in range(len(bad)) if i != 2)

    # Counted, not assumed: the run's observed metrics.
    (result,) = results
    assert result.outcome == "stopped"
    totals = result.totals
    assert totals.outputs == GOOD_EVENTS
    assert totals.dead_letters_total == len(bad)
    assert totals.input_rows == len(events)
    assert totals.model_loads >= 1
    assert len(totals.load_pids) == len(set(totals.load_pids)) == totals.model_loads, (
        f"a Python worker loaded the model more than once: {totals.load_pids}"
    )


def _plain(row: dict) -> dict:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def _raw_value(letter: dict) -> bytes | None:
    """The bytes a dead letter says were read: its ``value`` as UTF-8 text, or base64 when
    ``value_encoding`` says so (:func:`streamer.scoring.records.dead_letter_value`)."""
    if letter["value"] is None:
        return None
    if letter["value_encoding"] == "base64":
        return base64.b64decode(letter["value"], validate=True)
    assert letter["value_encoding"] == "utf8", letter["value_encoding"]
    return letter["value"].encode()


def test_regression_model_scalar_predictions(
    spark, kafka_bootstrap, amount_regressor, tmp_path, service_topics
):
    topics = service_topics(partitions=2)
    features = feature_frame(200, seed=3).drop(columns=["merchant category"])
    events = [
        (f"r-{i}".encode(), json.dumps(_plain(row)).encode())
        for i, row in enumerate(features.to_dict(orient="records"))
    ]
    produce(kafka_bootstrap, topics["in"], events)
    config = load_config(
        write_config(
            tmp_path,
            kafka={
                "bootstrap_servers": kafka_bootstrap,
                "input_topic": topics["in"],
                "output_topic": topics["out"],
                "dead_letter_topic": topics["dlq"],
                "backend": "python",
            },
            model={"uri": amount_regressor.uri, "tracking_uri": amount_regressor.tracking_uri},
        ),
        env={},
    )
    with Service(config, spark=spark):
        outputs = consume_all(kafka_bootstrap, topics["out"], len(events), timeout=180)
    got = {json.loads(r.value)["key"]: json.loads(r.value) for r in outputs}
    expected = mlflow.pyfunc.load_model(amount_regressor.uri).predict(features)
    for i, value in enumerate(np.asarray(expected)):
        body = got[f"r-{i}"]
        assert "label" not in body
        assert body["prediction"] == pytest.approx(float(value), rel=1e-12)
    assert (
        pd.Series([b["model"]["version"] for b in got.values()]).eq(amount_regressor.version).all()
    )
