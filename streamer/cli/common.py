"""What the subcommands share: their shape, the config flag, environment fallbacks, the
stop signal."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

log = logging.getLogger("streamer.cli")

CONFIG_ENV = "STREAMER_CONFIG"
CONFIG_HELP = (
    f"YAML config file (env {CONFIG_ENV}); STREAMER_<SECTION>__<KEY> variables override its keys"
)


Handler = Callable[[argparse.Namespace, Mapping[str, str], TextIO], int]
"""Runs a subcommand: ``handler(args, environment, stdout) -> exit code``."""


@dataclass(frozen=True)
class Command:
    """One subcommand: its name and help, the function that adds its flags, its handler."""

    name: str
    help: str
    description: str
    arguments: Callable[[argparse.ArgumentParser, Mapping[str, str]], None]
    handler: Handler

    def __call__(self, commands: Any, env: Mapping[str, str]) -> None:
        """Add this subcommand to ``commands`` (an argparse sub-parsers action)."""
        parser = commands.add_parser(self.name, help=self.help, description=self.description)
        self.arguments(parser, env)
        parser.set_defaults(handler=self.handler)


def config_env(env: Mapping[str, str]) -> dict[str, str]:
    """The variables meant for the config: ``STREAMER_<SECTION>__<KEY>``, not flag fallbacks."""
    return {k: v for k, v in env.items() if not k.startswith("STREAMER_") or "__" in k}


def env_option(
    parser: argparse.ArgumentParser,
    env: Mapping[str, str],
    flag: str,
    variable: str,
    help: str,
    default: Any = None,
    **kwargs: Any,
) -> None:
    """A flag whose default is environment variable ``variable`` (else ``default``); the
    help text names the variable."""
    parser.add_argument(flag, default=env.get(variable, default), help=help, **kwargs)


def install_signal_handlers(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set ``stop`` (a clean stop at the next boundary), not kill."""

    def handle(signum: int, _frame: object) -> None:
        log.info('stop requested signal="%s"', signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
