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


def query_problems(panels: list[dict], exported: set[str]) -> list[str]:
    """What is wrong with the panels' queries: a panel with none, a query naming no
    streamer metric, or one naming a metric the service does not export."""
    problems = []
    for panel in panels:
        if not panel["targets"]:
            problems.append(f"panel {panel['title']!r} has no query")
        for target in panel["targets"]:
            names = METRIC.findall(target["expr"])
            if not names:
                problems.append(
                    f"panel {panel['title']!r}: {target['expr']!r} names no streamer metric"
                )
            unknown = set(names) - exported
            if unknown:
                problems.append(f"panel {panel['title']!r} queries unexported {sorted(unknown)}")
    return problems


def test_every_panel_query_names_an_exported_metric():
    assert query_problems(_panels(), ServiceMetrics().exported_names()) == []


def test_the_issue_panels_are_there():
    titles = " | ".join(p["title"].lower() for p in _panels())
    for wanted in ("throughput", "batch latency", "end-to-end", "lag", "dead letters", "model"):
        assert wanted in titles, wanted


def test_a_misspelt_metric_would_be_caught():
    """The checker above, run on the real dashboard with one metric name misspelt."""
    panels = _panels()
    (target,) = [
        t for p in panels for t in p["targets"] if "streamer_input_rows_total" in t["expr"]
    ]
    target["expr"] = target["expr"].replace("streamer_input_rows_total", "streamer_input_row_total")
    title = next(p["title"] for p in panels if target in p["targets"])
    assert query_problems(panels, ServiceMetrics().exported_names()) == [
        f"panel {title!r} queries unexported ['streamer_input_row_total']"
    ]


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
