"""Metric names follow Prometheus conventions, and no endpoint exposes text, keys or job ids."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from tests.observability.live import JOB, WORD, LiveRun
from tests.support.prometheus import promtool

ALLOWED_LABELS = {
    "engine",
    "voice",
    "family",
    "card",
    "bucket",
    "stage",
    "status",
    "reason",
    "kind",
    "operation",
    "model",
    "state",
    "tenant",
    "priority",
    "holder",
    "le",
}
"""Label names a voxfarm series may carry (plus the worker info metric's version labels)."""
INFO_LABELS = {"device", "engine_version", "torch", "machine", "threads"}


def test_worker_and_exporter_expositions_pass_promtool_check_metrics(live: LiveRun) -> None:
    for url in (live.endpoints[0], live.endpoints[-1]):
        text = live.scrape(url)

        checked = promtool("check", "metrics", stdin=text)

        assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), (url, checked)


def test_every_series_is_prefixed_and_uses_only_bounded_labels(live: LiveRun) -> None:
    for url in live.endpoints:
        for family in text_string_to_metric_families(live.scrape(url)):
            assert family.name.startswith("voxfarm_"), (url, family.name)
            for sample in family.samples:
                extra = set(sample.labels) - ALLOWED_LABELS
                if sample.name == "voxfarm_worker_info":
                    extra -= INFO_LABELS
                assert not extra, (url, sample)


def test_no_endpoint_exposes_the_job_id_the_text_or_a_content_key(live: LiveRun) -> None:
    for url in live.endpoints:
        text = live.scrape(url)

        assert JOB not in text, url
        assert WORD.lower() not in text.lower(), url
        assert not re.search(r"[0-9a-f]{64}", text), url
