"""Driver side: follow ``model.uri``'s alias in the registry and vet each new version.

:class:`AliasFollower` polls the registry every ``model.poll_seconds`` on its own thread.
When the alias points somewhere new it resolves the candidate (pin, download, probe), then
checks it against the model being served:

1. the signature: :func:`.model.incompatibilities` (the candidate must read the events the
   current model reads, and keep the output's shape);
2. a sample: the input topic's most recent records, scored on the driver by both models;
   every record the current model scores, the candidate must score too.

A candidate that passes is handed to ``on_ready`` (the service swaps at a batch boundary);
one that fails is refused: an ERROR log line saying why, ``on_refused`` (a metric), and the
version is remembered so it is not retried until the alias moves again. The served model
never changes here; the follower only proposes.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamer.errors import StreamerError
from streamer.scoring import envs
from streamer.scoring.model import Models, ModelSpec, incompatibilities
from streamer.scoring.parse import RecordParser
from streamer.scoring.predictions import predict_isolating

log = logging.getLogger(__name__)

Resolve = Callable[[], Models]
"""Resolves ``model.uri`` afresh: a ModelSpec, or a GroupedModels for a template."""
Peek = Callable[[], str]
"""What :meth:`.model.Models.identity` would say of a fresh resolve, from registry metadata
alone."""


def sample_failures(
    current: ModelSpec,
    candidate: ModelSpec,
    values: Sequence[bytes | None],
    max_record_bytes: int,
    loaded: dict[str, Any],
) -> list[str]:
    """Records of ``values`` that ``current`` scores and ``candidate`` does not, described.

    Both models run here, on the driver; ``loaded`` caches them by path across calls.
    """

    def scored(spec: ModelSpec) -> tuple[set[int], dict[int, str]]:
        parsed = RecordParser(spec.input_schema, max_record_bytes).parse(list(values))
        errors = {pos: f"{reason.value}: {message}" for pos, reason, message in parsed.rejects}
        if not len(parsed.frame):
            return set(), errors
        model = loaded.get(spec.local_path)
        if model is None:
            model = loaded[spec.local_path] = envs.load(spec.local_path, spec.env_manager)
        predictions, failures = predict_isolating(model, parsed.frame)
        positions = parsed.positions
        errors.update({int(positions[i]): f"model_error: {m}" for i, m in failures.items()})
        return {int(positions[i]) for i in predictions}, errors

    ok_now, _ = scored(current)
    ok_next, errors = scored(candidate)
    lost = sorted(ok_now - ok_next)
    return [f"record {i}: {errors.get(i, 'not scored')}" for i in lost]


@dataclass(eq=False, kw_only=True)
class AliasFollower:
    """Polls for a new version of the served model(s) and vets it; see the module doc."""

    peek: Peek
    resolve: Resolve
    current: Models
    poll_seconds: float
    sample: Callable[[], list[bytes | None]]
    max_record_bytes: int
    on_ready: Callable[[Models], None]
    on_refused: Callable[[str, str], None]
    _refused: str | None = field(default=None, init=False)
    _pending: str | None = field(default=None, init=False)
    _loaded: dict[str, Any] = field(default_factory=dict, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def start(self) -> AliasFollower:
        self._thread = threading.Thread(target=self._run, name="alias-follower", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self._close_loaded()

    def swapped(self, models: Models) -> None:
        """The service now serves ``models`` (called after a swap)."""
        self.current = models
        self._pending = None
        self._close_loaded()

    def rejected(self, models: Models) -> None:
        """The service could not serve ``models`` after all (its executors could not load
        it, or its query would not start): not tried again until the alias moves."""
        self._refused = models.identity()
        self._pending = None

    def _close_loaded(self, keep: Models | None = None) -> None:
        """Close the models loaded for vetting, except ``keep``'s."""
        kept = {s.local_path for s in keep.served()} if keep is not None else set()
        for path in [p for p in self._loaded if p not in kept]:
            close = getattr(self._loaded.pop(path), "close", None)
            if close is not None:
                close()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            if self._pending is not None:
                continue  # a vetted candidate waits for its batch boundary
            try:
                self.check()
            except Exception:  # the follower never takes the service down
                log.exception("model alias check failed; will retry")

    def check(self) -> Models | None:
        """One poll: the vetted candidate handed to ``on_ready``, or None."""
        try:
            key = self.peek()
        except StreamerError as exc:
            log.warning('model alias lookup failed; retrying error="%s"', exc)
            return None
        if key != self._refused:
            self._refused = None  # the alias moved away: a later move back is vetted again
        if key in (self.current.identity(), self._refused):
            return None
        try:
            candidate = self.resolve()
        except StreamerError as exc:
            self._refuse(key, f"cannot resolve it: {exc}")
            return None
        key = candidate.identity()  # the alias may have moved again since the peek
        try:
            problems = self._vet(candidate)
        except Exception:
            _discard(candidate, self.current)
            raise  # not a verdict on the version (e.g. the input topic is unreachable): retried
        finally:
            self._close_loaded(keep=self.current)
        if problems:
            _discard(candidate, self.current)
            reason = "; ".join(problems[:5]) + (
                f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
            )
            self._refuse(key, reason)
            return None
        log.info('model version accepted candidate="%s" current="%s"', key, self.current.identity())
        self._pending = key
        self.on_ready(candidate)
        return candidate

    def _refuse(self, key: str, reason: str) -> None:
        """Log and count the refusal; the version is not tried again until the alias moves
        away from it (a move back to it is a new deployment and is vetted again)."""
        self._refused = key
        log.error(
            'model version refused; still serving the current one candidate="%s" '
            'current="%s" reason="%s"',
            key,
            self.current.identity(),
            reason,
        )
        self.on_refused(key, reason)

    def _vet(self, candidate: Models) -> list[str]:
        pairs = _pairs(self.current, candidate)
        problems = [f"{name}: {p}" for name, old, new in pairs for p in incompatibilities(old, new)]
        if problems:
            return problems
        values = self.sample()
        if not values:
            return []
        for name, old, new in pairs:
            failed = sample_failures(old, new, values, self.max_record_bytes, self._loaded)
            if failed:
                problems.append(
                    f"{name}: fails {len(failed)} of {len(values)} recent input records the "
                    f"current version scores; first {failed[0][:300]}"
                )
        return problems


def _pairs(current: Models, candidate: Models) -> list[tuple[str, ModelSpec, ModelSpec]]:
    """(label, current, candidate) for each model that changed. Models serve the same group
    when they have the same ``uri`` (a single model's is ``model.uri`` itself)."""
    served = {spec.uri: spec for spec in current.served()}
    return [
        (spec.pinned_uri, served[spec.uri], spec)
        for spec in candidate.served()
        if spec.uri in served and spec.pinned_uri != served[spec.uri].pinned_uri
    ]


def _discard(candidate: Models, current: Models) -> None:
    """Remove the download of a candidate that will not be served."""
    keep = {s.local_path for s in current.served()}
    for spec in candidate.served():
        if spec.local_path not in keep:
            shutil.rmtree(spec.local_path, ignore_errors=True)
