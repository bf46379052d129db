import base64
import json

import numpy as np

from streamer.scoring import records

SOURCE = records.source_fields("transactions", 3, 42, 1_700_000_000_123)


def _output(**overrides):
    args = dict(
        key=b"card-1",
        prediction=0.25,
        label=None,
        with_label=False,
        model_name="fraud-detector",
        model_version="3",
        source=SOURCE,
        scored_at_ms=1_700_000_000_999,
    )
    args.update(overrides)
    return json.loads(records.output_value(**args))


def test_output_record_format():
    assert _output() == {
        "key": "card-1",
        "prediction": 0.25,
        "model": {"name": "fraud-detector", "version": "3"},
        "source": {
            "topic": "transactions",
            "partition": 3,
            "offset": 42,
            "timestamp": 1_700_000_000_123,
        },
        "scored_at": 1_700_000_000_999,
    }


def test_label_only_with_threshold():
    assert "label" not in _output()
    assert _output(with_label=True, label=True)["label"] is True
    assert _output(with_label=True, label=None)["label"] is None


def test_multi_column_prediction_and_missing_key():
    out = _output(key=None, prediction={"0": 0.9, "1": 0.1})
    assert out["key"] is None and out["prediction"] == {"0": 0.9, "1": 0.1}


def test_non_utf8_key_is_base64_with_encoding():
    out = _output(key=b"\xff\x00")
    assert out["key"] == base64.b64encode(b"\xff\x00").decode()
    assert out["key_encoding"] == "base64"


def test_dead_letter_utf8_value():
    dl = json.loads(
        records.dead_letter_value(
            reason="invalid_json",
            error="Expecting value",
            raw=b"{oops",
            key=b"k",
            source=SOURCE,
            failed_at_ms=5,
        )
    )
    assert dl == {
        "reason": "invalid_json",
        "error": "Expecting value",
        "value": "{oops",
        "value_encoding": "utf8",
        "key": "k",
        "source": SOURCE,
        "failed_at": 5,
    }


def test_dead_letter_binary_value_is_lossless():
    raw = bytes(range(256))
    dl = json.loads(
        records.dead_letter_value(
            reason="invalid_utf8", error="e", raw=raw, key=None, source=SOURCE, failed_at_ms=1
        )
    )
    assert dl["value_encoding"] == "base64"
    assert base64.b64decode(dl["value"]) == raw
    assert dl["key"] is None


def test_dead_letter_null_value():
    dl = json.loads(
        records.dead_letter_value(
            reason="empty_value", error="e", raw=None, key=b"k", source=SOURCE, failed_at_ms=1
        )
    )
    assert dl["value"] is None and dl["value_encoding"] == "utf8"


def test_to_json_value_unwraps_numpy_and_nan():
    assert records.to_json_value(np.float32(0.5)) == 0.5
    assert records.to_json_value(np.int64(3)) == 3
    assert records.to_json_value(float("nan")) is None
    assert records.to_json_value({"a": np.float64("inf"), 1: [np.bool_(True)]}) == {
        "a": None,
        "1": [True],
    }


def test_exotic_prediction_types_are_written_as_text():
    from decimal import Decimal

    assert _output(prediction=Decimal("0.5"))["prediction"] == "0.5"


def test_batch_output_values_are_byte_identical_to_single_records():
    """The fast builder writes exactly what output_value writes, record by record."""
    rng = np.random.default_rng(3)
    keys = [b"card-1", None, b"\xff\x00", "clé-é".encode(), b'q"uote\\', b""]
    predictions = [0.25, -0.0, 1e-7, 3, True, None, "fraud", "é\n", {"0": 0.1, "1": 0.9}, [1, 2]]
    topics = ["transactions", "événements", 'we"ird']
    for with_label in (False, True):
        n = 200
        rows = [
            (
                keys[int(rng.integers(len(keys)))],
                predictions[int(rng.integers(len(predictions)))],
                [None, True, False][int(rng.integers(3))],
                topics[int(rng.integers(len(topics)))],
                int(rng.integers(0, 64)),
                int(rng.integers(0, 2**62)),
                None if rng.random() < 0.1 else int(rng.integers(0, 2**42)),
            )
            for _ in range(n)
        ]
        fast = records.output_values(
            keys=[r[0] for r in rows],
            predictions=[r[1] for r in rows],
            labels=[r[2] for r in rows] if with_label else None,
            model_name="fraud-détecteur",
            model_version=None if with_label else "3",
            topic=[r[3] for r in rows],
            partition=[r[4] for r in rows],
            offset=[r[5] for r in rows],
            timestamp_ms=[r[6] for r in rows],
            scored_at_ms=1_700_000_000_999,
        )
        single = [
            records.output_value(
                key=key,
                prediction=prediction,
                label=label,
                with_label=with_label,
                model_name="fraud-détecteur",
                model_version=None if with_label else "3",
                source=records.source_fields(topic, partition, offset, stamp),
                scored_at_ms=1_700_000_000_999,
            )
            for key, prediction, label, topic, partition, offset, stamp in rows
        ]
        assert fast == single
