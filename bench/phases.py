"""Each benchmarked system in its own process group: ``python -m <module> --phase NAME``.

A phase reads its spec (JSON) and writes its result (JSON) next to it; :func:`run_phase`
kills the whole group (Spark's JVM and Python workers included) on overrun and when the
phase ends, so one system's leftovers never share the machine with the next one.

While the phase runs, :func:`run_phase` samples the CPU time its whole session has used
(``cpu_samples``: wall clock, CPU seconds), so a bench can report CPU per row over its own
measuring window (:func:`cpu_between`). On a machine shared with other work the wall-clock
rate of each system depends on what else ran at that moment; CPU time mostly does not.
"""

from __future__ import annotations

import bisect
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_EVERY = 0.5


def session_cpu(sid: int, last: dict[int, float]) -> float:
    """CPU seconds (user + system) used so far by the processes of session ``sid``: each
    one's latest reading is kept in ``last`` (updated here), so processes that ended since
    still count, up to their last sample. The session, not the process group: PySpark's
    worker daemon moves itself and the Python workers it forks into a group of their own
    (``os.setpgid(0, 0)``), but they stay in the phase's session."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                # after "pid (comm)": state ppid pgrp session ... utime stime (3-6 ... 14, 15)
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            last[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICKS
    return sum(last.values())


def cpu_between(samples: Sequence[Sequence[float]], start: float, end: float) -> float | None:
    """CPU seconds a phase's group used between wall-clock ``start`` and ``end``, linearly
    interpolated between its ``cpu_samples``; None when the window is not inside them."""
    if not samples or start < samples[0][0] or end > samples[-1][0] or end <= start:
        return None
    times = [t for t, _ in samples]

    def at(moment: float) -> float:
        i = min(max(bisect.bisect_right(times, moment), 1), len(samples) - 1)
        (t0, c0), (t1, c1) = samples[i - 1], samples[i]
        return c0 + (c1 - c0) * ((moment - t0) / (t1 - t0) if t1 > t0 else 0.0)

    return at(end) - at(start)


def command_line(module: str, as_module: bool, argv: Sequence[str] | None) -> str:
    """The bench's command as it was invoked, for RESULTS: ``python -m bench.x ...`` or
    ``python bench/x.py ...`` with the given (or the process's) arguments."""
    invoked = f"python -m {module}" if as_module else f"python {module.replace('.', '/')}.py"
    words = sys.argv[1:] if argv is None else list(argv)
    return " ".join([invoked, *words]).strip()


def run_phase(
    module: str, name: str, spec: dict, timeout: float, env: Mapping[str, str] | None = None
) -> dict:
    """Phase ``name`` of ``module`` in a child process group, killed after ``timeout``; its
    result with ``wall`` (seconds) and ``cpu_samples`` (every :data:`SAMPLE_EVERY` s: wall
    clock, CPU seconds of the phase's session so far), or ``{"error": ...}``."""
    work = Path(spec["work"])
    work.mkdir(parents=True, exist_ok=True)
    spec_path, out_path, log_path = (
        work / f"{name}.{x}" for x in ("spec.json", "result.json", "log")
    )
    spec_path.write_text(json.dumps({**spec, "out": str(out_path)}))
    started = time.monotonic()
    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--phase", name, "--spec", str(spec_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
        seen: dict[int, float] = {}
        samples: list[tuple[float, float]] = []
        deadline = started + timeout
        code: int | None = None
        try:
            while code is None and time.monotonic() < deadline:
                samples.append((time.time(), session_cpu(process.pid, seen)))
                with suppress(subprocess.TimeoutExpired):
                    code = process.wait(timeout=SAMPLE_EVERY)
            samples.append((time.time(), session_cpu(process.pid, seen)))  # what is left
        finally:
            if process.poll() is None:
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGTERM)
                with suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=20)
            # Whatever the phase left in its group (Spark's JVM, Python workers) goes too.
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    wall = time.monotonic() - started
    if code is None:
        return {"error": f"timed out after {timeout:.0f}s; see {log_path}", "wall": wall}
    if not out_path.exists():
        return {"error": f"exited with {code} and no result; see {log_path}", "wall": wall}
    return {**json.loads(out_path.read_text()), "wall": wall, "cpu_samples": samples}


def phase_main(functions: Mapping[str, Callable[[dict], dict]], name: str, spec_path: str) -> int:
    """Inside the child: run phase ``name`` on its spec and write the result (or the error)."""
    spec = json.loads(Path(spec_path).read_text())
    try:
        result = functions[name](spec)
    except BaseException as exc:
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    Path(spec["out"]).write_text(json.dumps(result, default=str))
    return 1 if "error" in result else 0
