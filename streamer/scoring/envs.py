"""Isolated model environments: ``model.env_manager: local|virtualenv|uv``.

A model whose dependencies the service's own environment lacks (or pins differently) is
served from an environment restored from the model's ``python_env.yaml`` and
``requirements.txt``, the way ``mlflow.pyfunc.spark_udf(env_manager=...)`` does it:

1. **Driver, at start-up** (:func:`prepare`): create the environment once per machine. It is
   MLflow's own virtualenv cache, ``$MLFLOW_ENV_ROOT`` (default ``~/.mlflow/envs``), one
   directory per hash of the python version and the requirements, so it survives restarts
   and every model with the same requirements shares it. ``uv`` and ``virtualenv`` name the
   directory alike: whichever manager created it, the other one reuses it.
2. **Executor, once per Python worker** (:func:`load`): start one MLflow scoring server
   (uvicorn, ``mlflow.pyfunc.scoring_server.app``) inside that environment on a free local
   port, wait for ``/ping``, and predict over HTTP. The frame goes out as Parquet when the
   environment has pyarrow (a content type MLflow's server reads; column types travel
   exactly and it is several times cheaper than JSON for large frames), otherwise as
   MLflow's client sends it (``dataframe_split`` JSON; the server rebuilds the column types
   from the model's signature). The predictions come back as MLflow's client decodes them
   (a DataFrame).

The server never outlives its worker: it is forked from one long-lived thread with
``PR_SET_PDEATHSIG = SIGKILL`` (Linux), so the kernel kills it when the worker dies for any
reason, SIGKILL included (Spark kills idle Python workers after 60 s); ``atexit`` and
:meth:`IsolatedModel.close` stop it on clean exits. A server that died is restarted, once, by
the next ``predict``.

Where each manager finds its Python (no interpreter is downloaded here):

- ``uv`` runs ``uv venv --python=<version>``, which accepts only an interpreter uv can find on
  ``PATH`` (or among uv-managed ones). Under pyenv that is the *global* version only: a
  pyenv shim of another installed version exits 127 and uv stops with an error. So the
  model's python version must be the pyenv global one (or first on ``PATH``), e.g.
  ``pyenv global 3.11.7 3.10.13`` makes both visible. :func:`prepare` checks with
  ``uv python find`` first. uv reads neither ``pip.conf`` nor ``PIP_*``; it uses PyPI
  unless ``UV_INDEX_URL``/``UV_DEFAULT_INDEX`` say otherwise.
- ``virtualenv`` runs ``pyenv install --skip-existing <version>`` and then
  ``<pyenv root>/versions/<version>/bin/python -m venv`` and pip (which honours
  ``pip.conf``), so any version pyenv already has works; one it lacks would be downloaded
  and compiled, which :func:`prepare` refuses up front.

MLflow internals relied on (checked against MLflow 3.17; re-check on upgrade):
``mlflow.utils.virtualenv._get_python_env``, ``._get_virtualenv_name`` and
``._get_mlflow_virtualenv_root`` (where the environment lives), ``._get_pyenv_bin_path``
and ``._get_virtualenv_activate_cmd``; ``mlflow.pyfunc.backend.PyFuncBackend.prepare_env``
with ``extra_envs`` (creates the environment; its errors are
``mlflow.utils.process.ShellCommandException`` carrying the installer's output);
``mlflow.utils.environment.Environment`` and its ``execute`` (runs a command inside it);
``mlflow.pyfunc.scoring_server.get_cmd`` (the uvicorn command and its environment
variables) and its ``CONTENT_TYPE_JSON``/``CONTENT_TYPE_PARQUET``;
``mlflow.utils.proto_json_utils.dump_input_data`` and
``mlflow.deployments.PredictionsResponse`` (MLflow's client's wire format);
``mlflow.utils.find_free_port``. The serving command comes from the service's MLflow, so the
model's environment must have an MLflow 3 (uvicorn and ``mlflow.pyfunc.scoring_server.app``);
a model logged with MLflow 2 fails at start with the server's output in the error.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import io
import json
import logging
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any

import pandas as pd

from streamer.children import die_with
from streamer.errors import ModelError

log = logging.getLogger(__name__)

ENV_MANAGERS = ("local", "virtualenv", "uv")
WIRES = ("parquet", "json")
READY_MARKER = ".streamer-ready"
"""Written into an environment once it is complete; a directory without it is a leftover of
an interrupted creation and is rebuilt."""

_TAIL_CHARS = 3000


# --- driver side: the environment ---------------------------------------------------------


def _check_manager(env_manager: str) -> None:
    if env_manager not in ENV_MANAGERS:
        raise ModelError(
            f"model.env_manager = {env_manager!r} is not one of {', '.join(ENV_MANAGERS)}"
        )


def env_dir(local_path: str) -> Path:
    """Where MLflow keeps (or will keep) the restored environment of the model at
    ``local_path``: ``$MLFLOW_ENV_ROOT/mlflow-<hash of python version and requirements>``."""
    from mlflow.utils.virtualenv import (
        _get_mlflow_virtualenv_root,
        _get_python_env,
        _get_virtualenv_name,
    )

    model_dir = Path(local_path)
    try:
        python_env = _get_python_env(model_dir)
        name = _get_virtualenv_name(python_env, model_dir)
    except Exception as exc:  # a missing MLmodel, python_env.yaml or requirements file
        raise ModelError(
            f"cannot read the python environment of the model at {local_path}: {exc}"
        ) from exc
    return Path(_get_mlflow_virtualenv_root()) / name


def _python_version(local_path: str) -> str:
    from mlflow.utils.virtualenv import _get_python_env

    return str(_get_python_env(Path(local_path)).python)


def _tail(text: str | bytes | None, chars: int = _TAIL_CHARS) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.strip()
    return text if len(text) <= chars else "…" + text[-chars:]


def _uv_binary() -> str | None:
    """uv on ``PATH``, else the one the ``uv`` Python package ships (``pip install uv`` puts it
    next to the service's interpreter, which need not be on ``PATH``)."""
    found = shutil.which("uv")
    if found:
        return found
    with contextlib.suppress(Exception):
        import uv

        return str(uv.find_uv_bin())
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.exists() else None


_path_lock = threading.Lock()


@contextlib.contextmanager
def _on_path(directory: str | None) -> Iterator[None]:
    """``directory`` first on this process's ``PATH`` for the duration.

    MLflow runs ``uv venv`` and ``uv pip install`` by name, in a copy of the process
    environment, and offers no hook for either; this is the only way to hand it a uv that
    is not on ``PATH``. Used only while an environment is being created.
    """
    if directory is None:
        yield
        return
    with _path_lock:
        before = os.environ.get("PATH")
        os.environ["PATH"] = directory + (os.pathsep + before if before else "")
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("PATH", None)
            else:
                os.environ["PATH"] = before


def _preflight(local_path: str, env_manager: str) -> str | None:
    """Refuse early, with the fix, what would otherwise fail deep inside MLflow (or try to
    download an interpreter). Returns the directory to put on ``PATH`` for uv, if any."""
    version = _python_version(local_path)
    if env_manager == "uv":
        uv = _uv_binary()
        if uv is None:
            raise ModelError(
                "model.env_manager = 'uv' needs the uv binary: install it into the service's "
                "environment (pip install uv) or put it on PATH"
            )
        found = subprocess.run(
            [uv, "python", "find", "--no-python-downloads", version],
            capture_output=True,
            text=True,
            check=False,
        )
        if found.returncode != 0:
            raise ModelError(
                f"model.env_manager = 'uv': no Python {version} interpreter that uv can use "
                f"(the model was logged with Python {version}; uv cannot download one here). "
                f"Install {version} and make it visible to uv: with pyenv, add it to the "
                f"global versions (pyenv global <current> {version}) or put "
                f"<pyenv root>/versions/{version}/bin first on PATH; or use "
                f"env_manager 'virtualenv', which asks pyenv directly. uv said: "
                f"{_tail(found.stderr or found.stdout, 1200)}"
            )
        return None if shutil.which("uv") else str(Path(uv).parent)
    from mlflow.utils.virtualenv import _get_pyenv_bin_path

    pyenv = _get_pyenv_bin_path()
    if pyenv is None:
        raise ModelError(
            "model.env_manager = 'virtualenv' needs pyenv on PATH (it provides the model's "
            f"Python {version}); install pyenv, or use env_manager 'uv'"
        )
    prefix = subprocess.run([pyenv, "prefix", version], capture_output=True, text=True, check=False)
    if prefix.returncode != 0:
        raise ModelError(
            f"model.env_manager = 'virtualenv': pyenv has no Python {version} (the model was "
            f"logged with it); run `pyenv install {version}` (it downloads and compiles from "
            f"python.org) or log the model with an installed version. pyenv said: "
            f"{_tail(prefix.stderr, 600)}"
        )
    return None


@contextlib.contextmanager
def _locked(path: Path, timeout: float) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``: one creator per environment across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ModelError(
                        f"another process has been creating the environment {path.stem} for "
                        f"over {timeout:.0f}s (lock {path}); remove the lock file if no "
                        "creator is alive"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _backend(local_path: str, env_manager: str) -> Any:
    from mlflow.pyfunc.backend import PyFuncBackend

    # env_root_dir=None: MLflow's persistent cache ($MLFLOW_ENV_ROOT), shared across runs.
    # (spark_udf passes a temporary root instead, which also gives pyenv a fresh empty root:
    # `pyenv install` would then download and compile Python, which fails offline.)
    return PyFuncBackend(config={}, env_manager=env_manager, install_mlflow=False)


def prepare(
    local_path: str,
    env_manager: str,
    *,
    lock_timeout: float = 1800.0,
    compile_bytecode: bool = True,
) -> None:
    """Create (or find) the restored environment for the model directory ``local_path``.

    Idempotent and cheap once done: a complete environment carries :data:`READY_MARKER`.
    Safe to call from several processes at once (a file lock beside the environment).
    ``local`` is a no-op. Raises :class:`ModelError` saying what failed and how to fix it.

    ``compile_bytecode`` (uv; pip always does it) writes the ``.pyc`` files at creation:
    pip compiles as it installs, uv only when asked. Without them every server start
    compiles MLflow afresh wherever bytecode is not written back (``PYTHONDONTWRITEBYTECODE``
    is set on this machine, or the environment is read-only); ``bench/envs.py`` measures both.
    """
    _check_manager(env_manager)
    if env_manager == "local":
        return
    target = env_dir(local_path)
    if (target / READY_MARKER).exists():
        log.debug('model environment cached env="%s"', target)
        return
    tool_dir = _preflight(local_path, env_manager)
    with _locked(target.with_name(target.name + ".lock"), lock_timeout):
        if (target / READY_MARKER).exists():  # another process finished it meanwhile
            return
        if target.exists():
            log.warning(
                'model environment incomplete, rebuilding env="%s" '
                "(an interrupted creation, or made by another tool)",
                target,
            )
            shutil.rmtree(target)
        started = time.perf_counter()
        log.info(
            'model environment creating env="%s" env_manager="%s" python="%s"',
            target,
            env_manager,
            _python_version(local_path),
        )
        try:
            with _on_path(tool_dir):
                environment = _backend(local_path, env_manager).prepare_env(
                    local_path,
                    capture_output=True,
                    extra_envs={"UV_COMPILE_BYTECODE": "1"} if compile_bytecode else None,
                )
        except Exception as exc:  # ShellCommandException carries the installer's output
            shutil.rmtree(target, ignore_errors=True)
            raise ModelError(
                f"cannot create the {env_manager} environment for the model at {local_path} "
                f"(requirements: {_requirements(local_path)}). Check that every requirement "
                "exists on the package index for this Python and platform. Installer output "
                f"(tail): {_tail(str(exc))}"
            ) from exc
        seconds = time.perf_counter() - started
        parquet = _has_pyarrow(environment)
        (target / READY_MARKER).write_text(
            json.dumps(
                {
                    "env_manager": env_manager,
                    "seconds": round(seconds, 3),
                    "parquet": parquet,
                    "compiled": compile_bytecode or env_manager == "virtualenv",
                }
            )
        )
        log.info(
            'model environment created env="%s" env_manager="%s" seconds="%.1f" parquet="%s"',
            target,
            env_manager,
            seconds,
            parquet,
        )


def _has_pyarrow(environment: Any) -> bool:
    """Whether the environment can read Parquet requests (pandas with pyarrow)."""
    try:
        environment.execute('python -c "import pandas, pyarrow"', capture_output=True)
        return True
    except Exception:
        return False


def environment_info(local_path: str) -> dict[str, Any]:
    """What :func:`prepare` recorded about the model's environment; empty if not ready."""
    try:
        info = json.loads((env_dir(local_path) / READY_MARKER).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _requirements(local_path: str) -> str:
    path = Path(local_path) / "requirements.txt"
    try:
        return ", ".join(line.strip() for line in path.read_text().splitlines() if line.strip())
    except OSError:
        return "(no requirements.txt)"


# --- executor side: one scoring server per worker process ----------------------------------


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


class IsolatedModel:
    """A model served from its restored environment by a scoring server this process owns.

    ``predict`` takes a pandas DataFrame and returns what MLflow's scoring client returns (a
    DataFrame: one column per output column, or a single column for one value per row).
    ``wire`` is ``parquet`` or ``json`` (see the module docstring). Calls are serialised by
    a lock; the scoring path calls it from one thread per worker anyway.
    """

    def __init__(
        self,
        local_path: str,
        env_manager: str,
        *,
        start_timeout: float = 120.0,
        request_timeout: float = 600.0,
        wire: str = "json",
    ) -> None:
        if wire not in WIRES:
            raise ModelError(f"wire = {wire!r} is not one of {', '.join(WIRES)}")
        self.local_path = local_path
        self.env_manager = env_manager
        self.wire = wire
        self.start_timeout = start_timeout
        self.request_timeout = request_timeout
        self.restarts = 0
        self._process: subprocess.Popen[Any] | None = None
        self._output: IO[bytes] | None = None
        self._url = ""
        self._session: Any = None
        self._closed = False
        self._lock = threading.Lock()

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
        # The environment exists (load() prepared it): activate it directly. Going through
        # PyFuncBackend.prepare_env again would cost a `python -c ""` in it, and for
        # virtualenv insist on pyenv being on this worker's PATH.
        environment = Environment(_get_virtualenv_activate_cmd(env_dir(self.local_path)))
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
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                if self._session.get(self._url + "/ping", timeout=2).status_code == 200:
                    break
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

    def output_tail(self, chars: int = _TAIL_CHARS) -> str:
        """The end of the server's stdout and stderr."""
        if self._output is None:
            return ""
        try:
            self._output.flush()
            size = self._output.seek(0, os.SEEK_END)
            self._output.seek(max(0, size - chars * 2))
            return _tail(self._output.read(), chars)
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
                f"{_tail(message, 1500)}"
            )
        predictions: pd.DataFrame = PredictionsResponse.from_json(response.text).get_predictions()
        return predictions


def load(
    local_path: str,
    env_manager: str,
    *,
    start_timeout: float = 120.0,
    request_timeout: float = 600.0,
    wire: str | None = None,
) -> Any:
    """The model at ``local_path`` ready to ``predict``.

    ``local``: ``mlflow.pyfunc.load_model`` in this process. Otherwise an
    :class:`IsolatedModel` whose scoring server has started in the model's environment
    (created first if this machine lacks it: on a cluster the executors' machines are not
    the driver's). Each call starts its own server; the executor cache keeps one per worker.
    ``wire`` None picks Parquet when the environment has pyarrow, else JSON.
    """
    _check_manager(env_manager)
    if env_manager == "local":
        import mlflow.pyfunc

        return mlflow.pyfunc.load_model(local_path)
    prepare(local_path, env_manager)
    if wire is None:
        wire = "parquet" if environment_info(local_path).get("parquet") else "json"
    return IsolatedModel(
        local_path,
        env_manager,
        start_timeout=start_timeout,
        request_timeout=request_timeout,
        wire=wire,
    ).start()
