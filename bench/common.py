"""The harness every bench runner shares: a broker, a model, a service, the query's
progress, the machine, and the runner's section of ``bench/RESULTS.md``.

Runners take their harness from here and their events and model from
:mod:`bench.workload`. A runner may import another as a system it measures (the recipe, the
ceiling), never the other way round, so there is no import circle.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from streamer.offsets.stores import OffsetStore

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "RESULTS.md"
PHASES = ("latestOffset", "queryPlanning", "addBatch", "walCommit", "commitOffsets")
SKIP_BATCHES = 2


# --- a run's work directory, broker and model ------------------------------------------


def new_work_dir(root: str | Path) -> Path:
    """A fresh directory for one run: ``root``/<timestamp>."""
    work = Path(root).resolve() / time.strftime("%Y%m%d-%H%M%S")
    work.mkdir(parents=True, exist_ok=True)
    return work


def start_broker(stack: ExitStack, kind: str = "kafka", log_dir: Path | None = None) -> str:
    """Start an embedded broker of ``kind`` (``kafka``: Apache Kafka, one KRaft node;
    ``tansu``: in memory, logging into ``log_dir`` when given), stopped when ``stack``
    closes; its bootstrap servers."""
    from streamer.kafka.broker import EmbeddedBroker, embedded_broker

    if kind == "tansu" and log_dir is not None:
        return stack.enter_context(EmbeddedBroker(log_dir=log_dir)).bootstrap_servers
    from streamer.jvm import JvmPaths

    broker = embedded_broker(kind, jars_root=JvmPaths.from_env(os.environ).cache)
    return stack.enter_context(broker).bootstrap_servers


def add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    """``--broker`` (an embedded one) or ``--bootstrap-servers`` (yours), for
    :func:`broker_for`; :func:`check_broker_arguments` after parsing."""
    parser.add_argument(
        "--broker",
        choices=("kafka", "tansu"),
        default=None,
        help="the embedded broker to start: Apache Kafka (default, the reference) or tansu",
    )
    parser.add_argument(
        "--bootstrap-servers", default=None, help="a running Kafka instead of an embedded one"
    )


def check_broker_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.broker and args.bootstrap_servers:
        parser.error("--broker starts an embedded broker, --bootstrap-servers uses yours: give one")
    args.broker = args.broker or "kafka"


def broker_for(args: argparse.Namespace, stack: ExitStack) -> tuple[str, str]:
    """(bootstrap servers, a description for RESULTS): ``--bootstrap-servers``, else the
    ``--broker`` kind started embedded, stopped (and its data removed) when ``stack``
    closes."""
    if args.bootstrap_servers:
        return args.bootstrap_servers, f"Kafka at {args.bootstrap_servers}"
    from streamer.jvm import broker as broker_set

    bootstrap = start_broker(stack, args.broker)
    if args.broker == "kafka":
        described = (
            f"embedded Apache Kafka {broker_set().version} (one KRaft node, local disk, "
            f"`streamer broker`'s)"
        )
    else:
        described = "embedded tansu broker (in memory)"
    return bootstrap, described


def demo_model(work: Path) -> tuple[str, str]:
    """The demo's fraud model, trained and registered under ``work`` once:
    ``(model URI, tracking URI)``."""
    from streamer.tools.demo import ensure_model

    return ensure_model(work)


# --- the service -------------------------------------------------------------------------


def write_config(
    work: Path,
    bootstrap: str,
    topics: dict[str, str],
    model: tuple[str, str],
    max_offsets: int,
    **sections: dict[str, object],
) -> Path:
    """The service config for a bench run in ``work``; ``sections`` add or override keys."""
    path = work / "streamer.yaml"
    document: dict[str, dict[str, object]] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "input_topic": topics["in"],
            "output_topic": topics["out"],
            "dead_letter_topic": topics["dlq"],
            "backend": "python",
        },
        "model": {"uri": model[0], "tracking_uri": model[1]},
        "spark": {
            "master": "local[2]",
            "trigger": "0 seconds",
            "max_offsets_per_trigger": max_offsets,
            "checkpoint_dir": str(work),
        },
        "offsets": {"path": str(work / "offsets")},
        "metrics": {"port": 0},
        "logging": {"format": "json"},
    }
    for section, values in sections.items():
        document.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(document))
    return path


def start_service(config: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """``streamer run`` as its own process group, appending to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streamer.cli", "run", "--config", str(config), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def consumed(store: OffsetStore, topic: str) -> int:
    """Events consumed so far, by the persisted position (every partition starts at 0)."""
    try:
        stored = store.load()
    except Exception:
        return 0
    return sum(stored.offsets.get(topic, {}).values()) if stored else 0


# --- progress of a streaming query ------------------------------------------------------


def wait_for_rows(query: Any, rows: int, timeout: float, poll: float = 0.5) -> list[dict]:
    """Poll ``query`` until its batches read ``rows`` input rows in all; their progress
    events (plain dicts with data, by batch id). Raises if the query dies or on timeout."""
    seen: dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    while True:
        for progress in query.recentProgress:
            event = json.loads(progress.json)
            if int(event.get("numInputRows") or 0) > 0:
                seen[int(event["batchId"])] = event
        if sum(int(e["numInputRows"]) for e in seen.values()) >= rows:
            return [seen[b] for b in sorted(seen)]
        if not query.isActive:
            raise RuntimeError(f"the query stopped early: {query.exception()}")
        if time.monotonic() > deadline:
            done = sum(int(e["numInputRows"]) for e in seen.values())
            raise TimeoutError(f"{done} of {rows} rows within {timeout:.0f}s")
        time.sleep(poll)


def _batch_end(event: dict) -> float:
    start = datetime.fromisoformat(event["timestamp"]).timestamp()
    return start + event["durationMs"]["triggerExecution"] / 1000.0


def steady_state(progress: Sequence[dict], skip: int = SKIP_BATCHES) -> dict[str, Any]:
    """The steady-state rate of a query's batches with data (see :mod:`bench.throughput`),
    and the mean ``durationMs`` per phase of those batches."""
    batches = sorted(
        (e for e in progress if int(e.get("numInputRows") or 0) > 0), key=lambda e: e["batchId"]
    )
    out: dict[str, Any] = {"batches": len(batches), "rows_total": 0, "rows_per_s": None}
    out["rows_total"] = sum(int(e["numInputRows"]) for e in batches)
    if batches:
        out["first_batches_ms"] = [e["durationMs"]["triggerExecution"] for e in batches[:skip]]
    steady = batches[skip:]
    if skip < 1 or not steady:
        return out
    rows = sum(int(e["numInputRows"]) for e in steady)
    seconds = _batch_end(steady[-1]) - _batch_end(batches[skip - 1])
    busy = sum(e["durationMs"]["triggerExecution"] for e in steady) / 1000.0
    phases = {
        k: sum(e["durationMs"].get(k, 0) for e in steady) / len(steady)
        for k in (*PHASES, "triggerExecution")
    }
    out.update(
        window=[_batch_end(batches[skip - 1]), _batch_end(steady[-1])],
        steady_batches=len(steady),
        steady_rows=rows,
        steady_seconds=seconds,
        rows_per_s=rows / seconds if seconds > 0 else None,
        busy_rows_per_s=rows / busy if busy > 0 else None,
        mean_batch_rows=rows / len(steady),
        mean_ms=phases,
        gap_ms=(seconds - busy) * 1000.0 / len(steady),
        per_batch=[
            {
                "batchId": e["batchId"],
                "rows": int(e["numInputRows"]),
                **{k: e["durationMs"].get(k, 0) for k in (*PHASES, "triggerExecution")},
            }
            for e in batches
        ],
    )
    return out


# --- the machine and the report ----------------------------------------------------------


def machine() -> dict[str, str]:
    """Cores, CPU model and RAM of this machine, as RESULTS shows them."""
    cpu, ram = "", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.0f} GB"
                break
    except OSError:
        pass
    return {"cores": str(os.cpu_count()), "ram": ram, "cpu": cpu}


BENCH_OUTPUTS = (":(exclude)bench/RESULTS.md", ":(exclude)bench/*.png")
"""What the runners themselves write: a run that rewrote them is still from a clean commit."""


def git_commit() -> str:
    """The commit the code under measurement is at, ``-dirty`` if any tracked file but the
    runners' own outputs differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=REPO
        ).stdout.strip()

    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", *BENCH_OUTPUTS)
    return git("rev-parse", "--short", "HEAD") + ("-dirty" if changed else "")


def pyspark_version() -> str:
    from importlib.metadata import version

    return version("pyspark")


def write_results(section: str, marker: str = "chaos", path: Path = RESULTS) -> None:
    """Replace one benchmark's marked section of ``path`` (bench/RESULTS.md), keeping the
    others; append it when the markers are absent."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    block = f"{start}\n{section}{end}\n"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) + 1 :]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)
