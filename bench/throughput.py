"""Throughput: streamer on both Kafka backends against the recipe users copy, a plain
Python ceiling and the model alone, on one preloaded topic, in one run (issue 8).

    python -m bench.throughput                       # 1,000,000 events, rewrites RESULTS.md
    python -m bench.throughput --events 20000 --quick --work-dir /tmp/w --results /tmp/R.md

One run: start an embedded broker (``--broker``: Apache Kafka, one KRaft node, by default;
or tansu), or use ``--bootstrap-servers``; train and register the 24-feature model
(:mod:`bench.workload`), preload N events into a 4-partition topic, then drain that topic
once per system, one after another, each into its own output topic:

(j) ``streamer_jvm``: the real :class:`streamer.service.Service`, in its own process with
    its own SparkSession from a bench config (``kafka.backend: jvm``: Spark's own Kafka
    source ▸ the scoring pandas UDF ▸ Spark's Kafka sink, through ``foreachBatch``; the
    service puts the connector jars on ``spark.jars`` itself, :func:`streamer.jvm.connector_conf`).
(a) ``streamer``: the same service and config with the python Kafka backend (scoring in
    the source task, ``kafka.score_in_source``).
(a′) ``streamer_udf``: (a) with ``kafka.score_in_source`` off (source ▸ UDF ▸ sink).
(b) ``recipe``: :mod:`bench.recipe`, Structured Streaming + ``mlflow.pyfunc.spark_udf``.
(c) ``ceiling``: :mod:`bench.ceiling`, confluent-kafka → pyarrow.json → predict → produce
    in ``--processes`` plain Python processes.
(d) ``model``: ``model.predict`` on in-memory pandas frames of 10,000 rows.

Not in the default ``--systems``: ``streamer_uv`` (a″), the service exactly as (a) but with
``model.env_manager: uv`` (the model served from its restored environment through a local
scoring server, :mod:`streamer.scoring.envs`), its own dead-letter topic, and its
predictions compared with (a)'s key by key. ``--systems streamer,streamer_uv`` gives the
end-to-end figure beside the predict-level ones of :mod:`bench.envs`; that run also writes
the "End to end" paragraph of the envs section of ``--envs-results``.

On tansu (``--broker tansu``, or ``--bootstrap-servers`` pointing at one) (j) does not run:
Spark's Kafka source ends its batches at ListOffsets, which tansu 0.6 under-reports, so the
tail of the preloaded topic would never be read. The python systems and the ceiling then
take partition ends from fetch responses; on Apache Kafka everything uses ListOffsets
(``kafka.end_offsets: list``).

Steady state of the Spark systems (j, a, a′, b), from the query's progress events: drop the first
two batches with data (start-up, code generation, Python workers and model loads), then
rate = input rows of the remaining batches / wall time from the end of the second batch to
the end of the last one (a batch ends at its progress ``timestamp`` +
``durationMs.triggerExecution``). Gaps between triggers count, so this is what a consumer
of the output topic sees. (c) is total rows / (last acknowledged produce − first consumed
batch). (d) is rows / seconds over the frames after a warm-up call. Beside each rate, the
CPU µs per row over the same window (every process of the system's phase session, sampled
from /proc by :func:`bench.phases.run_phase`), which a machine shared with other work
disturbs far less than wall-clock rates.

Threads: every system runs with ``OMP_NUM_THREADS=1`` (``--omp-threads``; Spark's Python
workers inherit it). The model's HistGradientBoosting predicts with OpenMP, one thread per
core by default, in every process; with two processes predicting at once on two cores (two
Spark tasks, or two ceiling processes) the threads oversubscribe the cores, and predict got
several times slower. (c′) repeats (c) with the default, so each run shows the effect.

Every system runs as a child process group with a timeout and is killed on overrun; the
output topics are read back and must hold every event once, and each service system's own
dead-letter topic must be empty. The run prints a table with each rate's ratio to the
ceiling (c), and rewrites the ``throughput`` section of ``--results`` (default
``bench/RESULTS.md``) and the bar chart beside it (``throughput.png``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script, python bench/throughput.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import phases
from bench.common import (
    PHASES,
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

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SYSTEMS = ("streamer_jvm", "streamer", "streamer_udf", "recipe", "ceiling", "model")
OPTIONAL = ("streamer_uv",)
"""Systems run only when ``--systems`` names them."""
SERVICE_SYSTEMS = ("streamer_jvm", "streamer", "streamer_uv", "streamer_udf")
"""The service's own runs: each writes dead letters to its own topic."""
SPARK_SYSTEMS = (*SERVICE_SYSTEMS, "recipe")
NEEDS_KAFKA = ("streamer_jvm",)
"""Not run on tansu: Spark's Kafka source takes its ends from ListOffsets (see above)."""
EXTRA = "ceiling_default"
"""(c) again with each library's default thread count, run when ``--omp-threads`` is set."""
LABELS = {
    "streamer_jvm": "(j) streamer, kafka.backend jvm (Spark's Kafka source ▸ UDF ▸ Kafka sink)",
    "streamer": "(a) streamer, kafka.backend python (scoring in the source task)",
    "streamer_uv": "(a″) streamer, model.env_manager uv",
    "streamer_udf": "(a′) streamer, kafka.score_in_source off (source ▸ UDF ▸ sink)",
    "recipe": "(b) recipe: spark_udf + json_normalize",
    "ceiling": "(c) ceiling: plain Python loop",
    "model": "(d) model.predict alone",
    EXTRA: "(c′) ceiling, library-default OpenMP threads",
}
SHORT = {
    "streamer_jvm": "j",
    "streamer": "a",
    "streamer_uv": "a″",
    "streamer_udf": "a′",
    "recipe": "b",
    "ceiling": "c",
    "model": "d",
    EXTRA: "c′",
}
KEY_RATIOS = ("j/c", "a/c", "j/a", "j/b", "a/b")
PARTITIONS = 4
PROFILE_STEPS = ("read", "score", "produce")
MARKER = "throughput"


# --- the phases, each run in its own process ---------------------------------------------


def _environment(model_path: str) -> dict[str, Any]:
    """Where the uv environment of the model lives, and whether it is complete."""
    from streamer.scoring import envs

    where = envs.env_dir(model_path)
    marker = where / envs.READY_MARKER
    return {
        "dir": str(where),
        "ready": marker.exists(),
        "marker": json.loads(marker.read_text()) if marker.exists() else None,
    }


def _phase_streamer(spec: dict, name: str = "streamer") -> dict:
    """The service (python backend); ``streamer_jvm`` runs it with ``kafka.backend: jvm``,
    ``streamer_udf`` with ``kafka.score_in_source`` off, ``streamer_uv`` with
    ``model.env_manager: uv``. Each has its own dead-letter topic."""
    import yaml

    from streamer.config import load_config
    from streamer.jvm import JvmPaths
    from streamer.logs import configure_logging
    from streamer.service import Service

    configure_logging("INFO", "text")
    work = Path(spec["work"]) / name
    work.mkdir(parents=True, exist_ok=True)
    uv = name == "streamer_uv"
    before = _environment(spec["model_path"]) if uv else None
    path = write_config(
        work,
        spec["bootstrap"],
        {
            "in": spec["input"],
            "out": spec["outputs"][name],
            "dlq": spec["dead_letter_topics"][name],
        },
        (spec["model_uri"], spec["tracking_uri"]),
        spec["max_offsets_per_trigger"],
        kafka={
            "backend": "jvm" if name == "streamer_jvm" else "python",
            "end_offsets": spec["end_offsets"],  # the python source's; Spark's always lists
            "score_in_source": name in ("streamer", "streamer_uv"),
        },
    )
    if uv:
        # write_config merges extra sections into its own, but its positional parameter
        # ``model`` (the URIs) takes the name, so ``model={...}`` cannot reach it: merge
        # env_manager into the model section it wrote (uri and tracking_uri stay).
        document = yaml.safe_load(path.read_text())
        document["model"]["env_manager"] = "uv"
        path.write_text(yaml.safe_dump(document))
    config = load_config(path, env={})
    if uv:
        got = (config.model.uri, config.model.tracking_uri, config.model.env_manager)
        if got != (spec["model_uri"], spec["tracking_uri"], "uv"):
            raise RuntimeError(f"the uv config lost the model section's keys: {config.model}")
    started = time.monotonic()
    # The service builds its own session; with the jvm backend it adds the connector jars
    # (resolved once into the cache, $STREAMER_CACHE_DIR honoured) through connector_conf.
    service = Service(config, jvm=JvmPaths.from_env(os.environ))
    service.start()
    backend = service.backend.name if service.backend is not None else None
    jars = session_jars(service.spark)
    query_started = time.monotonic()
    try:
        progress = wait_for_rows(service.query, spec["events"], spec["timeout"])
    finally:
        result = service.stop()
    environment = {}
    if before is not None:
        after = _environment(spec["model_path"])
        environment = {
            "environment": {
                "dir": after["dir"],
                "cached": before["ready"],
                # Written by the prepare of this start when the environment was not cached.
                "prepare_s": None if before["ready"] else (after["marker"] or {}).get("seconds"),
            }
        }
    return {
        "progress": progress,
        "startup_seconds": query_started - started,
        **environment,
        "seconds": time.monotonic() - started,
        "outcome": result.outcome,
        **({"error": f"the service run {result.outcome}: {result.error}"} if result.error else {}),
        **(
            {"error": f"the service ran the {backend} backend, not jvm"}
            if name == "streamer_jvm" and backend != "jvm" and not result.error
            else {}
        ),
        "backend": backend,
        "jars": jars,
        "config": path.read_text(),
    }


def session_jars(spark: Any) -> list[str]:
    """The file names on a session's ``spark.jars`` (the Kafka connector's, on the jvm
    backend)."""
    jars = spark.sparkContext.getConf().get("spark.jars") or ""
    return [Path(j).name for j in jars.split(",") if j]


def _phase_recipe(spec: dict) -> dict:
    from bench.recipe import run_recipe

    return run_recipe(
        bootstrap=spec["bootstrap"],
        input_topic=spec["input"],
        output_topic=spec["outputs"]["recipe"],
        model_uri=spec["model_uri"],
        tracking_uri=spec["tracking_uri"],
        work_dir=Path(spec["work"]),
        events=spec["recipe_events"],
        max_offsets_per_trigger=spec["max_offsets_per_trigger"],
        timeout=spec["timeout"],
    )


def _phase_ceiling(spec: dict, output: str = "ceiling") -> dict:
    from bench.ceiling import run_ceiling

    return run_ceiling(
        bootstrap=spec["bootstrap"],
        input_topic=spec["input"],
        output_topic=spec["outputs"][output],
        model_path=spec["model_path"],
        model_version=spec["model_version"],
        processes=spec["processes"],
        timeout=spec["timeout"],
    )


def _phase_model(spec: dict) -> dict:
    import mlflow.pyfunc

    from bench.workload import features

    model = mlflow.pyfunc.load_model(spec["model_path"])
    frames = [features(10_000, seed=7_000_000 + i) for i in range(spec["model_frames"])]
    for frame in frames[:2]:
        model.predict(frame)  # warm-up
    started, cpu = time.perf_counter(), time.process_time()
    for frame in frames:
        model.predict(frame)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    rows = sum(len(f) for f in frames)
    return {
        "rows": rows,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "rows_per_s": rows / seconds,
        "frame_rows": 10_000,
    }


def _phase_profile(spec: dict) -> dict:
    """streamer's own Python code for one partition range, without Spark, timed step by
    step as the source task runs it (``kafka.score_in_source``): the source's
    ``read_chunks``, the scorer (parse, predict, output records), the producer. Same model,
    same events, one process."""
    import mlflow.pyfunc

    from streamer.kafka.pyworker import Delivery, KafkaInputPartition, read_chunks, worker_consumer
    from streamer.scoring import cache
    from streamer.scoring.model import resolve_model
    from streamer.scoring.predictions import predict_isolating
    from streamer.scoring.scorer import Scorer, ScoringSettings

    work = Path(spec["work"]) / "profile"
    work.mkdir(parents=True, exist_ok=True)
    model_spec = resolve_model(
        spec["model_uri"], tracking_uri=spec["tracking_uri"], work_dir=str(work)
    )
    model = mlflow.pyfunc.load_model(model_spec.local_path)
    cache._models[model_spec.ship_name] = model  # what SparkFiles + get_model would load
    dead_letters = spec["dead_letter_topics"]["streamer"]
    scorer = Scorer(model_spec, ScoringSettings(spec["scratch"], dead_letters, 1_048_576))
    consumer = worker_consumer(spec["bootstrap"], {})
    rows = min(spec["profile_rows"], spec["events"] // PARTITIONS)
    spent = dict.fromkeys(("read", "parse", "predict", "score", "produce"), 0.0)

    def timed(step: str, call: Any) -> Any:
        started = time.perf_counter()
        value = call()
        spent[step] += time.perf_counter() - started
        return value

    for rep in range(2):  # the first pass warms up (clients, model), the second is kept
        for step in spent:
            spent[step] = 0.0
        part = KafkaInputPartition(spec["input"], rep % PARTITIONS, 0, rows)
        chunks = timed("read", lambda p=part: list(read_chunks(consumer, p, 120.0)))
        delivery = Delivery(spec["bootstrap"], {}, 120.0)
        for chunk in chunks:
            parsed = timed("parse", lambda v=chunk.values: scorer.parser.parse(v))
            timed("predict", lambda p=parsed: predict_isolating(model, p.frame))
            columns = timed("score", lambda c=chunk: scorer.score(c))
            timed(
                "produce",
                lambda c=columns, d=delivery: d.produce(c["topic"], c["key"], c["value"]),
            )
        timed("produce", delivery.finish)
    consumer.close()
    per_row = {k: v * 1e6 / rows for k, v in spent.items()}
    return {"rows": rows, "us_per_row": per_row}


_PHASE_FUNCTIONS = {
    "streamer_jvm": lambda spec: _phase_streamer(spec, "streamer_jvm"),
    "streamer": _phase_streamer,
    "streamer_udf": lambda spec: _phase_streamer(spec, "streamer_udf"),
    "streamer_uv": lambda spec: _phase_streamer(spec, "streamer_uv"),
    "recipe": _phase_recipe,
    "ceiling": _phase_ceiling,
    EXTRA: lambda spec: _phase_ceiling(spec, EXTRA),
    "model": _phase_model,
    "profile": _phase_profile,
}


def run_phase(name: str, spec: dict, timeout: float, log=print) -> dict:
    """``name`` in a child process group (:func:`bench.phases.run_phase`), with the spec's
    OpenMP thread count."""
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if spec.get("omp_threads"):
        env["OMP_NUM_THREADS"] = str(spec["omp_threads"])
    result = phases.run_phase("bench.throughput", name, spec, timeout, env)
    log(f"throughput: {name} done in {result['wall']:.0f}s")
    return result


# --- reading the outputs back -----------------------------------------------------------


def read_keys(
    bootstrap: str,
    topic: str,
    timeout: float = 300.0,
    predictions: dict[bytes, Any] | None = None,
) -> tuple[int, int]:
    """(records, distinct keys) in ``topic``, read to the end of every partition; with
    ``predictions``, each record's ``prediction`` field lands there by key as well."""
    from streamer.kafka.io import read_to_end

    records = 0
    keys: set[bytes] = set()
    for m in read_to_end(bootstrap, {}, [topic], timeout=timeout):
        records += 1
        keys.add(m.key())
        if predictions is not None:
            predictions[m.key()] = json.loads(m.value())["prediction"]
    return records, len(keys)


def max_abs_diff(a: dict[bytes, Any], b: dict[bytes, Any]) -> tuple[float, int]:
    """(largest absolute difference between the numbers of two keys' predictions, keys
    missing from either side or whose predictions differ in shape or in a non-number)."""

    def leaves(value: Any, path: tuple = ()) -> dict[tuple, Any]:
        if isinstance(value, dict):
            items = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            return {path: value}
        out: dict[tuple, Any] = {}
        for k, v in items:
            out.update(leaves(v, (*path, k)))
        return out

    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    worst, mismatched = 0.0, len(a.keys() ^ b.keys())
    for key in a.keys() & b.keys():
        x, y = leaves(a[key]), leaves(b[key])
        if x.keys() != y.keys():
            mismatched += 1
            continue
        diffs = [abs(x[k] - y[k]) if number(x[k]) and number(y[k]) else None for k in x]
        if any(d is None and x[k] != y[k] for d, k in zip(diffs, x)):
            mismatched += 1
        worst = max([worst, *(d for d in diffs if d is not None)])
    return worst, mismatched


# --- the report -------------------------------------------------------------------------


def _rate(system: str, result: dict) -> float | None:
    if "error" in result:
        return None
    if system in SPARK_SYSTEMS:
        return result["steady"]["rows_per_s"]
    return result["rows_per_s"]


def cpu_per_row(system: str, result: dict) -> float | None:
    """CPU µs per row of a system over its own measuring window: every process of its phase
    (Spark's JVM and Python workers, the ceiling's processes), the broker not included."""
    if "error" in result:
        return None
    if system == "model":
        return result["cpu_seconds"] * 1e6 / result["rows"]
    if system in SPARK_SYSTEMS:
        window, rows = result["steady"].get("window"), result["steady"].get("steady_rows")
    else:
        window, rows = result.get("window"), result.get("rows")
    if not window or not rows:
        return None
    cpu = phases.cpu_between(result.get("cpu_samples") or [], *window)
    return None if cpu is None else cpu * 1e6 / rows


def _cpu(system: str, results: dict[str, dict]) -> float | None:
    return results.get(system, {}).get("cpu_us_per_row")


def _fmt_us(us: float | None) -> str:
    return "—" if us is None else f"{us:,.1f}"


def _fmt(rate: float | None) -> str:
    return "failed or not run" if rate is None else f"{rate:,.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "n/a"


def _shown(results: dict[str, dict]) -> list[str]:
    """The default systems, (a″) after (a) and (c′) after (c) when they ran."""
    order = [
        "streamer_jvm",
        "streamer",
        "streamer_uv",
        "streamer_udf",
        "recipe",
        "ceiling",
        EXTRA,
        "model",
    ]
    return [s for s in order if s in SYSTEMS or s in results]


def rates_of(results: dict[str, dict]) -> dict[str, float | None]:
    """Each system's rate (None when it failed or did not run), by system."""
    return {s: _rate(s, results.get(s, {"error": "not run"})) for s in _shown(results)}


RATIOS = (
    ("j/c", "streamer_jvm", "ceiling", "jvm backend against the ceiling"),
    ("a/c", "streamer", "ceiling", "python backend against the ceiling"),
    ("j/a", "streamer_jvm", "streamer", "jvm backend against python"),
    ("j/b", "streamer_jvm", "recipe", "jvm backend against the recipe"),
    ("a/b", "streamer", "recipe", "python backend against the recipe"),
    ("a/d", "streamer", "model", "python backend against predict alone"),
    ("a/a′", "streamer", "streamer_udf", "scoring in the source against the three-stage plan"),
    ("a″/a", "streamer_uv", "streamer", "model.env_manager uv against local"),
)


def ratios(results: dict[str, dict]) -> list[tuple[str, str, str, str]]:
    """(name, by wall-clock rate, by CPU per row, what it compares) for the ratios of one
    run: j and a to the ceiling, j to a, each to the recipe, then a to the model, to a′, and
    a″ to a when it ran. By CPU, x/y is y's CPU per row over x's: above 1, x needs less."""
    r = rates_of(results)
    return [
        (name, _ratio(r[x], r[y]), _ratio(_cpu(y, results), _cpu(x, results)), what)
        for name, x, y, what in RATIOS
        if x in r and y in r
    ]


def table(results: dict[str, dict], counts: dict[str, str]) -> list[str]:
    c = _rate("ceiling", results.get("ceiling", {"error": "not run"}))
    lines = [
        "| system | rows measured | rows/s | system / c | CPU µs per row | system / c by CPU "
        "| output check |",
        "|---|---|---|---|---|---|---|",
    ]
    for system in _shown(results):
        result = results.get(system, {"error": "not run"})
        rate = _rate(system, result)
        if "error" in result:
            measured = "—"
        elif system in SPARK_SYSTEMS:
            s = result["steady"]
            measured = f"{s['steady_rows']:,} (batches 3–{s['batches']})"
        else:
            measured = f"{result['rows']:,}"
        lines.append(
            f"| {LABELS[system]} | {measured} | **{_fmt(rate)}** | {_ratio(rate, c)} | "
            f"{_fmt_us(_cpu(system, results))} | "
            f"{_ratio(_cpu('ceiling', results), _cpu(system, results))} | "
            f"{counts.get(system, '—')} |"
        )
    return lines


def _add_batch_us(result: dict) -> float:
    """A Spark system's steady addBatch, wall µs per row."""
    steady = result["steady"]
    return steady["mean_ms"]["addBatch"] * 1000.0 / steady["mean_batch_rows"]


def _cores_busy(result: dict) -> float:
    """How many cores a Spark system's processes kept busy on average over its window."""
    return result["cpu_us_per_row"] * result["steady"]["rows_per_s"] / 1e6


def _batch_split(system: str, steady: dict, end_probe: str) -> tuple[str, float]:
    """The opening of "Where the time goes" for one Spark system: how a steady batch's wall
    time splits; and its core-µs per row."""
    m = steady["mean_ms"]
    cores = os.cpu_count() or 1
    total = m["triggerExecution"] + max(0.0, steady["gap_ms"])
    bookkeeping = total - m["addBatch"]
    per_row_us = total * 1000.0 / steady["mean_batch_rows"]
    text = (
        f"**Where the time goes ({SHORT[system]}).** A steady batch of "
        f"{steady['mean_batch_rows']:,.0f} rows takes {total / 1000:.2f} s wall: addBatch "
        f"{m['addBatch'] / 1000:.2f} s ({m['addBatch'] / total:.0%}); the rest, "
        f"{bookkeeping / 1000:.2f} s ({bookkeeping / total:.0%}), is the checkpoint writes "
        f"(walCommit + commitOffsets {(m['walCommit'] + m['commitOffsets']) / 1000:.2f} s), "
        f"latestOffset ({end_probe}) {m['latestOffset'] / 1000:.2f} s, planning "
        f"{m['queryPlanning'] / 1000:.2f} s and {max(0.0, steady['gap_ms']) / 1000:.2f} s "
        f"between triggers. With {cores} cores the budget is {per_row_us * cores:.1f} "
        "core-µs per row."
    )
    return text, per_row_us * cores


def where_the_time_goes(results: dict[str, dict], end_offsets: str = "list") -> list[str]:
    """Per-batch phases of the Spark systems, streamer's Python steps without Spark, and a
    reading of both. ``end_offsets`` is how the python source found partition ends."""
    lines: list[str] = []
    spark = {s: results[s] for s in SPARK_SYSTEMS if "error" not in results.get(s, {"error": 1})}
    spark = {s: r for s, r in spark.items() if r["steady"].get("mean_ms")}
    if spark:
        lines += [
            "Mean durationMs per steady batch (from the progress events):",
            "",
            "| system | rows/batch | latestOffset | queryPlanning | addBatch | walCommit "
            "| commitOffsets | triggerExecution | gap to next trigger |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for system, result in spark.items():
            s = result["steady"]
            m = s["mean_ms"]
            lines.append(
                f"| {SHORT[system]} | {s['mean_batch_rows']:,.0f} | "
                + " | ".join(f"{m[k]:,.0f}" for k in (*PHASES, "triggerExecution"))
                + f" | {s['gap_ms']:,.0f} |"
            )
        lines.append("")
    profile = results.get("profile", {"error": 1})
    if "error" not in profile:
        us = profile["us_per_row"]
        python = sum(us[k] for k in PROFILE_STEPS)
        lines += [
            f"streamer's own Python steps for {profile['rows']:,} events of one partition, "
            "run in one process without Spark as one source task runs them (`--phase "
            "profile`: `read_chunks`, `Scorer.score`, `Delivery.produce` + `finish`), µs per "
            "row:",
            "",
            "| read | score | parse (timed alone) | predict (timed alone) | produce | total |",
            "|---|---|---|---|---|---|",
            "| "
            + " | ".join(f"{us[k]:.1f}" for k in ("read", "score", "parse", "predict", "produce"))
            + f" | {python:.1f} |",
            "",
        ]
    probe = {
        "list": "the end probe, ListOffsets",
        "fetch": "the fetch-based end probe",
    }[end_offsets]
    jvm = spark.get("streamer_jvm")
    if jvm:
        text, budget = _batch_split("streamer_jvm", jvm["steady"], "ListOffsets by Spark's admin")
        text += (
            " addBatch is the whole plan of a batch, one task per partition through "
            "`foreachBatch`: Spark's Kafka consumer in the JVM, the rows to a Python worker "
            "as Arrow for the scoring pandas UDF (parse, predict, output records) and back, "
            "then Spark's Kafka producer."
        )
        cpu = {s: r["cpu_us_per_row"] for s, r in spark.items() if r.get("cpu_us_per_row")}
        others = {s: _add_batch_us(spark[s]) for s in ("streamer", "streamer_udf") if s in spark}
        if others:
            text += (
                f" Its addBatch costs {_add_batch_us(jvm):.1f} µs per row (wall, two tasks at "
                "a time), against "
                + " and ".join(f"{v:.1f} µs for ({SHORT[s]})" for s, v in others.items())
                + "."
            )
        if "streamer_jvm" in cpu:
            j = cpu["streamer_jvm"]
            text += (
                f" Its processes used {j:.1f} CPU µs per row, "
                f"{_cores_busy(jvm):.1f} of the {os.cpu_count()} cores on average over the "
                "window"
            )
            if "error" not in profile:
                score = profile["us_per_row"]["score"]
                text += (
                    f"; the scoring UDF's own Python work, `Scorer.score`, takes {score:.1f} µs "
                    f"per row alone in one process (the profile above), about {score / j:.0%} "
                    f"of that CPU, so the other {j - score:.1f} µs per row go to the plan "
                    "around it: Spark's Kafka consumer and producer, the records to the Python "
                    "worker as Arrow and the scored rows back, pandas conversions on both "
                    "sides of the UDF, and task scheduling"
                )
            text += "."
            if "streamer_udf" in cpu:
                text += (
                    f" The same UDF plan on streamer's Python source and sink (a′) used "
                    f"{cpu['streamer_udf']:.1f} µs per row, so Spark's connector costs "
                    f"{cpu['streamer_udf'] - j:.1f} µs per row less than the Python one there"
                )
                text += (
                    f"; scoring inside the source (a) used {cpu['streamer']:.1f} µs per row, "
                    f"{j - cpu['streamer']:.1f} µs less than (j): the Arrow hop of whole "
                    "records to a UDF and back is what the python backend's in-source scoring "
                    "avoids."
                    if "streamer" in cpu
                    else "."
                )
        lines += [text, ""]
    streamer = spark.get("streamer")
    if streamer:
        text, budget = _batch_split("streamer", streamer["steady"], probe)
        text += (
            " addBatch is the source tasks that read, score and produce (the python backend "
            "with `kafka.score_in_source`); the rest is per-batch bookkeeping."
        )
        if streamer.get("cpu_us_per_row"):
            text += (
                f" Its processes used {streamer['cpu_us_per_row']:.1f} CPU µs per row, "
                f"{_cores_busy(streamer):.1f} of the {os.cpu_count()} cores on average over "
                "the window."
            )
        if "error" not in profile:
            us = profile["us_per_row"]
            python = sum(us[k] for k in PROFILE_STEPS)
            text += (
                f" streamer's Python steps alone take {python:.1f} µs per row, wall time in "
                f"one process with nothing else of this run beside it ({python / budget:.0%} "
                f"of that budget): scoring {us['score']:.1f} µs (strict JSON parsing "
                f"{us['parse']:.1f} and predict {us['predict']:.1f}, each timed in its own "
                f"call on the same chunks, so the parts need not add up), producing "
                f"{us['produce']:.1f} µs, reading "
                f"{us['read']:.1f} µs. The remaining {budget - python:.1f} core-µs "
                "per row go to two processes sharing two cores with the JVM and the broker "
                "(each step runs slower than alone), Arrow batches of the observed columns to "
                "the JVM, task scheduling, and cores left idle."
            )
        ceiling = results.get("ceiling", {"error": 1})
        if "error" not in ceiling and ceiling.get("seconds_by_step") and ceiling.get("rows"):
            per = {k: v * 1e6 / ceiling["rows"] for k, v in ceiling["seconds_by_step"].items()}
            text += (
                " For comparison the plain loop (c) spends per row "
                + ", ".join(f"{k} {v:.1f} µs" for k, v in per.items())
                + f" (wall time summed over its {ceiling['processes']} processes)."
            )
        lines += [text, ""]
    return lines


def render(
    results: dict[str, dict],
    counts: dict[str, str],
    *,
    command: str,
    settings: dict[str, Any],
    chart: str | None,
    notes: Sequence[str],
) -> str:
    host = machine()
    lines = [
        "## Throughput: streamer on both Kafka backends, the spark_udf recipe, a plain "
        "Python ceiling, the model alone (issue 8)",
        "",
        f"Command: `{command}`  ",
        f"Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, commit {git_commit()}  ",
        f"Machine: {host['cores']} cores ({host['cpu']}), {host['ram']} RAM, "
        f"Python {platform.python_version()}, pyspark {settings['pyspark']}, "
        f"{settings['broker']}; load average (1 min) {settings['load'][0]:.1f} at the start, "
        f"{settings['load'][1]:.1f} at the end  ",
        f"Workload: {settings['events']:,} events preloaded into a {PARTITIONS}-partition "
        f"topic ({settings['event_bytes']:.0f} bytes of JSON each, 24 features: 11 floats, "
        f"6 ints, 4 categorical strings, 3 booleans, plus event_id; produced in "
        f"{settings['preload_seconds']:.1f} s). Model: sklearn pipeline (OrdinalEncoder → "
        f"HistGradientBoostingClassifier, 100 iterations, trained on 20k rows, test AUC "
        f"{settings['auc']:.3f}), MLflow pyfunc returning class probabilities. Spark systems: "
        f"local[2], maxOffsetsPerTrigger {settings['max_offsets_per_trigger']:,}; ceiling: "
        f"{settings['processes']} processes. Threads: {settings['threads']}.",
        "",
        *table(results, counts),
        "",
        "Ratios from this run, by wall-clock rate: "
        + ", ".join(
            f"**{name} = {value}**" if name in KEY_RATIOS else f"{name} = {value}"
            for name, value, _, _ in ratios(results)
        )
        + ". By CPU per row (the inverse ratio of CPU µs per row: above 1, the first "
        "needs less CPU per row): "
        + ", ".join(f"{name} = {value}" for name, _, value, _ in ratios(results))
        + ". ("
        + "; ".join(f"{name}: {what}" for name, _, _, what in ratios(results))
        + ".)",
        "",
    ]
    if chart:
        lines += [f"![throughput]({chart})", ""]
    lines += [
        "How each rate is measured: the Spark systems (j, a, a′, b) steady state from the "
        "query's progress events:"
        " the first two batches with data are dropped (start-up, Python workers, model loads),"
        " then rows of the remaining batches / wall time from the end of batch 2 to the end "
        "of the last batch (a batch ends at its progress timestamp + triggerExecution; gaps "
        "between triggers count). (c) all rows / (last acknowledged produce − first consumed "
        "batch), start-up excluded by a barrier. (d) rows / seconds of `model.predict` on "
        "10,000-row pandas frames after a warm-up call, one process. Output check: records "
        "and distinct keys read back from each system's output topic (records = distinct "
        "keys = events), and each service run's own dead-letter topic (empty).",
        "",
        "CPU µs per row: the CPU time (user + system) of every process of the system's "
        "phase session (Spark's JVM, its Python workers and data source runners; the "
        "ceiling's processes), sampled every "
        f"{phases.SAMPLE_EVERY} s from /proc and interpolated to the same window as its rate (the "
        "steady batches; the ceiling's first batch to last acknowledgement), per row; the "
        "broker's CPU is not included; (d) is the process's own CPU time. On a machine "
        "shared with other work, a wall-clock rate depends on what else ran at that moment; "
        "CPU per row mostly does not, so the ratios by CPU are the ones to compare across "
        "systems that ran minutes apart.",
        "",
        *where_the_time_goes(results, settings.get("end_offsets", "list")),
        *[f"- {n}" for n in notes],
        "",
    ]
    return "\n".join(lines)


def _environment_note(result: dict) -> str:
    env = result["environment"]
    if env["cached"]:
        return "the uv environment was cached: `envs.prepare` found it complete"
    made = f" in {env['prepare_s']:.1f} s" if env.get("prepare_s") is not None else ""
    return f"the uv environment was not cached: this start created it{made}"


def end_to_end(
    results: dict[str, dict], counts: dict[str, str], *, command: str, settings: dict[str, Any]
) -> str:
    """The "End to end" paragraph of the envs section: (a) against (a″) from this run."""
    a = _rate("streamer", results.get("streamer", {"error": "not run"}))
    lines = [
        "### End to end: the service with `model.env_manager` uv against local",
        "",
        f"Command: `{command}` (a separate run from the figures above)  ",
        f"Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, commit {git_commit()}  ",
        f"Both systems are the service of the throughput bench's (a) (python backend, "
        f"local[2], `kafka.score_in_source` on, maxOffsetsPerTrigger "
        f"{settings['max_offsets_per_trigger']:,}, OMP_NUM_THREADS=1), draining the same "
        f"preloaded {PARTITIONS}-partition topic of {settings['events']:,} events with the "
        "same model, one after the other in one run; only `model.env_manager` differs. Rate "
        "as in the throughput section: steady state from the progress events, the first two "
        "batches dropped.",
        "",
        "| system | rows/s | / local | start-up to query start | first two batches (dropped) "
        "| output check |",
        "|---|---|---|---|---|---|",
    ]
    for system in ("streamer", "streamer_uv"):
        result = results[system]
        rate = _rate(system, result)
        if "error" in result:
            lines.append(f"| {LABELS[system]} | failed: {result['error']} | — | — | — | — |")
            continue
        start = f"{result['startup_seconds']:.1f} s"
        if "environment" in result:
            start += f" ({_environment_note(result)})"
        first = ", ".join(f"{ms / 1000:.1f} s" for ms in result["steady"]["first_batches_ms"])
        ratio = "1.00" if system == "streamer" else f"**{_ratio(rate, a)}**"
        lines.append(
            f"| {LABELS[system]} | **{_fmt(rate)}** | {ratio} | {start} | {first} | "
            f"{counts.get(system, '—')} |"
        )
    lines += [
        "",
        "Start-up is `Service(config)` and `start()` until the query runs (SparkSession, "
        "model download, the driver's probe of the input example; with uv also the "
        "environment check and the probe's own scoring server). Output check: each system's "
        "output topic read back to the end of every partition must hold every event once "
        "(records = distinct keys = events), each system's own dead-letter topic must be "
        "empty, and (a″)'s prediction for every key must equal (a)'s.",
        "",
    ]
    return "\n".join(lines)


def draw_chart(path: Path, results: dict[str, dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = _shown(results)
    names = [LABELS[s] for s in shown]
    rates = [_rate(s, results.get(s, {"error": "x"})) or 0.0 for s in shown]
    failed = [" failed" if s in results else " not run" for s in shown]
    palette = {
        "streamer_jvm": "#9467bd",
        "streamer": "#1f77b4",
        "streamer_uv": "#17becf",
        "streamer_udf": "#aec7e8",
        "recipe": "#ff7f0e",
        "ceiling": "#2ca02c",
        EXTRA: "#98df8a",
        "model": "#7f7f7f",
    }
    colors = [palette[s] for s in shown]
    per_cpu = [1e6 / us if us else 0.0 for us in (_cpu(s, results) for s in shown)]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), dpi=110, sharey=True)
    panels = (
        (rates, "k/s", "rows per second (wall clock), thousands"),
        (per_cpu, "k", "rows per CPU-second (the system's processes), thousands"),
    )
    for ax, (values, unit, label) in zip(axes, panels):
        bars = ax.barh(names[::-1], [v / 1000 for v in values[::-1]], color=colors[::-1])
        for bar, value, missing in zip(bars, values[::-1], failed[::-1]):
            ax.text(
                bar.get_width(),
                bar.get_y() + bar.get_height() / 2,
                f" {value / 1000:,.1f}{unit}" if value else missing,
                va="center",
                fontsize=9,
            )
        ax.set_xlabel(label, fontsize=9)
        ax.set_xlim(0, max(values or [1]) / 1000 * 1.25 or 1)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --- the run ----------------------------------------------------------------------------


def run(args: argparse.Namespace, command: str, log=print) -> dict[str, Any]:
    from bench.workload import preload, train_and_register
    from streamer.kafka.admin import cluster_id, create_topics, is_tansu

    events = args.events
    max_offsets = args.max_offsets_per_trigger or (2_000 if args.quick else 100_000)
    recipe_events = min(args.recipe_events or events, events)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    work = new_work_dir(args.work_dir)
    results: dict[str, dict] = {}
    counts: dict[str, str] = {}
    notes: list[str] = []
    checked = True
    compare = "streamer_uv" in systems
    load_start = os.getloadavg()[0]
    predictions: dict[str, dict[bytes, Any]] = {}
    with ExitStack() as stack:
        bootstrap, broker = broker_for(args, stack)
        tansu = is_tansu(cluster_id(bootstrap, {}))
        if tansu:
            broker += " (tansu: partition ends from fetch responses)"
        log(f"throughput: work dir {work}, broker {bootstrap}")
        name = uuid.uuid4().hex[:8]
        with_topics = [s for s in (*SYSTEMS, EXTRA) if s != "model"]
        with_topics += [s for s in OPTIONAL if s in systems]
        topics = {
            "input": f"tp-in-{name}",
            "scratch": f"tp-scratch-{name}",
            "outputs": {s: f"tp-out-{s}-{name}".replace("_", "-") for s in with_topics},
            "dead_letter_topics": {
                s: f"tp-dlq-{s}-{name}".replace("_", "-")
                for s in SERVICE_SYSTEMS
                if s in with_topics
            },
        }
        create_topics(
            bootstrap,
            {},
            {
                topics["input"]: PARTITIONS,
                topics["scratch"]: 1,
                **dict.fromkeys(topics["dead_letter_topics"].values(), 1),
                **dict.fromkeys(topics["outputs"].values(), PARTITIONS),
            },
        )
        model = train_and_register(work)
        log(f"throughput: model {model.uri} version {model.version} auc {model.auc:.3f}")
        seconds = preload(bootstrap, topics["input"], events, PARTITIONS, seed=args.seed)
        log(f"throughput: preloaded {events:,} events in {seconds:.1f}s")
        from bench.workload import event_values, features

        sample = event_values(features(1000, args.seed))
        spec = {
            "work": str(work),
            "bootstrap": bootstrap,
            **topics,
            "events": events,
            "recipe_events": recipe_events,
            "max_offsets_per_trigger": max_offsets,
            "model_uri": model.uri,
            "tracking_uri": model.tracking_uri,
            "model_path": model.local_path,
            "model_version": model.version,
            "processes": args.processes,
            "omp_threads": args.omp_threads or None,
            # The python source's (and the ceiling's, the recipe's): fetch only on tansu.
            "end_offsets": "fetch" if tansu else "list",
            "model_frames": 10 if args.quick else 30,
            "profile_rows": 5_000 if args.quick else 50_000,
        }
        timeout = args.phase_timeout or (600 + events / 1000)
        runs = [*systems, EXTRA] if args.omp_threads and "ceiling" in systems else systems
        for system in runs:
            if tansu and system in NEEDS_KAFKA:
                results[system] = {
                    "error": "not run on tansu: Spark's Kafka source ends its batches at "
                    "ListOffsets, which tansu 0.6 under-reports (the topic's tail is never read)"
                }
                log(f"throughput: {system} skipped: {results[system]['error']}")
                continue
            log(f"throughput: running {system} (timeout {timeout:.0f}s)")
            phase = {**spec, "timeout": timeout - 120}
            if system == EXTRA:
                phase["omp_threads"] = None
            result = run_phase(system, phase, timeout, log)
            if "progress" in result:
                result["steady"] = steady_state(result["progress"])
            result["cpu_us_per_row"] = cpu_per_row(system, result)
            results[system] = result
            if "error" in result:
                log(f"throughput: {system} FAILED: {result['error']}")
            else:
                log(f"throughput: {system} {_fmt(_rate(system, result))} rows/s")
        if args.profile:
            log("throughput: profiling streamer's Python steps without Spark")
            result = run_phase("profile", {**spec, "timeout": 480}, 600, log)
            results["profile"] = result
            if "error" in result:
                log(f"throughput: profile FAILED: {result['error']}")
        for system, topic in topics["outputs"].items():
            if system not in results or "error" in results[system]:
                continue
            expected = events
            if system == "recipe":
                expected = results[system]["steady"]["rows_total"]
            # (a″)'s predictions are compared with (a)'s, key by key.
            keep = {} if system in ("streamer", "streamer_uv") and compare else None
            records, distinct = read_keys(bootstrap, topic, predictions=keep)
            if keep is not None:
                predictions[system] = keep
            results[system]["output"] = {
                "records": records,
                "distinct_keys": distinct,
                "expected": expected,
            }
            ok = records == distinct == expected
            if system == "recipe" and recipe_events < events:
                # Stopped mid-stream: a batch cut short by the stop may have written some.
                ok = records >= distinct >= expected
            checked = checked and ok
            counts[system] = f"{records:,} records, {distinct:,} keys" + ("" if ok else " ✗")
        for system, dlq in topics["dead_letter_topics"].items():
            if system in results and "error" not in results[system]:
                dead, _ = read_keys(bootstrap, dlq)
                results[system]["dead_letters"] = dead
                checked = checked and dead == 0
                counts[system] += f", {dead} dead letters"
        if len(predictions) == 2:
            worst, mismatched = max_abs_diff(predictions["streamer"], predictions["streamer_uv"])
            results["streamer_uv"]["vs_streamer"] = {
                "keys": len(predictions["streamer_uv"]),
                "max_abs_diff": worst,
                "mismatched": mismatched,
            }
            checked = checked and mismatched == 0 and worst <= 1e-9
            counts["streamer_uv"] += (
                f", predictions = (a)'s (max \\|Δ\\| {worst:.1e})"
                if mismatched == 0 and worst <= 1e-9
                else f", predictions ≠ (a)'s ({mismatched:,} keys, max \\|Δ\\| {worst:.1e}) ✗"
            )
        predictions.clear()
    if recipe_events < events:
        notes.append(
            f"(b) was capped at {recipe_events:,} events (`--recipe-events`): it stops after "
            "the first batch that reaches the cap; its rate is the steady state of those batches."
        )
    notes.append(
        "(b) reads and writes Kafka through streamer's Python data source "
        "(`PythonKafkaBackend.read_stream` / `write_stream`), as (a) and (a′) do, so a/b "
        "compares the scoring paths on the same source and sink, not the connectors."
    )
    jvm = results.get("streamer_jvm", {})
    if "error" not in jvm and jvm.get("jars"):
        notes.append(
            "(j) is the one system on Spark's own Kafka source and sink; the service put the "
            f"connector on `spark.jars` from the Maven-resolved cache: {', '.join(jvm['jars'])}. "
            "Its sink writes each batch through `foreachBatch` (the fenced jvm sink)."
        )
    notes.append(
        "(b)'s spark_udf uses the default env manager (`local`); in local mode MLflow loads "
        "the model in every task of every batch, which is part of the recipe's cost."
    )
    for system in systems:
        result = results.get(system, {})
        if "steady" in result and result["steady"].get("first_batches_ms"):
            first = ", ".join(f"{ms / 1000:.1f} s" for ms in result["steady"]["first_batches_ms"])
            notes.append(
                f"({SHORT[system]}) start-up to query start {result['startup_seconds']:.0f} s"
                + (f" ({_environment_note(result)})" if "environment" in result else "")
                + f"; first two batches (dropped): {first}."
            )
    results_path = Path(args.results).resolve()
    chart = Path(args.chart).resolve() if args.chart else results_path.with_name("throughput.png")
    settings = {
        "events": events,
        "event_bytes": sum(map(len, sample)) / len(sample),
        "preload_seconds": seconds,
        "auc": model.auc,
        "max_offsets_per_trigger": max_offsets,
        "processes": spec["processes"] or os.cpu_count(),
        "broker": broker,
        "threads": (
            f"OMP_NUM_THREADS={args.omp_threads} in every system's processes (Spark's Python "
            "workers inherit it); (c′) repeats (c) with the libraries' default, one OpenMP "
            "thread per core in each process"
            if args.omp_threads
            else "the libraries' defaults (OMP_NUM_THREADS unset: one OpenMP thread per core "
            "in every process)"
        ),
        "pyspark": pyspark_version(),
        "end_offsets": spec["end_offsets"],
        "load": (load_start, os.getloadavg()[0]),
    }
    wall = {name: value for name, value, _, _ in ratios(results)}
    cpu = {name: value for name, _, value, _ in ratios(results)}
    draw_chart(
        chart,
        results,
        f"{events:,} events, {PARTITIONS} partitions, {os.cpu_count()} cores, "
        f"{'tansu' if spec['end_offsets'] == 'fetch' else 'Apache Kafka'}, load average "
        f"{settings['load'][0]:.0f}–{settings['load'][1]:.0f}\nby wall clock: "
        + ", ".join(f"{k} = {wall[k]}" for k in KEY_RATIOS)
        + "; by CPU: "
        + ", ".join(f"{k} = {cpu[k]}" for k in KEY_RATIOS),
    )
    rel = os.path.relpath(chart, results_path.parent)
    section = render(results, counts, command=command, settings=settings, chart=rel, notes=notes)
    write_results(section, MARKER, results_path)
    (work / "summary.json").write_text(json.dumps(results, indent=2, default=str))
    print("\n".join(table(results, counts)))
    print("ratios: " + " ".join(f"{name}={value}" for name, value, _, _ in ratios(results)))
    print("by CPU: " + " ".join(f"{name}={value}" for name, _, value, _ in ratios(results)))
    if "streamer" in results and "streamer_uv" in results and args.envs_results:
        from bench.envs import write_end_to_end

        envs_path = Path(args.envs_results).resolve()
        block = end_to_end(results, counts, command=command, settings=settings)
        write_end_to_end(block, envs_path)
        print(block)
        log(f"throughput: wrote the end-to-end paragraph of the envs section of {envs_path}")
    return {"results": results, "checked": checked, "work": str(work), "chart": str(chart)}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=None, help="default 1,000,000 (quick 20,000)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny run: 20,000 events unless --events, batches of 2,000, fewer model frames",
    )
    parser.add_argument("--max-offsets-per-trigger", type=int, default=None)
    parser.add_argument(
        "--recipe-events", type=int, default=None, help="cap (b) at this many events"
    )
    parser.add_argument("--processes", type=int, default=os.cpu_count(), help="for (c)")
    parser.add_argument(
        "--systems",
        default=None,
        help=f"comma-separated, of {', '.join((*SYSTEMS, *OPTIONAL))} (default: all but "
        f"{', '.join(OPTIONAL)}; on --broker tansu also all but {', '.join(NEEDS_KAFKA)})",
    )
    parser.add_argument(
        "--envs-results",
        default=str(BENCH / "RESULTS.md"),
        help="when streamer and streamer_uv both ran: the file whose envs section gets the "
        "'End to end' paragraph ('' for none)",
    )
    parser.add_argument(
        "--omp-threads",
        type=int,
        default=1,
        help="OMP_NUM_THREADS for every system (0: the libraries' default, one thread per "
        "core in every process); with a value, (c) also runs once with the default",
    )
    parser.add_argument("--work-dir", default=".streamer-bench/throughput")
    add_broker_arguments(parser)
    parser.add_argument("--results", default=str(BENCH / "RESULTS.md"))
    parser.add_argument("--chart", default=None, help="default: throughput.png beside --results")
    parser.add_argument("--phase-timeout", type=float, default=None, help="seconds per system")
    parser.add_argument(
        "--no-profile",
        dest="profile",
        action="store_false",
        help="skip timing streamer's Python steps without Spark (for 'where the time goes')",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phase", choices=sorted(_PHASE_FUNCTIONS), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    check_broker_arguments(parser, args)
    if args.systems is None:
        skipped = NEEDS_KAFKA if args.broker == "tansu" and not args.bootstrap_servers else ()
        args.systems = ",".join(s for s in SYSTEMS if s not in skipped)
    elif args.broker == "tansu" and not args.bootstrap_servers:
        wanted = [s for s in NEEDS_KAFKA if s in args.systems.split(",")]
        if wanted:
            parser.error(
                f"{', '.join(wanted)} cannot run on tansu (its ListOffsets under-reports "
                "partition ends, where Spark's Kafka source stops): use --broker kafka"
            )
    unknown = {s.strip() for s in args.systems.split(",") if s.strip()}
    unknown -= {*SYSTEMS, *OPTIONAL, EXTRA}
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    if args.events is None:
        args.events = 20_000 if args.quick else 1_000_000
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.phase:
        return phases.phase_main(_PHASE_FUNCTIONS, args.phase, args.spec)
    command = phases.command_line("bench.throughput", bool(__package__), argv)
    report = run(args, command)
    results = report["results"]
    ok = all(
        "error" not in results.get(s, {"error": "x"}) and _rate(s, results[s])
        for s in args.systems.split(",")
    )
    return 0 if ok and report["checked"] else 1


if __name__ == "__main__":
    sys.exit(main())
