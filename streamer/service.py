"""The long-running service: set up the session, model and backend, run the query until
told to stop, then stop at a batch boundary and report what was done.

Start-up order is chosen so that every misconfiguration fails before the query starts:
config (already loaded by the caller) → Spark session → Kafka backend → topics exist →
start offsets (store or reset, checked against the broker) → model resolved, pinned,
validated and shipped → listeners → query.

Stopping drains at a batch boundary and waits until the last batch's offsets are durable.
With the ``python`` backend the source is fenced first (it admits no new offsets), so a
graceful stop never leaves a half-written batch behind: a restart has zero duplicates.
Spark's ``kafka`` source cannot be fenced; there a stop that lands mid-batch replays at most
that one batch.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka.admin import AdminClient
from pyspark.errors import StreamingQueryException
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery, StreamingQueryListener

from streamer.config import Config, parse_trigger_seconds
from streamer.endpoint import Endpoint
from streamer.errors import KafkaIOError, StreamerError
from streamer.kafka import KafkaBackend, select_backend
from streamer.kafka.admin import client_config
from streamer.kafka.backend import broker_ends, offset_probe
from streamer.metrics import LagMonitor, RunStats, ServiceMetrics, Totals
from streamer.offsets import OffsetsListener, OffsetStore, merge_offsets
from streamer.offsets.startup import StartPlan, check_stored, describe, resolve_reset
from streamer.offsets.stores import store_for
from streamer.pipeline import StreamSettings, start_query
from streamer.scoring.model import ModelSpec, resolve_model, ship_model
from streamer.scoring.udf import ScoringSettings
from streamer.session import build_session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """How a run ended: ``stopped`` on request, or ``failed`` with the query's error."""

    outcome: str
    totals: Totals
    error: str | None = None


def check_topics(bootstrap_servers: str, client: Any, topics: list[str]) -> None:
    """Fail with one clear line when a configured topic does not exist."""
    admin = AdminClient(client_config(bootstrap_servers, client))
    try:
        existing = admin.list_topics(timeout=15).topics
    except Exception as exc:
        raise KafkaIOError(
            f"cannot reach Kafka at kafka.bootstrap_servers = {bootstrap_servers!r}: {exc}"
        ) from exc
    missing = [t for t in topics if t not in existing]
    if missing:
        raise KafkaIOError(
            f"topics {missing} do not exist on {bootstrap_servers}; create them, or fix "
            "kafka.input_topic / kafka.output_topic / kafka.dead_letter_topic"
        )


class Service:
    """One run of the scoring query. ``start()``, then ``run_until(event)`` or ``stop()``."""

    def __init__(
        self,
        config: Config,
        *,
        reset_offsets: str | None = None,
        spark: SparkSession | None = None,
    ) -> None:
        self.config = config
        self.reset_offsets = reset_offsets
        self.spark = spark
        self._owns_spark = spark is None
        self.query_name = f"streamer-{uuid.uuid4().hex[:8]}"
        self.metrics = ServiceMetrics()
        self.stats = RunStats(self.query_name, self.metrics)
        self.backend: KafkaBackend | None = None
        self.model: ModelSpec | None = None
        self.query: StreamingQuery | None = None
        self.store: OffsetStore | None = None
        self.offsets: OffsetsListener | None = None
        self.plan: StartPlan | None = None
        self._fence_file: str | None = None
        self._listeners: list[StreamingQueryListener] = []
        self._endpoint: Endpoint | None = None
        self._lag: LagMonitor | None = None
        self._work_dir: str | None = None
        self._result: RunResult | None = None

    def start(self) -> None:
        cfg = self.config
        if cfg.metrics.port:
            self._endpoint = Endpoint(
                cfg.metrics.host,
                cfg.metrics.port,
                self.metrics.registry,
                health=self.health,
                ready=self.readiness,
            ).start()
        if self.spark is None:
            self.spark = build_session(
                master=cfg.spark.master,
                app_name=cfg.spark.app_name,
                arrow_batch_size=cfg.spark.arrow_batch_size,
                conf=cfg.spark.conf,
            )
        spark = self.spark
        self.backend = select_backend(
            cfg.kafka.backend,
            spark,
            bootstrap_servers=cfg.kafka.bootstrap_servers,
            client=cfg.kafka.client,
            end_offsets=cfg.kafka.end_offsets,
        )
        check_topics(
            cfg.kafka.bootstrap_servers,
            cfg.kafka.client,
            [cfg.kafka.input_topic, cfg.kafka.output_topic, cfg.kafka.dead_letter_topic],
        )
        self.store = store_for(cfg)
        self.plan, history = self._plan_start(self.store)
        log.info('start offsets store="%s" %s', self.store.description, describe(self.plan))
        self._work_dir = tempfile.mkdtemp(prefix="streamer-", dir=cfg.spark.checkpoint_dir)
        self.model = resolve_model(
            cfg.model.uri,
            tracking_uri=cfg.model.tracking_uri,
            registry_uri=cfg.model.registry_uri,
            threshold=cfg.model.threshold,
            score_column=cfg.model.score_column,
            work_dir=self._work_dir,
        )
        ship_model(spark, self.model)
        self.metrics.model_info.labels(
            name=self.model.name, version=self.model.version, uri=cfg.model.uri
        ).set(1)
        spark.streams.addListener(self.stats)
        self._listeners.append(self.stats)
        failures = self.metrics.offset_store_failures
        self.offsets = OffsetsListener(
            self.query_name,
            self.store,
            initial=merge_offsets(history, self.plan.offsets),
            on_failure=lambda kind: failures.labels(store=kind).inc(),
        )
        spark.streams.addListener(self.offsets)
        self._listeners.append(self.offsets)
        if self.backend.fences:
            self._fence_file = os.path.join(self._work_dir, "fence")
        checkpoint = tempfile.mkdtemp(prefix="checkpoint-", dir=self._work_dir)
        self.query = start_query(
            spark,
            backend=self.backend,
            spec=self.model,
            scoring=ScoringSettings(
                output_topic=cfg.kafka.output_topic,
                dead_letter_topic=cfg.kafka.dead_letter_topic,
                max_record_bytes=cfg.parse.max_record_bytes,
                threshold=cfg.model.threshold,
                score_column=cfg.model.score_column,
            ),
            stream=StreamSettings(
                input_topic=cfg.kafka.input_topic,
                trigger=cfg.spark.trigger,
                max_offsets_per_trigger=cfg.spark.max_offsets_per_trigger,
                default_start=cfg.kafka.starting_offsets,
                fence_file=self._fence_file,
            ),
            start_offsets=self.plan.offsets or None,
            checkpoint_dir=checkpoint,
            query_name=self.query_name,
        )
        self.metrics.query_active.set(1)
        offsets = self.offsets
        self._lag = LagMonitor(
            lambda: offset_probe(cfg.kafka),
            cfg.kafka.input_topic,
            lambda: offsets.persisted,
            self.metrics,
            self.stats,
            cfg.metrics.lag_interval_seconds,
        ).start()
        log.info(
            'query started name="%s" backend="%s" input="%s" output="%s" dead_letters="%s" '
            'model="%s" version="%s" trigger="%s"',
            self.query_name,
            self.backend.name,
            cfg.kafka.input_topic,
            cfg.kafka.output_topic,
            cfg.kafka.dead_letter_topic,
            self.model.name,
            self.model.version,
            cfg.spark.trigger,
        )

    def health(self) -> tuple[bool, str]:
        """Liveness: False only once the query has died with an error."""
        error = self.stats.terminated_error or (self._result.error if self._result else None)
        if error:
            return False, f"query failed: {error.splitlines()[0]}"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        """Ready: model resolved, query running, a batch completed, and a progress or idle
        event within ``max(ready_trigger_multiple x trigger, ready_min_seconds)``."""
        if self.model is None:
            return False, "model not resolved yet"
        query = self.query
        if query is None or not query.isActive:
            return False, "query not running"
        last = self.stats.last_event_at
        if self.stats.totals().batches == 0 or last is None:
            return False, "waiting for the first micro-batch"
        cfg = self.config
        window = max(
            cfg.metrics.ready_trigger_multiple * parse_trigger_seconds(cfg.spark.trigger),
            cfg.metrics.ready_min_seconds,
        )
        age = time.monotonic() - last
        if age > window:
            return False, f"no progress for {age:.0f}s (limit {window:.0f}s)"
        return True, "ok"

    def _plan_start(self, store: OffsetStore) -> tuple[StartPlan, dict[str, dict[int, int]]]:
        """Start offsets for the input topic, and the stored history to carry forward."""
        cfg = self.config
        earliest, latest = broker_ends(cfg.kafka)
        if self.reset_offsets is not None:
            offsets = resolve_reset(self.reset_offsets, earliest, latest)
            if self.reset_offsets not in ("earliest", "latest"):
                offsets = merge_offsets(_readable(store), offsets)
            store.save(offsets, writer="reset")
            log.warning(
                'offsets reset by the operator to="%s" store="%s"',
                self.reset_offsets,
                store.description,
            )
            return StartPlan(offsets, f"--reset-offsets {self.reset_offsets}"), {}
        stored = store.load()
        if stored is None:
            origin = f"empty store, kafka.starting_offsets={cfg.kafka.starting_offsets}"
            return StartPlan({}, origin), {}
        start, skipped = check_stored(stored.offsets, earliest, latest, cfg.offsets.on_out_of_range)
        for (skipped_topic, _), count in skipped.items():
            self.metrics.offsets_skipped.labels(topic=skipped_topic).inc(count)
        origin = f"store generation {stored.generation or 'committed'}"
        return StartPlan(start, origin), stored.offsets

    def run_until(self, stop: threading.Event, poll_seconds: float = 0.5) -> RunResult:
        """Block until ``stop`` is set (then stop cleanly) or the query dies."""
        if self.query is None:
            raise StreamerError("Service.run_until() called before start()")
        while not stop.is_set():
            try:
                if self.query.awaitTermination(poll_seconds):  # type: ignore[arg-type]
                    break
            except StreamingQueryException:
                break  # the query died; stop() reports its error
        return self.stop()

    def stop(self, timeout: float = 60.0) -> RunResult:
        """Stop at a batch boundary, wait for the last progress, clean up, and summarise.

        Idempotent: a second call returns the first call's result.
        """
        if self._result is not None:
            return self._result
        query, error = self.query, None
        if query is not None:
            if self._fence_file:
                error = _drain_fenced(query, self._fence_file, timeout)
            else:
                error = _stop_at_batch_boundary(query, timeout)
            last = query.lastProgress
            if last is not None:
                self.stats.wait_for_batch(int(last["batchId"]), timeout=10.0)
                if self.offsets is not None:
                    self.offsets.wait_persisted(int(last["batchId"]), timeout=10.0)
        if self._lag is not None:
            self._lag.stop()
            self._lag = None
        self.metrics.query_active.set(0)
        if self.offsets is not None and not self.offsets.flush():
            log.error(
                "final offsets not persisted; a restart replays from the last durable "
                'position store="%s" batch="%d"',
                self.offsets.store.description,
                self.offsets.persisted_batch,
            )
        if self.store is not None:
            self.store.close()
            self.store = None
        if self.spark is not None:
            for listener in self._listeners:
                self.spark.streams.removeListener(listener)
            self._listeners.clear()
            if self._owns_spark:
                self.spark.stop()
                self.spark = None
        if self._work_dir:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None
        totals = self.stats.totals()
        result = RunResult("failed" if error else "stopped", totals, error)
        log.info('run %s name="%s" %s', result.outcome, self.query_name, totals.summary())
        if error:
            log.error('query failed name="%s" error="%s"', self.query_name, error.splitlines()[0])
        self.query = None
        self._result = result
        if self._endpoint is not None:
            self._endpoint.stop()
            self._endpoint = None
        return result

    def __enter__(self) -> Service:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _readable(store: OffsetStore) -> dict[str, dict[int, int]]:
    """The stored offsets, or none when the store is empty or unreadable (being reset)."""
    try:
        stored = store.load()
    except StreamerError as exc:
        log.warning('ignoring the unreadable offset store for the reset error="%s"', exc)
        return {}
    return stored.offsets if stored else {}


def _drain_fenced(query: StreamingQuery, fence_file: str, timeout: float) -> str | None:
    """Fence the source, wait for its acknowledgement (nothing in flight), then stop."""
    with open(fence_file, "w"):
        pass
    ack = fence_file + ".ack"
    deadline = time.monotonic() + timeout
    while query.isActive and not os.path.exists(ack) and time.monotonic() < deadline:
        time.sleep(0.05)
    if os.path.exists(ack):
        with open(ack) as f:
            log.info("source fenced and drained offsets=%s", f.read().strip())
    elif query.isActive:
        log.warning("source did not acknowledge the fence in %.0fs; stopping mid-batch", timeout)
    exception = query.exception()
    query.stop()
    return str(exception) if exception is not None else None


def _stop_at_batch_boundary(query: StreamingQuery, timeout: float) -> str | None:
    """Let a running micro-batch finish, then stop. Returns the query's error, if it died."""
    deadline = time.monotonic() + timeout
    while query.isActive and query.status["isTriggerActive"] and time.monotonic() < deadline:
        time.sleep(0.05)
    exception = query.exception()
    query.stop()
    return str(exception) if exception is not None else None
