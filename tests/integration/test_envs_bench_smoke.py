"""``python bench/envs.py --quick`` runs end to end: a uv environment prepared (cold, then
cached), a server started, the same frames scored in-process and through the server over
both wires with equal predictions, and the section written beside the others.

Run as a script (not ``-m``) so the path set-up for a fresh checkout is covered too; the
phases themselves run as ``python -m bench.envs``. No timing is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_quick_envs_bench_run(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n<!-- other:start -->\nkept\n<!-- other:end -->\n")
    report_path = tmp_path / "envs.json"
    done = subprocess.run(
        [
            sys.executable,
            "bench/envs.py",
            "--quick",
            "--work-dir",
            str(tmp_path / "work"),
            "--results",
            str(results),
            "--json",
            str(report_path),
            "--lock",
            str(tmp_path / "bench.lock"),  # exercised, without queueing behind real benches
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(report_path.read_text())

    prepared = report["prepare"]["uv-cache-as-found"]
    assert "error" not in prepared, prepared
    assert prepared["cold_s"] > 0 and prepared["cached_s"] >= 0
    assert prepared["info"]["parquet"] is True
    assert not Path(prepared["env_dir"]).exists(), "the run's environments are removed"

    local = report["local"]
    assert "error" not in local, local
    assert set(local["predict_s"]) == {"1000", "10000"}
    served = report["served"]["uv"]
    assert "error" not in served, served
    assert len(served["start_s"]) == 1
    for wire in ("parquet", "json"):
        assert set(served["predict_s"][wire]) == {"1000", "10000"}
        assert all(len(times) == 3 for times in served["predict_s"][wire].values())
    assert served["max_abs_diff"] <= 1e-9

    text = results.read_text()
    assert text.count("<!-- envs:start -->") == 1 and text.count("<!-- envs:end -->") == 1
    assert "<!-- other:start -->\nkept\n<!-- other:end -->" in text, "other sections kept"
    section = text[text.index("<!-- envs:start -->") :]
    assert "Command: `python bench/envs.py --quick" in section
    assert "| uv: server, parquet request |" in section
    assert "| uv: server, json request |" in section
