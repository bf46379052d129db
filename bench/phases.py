"""Each benchmarked system in its own process group: ``python -m <module> --phase NAME``.

A phase reads its spec (JSON) and writes its result (JSON) next to it; :func:`run_phase`
kills the whole group (Spark's JVM and Python workers included) on overrun and when the
phase ends, so one system's leftovers never share the machine with the next one.
"""

from __future__ import annotations

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
    result with ``wall`` (seconds), or ``{"error": ...}``."""
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
        try:
            code: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
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
    return {**json.loads(out_path.read_text()), "wall": wall}


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
