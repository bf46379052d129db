"""Latency at constant input rates: streamer against the plain Python ceiling (issue 8).

    python bench/latency.py                          # 1k, 5k, 10k events/s, 120 s each
    python -m bench.latency --rates 1000,5000,10000,20000,40000
    python -m bench.latency --quick --results /tmp/R.md --chart /tmp/l.png --json /tmp/l.json

One run: start an embedded broker (``--broker``: Apache Kafka, one KRaft node, by default; or
tansu), or use ``--bootstrap-servers``; train and register the
24-feature model (:mod:`bench.workload`), then for each rate and system (one step) create
a 4-partition input topic and output topics, and run the system as a child process group
that is killed if it overruns its timeout:

(a) ``streamer``: the real :class:`streamer.service.Service` with a bench config
    (:func:`bench.common.write_config`: ``--backend`` python or jvm, ``local[2]``, trigger "0
    seconds", maxOffsetsPerTrigger 100,000: high enough that a batch never leaves backlog
    behind at these rates, so the batch size follows the load).
(c) ``ceiling``: :func:`bench.ceiling.run_ceiling` following the topic (``until``), with
    consume calls that wait at most 10 ms to fill a batch.

Both run with ``OMP_NUM_THREADS=1``. Each step first primes the system: 3 rounds of 200
events, each produced at once and waited for on the output topic, so Spark's first batches,
the Python workers and the model loads are behind it. Then a producer in its own process
sends ``rate`` events/s for ``--duration`` seconds, every 10 ms the events due by then
(confluent-kafka with the sink's producer settings, linger.ms 5, round-robin over the
partitions; values cycle through 100,000 precomputed event bodies, each with a unique id).
Multi-record batches are safe on tansu: streamer's source takes partition ends from fetch
responses there (``kafka.end_offsets: auto``) and the ceiling reads its stop offsets the
same way (:func:`bench.ceiling.end_offsets`).

After the step the input and output topics are read back. Latency of an event = the Kafka
timestamp (CreateTime) of its output record − that of its input record, matched by source
partition and offset; both are set by the producing client when it hands the record over.
Priming events and those produced in the first ``--settle`` seconds are left out of the
statistics, but every event must have exactly one output (or dead letter).

A rate is **sustained** when (1) every event has exactly one output, (2) the producer
offered at least 95% of the rate, and (3) the median latency of the events produced in the
last window of the step is at most max(2 × the median of the first window after the
settle, that median + 1 s): latency, and so lag, did not grow. A window is 30 s, or a third
of the measured span when that is shorter. Lag growth = last-window median − first-window
median. The highest sustained rate of a system is the highest tested rate it passes; a
system that fails a rate is not run at higher ones beyond the issue's three rates (1k, 5k
and 10k events/s always run).

Writes the ``latency`` section of ``--results`` (default ``bench/RESULTS.md``) and the CDF
chart beside it (``latency.png``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script, python bench/latency.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench import phases
from bench.chaos import read_sources
from bench.common import (
    add_broker_arguments,
    broker_for,
    check_broker_arguments,
    git_commit,
    machine,
    new_work_dir,
    pyspark_version,
    steady_state,
    wait_for_rows,
    write_config,
    write_results,
)

REQUIRED_RATES = (1000.0, 5000.0, 10000.0)
BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SYSTEMS = ("streamer", "ceiling")
LABELS = {"streamer": "(a) streamer", "ceiling": "(c) ceiling"}
COLORS = {"streamer": "#1f77b4", "ceiling": "#2ca02c"}
MARKER = "latency"
PARTITIONS = 4
PRIME_ROUNDS, PRIME_EVENTS = 3, 200
POOL = 100_000
TICK = 0.01
MAX_OFFSETS = 100_000
CEILING_WAIT = 0.01
WINDOW = 30.0
MIN_OFFERED = 0.95
QUANTILES = np.linspace(0.0, 1.0, 1001)


# --- in the step's process: producer, priming, the two systems ---------------------------


def _say(message: str) -> None:
    print(f"latency step: {message}", flush=True)


def _produce(
    bootstrap: str, topic: str, rate: float, seconds: float, seed: int, go: Any, out: Any
) -> None:
    """The producer process: build the payloads, report ready, wait for ``go``, then send
    ``rate`` events/s for ``seconds``; report what it did."""
    try:
        from confluent_kafka import Producer

        from bench.workload import event_values, features
        from streamer.kafka.io import Delivery, send
        from streamer.kafka.pyworker import PRODUCER_DEFAULTS

        total = round(rate * seconds)
        bodies = [v.split(b",", 1)[1] for v in event_values(features(min(total, POOL), seed=seed))]
        delivery = Delivery()
        producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_DEFAULTS})
        producer.list_topics(topic, timeout=10)
        out.put({"ready": total})
        go.wait()
        start = time.monotonic()
        first_ms = time.time() * 1000
        sent, late, tick = 0, 0.0, 0
        while sent < total:
            now = time.monotonic()
            late = max(late, now - (start + tick * TICK))
            due = min(total, int(rate * (now - start)) + 1)
            for i in range(sent, due):
                value = b'{"event_id":"lat-%d",%s' % (i, bodies[i % len(bodies)])
                key = b"lat-%d" % i
                send(producer, topic, value, key, partition=i % PARTITIONS, on_delivery=delivery)
            sent = due
            producer.poll(0)
            tick += 1
            time.sleep(max(0.0, start + tick * TICK - time.monotonic()))
        seconds_sent = time.monotonic() - start
        last_ms = time.time() * 1000
        remaining = producer.flush(120)
        out.put(
            {
                "events": sent,
                "first_ms": first_ms,
                "last_ms": last_ms,
                "rate": (sent - 1) / seconds_sent if seconds_sent > 0 else None,
                "max_late_ms": late * 1000,
                "unacknowledged": remaining,
                "failed": len(delivery.failures),
            }
        )
    except BaseException as exc:
        out.put({"error": f"producer: {type(exc).__name__}: {exc}"})


class RateProducer:
    """:func:`_produce` in its own process; started early so its payloads are built while
    the system starts."""

    def __init__(self, spec: dict) -> None:
        context = mp.get_context("spawn")
        self._go, self._out = context.Event(), context.Queue()
        self.process = context.Process(
            target=_produce,
            args=(
                spec["bootstrap"],
                spec["input"],
                spec["rate"],
                spec["duration"],
                spec["seed"],
                self._go,
                self._out,
            ),
            daemon=True,
        )
        self.process.start()
        self.total = round(spec["rate"] * spec["duration"])

    def _next(self, timeout: float) -> dict:
        message = self._out.get(timeout=timeout)
        if "error" in message:
            raise RuntimeError(message["error"])
        return message

    def go(self) -> None:
        self._next(300)
        self._go.set()
        _say(f"producing {self.total:,} events")

    def result(self, timeout: float) -> dict:
        report = self._next(timeout)
        _say(f"produced: {report}")
        if report["unacknowledged"] or report["failed"]:
            raise RuntimeError(f"producer: not every event delivered: {report}")
        return report

    def close(self) -> None:
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()


def _outputs(bootstrap: str, topics: Sequence[str]) -> int:
    from bench.ceiling import end_offsets

    return sum(end - start for t in topics for start, end in end_offsets(bootstrap, t).values())


def _prime(spec: dict, outputs: Sequence[str], timeout: float = 300.0) -> dict[int, int]:
    """:data:`PRIME_ROUNDS` rounds of :data:`PRIME_EVENTS` events, each round waited for on
    ``outputs``; the priming events per partition (the first offsets of each)."""
    from bench.workload import event_values, features
    from streamer.kafka.io import produce_all
    from streamer.kafka.pyworker import PRODUCER_DEFAULTS

    values = event_values(features(PRIME_ROUNDS * PRIME_EVENTS, seed=spec["seed"] + 1), 0, "prime")
    deadline = time.monotonic() + timeout
    for r in range(PRIME_ROUNDS):
        first = r * PRIME_EVENTS
        produce_all(
            spec["bootstrap"],
            {},
            spec["input"],
            ((b"prime-%d" % i, values[i]) for i in range(first, first + PRIME_EVENTS)),
            timeout=30,
            defaults=PRODUCER_DEFAULTS,
            partition=lambda j, first=first: (first + j) % PARTITIONS,
        )
        while _outputs(spec["bootstrap"], outputs) < (r + 1) * PRIME_EVENTS:
            if time.monotonic() > deadline:
                raise TimeoutError(f"priming round {r + 1} not scored within {timeout:.0f}s")
            time.sleep(0.2)
        _say(f"priming round {r + 1} scored")
    return {p: len(range(p, len(values), PARTITIONS)) for p in range(PARTITIONS)}


def _phase_streamer(spec: dict) -> dict:
    """(a): the service in this process; its progress events of the whole step."""
    from streamer.config import load_config
    from streamer.logs import configure_logging
    from streamer.service import Service

    configure_logging("INFO", "text")
    work = Path(spec["work"])
    path = write_config(
        work,
        spec["bootstrap"],
        {"in": spec["input"], "out": spec["output"], "dlq": spec["dead_letters"]},
        (spec["model_uri"], spec["tracking_uri"]),
        spec["max_offsets_per_trigger"],
        kafka={"backend": spec["backend"]},
    )
    producer = RateProducer(spec)
    started = time.monotonic()
    service = Service(load_config(path, env={}))
    try:
        service.start()
        primed = _prime(spec, [spec["output"], spec["dead_letters"]])
        ready = time.monotonic()
        producer.go()
        progress = wait_for_rows(
            service.query, sum(primed.values()) + producer.total, spec["follow_timeout"]
        )
        produced = producer.result(60)
    finally:
        outcome = service.stop()
        producer.close()
    return {
        "primed": primed,
        "producer": produced,
        "progress": progress,
        "ready_seconds": ready - started,
        "outcome": outcome.outcome,
        **(
            {"error": f"the service run {outcome.outcome}: {outcome.error}"}
            if outcome.error
            else {}
        ),
    }


def _phase_ceiling(spec: dict) -> dict:
    """(c): :func:`bench.ceiling.run_ceiling` following the input until the producer is done."""
    from bench.ceiling import end_offsets, run_ceiling

    producer = RateProducer(spec)
    started = time.monotonic()
    step: dict[str, Any] = {}

    def until() -> dict[int, int]:
        step["primed"] = _prime(spec, [spec["output"]])
        step["ready_seconds"] = time.monotonic() - started
        producer.go()
        step["producer"] = producer.result(spec["duration"] + 180)
        return {p: end for p, (_, end) in end_offsets(spec["bootstrap"], spec["input"]).items()}

    try:
        result = run_ceiling(
            bootstrap=spec["bootstrap"],
            input_topic=spec["input"],
            output_topic=spec["output"],
            model_path=spec["model_path"],
            model_version=spec["model_version"],
            processes=spec["processes"],
            timeout=spec["follow_timeout"],
            until=until,
            wait=CEILING_WAIT,
        )
    finally:
        producer.close()
    return {**step, "ceiling": result}


_PHASES = {"streamer": _phase_streamer, "ceiling": _phase_ceiling}


def run_step(name: str, spec: dict, timeout: float) -> dict:
    """The step's system ``name`` as a child process group (:func:`bench.phases.run_phase`)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return phases.run_phase("bench.latency", name, spec, timeout, env)


# --- after the step: read the topics back and measure -----------------------------------


def read_input(bootstrap: str, topic: str, timeout: float = 300.0) -> dict[int, np.ndarray]:
    """Record timestamps (ms) of ``topic`` by partition, indexed by offset (-1 for a gap)."""
    from streamer.kafka.admin import topic_partitions
    from streamer.kafka.io import read_to_end

    partitions = topic_partitions(bootstrap, {}, [topic])[topic]
    seen: dict[int, tuple[list[int], list[int]]] = {p: ([], []) for p in partitions}
    read = read_to_end(
        bootstrap, {}, [topic], timeout=timeout, defaults={"fetch.queue.backoff.ms": 5}
    )
    for m in read:
        offsets, stamps = seen[m.partition()]
        offsets.append(m.offset())
        stamps.append(m.timestamp()[1])
    out = {}
    for p, (offsets, stamps) in seen.items():
        out[p] = np.full(max(offsets, default=-1) + 1, -1, dtype=np.int64)
        out[p][offsets] = stamps
    return out


def measure(
    inputs: dict[int, np.ndarray],
    outputs: Sequence[tuple[int, int, int]],
    primed: dict[int, int],
    rate: float,
    settle: float,
) -> dict[str, Any]:
    """Match ``outputs`` (source partition, offset, output timestamp) to ``inputs``; count
    lost, duplicated and unmatched outputs; latency statistics of the measured events and
    the sustained verdict (see the module docstring)."""
    by_partition: dict[int, list[tuple[int, int]]] = {p: [] for p in inputs}
    stray = 0
    for p, o, ts in outputs:
        if p in inputs and 0 <= o < len(inputs[p]) and inputs[p][o] >= 0:
            by_partition[p].append((o, ts))
        else:
            stray += 1
    lost = duplicates = 0
    produced_at, latency = [], []
    for p, stamps in inputs.items():
        pairs = np.array(by_partition[p], dtype=np.int64).reshape(-1, 2)
        counts = np.bincount(pairs[:, 0], minlength=len(stamps))
        present = stamps >= 0
        lost += int(((counts == 0) & present).sum())
        duplicates += int(np.clip(counts - 1, 0, None).sum())
        first_out = np.full(len(stamps), np.iinfo(np.int64).max)
        np.minimum.at(first_out, pairs[:, 0], pairs[:, 1])
        rated = np.arange(len(stamps)) >= primed.get(p, 0)
        scored = rated & (counts > 0) & present
        produced_at.append(stamps[rated & present])
        latency.append(np.stack([stamps[scored], first_out[scored] - stamps[scored]], axis=1))
    produced = np.concatenate(produced_at)
    pairs = np.concatenate(latency)
    pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]
    start, end = float(produced.min()), float(produced.max())
    offered = (len(produced) - 1) / ((end - start) / 1000) if end > start else None
    kept = pairs[pairs[:, 0] >= start + settle * 1000]
    window = min(WINDOW, (end - start) / 1000 / 3 - settle / 3) * 1000
    stamp, lat = kept[:, 0], kept[:, 1].astype(float)
    first = lat[stamp < start + settle * 1000 + window]
    last = lat[stamp > end - window]
    first_median = float(np.median(first)) if len(first) else None
    last_median = float(np.median(last)) if len(last) else None
    rule = None
    if first_median is not None and last_median is not None:
        rule = last_median <= max(2 * first_median, first_median + 1000)
    complete = lost == duplicates == stray == 0
    offered_ok = offered is not None and offered >= MIN_OFFERED * rate
    return {
        "produced": len(produced),
        "measured": len(kept),
        "offered_rate": offered,
        "lost": lost,
        "duplicates": duplicates,
        "stray": stray,
        "window_seconds": window / 1000,
        **{f"p{q}": float(np.percentile(lat, q)) if len(lat) else None for q in (50, 95, 99)},
        "max": float(lat.max()) if len(lat) else None,
        "mean": float(lat.mean()) if len(lat) else None,
        "first_median": first_median,
        "last_median": last_median,
        "lag_growth": (last_median - first_median) if rule is not None else None,
        "complete": complete,
        "offered_ok": offered_ok,
        "no_growth": rule,
        "sustained": bool(complete and offered_ok and rule),
        "cdf": np.quantile(lat, QUANTILES).tolist() if len(lat) else [],
    }


def spark_window(progress: Sequence[dict], start_ms: float, end_ms: float) -> dict[str, Any]:
    """:func:`bench.common.steady_state` of the batches that started within the
    measured span; the first of them only marks the start of the rate's window."""
    window = [
        e
        for e in progress
        if start_ms <= datetime.fromisoformat(e["timestamp"]).timestamp() * 1000 <= end_ms
    ]
    return steady_state(window, skip=1)


def evaluate(
    bootstrap: str, topics: dict[str, str], result: dict, rate: float, settle: float
) -> dict[str, Any]:
    """A finished step: its topics read back and measured (:func:`measure`), with the producer's
    report, and (a)'s batches within the measured span."""
    inputs = read_input(bootstrap, topics["input"])
    outputs = read_sources(bootstrap, [topics["output"]])
    dead = read_sources(bootstrap, [topics["dead_letters"]])
    primed = {int(p): n for p, n in result["primed"].items()}
    step = measure(inputs, outputs + dead, primed, rate, settle)
    step.update(
        dead_letters=len(dead), producer=result["producer"], ready_seconds=result["ready_seconds"]
    )
    if "progress" in result:
        produced = result["producer"]
        window = (produced["first_ms"] + settle * 1000, produced["last_ms"])
        step["spark"] = spark_window(result["progress"], *window)
    if "ceiling" in result:
        c = result["ceiling"]
        step["ceiling_us_per_row"] = {
            k: v * 1e6 / max(1, c["rows"]) for k, v in c["seconds_by_step"].items()
        }
    return step


# --- the report -------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def highest(steps: Sequence[dict], system: str) -> float | None:
    passed = [s["rate"] for s in steps if s["system"] == system and s.get("sustained")]
    return max(passed) if passed else None


def table(steps: Sequence[dict]) -> list[str]:
    lines = [
        "| system | target /s | offered /s | events (measured) | p50 ms | p95 ms | p99 ms "
        "| max ms | first → last window median, ms | lag growth ms | lost / dup / dead letters "
        "| sustained |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in steps:
        head = f"| {LABELS[s['system']]} | {_rate(s['rate'])} "
        if "skipped" in s:
            lines.append(head + f"| not run: {s['skipped']} |" + " |" * 9)
            continue
        if "error" in s:
            lines.append(head + f"| failed: {s['error']} |" + " |" * 8 + " no |")
            continue
        verdict = "**yes**" if s["sustained"] else "no"
        if not s["sustained"]:
            why = [
                w
                for w, ok in (
                    ("events lost or duplicated", s["complete"]),
                    ("rate not offered", s["offered_ok"]),
                    ("latency grew", s["no_growth"]),
                )
                if not ok
            ]
            verdict += f" ({', '.join(why)})"
        lines.append(
            head
            + f"| {_ms(s['offered_rate'])} | {s['produced']:,} ({s['measured']:,}) "
            + f"| {_ms(s['p50'])} | {_ms(s['p95'])} | {_ms(s['p99'])} | {_ms(s['max'])} "
            + f"| {_ms(s['first_median'])} → {_ms(s['last_median'])} | {_ms(s['lag_growth'])} "
            + f"| {s['lost']} / {s['duplicates']} / {s.get('dead_letters', '—')} | {verdict} |"
        )
    return lines


def spark_table(steps: Sequence[dict]) -> list[str]:
    rows = [s for s in steps if s["system"] == "streamer" and s.get("spark", {}).get("mean_ms")]
    if not rows:
        return []
    lines = [
        "Where (a)'s latency goes: mean per micro-batch within the measured span, from the "
        "query's progress events (ms); period = triggerExecution + the gap to the next "
        "trigger. An event that arrives while a batch runs is read by the next batch (on "
        "average half a period later) and written during that batch's addBatch (up to one "
        "more period), so the micro-batch model puts p50 between 0.5 and 1.5 periods.",
        "",
        "| rate /s | batches | rows/batch | latestOffset | addBatch | walCommit + commitOffsets "
        "| triggerExecution | gap | period | measured p50 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in rows:
        w = s["spark"]
        m = w["mean_ms"]
        lines.append(
            f"| {_rate(s['rate'])} | {w['steady_batches']} | {w['mean_batch_rows']:,.0f} "
            f"| {m['latestOffset']:,.0f} | {m['addBatch']:,.0f} "
            f"| {m['walCommit'] + m['commitOffsets']:,.0f} | {m['triggerExecution']:,.0f} "
            f"| {w['gap_ms']:,.0f} | {m['triggerExecution'] + max(0.0, w['gap_ms']):,.0f} "
            f"| {_ms(s['p50'])} |"
        )
    return [*lines, ""]


def render(steps: Sequence[dict], settings: dict[str, Any], command: str, chart: str) -> str:
    host = machine()
    tested = ", ".join(_rate(r) for r in settings["rates"])
    best = []
    for system in settings["systems"]:
        rate = highest(steps, system)
        best.append(f"{LABELS[system]} **{_rate(rate) + ' events/s' if rate else 'none'}**")
    skipped = [f"{LABELS[s['system']]} at {_rate(s['rate'])}/s" for s in steps if "skipped" in s]
    lines = [
        "## Latency at constant input rates: streamer and the plain Python ceiling (issue 8)",
        "",
        f"Command: `{command}`  ",
        f"Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, commit {git_commit()}  ",
        f"Machine: {host['cores']} cores ({host['cpu']}), {host['ram']} RAM, "
        f"Python {platform.python_version()}, pyspark {pyspark_version()}, "
        f"{settings['broker']}; streamer's kafka.backend: {settings.get('backend', 'python')}  ",
        f"Workload: each rate for {settings['duration']:.0f} s after priming, the first "
        f"{settings['settle']:.0f} s left out of the statistics; the 24-feature JSON events "
        f"and model of the throughput section, {PARTITIONS}-partition topics (new ones per "
        f"step). (a) local[2], trigger 0 s, maxOffsetsPerTrigger {MAX_OFFSETS:,}; (c) "
        f"{settings['processes']} processes, consume wait {CEILING_WAIT * 1000:.0f} ms. "
        "OMP_NUM_THREADS=1; the producer shares the machine with the system under test.",
        "",
        *table(steps),
        "",
        f"Highest tested rate sustained without growing lag (tested: {tested} events/s): "
        + "; ".join(best)
        + ".",
        "",
        f"![latency CDFs]({chart})",
        "",
        *spark_table(steps),
        "Definitions. Latency = output record's Kafka timestamp − input record's, matched by "
        "source partition and offset; both are CreateTime, set when the producing client "
        "(the bench producer, the system's sink) takes the record, so the output's own "
        "linger and broker append are not included. Events: produced at the rate "
        "(measured: after the settle). Offered = events / span of their input timestamps. "
        f"Sustained = every event has exactly one output, offered ≥ {MIN_OFFERED:.0%} of "
        "the target, and the median latency of the events produced in the last window is "
        "at most max(2 × the first window's median, first + 1,000 ms), where the first "
        f"window starts after the settle and a window is {WINDOW:.0f} s, or a third of the "
        "measured span when shorter. Lag growth = last-window median − first-window median.",
        "",
    ]
    late = [
        f"{LABELS[s['system']]} {_rate(s['rate'])}/s {s['producer']['max_late_ms']:,.0f} ms"
        for s in steps
        if "producer" in s
    ]
    if late:
        lines += [
            "Producer: largest delay behind its 10 ms schedule (it catches up): "
            + "; ".join(late)
            + ".",
            "",
        ]
    if skipped:
        lines += [
            "Not run, because the system did not sustain a lower rate: " + "; ".join(skipped) + ".",
            "",
        ]
    return "\n".join(lines)


def draw_chart(path: Path, steps: Sequence[dict], rates: Sequence[float], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(rates), figsize=(4.2 * len(rates), 3.8), dpi=110, sharey=True, squeeze=False
    )
    for ax, rate in zip(axes[0], rates):
        for s in steps:
            if s["rate"] == rate and s.get("cdf"):
                ax.plot(
                    np.maximum(s["cdf"], 1),
                    QUANTILES,
                    color=COLORS[s["system"]],
                    label=f"{LABELS[s['system']]}, p50 {s['p50']:,.0f} ms",
                )
        ax.set_xscale("log")
        ax.set_title(f"{rate:,.0f} events/s", fontsize=10)
        ax.set_xlabel("produce → result latency, ms")
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8, loc="lower right")
        else:
            ax.text(0.5, 0.5, "not run", ha="center", transform=ax.transAxes)
    axes[0][0].set_ylabel("fraction of events")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --- the run ----------------------------------------------------------------------------


def run(args: argparse.Namespace, command: str, log=print) -> dict[str, Any]:
    from bench.workload import train_and_register
    from streamer.kafka.admin import admin_client, create_topics

    work = new_work_dir(args.work_dir)
    steps: list[dict[str, Any]] = []
    with ExitStack() as stack:
        bootstrap, broker = broker_for(args, stack)
        log(f"latency: work dir {work}, broker {bootstrap}")
        model = train_and_register(work)
        log(f"latency: model {model.uri} version {model.version}")
        failed: dict[str, float] = {}
        for rate in args.rates:
            for system in args.systems:
                if system in failed and rate not in REQUIRED_RATES:
                    steps.append(
                        {
                            "system": system,
                            "rate": rate,
                            "skipped": f"did not sustain {_rate(failed[system])}/s",
                        }
                    )
                    continue
                name = uuid.uuid4().hex[:8]
                topics = {
                    "input": f"lat-in-{name}",
                    "output": f"lat-out-{name}",
                    "dead_letters": f"lat-dlq-{name}",
                }
                create_topics(
                    bootstrap,
                    {},
                    {
                        topics["input"]: PARTITIONS,
                        topics["output"]: PARTITIONS,
                        topics["dead_letters"]: 1,
                    },
                )
                timeout = args.step_timeout or (
                    600 + 2 * args.duration + rate * args.duration / 5000
                )
                spec = {
                    "work": str(work / f"{system}-{rate:g}"),
                    "bootstrap": bootstrap,
                    **topics,
                    "rate": rate,
                    "duration": args.duration,
                    "seed": args.seed,
                    "model_uri": model.uri,
                    "tracking_uri": model.tracking_uri,
                    "model_path": model.local_path,
                    "model_version": model.version,
                    "max_offsets_per_trigger": MAX_OFFSETS,
                    "processes": args.processes,
                    "follow_timeout": timeout - 150,
                    "backend": args.backend,
                }
                log(f"latency: {system} at {rate:,.0f}/s for {args.duration:.0f}s")
                result = run_step(system, spec, timeout)
                step: dict[str, Any] = {"system": system, "rate": rate, **topics}
                if "error" in result:
                    step["error"] = result["error"]
                else:
                    step.update(evaluate(bootstrap, topics, result, rate, args.settle))
                    log(
                        f"latency: {system} {rate:,.0f}/s offered {_ms(step['offered_rate'])}/s "
                        f"p50 {_ms(step['p50'])} p99 {_ms(step['p99'])} ms, lost {step['lost']}, "
                        f"dup {step['duplicates']}, sustained {step['sustained']}"
                    )
                with suppress(Exception):  # frees the in-memory broker; optional
                    for done in (
                        admin_client(bootstrap, {}).delete_topics([*topics.values()]).values()
                    ):
                        done.result(30)
                steps.append(step)
                if not step.get("sustained"):
                    failed[system] = rate
    results_path = Path(args.results).resolve()
    chart = Path(args.chart).resolve() if args.chart else results_path.with_name("latency.png")
    settings = {
        "rates": args.rates,
        "systems": args.systems,
        "duration": args.duration,
        "settle": args.settle,
        "processes": args.processes or os.cpu_count(),
        "broker": broker,
        "backend": args.backend,
    }
    draw_chart(
        chart,
        steps,
        args.rates,
        f"produce → result latency CDF, {PARTITIONS} partitions, {os.cpu_count()} cores, "
        f"{args.duration:.0f} s per rate (first {args.settle:.0f} s left out)",
    )
    section = render(steps, settings, command, os.path.relpath(chart, results_path.parent))
    write_results(section, MARKER, results_path)
    report = {"settings": settings, "steps": steps, "work": str(work), "chart": str(chart)}
    (work / "report.json").write_text(json.dumps(report, indent=1, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
    print("\n".join(table(steps)))
    return report


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rates", default=None, help="events/s, comma-separated; default 1000,5000,10000"
    )
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds per rate; default 120"
    )
    parser.add_argument("--settle", type=float, default=None, help="seconds left out; default 15")
    parser.add_argument(
        "--quick", action="store_true", help="a tiny run: rates 200,500, 15 s each, settle 3 s"
    )
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--processes", type=int, default=os.cpu_count(), help="for (c)")
    parser.add_argument("--work-dir", default=".streamer-bench/latency")
    add_broker_arguments(parser)
    parser.add_argument(
        "--backend",
        choices=("jvm", "python"),
        default="python",
        help="streamer's kafka.backend for (a)",
    )
    parser.add_argument("--results", default=str(BENCH / "RESULTS.md"))
    parser.add_argument("--chart", default=None, help="default: latency.png beside --results")
    parser.add_argument("--json", default=None, help="also write the raw report here")
    parser.add_argument("--step-timeout", type=float, default=None, help="seconds per step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phase", choices=sorted(_PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = {"rates": "200,500", "duration": 15.0, "settle": 3.0}
    full = {"rates": "1000,5000,10000", "duration": 120.0, "settle": 15.0}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.rates = sorted(float(r) for r in args.rates.split(",") if r.strip())
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose from {', '.join(SYSTEMS)}")
    check_broker_arguments(parser, args)
    if args.settle * 2 >= args.duration:
        parser.error("--settle must be less than half of --duration")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.phase:
        return phases.phase_main(_PHASES, args.phase, args.spec)
    report = run(args, phases.command_line("bench.latency", bool(__package__), argv))
    return 0 if all("error" not in s for s in report["steps"]) else 1


if __name__ == "__main__":
    sys.exit(main())
