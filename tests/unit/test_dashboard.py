"""The provisioned Grafana dashboard and Prometheus config only name what the service exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from streamer.metrics import ServiceMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "streamer.json"
METRIC = re.compile(r"\bstreamer_[a-zA-Z0-9_]+")


def _panels():
    return json.loads(DASHBOARD.read_text())["panels"]


def test_every_panel_query_names_an_exported_metric():
    exported = ServiceMetrics().exported_names()
    for panel in _panels():
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            names = METRIC.findall(target["expr"])
            assert names, f"panel {panel['title']!r}: {target['expr']!r} names no streamer metric"
            unknown = set(names) - exported
            assert not unknown, f"panel {panel['title']!r} queries unexported {sorted(unknown)}"


def test_the_issue_panels_are_there():
    titles = " | ".join(p["title"].lower() for p in _panels())
    for wanted in ("throughput", "batch latency", "end-to-end", "lag", "dead letters", "model"):
        assert wanted in titles, wanted


def test_a_misspelt_metric_would_be_caught():
    exported = ServiceMetrics().exported_names()
    assert "streamer_input_rows_total" in exported
    assert "streamer_end_to_end_latency_seconds_bucket" in exported
    assert "streamer_input_row_total" not in exported


def test_provisioning_points_at_the_dashboard_and_the_scrape_target():
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/streamer.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    uids = {t["datasource"]["uid"] for p in _panels() for t in p["targets"]}
    assert uids == {datasource["uid"]}
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["streamer:9108"]
