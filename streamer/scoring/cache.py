"""Executor side: one loaded pyfunc model per Python worker process, per pinned model.

This module is imported by the scoring UDF, never pickled with it, so its state lives as
long as the Python worker does (``spark.python.worker.reuse`` keeps workers across tasks
and batches). MLflow's own ``spark_udf`` reloads the model per task in local mode; here a
reload happens only in a new worker process.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

_lock = threading.Lock()
_models: dict[str, Any] = {}
_loads = 0


def get_model(ship_name: str) -> tuple[Any, bool]:
    """The model shipped as ``ship_name``, and whether this call loaded it."""
    global _loads
    model = _models.get(ship_name)
    if model is not None:
        return model, False
    with _lock:
        model = _models.get(ship_name)
        if model is not None:
            return model, False
        import mlflow.pyfunc
        from pyspark import SparkFiles

        started = time.perf_counter()
        model = mlflow.pyfunc.load_model(SparkFiles.get(ship_name))
        _models[ship_name] = model
        _loads += 1
        log.info(
            'model loaded model="%s" pid="%d" seconds="%.3f"',
            ship_name,
            os.getpid(),
            time.perf_counter() - started,
        )
        return model, True


def loads() -> int:
    """How many models this worker process has loaded."""
    return _loads
