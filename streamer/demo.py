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
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from confluent_kafka import Consumer, Producer, TopicPartition

from streamer.config import load_config
from streamer.kafka.admin import create_topics
from streamer.kafka.broker import EmbeddedBroker
from streamer.service import Service
from streamer.synthetic import events as synthetic_events

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
    malformed_sent: int

    def line(self) -> str:
        return (
            f"summary produced={self.produced} scored={self.scored} "
            f"dead_letters={self.dead_letters} lost={self.lost} duplicates={self.duplicates}"
        )


def ensure_model(work_dir: Path) -> tuple[str, str]:
    import mlflow

    from streamer.train import train_and_register

    tracking_uri = f"sqlite:///{work_dir / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    with contextlib.suppress(Exception):
        client.get_model_version_by_alias("fraud-detector", "champion")
        return "models:/fraud-detector@champion", tracking_uri
    trained = train_and_register(tracking_uri, artifact_root=str(work_dir / "artifacts"))
    return trained.uri, tracking_uri


def _produce(bootstrap: str, count: int, bad_fraction: float, prefix: str) -> tuple[set[str], int]:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    ids: set[str] = set()
    malformed = 0
    for event in synthetic_events(
        count, bad_fraction=bad_fraction, seed=int(time.time()), id_prefix=prefix
    ):
        while True:
            try:
                producer.produce(INPUT, key=event.key, value=event.value)
                break
            except BufferError:
                producer.poll(0.1)
        ids.add(event.event_id)
        malformed += event.malformed
    if producer.flush(60) != 0:
        raise RuntimeError("demo producer could not deliver every event")
    return ids, malformed


def _read_back(bootstrap: str, topic: str, prefix: str) -> list[dict[str, Any]]:
    """Every record of ``topic`` whose key belongs to this run, read to the end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"demo-check-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        partitions = [TopicPartition(topic, p, 0) for p in metadata.partitions]
        consumer.assign(partitions)
        out: list[dict[str, Any]] = []
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 3.0:
            batch = consumer.consume(10_000, timeout=0.5)
            if batch:
                idle_since = time.monotonic()
            for message in batch:
                if message.error() is None and (message.key() or b"").startswith(prefix.encode()):
                    out.append(json.loads(message.value() or b"null"))
        return out
    finally:
        consumer.close()


def run_demo(
    *,
    events: int,
    bad_fraction: float,
    work_dir: Path,
    bootstrap: str | None,
    duration: float | None,
    env: Mapping[str, str],
    out: TextIO,
) -> DemoSummary:
    work_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        broker_is_embedded = bootstrap is None
        if bootstrap is None:
            broker = stack.enter_context(EmbeddedBroker(log_dir=work_dir))
            bootstrap = broker.bootstrap_servers
            print(f"demo: embedded broker at {bootstrap}", file=out, flush=True)
        create_topics(bootstrap, {}, {INPUT: PARTITIONS, OUTPUT: PARTITIONS, DEAD: 1})
        print("demo: preparing the model (trained once, then reused)", file=out, flush=True)
        model_uri, tracking_uri = ensure_model(work_dir)

        prefix = f"demo-{uuid.uuid4().hex[:6]}"
        config = load_config(
            None,
            env={
                **{k: v for k, v in env.items() if k.startswith("STREAMER_")},
                "STREAMER_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
                "STREAMER_MODEL__URI": model_uri,
                "STREAMER_MODEL__TRACKING_URI": tracking_uri,
                "STREAMER_MODEL__THRESHOLD": env.get("STREAMER_MODEL__THRESHOLD", "0.5"),
                "STREAMER_MODEL__SCORE_COLUMN": "1",
                "STREAMER_SPARK__CHECKPOINT_DIR": str(work_dir),
                # The embedded broker starts empty, so its runs start over; on a real broker
                # the demo resumes where the last demo run stopped.
                "STREAMER_OFFSETS__PATH": str(
                    work_dir / "offsets" / (prefix if broker_is_embedded else "external")
                ),
            },
        )
        service = Service(config)
        stack.callback(service.stop)
        service.start()
        print(f"demo: service running, producing {events} events", file=out, flush=True)
        producer = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="producer"))
        produced = producer.submit(_produce, bootstrap, events, bad_fraction, prefix)
        deadline = time.monotonic() + duration if duration else None
        last_print = 0.0
        while True:
            totals = service.stats.totals()
            done = totals.outputs + totals.dead_letters_total
            if time.monotonic() - last_print >= 2.0:
                print(
                    f"demo: batches={totals.batches} scored={totals.outputs} "
                    f"dead_letters={totals.dead_letters_total}",
                    file=out,
                    flush=True,
                )
                last_print = time.monotonic()
            if produced.done() and done >= events:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            if service.query is None or not service.query.isActive:
                break
            time.sleep(0.25)
        result = service.stop()
        totals = result.totals
        print(
            f"demo: batches={totals.batches} scored={totals.outputs} "
            f"dead_letters={totals.dead_letters_total} (the service stopped)",
            file=out,
            flush=True,
        )
        if result.error:
            print(f"demo: the query failed: {result.error.splitlines()[0]}", file=out)

        ids, malformed = produced.result(timeout=120)
        scored = _read_back(bootstrap, OUTPUT, prefix)
        dead = _read_back(bootstrap, DEAD, prefix)
        seen = Counter([r["key"] for r in scored] + [r["key"] for r in dead])
        flagged = [r for r in scored if r.get("label")][-5:]
        for record in flagged:
            print(
                f"demo: flagged {record['key']} p(fraud)={record['prediction']['1']:.3f} "
                f"partition={record['source']['partition']} offset={record['source']['offset']}",
                file=out,
            )
        reasons = Counter(r["reason"] for r in dead)
        if reasons:
            print(f"demo: dead letters by reason {dict(reasons)}", file=out)
        return DemoSummary(
            produced=len(ids),
            scored=len(scored),
            dead_letters=len(dead),
            lost=len(ids - set(seen)),
            duplicates=sum(c - 1 for c in seen.values() if c > 1),
            malformed_sent=malformed,
        )
    raise AssertionError("unreachable")
