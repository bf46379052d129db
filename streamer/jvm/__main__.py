"""``python -m streamer.jvm``: resolve the connector (for the installed pyspark) and the
broker jars into the cache now, so that later runs need neither Maven nor network."""

from __future__ import annotations

import os
import sys

import pyspark

from streamer.jvm import JarsError, JvmPaths, broker_jars, connector_jars


def main() -> int:
    paths = JvmPaths.from_env(os.environ)
    try:
        connector = connector_jars(pyspark.__version__, paths.cache)
        broker = broker_jars(paths.cache)
    except JarsError as exc:
        print(f"streamer: {exc}", file=sys.stderr)
        return 1
    size = sum(j.stat().st_size for j in [*connector, *broker]) / 1e6
    print(
        f"jars ready cache={paths.cache / 'jars'} connector={len(connector)} "
        f"broker={len(broker)} size_mb={size:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
