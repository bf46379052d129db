"""The scoring query of one run: started at a position, stopped at a batch boundary, and
started again in the same session when the model is swapped.

Stopping drains at a batch boundary and waits until the last batch's offsets are durable.
With the ``python`` backend the source is fenced first (it admits no new offsets), so a
graceful stop never leaves a half-written batch behind: a restart has zero duplicates.
Spark's ``kafka`` source cannot be fenced; there a stop that lands mid-batch replays at most
that one batch.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import replace
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from streamer.errors import KafkaIOError
from streamer.kafka.backend import KafkaBackend
from streamer.kafka.dialect import to_librdkafka
from streamer.kafka.jvm_backend import is_fenced
from streamer.kafka.reach import reach
from streamer.metrics import RunStats
from streamer.offsets import Offsets, OffsetsListener, merge_offsets, parse_offsets
from streamer.pipeline import StreamSettings, start_query
from streamer.scoring.model import Models, ModelSpec
from streamer.scoring.scorer import ScoringSettings

log = logging.getLogger(__name__)


def check_topics(bootstrap_servers: str, client: Any, topics: list[str]) -> None:
    """Fail with one clear line, within seconds, when Kafka cannot be reached (down,
    credentials rejected, TLS failed) or a configured topic does not exist."""
    existing = reach(bootstrap_servers, to_librdkafka(client)).topics
    missing = [t for t in topics if t not in existing]
    if missing:
        raise KafkaIOError(
            f"topics {missing} do not exist on {bootstrap_servers}; create them, or fix "
            "kafka.input_topic / kafka.output_topic / kafka.dead_letter_topic"
        )


class Query:
    """The run's streaming query, one generation at a time.

    Each generation has its own name (``<name>-<n>`` after the first), fence file and fresh
    checkpoint in ``work_dir``; the listeners (``stats``, ``offsets``) follow it by name.
    """

    def __init__(
        self,
        spark: SparkSession,
        backend: KafkaBackend,
        stream: StreamSettings,
        *,
        scoring: ScoringSettings,
        shadow: ModelSpec | None,
        work_dir: str,
        name: str,
        stats: RunStats,
        offsets: OffsetsListener,
    ) -> None:
        self.spark, self.backend, self.stream = spark, backend, stream
        self.scoring, self.shadow, self.work_dir = scoring, shadow, work_dir
        self.name, self._base_name, self._generation = name, name, 0
        self.stats, self.offsets = stats, offsets
        self.current: StreamingQuery | None = None

    def start(self, models: Models, start_offsets: Offsets | None) -> StreamingQuery:
        """Start this generation's query, scoring with ``models``."""
        if self.backend.fences:
            fence = os.path.join(self.work_dir, f"fence-{self._generation}")
            self.stream = replace(self.stream, fence_file=fence)
        self.current = start_query(
            self.spark,
            backend=self.backend,
            models=models,
            scoring=self.scoring,
            shadow=self.shadow,
            stream=self.stream,
            start_offsets=start_offsets,
            checkpoint_dir=tempfile.mkdtemp(prefix="checkpoint-", dir=self.work_dir),
            query_name=self.name,
        )
        return self.current

    def next_generation(self) -> None:
        """Name the next query, and point the listeners at it."""
        self._generation += 1
        self.name = f"{self._base_name}-{self._generation}"
        self.stats.retarget(self.name)
        self.offsets.retarget(self.name)

    def stop(self, timeout: float) -> str | None:
        """Stop at a batch boundary (fenced where the source allows) and wait until the last
        batch's progress is counted and its offsets persisted; the query's error, if any."""
        query = self.current
        if query is None:
            return None
        if self.stream.fence_file:
            idle_is_drained = self.backend.name == "jvm"
            error = _drain_fenced(query, self.stream.fence_file, timeout, idle_is_drained)
        else:
            error = _stop_at_batch_boundary(query, timeout)
        last = query.lastProgress
        if last is not None:
            self.stats.wait_for_batch(int(last["batchId"]), timeout=10.0)
            self.offsets.wait_persisted(int(last["batchId"]), timeout=10.0)
        return error

    def end(self) -> Offsets:
        """Where the stopped query ended: the persisted position, with the query's own last
        progress in case its last progress event is late."""
        ended: Offsets = {}
        last: dict[str, Any] = (self.current.lastProgress if self.current else None) or {}
        for source in last.get("sources", []):
            end = source.get("endOffset")
            ended = merge_offsets(
                ended, parse_offsets(end if isinstance(end, str) else json.dumps(end))
            )
        return merge_offsets(self.offsets.position, ended)


def _drain_fenced(
    query: StreamingQuery, fence_file: str, timeout: float, idle_is_drained: bool
) -> str | None:
    """Fence the source (or sink), wait for its acknowledgement or, where the fence stops
    any batch that starts after it (``idle_is_drained``, the jvm sink), for no batch to be
    running; then stop."""
    with open(fence_file, "w"):
        pass
    ack = fence_file + ".ack"
    deadline = time.monotonic() + timeout
    idle_polls = 0
    while query.isActive and not os.path.exists(ack) and time.monotonic() < deadline:
        idle_polls = 0 if query.status["isTriggerActive"] else idle_polls + 1
        if idle_is_drained and idle_polls >= 2:
            break
        time.sleep(0.05)
    if os.path.exists(ack):
        with open(ack) as f:
            log.info("source fenced and drained offsets=%s", f.read().strip())
    elif query.isActive:
        log.warning("source did not acknowledge the fence in %.0fs; stopping mid-batch", timeout)
    exception = query.exception()
    query.stop()
    return str(exception) if exception is not None and not is_fenced(exception) else None


def _stop_at_batch_boundary(query: StreamingQuery, timeout: float) -> str | None:
    """Let a running micro-batch finish, then stop. Returns the query's error, if it died."""
    deadline = time.monotonic() + timeout
    while query.isActive and query.status["isTriggerActive"] and time.monotonic() < deadline:
        time.sleep(0.05)
    exception = query.exception()
    query.stop()
    return str(exception) if exception is not None else None
