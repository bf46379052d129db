"""The ``streamer`` command. The one place that reads the environment and the config file.

Every flag has an environment fallback, shown in ``--help``. Each subcommand is one entry
of :data:`COMMANDS`: its name, help, flags and handler, ``handler(args, env, out) -> exit
code``. A failure ends as one line on stderr, with exit
code 2 for a bad config or flag, 1 for a failure while running (or a missing extra), 130
for Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from streamer import __version__
from streamer.cli import runtime, tools
from streamer.cli.common import CONFIG_ENV, config_env
from streamer.errors import ConfigError, StreamerError, is_spark_error, root_cause
from streamer.extras import MissingExtraError

__all__ = ["COMMANDS", "CONFIG_ENV", "config_env", "main"]

COMMANDS: tuple[Callable[[Any, Mapping[str, str]], None], ...] = (
    runtime.RUN,
    runtime.OFFSETS,
    runtime.add_deploy,
    tools.DEMO,
    tools.TRAIN,
    tools.PRODUCE,
    tools.COMPARE,
    tools.BROKER,
)
"""The subcommands in ``--help`` order: each adds its parser, with its ``handler``, to the
sub-parsers (:class:`~streamer.cli.common.Command`; ``deploy`` adds its own tree)."""


def _parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamer",
        description="Score Kafka JSON events with an MLflow pyfunc model in Spark Structured "
        "Streaming.",
    )
    parser.add_argument("--version", action="version", version=f"streamer {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(commands, env)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    env = dict(os.environ)
    args = _parser(env).parse_args(argv)
    try:
        return int(args.handler(args, env, sys.stdout))
    except MissingExtraError as exc:
        print(exc, file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"streamer: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("streamer: interrupted", file=sys.stderr)
        return 130
    except StreamerError as exc:
        logging.getLogger("streamer").error('fatal error="%s"', exc)
        print(f"streamer: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if not is_spark_error(exc):
            raise
        cause = root_cause(exc)
        logging.getLogger("streamer").error('fatal spark error="%s"', cause)
        print(f"streamer: {args.command} failed: {cause}", file=sys.stderr)
        return 1
