"""Where a run starts: stored offsets, checked against the broker, or an operator's reset.

The rules, in order:

1. ``--reset-offsets earliest|latest|<json>`` wins. It is resolved to concrete offsets (a
   JSON spec is merged over the stored position, so unnamed partitions keep theirs) and
   written to the store before the query starts, so a crash before the first batch cannot
   jump anywhere else.
2. Otherwise the store's newest readable generation. An unreadable store refuses to start
   (:class:`OffsetsError`); nothing silently jumps to latest.
3. A stored offset below the broker's earliest (deleted by retention), or above its latest
   (the topic was recreated), follows ``offsets.on_out_of_range``: ``fail`` (default) stops
   start-up; ``skip`` starts that partition at its earliest, with a loud warning and the
   skipped count in a metric.
4. Partitions with no stored offset (a new partition, a new topic, a fresh store) start at
   ``kafka.starting_offsets`` (default earliest); the backends fill them in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from streamer.errors import KafkaIOError, MissingTopicError, OffsetsError, StreamerError
from streamer.offsets.core import Offsets, format_offsets, merge_offsets, parse_offsets
from streamer.offsets.stores import OffsetStore

log = logging.getLogger(__name__)
T = TypeVar("T")

TopicPartition = tuple[str, int]
Ends = tuple[dict[TopicPartition, int], dict[TopicPartition, int]]


@dataclass(frozen=True)
class StartPlan:
    """Explicit start offsets (other partitions use the default) and why."""

    offsets: Offsets
    origin: str


def parse_reset(spec: str) -> str | Offsets:
    """``earliest`` / ``latest`` as given, or the offsets a JSON spec names."""
    if spec in ("earliest", "latest"):
        return spec
    offsets = parse_offsets(spec)
    if not offsets or any(o < 0 for ps in offsets.values() for o in ps.values()):
        raise OffsetsError(
            f"--reset-offsets {spec!r}: expected earliest, latest or JSON such as "
            '{"transactions": {"0": 42}} with offsets >= 0'
        )
    return offsets


def resolve_reset(
    spec: str,
    earliest: Mapping[TopicPartition, int],
    latest: Mapping[TopicPartition, int],
) -> Offsets:
    """Concrete offsets from a reset spec: every partition's earliest or latest, or the
    partitions a JSON spec names (the caller merges those over the stored position)."""
    target = parse_reset(spec)
    if isinstance(target, dict):
        unknown = [(t, p) for t, ps in target.items() for p in ps if (t, p) not in earliest]
        if unknown:
            raise OffsetsError(f"--reset-offsets names partitions the broker lacks: {unknown}")
        return target
    ends = earliest if target == "earliest" else latest
    out: Offsets = {}
    for (topic, partition), offset in ends.items():
        out.setdefault(topic, {})[partition] = offset
    return out


def check_stored(
    stored: Offsets,
    earliest: Mapping[TopicPartition, int],
    latest: Mapping[TopicPartition, int],
    policy: str,
) -> tuple[Offsets, dict[TopicPartition, int]]:
    """Stored offsets of the partitions the broker has, with out-of-range offsets handled.

    Below the earliest: the events were deleted by retention. Above the latest: the topic
    was recreated or truncated, and its offsets started over. ``fail`` refuses both;
    ``skip`` starts such a partition at its earliest offset. Returns the start offsets and,
    per partition moved forward, the number of events skipped. Partitions the broker no
    longer has are dropped from the start offsets.
    """
    start: Offsets = {}
    skipped: dict[TopicPartition, int] = {}
    gaps: list[str] = []
    for topic, partitions in stored.items():
        for partition, offset in partitions.items():
            tp = (topic, partition)
            if tp not in earliest:
                continue
            low, high = earliest[tp], latest.get(tp)
            if offset < low:
                gaps.append(f"{topic}[{partition}] stored {offset} < earliest {low} (retention)")
                skipped[tp] = low - offset
                offset = low
            elif high is not None and offset > high:
                gaps.append(
                    f"{topic}[{partition}] stored {offset} > latest {high} (topic recreated?)"
                )
                offset = low
            start.setdefault(topic, {})[partition] = offset
    if gaps and policy != "skip":
        raise OffsetsError(
            f"stored offsets are outside what the broker holds: {'; '.join(gaps)}. To start "
            "those partitions at their earliest retained event, set offsets.on_out_of_range: "
            "skip (or STREAMER_OFFSETS__ON_OUT_OF_RANGE=skip), or choose a position with "
            "--reset-offsets"
        )
    for gap in gaps:
        log.warning('OFFSETS OUT OF RANGE, starting at the earliest gap="%s"', gap)
    return start, skipped


def describe(plan: StartPlan) -> str:
    return f'origin="{plan.origin}" offsets="{format_offsets(plan.offsets)}"'


def plan_start(
    store: OffsetStore,
    reset: str | None,
    ends: Callable[[], Ends],
    *,
    policy: str,
    default_start: str,
    on_skipped: Callable[[str, int], None],
) -> tuple[StartPlan, Offsets]:
    """Start offsets for the input topic, and the stored history to carry forward.

    ``ends`` reads the broker's (earliest, latest) offsets, retried on a transient error;
    ``reset`` is the operator's ``--reset-offsets``; ``policy`` is
    ``offsets.on_out_of_range``; ``on_skipped(topic, count)`` counts events a ``skip`` jumps.
    """
    earliest, latest = _retrying(ends, "reading the input offsets")
    history: Offsets = {}
    if reset is not None:
        offsets = resolve_reset(reset, earliest, latest)
        if reset not in ("earliest", "latest"):
            offsets = merge_offsets(_readable(store), offsets)
        store.save(offsets, writer="reset")
        log.warning('offsets reset by the operator to="%s" store="%s"', reset, store.description)
        plan = StartPlan(offsets, f"--reset-offsets {reset}")
    elif (stored := store.load()) is None:
        plan = StartPlan({}, f"empty store, kafka.starting_offsets={default_start}")
    else:
        start, skipped = check_stored(stored.offsets, earliest, latest, policy)
        for (skipped_topic, _), count in skipped.items():
            on_skipped(skipped_topic, count)
        plan = StartPlan(start, f"store generation {stored.generation or 'committed'}")
        history = stored.offsets
    log.info('start offsets store="%s" %s', store.description, describe(plan))
    return plan, history


def _readable(store: OffsetStore) -> Offsets:
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


def offset_difference(previous: Offsets, start: Offsets) -> tuple[int, int]:
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
