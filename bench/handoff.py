"""Blue-green handoffs against cold restarts of the same service, while events flow.

    python -m bench.handoff --handoffs 5 --cold 3

runs one service process after another against an embedded broker (or
``--bootstrap-servers``) with the demo's fraud model, and rewrites the handoff section of
``bench/RESULTS.md``. The integration tests (``tests/integration/test_handoff.py``) run the
small forms through :func:`run_switches`.

Switch kinds:

* ``handoff``: start the other color with ``--takeover`` while the owner keeps serving; the
  owner drains at a batch boundary, releases the lease, exits 0; the successor starts.
* ``kill``: SIGKILL the owner's process group, start the other color with ``--takeover``; it
  takes the lease once it has been stale for ``handoff.lease_timeout_seconds``.
* ``cold``: SIGTERM the owner, wait for it to exit, start the same color again (what a
  redeploy without a standby costs).

The gap of a switch is measured on the output topic: the successor's first output record
minus the old owner's last one, by Kafka record timestamps. For ``handoff`` and ``cold`` the
two sides are told apart by the offsets the old owner released (from its log); for ``kill``
by the kill time. Lost and duplicated events are counted by source partition and offset over
the whole run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script, python bench/handoff.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.chaos import read_sources
from bench.common import (
    consumed,
    demo_model,
    new_work_dir,
    start_broker,
    start_service,
    write_config,
    write_results,
)
from streamer.config import load_config
from streamer.kafka.admin import create_topics
from streamer.kafka.io import produce_all
from streamer.offsets.stores import OffsetStore, store_for

PARTITIONS = 4
KINDS = ("handoff", "kill", "cold")
_RELEASED = re.compile(r'lease released .* offsets="(\{.*\})"')
_STARTED = re.compile(r'query started name="([^"]+)"')
_GAP = re.compile(r'handoff complete .*gap_seconds="([0-9.]+)"')


@dataclass
class Switch:
    kind: str
    before: str
    after: str
    gap_seconds: float | None = None
    """From the old owner's last output record to the new owner's first (record timestamps)."""
    reported_gap_seconds: float | None = None
    """What the new owner exported as ``streamer_handoff_gap_seconds``."""
    old_exit_code: int | None = None
    boundary: dict[int, int] = field(default_factory=dict)
    at_ms: int = 0


@dataclass
class SwitchReport:
    backend: str = "python"
    events: int = 0
    lost: int = 0
    duplicates: int = 0
    switches: list[Switch] = field(default_factory=list)
    final_exit_code: int | None = None
    seconds: float = 0.0

    def gaps(self, kind: str) -> list[float]:
        return [
            s.gap_seconds for s in self.switches if s.kind == kind and s.gap_seconds is not None
        ]


class _Producer(threading.Thread):
    """Produces synthetic events at ``rate`` until stopped; ``count`` is how many."""

    def __init__(self, bootstrap: str, topic: str, rate: float, events: Iterator[bytes]) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.rate, self.events = bootstrap, topic, rate, events
        self.stop = threading.Event()
        self.count = 0
        self.error: Exception | None = None

    def run(self) -> None:
        def records() -> Iterator[tuple[bytes, bytes]]:
            for value in self.events:
                if self.stop.is_set():
                    return
                yield str(self.count).encode(), value
                self.count += 1

        try:
            produce_all(
                self.bootstrap,
                {},
                self.topic,
                records(),
                defaults={"linger.ms": 10},
                rate=self.rate,
            )
        except Exception as exc:
            self.error = exc


def _wait(what: str, check: Callable[[], bool], timeout: float, process=None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.1)


def _log_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _messages(path: Path) -> list[str]:
    out = []
    for line in _log_text(path).splitlines():
        try:
            out.append(str(json.loads(line).get("msg", "")))
        except ValueError:
            continue
    return out


def _released(path: Path, topic: str) -> dict[int, int]:
    for message in reversed(_messages(path)):
        match = _RELEASED.search(message)
        if match:
            offsets = json.loads(match[1]).get(topic, {})
            return {int(p): int(o) for p, o in offsets.items()}
    raise RuntimeError(f"no 'lease released' line in {path}")


def _reported_gap(path: Path) -> float | None:
    for message in _messages(path):
        match = _GAP.search(message)
        if match:
            return float(match[1])
    return None


def _serving(path: Path, store: OffsetStore) -> Callable[[], bool]:
    """The process logging to ``path`` has started its query and persisted a batch."""

    def check() -> bool:
        names = [_STARTED.search(m) for m in _messages(path)]
        started = next((n for n in names if n), None)
        if started is None:
            return False
        try:
            stored = store.load()
        except Exception:
            return False
        return stored is not None and stored.writer == started[1]

    return check


def run_switches(
    *,
    bootstrap: str,
    model: tuple[str, str],
    work: Path,
    switches: Sequence[str],
    rate: float = 100.0,
    max_offsets_per_trigger: int = 500,
    lease_timeout: float = 8.0,
    heartbeat: float = 0.5,
    settle: float = 3.0,
    backend: str = "python",
    offsets: dict[str, object] | None = None,
    log: Callable[[str], None] = print,
) -> SwitchReport:
    """Run the service through ``switches`` (each one of :data:`KINDS`) while events flow.
    ``offsets``: the config's offsets section (default: a file store in ``work``); the lease
    lives beside the offsets, so an S3 store puts the lease on S3 too."""
    from streamer.tools.synthetic import events as synthetic_events

    unknown = [s for s in switches if s not in KINDS]
    if unknown:
        raise ValueError(f"unknown switch kinds {unknown}; expected {KINDS}")
    started = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex[:8]
    topics = {
        "in": f"handoff-in-{name}",
        "out": f"handoff-out-{name}",
        "dlq": f"handoff-dlq-{name}",
    }
    create_topics(bootstrap, {}, {topics["in"]: PARTITIONS, topics["out"]: 2, topics["dlq"]: 1})
    config = write_config(
        work,
        bootstrap,
        topics,
        model,
        max_offsets_per_trigger,
        handoff={
            "lease_timeout_seconds": lease_timeout,
            "heartbeat_seconds": heartbeat,
            "drain_timeout_seconds": 180,
            "warmup_rows": 64,
        },
        kafka={"backend": backend},
        **({"offsets": offsets} if offsets else {}),
    )
    store = store_for(load_config(config, env={}))
    values = (e.value for e in synthetic_events(10_000_000, seed=3, id_prefix="handoff"))
    producer = _Producer(bootstrap, topics["in"], rate, values)
    producer.start()
    report = SwitchReport(backend=backend)
    color = "blue"
    logs = [work / "run-0-blue.log"]
    process = start_service(config, logs[0], "--color", color)
    processes = [process]
    try:
        _wait("first run serving", _serving(logs[0], store), 300, process)
        for i, kind in enumerate(switches, start=1):
            time.sleep(settle)
            successor = color if kind == "cold" else ("green" if color == "blue" else "blue")
            switch = Switch(kind, color, successor, at_ms=int(time.time() * 1000))
            new_log = work / f"run-{i}-{successor}.log"
            if kind == "handoff":
                new = start_service(config, new_log, "--color", successor, "--takeover")
                _wait(
                    f"switch {i}: {color} hands over",
                    lambda old=process: old.poll() is not None,
                    600,
                    new,
                )
                switch.old_exit_code = process.returncode
                switch.boundary = _released(logs[-1], topics["in"])
            elif kind == "kill":
                os.killpg(process.pid, signal.SIGKILL)
                switch.old_exit_code = process.wait()
                switch.at_ms = int(time.time() * 1000)
                new = start_service(config, new_log, "--color", successor, "--takeover")
            else:
                process.send_signal(signal.SIGTERM)
                switch.old_exit_code = process.wait(timeout=300)
                switch.boundary = _released(logs[-1], topics["in"])
                new = start_service(config, new_log, "--color", successor)
            processes.append(new)
            process, color = new, successor
            logs.append(new_log)
            _wait(f"switch {i} ({kind}) serving", _serving(new_log, store), 600, process)
            _wait(
                f"switch {i} ({kind}) reported",
                lambda log_path=new_log: _reported_gap(log_path) is not None,
                120,
                process,
            )
            switch.reported_gap_seconds = _reported_gap(new_log)
            report.switches.append(switch)
            log(
                f"handoff bench: switch {i}/{len(switches)} {kind} {switch.before}->"
                f"{switch.after} old_exit={switch.old_exit_code} "
                f"reported_gap={switch.reported_gap_seconds}s"
            )
        producer.stop.set()
        producer.join(timeout=180)
        if producer.error is not None:
            raise producer.error
        report.events = producer.count
        _wait(
            "final drain",
            lambda: consumed(store, topics["in"]) >= producer.count,
            300,
            process,
        )
        process.send_signal(signal.SIGTERM)
        report.final_exit_code = process.wait(timeout=180)
    finally:
        producer.stop.set()
        for leftover in processes:
            if leftover.poll() is None:
                os.killpg(leftover.pid, signal.SIGKILL)
    sources = read_sources(bootstrap, [topics["out"], topics["dlq"]])
    seen = Counter((p, o) for p, o, _ in sources)
    report.lost = report.events - len(seen)
    report.duplicates = sum(n - 1 for n in seen.values())
    for switch in report.switches:
        switch.gap_seconds = _gap(switch, sources)
    report.seconds = time.monotonic() - started
    return report


def _gap(switch: Switch, sources: Sequence[tuple[int, int, int]]) -> float | None:
    if switch.kind == "kill":
        before = [ts for _, _, ts in sources if ts <= switch.at_ms]
        after = [ts for _, _, ts in sources if ts > switch.at_ms]
    else:
        boundary = switch.boundary
        before = [ts for p, o, ts in sources if o < boundary.get(p, 0)]
        after = [ts for p, o, ts in sources if o >= boundary.get(p, 0) and ts >= switch.at_ms]
    if not before or not after:
        return None
    return (min(after) - max(before)) / 1000.0


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _results_section(report: SwitchReport, command: str) -> str:
    import platform

    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        "## Blue-green handoff against cold restart (issue 6)",
        "",
        f"Command: `{command}`  ",
        f"Date: {time.strftime('%Y-%m-%d')}, commit {commit}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {report.backend} backend, embedded Apache Kafka, "
        "local[2] per process",
        "",
        "| switch | count | gap median | gap max | gap min | reported gap median |",
        "|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        gaps = report.gaps(kind)
        reported = [
            s.reported_gap_seconds
            for s in report.switches
            if s.kind == kind and s.reported_gap_seconds is not None
        ]
        if not gaps:
            continue
        lines.append(
            f"| {kind} | {len(gaps)} | {statistics.median(gaps):.2f} s | {max(gaps):.2f} s | "
            f"{min(gaps):.2f} s | "
            + (f"{statistics.median(reported):.2f} s |" if reported else "- |")
        )
    handoff, cold = report.gaps("handoff"), report.gaps("cold")
    if handoff and cold:
        ratio = statistics.median(cold) / statistics.median(handoff)
        lines += ["", f"Cold restart / handoff, median gap: **{ratio:.1f}×**."]
    lines += [
        "",
        f"Events {report.events}, lost {report.lost}, duplicates {report.duplicates}, "
        f"final exit {report.final_exit_code}, wall time {report.seconds:.0f} s. Old owners' "
        "exit codes: " + ", ".join(f"{s.kind} {s.old_exit_code}" for s in report.switches) + ".",
        "",
        "Gap = the successor's first output record minus the old owner's last, by Kafka "
        "record timestamps on the output and dead-letter topics. Reported gap = the "
        "successor's `streamer_handoff_gap_seconds` (listener times of the two batches).",
        "",
        "Per switch (s): "
        + "; ".join(
            f"{s.kind} {s.before}→{s.after} {_seconds(s.gap_seconds)}" for s in report.switches
        ),
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--handoffs", type=int, default=5)
    parser.add_argument("--cold", type=int, default=3)
    parser.add_argument("--kills", type=int, default=0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--max-offsets-per-trigger", type=int, default=500)
    parser.add_argument("--work-dir", default=".streamer-bench/handoff")
    parser.add_argument("--bootstrap-servers", default=None)
    parser.add_argument("--backend", choices=("jvm", "python"), default="jvm")
    args = parser.parse_args(argv)

    from contextlib import ExitStack

    work = new_work_dir(args.work_dir)
    switches = ["handoff"] * args.handoffs + ["kill"] * args.kills + ["cold"] * args.cold
    with ExitStack() as stack:
        bootstrap = args.bootstrap_servers or start_broker(stack)
        model = demo_model(work.parent)
        report = run_switches(
            backend=args.backend,
            bootstrap=bootstrap,
            model=model,
            work=work,
            switches=switches,
            rate=args.rate,
            max_offsets_per_trigger=args.max_offsets_per_trigger,
        )
    command = "python -m bench.handoff " + " ".join(sys.argv[1:] if argv is None else argv)
    section = _results_section(report, command.strip())
    print(section)
    write_results(section, marker=f"handoff-{args.backend}")
    ok = report.lost == 0 and report.final_exit_code == 0
    if "kill" not in switches:
        ok = ok and report.duplicates == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
