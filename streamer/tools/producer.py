"""``streamer produce``: synthetic card transactions to Kafka, at a target rate.

Events carry ``event_id`` (also the record key), so outputs and dead letters can be matched
to what was produced. A chosen fraction is malformed on purpose, to exercise the
dead-letter path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from streamer.kafka.io import produce_all
from streamer.tools.synthetic import Event, events

log = logging.getLogger(__name__)

CHUNK = 10_000


@dataclass
class Produced:
    """What was produced: counts, and the ids for matching results."""

    ids: set[str] = field(default_factory=set)
    malformed: int = 0
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return len(self.ids)


def _stream(bad_fraction: float, seed: int, id_prefix: str) -> Iterator[Event]:
    chunk = 0
    while True:
        yield from events(
            CHUNK,
            bad_fraction=bad_fraction,
            seed=seed + chunk,
            id_prefix=id_prefix,
            first_id=chunk * CHUNK,
        )
        chunk += 1


def produce_synthetic(
    bootstrap_servers: str,
    topic: str,
    *,
    client: Mapping[str, Any] | None = None,
    count: int | None = None,
    duration: float | None = None,
    rate: float | None = None,
    bad_fraction: float = 0.0,
    id_prefix: str = "txn",
    seed: int = 0,
    stop: threading.Event | None = None,
    on_progress: Callable[[Produced], None] | None = None,
) -> Produced:
    """Produce until ``count`` events, ``duration`` seconds, or ``stop``, whichever first.

    ``rate`` is events per second (None or 0: as fast as possible). Every event is
    acknowledged by the broker before this returns.
    """
    if count is None and duration is None and stop is None:
        raise ValueError("give count, duration or stop, or this never ends")
    done = Produced()
    started = time.monotonic()

    def records() -> Iterator[tuple[bytes, bytes]]:
        last_report = started
        for i, event in enumerate(_stream(bad_fraction, seed, id_prefix)):
            now = time.monotonic()
            if count is not None and i >= count:
                return
            if duration is not None and now - started >= duration:
                return
            if stop is not None and stop.is_set():
                return
            yield event.key, event.value
            done.ids.add(event.event_id)
            done.malformed += event.malformed
            if on_progress is not None and now - last_report >= 1.0:
                on_progress(done)
                last_report = now

    produce_all(
        bootstrap_servers, client or {}, topic, records(), defaults={"linger.ms": 10}, rate=rate
    )
    done.seconds = time.monotonic() - started
    log.info(
        'produced topic="%s" events="%d" malformed="%d" seconds="%.1f"',
        topic,
        done.count,
        done.malformed,
        done.seconds,
    )
    return done
