"""Executor side: the loaded pyfunc models of one Python worker process, least recently used
evicted first.

This module is imported by the scoring code, never pickled with it, so its state lives as
long as the Python worker does (``spark.python.worker.reuse`` keeps workers across tasks
and batches). MLflow's own ``spark_udf`` reloads the model per task in local mode; here a
reload happens only in a new worker process, or after eviction. The bound matters once a
worker sees many models: one per group with ``model.group_by``, and the old and new version
around a hot swap.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from typing import Any

from streamer.errors import ModelError
from streamer.scoring import envs

log = logging.getLogger(__name__)

_lock = threading.Lock()
_models: OrderedDict[str, Any] = OrderedDict()
_loads = 0


def get_model(ship_name: str, *, env_manager: str = "local", capacity: int = 8) -> tuple[Any, bool]:
    """The model shipped as ``ship_name``, and whether this call loaded it.

    ``env_manager`` other than ``local`` serves the model from its own restored environment
    (:mod:`.envs`). At most ``capacity`` models stay loaded.
    """
    global _loads
    with _lock:
        model = _models.get(ship_name)
        if model is not None:
            _models.move_to_end(ship_name)
            return model, False
        started = time.perf_counter()
        model = envs.load(model_dir(ship_name), env_manager)
        _models[ship_name] = model
        _loads += 1
        while len(_models) > max(1, capacity):
            evicted, old = _models.popitem(last=False)
            close = getattr(old, "close", None)
            if close is not None:
                close()
            log.info('model evicted model="%s" pid="%d"', evicted, os.getpid())
        log.info(
            'model loaded model="%s" env_manager="%s" pid="%d" seconds="%.3f"',
            ship_name,
            env_manager,
            os.getpid(),
            time.perf_counter() - started,
        )
        return model, True


def model_dir(ship_name: str) -> str:
    """The absolute path of the model directory shipped as ``ship_name`` in this process.

    :func:`.model.ship_model` ships it as an archive, which Spark unpacks into
    ``<SparkFiles root>/<ship_name>``: the executor's working directory on a cluster, the
    driver's ``userFiles-*`` directory in ``local`` mode. ``SparkFiles.get`` resolves both
    (a Python worker is told the root by its executor).
    """
    from pyspark import SparkFiles

    path = os.path.abspath(SparkFiles.get(ship_name))
    if not os.path.isfile(os.path.join(path, "MLmodel")):
        found = sorted(os.listdir(path))[:10] if os.path.isdir(path) else "no such directory"
        raise ModelError(
            f"model {ship_name!r} is not where Spark unpacks shipped archives: {path} has no "
            f"MLmodel ({found}); was it shipped with ship_model in this SparkContext?"
        )
    return path


def loads() -> int:
    """How many models this worker process has loaded."""
    return _loads
