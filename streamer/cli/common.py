"""What the subcommands share: the config flag, environment fallbacks, the stop signal."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("streamer.cli")

CONFIG_ENV = "STREAMER_CONFIG"
CONFIG_HELP = (
    f"YAML config file (env {CONFIG_ENV}); STREAMER_<SECTION>__<KEY> variables override its keys"
)


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
