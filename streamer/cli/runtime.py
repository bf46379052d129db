"""The service's commands: ``run``, ``offsets`` and ``deploy``. None needs an extra."""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Mapping
from typing import Any, TextIO

from streamer.cli.common import (
    CONFIG_ENV,
    CONFIG_HELP,
    Command,
    config_env,
    install_signal_handlers,
    log,
)
from streamer.config import Config, load_config
from streamer.errors import (
    ConfigError,
    OffsetsError,
    SparkError,
    StreamerError,
    is_spark_error,
    root_cause,
)
from streamer.jvm import JvmPaths
from streamer.logs import configure_logging


def _run_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    parser.add_argument("--config", default=env.get(CONFIG_ENV), help=CONFIG_HELP)
    parser.add_argument(
        "--reset-offsets",
        metavar="earliest|latest|JSON",
        help="ignore the offset store and start here; written to the store before the query "
        'starts. JSON: {"topic": {"0": 42}}. Needed to start over an unreadable store',
    )
    parser.add_argument(
        "--color",
        choices=("blue", "green"),
        default=env.get("STREAMER_COLOR"),
        help="run as this side of a blue-green pair: hold the handoff lease next to the "
        "offsets (env STREAMER_COLOR; default handoff.color)",
    )
    parser.add_argument(
        "--takeover",
        action="store_true",
        default=env.get("STREAMER_TAKEOVER", "").lower() in ("1", "true", "yes"),
        help="with --color: warm up, then ask the current owner to drain and hand over (or "
        "take a stale lease after handoff.lease_timeout_seconds) (env STREAMER_TAKEOVER)",
    )


def cmd_run(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    # First, so that a SIGTERM during start-up (seconds of Spark and model loading) means
    # "stop cleanly once started", not death by signal.
    stop = threading.Event()
    install_signal_handlers(stop)

    from streamer.offsets.startup import parse_reset
    from streamer.service import Service

    reset, color, takeover = args.reset_offsets, args.color, args.takeover
    if reset is not None:
        parse_reset(reset)

    config = load_config(args.config, env=config_env(env))
    configure_logging(config.logging.level, config.logging.format)
    log.info('starting config="%s" settings="%s"', args.config or "defaults", config.redacted())
    if takeover and not (color or config.handoff.color):
        raise ConfigError("--takeover needs --color or handoff.color: the side taking over")
    service = Service(
        config,
        reset_offsets=reset,
        color=color,
        takeover=takeover,
        interrupt=stop,
        jvm=JvmPaths.from_env(env),
    )
    try:
        service.start()
    except BaseException as exc:
        service.stop()
        if is_spark_error(exc):  # one line with the Java/Python root cause, not a stack trace
            raise SparkError(f"start-up failed: {root_cause(exc)}") from exc
        raise
    # SparkContext replaces the SIGINT handler with one that cancels every job; ours stops at
    # a batch boundary instead.
    install_signal_handlers(stop)
    result = service.run_until(stop)
    return 0 if result.outcome in ("stopped", "handed_over") else 1


def _offsets_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    parser.add_argument("--config", default=env.get(CONFIG_ENV), help=CONFIG_HELP)
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("show", help="print the stored position and the lag behind the broker")
    set_ = actions.add_parser("set", help="store offsets for some partitions")
    set_.add_argument("offsets_json", metavar="JSON", help='e.g. {"transactions": {"0": 42}}')
    set_.add_argument(
        "--replace", action="store_true", help="store exactly JSON (default: merge over stored)"
    )
    reset = actions.add_parser("reset", help="store the broker's earliest or latest offsets")
    reset.add_argument("--to", choices=("earliest", "latest"), required=True)


def cmd_offsets(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    from streamer.kafka.probe import broker_ends
    from streamer.offsets import format_offsets, merge_offsets, parse_offsets
    from streamer.offsets.startup import resolve_reset
    from streamer.offsets.stores import store_for

    config = load_config(args.config, env=config_env(env))
    configure_logging(config.logging.level, "text")
    store = store_for(config)
    try:
        try:
            stored = store.load()
        except OffsetsError:
            if args.action == "show" or (args.action == "set" and not args.replace):
                raise
            stored = None  # repairing an unreadable store: set --replace / reset write anew
        before = stored.offsets if stored else {}
        if args.action == "show":
            document = {
                "store": store.description,
                "generation": stored.generation if stored else None,
                "batch_id": stored.batch_id if stored else None,
                "writer": stored.writer if stored else None,
                "written_at": stored.written_at if stored else None,
                "offsets": json.loads(format_offsets(before)),
                "lag": _lag(config, before),
            }
            print(json.dumps(document, indent=2), file=out)
            return 0
        if args.action == "set":
            given = parse_offsets(args.offsets_json)
            if not given or any(o < 0 for ps in given.values() for o in ps.values()):
                raise ConfigError(f"offsets set: {args.offsets_json!r} holds no offsets >= 0")
            after = given if args.replace else merge_offsets(before, given)
        else:
            earliest, latest = broker_ends(config.kafka)
            after = resolve_reset(args.to, earliest, latest)
        store.save(after, writer=f"streamer offsets {args.action}")
        print(f"before {format_offsets(before)}", file=out)
        print(f"after  {format_offsets(after)}", file=out)
        return 0
    finally:
        store.close()


def _lag(config: Config, stored: Mapping[str, Mapping[int, int]]) -> Mapping[str, object]:
    """Per partition of the input topic: latest - stored (earliest when nothing is stored)."""
    from streamer.kafka.probe import broker_ends
    from streamer.offsets.core import lag

    try:
        earliest, latest = broker_ends(config.kafka)
    except StreamerError as exc:
        return {"error": str(exc)}
    lags: dict[str, dict[str, int]] = {}
    for (topic, partition), value in sorted(lag(stored, earliest, latest).items()):
        lags.setdefault(topic, {})[str(partition)] = value
    return lags


def add_deploy(commands: Any, env: Mapping[str, str]) -> None:
    from streamer.deploy import emr as deploy_emr

    deploy = deploy_emr.add_parser(commands, config=env.get(CONFIG_ENV))
    deploy.set_defaults(handler=cmd_deploy)


def cmd_deploy(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    from streamer.deploy import emr as deploy_emr

    return deploy_emr.run(args, load_config(args.config, env=config_env(env)), out)


RUN = Command(
    "run",
    help="run the scoring service until SIGTERM/SIGINT",
    description="Run the service: read kafka.input_topic, score, write kafka.output_topic and "
    "dead letters.",
    arguments=_run_arguments,
    handler=cmd_run,
)


OFFSETS = Command(
    "offsets",
    help="inspect or edit the stored offsets (stop the service first)",
    description="Inspect or edit the offset store named by the config. Edits are new "
    "generations (file/s3), so the previous position stays readable. A running service "
    "overwrites the store after its next batch: stop it before editing.",
    arguments=_offsets_arguments,
    handler=cmd_offsets,
)
