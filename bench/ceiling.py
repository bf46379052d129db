"""The ceiling: the same work as the service with no framework at all.

    python -m bench.ceiling --bootstrap-servers HOST:PORT --input-topic events \
        --output-topic out --model-path DIR [--processes 2]

N processes (default ``os.cpu_count()``, at most one per partition) split the input
topic's partitions by manual assignment. Each one loops: a batch of messages from
confluent-kafka → ``pyarrow.json.read_json`` on the newline-joined values → ``model.predict``
(the MLflow pyfunc) → one JSON result per event produced to the output topic, keyed by the
event id. A process stops when its partitions reach the end offsets read before the start
(with the fetch-based probe on tansu, whose ListOffsets under-reports the end).

``run_ceiling(..., until=callable)`` runs until stopped instead, for input that is still being
produced (``bench/latency.py``): the processes follow the topic from its current start, and
stop at the end offsets ``until()`` returns; it is called in a thread once the processes are
started and may block for as long as the input keeps coming. ``wait`` bounds how long one
``consume`` call waits to fill a batch (librdkafka returns early only when the batch is full),
so a latency run passes a few milliseconds rather than the default half second.

Rate = total rows / (the last process's last acknowledged produce − the first process's
first consumed batch), wall clock. Processes load the model and connect before a barrier,
so start-up is outside the window.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import multiprocessing as mp
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bench.workload import BOOLS, FEATURES, FLOATS, INTS, STRINGS
from streamer.kafka.pyworker import PRODUCER_DEFAULTS as PRODUCER  # what the sink uses


def end_offsets(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    """(start, end) per partition; the end read with fetch on tansu, ListOffsets elsewhere."""
    from streamer.kafka.probe import topic_ends

    starts, ends = topic_ends(bootstrap, {}, [topic])
    return {p: (starts[(t, p)], end) for (t, p), end in ends.items()}


def _arrow_schema() -> Any:
    import pyarrow as pa

    types = (
        [("event_id", pa.string())]
        + [(n, pa.float64()) for n in FLOATS]
        + [(n, pa.int64()) for n in INTS]
        + [(n, pa.string()) for n in STRINGS]
        + [(n, pa.bool_()) for n in BOOLS]
    )
    return pa.schema(types)


def _worker(results: Any, index: int, *args: Any) -> None:
    """:func:`_work` in a child process; its report, or the error, goes to ``results``."""
    try:
        results.put(_work(index, *args))
    except BaseException as exc:
        results.put({"index": index, "error": f"{type(exc).__name__}: {exc}"})


def _work(
    index: int,
    bootstrap: str,
    input_topic: str,
    output_topic: str,
    model_path: str,
    model_version: str,
    assignment: list[tuple[int, int, int]],
    batch_size: int,
    barrier: Any,
    timeout: float,
    stop: Any = None,
    wait: float = 0.5,
) -> dict[str, Any]:
    """One process's loop; with a ``stop`` queue, it follows its partitions until the queue
    delivers their end offsets."""
    import mlflow.pyfunc
    import numpy as np
    import pyarrow.json as pj
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

    from streamer.kafka.io import send

    model = mlflow.pyfunc.load_model(model_path)
    parse = pj.ParseOptions(explicit_schema=_arrow_schema(), unexpected_field_behavior="ignore")
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-ceiling",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
            "queued.min.messages": 100_000,
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER})
    failures: list[str] = []

    def on_delivery(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    ends: dict[int, float] = {p: end for p, _, end in assignment}
    position = {p: start for p, start, _ in assignment}
    pending = {p for p, start, end in assignment if end > start}
    if stop is not None:
        ends = dict.fromkeys(ends, math.inf)
        pending = set(ends)
    consumer.assign([TopicPartition(input_topic, p, start) for p, start, _ in assignment])
    # Connect both clients before the barrier, so that is not timed either.
    consumer.list_topics(input_topic, timeout=10)
    producer.list_topics(output_topic, timeout=10)
    barrier.wait(timeout=120)

    rows = 0
    first: float | None = None
    spent = {"consume": 0.0, "parse": 0.0, "predict": 0.0, "produce": 0.0}
    deadline = time.monotonic() + timeout
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"ceiling worker {index}: partitions {sorted(pending)} not drained")
        if stop is not None and math.inf in ends.values():
            with contextlib.suppress(queue.Empty):
                given = stop.get_nowait()
                ends = {p: given[p] for p in ends}
                pending = {p for p in pending if position[p] < ends[p]}
        called = time.time()
        t0 = time.perf_counter()
        messages = consumer.consume(batch_size, timeout=wait)
        if messages and first is None:
            first = called  # the window opens when the call that got the first batch began
        values: list[bytes] = []
        sources: list[tuple[int, int]] = []
        for m in messages:
            error = m.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"ceiling worker {index}: {error}")
            p, offset = m.partition(), m.offset()
            if offset >= ends[p]:
                pending.discard(p)
                continue
            values.append(m.value())
            sources.append((p, offset))
            position[p] = offset + 1
            if position[p] >= ends[p]:
                pending.discard(p)
        t1 = time.perf_counter()
        spent["consume"] += t1 - t0
        if not values:
            continue
        table = pj.read_json(io.BytesIO(b"\n".join(values)), parse_options=parse)
        frame = table.select(list(FEATURES)).to_pandas()
        ids = table.column("event_id").to_pylist()
        t2 = time.perf_counter()
        scores = np.asarray(model.predict(frame))
        if scores.ndim == 2:
            scores = scores[:, -1]
        t3 = time.perf_counter()
        for event_id, score, (p, offset) in zip(ids, scores.tolist(), sources):
            value = json.dumps(
                {
                    "event_id": event_id,
                    "score": score,
                    "model_version": model_version,
                    "source": {"partition": p, "offset": offset},
                },
                separators=(",", ":"),
            ).encode()
            send(producer, output_topic, value, event_id.encode(), on_delivery=on_delivery)
        producer.poll(0)
        rows += len(values)
        t4 = time.perf_counter()
        spent["parse"] += t2 - t1
        spent["predict"] += t3 - t2
        spent["produce"] += t4 - t3
    t5 = time.perf_counter()
    remaining = producer.flush(max(1.0, deadline - time.monotonic()))
    last = time.time()
    spent["produce"] += time.perf_counter() - t5
    consumer.close()
    if remaining or failures:
        raise RuntimeError(
            f"ceiling worker {index}: {remaining} results unacknowledged, {len(failures)} failed"
        )
    return {"index": index, "rows": rows, "first": first, "last": last, "spent": spent}


def run_ceiling(
    *,
    bootstrap: str,
    input_topic: str,
    output_topic: str,
    model_path: str,
    model_version: str = "",
    processes: int | None = None,
    batch_size: int = 10_000,
    timeout: float = 600.0,
    until: Callable[[], Mapping[int, int]] | None = None,
    wait: float = 0.5,
) -> dict[str, Any]:
    """Drain ``input_topic`` with ``processes`` plain Python loops; the measured rate.

    With ``until``, follow the topic from its current start up to the end offsets (by
    partition) that ``until()`` returns; see the module docstring. ``timeout`` bounds each
    process's run after start-up, following included."""
    ranges = end_offsets(bootstrap, input_topic)
    partitions = sorted(ranges)
    n = max(1, min(processes or os.cpu_count() or 1, len(partitions)))
    assignments = [
        [(p, *ranges[p]) for p in partitions[i::n]] for i in range(n)
    ]  # round-robin: partition i goes to process i % n
    context = mp.get_context("spawn")
    barrier = context.Barrier(n)
    results = context.Queue()
    stops = [context.Queue() if until else None for _ in range(n)]
    workers = [
        context.Process(
            target=_worker,
            args=(
                results,
                i,
                bootstrap,
                input_topic,
                output_topic,
                model_path,
                model_version,
                assignments[i],
                batch_size,
                barrier,
                timeout,
                stops[i],
                wait,
            ),
            daemon=True,
        )
        for i in range(n)
    ]
    for w in workers:
        w.start()
    failed: list[BaseException] = []
    if until is not None:

        def finish() -> None:
            try:
                given = until()
                ends = {p: given[p] for p in ranges}
            except BaseException as exc:
                failed.append(exc)
                ends = {p: start for p, (start, _) in ranges.items()}  # stops them all
            for p, (start, _) in ranges.items():
                ranges[p] = (start, ends[p])
            for stop in stops:
                stop.put(ends)

        threading.Thread(target=finish, name="ceiling-until", daemon=True).start()
    reports: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout + 180  # start-up (imports, model load) on top
    try:
        while len(reports) < n:
            try:
                report = results.get(timeout=1.0)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"ceiling: {n - len(reports)} workers not done") from None
                dead = [w for w in workers if w.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(
                        f"ceiling: a worker died with exit code {dead[0].exitcode}"
                    ) from None
                continue
            if "error" in report:
                raise RuntimeError(f"ceiling worker {report['index']}: {report['error']}")
            reports.append(report)
    finally:
        for w in workers:
            w.join(timeout=10)
            if w.is_alive():
                w.kill()
                w.join(timeout=10)
    if failed:
        raise RuntimeError(f"ceiling: until() failed: {failed[0]}") from failed[0]
    rows = sum(r["rows"] for r in reports)
    starts = [r["first"] for r in reports if r["first"] is not None]
    seconds = max(r["last"] for r in reports) - min(starts) if starts else 0.0
    spent = {k: sum(r["spent"][k] for r in reports) for k in reports[0]["spent"]}
    return {
        "rows": rows,
        "expected": sum(end - start for start, end in ranges.values()),
        "seconds": seconds,
        "window": [min(starts), max(r["last"] for r in reports)] if starts else None,
        "rows_per_s": rows / seconds if seconds > 0 else 0.0,
        "processes": n,
        "batch_size": batch_size,
        "seconds_by_step": spent,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--input-topic", required=True)
    parser.add_argument("--output-topic", required=True)
    parser.add_argument("--model-path", required=True, help="a local MLflow model directory")
    parser.add_argument("--processes", type=int, default=os.cpu_count())
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    report = run_ceiling(
        bootstrap=args.bootstrap_servers,
        input_topic=args.input_topic,
        output_topic=args.output_topic,
        model_path=args.model_path,
        processes=args.processes,
        batch_size=args.batch_size,
        timeout=args.timeout,
    )
    print(json.dumps(report, indent=2))
    return 0 if report["rows"] == report["expected"] else 1


if __name__ == "__main__":
    sys.exit(main())
