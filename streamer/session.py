"""Build the SparkSession the pipeline runs in.

Arrow is switched on for pandas conversion and for Python UDFs; the caller's conf is
merged as ``{**defaults, **user, **required}`` so a user cannot switch off what must hold.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

DEFAULT_CONF: Mapping[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.streaming.stopGracefullyOnShutdown": "true",
    "spark.python.worker.reuse": "true",
}

REQUIRED_CONF: Mapping[str, str] = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.pythonUDF.arrow.enabled": "true",
}


def spark_conf(arrow_batch_size: int, user_conf: Mapping[str, str]) -> dict[str, str]:
    """The Spark conf streamer runs with: defaults, then the user's conf, then what must hold."""
    return {
        **DEFAULT_CONF,
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(arrow_batch_size),
        **{k: str(v) for k, v in user_conf.items()},
        **REQUIRED_CONF,
    }


def build_session(
    *,
    master: str | None,
    app_name: str,
    arrow_batch_size: int = 10_000,
    conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """Get or create the SparkSession.

    ``master=None`` (``spark.master: null``) leaves the master to the launcher: under
    ``spark-submit`` on a cluster such as EMR, the submitted master is used. A master given
    here wins over the launcher's, so cluster configs set it to null.
    """
    if master and master.startswith("local"):
        # Local Python workers must run this interpreter (the one with streamer and the
        # model's libraries), not the first python3 on PATH. PySpark takes the worker
        # interpreter only from PYSPARK_PYTHON, so it is set, unless already chosen.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for key, value in spark_conf(arrow_batch_size, conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info(
        'spark session ready master="%s" version="%s"', spark.sparkContext.master, spark.version
    )
    return spark
