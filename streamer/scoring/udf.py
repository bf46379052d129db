"""Executor side: the scoring step (:class:`Scorer`) and its pandas UDF (iterator form).

One pass per chunk of records: parse the raw values against the input schema, score the
good rows with the worker's cached model, and turn every row into either an output record
or a dead letter. The result names each record's destination topic, so one producer writes
both. Besides ``topic``/``key``/``value`` it carries ``reason`` (null for outputs) and
``model_loads``/``worker_pid`` for the observed metrics that count model loads per worker,
and ``latency_ms`` (scoring time minus the record timestamp, for outputs) for the end-to-end
latency histogram; ``shadow_value`` carries the shadow model's record for
``ScoringSettings.shadow_topic``, when there is one, and ``shadow_status`` says how the shadow
did on the row (1 scored, -1 failed, 0 not attempted). The python Kafka source runs the
scorer in its own tasks; otherwise the pandas UDF runs it between source and sink.
"""

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import types as T
from pyspark.sql.functions import pandas_udf

from streamer.scoring import cache, records
from streamer.scoring.model import ModelSpec, normalize_predictions, scores_for_threshold
from streamer.scoring.parse import Reason, RecordParser

log = logging.getLogger(__name__)

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
        T.StructField("shadow_value", T.BinaryType()),
        T.StructField("shadow_status", T.IntegerType()),
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
    shadow_topic: str | None = None
    cache_size: int = 8


def epoch_ms(timestamps: pd.Series) -> np.ndarray:
    """Record timestamps as float epoch milliseconds, NaN where there is none.

    Naive timestamps are UTC (the session's time zone).
    """
    if not pd.api.types.is_datetime64_any_dtype(timestamps):
        timestamps = pd.to_datetime(timestamps, utc=True, cache=False)
    if timestamps.dt.tz is not None:
        timestamps = timestamps.dt.tz_convert(None)
    ms = timestamps.to_numpy(dtype="datetime64[ms]").astype(np.int64).astype(np.float64)
    ms[timestamps.isna().to_numpy()] = np.nan
    return ms


def _ints_or_none(values: np.ndarray) -> list[int | None]:
    return [None if v != v else int(v) for v in values.tolist()]


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


class _Model:
    """One model as the executor sees it: where it was shipped and how to label its output."""

    def __init__(self, spec: ModelSpec) -> None:
        self.ship_name = spec.ship_name
        self.name = spec.name
        self.version = spec.version
        self.env_manager = spec.env_manager
        self.multi_column = spec.output_columns is not None


def _same_rules(mine: T.StructField | None, theirs: T.StructField) -> bool:
    """Whether the main parser's verdict on a field holds for the shadow's as well."""
    return (
        mine is not None and mine.dataType == theirs.dataType and mine.nullable <= theirs.nullable
    )


class Scorer:
    """The scoring step on plain columns: parse, score with the worker's cached model, and
    turn every row into an output record or a dead letter. Picklable (built on the driver,
    run on executors), used by the pandas UDF and by a source that scores as it reads.

    With a ``shadow`` model, the rows that parse are scored by it as well, into
    ``shadow_value`` (output records for ``settings.shadow_topic``). The shadow runs after
    the main model and inside its own ``try``: whatever it does, the main columns are the
    same as without it; a failure only leaves ``shadow_value`` null, with ``shadow_status``
    -1. It is not bisected: a failing shadow costs one ``predict`` per chunk.

    ``hold_model=False`` looks the model up in the worker's LRU for every chunk instead of
    keeping it on the instance, so a scorer per group does not pin every group's model.
    """

    output_type = OUTPUT_TYPE

    def __init__(
        self,
        spec: ModelSpec,
        settings: ScoringSettings,
        *,
        shadow: ModelSpec | None = None,
        hold_model: bool = True,
    ) -> None:
        self.model = _Model(spec)
        self.parser = RecordParser(spec.input_schema, settings.max_record_bytes)
        self.settings = settings
        self.hold_model = hold_model
        self.shadow = _Model(shadow) if shadow is not None else None
        self.shadow_columns: list[str] | None = None
        self.shadow_parser: RecordParser | None = None
        if shadow is not None:
            mine = {f.name: f for f in spec.input_schema.fields}
            theirs = shadow.input_schema.fields
            if all(_same_rules(mine.get(f.name), f) for f in theirs):
                self.shadow_columns = [f.name for f in theirs]
            else:  # the shadow reads fields the main model does not: parse for it too
                self.shadow_parser = RecordParser(shadow.input_schema, settings.max_record_bytes)
        self._model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}

    @property
    def shadow_topic(self) -> str | None:
        return self.settings.shadow_topic if self.shadow is not None else None

    def _main_model(self) -> tuple[Any, bool]:
        if self._model is not None:
            return self._model, False
        model, loaded = cache.get_model(
            self.model.ship_name,
            env_manager=self.model.env_manager,
            capacity=self.settings.cache_size,
        )
        if self.hold_model and self.model.env_manager == "local":
            # A served model (uv/virtualenv) is looked up per chunk instead: the LRU closes
            # the server of a model it evicts, which a held reference would still call.
            self._model = model
        return model, loaded

    def _labels(self, preds: list[Any], multi_column: bool) -> list[bool | None] | None:
        settings = self.settings
        if settings.threshold is None:
            return None
        column = settings.score_column if multi_column else None
        scores = scores_for_threshold(preds, column) if preds else np.empty(0)
        return [None if np.isnan(s) else bool(s >= settings.threshold) for s in scores]

    def score(
        self,
        keys: list[bytes | None],
        values: list[bytes | None],
        topics: list[str],
        partitions: list[int],
        offsets: list[int],
        stamps: np.ndarray,
    ) -> dict[str, Any]:
        """The :data:`OUTPUT_TYPE` columns for one batch; ``stamps`` are float epoch ms."""
        settings = self.settings
        n = len(values)
        now_ms = int(time.time() * 1000)
        stamp_list = _ints_or_none(stamps)
        latency = np.full(n, np.nan)
        out_topic: list[str] = [settings.dead_letter_topic] * n
        out_value: list[bytes | None] = [None] * n
        reasons: list[str | None] = [None] * n
        model_loads = np.zeros(n, dtype=np.int32)
        shadow_value: list[bytes | None] = [None] * n
        shadow_status = np.zeros(n, dtype=np.int32)

        def output_records(model: _Model, where: list[int], preds: list[Any]) -> list[bytes]:
            return records.output_values(
                keys=[keys[p] for p in where],
                predictions=preds,
                labels=self._labels(preds, model.multi_column),
                model_name=model.name,
                model_version=model.version,
                topic=[topics[p] for p in where],
                partition=[partitions[p] for p in where],
                offset=[offsets[p] for p in where],
                timestamp_ms=[stamp_list[p] for p in where],
                scored_at_ms=now_ms,
            )

        parsed = self.parser.parse(values)
        rejects = list(parsed.rejects)
        if len(parsed.frame):
            model, loaded = self._main_model()
            if loaded:
                model_loads[0] = 1
            predictions, failures = predict_isolating(model, parsed.frame)
            good = sorted(predictions)
            where = parsed.positions[good].tolist()
            latency[where] = now_ms - stamps[where]
            scored = output_records(self.model, where, [predictions[i] for i in good])
            for pos, value in zip(where, scored):
                out_topic[pos] = settings.output_topic
                out_value[pos] = value
            rejects.extend(
                (int(parsed.positions[i]), Reason.MODEL_ERROR, msg) for i, msg in failures.items()
            )
        if self.shadow is not None:
            self._score_shadow(self.shadow, values, parsed, output_records, shadow_value)
            for i in parsed.positions.tolist():
                shadow_status[i] = -1 if shadow_value[i] is None else 1
        for pos, reason, message in rejects:
            reasons[pos] = reason.value
            out_value[pos] = records.dead_letter_value(
                reason=reason.value,
                error=message,
                raw=values[pos],
                key=keys[pos],
                source=records.source_fields(
                    topics[pos], int(partitions[pos]), int(offsets[pos]), stamp_list[pos]
                ),
                failed_at_ms=now_ms,
            )
        return {
            "topic": out_topic,
            "key": keys,
            "value": out_value,
            "reason": reasons,
            "model_loads": model_loads,
            "worker_pid": np.full(n, os.getpid(), dtype=np.int32),
            "latency_ms": latency,
            "shadow_value": shadow_value,
            "shadow_status": shadow_status,
        }

    def _score_shadow(
        self,
        shadow: _Model,
        values: list[bytes | None],
        parsed: Any,
        output_records: Callable[[_Model, list[int], list[Any]], list[bytes]],
        out: list[bytes | None],
    ) -> None:
        """Shadow records into ``out`` by row position; failures are logged, never raised.

        The rows the main model's parser accepted are scored; a shadow whose inputs differ
        parses the values itself, and scores the rows its own parser accepts. A row the main
        parser accepted without a shadow record counts as a shadow failure.
        """
        try:
            if self.shadow_parser is not None:
                parsed = self.shadow_parser.parse(values)
                frame = parsed.frame
            else:
                frame = parsed.frame[self.shadow_columns]
            if not len(frame):
                return
            model, _ = cache.get_model(
                shadow.ship_name, env_manager=shadow.env_manager, capacity=self.settings.cache_size
            )
            preds, _ = normalize_predictions(model.predict(frame), len(frame))
            where = parsed.positions.tolist()
            for pos, value in zip(where, output_records(shadow, where, preds)):
                out[pos] = value
        except Exception as exc:
            log.warning(
                'shadow scoring failed model="%s" version="%s" rows="%d" error="%s"',
                shadow.name,
                shadow.version,
                len(values),
                f"{type(exc).__name__}: {exc}"[:500],
            )


def make_scoring_udf(scorer: Scorer) -> Any:
    """The pandas UDF that scores (key, value, topic, partition, offset, timestamp) rows."""

    @pandas_udf(OUTPUT_TYPE)  # type: ignore[call-overload]
    def score(
        batches: Iterator[tuple[pd.Series, pd.Series, pd.Series, pd.Series, pd.Series, pd.Series]],
    ) -> Iterator[pd.DataFrame]:
        for keys, values, topics, partitions, offsets, timestamps in batches:
            yield pd.DataFrame(
                scorer.score(
                    keys.tolist(),
                    values.tolist(),
                    topics.tolist(),
                    partitions.tolist(),
                    offsets.tolist(),
                    epoch_ms(timestamps),
                )
            )

    return score
