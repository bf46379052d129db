"""What checkpoint writes cost per micro-batch, by where the checkpoint lives (issue 8).

    python -m bench.checkpoint_cost

runs one simple streaming query (streamer's Python Kafka source → a light projection →
streamer's Python Kafka sink, on an embedded broker or ``--bootstrap-servers``) once per
checkpoint location and workload, reads ``walCommit`` and ``commitOffsets`` from each
batch's ``StreamingQueryProgress.durationMs``, and rewrites the checkpoint section of
``bench/RESULTS.md`` (or ``--results PATH``). ``--quick`` is the small form the smoke test
(``tests/integration/test_checkpoint_cost_smoke.py``) runs.

Locations:

* ``tmp``: a throwaway ``mkdtemp`` under the system temp dir, what ``streamer run`` does.
* ``tmpfs``: a dir under ``/dev/shm`` (RAM): the floor, no disk at all.
* ``durable``: a persistent path in the repo's bench work dir, with Spark's defaults, as a
  production user on a local filesystem would configure it. Spark 4.3 has no setting that
  makes checkpoint writes fsync: the default ``FileContextBasedCheckpointFileManager`` (and
  the ``FileSystemBased`` one) write a temp file, close it and rename it, with a ``.crc``
  beside it, and never call ``hsync``. On the same filesystem as ``tmp`` the mechanism is
  therefore the same; the only difference is the path.
* ``durable-sync``: the ``durable`` path with ext4's synchronous-update attribute
  (``chattr +S``, inherited by new files and dirs), so every write and rename reaches the
  disk before returning: what an fsync per checkpoint file would cost. Full mode only, and
  only where ``chattr +S`` works.

Workloads: ``trickle`` (events produced continuously at ``--rate``/s, query from latest,
trigger ``--trigger``) and ``bulk`` (a preloaded topic read from earliest with
``maxOffsetsPerTrigger``). Each query runs until ``--skip`` + ``--batches`` batches with data
have committed; the first ``--skip`` are dropped. The two workloads visit the locations in
opposite orders, so drift over the run does not favour one location.

What the two phases time (Spark 4.3 ``MicroBatchExecution``): ``walCommit`` writes the offset
log file (``offsets/N``), and also calls the source's ``commit()`` for the previous batch (for
a Python source, a round trip to the driver-side Python process) and the log-purge check.
``commitOffsets`` writes the commit log file (``commits/N``). The ``tmpfs`` figures therefore
include that non-disk work; the disk's share is the difference to ``tmpfs``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import git_commit, new_work_dir, start_broker, write_results
from streamer.errors import KafkaIOError
from streamer.kafka.admin import create_topics
from streamer.kafka.io import produce_all

LOCATIONS = ("tmp", "tmpfs", "durable", "durable-sync")
WORKLOADS = ("trickle", "bulk")
PHASES = ("walCommit", "commitOffsets", "checkpoint", "addBatch", "triggerExecution")
"""``checkpoint`` is walCommit + commitOffsets of the same batch."""
PARTITIONS = 4
MARKER = "checkpoint"
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Location:
    name: str
    path: str
    filesystem: str
    device: int
    synchronous: bool = False
    note: str = ""


@dataclass
class QueryResult:
    workload: str
    location: str
    batches: list[dict[str, Any]] = field(default_factory=list)
    """durationMs and numInputRows of every batch with data, in batch order (skip included)."""
    checkpoint_files: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


# -- measurement ----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    data = sorted(values)
    if not data:
        return float("nan")
    rank = (len(data) - 1) * q
    low = int(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def summarize(batches: Sequence[Mapping[str, Any]], skip: int) -> dict[str, Any]:
    """Median and p90 (seconds) of each phase over the batches after the first ``skip``."""
    kept = list(batches[skip:])
    out: dict[str, Any] = {"batches": len(kept)}
    if not kept:
        return out
    series: dict[str, list[float]] = {phase: [] for phase in PHASES}
    for batch in kept:
        ms = batch["durationMs"]
        for phase in PHASES:
            if phase == "checkpoint":
                value = ms.get("walCommit", 0) + ms.get("commitOffsets", 0)
            else:
                value = ms.get(phase, 0)
            series[phase].append(value / 1000.0)
    for phase, values in series.items():
        out[phase] = {"median": statistics.median(values), "p90": percentile(values, 0.9)}
    shares = [c / t for c, t in zip(series["checkpoint"], series["triggerExecution"]) if t > 0]
    out["share"] = statistics.median(shares) if shares else float("nan")
    out["rows_median"] = statistics.median(b["numInputRows"] for b in kept)
    return out


def data_batches(progress: Sequence[Any]) -> list[dict[str, Any]]:
    """Progress events of batches that ran (they have a walCommit), one per batch id."""
    by_id: dict[int, dict[str, Any]] = {}
    for p in progress:
        ms = dict(p.durationMs or {})
        if "walCommit" in ms:
            by_id[int(p.batchId)] = {
                "batchId": int(p.batchId),
                "numInputRows": int(p.numInputRows),
                "durationMs": {k: int(v) for k, v in ms.items()},
            }
    return [by_id[k] for k in sorted(by_id)]


def count_checkpoint_files(root: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sub in ("offsets", "commits"):
        folder = os.path.join(root, sub)
        files = os.listdir(folder) if os.path.isdir(folder) else []
        counts[sub] = sum(1 for f in files if not f.startswith("."))
        counts[f"{sub}_crc"] = sum(1 for f in files if f.endswith(".crc"))
    return counts


# -- locations ------------------------------------------------------------------------------


def filesystem_of(path: str) -> tuple[str, str]:
    """(mount point, filesystem type) of ``path``, by the longest matching /proc/mounts entry."""
    real = os.path.realpath(path)
    best = ("/", "unknown")
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount = parts[1].replace("\\040", " ")
                inside = real == mount or real.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best[0]):
                    best = (mount, parts[2])
    except OSError:
        pass
    return best


def set_synchronous(path: str) -> str:
    """``chattr +S`` on ``path``; returns an error text, or "" when it took effect."""
    try:
        done = subprocess.run(["chattr", "+S", path], capture_output=True, text=True)
    except OSError as exc:
        return f"chattr unavailable: {exc}"
    if done.returncode != 0:
        return done.stderr.strip() or f"chattr exited {done.returncode}"
    flags = subprocess.run(["lsattr", "-d", path], capture_output=True, text=True).stdout
    return "" if "S" in flags.split()[0] else "the S attribute did not stick"


def prepare_locations(names: Sequence[str], durable_root: Path) -> dict[str, Location]:
    """The parent dir of each location's checkpoints (one fresh sub dir per query)."""
    out: dict[str, Location] = {}
    for name in names:
        if name == "tmp":
            path = tempfile.mkdtemp(prefix="checkpoint-cost-")
        elif name == "tmpfs":
            if not os.path.isdir("/dev/shm"):
                raise SystemExit("no /dev/shm on this machine; drop the tmpfs location")
            path = tempfile.mkdtemp(prefix="checkpoint-cost-", dir="/dev/shm")
        elif name in ("durable", "durable-sync"):
            path = str(durable_root / name)
            os.makedirs(path, exist_ok=True)
        else:
            raise SystemExit(f"unknown location {name!r}; choose from {', '.join(LOCATIONS)}")
        location = Location(name, path, filesystem_of(path)[1], os.stat(path).st_dev)
        if name == "durable-sync":
            error = set_synchronous(path)
            if error:
                print(f"checkpoint-cost: skipping durable-sync: {error}", file=sys.stderr)
                continue
            location.synchronous = True
            location.note = "chattr +S (synchronous writes and dir updates)"
        out[name] = location
    return out


# -- workloads ------------------------------------------------------------------------------


def event(i: int) -> tuple[bytes, bytes]:
    value = json.dumps({"id": i, "amount": round((i * 7919) % 100_000 / 100, 2), "ts": i})
    return f"k{i % 64}".encode(), value.encode()


def preload(bootstrap: str, topic: str, count: int, start: int = 0) -> None:
    produce_all(bootstrap, {}, topic, (event(i) for i in range(start, start + count)))


class Trickle:
    """Produces events at ``rate`` per second in a thread until stopped."""

    def __init__(self, bootstrap: str, topic: str, rate: float) -> None:
        self.bootstrap, self.topic, self.rate = bootstrap, topic, rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trickle", daemon=True)

    def _run(self) -> None:
        def records() -> Iterator[tuple[bytes, bytes]]:
            while not self._stop.is_set():
                yield event(self.sent)
                self.sent += 1

        # as before: what is still undelivered when the trickle stops is not this run's concern
        with contextlib.suppress(KafkaIOError):
            produce_all(
                self.bootstrap,
                {},
                self.topic,
                records(),
                timeout=30,
                defaults={"linger.ms": 5},
                rate=self.rate,
            )

    def __enter__(self) -> Trickle:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def run_query(
    spark: Any,
    backend: Any,
    *,
    workload: str,
    location: Location,
    source_topic: str,
    sink_topic: str,
    starting: str,
    max_offsets: int | None,
    trigger: str,
    wanted: int,
    timeout: float,
) -> QueryResult:
    """One query with a fresh checkpoint under ``location``; stops after ``wanted`` batches."""
    from pyspark.sql import functions as F

    checkpoint = tempfile.mkdtemp(prefix=f"{workload}-", dir=location.path)
    started = time.monotonic()
    df = backend.read_stream(
        spark,
        topics=[source_topic],
        start_offsets=None,
        default_start=starting,
        max_offsets_per_trigger=max_offsets,
    )
    value = F.col("value").cast("string")
    projected = df.select(
        F.lit(sink_topic).alias("topic"),
        F.col("key"),
        F.to_json(
            F.struct(
                F.get_json_object(value, "$.id").alias("id"),
                F.get_json_object(value, "$.amount").cast("double").alias("amount"),
                F.col("partition"),
                F.col("offset"),
            )
        )
        .cast("binary")
        .alias("value"),
    )
    name = f"ckpt_{workload}_{location.name.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
    query = backend.write_stream(
        projected, checkpoint_dir=checkpoint, trigger=trigger, query_name=name
    )
    try:
        while True:
            if query.exception() is not None:
                raise RuntimeError(f"query {name} failed: {query.exception()}")
            done = len(data_batches(query.recentProgress))
            if done >= wanted:
                break
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"query {name}: {done}/{wanted} batches after {timeout:.0f}s")
            time.sleep(0.5)
    finally:
        query.stop()
    result = QueryResult(workload, location.name)
    result.batches = data_batches(query.recentProgress)[:wanted]
    result.checkpoint_files = count_checkpoint_files(checkpoint)
    result.seconds = time.monotonic() - started
    shutil.rmtree(checkpoint, ignore_errors=True)
    return result


@dataclass
class Settings:
    locations: list[str]
    skip: int = 3
    batches: int = 40
    rate: float = 200.0
    trigger: str = "0 seconds"
    bulk_max_offsets: int = 20_000
    bulk_trigger: str = "0 seconds"
    timeout: float = 600.0

    @property
    def wanted(self) -> int:
        return self.skip + self.batches

    @property
    def bulk_events(self) -> int:
        return (self.wanted + 1) * self.bulk_max_offsets


def run_benchmark(
    spark: Any,
    bootstrap: str,
    settings: Settings,
    locations: Mapping[str, Location],
    log: Callable[[str], None] = print,
) -> list[QueryResult]:
    from streamer.kafka import PythonKafkaBackend

    backend = PythonKafkaBackend(bootstrap, {}, end_offsets="fetch")
    tag = uuid.uuid4().hex[:8]
    topics = {
        "warm": f"ckpt-warm-{tag}",
        "trickle": f"ckpt-trickle-{tag}",
        "bulk": f"ckpt-bulk-{tag}",
        "out": f"ckpt-out-{tag}",
    }
    create_topics(bootstrap, {}, {**{t: PARTITIONS for t in topics.values()}, topics["out"]: 2})
    preload(bootstrap, topics["warm"], 600)
    log(f"checkpoint-cost: preloading {settings.bulk_events} events")
    preload(bootstrap, topics["bulk"], settings.bulk_events)

    # Warm the JVM, the Python workers and the sink's producer once, so the first measured
    # query does not carry the session's start-up (its first 3 batches are dropped anyway).
    warm = next(iter(locations.values()))
    run_query(
        spark,
        backend,
        workload="warm-up",
        location=warm,
        source_topic=topics["warm"],
        sink_topic=topics["out"],
        starting="earliest",
        max_offsets=200,
        trigger="0 seconds",
        wanted=3,
        timeout=settings.timeout,
    )

    order = list(locations.values())
    results: list[QueryResult] = []
    with Trickle(bootstrap, topics["trickle"], settings.rate):
        for location in order:
            result = run_query(
                spark,
                backend,
                workload="trickle",
                location=location,
                source_topic=topics["trickle"],
                sink_topic=topics["out"],
                starting="latest",
                max_offsets=None,
                trigger=settings.trigger,
                wanted=settings.wanted,
                timeout=settings.timeout,
            )
            log(_line(result, settings.skip))
            results.append(result)
    for location in reversed(order):
        result = run_query(
            spark,
            backend,
            workload="bulk",
            location=location,
            source_topic=topics["bulk"],
            sink_topic=topics["out"],
            starting="earliest",
            max_offsets=settings.bulk_max_offsets,
            trigger=settings.bulk_trigger,
            wanted=settings.wanted,
            timeout=settings.timeout,
        )
        log(_line(result, settings.skip))
        results.append(result)
    return results


def _line(result: QueryResult, skip: int) -> str:
    s = summarize(result.batches, skip)
    if not s["batches"]:
        return f"checkpoint-cost: {result.workload}/{result.location}: no batches"
    return (
        f"checkpoint-cost: {result.workload}/{result.location}: batches={s['batches']} "
        f"rows~{s['rows_median']:.0f} walCommit={s['walCommit']['median']:.3f}s "
        f"commitOffsets={s['commitOffsets']['median']:.3f}s "
        f"sum={s['checkpoint']['median']:.3f}s (p90 {s['checkpoint']['p90']:.3f}s) "
        f"trigger={s['triggerExecution']['median']:.3f}s share={s['share']:.0%} "
        f"[{result.seconds:.0f}s]"
    )


# -- report ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    ram = 0
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    ram = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "ram_gb": round(ram / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def build_report(
    results: Sequence[QueryResult],
    settings: Settings,
    locations: Mapping[str, Location],
    context: Mapping[str, Any],
) -> dict[str, Any]:
    workloads: dict[str, dict[str, Any]] = {}
    for result in results:
        summary = summarize(result.batches, settings.skip)
        summary["checkpoint_files"] = result.checkpoint_files
        summary["seconds"] = round(result.seconds, 1)
        workloads.setdefault(result.workload, {})[result.location] = summary
    for per_location in workloads.values():
        floor = per_location.get("tmpfs", {}).get("checkpoint", {}).get("median")
        for summary in per_location.values():
            median = summary.get("checkpoint", {}).get("median")
            if floor and median is not None:
                summary["ratio_vs_tmpfs"] = median / floor
                summary["delta_vs_tmpfs"] = median - floor
    return {
        **context,
        "settings": {
            **asdict(settings),
            "wanted": settings.wanted,
            "bulk_events": settings.bulk_events,
        },
        "locations": {k: asdict(v) for k, v in locations.items()},
        "workloads": workloads,
        "batches": {f"{r.workload}/{r.location}": r.batches for r in results},
    }


def _s(value: float) -> str:
    return f"{value:.3f}"


def conclusion(report: Mapping[str, Any]) -> str:
    """The verdict on "skipping durable checkpoints saves about a second per batch"."""
    parts = []
    worst = 0.0
    for workload, per_location in report["workloads"].items():
        tmp = per_location.get("tmp", {}).get("checkpoint")
        tmpfs = per_location.get("tmpfs", {}).get("checkpoint")
        durable = per_location.get("durable", {}).get("checkpoint")
        sync = per_location.get("durable-sync", {}).get("checkpoint")
        if not (tmp and tmpfs and durable):
            continue
        worst = max(worst, tmp["median"], durable["median"], sync["median"] if sync else 0.0)
        text = (
            f"{workload}: median {_s(tmp['median'])} s on the throwaway temp dir, "
            f"{_s(durable['median'])} s on the durable path (durable − temp "
            f"{durable['median'] - tmp['median']:+.3f} s), {_s(tmpfs['median'])} s on tmpfs "
            f"(temp − tmpfs {tmp['median'] - tmpfs['median']:+.3f} s)"
        )
        if sync:
            text += f", {_s(sync['median'])} s with synchronous writes (chattr +S)"
        parts.append(text)
    if not parts:
        return "Not enough locations measured for a verdict."
    holds = worst >= 0.8
    verdict = ("**The claim holds here**" if holds else "**The claim does not hold here**") + (
        f": walCommit + commitOffsets together take at most {_s(worst)} s per batch (median) "
        "at any location measured"
    )
    if not holds:
        verdict += ", so not writing checkpoints at all could not save about a second"
    return verdict + ". " + "; ".join(parts) + "."


def results_section(report: Mapping[str, Any]) -> str:
    settings = report["settings"]
    m = report["machine"]
    lines = [
        "## Checkpoint write cost per micro-batch, by checkpoint location (issue 8)",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}, commit {report['commit']}, {m['cores']} cores, "
        f"{m['ram_gb']} GB RAM, Python {m['python']}, Spark {report['spark']}, local[2], "
        f"python Kafka backend (end offsets by fetch), {report['broker']}. Load average "
        f"before/after: {report['load_before']} / {report['load_after']}",
        "",
        "Query: streamer's Python Kafka source → `to_json(struct(get_json_object(value, "
        "'$.id'), get_json_object(value, '$.amount'), partition, offset))` → streamer's Python "
        "Kafka sink, 4-partition input topic. Checkpoint file manager: "
        f"{report['file_manager']}. Per query, the first {settings['skip']} batches with data "
        f"are dropped and the next {settings['batches']} kept.",
        "",
        f"- trickle: {settings['rate']:.0f} events/s produced continuously, query from "
        f"latest, trigger `{settings['trigger']}`.",
        f"- bulk: {settings['bulk_events']} events preloaded, read from earliest with "
        f"maxOffsetsPerTrigger {settings['bulk_max_offsets']}, trigger "
        f"`{settings['bulk_trigger']}`.",
        "",
        "| location | path | filesystem |",
        "|---|---|---|",
    ]
    for loc in report["locations"].values():
        fs = loc["filesystem"] + (f", {loc['note']}" if loc["note"] else "")
        lines.append(f"| {loc['name']} | `{loc['path']}` | {fs} (dev {loc['device']}) |")
    lines += [
        "",
        "Seconds per batch, median / p90; checkpoint = walCommit + commitOffsets of the same "
        "batch; share = median of checkpoint / triggerExecution; ratio = checkpoint median / "
        "tmpfs checkpoint median of the same workload.",
        "",
    ]
    for workload, per_location in report["workloads"].items():
        lines += [
            f"**{workload}**",
            "",
            "| location | batches | rows/batch | walCommit | commitOffsets | checkpoint | "
            "addBatch | triggerExecution | share | ratio vs tmpfs | Δ vs tmpfs |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name in report["locations"]:
            s = per_location.get(name)
            if not s or not s["batches"]:
                continue

            def cell(phase: str, s: Mapping[str, Any] = s) -> str:
                return f"{_s(s[phase]['median'])} / {_s(s[phase]['p90'])}"

            ratio = f"{s['ratio_vs_tmpfs']:.2f}×" if "ratio_vs_tmpfs" in s else "–"
            delta = f"{s['delta_vs_tmpfs']:+.3f}" if "delta_vs_tmpfs" in s else "–"
            lines.append(
                f"| {name} | {s['batches']} | {s['rows_median']:.0f} | {cell('walCommit')} | "
                f"{cell('commitOffsets')} | **{cell('checkpoint')}** | {cell('addBatch')} | "
                f"{cell('triggerExecution')} | {s['share']:.0%} | {ratio} | {delta} |"
            )
        lines.append("")
    files = next(
        (s["checkpoint_files"] for w in report["workloads"].values() for s in w.values()), {}
    )
    lines += [
        "Mechanism: each batch writes two small files, `offsets/N` (in walCommit) and "
        "`commits/N` (in commitOffsets), each as a temp file + rename with a `.crc` beside "
        f"it (files left by one query: {json.dumps(files)}). Spark has no setting that "
        "fsyncs them; `tmp` and `durable` differ only by path. walCommit also runs the "
        "source's `commit()` for the previous batch (a round trip to the Python source "
        "process) and the purge check, which tmpfs pays too.",
        "",
        "Conclusion: " + report["conclusion"],
        "",
    ]
    return "\n".join(lines)


# -- entry point ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few batches, small bulk (smoke)")
    parser.add_argument("--locations", default=None, help=f"comma list of {', '.join(LOCATIONS)}")
    parser.add_argument("--skip", type=int, default=3, help="first batches per query dropped")
    parser.add_argument("--batches", type=int, default=None, help="batches kept per query")
    parser.add_argument("--rate", type=float, default=200.0, help="trickle events per second")
    parser.add_argument("--trigger", default="0 seconds", help="trickle processing-time trigger")
    parser.add_argument("--bulk-max-offsets", type=int, default=None)
    parser.add_argument("--work-dir", default=".streamer-bench/checkpoint-cost")
    parser.add_argument("--bootstrap-servers", default=None)
    parser.add_argument(
        "--results", default=str(REPO / "bench" / "RESULTS.md"), help="markdown file to update"
    )
    parser.add_argument("--json", default=None, help="also write the full report here")
    args = parser.parse_args(argv)

    names = (
        args.locations.split(",")
        if args.locations
        else (["tmp", "tmpfs", "durable"] if args.quick else list(LOCATIONS))
    )
    settings = Settings(
        locations=names,
        skip=args.skip,
        batches=args.batches or (3 if args.quick else 40),
        rate=args.rate,
        trigger=args.trigger,
        bulk_max_offsets=args.bulk_max_offsets or (2_000 if args.quick else 20_000),
        timeout=180.0 if args.quick else 600.0,
    )
    command = "python -m bench.checkpoint_cost " + " ".join(sys.argv[1:] if argv is None else argv)

    from streamer.session import build_session

    work = new_work_dir(args.work_dir)
    locations = prepare_locations(names, work)
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with ExitStack() as stack:
        for loc in locations.values():
            if loc.name in ("tmp", "tmpfs"):
                stack.callback(shutil.rmtree, loc.path, True)
        bootstrap = args.bootstrap_servers
        broker = "broker at " + str(bootstrap)
        if bootstrap is None:
            bootstrap = start_broker(stack, "tansu", log_dir=work)
            broker = "embedded tansu broker (memory storage)"
        spark = build_session(
            master="local[2]",
            app_name="checkpoint-cost",
            conf={
                "spark.sql.shuffle.partitions": "2",
                "spark.driver.memory": "2g",
                "spark.sql.streaming.numRecentProgressUpdates": "1000",
            },
        )
        stack.callback(spark.stop)
        file_manager = spark.conf.get("spark.sql.streaming.checkpointFileManagerClass", None)
        results = run_benchmark(spark, bootstrap, settings, locations)
        context = {
            "command": command.strip(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "commit": git_commit(),
            "machine": machine(),
            "spark": spark.version,
            "broker": broker,
            "file_manager": (
                f"`{file_manager}`"
                if file_manager
                else "default (`FileContextBasedCheckpointFileManager` for local paths)"
            ),
            "load_before": load_before,
            "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        }
    report = build_report(results, settings, locations, context)
    report["conclusion"] = conclusion(report)
    (work / "report.json").write_text(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    write_results(results_section(report), MARKER, Path(args.results))
    print("checkpoint-cost: " + report["conclusion"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
