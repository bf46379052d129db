"""The served model(s) of a run, and switching to a new version while the run goes on.

:meth:`ModelSwapper.resolve` resolves ``model.uri`` (and the shadow), pins, validates and
ships it before the query starts. With ``model.follow_alias`` an
:class:`~streamer.scoring.follow.AliasFollower` proposes vetted new versions and wakes the
run loop, which calls :meth:`ModelSwapper.swap`: the new version is loaded in the workers,
the query drained the same fenced way as a stop, and a new query started at its end in the
same session, with the listeners retargeted to it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pyspark.sql import SparkSession

from streamer.config import Config
from streamer.errors import StreamerError
from streamer.kafka.probe import recent_values
from streamer.metrics import ServiceMetrics
from streamer.offsets import format_offsets
from streamer.pipeline import warm_up_workers
from streamer.query import Query, check_topics
from streamer.scoring.follow import AliasFollower
from streamer.scoring.groups import peek_groups, resolve_groups
from streamer.scoring.model import (
    Models,
    ModelSpec,
    pin_model_uri,
    registry_client,
    resolve_model,
    ship_model,
)
from streamer.scoring.scorer import ScoringSettings

log = logging.getLogger(__name__)


class ModelSwapper:
    """What the run serves (:attr:`models`, :attr:`shadow`, :attr:`scoring`), and the
    alias follower that proposes what it serves next."""

    def __init__(
        self, config: Config, spark: SparkSession, metrics: ServiceMetrics, work_dir: str
    ) -> None:
        self.config, self.spark, self.metrics, self.work_dir = config, spark, metrics, work_dir
        self.models: Models | None = None
        self.shadow: ModelSpec | None = None
        self.scoring: ScoringSettings | None = None
        self.follower: AliasFollower | None = None
        self._candidate: Models | None = None

    def resolve(self) -> tuple[Models, ScoringSettings]:
        """Resolve, pin, validate and ship the model(s) and the shadow, if any."""
        cfg = self.config
        self.models = self._resolve_models()
        self._ship(self.models)
        self._set_model_info(self.models)
        self.shadow = self._resolve_shadow()
        if self.shadow is not None:
            ship_model(self.spark, self.shadow)
        self.scoring = ScoringSettings(
            output_topic=cfg.kafka.output_topic,
            dead_letter_topic=cfg.kafka.dead_letter_topic,
            max_record_bytes=cfg.parse.max_record_bytes,
            threshold=cfg.model.threshold,
            score_column=cfg.model.score_column,
            shadow_topic=cfg.shadow.topic if self.shadow is not None else None,
            cache_size=cfg.model.cache_size,
        )
        return self.models, self.scoring

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
            "work_dir": self.work_dir,
            "env_manager": cfg.env_manager,
        }

    def _ship(self, models: Models) -> None:
        models.ship(self.spark)

    def _set_model_info(self, models: Models) -> None:
        info = self.metrics.model_info
        info.clear()
        for spec in models.served():
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

    def follow(self, wake: threading.Event) -> None:
        """With ``model.follow_alias``: propose vetted new versions; ``wake`` is set when one
        is ready for :meth:`take_candidate`."""
        cfg = self.config
        m = cfg.model
        if not m.follow_alias:
            return
        assert self.models is not None

        def peek() -> str:
            if m.group_by is not None:
                return peek_groups(m.uri, m.group_by, m.tracking_uri, m.registry_uri)
            return pin_model_uri(m.uri, registry_client(m.tracking_uri, m.registry_uri)).pinned_uri

        def refused(candidate: str, reason: str) -> None:
            self.metrics.model_swaps.labels(outcome="refused").inc()

        def ready(candidate: Models) -> None:
            self._candidate = candidate
            wake.set()

        self.follower = AliasFollower(
            peek=peek,
            resolve=self._resolve_models,
            current=self.models,
            poll_seconds=m.poll_seconds,
            sample=lambda: recent_values(cfg.kafka, m.validation_rows),
            max_record_bytes=cfg.parse.max_record_bytes,
            on_ready=ready,
            on_refused=refused,
        ).start()

    def take_candidate(self) -> Models | None:
        """The version the follower proposed since the last call, if any."""
        candidate, self._candidate = self._candidate, None
        return candidate

    def close(self) -> None:
        """Stop following the alias (it may be mid-download)."""
        if self.follower is not None:
            self.follower.stop()
            self.follower = None

    def swap(self, candidate: Models, query: Query) -> str | None:
        """Serve ``candidate`` from the next batch on; the query's error if it died."""
        try:
            error = self._swap(candidate, query)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        if error is not None:
            log.error('query failed during the model swap error="%s"', error)
        return error

    def _swap(self, candidate: Models, query: Query) -> str | None:
        """The candidate is shipped and loaded in every Python worker while the old query
        still runs; then the source is fenced and drained (the last batch completes, nothing
        is in flight), the last batch's progress is awaited, and a new query starts at its
        end, in the same SparkSession, with a fresh checkpoint. No event is skipped or read
        twice with the ``python`` backend; Spark's ``kafka`` source cannot be fenced, so
        there a swap may replay the batch that was in flight.
        """
        old, scoring = self.models, self.scoring
        assert old is not None and scoring is not None
        started = time.monotonic()
        try:
            self._ship(candidate)
            warm_up_workers(
                self.spark,
                candidate,
                scoring,
                self.config.handoff.warmup_rows,
                shadow=self.shadow,
            )
        except Exception as exc:  # the executors cannot load it: keep the current version
            self._refuse(candidate, "model version refused; executors cannot load it", exc)
            return None
        error = query.stop(timeout=self.config.handoff.drain_timeout_seconds)
        if error is not None:
            return error
        position = query.end()
        query.next_generation()
        try:
            self.models = candidate
            query.start(candidate, position or None)
        except Exception as exc:
            self._refuse(
                candidate,
                "query with the new version failed to start; back to the current one",
                exc,
            )
            self.models = old
            query.start(old, position or None)
            return None
        self._set_model_info(candidate)
        self.metrics.model_swaps.labels(outcome="swapped").inc()
        if self.follower is not None:
            self.follower.swapped(candidate)
        log.info(
            'model swapped from="%s" to="%s" at="%s" query="%s" seconds="%.2f"',
            old.identity(),
            candidate.identity(),
            format_offsets(position),
            query.name,
            time.monotonic() - started,
        )
        return None

    def _refuse(self, candidate: Models, why: str, exc: Exception) -> None:
        """Keep serving the current version; not tried again until the alias moves."""
        log.error(
            '%s candidate="%s" error="%s"',
            why,
            candidate.identity(),
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
        )
        self.metrics.model_swaps.labels(outcome="refused").inc()
        if self.follower is not None:
            self.follower.rejected(candidate)
