"""``streamer demo``: the whole service on a laptop, with no network and no Docker.

1. Start an embedded Kafka-compatible broker (tansu), unless a bootstrap server is given.
2. Train the fraud model and register it as ``fraud-detector@champion`` in a local sqlite
   registry in the work dir (kept between runs, so the second run skips training).
3. Produce synthetic transactions, a chosen fraction of them malformed on purpose.
4. Run the real service on them until every event is accounted for, or ``--duration``.
5. Read the output and dead-letter topics back, match them to the produced event ids, and
   print ``summary produced=<n> scored=<n> dead_letters=<n> lost=<n> duplicates=<n>``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from streamer.config import Config, load_config
from streamer.jvm import JvmPaths
from streamer.kafka.admin import create_topics
from streamer.kafka.broker import embedded_broker, free_port
from streamer.service import Service
from streamer.tools.live import LiveView, ResultTail, Status
from streamer.tools.producer import Produced, produce_synthetic

log = logging.getLogger(__name__)

INPUT, OUTPUT, DEAD = "transactions", "predictions", "transactions.dlq"
PARTITIONS = 4


@dataclass(frozen=True)
class DemoSummary:
    produced: int
    scored: int
    dead_letters: int
    lost: int
    duplicates: int

    def line(self) -> str:
        return (
            f"summary produced={self.produced} scored={self.scored} "
            f"dead_letters={self.dead_letters} lost={self.lost} duplicates={self.duplicates}"
        )


def ensure_model(work_dir: Path) -> tuple[str, str]:
    import mlflow

    from streamer.tools.train import train_and_register

    tracking_uri = f"sqlite:///{work_dir / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    with contextlib.suppress(Exception):
        client.get_model_version_by_alias("fraud-detector", "champion")
        return "models:/fraud-detector@champion", tracking_uri
    trained = train_and_register(tracking_uri, artifact_root=str(work_dir / "artifacts"))
    return trained.uri, tracking_uri


def run_demo(
    *,
    events: int | None,
    rate: float | None,
    bad_fraction: float,
    work_dir: Path,
    bootstrap: str | None,
    duration: float | None,
    env: Mapping[str, str],
    out: TextIO,
    interactive: bool = False,
    stop: threading.Event | None = None,
    abort: threading.Event | None = None,
    on_service_started: Callable[[], None] | None = None,
    broker_kind: str = "kafka",
    jvm: JvmPaths | None = None,
) -> DemoSummary:
    """Produce until ``events``, ``duration`` or ``stop`` (the first Ctrl-C); wait until
    everything produced is accounted for (up to two minutes, or until ``abort``, a second
    Ctrl-C); then stop everything and summarise."""
    stop = stop or threading.Event()
    abort = abort or threading.Event()
    jvm = jvm or JvmPaths.from_env({})
    work_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        broker_is_embedded = bootstrap is None
        if bootstrap is None:
            bootstrap = _start_broker(stack, broker_kind, jvm, out)
        create_topics(bootstrap, {}, {INPUT: PARTITIONS, OUTPUT: PARTITIONS, DEAD: 1})
        print("demo: preparing the model (trained once, then reused)", file=out, flush=True)
        model_uri, tracking_uri = ensure_model(work_dir)

        prefix = f"demo-{uuid.uuid4().hex[:6]}"
        # The embedded broker starts empty, so its runs start over; on a real broker the
        # demo resumes where the last demo run stopped.
        offsets = work_dir / "offsets" / (prefix if broker_is_embedded else "external")
        # tansu's ListOffsets bug: take the end from fetch responses there
        end_offsets = "fetch" if broker_kind == "tansu" else "list"
        config = _demo_config(
            env, bootstrap, model_uri, tracking_uri, work_dir, offsets, end_offsets
        )
        service = _start_service(stack, config, jvm, on_service_started, out)
        tail = ResultTail(bootstrap, OUTPUT, DEAD, prefix).start()
        stack.callback(tail.close)
        stop_producing = threading.Event()
        pool = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="producer"))
        stack.callback(stop_producing.set)  # before the pool waits for the producer
        progress: dict[str, Produced] = {}
        produced = pool.submit(
            produce_synthetic,
            bootstrap,
            INPUT,
            count=events,
            duration=duration,
            rate=rate,
            bad_fraction=bad_fraction,
            id_prefix=prefix,
            seed=int(time.time()),
            stop=stop_producing,
            on_progress=lambda p: progress.update(latest=p),
        )
        with LiveView(out, interactive) as view:
            _watch(service, tail, view, progress, produced, stop, abort, stop_producing)
        stop_producing.set()
        result = service.stop()
        if result.error:
            print(f"demo: the query failed: {result.error.splitlines()[0]}", file=out)
        return _summarise(tail, produced.result(timeout=180), out)
    raise AssertionError("unreachable")


def _start_broker(stack: contextlib.ExitStack, kind: str, jvm: JvmPaths, out: TextIO) -> str:
    """An embedded broker of ``kind``, stopped when ``stack`` closes; its bootstrap servers."""
    name = {"kafka": "Apache Kafka", "tansu": "tansu"}.get(kind, kind)
    print(f"demo: starting an embedded {name} broker", file=out, flush=True)
    broker = stack.enter_context(embedded_broker(kind, jars_root=jvm.cache))
    print(f"demo: embedded {name} at {broker.bootstrap_servers}", file=out, flush=True)
    return str(broker.bootstrap_servers)


def _start_service(
    stack: contextlib.ExitStack,
    config: Config,
    jvm: JvmPaths,
    on_started: Callable[[], None] | None,
    out: TextIO,
) -> Service:
    """The service, started; stopped when ``stack`` closes."""
    service = Service(config, jvm=jvm)
    stack.callback(service.stop)
    print("demo: starting Spark and the service (the first batch takes ~20 s)", file=out)
    service.start()
    if on_started is not None:
        on_started()
    if config.metrics.port:
        print(
            f"demo: metrics at http://127.0.0.1:{config.metrics.port}/metrics "
            "(and /healthz, /readyz)",
            file=out,
            flush=True,
        )
    return service


def _demo_config(
    env: Mapping[str, str],
    bootstrap: str,
    model_uri: str,
    tracking_uri: str,
    work_dir: Path,
    offsets: Path,
    end_offsets: str,
) -> Config:
    """The demo's settings over the user's ``STREAMER_*`` variables."""
    return load_config(
        None,
        env={
            **{k: v for k, v in env.items() if k.startswith("STREAMER_")},
            "STREAMER_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "STREAMER_MODEL__URI": model_uri,
            "STREAMER_MODEL__TRACKING_URI": tracking_uri,
            "STREAMER_MODEL__THRESHOLD": env.get("STREAMER_MODEL__THRESHOLD", "0.5"),
            "STREAMER_MODEL__SCORE_COLUMN": "1",
            "STREAMER_SPARK__CHECKPOINT_DIR": str(work_dir),
            "STREAMER_KAFKA__END_OFFSETS": end_offsets,
            "STREAMER_METRICS__HOST": "127.0.0.1",
            "STREAMER_METRICS__PORT": env.get("STREAMER_METRICS__PORT", str(free_port())),
            "STREAMER_OFFSETS__PATH": str(offsets),
        },
    )


def _watch(
    service: Service,
    tail: ResultTail,
    view: LiveView,
    progress: Mapping[str, Produced],
    produced: Future,
    stop: threading.Event,
    abort: threading.Event,
    stop_producing: threading.Event,
) -> None:
    """Show progress until everything produced is accounted for (two minutes at most after
    the producer ends), the query stops, the producer fails, or ``abort``. ``stop`` ends the
    producing only: what was produced still drains."""
    grace: float | None = None
    while True:
        snap = tail.snapshot()
        view.update(_status(service, progress, produced), snap)
        if abort.is_set():
            return
        if stop.is_set():
            stop_producing.set()
        if produced.done():
            if produced.exception() is not None:
                return
            if snap.scored + snap.dead_letters >= produced.result().count:
                return
            grace = grace or time.monotonic() + 120
            if time.monotonic() > grace:
                return
        if service.query is None or not service.query.isActive:
            return
        time.sleep(0.25)


def _summarise(tail: ResultTail, sent: Produced, out: TextIO) -> DemoSummary:
    """Read the results to their end, print the flagged events, match ids: the summary."""
    tail.drain()
    if tail.error:
        print(f"demo: reading results failed, counts are incomplete: {tail.error}", file=out)
    final = tail.snapshot()
    for record in final.flagged:
        print(
            f"demo: flagged {record['key']} p(fraud)={record['prediction']['1']:.3f} "
            f"partition={record['source']['partition']} offset={record['source']['offset']}",
            file=out,
        )
    if tail.dead_reasons:
        print(f"demo: dead letters by reason {dict(tail.dead_reasons)}", file=out)
    print(f"demo: injected malformed={sent.malformed}", file=out)
    seen = tail.seen
    return DemoSummary(
        produced=sent.count,
        scored=final.scored,
        dead_letters=final.dead_letters,
        lost=len(sent.ids - set(seen)),
        duplicates=sum(c - 1 for c in seen.values() if c > 1),
    )


def _status(service: Service, progress: Mapping[str, Produced], produced: Future) -> Status:
    if produced.done() and produced.exception() is None:
        count = produced.result().count
    else:
        count = progress["latest"].count if "latest" in progress else 0
    stats = service.stats
    return Status(
        produced=count,
        input_per_s=stats.last_input_per_s,
        batch_seconds=stats.last_batch_seconds,
        lag=sum(stats.lag.values()) if stats.lag else None,
        batches=stats.totals().batches,
    )
