"""Isolated model environments: ``model.env_manager: local|virtualenv|uv``.

A model whose dependencies the service's own environment lacks (or pins differently) is
served from an environment restored from the model's ``python_env.yaml`` and
``requirements.txt``, the way ``mlflow.pyfunc.spark_udf(env_manager=...)`` does it:

1. **Driver, at start-up** (:func:`prepare`): create the environment once per machine. It is
   MLflow's own virtualenv cache, ``$MLFLOW_ENV_ROOT`` (default ``~/.mlflow/envs``), one
   directory per hash of the python version and the requirements, so it survives restarts
   and every model with the same requirements shares it. ``uv`` and ``virtualenv`` name the
   directory alike: whichever manager created it, the other one reuses it.
2. **Executor, once per Python worker** (:func:`load`, :mod:`.envserver`): start one MLflow
   scoring server
   (uvicorn, ``mlflow.pyfunc.scoring_server.app``) inside that environment on a free local
   port, wait for ``/ping``, and predict over HTTP. The frame goes out as Parquet when the
   environment has pyarrow (a content type MLflow's server reads; column types travel
   exactly and it is several times cheaper than JSON for large frames), otherwise as
   MLflow's client sends it (``dataframe_split`` JSON; the server rebuilds the column types
   from the model's signature). The predictions come back as MLflow's client decodes them
   (a DataFrame).

The server never outlives its worker (see :mod:`.envserver`).

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

import contextlib
import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streamer.errors import ModelError
from streamer.scoring.envserver import WIRES as WIRES
from streamer.scoring.envserver import IsolatedModel, tail

log = logging.getLogger(__name__)

ENV_MANAGERS = ("local", "virtualenv", "uv")
READY_MARKER = ".streamer-ready"
"""Written into an environment once it is complete; a directory without it is a leftover of
an interrupted creation and is rebuilt."""


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
                f"{tail(found.stderr or found.stdout, 1200)}"
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
            f"{tail(prefix.stderr, 600)}"
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
                f"(tail): {tail(str(exc))}"
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
        env_dir(local_path),
        start_timeout=start_timeout,
        request_timeout=request_timeout,
        wire=wire,
    ).start()
