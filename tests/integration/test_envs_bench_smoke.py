"""``python bench/envs.py --quick`` runs end to end: a uv environment prepared (cold, then
cached), a server started, the same frames scored in-process and through the server over
both wires with equal predictions, and the section written beside the others.

Run as a script (not ``-m``) so the path set-up for a fresh checkout is covered too; the
phases themselves run as ``python -m bench.envs``. No timing is asserted beyond the cached
prepare being a small fraction of the cold one (a lookup, not a second build); the rest is
that every measurement asked for is there, finite and positive, and shown in the section.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ROWS = ("1000", "10000")
REPS, STARTS = 3, 1  # what --quick asks for


def _measured(times: list) -> bool:
    return all(math.isfinite(t) and t > 0 for t in times)


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
    cold, cached = prepared["cold_s"], prepared["cached_s"]
    assert _measured([cold, cached]) and prepared["env_mb"] > 0, prepared
    # The second prepare finds the environment the first built: a marker check, no rebuild.
    assert cached < cold / 10, f"cached prepare {cached:.3f} s against cold {cold:.3f} s"
    assert prepared["info"]["parquet"] is True
    assert not Path(prepared["env_dir"]).exists(), "the run's environments are removed"

    local = report["local"]
    assert "error" not in local, local
    assert set(local["predict_s"]) == set(ROWS)
    assert all(len(t) == REPS and _measured(t) for t in local["predict_s"].values()), local
    served = report["served"]["uv"]
    assert "error" not in served, served
    assert len(served["start_s"]) == STARTS and _measured(served["start_s"]), served
    for wire in ("parquet", "json"):
        assert set(served["predict_s"][wire]) == set(ROWS)
        assert all(len(t) == REPS and _measured(t) for t in served["predict_s"][wire].values())
    assert 0 <= served["max_abs_diff"] <= 1e-9

    text = results.read_text()
    assert text.count("<!-- envs:start -->") == 1 and text.count("<!-- envs:end -->") == 1
    assert "<!-- other:start -->\nkept\n<!-- other:end -->" in text, "other sections kept"
    section = text[text.index("<!-- envs:start -->") :]
    assert "Command: `python bench/envs.py --quick" in section
    assert f"**{cold:.1f} s** | {cached * 1000:.0f} ms | {prepared['env_mb']:,.0f} MB |" in section
    for wire in ("parquet", "json"):
        label = f"| uv: server, {wire} request |"
        (row,) = [line for line in section.splitlines() if line.startswith(label)]
        for n in ROWS:
            median = statistics.median(served["predict_s"][wire][n])
            assert f"{median * 1000:,.1f} ({median * 1e6 / int(n):,.1f})" in row, (n, row)
