"""Isolated model environments (issue 7): what ``model.env_manager: uv|virtualenv`` costs
against ``local``, for the same model, in one run.

    python -m bench.envs                 # full run, rewrites the envs section of bench/RESULTS.md
    python -m bench.envs --quick --work-dir /tmp/w --results /tmp/R.md

One run trains and registers the bench model (:mod:`bench.workload`: OrdinalEncoder →
HistGradientBoostingClassifier, a pyfunc returning class probabilities, requirements from
PyPI), then, each step in its own process group (:mod:`bench.phases`):

1. **Environment preparation** (:func:`streamer.scoring.envs.prepare`) into a fresh, empty
   ``MLFLOW_ENV_ROOT``: ``uv`` with an empty uv cache as well (every wheel downloaded: a
   machine's first start; full mode only), ``uv`` with uv's cache as found (a new model on a
   machine that has served others), ``virtualenv`` (pip, its cache as found; full mode
   only). Each is then prepared a second time: the cached path every later start takes.
2. **Server start**: :func:`streamer.scoring.envs.load` until the first ``/ping`` answers
   (environment check, server process, MLflow import, model load), then ``close``; the
   median of ``--starts``.
3. **Scoring**: ``predict`` on the same in-memory frames of 1,000 and 10,000 rows
   (:func:`bench.workload.features`), after two warm-up calls, ``--reps`` times each:
   in-process (``local``) and through the scoring server in each environment, with the
   request as Parquet and as MLflow's ``dataframe_split`` JSON (the response is JSON either
   way). The client-side encoding alone is timed too, so the round trip splits into
   encoding and the rest (HTTP, the server's decoding, schema enforcement, predict, the JSON
   response and its decoding). Every environment's predictions are compared with the
   in-process ones.

Every scoring process runs with ``OMP_NUM_THREADS=1`` (the server inherits it), as the
throughput bench does. The run holds ``flock --lock`` (default ``/tmp/bench.lock``) so other
benchmarks do not share the machine with it.

The end-to-end figure (the service with ``model.env_manager: uv`` against ``local`` on one
preloaded topic) comes from the throughput bench, which writes it into this section between
``<!-- envs-e2e:start -->`` and ``<!-- envs-e2e:end -->`` (:func:`write_end_to_end`)::

    python bench/throughput.py --systems streamer,streamer_uv --events 300000 \
        --results /tmp/uv-throughput.md --no-profile

A run of this bench rewrites the rest of the section and keeps that paragraph as it is.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script, python bench/envs.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import phases
from bench.common import git_commit, machine, new_work_dir, write_results

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MARKER = "envs"
E2E = "envs-e2e"
"""The end-to-end paragraph inside the section, written by ``bench/throughput.py``."""
FRAME_ROWS = (1_000, 10_000)
WIRES = ("parquet", "json")


# --- the phases, each in its own process ------------------------------------------------


def _dir_mb(path: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total / 1e6


def _phase_prepare(spec: dict) -> dict:
    """prepare() twice into the (fresh) MLFLOW_ENV_ROOT this process was given."""
    from streamer.scoring import envs

    compile_bytecode = spec.get("compile_bytecode", True)
    started = time.perf_counter()
    envs.prepare(spec["model_path"], spec["manager"], compile_bytecode=compile_bytecode)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    envs.prepare(spec["model_path"], spec["manager"], compile_bytecode=compile_bytecode)
    cached = time.perf_counter() - started
    where = envs.env_dir(spec["model_path"])
    return {
        "cold_s": cold,
        "cached_s": cached,
        "env_dir": str(where),
        "env_mb": _dir_mb(where),
        "info": envs.environment_info(spec["model_path"]),
    }


def _timed(call: Any, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


def _frames(spec: dict) -> dict[int, Any]:
    from bench.workload import features

    return {n: features(n, seed=7_000 + n) for n in spec["frame_rows"]}


def _phase_local(spec: dict) -> dict:
    """In-process predict, and the client-side cost of encoding each frame for the wire."""
    import io

    import mlflow.pyfunc
    from mlflow.utils.proto_json_utils import dump_input_data

    started = time.perf_counter()
    model = mlflow.pyfunc.load_model(spec["model_path"])
    load_s = time.perf_counter() - started
    frames = _frames(spec)
    predict: dict[str, list[float]] = {}
    encode: dict[str, dict[str, list[float]]] = {w: {} for w in WIRES}

    def parquet(frame: Any) -> bytes:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return buffer.getvalue()

    for n, frame in frames.items():
        for _ in range(2):
            model.predict(frame)
        predict[str(n)] = _timed(lambda f=frame: model.predict(f), spec["reps"])
        encode["parquet"][str(n)] = _timed(lambda f=frame: parquet(f), spec["reps"])
        encode["json"][str(n)] = _timed(
            lambda f=frame: dump_input_data(f).encode("utf-8"), spec["reps"]
        )
    sizes = {
        "parquet": {str(n): len(parquet(f)) for n, f in frames.items()},
        "json": {str(n): len(dump_input_data(f).encode()) for n, f in frames.items()},
    }
    return {"load_s": load_s, "predict_s": predict, "encode_s": encode, "bytes": sizes}


def _starts(spec: dict) -> list[float]:
    """Seconds from ``envs.load`` to a server answering ``/ping``, ``starts`` times."""
    from streamer.scoring import envs

    out = []
    for _ in range(spec["starts"]):
        started = time.perf_counter()
        model = envs.load(spec["model_path"], spec["manager"])
        out.append(time.perf_counter() - started)
        model.close()
    return out


def _phase_starts(spec: dict) -> dict:
    return {"start_s": _starts(spec)}


def _phase_served(spec: dict) -> dict:
    """Server starts, then predict through the server over each wire; checked against the
    in-process predictions."""
    import mlflow.pyfunc
    import numpy as np

    from streamer.scoring import envs

    manager = spec["manager"]
    envs.prepare(spec["model_path"], manager)
    starts = _starts(spec)
    frames = _frames(spec)
    local = mlflow.pyfunc.load_model(spec["model_path"])
    expected = {n: np.asarray(local.predict(f)) for n, f in frames.items()}
    del local
    predict: dict[str, dict[str, list[float]]] = {}
    max_diff = 0.0
    for wire in WIRES:
        model = envs.load(spec["model_path"], manager, wire=wire)
        try:
            predict[wire] = {}
            for n, frame in frames.items():
                for _ in range(2):
                    got = np.asarray(model.predict(frame), dtype=float)
                max_diff = max(max_diff, float(np.abs(got - expected[n]).max()))
                predict[wire][str(n)] = _timed(lambda f=frame, m=model: m.predict(f), spec["reps"])
        finally:
            model.close()
    return {"start_s": starts, "predict_s": predict, "max_abs_diff": max_diff}


_PHASE_FUNCTIONS = {
    "prepare": _phase_prepare,
    "starts": _phase_starts,
    "local": _phase_local,
    "served": _phase_served,
}


def run_phase(
    name: str, step: str, spec: dict, timeout: float, env: dict[str, str], log=print
) -> dict:
    """Phase ``name`` in its own process group, its files under ``<work>/<step>``, with
    ``env`` added to this process's environment."""
    spec = {**spec, "work": str(Path(spec["work"]) / step)}
    result = phases.run_phase("bench.envs", name, spec, timeout, {**os.environ, **env})
    log(f"envs: {step} done in {result['wall']:.0f}s")
    if "error" in result:
        log(f"envs: {step} FAILED: {result['error']}")
    return result


# --- the run ----------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _uv_version() -> str:
    from streamer.scoring.envs import _uv_binary

    uv = _uv_binary()
    if uv is None:
        return "uv not found"
    return subprocess.run([uv, "--version"], capture_output=True, text=True).stdout.strip()


def run(args: argparse.Namespace, command: str, log=print) -> dict[str, Any]:
    from bench.workload import train_and_register

    work = new_work_dir(args.work_dir)
    managers = ["uv"] if args.quick else ["uv", "virtualenv"]
    frame_rows = [int(n) for n in args.frame_rows.split(",")]
    reps = args.reps or (3 if args.quick else 10)
    starts = args.starts or (1 if args.quick else 3)
    timeout = 900.0
    report: dict[str, Any] = {"work": str(work), "prepare": {}, "served": {}}
    with ExitStack() as stack:
        if args.lock:
            handle = stack.enter_context(open(args.lock, "a+"))
            log(f"envs: waiting for {args.lock}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        log(f"envs: work dir {work}")
        started = time.monotonic()
        model = train_and_register(
            work, rows=3_000 if args.quick else 20_000, iterations=20 if args.quick else 100
        )
        report["model"] = {
            "uri": model.uri,
            "version": model.version,
            "auc": model.auc,
            "requirements": (Path(model.local_path) / "requirements.txt").read_text().split(),
            "train_s": time.monotonic() - started,
        }
        log(f"envs: model {model.uri} version {model.version}")
        roots: dict[str, Path] = {}
        steps = [("uv", "uv-cache-as-found")]
        if not args.quick:
            steps = [
                ("uv", "uv-cache-empty"),
                *steps,
                ("uv", "uv-no-bytecode"),
                ("virtualenv", "pip-cache-as-found"),
            ]
        for manager, label in steps:
            root = work / "env-roots" / label
            env = {"MLFLOW_ENV_ROOT": str(root)}
            if label == "uv-cache-empty":
                env["UV_CACHE_DIR"] = str(work / "uv-cache")
            spec = {
                "work": str(work / "phases"),
                "model_path": model.local_path,
                "manager": manager,
                "compile_bytecode": label != "uv-no-bytecode",
            }
            result = run_phase("prepare", f"prepare-{label}", spec, timeout, env, log)
            report["prepare"][label] = {"manager": manager, **result}
            if "error" not in result and label != "uv-no-bytecode":
                roots.setdefault(manager, root)
            if "error" not in result and label == "uv-no-bytecode":
                starts_spec = {**spec, "starts": args.starts or 3}
                report["starts_uncompiled"] = run_phase(
                    "starts", "starts-uv-no-bytecode", starts_spec, timeout, env, log
                )
        common = {
            "work": str(work / "phases"),
            "model_path": model.local_path,
            "frame_rows": frame_rows,
            "reps": reps,
            "starts": starts,
        }
        threads = {"OMP_NUM_THREADS": "1"}
        report["local"] = run_phase("local", "local", common, timeout, threads, log)
        for manager in managers:
            if manager not in roots:
                report["served"][manager] = {"error": "its environment was not prepared"}
                continue
            env = {**threads, "MLFLOW_ENV_ROOT": str(roots[manager])}
            report["served"][manager] = run_phase(
                "served", f"served-{manager}", {**common, "manager": manager}, timeout, env, log
            )
        report["wall_s"] = time.monotonic() - started
        if not args.keep:
            shutil.rmtree(work / "env-roots", ignore_errors=True)
            shutil.rmtree(work / "uv-cache", ignore_errors=True)
        settings = {
            "quick": args.quick,
            "reps": reps,
            "starts": starts,
            "frame_rows": frame_rows,
            "uv": _uv_version(),
            "dont_write_bytecode": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
        }
        section = render(report, command=command, settings=settings)
        results_path = Path(args.results).resolve()
        # Still under the lock: other benches rewrite their sections of the same file.
        kept = end_to_end_block(results_path.read_text() if results_path.exists() else "")
        write_results(section + kept, MARKER, results_path)
    (work / "summary.json").write_text(json.dumps(report, indent=2, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    print(section)
    return report


# --- the report -------------------------------------------------------------------------


def end_to_end_block(text: str) -> str:
    """The end-to-end paragraph of the envs section of ``text``, markers included, with the
    blank line before it; empty when there is none."""
    start, end = f"<!-- {E2E}:start -->", f"<!-- {E2E}:end -->"
    if start not in text or end not in text:
        return ""
    return "\n" + text[text.index(start) : text.index(end) + len(end)] + "\n"


def write_end_to_end(block: str, path: Path) -> None:
    """Put ``block`` (the throughput bench's end-to-end paragraph) into the envs section of
    ``path``: in place of the previous one, else at the end of the section, else as a new
    envs section. Nothing else in the file changes."""
    start, end = f"<!-- {E2E}:start -->", f"<!-- {E2E}:end -->"
    wrapped = f"{start}\n{block}{end}"
    text = path.read_text() if path.exists() else ""
    section_end = f"<!-- {MARKER}:end -->"
    if start in text and end in text:
        text = text[: text.index(start)] + wrapped + text[text.index(end) + len(end) :]
    elif f"<!-- {MARKER}:start -->" in text and section_end in text:
        at = text.index(section_end)
        text = text[:at] + "\n" + wrapped + "\n" + text[at:]
    else:
        write_results("\n" + wrapped + "\n", MARKER, path)
        return
    path.write_text(text)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def _us_row(seconds: float, rows: int) -> str:
    return f"{seconds * 1e6 / rows:,.1f}"


def _machine() -> str:
    m = machine()
    return f"{m['cores']} cores ({m['cpu']}), {m['ram']} RAM, Python {platform.python_version()}"


PREPARE_LABELS = {
    "uv-cache-empty": "uv, empty env root and empty uv cache (every wheel from PyPI)",
    "uv-cache-as-found": "uv, empty env root, uv's package cache as found",
    "uv-no-bytecode": "uv as above without byte-compiling (`compile_bytecode=False`)",
    "pip-cache-as-found": "virtualenv (pyenv's 3.11.7 + pip), empty env root, pip cache as found",
}


def render(report: dict[str, Any], *, command: str, settings: dict[str, Any]) -> str:
    model = report.get("model", {})
    lines = [
        "## Isolated model environments: local against uv and virtualenv (issue 7)",
        "",
        f"Command: `{command}`  ",
        f"Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, commit {git_commit()}  ",
        f"Machine: {_machine()}, {settings['uv']}  ",
        f"Model: {model.get('uri')} version {model.get('version')} (bench.workload: "
        "OrdinalEncoder → HistGradientBoostingClassifier, pyfunc returning class "
        f"probabilities, 24 inputs); requirements `{' '.join(model.get('requirements', []))}`. "
        f"Scoring processes and servers run with OMP_NUM_THREADS=1. Run wall time "
        f"{report.get('wall_s', 0):.0f} s.",
        "",
        "**Environment preparation** (`envs.prepare`, in a fresh `MLFLOW_ENV_ROOT`; "
        "second call = the cached environment every later start finds; uv byte-compiles "
        "the environment, `UV_COMPILE_BYTECODE=1`, unless the row says otherwise; pip always "
        "does):",
        "",
        "| how | first prepare (cold) | second prepare (cached) | environment size |",
        "|---|---|---|---|",
    ]
    for label, result in report.get("prepare", {}).items():
        if "error" in result:
            lines.append(f"| {PREPARE_LABELS[label]} | failed: {result['error']} | — | — |")
            continue
        lines.append(
            f"| {PREPARE_LABELS[label]} | **{result['cold_s']:.1f} s** | "
            f"{result['cached_s'] * 1000:.0f} ms | {result['env_mb']:,.0f} MB |"
        )
    local = report.get("local", {})
    served = report.get("served", {})
    lines += [""]
    start_cells = []
    for manager, result in served.items():
        if "error" not in result:
            start_cells.append(
                f"{manager} {_median(result['start_s']):.2f} s (median of "
                f"{len(result['start_s'])}: "
                + ", ".join(f"{s:.2f}" for s in result["start_s"])
                + ")"
            )
    uncompiled = report.get("starts_uncompiled")
    if uncompiled and "error" not in uncompiled:
        start_cells.append(
            f"uv without byte-compiling {_median(uncompiled['start_s']):.2f} s (median of "
            f"{len(uncompiled['start_s'])}: "
            + ", ".join(f"{s:.2f}" for s in uncompiled["start_s"])
            + "; PYTHONDONTWRITEBYTECODE="
            + (settings["dont_write_bytecode"] or "unset")
            + " here, so no start writes the .pyc files back)"
        )
    if "error" not in local:
        start_cells.append(f"in-process `mlflow.pyfunc.load_model` {local['load_s']:.2f} s")
    lines += [
        "**Server start** (`envs.load` until the first `/ping`: environment check, server "
        "process, MLflow import, model load): " + "; ".join(start_cells) + ".",
        "",
    ]
    if "error" in local:
        lines += [f"Scoring: the local phase failed: {local['error']}", ""]
        return "\n".join(lines) + "\n"
    rows = settings["frame_rows"]
    header = "| system | " + " | ".join(f"{n:,} rows: ms/frame (µs/row)" for n in rows)
    header += " | " + " | ".join(f"{n:,} rows: / local" for n in rows) + " |"
    lines += [
        f"**Scoring** (median of {settings['reps']} calls after 2 warm-ups, same frames):",
        "",
        header,
        "|---|" + "---|" * (2 * len(rows)),
    ]
    base = {n: _median(local["predict_s"][str(n)]) for n in rows}
    lines.append(
        "| local: `PyFuncModel.predict` in-process | "
        + " | ".join(f"{_ms(base[n])} ({_us_row(base[n], n)})" for n in rows)
        + " | "
        + " | ".join("1.00" for _ in rows)
        + " |"
    )
    ratios: dict[str, dict[int, float]] = {}
    for manager, result in served.items():
        if "error" in result:
            lines.append(f"| {manager} | failed: {result['error']} |" + " — |" * (2 * len(rows)))
            continue
        for wire in WIRES:
            cells = {n: _median(result["predict_s"][wire][str(n)]) for n in rows}
            ratios[f"{manager}/{wire}"] = {n: cells[n] / base[n] for n in rows}
            lines.append(
                f"| {manager}: server, {wire} request | "
                + " | ".join(f"{_ms(cells[n])} ({_us_row(cells[n], n)})" for n in rows)
                + " | "
                + " | ".join(f"**{cells[n] / base[n]:.1f}×**" for n in rows)
                + " |"
            )
    lines += [""]
    encode = local["encode_s"]
    sizes = local["bytes"]
    lines.append(
        "Client-side request encoding alone (included above): "
        + "; ".join(
            f"{wire} "
            + ", ".join(
                f"{n:,} rows {_ms(_median(encode[wire][str(n)]))} ms "
                f"({sizes[wire][str(n)] / 1000:,.0f} kB)"
                for n in rows
            )
            for wire in WIRES
        )
        + "."
    )
    checks = [f"{m} max |Δ| {r['max_abs_diff']:.1e}" for m, r in served.items() if "error" not in r]
    lines += [
        "",
        "Predictions through every server equal the in-process ones: " + ", ".join(checks) + ".",
        "",
    ]
    if ratios:
        lines.append(
            "Ratios env/local from this run: "
            + "; ".join(
                f"{key} " + ", ".join(f"{n:,} rows {r[n]:.1f}×" for n in rows)
                for key, r in ratios.items()
            )
            + "."
        )
        lines.append("")
    lines += [
        "- The cold figures are once per machine and set of requirements: MLflow names the "
        "environment by a hash of the python version and requirements, so every model with the "
        "same requirements (and both managers) reuses it, across restarts.",
        "- A start with `env_manager` uv/virtualenv pays one server start per Python worker "
        "(Spark's workers are reused; an idle one is killed after 60 s and the next batch "
        "starts a new worker and server), and the driver pays one more for the start-up probe.",
        "- uv cannot download a Python here (no GitHub), so it uses the interpreter pyenv "
        "exposes globally; virtualenv asks pyenv for the exact version.",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny run: a small model, uv only (no empty-cache step, no virtualenv), "
        "3 reps, 1 server start",
    )
    parser.add_argument("--frame-rows", default=",".join(str(n) for n in FRAME_ROWS))
    parser.add_argument("--reps", type=int, default=None, help="default 10 (quick 3)")
    parser.add_argument("--starts", type=int, default=None, help="default 3 (quick 1)")
    parser.add_argument("--work-dir", default=".streamer-bench/envs")
    parser.add_argument("--results", default=str(BENCH / "RESULTS.md"))
    parser.add_argument("--json", default=None, help="also write the raw report here")
    parser.add_argument(
        "--lock", default="/tmp/bench.lock", help="flock held for the run ('' for none)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the environments the run created")
    parser.add_argument("--phase", choices=sorted(_PHASE_FUNCTIONS), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.phase:
        return phases.phase_main(_PHASE_FUNCTIONS, args.phase, args.spec)
    command = phases.command_line("bench.envs", bool(__package__), argv)
    report = run(args, command)
    failed = [
        name
        for name, result in [
            *report["prepare"].items(),
            ("local", report["local"]),
            *report["served"].items(),
            *(
                [("starts_uncompiled", report["starts_uncompiled"])]
                if "starts_uncompiled" in report
                else []
            ),
        ]
        if "error" in result
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
