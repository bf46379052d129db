"""The long-running service: compose the parts of a run, run the query until told to stop,
then stop at a batch boundary and report what was done.

Start-up order is chosen so that every misconfiguration fails before the query starts:
config (already loaded by the caller) → Spark session → Kafka backend → topics exist →
start offsets (:mod:`streamer.offsets.startup`) → model resolved, pinned, validated and
shipped (:mod:`streamer.scoring.swap`) → listeners → query (:mod:`streamer.query`). With
``handoff.color`` the lease (:mod:`streamer.handoff.standby`) is taken after the model is
warm and before the start offsets are read. Every step that holds something registers its
undoing on one :class:`~contextlib.ExitStack`; :meth:`Service.stop` unwinds it in reverse,
so the query drains first and the session goes last.

While it runs, the loop in :meth:`Service.run_until` swaps in the model versions the alias
follower proposes, and ends on a stop request, the query's death, a successor's request for
the lease, or the lease's loss.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pyspark
from pyspark.errors import StreamingQueryException
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from streamer.config import Config, parse_trigger_seconds
from streamer.endpoint import Endpoint
from streamer.errors import StreamerError
from streamer.handoff.standby import Handoff
from streamer.jvm import JvmPaths, connector_conf
from streamer.kafka.backend import KafkaBackend
from streamer.kafka.probe import broker_ends, offset_probe
from streamer.kafka.selection import select_backend
from streamer.metrics import LagMonitor, RunStats, ServiceMetrics, Totals
from streamer.offsets import Offsets, OffsetsListener, OffsetStore, merge_offsets
from streamer.offsets.startup import StartPlan, plan_start
from streamer.offsets.stores import store_for
from streamer.pipeline import StreamSettings
from streamer.query import Query, check_topics
from streamer.scoring.model import Models, ModelSpec
from streamer.scoring.swap import ModelSwapper
from streamer.session import build_session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """How a run ended: ``stopped`` on request, ``handed_over`` to a successor, or ``failed``
    with the query's error (or a lost lease)."""

    outcome: str
    totals: Totals
    error: str | None = None


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
        self.spark = spark
        self._jvm = jvm or JvmPaths.from_env({})
        self.query_name = f"streamer-{uuid.uuid4().hex[:8]}"
        self.metrics = ServiceMetrics()
        self.stats = RunStats(self.query_name, self.metrics)
        self._wake = threading.Event()
        self.handoff = Handoff(
            config,
            color or config.handoff.color,
            takeover=takeover,
            interrupt=interrupt or threading.Event(),
            metrics=self.metrics,
            wake=self._wake,
        )
        self.backend: KafkaBackend | None = None
        self.swapper: ModelSwapper | None = None
        self.plan: StartPlan | None = None
        self.offsets: OffsetsListener | None = None
        self._query: Query | None = None
        self._stack = ExitStack()
        self._stop_timeout = 60.0
        self._errors: dict[str, str] = {}
        self._result: RunResult | None = None

    def start(self) -> None:
        cfg, stack = self.config, self._stack
        self._serve_endpoint()
        stack.callback(self._conclude)  # the summary, while the endpoint can still report it
        check_topics(  # before Spark starts: a wrong broker or password fails in seconds
            cfg.kafka.bootstrap_servers,
            cfg.kafka.client,
            [cfg.kafka.input_topic, cfg.kafka.output_topic, cfg.kafka.dead_letter_topic],
        )
        spark = self._session()
        self.backend = self._connect(spark)
        store = store_for(cfg)
        stack.callback(store.close)
        history: Offsets = {}
        if not self.handoff.enabled:
            history = self._plan_start(store)
        elif self.reset_offsets is None:
            store.load()  # the position is read once the lease is ours; a broken store fails now
        work_dir = self._work_dir()
        swapper = self.swapper = ModelSwapper(cfg, spark, self.metrics, work_dir)
        stack.callback(swapper.close)
        models, _ = swapper.resolve()
        if self.handoff.enabled:
            self.handoff.take(self.query_name, spark, self.backend, swapper, work_dir)
            stack.callback(self._release_lease)
            history = self._plan_start(store)
        plan = self.plan
        assert plan is not None
        offsets = self._listen(store, merge_offsets(history, plan.offsets))
        lag = LagMonitor(
            lambda: offset_probe(cfg.kafka),
            cfg.kafka.input_topic,
            lambda: offsets.persisted,
            self.metrics,
            self.stats,
            cfg.metrics.lag_interval_seconds,
        ).start()
        stack.callback(lag.stop)
        query = self._query = self._new_query(offsets, work_dir)
        stack.callback(self._drain, query)  # undone first: it drains before what it uses closes
        query.start(models, plan.offsets or None)
        self.metrics.query_active.set(1)
        self.handoff.watch(lambda: offsets.persisted)
        swapper.follow(self._wake)
        self._log_started()

    def run_until(self, stop: threading.Event, poll_seconds: float = 0.5) -> RunResult:
        """Block until ``stop`` is set (then stop cleanly), the query dies, or the handoff
        ends this run; meanwhile swap in each model version the alias follower proposes."""
        query, swapper = self._query, self.swapper
        if query is None or query.current is None or swapper is None:
            raise StreamerError("Service.run_until() called before start()")
        while not stop.is_set() and not self.handoff.ended:
            if self._wake.is_set():
                self._wake.clear()  # before reading what woke us: a later wake is kept
                candidate = swapper.take_candidate()
                if candidate is None or self.handoff.ended:
                    break
                error = swapper.swap(candidate, query)
                if error is not None:
                    self._errors["swap"] = error
                    break
                continue
            try:
                if query.current.awaitTermination(poll_seconds):  # type: ignore[arg-type]
                    break
            except StreamingQueryException:
                break  # the query died; stop() reports its error
            self.handoff.report(self.plan, self.stats)
        if self.handoff.successor:
            log.info('handing over to="%s"; draining', self.handoff.successor)
        return self.stop()

    def stop(self, timeout: float = 60.0) -> RunResult:
        """Stop at a batch boundary, wait for the last progress, clean up, and summarise.

        Undoes :meth:`start` in reverse: query, drained; lag monitor; listeners, final
        offsets flushed; lease, released at them; alias follower (it may be mid-download);
        work dir; offsets store; session; then the summary, and the endpoint. Idempotent: a
        second call returns the first call's result.
        """
        if self._result is None:
            self._stop_timeout = timeout
            self._stack.close()
        if self._result is None:  # never started
            self._conclude()
        assert self._result is not None
        return self._result

    def __enter__(self) -> Service:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def query(self) -> StreamingQuery | None:
        """The running streaming query (a new one after each model swap)."""
        return self._query.current if self._query is not None else None

    @property
    def model(self) -> Models | None:
        return self.swapper.models if self.swapper is not None else None

    @property
    def shadow(self) -> ModelSpec | None:
        return self.swapper.shadow if self.swapper is not None else None

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

    # Start-up steps; each registers its undoing on the stack.

    def _serve_endpoint(self) -> None:
        cfg = self.config.metrics
        if cfg.port:
            endpoint = Endpoint(
                cfg.host, cfg.port, self.metrics.registry, health=self.health, ready=self.readiness
            ).start()
            self._stack.callback(endpoint.stop)

    def _session(self) -> SparkSession:
        """The caller's session, or one of our own (stopped at the end)."""
        if self.spark is not None:
            return self.spark
        cfg = self.config
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
        self._stack.callback(self._stop_session)
        return self.spark

    def _stop_session(self) -> None:
        if self.spark is not None:
            self.spark.stop()
            self.spark = None

    def _connect(self, spark: SparkSession) -> KafkaBackend:
        """The Kafka backend (the configured topics are known to exist)."""
        cfg = self.config
        backend = select_backend(
            cfg.kafka.backend,
            spark,
            bootstrap_servers=cfg.kafka.bootstrap_servers,
            client=cfg.kafka.client,
            end_offsets=cfg.kafka.end_offsets,
            score_in_source=cfg.kafka.score_in_source,
            source_options=cfg.kafka.source_options,
            on_out_of_range=cfg.offsets.on_out_of_range,
        )
        return backend

    def _plan_start(self, store: OffsetStore) -> Offsets:
        """Sets :attr:`plan`; returns the stored history to carry forward."""
        cfg = self.config
        skipped = self.metrics.offsets_skipped
        self.plan, history = plan_start(
            store,
            self.reset_offsets,
            lambda: broker_ends(cfg.kafka),
            policy=cfg.offsets.on_out_of_range,
            default_start=cfg.kafka.starting_offsets,
            on_skipped=lambda topic, count: skipped.labels(topic=topic).inc(count),
        )
        return history

    def _work_dir(self) -> str:
        """A throwaway dir (checkpoints, model copies), removed at the end; those of runs
        that died on this host are swept first."""
        parent = self.config.spark.checkpoint_dir
        sweep_dead_work_dirs(parent or tempfile.gettempdir())
        work_dir = self._stack.enter_context(
            tempfile.TemporaryDirectory(prefix="streamer-", dir=parent, ignore_cleanup_errors=True)
        )
        Path(work_dir, OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")
        return work_dir

    def _listen(self, store: OffsetStore, initial: Offsets) -> OffsetsListener:
        """Register the run's stats and offsets listeners."""
        assert self.spark is not None
        streams = self.spark.streams
        streams.addListener(self.stats)
        self._stack.callback(streams.removeListener, self.stats)
        failures = self.metrics.offset_store_failures
        self.offsets = OffsetsListener(
            self.query_name,
            store,
            initial=initial,
            on_failure=lambda kind: failures.labels(store=kind).inc(),
            may_write=self.handoff.may_write(),
        )
        streams.addListener(self.offsets)
        self._stack.callback(self._flush_offsets, self.offsets)
        return self.offsets

    def _new_query(self, offsets: OffsetsListener, work_dir: str) -> Query:
        cfg, swapper = self.config, self.swapper
        assert self.spark and self.backend and swapper and swapper.scoring
        return Query(
            self.spark,
            self.backend,
            StreamSettings(
                input_topic=cfg.kafka.input_topic,
                trigger=cfg.spark.trigger,
                max_offsets_per_trigger=cfg.spark.max_offsets_per_trigger,
                default_start=cfg.kafka.starting_offsets,
            ),
            scoring=swapper.scoring,
            shadow=swapper.shadow,
            work_dir=work_dir,
            name=self.query_name,
            stats=self.stats,
            offsets=offsets,
        )

    def _log_started(self) -> None:
        cfg = self.config
        assert self.backend is not None and self.model is not None
        log.info(
            'query started name="%s" backend="%s" input="%s" output="%s" dead_letters="%s" '
            'model="%s" shadow="%s" follow_alias="%s" trigger="%s"',
            self.query_name,
            self.backend.name,
            cfg.kafka.input_topic,
            cfg.kafka.output_topic,
            cfg.kafka.dead_letter_topic,
            self.model.identity() if self.model else "-",
            self.shadow.identity() if self.shadow else "-",
            cfg.model.follow_alias,
            cfg.spark.trigger,
        )

    # Their undoing, in the order stop() runs it.

    def _drain(self, query: Query) -> None:
        error = query.stop(self._stop_timeout)
        if error is not None:
            self._errors["query"] = error
        self.metrics.query_active.set(0)

    def _flush_offsets(self, offsets: OffsetsListener) -> None:
        if not offsets.flush():
            log.error(
                "final offsets not persisted; a restart replays from the last durable "
                'position store="%s" batch="%d"',
                offsets.store.description,
                offsets.persisted_batch,
            )
        assert self.spark is not None
        self.spark.streams.removeListener(offsets)

    def _release_lease(self) -> None:
        position = self.offsets.persisted if self.offsets is not None else None
        error = self.handoff.release(position, self.stats.totals().last_output_at_ms)
        if error is not None:
            self._errors["lease"] = error

    def _conclude(self) -> None:
        errors = self._errors
        error = errors.get("query") or errors.get("swap") or errors.get("lease")
        totals = self.stats.totals()
        outcome = "failed" if error else ("handed_over" if self.handoff.successor else "stopped")
        result = RunResult(outcome, totals, error)
        name = self._query.name if self._query is not None else self.query_name
        log.info('run %s name="%s" %s', result.outcome, name, totals.summary())
        if error:
            log.error('query failed name="%s" error="%s"', name, error.splitlines()[0])
        self._query = None
        self._result = result


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
