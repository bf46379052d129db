"""A background thread that does one thing every few seconds until it is stopped."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Periodic:
    """Calls ``tick`` every ``interval`` seconds on a daemon thread.

    The first call comes one interval after :meth:`start`. The loop ends when :meth:`stop`
    is called or ``tick`` returns False; ``tick`` handles its own errors (an exception
    ends the thread).
    """

    def __init__(self, name: str, interval: float, tick: Callable[[], bool | None]) -> None:
        self.interval = interval
        self._tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Ask the loop to end and wait for it (unless called from the loop itself)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self._tick() is False:
                return
