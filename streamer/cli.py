"""The ``streamer`` command. The one place that reads the environment and the config file.

Every flag has an environment fallback, shown in ``--help``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence

from streamer import __version__
from streamer.config import load_config
from streamer.errors import ConfigError, StreamerError
from streamer.logs import configure_logging

log = logging.getLogger(__name__)

CONFIG_ENV = "STREAMER_CONFIG"


def config_env(env: Mapping[str, str]) -> dict[str, str]:
    """The variables meant for the config: ``STREAMER_<SECTION>__<KEY>``, not flag fallbacks."""
    return {k: v for k, v in env.items() if not k.startswith("STREAMER_") or "__" in k}


def _parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamer",
        description="Score Kafka JSON events with an MLflow pyfunc model in Spark Structured "
        "Streaming.",
    )
    parser.add_argument("--version", action="version", version=f"streamer {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="run the scoring service until SIGTERM/SIGINT",
        description="Run the "
        "service: read kafka.input_topic, score, write kafka.output_topic and dead letters.",
    )
    run.add_argument(
        "--config",
        default=env.get(CONFIG_ENV),
        help=f"YAML config file (env {CONFIG_ENV}); STREAMER_<SECTION>__<KEY> variables "
        "override its keys",
    )
    demo = commands.add_parser(
        "demo",
        help="embedded broker + local registry + synthetic events + the real service",
        description="Start an embedded broker, train and register the fraud model, produce "
        "synthetic events (some malformed), score them with the service, and print a summary "
        "matched by event id. Needs no network.",
    )
    demo.add_argument(
        "--events",
        type=int,
        default=int(env.get("STREAMER_DEMO_EVENTS", 20_000)),
        help="events to produce (env STREAMER_DEMO_EVENTS; default 20000)",
    )
    demo.add_argument(
        "--bad-fraction",
        type=float,
        default=float(env.get("STREAMER_DEMO_BAD_FRACTION", 0.01)),
        help="fraction of malformed events (env STREAMER_DEMO_BAD_FRACTION; default 0.01)",
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds even if not everything is scored",
    )
    demo.add_argument(
        "--work-dir",
        default=env.get("STREAMER_DEMO_WORK_DIR", ".streamer-demo"),
        help="registry, broker log and checkpoints (env STREAMER_DEMO_WORK_DIR)",
    )
    demo.add_argument(
        "--bootstrap-servers",
        default=env.get("KAFKA_BOOTSTRAP_SERVERS"),
        help="use this Kafka instead of the embedded broker (env KAFKA_BOOTSTRAP_SERVERS)",
    )
    return parser


def cmd_demo(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from pathlib import Path

    from streamer.demo import run_demo

    configure_logging("WARNING", "text")
    if not 0 <= args.bad_fraction <= 1 or args.events < 1:
        raise ConfigError("demo: --events must be >= 1 and --bad-fraction within [0, 1]")
    summary = run_demo(
        events=args.events,
        bad_fraction=args.bad_fraction,
        work_dir=Path(args.work_dir).resolve(),
        bootstrap=args.bootstrap_servers,
        duration=args.duration,
        env=config_env(env),
        out=sys.stdout,
    )
    print(summary.line(), flush=True)
    return 0 if summary.lost == 0 else 1


def _install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum: int, _frame: object) -> None:
        log.info('stop requested signal="%s"', signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def cmd_run(config_path: str | None, env: Mapping[str, str]) -> int:
    from streamer.service import Service

    config = load_config(config_path, env=env)
    configure_logging(config.logging.level, config.logging.format)
    log.info('starting config="%s" settings="%s"', config_path or "defaults", config.redacted())
    stop = threading.Event()
    _install_signal_handlers(stop)
    service = Service(config)
    try:
        service.start()
    except BaseException:
        service.stop()
        raise
    result = service.run_until(stop)
    return 0 if result.outcome == "stopped" else 1


def main(argv: Sequence[str] | None = None) -> int:
    env = dict(os.environ)
    args = _parser(env).parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args.config, config_env(env))
        if args.command == "demo":
            return cmd_demo(args, env)
    except ConfigError as exc:
        print(f"streamer: {exc}", file=sys.stderr)
        return 2
    except StreamerError as exc:
        logging.getLogger("streamer").error('fatal error="%s"', exc)
        print(f"streamer: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
