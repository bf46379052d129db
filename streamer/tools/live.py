"""What the demo shows while it runs: results tailed from Kafka, and a live terminal view.

:class:`ResultTail` reads the output and dead-letter topics as they fill, keeps the counts
that the final summary needs (matched by event id), and the recent window the view needs:
scored and alert rates, end-to-end latency percentiles, the last flagged transactions.
:class:`LiveView` renders it with ``rich`` on a terminal, or as a plain line every few
seconds otherwise.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np
from confluent_kafka import Consumer, TopicPartition

log = logging.getLogger(__name__)

WINDOW_SECONDS = 10.0


@dataclass(frozen=True)
class Snapshot:
    scored: int
    dead_letters: int
    scored_per_s: float
    alerts_per_s: float
    e2e_p50_ms: float | None
    e2e_p99_ms: float | None
    flagged: list[dict[str, Any]]


class ResultTail:
    """Tails ``topics`` on a thread, keeping only records whose key starts with ``prefix``."""

    def __init__(self, bootstrap: str, output_topic: str, dead_topic: str, prefix: str) -> None:
        self.bootstrap = bootstrap
        self.output_topic = output_topic
        self.dead_topic = dead_topic
        self.prefix = prefix.encode()
        self.seen: Counter[str] = Counter()
        self.dead_reasons: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._scored = 0
        self._dead = 0
        self._recent: deque[tuple[float, bool, float | None]] = deque()
        self._flagged: deque[dict[str, Any]] = deque(maxlen=5)
        self._last_record_at = time.monotonic()
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-tail", daemon=True)

    def start(self) -> ResultTail:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._tail()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("result tail failed")

    def _tail(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"demo-tail-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
            }
        )
        try:
            tps = []
            for topic in (self.output_topic, self.dead_topic):
                meta = consumer.list_topics(topic, timeout=10).topics[topic]
                tps += [TopicPartition(topic, p, 0) for p in meta.partitions]
            consumer.assign(tps)
            while not self._stop.is_set():
                for message in consumer.consume(5000, timeout=0.2):
                    if message.error() is None and (message.key() or b"").startswith(self.prefix):
                        self._add(message.topic() == self.output_topic, message.value())
        finally:
            consumer.close()

    def _add(self, is_output: bool, value: bytes | None) -> None:
        try:
            record = json.loads(value or b"null")
            key = str(record["key"])
        except (ValueError, TypeError, KeyError):
            log.warning("unexpected record in the results topics value=%r", (value or b"")[:200])
            return
        now = time.monotonic()
        with self._lock:
            self._last_record_at = now
            self.seen[key] += 1
            if not is_output:
                self._dead += 1
                self.dead_reasons[record["reason"]] += 1
                return
            self._scored += 1
            flagged = bool(record.get("label"))
            stamp = (record.get("source") or {}).get("timestamp")
            scored_at = record.get("scored_at")
            latency = scored_at - stamp if stamp is not None and scored_at is not None else None
            self._recent.append((now, flagged, latency))
            if flagged:
                self._flagged.append(record)

    def snapshot(self) -> Snapshot:
        now = time.monotonic()
        with self._lock:
            while self._recent and now - self._recent[0][0] > WINDOW_SECONDS:
                self._recent.popleft()
            recent = list(self._recent)
            scored, dead, flagged = self._scored, self._dead, list(self._flagged)
        latencies = [lat for _, _, lat in recent if lat is not None]
        p50, p99 = (
            (float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99)))
            if latencies
            else (None, None)
        )
        return Snapshot(
            scored=scored,
            dead_letters=dead,
            scored_per_s=len(recent) / WINDOW_SECONDS,
            alerts_per_s=sum(1 for _, f, _ in recent if f) / WINDOW_SECONDS,
            e2e_p50_ms=p50,
            e2e_p99_ms=p99,
            flagged=flagged,
        )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def drain(self, idle_seconds: float = 3.0, timeout: float = 120.0) -> None:
        """Wait until nothing new has arrived for ``idle_seconds``, then stop tailing."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._thread.is_alive():
            with self._lock:
                idle = time.monotonic() - self._last_record_at
            if idle >= idle_seconds:
                break
            time.sleep(0.2)
        self.close()


@dataclass(frozen=True)
class Status:
    """Service-side figures the view shows next to the tail's."""

    produced: int
    input_per_s: float
    batch_seconds: float | None
    lag: int | None
    batches: int


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


class LiveView:
    """A ``rich`` live panel on a terminal; a plain progress line elsewhere."""

    def __init__(self, out: TextIO, interactive: bool) -> None:
        self.out = out
        self.interactive = interactive
        self._live: Any = None
        self._last_plain = 0.0

    def __enter__(self) -> LiveView:
        if self.interactive:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.out, force_terminal=True)
            self._live = Live(console=console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def update(self, status: Status, snap: Snapshot) -> None:
        if self._live is not None:
            self._live.update(render(status, snap))
            return
        now = time.monotonic()
        if now - self._last_plain >= 2.0:
            self._last_plain = now
            print(
                f"demo: produced={status.produced} scored={snap.scored} "
                f"dead_letters={snap.dead_letters} scored/s={snap.scored_per_s:.0f} "
                f"e2e_p50={_ms(snap.e2e_p50_ms)} e2e_p99={_ms(snap.e2e_p99_ms)} "
                f"lag={'-' if status.lag is None else status.lag} "
                f"alerts/s={snap.alerts_per_s:.1f}",
                file=self.out,
                flush=True,
            )


def render(status: Status, snap: Snapshot) -> Any:
    """The live panel: figures on top, the last flagged transactions below."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    figures = Table.grid(padding=(0, 3))
    for _ in range(4):
        figures.add_column(justify="right")
    batch = "-" if status.batch_seconds is None else f"{status.batch_seconds * 1000:,.0f} ms"
    rows: Sequence[tuple[str, str, str, str]] = (
        ("input/s", f"{status.input_per_s:,.0f}", "scored/s", f"{snap.scored_per_s:,.0f}"),
        ("e2e p50", _ms(snap.e2e_p50_ms), "e2e p99", _ms(snap.e2e_p99_ms)),
        ("batch latency", batch, "lag", "-" if status.lag is None else f"{status.lag:,}"),
        (
            "fraud alerts/s",
            f"{snap.alerts_per_s:,.1f}",
            "batches",
            f"{status.batches:,}",
        ),
        (
            "produced",
            f"{status.produced:,}",
            "scored / dead letters",
            f"{snap.scored:,} / {snap.dead_letters:,}",
        ),
    )
    for label, value, label2, value2 in rows:
        figures.add_row(f"[dim]{label}[/]", f"[bold]{value}[/]", f"[dim]{label2}[/]", value2)
    flagged = Table(title="last flagged transactions", expand=True)
    for name in ("event", "p(fraud)", "model", "partition/offset", "e2e"):
        flagged.add_column(name)
    for record in reversed(snap.flagged):
        prediction = record.get("prediction")
        score = prediction.get("1") if isinstance(prediction, dict) else prediction
        source = record["source"]
        stamp = source.get("timestamp")
        flagged.add_row(
            str(record["key"]),
            f"{score:.3f}" if isinstance(score, (int, float)) else str(score),
            f"{record['model']['name']} v{record['model']['version']}",
            f"{source['partition']}/{source['offset']}",
            _ms(None if stamp is None else record["scored_at"] - stamp),
        )
    return Panel(Group(figures, flagged), title="streamer demo (Ctrl-C to stop)")
