"""One side of a blue-green pair: warm standby, takeover, and handing over on request.

With ``handoff.color`` set (:mod:`streamer.handoff.lease` holds the protocol), a run resolves
its model, warms the Python workers and the streaming plan while the other side still
serves, then takes the lease (asking a live owner to drain with ``takeover``); only then
does it read the start offsets, which the previous owner persisted before releasing. The
offsets listener writes only while the lease is still ours. A successor's request stops
this run the same way SIGTERM does (the query drains at a batch boundary), then the lease is
marked released at the durable position. Without a color no lease is taken, and
:meth:`Handoff.watch`, :meth:`~Handoff.report` and :meth:`~Handoff.release` do nothing.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable

from pyspark.sql import SparkSession

from streamer.config import Config
from streamer.handoff.lease import Acquired, Lease, LeaseHolder, lease_store_for
from streamer.kafka.backend import KafkaBackend
from streamer.kafka.probe import broker_ends
from streamer.metrics import RunStats, ServiceMetrics
from streamer.offsets import Offsets
from streamer.offsets.startup import StartPlan, offset_difference
from streamer.pipeline import warm_up
from streamer.scoring.swap import ModelSwapper

log = logging.getLogger(__name__)


class Handoff:
    """The lease side of a run: :meth:`take`, :meth:`watch`, then :meth:`release`.

    The heartbeat thread reports a successor's request or the lease's loss by setting
    ``wake``, so the run loop stops; :attr:`successor` and :attr:`lost` say which.
    """

    def __init__(
        self,
        config: Config,
        color: str | None,
        *,
        takeover: bool,
        interrupt: threading.Event,
        metrics: ServiceMetrics,
        wake: threading.Event,
    ) -> None:
        """``takeover`` lets this run ask a live owner to hand over; ``interrupt`` cancels a
        start-up still waiting for it."""
        self.config, self.color, self.takeover = config, color, takeover
        self._interrupt, self.metrics, self._wake = interrupt, metrics, wake
        self.lease: LeaseHolder | None = None
        self.acquired: Acquired | None = None
        self.successor: str | None = None
        """Who asked for the lease: this run hands over."""
        self.lost = False
        self._lease_lost: Lease | None = None
        self._reported = False

    @property
    def enabled(self) -> bool:
        return bool(self.color)

    @property
    def ended(self) -> bool:
        """A successor asked for the lease, or it was taken: this run must stop."""
        return bool(self.successor) or self.lost

    def take(
        self,
        instance: str,
        spark: SparkSession,
        backend: KafkaBackend,
        swapper: ModelSwapper,
        work_dir: str,
    ) -> None:
        """Warm up while the current owner still serves (the stream's plan run once over
        recent input), then acquire the lease."""
        assert self.color is not None and swapper.models and swapper.scoring
        kafka = self.config.kafka
        warm_up(
            spark,
            backend=backend,
            models=swapper.models,
            scoring=swapper.scoring,
            shadow=swapper.shadow,
            input_topic=kafka.input_topic,
            ends=lambda: broker_ends(kafka),
            rows=self.config.handoff.warmup_rows,
            checkpoint_dir=tempfile.mkdtemp(prefix="warm-up-", dir=work_dir),
        )
        cfg = self.config.handoff
        self.lease = LeaseHolder(
            lease_store_for(self.config),
            self.color,
            instance,
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

    def may_write(self) -> Callable[[], bool] | None:
        """What the offsets listener asks before each write; None without a lease."""
        return self.lease.still_owner if self.lease else None

    def watch(self, position: Callable[[], Offsets | None]) -> None:
        """Heartbeat the lease (carrying ``position``) until released or lost."""
        if self.lease is not None:
            self.lease.start_heartbeat(
                on_handoff=self._on_handoff, on_lost=self._on_lost, position=position
            )

    def _on_handoff(self, successor: str) -> None:
        self.successor = successor
        self._wake.set()

    def _on_lost(self, current: Lease | None) -> None:
        self._lease_lost = current
        self.lost = True
        self._wake.set()

    def report(self, plan: StartPlan | None, stats: RunStats) -> None:
        """Once this run's first output exists: how the handoff from the previous owner went."""
        acquired = self.acquired
        if self._reported or acquired is None or plan is None:
            return
        previous = acquired.previous
        if previous is None:
            self._reported = True
            return
        first = stats.totals().first_output_at_ms
        if first is None:
            return
        self._reported = True
        since = previous.last_output_at or previous.heartbeat_at
        gap = max(0.0, (first - since) / 1000.0)
        self.metrics.handoff_gap.set(gap)
        if acquired.how == "released" and previous.offsets is not None:
            lost, duplicates = offset_difference(previous.offsets, plan.offsets)
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

    def release(self, position: Offsets | None, last_output_at: int | None) -> str | None:
        """Mark the lease released at the durable ``position``; the run's error when the
        lease was taken over or lost before it could be released."""
        if self.lost:
            return (
                "the handoff lease was taken over ("
                + (self._lease_lost.describe() if self._lease_lost else "gone")
                + "); stopped without persisting"
            )
        lease = self.lease
        if lease is not None and lease.lease is not None and not lease.release(
            position, last_output_at
        ):
            return "the handoff lease was lost before it could be released"
        return None
