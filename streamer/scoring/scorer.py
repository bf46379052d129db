"""Executor side: the scoring step (:class:`Scorer`), one :class:`.chunk.Chunk` at a time.

One pass per chunk of records: parse the raw values against the input schema, score the
good rows with the worker's cached model, and turn every row into either an output record
or a dead letter. The result names each record's destination topic, so one producer writes
both. Besides ``topic``/``key``/``value`` it carries ``reason`` (null for outputs) and
``model_loads``/``worker_pid`` for the observed metrics that count model loads per worker,
and ``latency_ms`` (scoring time minus the record timestamp, for outputs) for the end-to-end
latency histogram; ``shadow_value`` carries the shadow model's record for
``ScoringSettings.shadow_topic``, when there is one, and ``shadow_status`` says how the shadow
did on the row (1 scored, -1 failed, 0 not attempted). The python Kafka source runs the
scorer in its own tasks; otherwise a pandas UDF (:mod:`.udf`) runs it between source and sink.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from pyspark.sql import types as T

from streamer.scoring import cache, records
from streamer.scoring.chunk import Chunk
from streamer.scoring.parse import ParseResult, RecordParser
from streamer.scoring.predictions import (
    normalize_predictions,
    predict_isolating,
    scores_for_threshold,
)
from streamer.scoring.records import Reason

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


class ShippedModel(Protocol):
    """What the scorer reads of a model: a :class:`.model.ModelSpec`."""

    @property
    def ship_name(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str | None: ...
    @property
    def env_manager(self) -> str: ...
    @property
    def input_schema(self) -> T.StructType: ...
    @property
    def output_columns(self) -> tuple[str, ...] | None: ...


class _Model:
    """One model as the executor sees it: where it was shipped and how to label its output."""

    def __init__(self, spec: ShippedModel) -> None:
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


def output_columns(
    chunk: Chunk,
    topic: list[str],
    value: list[bytes | None],
    reason: list[str | None],
    *,
    model_loads: np.ndarray | None = None,
    latency_ms: np.ndarray | None = None,
    shadow_value: list[bytes | None] | None = None,
    shadow_status: np.ndarray | None = None,
) -> dict[str, Any]:
    """The :data:`OUTPUT_TYPE` columns of one chunk; left out: no load, latency or shadow."""
    n = len(chunk)
    return {
        "topic": topic,
        "key": chunk.keys,
        "value": value,
        "reason": reason,
        "model_loads": np.zeros(n, dtype=np.int32) if model_loads is None else model_loads,
        "worker_pid": np.full(n, os.getpid(), dtype=np.int32),
        "latency_ms": np.full(n, np.nan) if latency_ms is None else latency_ms,
        "shadow_value": [None] * n if shadow_value is None else shadow_value,
        "shadow_status": np.zeros(n, dtype=np.int32) if shadow_status is None else shadow_status,
    }


class Scorer:
    """The scoring step on a :class:`.chunk.Chunk`: parse, score with the worker's cached
    model, and turn every row into an output record or a dead letter. Picklable (built on
    the driver, run on executors), used by the pandas UDF and by a source that scores as it
    reads.

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
        spec: ShippedModel,
        settings: ScoringSettings,
        *,
        shadow: ShippedModel | None = None,
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

    def _outputs(
        self,
        model: _Model,
        chunk: Chunk,
        stamps: list[int | None],
        where: list[int],
        preds: list[Any],
        now_ms: int,
    ) -> list[bytes]:
        """Output records of ``model``'s ``preds`` for the rows at positions ``where``."""
        return records.output_values(
            keys=[chunk.keys[p] for p in where],
            predictions=preds,
            labels=self._labels(preds, model.multi_column),
            model_name=model.name,
            model_version=model.version,
            topic=[chunk.topics[p] for p in where],
            partition=[chunk.partitions[p] for p in where],
            offset=[chunk.offsets[p] for p in where],
            timestamp_ms=[stamps[p] for p in where],
            scored_at_ms=now_ms,
        )

    def score(self, chunk: Chunk) -> dict[str, Any]:
        """The :data:`OUTPUT_TYPE` columns for one chunk."""
        settings = self.settings
        n = len(chunk)
        now_ms = int(time.time() * 1000)
        stamps = chunk.stamp_list()
        latency = np.full(n, np.nan)
        out_topic: list[str] = [settings.dead_letter_topic] * n
        out_value: list[bytes | None] = [None] * n
        reasons: list[str | None] = [None] * n
        model_loads = np.zeros(n, dtype=np.int32)
        shadow_value: list[bytes | None] = [None] * n
        shadow_status = np.zeros(n, dtype=np.int32)

        parsed = self.parser.parse(chunk.values)
        rejects = list(parsed.rejects)
        if len(parsed.frame):
            model, loaded = self._main_model()
            if loaded:
                model_loads[0] = 1
            predictions, failures = predict_isolating(model, parsed.frame)
            good = sorted(predictions)
            where = parsed.positions[good].tolist()
            latency[where] = now_ms - chunk.stamps[where]
            preds = [predictions[i] for i in good]
            for pos, value in zip(
                where, self._outputs(self.model, chunk, stamps, where, preds, now_ms)
            ):
                out_topic[pos] = settings.output_topic
                out_value[pos] = value
            rejects.extend(
                (int(parsed.positions[i]), Reason.MODEL_ERROR, msg) for i, msg in failures.items()
            )
        if self.shadow is not None:
            self._score_shadow(self.shadow, chunk, stamps, parsed, now_ms, shadow_value)
            for i in parsed.positions.tolist():
                shadow_status[i] = -1 if shadow_value[i] is None else 1
        for pos, reason, message in rejects:
            reasons[pos] = reason.value
            out_value[pos] = chunk.dead_letter(pos, reason.value, message, stamps[pos], now_ms)
        return output_columns(
            chunk,
            out_topic,
            out_value,
            reasons,
            model_loads=model_loads,
            latency_ms=latency,
            shadow_value=shadow_value,
            shadow_status=shadow_status,
        )

    def _score_shadow(
        self,
        shadow: _Model,
        chunk: Chunk,
        stamps: list[int | None],
        parsed: ParseResult,
        now_ms: int,
        out: list[bytes | None],
    ) -> None:
        """Shadow records into ``out`` by row position; failures are logged, never raised.

        The rows the main model's parser accepted are scored; a shadow whose inputs differ
        parses the values itself, and scores the rows its own parser accepts. A row the main
        parser accepted without a shadow record counts as a shadow failure.
        """
        try:
            if self.shadow_parser is not None:
                parsed = self.shadow_parser.parse(chunk.values)
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
            for pos, value in zip(
                where, self._outputs(shadow, chunk, stamps, where, preds, now_ms)
            ):
                out[pos] = value
        except Exception as exc:
            log.warning(
                'shadow scoring failed model="%s" version="%s" rows="%d" error="%s"',
                shadow.name,
                shadow.version,
                len(chunk),
                f"{type(exc).__name__}: {exc}"[:500],
            )
