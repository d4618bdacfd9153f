"""The dashboard and the rules against a real Prometheus that scraped a real render."""

from __future__ import annotations

import math
import re
from typing import Any

from tests.observability.live import POOL, LiveRun

RATE_INTERVAL = "30s"
"""Stands in for Grafana's $__rate_interval: queries are evaluated just after the render, so the window
covers its batches (scrapes every second)."""
VARIABLES = re.compile(r"\$(pool|family|card|model)\b|\$\{(pool|family|card|model)\}")


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel.get("targets", [])]


def as_sent(expr: str) -> str:
    """The query as Grafana sends it with every variable on "All" (its allValue is .*)."""
    return VARIABLES.sub(".*", expr).replace("$__rate_interval", RATE_INTERVAL)


def test_every_query_of_every_dashboard_panel_returns_data(live: LiveRun, dashboard: dict[str, Any]) -> None:
    queries = panel_queries(dashboard)
    at = live.finished_at + 2

    empty, only_nan = [], []
    for title, expr in queries:
        result = live.prometheus.query(as_sent(expr), at=at)
        values = [float(sample["value"][1]) for sample in result]
        if not result:
            empty.append(f"{title}: {as_sent(expr)}")
        elif all(math.isnan(v) for v in values):
            only_nan.append(f"{title}: {as_sent(expr)}")

    assert len(queries) >= 30
    assert not empty, "panels without data:\n" + "\n".join(empty)
    assert not only_nan, "panels with only NaN:\n" + "\n".join(only_nan)


def test_template_variables_find_the_pool_family_card_and_model(live: LiveRun) -> None:
    def values(label: str, metric: str) -> list[str]:
        return list(live.prometheus.api(f"label/{label}/values", **{"match[]": metric}))

    assert values("pool", "voxfarm_worker_ready") == [POOL]
    assert values("family", "voxfarm_worker_ready") == ["cpu"]
    assert values("card", "voxfarm_worker_ready")
    assert "piper-onnx.en_US-joe-medium" in values("model", "voxfarm_queue_depth_messages")


def test_the_render_shows_up_in_throughput_queue_and_job_series(live: LiveRun) -> None:
    at = live.finished_at + 2
    prometheus = live.prometheus

    assert prometheus.value("sum(voxfarm_audio_seconds_total)", at) > 5
    assert prometheus.value('sum(voxfarm_segments_total{status="rendered"})', at) >= 5
    assert prometheus.value("count(voxfarm_worker_ready == 1)", at) == 2
    # The exporter reads Redis at most every few seconds: its latest figures show the job finished.
    assert prometheus.value("max(voxfarm_segments_remaining)") == 0
    assert prometheus.value('max(voxfarm_jobs_active{state="rendering"})') == 0
    assert prometheus.value("max(voxfarm_dead_letter_queue_messages)") == 1
    assert prometheus.value("max(voxfarm_broker_up)") == 1
    # While the book waited for workers, the exporter saw its messages, work, age and segments.
    waiting = 'max_over_time(voxfarm_queue_{}{{model="piper-onnx.en_US-joe-medium"}}[5m])'
    assert prometheus.value(f"sum({waiting.format('depth_messages')})") >= 5
    assert 5 < prometheus.value(f"sum({waiting.format('work_seconds')})") < 60
    assert prometheus.value(f"max({waiting.format('oldest_age_seconds')})") > 0
    assert prometheus.value("max(max_over_time(voxfarm_segments_remaining[5m]))") >= 5


def test_recording_and_alerting_rules_evaluate_and_only_the_dead_letter_alert_fires(live: LiveRun) -> None:
    groups = live.prometheus.api("rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]

    assert len(rules) >= 15
    assert [r["name"] for r in rules if r["health"] != "ok"] == [], [r.get("lastError") for r in rules]
    firing = {r["name"] for r in rules if r["type"] == "alerting" and r["state"] == "firing"}
    assert firing == {"VoxfarmDeadLetters"}
