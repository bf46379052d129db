"""The scoring step on one chunk, without Spark: a fake model stands in the worker's cache."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import types as T

from streamer.scoring import cache
from streamer.scoring.chunk import Chunk, epoch_ms
from streamer.scoring.model import ModelSpec
from streamer.scoring.scorer import OUTPUT_TYPE, Scorer, ScoringSettings

SCHEMA = T.StructType([T.StructField("amount", T.DoubleType(), False)])


class _Doubler:
    def predict(self, frame: pd.DataFrame) -> pd.Series:
        if (frame["amount"] < 0).any():
            raise ValueError("negative amount")
        return frame["amount"] * 2


@pytest.fixture
def model(monkeypatch):
    spec = ModelSpec("models:/m@a", "models:/m/1", "m", "1", "/tmp/m-unit-scorer", SCHEMA, None)
    monkeypatch.setitem(cache._models, spec.ship_name, _Doubler())
    return spec


def _chunk(values: list[bytes | None]) -> Chunk:
    n = len(values)
    stamps = np.array([1_000.0] * (n - 1) + [np.nan])
    return Chunk([b"k"] * n, values, ["in"] * n, [0] * n, list(range(n)), stamps)


def test_every_record_leaves_as_an_output_or_a_dead_letter(model):
    scorer = pickle.loads(pickle.dumps(Scorer(model, ScoringSettings("out", "dlq", 100))))
    chunk = _chunk([b'{"amount": 1.5}', b"not json", b'{"amount": -1}', b'{"amount": 2}'])
    columns = scorer.score(chunk)
    assert list(columns) == [f.name for f in OUTPUT_TYPE.fields]
    assert columns["topic"] == ["out", "dlq", "dlq", "out"]
    assert columns["reason"] == [None, "invalid_json", "model_error", None]
    assert columns["key"] is chunk.keys
    first, last = json.loads(columns["value"][0]), json.loads(columns["value"][3])
    assert first["prediction"] == 3.0 and first["source"]["timestamp"] == 1000
    assert last["source"] == {"topic": "in", "partition": 0, "offset": 3, "timestamp": None}
    dead = json.loads(columns["value"][2])
    assert dead["reason"] == "model_error" and dead["value"] == '{"amount": -1}'
    assert np.isnan(columns["latency_ms"][1]) and not np.isnan(columns["latency_ms"][0])
    assert columns["shadow_status"].tolist() == [0, 0, 0, 0]


def test_chunk_from_pandas_reads_timestamps_as_epoch_ms():
    stamps = pd.Series(pd.to_datetime(["1970-01-01T00:00:01.5", None]))
    chunk = Chunk.from_pandas(
        pd.Series([b"k", None]),
        pd.Series([b"{}", b"{}"]),
        pd.Series(["t", "t"]),
        pd.Series([0, 1]),
        pd.Series([5, 6]),
        stamps,
    )
    assert len(chunk) == 2 and chunk.keys == [b"k", None] and chunk.offsets == [5, 6]
    assert chunk.stamp_list() == [1500, None]
    assert epoch_ms(pd.Series(["1970-01-01T00:00:02Z"])).tolist() == [2000.0]
