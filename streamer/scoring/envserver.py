"""Executor side of isolated model environments (:mod:`.envs`): one MLflow scoring server
per Python worker process, serving a model from its restored environment.

The server never outlives its worker: it is forked from one long-lived thread with
``PR_SET_PDEATHSIG = SIGKILL`` (Linux), so the kernel kills it when the worker dies for any
reason, SIGKILL included (Spark kills idle Python workers after 60 s); ``atexit`` and
:meth:`IsolatedModel.close` stop it on clean exits. A server that died is restarted, once, by
the next ``predict``.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import logging
import os
import queue
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import IO, Any

import pandas as pd

from streamer.children import die_with
from streamer.errors import ModelError

log = logging.getLogger(__name__)

WIRES = ("parquet", "json")
TAIL_CHARS = 3000


def tail(text: str | bytes | None, chars: int = TAIL_CHARS) -> str:
    """The end of ``text``, at most ``chars`` characters of it."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.strip()
    return text if len(text) <= chars else "…" + text[-chars:]


class _Spawner:
    """Forks children from one thread that lives as long as the process.

    ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child ends, not the process;
    a server started from a short-lived thread (a task's helper thread, say) would be killed
    with it. Spawning always from this thread ties the server to the process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def run(self, job: Callable[[], Any]) -> Any:
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._jobs = queue.SimpleQueue()
                self._thread = threading.Thread(
                    target=self._serve, args=(self._jobs,), name="streamer-env-spawner", daemon=True
                )
                self._pid = os.getpid()
                self._thread.start()
        done: Future[Any] = Future()
        self._jobs.put((job, done))
        return done.result()

    @staticmethod
    def _serve(jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]]) -> None:
        while True:
            job, done = jobs.get()
            try:
                done.set_result(job())
            except BaseException as exc:
                done.set_exception(exc)


_spawner = _Spawner()


_live: set[IsolatedModel] = set()
"""Started and not closed; stopped at exit (a dropped instance keeps its server until then)."""


@atexit.register
def _close_all() -> None:
    for model in list(_live):
        model.close()


@dataclass(eq=False)
class IsolatedModel:
    """A model served from its restored environment (the directory ``environment``, made by
    :func:`.envs.prepare`) by a scoring server this process owns.

    ``predict`` takes a pandas DataFrame and returns what MLflow's scoring client returns (a
    DataFrame: one column per output column, or a single column for one value per row).
    ``wire`` is ``parquet`` or ``json`` (see :mod:`.envs`). Calls are serialised by
    a lock; the scoring path calls it from one thread per worker anyway.
    """

    local_path: str
    env_manager: str
    environment: Path
    _: KW_ONLY
    start_timeout: float = 120.0
    request_timeout: float = 600.0
    wire: str = "json"
    restarts: int = field(default=0, init=False)
    _process: subprocess.Popen[Any] | None = field(default=None, init=False)
    _output: IO[bytes] | None = field(default=None, init=False)
    _url: str = field(default="", init=False)
    _session: Any = field(default=None, init=False)
    _closed: bool = field(default=False, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        if self.wire not in WIRES:
            raise ModelError(f"wire = {self.wire!r} is not one of {', '.join(WIRES)}")

    # -- lifecycle --

    @property
    def pid(self) -> int | None:
        """The scoring server's process id (None before start and after close)."""
        return self._process.pid if self._process is not None else None

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> IsolatedModel:
        """Start the server and wait until it answers ``/ping``; ModelError on failure."""
        import requests
        from mlflow.pyfunc import scoring_server
        from mlflow.utils import find_free_port
        from mlflow.utils.environment import Environment
        from mlflow.utils.virtualenv import _get_virtualenv_activate_cmd

        started = time.perf_counter()
        # The environment exists (envs.load prepared it): activate it directly. Going through
        # PyFuncBackend.prepare_env again would cost a `python -c ""` in it, and for
        # virtualenv insist on pyenv being on this worker's PATH.
        environment = Environment(_get_virtualenv_activate_cmd(self.environment))
        port = find_free_port()
        command, command_env = scoring_server.get_cmd(
            self.local_path,
            port=port,
            host="127.0.0.1",  # type: ignore[arg-type]  # MLflow annotates host as int
            nworkers=1,
        )
        # The worker's PYTHONPATH (pyspark's zips, the service's paths) must not leak in.
        for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"):
            command_env.pop(name, None)
        # `exec`: the server replaces bash, so the death signal applies to it, not to bash.
        # An hour of keep-alive: a batch after an idle spell reuses its pooled connection.
        command = f"exec {command} --no-access-log --timeout-keep-alive 3600"
        # Unlinked at once, so nothing is left behind on SIGKILL; closed by _stop/close.
        output = tempfile.TemporaryFile()  # noqa: SIM115
        parent = os.getpid()
        try:
            process = _spawner.run(
                lambda: environment.execute(
                    command,
                    command_env,
                    preexec_fn=die_with(parent),
                    stdin=subprocess.DEVNULL,  # not the worker's: pyspark's daemon watches it
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    synchronous=False,
                )
            )
        except Exception as exc:
            output.close()
            raise ModelError(f"cannot start the model server for {self.local_path}: {exc}") from exc
        self._process, self._output = process, output
        self._url = f"http://127.0.0.1:{port}"
        self._session = requests.Session()
        self._session.trust_env = False  # no proxies for 127.0.0.1
        _live.add(self)
        self._await_ping(process)
        log.info(
            'model server ready model="%s" env_manager="%s" pid="%d" server_pid="%d" '
            'port="%d" seconds="%.2f"',
            Path(self.local_path).name,
            self.env_manager,
            os.getpid(),
            process.pid,
            port,
            time.perf_counter() - started,
        )
        return self

    def _await_ping(self, process: subprocess.Popen[Any]) -> None:
        """Wait until the server answers ``/ping``; stop it and raise if it exits first or
        is not ready within ``start_timeout``."""
        import requests

        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                if self._session.get(self._url + "/ping", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            code = process.poll()
            if code is not None:
                self._stop()
                raise ModelError(
                    f"the model server for {self.local_path} exited with code {code} before it "
                    f"was ready; its output (tail): {self.output_tail()}"
                )
            if time.monotonic() > deadline:
                self._stop()
                raise ModelError(
                    f"the model server for {self.local_path} was not ready after "
                    f"{self.start_timeout:.0f}s; its output (tail): {self.output_tail()}"
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.05)

    def output_tail(self, chars: int = TAIL_CHARS) -> str:
        """The end of the server's stdout and stderr."""
        if self._output is None:
            return ""
        try:
            self._output.flush()
            size = self._output.seek(0, os.SEEK_END)
            self._output.seek(max(0, size - chars * 2))
            return tail(self._output.read(), chars)
        except (OSError, ValueError):
            return ""

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._session is not None:
            self._session.close()
            self._session = None

    def close(self) -> None:
        """Stop the server (idempotent)."""
        # Bounded wait: at exit a predict may still hold the lock on another thread.
        locked = self._lock.acquire(timeout=10)
        try:
            if self._closed:
                return
            self._closed = True
            self._stop()
            if self._output is not None:
                self._output.close()
                self._output = None
            _live.discard(self)
        finally:
            if locked:
                self._lock.release()

    def _restart(self, why: str) -> None:
        self.restarts += 1
        log.warning(
            'model server restarting model="%s" pid="%d" server_pid="%s" restarts="%d" '
            'why="%s" output="%s"',
            Path(self.local_path).name,
            os.getpid(),
            self.pid,
            self.restarts,
            why,
            self.output_tail(400).replace('"', "'"),
        )
        self._stop()
        if self._output is not None:
            self._output.close()
            self._output = None
        self.start()

    # -- scoring --

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Score ``frame`` in the model's environment; ModelError when the model refuses it
        (the server's message included) or the server cannot be brought back."""
        import requests

        with self._lock:
            if self._closed:
                raise ModelError(f"the model server for {self.local_path} is closed")
            body = self._encode(frame)
            restarted = False
            for attempt in (1, 2):
                if not self.alive():
                    if restarted:
                        break
                    self._restart(f"server exited with code {self._exit_code()}")
                    restarted = True
                try:
                    return self._decode(self._post(body))
                except requests.Timeout as exc:
                    self._stop()  # hung: the next predict starts a fresh one
                    raise ModelError(
                        f"the model server for {self.local_path} gave no answer within "
                        f"{self.request_timeout:.0f}s; it was stopped and restarts on the "
                        "next batch"
                    ) from exc
                except requests.ConnectionError as exc:
                    # A server that died mid-request may not have been reaped yet: give it a
                    # moment, so the next attempt restarts a dead one and retries a live one.
                    with contextlib.suppress(subprocess.TimeoutExpired, AttributeError):
                        self._process.wait(timeout=0.5)  # type: ignore[union-attr]
                    failure: Exception = exc
                    log.warning(
                        'model server request failed model="%s" attempt="%d" error="%s"',
                        Path(self.local_path).name,
                        attempt,
                        exc,
                    )
            raise ModelError(
                f"the model server for {self.local_path} failed on this batch twice (the "
                f"batch may crash it): {failure}; its output (tail): {self.output_tail()}"
            )

    def _exit_code(self) -> int | None:
        return self._process.poll() if self._process is not None else None

    def _encode(self, frame: pd.DataFrame) -> tuple[bytes, str]:
        """The request body and its content type."""
        from mlflow.pyfunc import scoring_server
        from mlflow.utils.proto_json_utils import dump_input_data

        if self.wire == "parquet":
            buffer = io.BytesIO()
            try:
                frame.to_parquet(buffer, index=False)
                return buffer.getvalue(), scoring_server.CONTENT_TYPE_PARQUET
            except Exception as exc:  # a column Arrow cannot type (mixed objects): use JSON
                log.debug('parquet encoding failed, sending JSON error="%s"', exc)
        return dump_input_data(frame).encode("utf-8"), scoring_server.CONTENT_TYPE_JSON

    def _post(self, body: tuple[bytes, str]) -> Any:
        data, content_type = body
        return self._session.post(
            self._url + "/invocations",
            data=data,
            headers={"Content-Type": content_type},
            timeout=(5.0, self.request_timeout),
        )

    def _decode(self, response: Any) -> pd.DataFrame:
        from mlflow.deployments import PredictionsResponse

        if response.status_code != 200:
            message = response.text
            with contextlib.suppress(ValueError):
                message = json.loads(message).get("message", message)
            raise ModelError(
                f"the model failed on the batch (HTTP {response.status_code}): "
                f"{tail(message, 1500)}"
            )
        predictions: pd.DataFrame = PredictionsResponse.from_json(response.text).get_predictions()
        return predictions
