"""``python bench/latency.py --quick`` runs end to end: both systems at both quick rates,
every produced event matched to exactly one output, the section and the chart written.

Run as a script (not ``-m``) so the path set-up for a fresh checkout is covered too; the
steps themselves run as ``python -m bench.latency``. No timing is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _run_bench(kafka_bootstrap, tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "bench/latency.py",
            *args,
            "--bootstrap-servers",
            kafka_bootstrap,
            "--work-dir",
            str(tmp_path / "work"),
            "--results",
            str(tmp_path / "RESULTS.md"),
            "--chart",
            str(tmp_path / "latency.png"),
            "--json",
            str(tmp_path / "latency.json"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1400,
    )


@pytest.mark.timeout(900)
def test_steady_rate_is_exact(kafka_bootstrap, tmp_path, kafka_backend, figures):
    """The tiny form that the default run includes: the service on one backend under a
    steady 200 events/s for 12 s, every event matched to exactly one output."""
    done = _run_bench(
        kafka_bootstrap,
        tmp_path,
        *("--systems", "streamer", "--rates", "200", "--duration", "12", "--settle", "3"),
        *("--backend", kafka_backend),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (step,) = json.loads((tmp_path / "latency.json").read_text())["steps"]
    figures.append(
        f"steady rate backend={kafka_backend}: produced={step.get('produced')} "
        f"lost={step.get('lost')} duplicates={step.get('duplicates')} stray={step.get('stray')}"
    )
    assert "error" not in step, step["error"]
    assert step["produced"] == 200 * 12
    assert (step["lost"], step["duplicates"], step["stray"]) == (0, 0, 0)
    assert step["dead_letters"] == 0


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_quick_latency_run(kafka_bootstrap, tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n<!-- other:start -->\nkept\n<!-- other:end -->\n")
    chart, report_path = tmp_path / "latency.png", tmp_path / "latency.json"
    done = _run_bench(kafka_bootstrap, tmp_path, "--quick")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(report_path.read_text())

    steps = {(s["system"], s["rate"]): s for s in report["steps"]}
    assert set(steps) == {
        (system, rate) for system in ("streamer", "ceiling") for rate in (200, 500)
    }
    for key, step in steps.items():
        assert "error" not in step and "skipped" not in step, (key, step)
        assert step["produced"] == round(step["rate"] * 15), key
        assert (step["lost"], step["duplicates"], step["stray"]) == (0, 0, 0), key
        assert step["dead_letters"] == 0, key
        assert step["measured"] > 0 and step["p50"] is not None, key
    for rate in (200, 500):
        assert steps[("streamer", rate)]["spark"]["batches"] > 0

    text = results.read_text()
    assert text.count("<!-- latency:start -->") == 1 and text.count("<!-- latency:end -->") == 1
    assert "<!-- other:start -->\nkept\n<!-- other:end -->" in text, "other sections kept"
    section = text[text.index("<!-- latency:start -->") :]
    assert "Command: `python bench/latency.py --quick" in section
    assert "| (a) streamer |" in section and "| (c) ceiling |" in section
    assert "![latency CDFs](latency.png)" in section
    assert chart.stat().st_size > 0
