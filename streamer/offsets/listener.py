"""The listener that owns the service's position."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pyspark.sql.streaming import StreamingQueryListener

from streamer.offsets.core import Offsets, format_offsets, merge_offsets, parse_offsets
from streamer.offsets.stores import OffsetStore, SecondaryStoreError

log = logging.getLogger(__name__)


class OffsetsListener(StreamingQueryListener):
    """Persists the end offsets of every completed micro-batch of one query (and of the
    queries that replace it after a model swap, see :meth:`retarget`).

    Ordering and threading contract:

    * Spark delivers ``onQueryProgress`` on its listener-bus thread, asynchronously and in
      batch order, only **after** the batch's sink commit. So a persisted offset is always one
      whose events are already in the output topic: a crash can replay the batches between
      the last persist and the crash (at-least-once), but never skip one.
    * The last progress event can arrive after the query has stopped;
      :meth:`wait_persisted` waits for it.
    * Nothing escapes the callback. A failed persist is logged and counted, and the next
      progress event persists the newer position (which covers the failed one);
      :meth:`flush` retries the newest unpersisted position at shutdown.

    The persisted document is the full position: the start offsets merged with every batch's
    ``endOffset``, so partitions idle in this run keep their stored offsets.

    ``may_write`` is the handoff fence, asked before every persist: once it returns False
    (another instance holds the lease), nothing more is persisted, so a superseded owner
    cannot move the new one's position.
    """

    def __init__(
        self,
        query_name: str,
        store: OffsetStore,
        initial: Offsets | None = None,
        on_failure: Callable[[str], None] | None = None,
        may_write: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__()
        self._may_write = may_write
        self.query_name = query_name
        self.store = store
        self._on_failure = on_failure
        self._cond = threading.Condition()
        self._save_lock = threading.Lock()
        self._position: Offsets = merge_offsets(initial or {})
        self._position_batch = -1
        self.persisted_batch = -1
        self.attempted_batch = -1
        self.persisted: Offsets = merge_offsets(initial or {})
        self.failures = 0

    def onQueryStarted(self, event: Any) -> None:
        pass

    def onQueryIdle(self, event: Any) -> None:
        pass

    def onQueryTerminated(self, event: Any) -> None:
        pass

    def onQueryProgress(self, event: Any) -> None:
        try:
            progress = event.progress
            ended: Offsets = {}
            for source in progress.sources:
                ended = merge_offsets(ended, parse_offsets(source.endOffset))
            with self._cond:  # the name is checked under the lock :meth:`retarget` takes
                if progress.name != self.query_name:
                    return
                self._position = merge_offsets(self._position, ended)
                self._position_batch = int(progress.batchId)
            self._persist()
        except Exception:
            log.exception('offsets listener failed query="%s"', self.query_name)

    def _persist(self) -> bool:
        with self._save_lock:
            return self._persist_locked()

    def _persist_locked(self) -> bool:
        with self._cond:
            offsets = merge_offsets(self._position)
            batch = self._position_batch
            if batch <= self.persisted_batch:
                return True
        if self._may_write is not None and not self._may_write():
            log.error('offsets not persisted: the lease is lost batch="%d"', batch)
            with self._cond:
                self.attempted_batch = max(self.attempted_batch, batch)
                self._cond.notify_all()
            return False
        try:
            self.store.save(offsets, batch_id=batch, writer=self.query_name)
        except SecondaryStoreError as exc:
            # Durable in the primary; only the lag-tool view is behind.
            for kind in exc.kinds:
                self._failed(kind)
            log.warning('offsets secondary store behind batch="%d" error="%s"', batch, exc)
        except Exception as exc:
            self.failures += 1
            self._failed(self.store.kind)
            log.error(
                'offsets persist failed store="%s" batch="%d" failures="%d" error="%s"',
                self.store.description,
                batch,
                self.failures,
                exc,
            )
            with self._cond:
                self.attempted_batch = max(self.attempted_batch, batch)
                self._cond.notify_all()
            return False
        with self._cond:
            self.attempted_batch = max(self.attempted_batch, batch)
            if batch > self.persisted_batch:
                self.persisted_batch = batch
                self.persisted = offsets
            self._cond.notify_all()
        log.debug('offsets persisted batch="%d" offsets="%s"', batch, format_offsets(offsets))
        return True

    def _failed(self, kind: str) -> None:
        if self._on_failure is not None:
            self._on_failure(kind)

    def retarget(self, query_name: str) -> None:
        """Persist for the query that replaces the stopped one (a model swap), whose batch ids
        start again at 0, from :attr:`position`. Call it once the stopped query's last
        progress has arrived; late events of the old query are ignored by name."""
        with self._save_lock, self._cond:
            self.query_name = query_name
            self._position_batch = self.persisted_batch = self.attempted_batch = -1

    @property
    def position(self) -> Offsets:
        """The end of the last completed batch (persisted, or about to be)."""
        with self._cond:
            return merge_offsets(self._position)

    def wait_persisted(self, batch_id: int, timeout: float) -> bool:
        """Wait until ``batch_id``'s progress has arrived and its persist was attempted;
        True when it is durable."""
        with self._cond:
            self._cond.wait_for(lambda: self.attempted_batch >= batch_id, timeout)
            return self.persisted_batch >= batch_id

    def flush(self, attempts: int = 3, backoff: float = 0.5) -> bool:
        """Retry persisting the newest position; True when it is durable."""
        for attempt in range(attempts):
            if self._may_write is not None and not self._may_write():
                return False
            if self._persist():
                return True
            time.sleep(backoff * (attempt + 1))
        return False
