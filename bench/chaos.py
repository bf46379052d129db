"""Chaos: SIGKILL ``streamer run`` at random moments while events flow; count lost and
duplicated events by source position.

    python -m bench.chaos --kills 20 --events 40000

runs the large form against an embedded broker (or ``--bootstrap-servers``) with the demo's
fraud model, and rewrites the chaos section of ``bench/RESULTS.md``. The small form runs in
the default test suite (``tests/integration/test_chaos.py``) through :func:`run_chaos`.

Each cycle starts the service as its own process group and waits until it is provably
mid-stream: this run has persisted progress (its position moved past where it started,
so outputs are growing) and input remains behind that position. After a random 0-2 s more
it SIGKILLs the whole group (driver, JVM, Python workers), as a node loss would, and
records the lag left at the kill; a kill with no input left is recorded as idle (lag 0),
which the test refuses. A last run drains the topic
and stops with SIGTERM. Every produced event must then have an output or a dead letter,
matched by source partition and offset. Duplicates are bounded by the batches in flight at
each kill: the batch being written, plus one completed batch whose progress event had not
yet been persisted (progress is delivered asynchronously after the sink commit).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    consumed,
    demo_model,
    new_work_dir,
    start_broker,
    start_service,
    write_config,
    write_results,
)
from streamer.kafka.admin import OffsetProbe, create_topics
from streamer.kafka.io import NotAtEnd, produce_all, read_to_end
from streamer.offsets.stores import FileStore

PARTITIONS = 4


@dataclass
class ChaosReport:
    events: int
    kills: int
    lost: int
    duplicates: int
    max_offsets_per_trigger: int
    kill_moments: list[str] = field(default_factory=list)
    lag_at_kills: list[int] = field(default_factory=list)
    """Events produced but not yet consumed (persisted) at each kill."""
    backend: str = "python"
    final_exit_code: int | None = None
    seconds: float = 0.0

    @property
    def duplicate_bound(self) -> int:
        return self.kills * 2 * self.max_offsets_per_trigger


def _query_starts(log: Path) -> int:
    try:
        return log.read_text(errors="replace").count("query started")
    except FileNotFoundError:
        return 0


def produce_at_rate(
    bootstrap: str,
    topic: str,
    events: Sequence[tuple[bytes, bytes]],
    rate: float,
    done: threading.Event,
) -> None:
    produce_all(bootstrap, {}, topic, events, defaults={"linger.ms": 10}, rate=rate)
    done.set()


def read_sources(bootstrap: str, topics: Sequence[str]) -> list[tuple[int, int, int]]:
    """(source partition, source offset, record timestamp ms) of every output and dead
    letter in ``topics``, read to the end."""
    seen: list[tuple[int, int, int]] = []
    with contextlib.suppress(NotAtEnd):  # as before: after 120 s, what was read
        for m in read_to_end(bootstrap, {}, topics, timeout=120):
            source = json.loads(m.value())["source"]
            seen.append((source["partition"], source["offset"], m.timestamp()[1]))
    return seen


def read_positions(bootstrap: str, topics: Sequence[str]) -> Counter[tuple[int, int]]:
    """How often each source (partition, offset) has an output or dead letter."""
    return Counter((p, o) for p, o, _ in read_sources(bootstrap, topics))


def run_chaos(
    *,
    bootstrap: str,
    model: tuple[str, str],
    events: Sequence[tuple[bytes, bytes]],
    work: Path,
    kills: int,
    rate: float = 150.0,
    max_offsets_per_trigger: int = 200,
    seed: int = 0,
    backend: str = "python",
    log=print,
) -> ChaosReport:
    """Kill the service ``kills`` times while ``events`` are produced; drain; count."""
    rng = random.Random(seed)
    started = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex[:8]
    topics = {"in": f"chaos-in-{name}", "out": f"chaos-out-{name}", "dlq": f"chaos-dlq-{name}"}
    create_topics(bootstrap, {}, {topics["in"]: PARTITIONS, topics["out"]: 2, topics["dlq"]: 1})
    config = write_config(
        work, bootstrap, topics, model, max_offsets_per_trigger, kafka={"backend": backend}
    )
    store = FileStore(work / "offsets")
    service_log = work / "service.log"
    produced = threading.Event()
    producer = threading.Thread(
        target=produce_at_rate, args=(bootstrap, topics["in"], events, rate, produced), daemon=True
    )
    producer.start()
    report = ChaosReport(len(events), kills, 0, 0, max_offsets_per_trigger, backend=backend)
    probe = OffsetProbe(bootstrap, {}, "list")
    partitions = [(topics["in"], p) for p in range(PARTITIONS)]

    def lag() -> int:
        return sum(probe.latest(partitions).values()) - consumed(store, topics["in"])

    try:
        for k in range(kills):
            process = start_service(config, service_log)
            launched, start_position = time.monotonic(), consumed(store, topics["in"])
            # Mid-stream: this run has moved the position (outputs growing); batch ids
            # restart at 0 with each run's fresh checkpoint, so positions are compared.
            while consumed(store, topics["in"]) <= start_position and process.poll() is None:
                if time.monotonic() - launched > 240:
                    raise RuntimeError(f"no progress within 240s; see {service_log}")
                time.sleep(0.1)
            delay = rng.uniform(0, 2)
            time.sleep(delay)
            if process.poll() is not None:
                raise RuntimeError(f"service exited with {process.returncode}; see {service_log}")
            remaining = lag()
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            moment = f"at position {consumed(store, topics['in'])} +{delay:.1f}s, lag {remaining}"
            report.kill_moments.append(moment)
            report.lag_at_kills.append(remaining)
            log(f"chaos: kill {k + 1}/{kills} {moment}")
    finally:
        probe.close()

    starts = _query_starts(service_log)
    process = start_service(config, service_log)
    try:
        while _query_starts(service_log) <= starts:
            if process.poll() is not None:
                raise RuntimeError(f"final run exited with {process.returncode}")
            time.sleep(0.2)
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"final run exited with {process.returncode}")
            if produced.is_set() and consumed(store, topics["in"]) >= len(events):
                break
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        report.final_exit_code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    seen = read_positions(bootstrap, [topics["out"], topics["dlq"]])
    report.lost = len(events) - len(seen)
    report.duplicates = sum(n - 1 for n in seen.values())
    report.seconds = time.monotonic() - started
    return report


def _results_section(report: ChaosReport, command: str) -> str:
    import platform

    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    return "\n".join(
        [
            "## Chaos: SIGKILL while events flow (issue 3)",
            "",
            f"Command: `{command}`  ",
            f"Date: {time.strftime('%Y-%m-%d')}, commit {commit}, {os.cpu_count()} cores, "
            f"{platform.python_version()}, {report.backend} backend, embedded Apache Kafka",
            "",
            "| events | kills | lost | duplicates | bound (kills × 2 × max_offsets_per_trigger) "
            "| duplicates / bound | duplicates / events | final exit | wall time |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {report.events} | {report.kills} | {report.lost} | {report.duplicates} | "
            f"{report.duplicate_bound} | {report.duplicates / report.duplicate_bound:.2f} | "
            f"{report.duplicates / report.events:.3f} | {report.final_exit_code} | "
            f"{report.seconds:.0f} s |",
            "",
            "Lost = events with no output and no dead letter, matched by source partition and "
            "offset. The bound is the batches that can be in flight at a kill: the one being "
            "written, and one completed batch whose progress was not yet persisted.",
            "",
            "Kill moments (lag = events left behind the persisted position at the kill): "
            + "; ".join(report.kill_moments),
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument(
        "--rate",
        type=float,
        default=70.0,
        help="events per second; keep events/rate above kills x ~30 s so kills land mid-stream",
    )
    parser.add_argument("--max-offsets-per-trigger", type=int, default=500)
    parser.add_argument("--bad-fraction", type=float, default=0.01)
    parser.add_argument("--work-dir", default=".streamer-bench/chaos")
    parser.add_argument("--bootstrap-servers", default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backend", choices=("jvm", "python"), default="jvm")
    args = parser.parse_args(argv)

    from contextlib import ExitStack

    from streamer.tools.synthetic import events as synthetic_events

    work = new_work_dir(args.work_dir)
    with ExitStack() as stack:
        bootstrap = args.bootstrap_servers or start_broker(stack)
        model = demo_model(work.parent)
        events = [
            (e.key, e.value)
            for e in synthetic_events(
                args.events, bad_fraction=args.bad_fraction, seed=args.seed, id_prefix="chaos"
            )
        ]
        report = run_chaos(
            bootstrap=bootstrap,
            model=model,
            events=events,
            work=work,
            kills=args.kills,
            rate=args.rate,
            max_offsets_per_trigger=args.max_offsets_per_trigger,
            seed=args.seed,
            backend=args.backend,
        )
    print(
        f"chaos events={report.events} kills={report.kills} lost={report.lost} "
        f"duplicates={report.duplicates} bound={report.duplicate_bound} "
        f"final_exit={report.final_exit_code} seconds={report.seconds:.0f}"
    )
    command = "python -m bench.chaos " + " ".join(sys.argv[1:] if argv is None else argv)
    write_results(_results_section(report, command.strip()), marker=f"chaos-{args.backend}")
    ok = report.lost == 0 and report.duplicates <= report.duplicate_bound
    ok = ok and all(lag > 0 for lag in report.lag_at_kills)
    return 0 if ok and report.final_exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
