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

With ``handoff.color`` set the run is one side of a blue-green pair
(:mod:`streamer.deploy.lease`): after the model is resolved it warms the Python workers,
then takes the lease (asking a live owner to drain with ``takeover``), and only then reads
the start offsets, which the previous owner persisted before releasing. A successor's
request stops this run the same way SIGTERM does, then marks the lease released.

With ``model.follow_alias`` an :class:`~streamer.scoring.follow.AliasFollower` proposes vetted
new versions; the run loop swaps them in (:meth:`Service._swap`): the new version is loaded
in the workers, the query drained the same fenced way, and a new query started at its end
in the same session, with the listeners retargeted to it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pyspark
from confluent_kafka.admin import AdminClient
from pyspark.errors import StreamingQueryException
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery, StreamingQueryListener

from streamer.config import Config, parse_trigger_seconds
from streamer.endpoint import Endpoint
from streamer.errors import KafkaIOError, MissingTopicError, StreamerError
from streamer.handoff.lease import Acquired, Lease, LeaseHolder, lease_store_for
from streamer.jvm import JvmPaths, connector_conf
from streamer.kafka import KafkaBackend, select_backend
from streamer.kafka.admin import client_config
from streamer.kafka.backend import broker_ends, is_fenced, offset_probe, recent_values
from streamer.metrics import LagMonitor, RunStats, ServiceMetrics, Totals
from streamer.offsets import (
    Offsets,
    OffsetsListener,
    OffsetStore,
    format_offsets,
    merge_offsets,
    parse_offsets,
)
from streamer.offsets.startup import StartPlan, check_stored, describe, resolve_reset
from streamer.offsets.stores import store_for
from streamer.pipeline import StreamSettings, start_query, warm_up, warm_up_workers
from streamer.scoring.follow import AliasFollower, identity
from streamer.scoring.groups import Models, peek_groups, resolve_groups, ship_groups, specs_of
from streamer.scoring.model import (
    ModelSpec,
    pin_model_uri,
    registry_client,
    resolve_model,
    ship_model,
)
from streamer.scoring.udf import ScoringSettings
from streamer.session import build_session

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RunResult:
    """How a run ended: ``stopped`` on request, ``handed_over`` to a successor, or ``failed``
    with the query's error (or a lost lease)."""

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
        color: str | None = None,
        takeover: bool = False,
        interrupt: threading.Event | None = None,
        jvm: JvmPaths | None = None,
    ) -> None:
        """``color`` (default ``handoff.color``) turns the lease on; ``takeover`` lets this run
        ask a live owner to hand over; ``interrupt`` cancels a start-up still waiting for it."""
        self.config = config
        self.reset_offsets = reset_offsets
        self.color = color or config.handoff.color
        self.takeover = takeover
        self._interrupt = interrupt or threading.Event()
        self._jvm = jvm or JvmPaths.from_env({})
        self.lease: LeaseHolder | None = None
        self.acquired: Acquired | None = None
        self._wake = threading.Event()
        self._handoff_to: str | None = None
        self._lease_lost: Lease | None = None
        self._lost = False
        self._handoff_reported = False
        self.spark = spark
        self._owns_spark = spark is None
        self.query_name = f"streamer-{uuid.uuid4().hex[:8]}"
        self.metrics = ServiceMetrics()
        self.stats = RunStats(self.query_name, self.metrics)
        self.backend: KafkaBackend | None = None
        self.model: Models | None = None
        self.shadow: ModelSpec | None = None
        self.scoring: ScoringSettings | None = None
        self.follower: AliasFollower | None = None
        self._candidate: Models | None = None
        self._generation = 0
        self._base_name = self.query_name
        self._swap_error: str | None = None
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
                conf={
                    **cfg.spark.conf,
                    **connector_conf(
                        cfg.kafka.backend,
                        pyspark.__version__,
                        self._jvm.spark_home,
                        cfg.spark.conf,
                        self._jvm.cache,
                    ),
                },
            )
        spark = self.spark
        self.backend = select_backend(
            cfg.kafka.backend,
            spark,
            bootstrap_servers=cfg.kafka.bootstrap_servers,
            client=cfg.kafka.client,
            end_offsets=cfg.kafka.end_offsets,
            score_in_source=cfg.kafka.score_in_source,
            source_options=cfg.kafka.source_options,
            on_out_of_range=cfg.offsets.on_out_of_range,
        )
        check_topics(
            cfg.kafka.bootstrap_servers,
            cfg.kafka.client,
            [cfg.kafka.input_topic, cfg.kafka.output_topic, cfg.kafka.dead_letter_topic],
        )
        self.store = store_for(cfg)
        history: Offsets = {}
        if self.color:
            # The position is read once the lease is ours (below); a broken store still
            # fails here, before the model is downloaded and shipped to the executors.
            if self.reset_offsets is None:
                self.store.load()
        else:
            self.plan, history = self._plan_start(self.store)
            log.info('start offsets store="%s" %s', self.store.description, describe(self.plan))
        sweep_dead_work_dirs(cfg.spark.checkpoint_dir or tempfile.gettempdir())
        self._work_dir = tempfile.mkdtemp(prefix="streamer-", dir=cfg.spark.checkpoint_dir)
        Path(self._work_dir, OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")
        self.model = self._resolve_models()
        self._ship(self.model)
        self._set_model_info(self.model)
        self.shadow = self._resolve_shadow()
        if self.shadow is not None:
            ship_model(spark, self.shadow)
        scoring = self.scoring = ScoringSettings(
            output_topic=cfg.kafka.output_topic,
            dead_letter_topic=cfg.kafka.dead_letter_topic,
            max_record_bytes=cfg.parse.max_record_bytes,
            threshold=cfg.model.threshold,
            score_column=cfg.model.score_column,
            shadow_topic=cfg.shadow.topic if self.shadow is not None else None,
            cache_size=cfg.model.cache_size,
        )
        if self.color:
            warm_up(
                spark,
                backend=self.backend,
                models=self.model,
                scoring=scoring,
                shadow=self.shadow,
                input_topic=cfg.kafka.input_topic,
                ends=lambda: broker_ends(cfg.kafka),
                rows=cfg.handoff.warmup_rows,
                checkpoint_dir=tempfile.mkdtemp(prefix="warm-up-", dir=self._work_dir),
            )
            self._acquire_lease(self.color)
            self.plan, history = self._plan_start(self.store)
            log.info('start offsets store="%s" %s', self.store.description, describe(self.plan))
        plan = self.plan
        assert plan is not None
        spark.streams.addListener(self.stats)
        self._listeners.append(self.stats)
        failures = self.metrics.offset_store_failures
        self.offsets = OffsetsListener(
            self.query_name,
            self.store,
            initial=merge_offsets(history, plan.offsets),
            on_failure=lambda kind: failures.labels(store=kind).inc(),
            may_write=self.lease.still_owner if self.lease else None,
        )
        spark.streams.addListener(self.offsets)
        self._listeners.append(self.offsets)
        self.query = self._start_query(plan.offsets or None)
        self.metrics.query_active.set(1)
        offsets = self.offsets
        if self.lease is not None:
            self.lease.start_heartbeat(
                on_handoff=self._on_handoff,
                on_lost=self._on_lost,
                position=lambda: offsets.persisted,
            )
        self._lag = LagMonitor(
            lambda: offset_probe(cfg.kafka),
            cfg.kafka.input_topic,
            lambda: offsets.persisted,
            self.metrics,
            self.stats,
            cfg.metrics.lag_interval_seconds,
        ).start()
        if cfg.model.follow_alias:
            self.follower = self._follow(self.model)
        log.info(
            'query started name="%s" backend="%s" input="%s" output="%s" dead_letters="%s" '
            'model="%s" shadow="%s" follow_alias="%s" trigger="%s"',
            self.query_name,
            self.backend.name,
            cfg.kafka.input_topic,
            cfg.kafka.output_topic,
            cfg.kafka.dead_letter_topic,
            identity(self.model),
            identity(self.shadow) if self.shadow else "-",
            cfg.model.follow_alias,
            cfg.spark.trigger,
        )

    def _resolve_models(self) -> Models:
        """``model.uri`` resolved, pinned, downloaded and validated: one model, or one per
        group for a ``model.group_by`` template."""
        cfg = self.config.model
        if cfg.group_by is not None:
            return resolve_groups(cfg.uri, cfg.group_by, **self._resolve_settings())
        return resolve_model(cfg.uri, **self._resolve_settings())

    def _resolve_settings(self) -> dict[str, Any]:
        """How every model is resolved (the model's, each group's and the shadow's)."""
        cfg = self.config.model
        return {
            "tracking_uri": cfg.tracking_uri,
            "registry_uri": cfg.registry_uri,
            "threshold": cfg.threshold,
            "score_column": cfg.score_column,
            "work_dir": self._work_dir,
            "env_manager": cfg.env_manager,
        }

    def _ship(self, models: Models) -> None:
        assert self.spark is not None
        if isinstance(models, ModelSpec):
            ship_model(self.spark, models)
        else:
            ship_groups(self.spark, models)

    def _set_model_info(self, models: Models) -> None:
        info = self.metrics.model_info
        info.clear()
        for spec in specs_of(models):
            info.labels(name=spec.name, version=spec.version, uri=spec.uri).set(1)

    def _resolve_shadow(self) -> ModelSpec | None:
        """The shadow model, or None: none configured, or it cannot be served. A shadow that
        fails to resolve, or whose topic is missing, is switched off with an ERROR line; it
        never keeps the main model from starting."""
        cfg = self.config
        if cfg.shadow.model_uri is None or cfg.shadow.topic is None:
            return None
        try:
            check_topics(cfg.kafka.bootstrap_servers, cfg.kafka.client, [cfg.shadow.topic])
            shadow = resolve_model(cfg.shadow.model_uri, **self._resolve_settings())
        except StreamerError as exc:
            self.metrics.shadow_enabled.set(0)
            log.error('shadow scoring off: the shadow cannot be served error="%s"', exc)
            return None
        self.metrics.shadow_enabled.set(1)
        log.info('shadow scoring on model="%s" topic="%s"', shadow.pinned_uri, cfg.shadow.topic)
        return shadow

    def _start_query(self, start_offsets: Offsets | None) -> StreamingQuery:
        cfg = self.config
        assert self.spark and self.backend and self.model and self.scoring and self._work_dir
        if self.backend.fences:
            self._fence_file = os.path.join(self._work_dir, f"fence-{self._generation}")
        return start_query(
            self.spark,
            backend=self.backend,
            models=self.model,
            scoring=self.scoring,
            shadow=self.shadow,
            stream=StreamSettings(
                input_topic=cfg.kafka.input_topic,
                trigger=cfg.spark.trigger,
                max_offsets_per_trigger=cfg.spark.max_offsets_per_trigger,
                default_start=cfg.kafka.starting_offsets,
                fence_file=self._fence_file,
            ),
            start_offsets=start_offsets,
            checkpoint_dir=tempfile.mkdtemp(prefix="checkpoint-", dir=self._work_dir),
            query_name=self.query_name,
        )

    def _follow(self, current: Models) -> AliasFollower:
        cfg = self.config
        m = cfg.model

        def peek() -> str:
            if m.group_by is not None:
                return peek_groups(m.uri, m.group_by, m.tracking_uri, m.registry_uri)
            return pin_model_uri(m.uri, registry_client(m.tracking_uri, m.registry_uri)).pinned_uri

        def refused(candidate: str, reason: str) -> None:
            self.metrics.model_swaps.labels(outcome="refused").inc()

        def ready(candidate: Models) -> None:
            self._candidate = candidate
            self._wake.set()

        return AliasFollower(
            peek=peek,
            resolve=self._resolve_models,
            current=current,
            poll_seconds=m.poll_seconds,
            sample=lambda: recent_values(cfg.kafka, m.validation_rows),
            max_record_bytes=cfg.parse.max_record_bytes,
            on_ready=ready,
            on_refused=refused,
        ).start()

    def _swap(self, candidate: Models) -> str | None:
        """Serve ``candidate`` from the next batch on; the query's error if it died.

        The candidate is shipped and loaded in every Python worker while the old query still
        runs; then the source is fenced and drained (the last batch completes, nothing is in
        flight), the last batch's progress is awaited, and a new query starts at its end, in
        the same SparkSession, with a fresh checkpoint. No event is skipped or read twice with
        the ``python`` backend; Spark's ``kafka`` source cannot be fenced, so there a swap
        may replay the batch that was in flight.
        """
        assert self.spark and self.scoring and self.offsets and self.query
        old = self.model
        assert old is not None
        started = time.monotonic()
        try:
            self._ship(candidate)
            warm_up_workers(
                self.spark,
                candidate,
                self.scoring,
                self.config.handoff.warmup_rows,
                shadow=self.shadow,
            )
        except Exception as exc:  # the executors cannot load it: keep the current version
            log.error(
                'model version refused; executors cannot load it candidate="%s" error="%s"',
                identity(candidate),
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            )
            self.metrics.model_swaps.labels(outcome="refused").inc()
            if self.follower is not None:
                self.follower.rejected(candidate)
            return None
        stopped = self.query
        error = self._stop_query(stopped, timeout=self.config.handoff.drain_timeout_seconds)
        if error is not None:
            return error
        # The stopped query's own end, in case its last progress event is late.
        position = merge_offsets(self.offsets.position, _ended(stopped))
        self._generation += 1
        self.query_name = f"{self._base_name}-{self._generation}"
        self.stats.retarget(self.query_name)
        self.offsets.retarget(self.query_name)
        try:
            self.model = candidate
            self.query = self._start_query(position or None)
        except Exception as exc:
            log.error(
                "query with the new version failed to start; back to the current one "
                'candidate="%s" error="%s"',
                identity(candidate),
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            )
            self.metrics.model_swaps.labels(outcome="refused").inc()
            self.model = old
            self.query = self._start_query(position or None)
            if self.follower is not None:
                self.follower.rejected(candidate)
            return None
        self._set_model_info(candidate)
        self.metrics.model_swaps.labels(outcome="swapped").inc()
        if self.follower is not None:
            self.follower.swapped(candidate)
        log.info(
            'model swapped from="%s" to="%s" at="%s" query="%s" seconds="%.2f"',
            identity(old),
            identity(candidate),
            format_offsets(position),
            self.query_name,
            time.monotonic() - started,
        )
        return None

    def _stop_query(self, query: StreamingQuery, timeout: float) -> str | None:
        """Stop at a batch boundary (fenced where the source allows) and wait until the last
        batch's progress is counted and its offsets persisted; the query's error, if any."""
        if self._fence_file:
            idle_is_drained = self.backend is not None and self.backend.name == "jvm"
            error = _drain_fenced(query, self._fence_file, timeout, idle_is_drained)
        else:
            error = _stop_at_batch_boundary(query, timeout)
        last = query.lastProgress
        if last is not None:
            self.stats.wait_for_batch(int(last["batchId"]), timeout=10.0)
            if self.offsets is not None:
                self.offsets.wait_persisted(int(last["batchId"]), timeout=10.0)
        return error

    def _acquire_lease(self, color: str) -> None:
        cfg = self.config.handoff
        self.lease = LeaseHolder(
            lease_store_for(self.config),
            color,
            self.query_name,
            lease_timeout=cfg.lease_timeout_seconds,
            heartbeat=cfg.heartbeat_seconds,
        )
        self.acquired = self.lease.acquire(
            takeover=self.takeover,
            drain_timeout=cfg.drain_timeout_seconds,
            cancelled=self._interrupt.is_set,
        )
        self.metrics.handoffs.labels(how=self.acquired.how).inc()
        self.metrics.lease_epoch.set(self.lease.lease.epoch if self.lease.lease else 0)

    def _on_handoff(self, successor: str) -> None:
        self._handoff_to = successor
        self._wake.set()

    def _on_lost(self, current: Lease | None) -> None:
        self._lease_lost = current
        self._lost = True
        self._wake.set()

    def _report_handoff(self) -> None:
        """Once this run's first output exists: how the handoff from the previous owner went."""
        acquired, plan = self.acquired, self.plan
        if self._handoff_reported or acquired is None or plan is None:
            return
        previous = acquired.previous
        if previous is None:
            self._handoff_reported = True
            return
        first = self.stats.totals().first_output_at_ms
        if first is None:
            return
        self._handoff_reported = True
        since = previous.last_output_at or previous.heartbeat_at
        gap = max(0.0, (first - since) / 1000.0)
        self.metrics.handoff_gap.set(gap)
        if acquired.how == "released" and previous.offsets is not None:
            lost, duplicates = _offset_difference(previous.offsets, plan.offsets)
            self.metrics.handoff_lost.set(lost)
            self.metrics.handoff_duplicates.set(duplicates)
            counts = f'lost="{lost}" duplicates="{duplicates}"'
        else:
            counts = 'lost="0" duplicates="unknown (at most the in-flight batch of the old owner)"'
        log.info(
            'handoff complete from="%s" to="%s" how="%s" epoch="%d" gap_seconds="%.3f" %s',
            previous.owner,
            self.color,
            acquired.how,
            previous.epoch + 1,
            gap,
            counts,
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
        earliest, latest = _retrying(lambda: broker_ends(cfg.kafka), "reading the input offsets")
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
        while not stop.is_set() and not (self._handoff_to or self._lost):
            if self._wake.is_set():
                self._wake.clear()  # before reading what woke us: a later wake is kept
                candidate, self._candidate = self._candidate, None
                if candidate is None or self._handoff_to or self._lost:
                    break
                try:
                    error = self._swap(candidate)
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                if error is not None:
                    log.error('query failed during the model swap error="%s"', error)
                    self._swap_error = error
                    break
                continue
            try:
                if self.query.awaitTermination(poll_seconds):  # type: ignore[arg-type]
                    break
            except StreamingQueryException:
                break  # the query died; stop() reports its error
            self._report_handoff()
        if self._handoff_to:
            log.info('handing over to="%s"; draining', self._handoff_to)
        return self.stop()

    def stop(self, timeout: float = 60.0) -> RunResult:
        """Stop at a batch boundary, wait for the last progress, clean up, and summarise.

        Idempotent: a second call returns the first call's result.
        """
        if self._result is not None:
            return self._result
        query, error = self.query, self._swap_error
        if query is not None:
            error = self._stop_query(query, timeout) or error
        if self.follower is not None:  # after the drain: it may be mid-download
            self.follower.stop()
            self.follower = None
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
        if self._lost:
            error = error or (
                "the handoff lease was taken over ("
                + (self._lease_lost.describe() if self._lease_lost else "gone")
                + "); stopped without persisting"
            )
        elif self.lease is not None and self.lease.lease is not None:
            position = self.offsets.persisted if self.offsets is not None else None
            last_output = self.stats.totals().last_output_at_ms
            if not self.lease.release(position, last_output):
                error = error or "the handoff lease was lost before it could be released"
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
        outcome = "failed" if error else ("handed_over" if self._handoff_to else "stopped")
        result = RunResult(outcome, totals, error)
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


OWNER_FILE = "owner"


def sweep_dead_work_dirs(parent: str) -> list[str]:
    """Remove ``streamer-*`` work dirs (throwaway checkpoint, model copy) whose owning
    process, on this host, is gone: what a SIGKILL leaves behind.

    Blue and green may share the parent, so a dir is removed only when its owner file names
    this host and a pid that no longer exists; anything else (another host's pod, a live
    peer, a dir without an owner file) is left alone.
    """
    removed = []
    host = socket.gethostname()
    for path in Path(parent).glob("streamer-*"):
        try:
            owner_host, pid = (path / OWNER_FILE).read_text().split()
            if owner_host != host:
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
        except (OSError, ValueError):
            continue  # no or unreadable owner file, or a live pid we may not signal
    if removed:
        log.info('removed work dirs of dead runs count="%d" parent="%s"', len(removed), parent)
    return removed


def _readable(store: OffsetStore) -> dict[str, dict[int, int]]:
    """The stored offsets, or none when the store is empty or unreadable (being reset)."""
    try:
        stored = store.load()
    except StreamerError as exc:
        log.warning('ignoring the unreadable offset store for the reset error="%s"', exc)
        return {}
    return stored.offsets if stored else {}


def _retrying(call: Callable[[], T], what: str, attempts: int = 4, backoff: float = 2.0) -> T:
    """``call()``, retried on a transient Kafka error: a start-up that took a Spark session
    and a model warm-up is not thrown away for one slow broker answer. A missing topic is
    not transient."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except MissingTopicError:
            raise
        except KafkaIOError as exc:
            if attempt == attempts:
                raise
            log.warning('%s failed; retrying attempt="%d" error="%s"', what, attempt, exc)
            time.sleep(backoff * attempt)
    raise AssertionError("unreachable")


def _offset_difference(previous: Offsets, start: Offsets) -> tuple[int, int]:
    """(events skipped, events read again) going from ``previous``'s end to ``start``."""
    lost = duplicates = 0
    for topic in set(previous) | set(start):
        before, after = previous.get(topic, {}), start.get(topic, {})
        for partition in set(before) | set(after):
            if partition in before and partition in after:
                delta = after[partition] - before[partition]
                lost += max(0, delta)
                duplicates += max(0, -delta)
    return lost, duplicates


def _ended(query: StreamingQuery) -> Offsets:
    """The end offsets of ``query``'s last batch, from its own last progress."""
    ended: Offsets = {}
    last: dict[str, Any] = query.lastProgress or {}
    for source in last.get("sources", []):
        end = source.get("endOffset")
        ended = merge_offsets(
            ended, parse_offsets(end if isinstance(end, str) else json.dumps(end))
        )
    return ended


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
