"""Executor side: the scoring pandas UDF (iterator form).

One pass per Arrow batch: parse the raw values against the input schema, score the good
rows with the worker's cached model, and turn every row into either an output record or a
dead letter. The result names each record's destination topic, so one sink writes both.
Besides ``topic``/``key``/``value`` it carries ``reason`` (null for outputs) and
``model_loads``/``worker_pid`` for the observed metrics that count model loads per worker,
and ``latency_ms`` (scoring time minus the record timestamp, for outputs) for the end-to-end
latency histogram.
"""

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import types as T
from pyspark.sql.functions import pandas_udf

from streamer.scoring import cache, records
from streamer.scoring.model import ModelSpec, normalize_predictions, scores_for_threshold
from streamer.scoring.parse import Reason, RecordParser

# All nullable: Arrow built from pandas is, and Spark checks the pandas UDF result exactly.
OUTPUT_TYPE = T.StructType(
    [
        T.StructField("topic", T.StringType()),
        T.StructField("key", T.BinaryType()),
        T.StructField("value", T.BinaryType()),
        T.StructField("reason", T.StringType()),
        T.StructField("model_loads", T.IntegerType()),
        T.StructField("worker_pid", T.IntegerType()),
        T.StructField("latency_ms", T.DoubleType()),
    ]
)


@dataclass(frozen=True)
class ScoringSettings:
    """What the executor needs besides the model. Small and picklable."""

    output_topic: str
    dead_letter_topic: str
    max_record_bytes: int
    threshold: float | None = None
    score_column: str | None = None


def _epoch_ms(timestamps: pd.Series) -> list[int | None]:
    ts = pd.to_datetime(timestamps, utc=True)
    ms = ts.dt.tz_convert(None).to_numpy(dtype="datetime64[ms]").astype(np.int64)
    return [None if nat else int(v) for v, nat in zip(ms, ts.isna().to_numpy())]


def predict_isolating(model: Any, frame: pd.DataFrame) -> tuple[dict[int, Any], dict[int, str]]:
    """Predictions by row position; rows the model fails on are isolated by bisection.

    A batch that scores cleanly costs one ``predict``. When it raises, halves are retried
    until the failing rows stand alone, so one poisoned record cannot take its batch down.
    """
    predictions: dict[int, Any] = {}
    failures: dict[int, str] = {}
    pending = [np.arange(len(frame))]
    while pending:
        idx = pending.pop()
        try:
            part = frame.iloc[idx].reset_index(drop=True)
            values, _ = normalize_predictions(model.predict(part), len(idx))
        except Exception as exc:
            if len(idx) == 1:
                failures[int(idx[0])] = f"{type(exc).__name__}: {exc}"[:2000]
            else:
                half = len(idx) // 2
                pending.extend([idx[half:], idx[:half]])
            continue
        predictions.update(zip(idx.tolist(), values))
    return predictions, failures


def make_scoring_udf(spec: ModelSpec, settings: ScoringSettings) -> Any:
    """The pandas UDF that scores (key, value, topic, partition, offset, timestamp) rows."""
    ship_name = spec.ship_name
    model_name = spec.name
    model_version = spec.version
    multi_column = spec.output_columns is not None
    parser = RecordParser(spec.input_schema, settings.max_record_bytes)

    @pandas_udf(OUTPUT_TYPE)  # type: ignore[call-overload]
    def score(
        batches: Iterator[tuple[pd.Series, pd.Series, pd.Series, pd.Series, pd.Series, pd.Series]],
    ) -> Iterator[pd.DataFrame]:
        model = None
        pid = os.getpid()
        threshold = settings.threshold
        for keys, values, topics, partitions, offsets, timestamps in batches:
            n = len(values)
            now_ms = int(time.time() * 1000)
            raw_values = values.tolist()
            raw_keys = keys.tolist()
            stamps = _epoch_ms(timestamps)
            sources = [
                records.source_fields(t, int(p), int(o), ts)
                for t, p, o, ts in zip(
                    topics.tolist(), partitions.tolist(), offsets.tolist(), stamps
                )
            ]
            latency = np.full(n, np.nan)
            out_topic: list[str] = [settings.dead_letter_topic] * n
            out_value: list[bytes | None] = [None] * n
            reasons: list[str | None] = [None] * n
            model_loads = np.zeros(n, dtype=np.int32)

            parsed = parser.parse(raw_values)
            rejects = list(parsed.rejects)
            if len(parsed.frame):
                if model is None:
                    model, loaded = cache.get_model(ship_name)
                    if loaded:
                        model_loads[0] = 1
                predictions, failures = predict_isolating(model, parsed.frame)
                good = sorted(predictions)
                labels: dict[int, bool | None] = {}
                if threshold is not None and good:
                    preds = [predictions[i] for i in good]
                    column = settings.score_column if multi_column else None
                    scores = scores_for_threshold(preds, column)
                    labels = {
                        i: (None if np.isnan(s) else bool(s >= threshold))
                        for i, s in zip(good, scores)
                    }
                for i in good:
                    pos = int(parsed.positions[i])
                    stamp = stamps[pos]
                    if stamp is not None:
                        latency[pos] = now_ms - stamp
                    out_topic[pos] = settings.output_topic
                    out_value[pos] = records.output_value(
                        key=raw_keys[pos],
                        prediction=predictions[i],
                        label=labels.get(i),
                        with_label=threshold is not None,
                        model_name=model_name,
                        model_version=model_version,
                        source=sources[pos],
                        scored_at_ms=now_ms,
                    )
                rejects.extend(
                    (int(parsed.positions[i]), Reason.MODEL_ERROR, msg)
                    for i, msg in failures.items()
                )
            for pos, reason, message in rejects:
                reasons[pos] = reason.value
                out_value[pos] = records.dead_letter_value(
                    reason=reason.value,
                    error=message,
                    raw=raw_values[pos],
                    key=raw_keys[pos],
                    source=sources[pos],
                    failed_at_ms=now_ms,
                )
            yield pd.DataFrame(
                {
                    "topic": out_topic,
                    "key": raw_keys,
                    "value": out_value,
                    "reason": reasons,
                    "model_loads": model_loads,
                    "worker_pid": np.full(n, pid, dtype=np.int32),
                    "latency_ms": latency,
                }
            )

    return score
