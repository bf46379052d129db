"""The long-running service: set up the session, model and backend, run the query until
told to stop, then stop at a batch boundary and report what was done.

Start-up order is chosen so that every misconfiguration fails before the query starts:
config (already loaded by the caller) → Spark session → Kafka backend → topics exist →
model resolved, pinned, validated and shipped → listener → query.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka.admin import AdminClient
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from streamer.config import Config
from streamer.errors import KafkaIOError, StreamerError
from streamer.kafka import KafkaBackend, select_backend
from streamer.kafka.admin import client_config
from streamer.metrics import RunStats, Totals
from streamer.offsets import Offsets
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
        start_offsets: Offsets | None = None,
        spark: SparkSession | None = None,
    ) -> None:
        self.config = config
        self.start_offsets = start_offsets
        self.spark = spark
        self._owns_spark = spark is None
        self.query_name = f"streamer-{uuid.uuid4().hex[:8]}"
        self.stats = RunStats(self.query_name)
        self.backend: KafkaBackend | None = None
        self.model: ModelSpec | None = None
        self.query: StreamingQuery | None = None
        self._work_dir: str | None = None
        self._result: RunResult | None = None

    def start(self) -> None:
        cfg = self.config
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
        spark.streams.addListener(self.stats)
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
            ),
            start_offsets=self.start_offsets,
            checkpoint_dir=checkpoint,
            query_name=self.query_name,
        )
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

    def run_until(self, stop: threading.Event, poll_seconds: float = 0.5) -> RunResult:
        """Block until ``stop`` is set (then stop cleanly) or the query dies."""
        if self.query is None:
            raise StreamerError("Service.run_until() called before start()")
        while not stop.is_set():
            if self.query.awaitTermination(poll_seconds):  # type: ignore[arg-type]
                break
        return self.stop()

    def stop(self, timeout: float = 60.0) -> RunResult:
        """Stop at a batch boundary, wait for the last progress, clean up, and summarise.

        Idempotent: a second call returns the first call's result.
        """
        if self._result is not None:
            return self._result
        query, error = self.query, None
        if query is not None:
            error = _stop_at_batch_boundary(query, timeout)
            last = query.lastProgress
            if last is not None:
                self.stats.wait_for_batch(int(last["batchId"]), timeout=10.0)
        if self.spark is not None:
            self.spark.streams.removeListener(self.stats)
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
        return result

    def __enter__(self) -> Service:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop_at_batch_boundary(query: StreamingQuery, timeout: float) -> str | None:
    """Let a running micro-batch finish, then stop. Returns the query's error, if it died."""
    deadline = time.monotonic() + timeout
    while query.isActive and query.status["isTriggerActive"] and time.monotonic() < deadline:
        time.sleep(0.05)
    exception = query.exception()
    query.stop()
    return str(exception) if exception is not None else None
