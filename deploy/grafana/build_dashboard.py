"""Build the voxfarm Grafana dashboard (voxfarm.json beside this file) from one list of panels.

Run ``python deploy/grafana/build_dashboard.py`` after changing a panel and
commit both files; ``--check`` exits 1 when voxfarm.json is out of date (a
test runs it). Every query filters workers with the same template
variables, so panels stay consistent:

- ``datasource``: the Prometheus data source;
- ``pool``: the ``pool`` target label that scrape relabelling puts on worker
  targets (from the pods' ``voxfarm/pool`` label in Kubernetes, or a static
  label elsewhere);
- ``family`` and ``card``: the workers' own labels;
- ``model``: the control plane's queue label (engine.voice).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).with_name("voxfarm.json")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
W = 'pool=~"$pool",family=~"$family",card=~"$card"'
"""Selects the workers the template variables pick."""
Q = 'model=~"$model"'
RATE = "$__rate_interval"


@dataclass
class Target:
    expr: str
    legend: str = ""
    instant: bool = False


@dataclass
class Panel:
    title: str
    description: str
    targets: list[Target]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    height: int = 8
    stack: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    title: str
    panels: list[Panel]


def _quantiles(metric: str, by: str, selector: str, legend: str) -> list[Target]:
    return [
        Target(
            f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{selector}}}[{RATE}])))",
            f"{legend} p{int(q * 100)}",
        )
        for q in (0.5, 0.95)
    ]


def _mean(metric: str, by: str, selector: str) -> str:
    return (
        f"sum by ({by}) (rate({metric}_sum{{{selector}}}[{RATE}]))"
        f" / sum by ({by}) (rate({metric}_count{{{selector}}}[{RATE}]))"
    )


ROWS = [
    Row(
        "Throughput",
        [
            Panel(
                "Audio seconds per second",
                "Seconds of audio the selected workers synthesise per second of wall time, by pool and family.",
                [
                    Target(
                        f"sum by (pool, family) (rate(voxfarm_audio_seconds_total{{{W}}}[{RATE}]))",
                        "{{pool}} {{family}}",
                    )
                ],
                unit="s",
                width=8,
                stack=True,
            ),
            Panel(
                "Characters per second",
                "Characters of text synthesised per second, by pool and family.",
                [
                    Target(
                        f"sum by (pool, family) (rate(voxfarm_characters_total{{{W}}}[{RATE}]))", "{{pool}} {{family}}"
                    )
                ],
                width=8,
                stack=True,
            ),
            Panel(
                "Segments per second",
                "Segments finished: rendered (synthesised and stored) or exists (found in storage, skipped).",
                [Target(f"sum by (status) (rate(voxfarm_segments_total{{{W}}}[{RATE}]))", "{{status}}")],
                width=8,
                stack=True,
            ),
            Panel(
                "Share of work per card",
                "Each worker's share of the audio produced: an even split means the batcher keeps every card busy.",
                [
                    Target(
                        f"sum by (instance, family, card) (rate(voxfarm_audio_seconds_total{{{W}}}[{RATE}]))"
                        f" / scalar(sum(rate(voxfarm_audio_seconds_total{{{W}}}[{RATE}])))",
                        "{{family}} {{card}} {{instance}}",
                    )
                ],
                unit="percentunit",
                stack=True,
            ),
            Panel(
                "Job progress",
                "Segments of rendering jobs not yet stored, jobs by state, and how long the least recently "
                "progressing job has gone without storing a segment.",
                [
                    Target("max(voxfarm_segments_remaining)", "segments remaining"),
                    Target("max by (state) (voxfarm_jobs_active)", "jobs {{state}}"),
                    Target("max(voxfarm_job_progress_age_seconds)", "seconds since progress (stalest job)"),
                ],
            ),
        ],
    ),
    Row(
        "Latency",
        [
            Panel(
                "Real-time factor by device family",
                "Compute seconds per second of audio, per batch (lower is faster): p50 and p95.",
                _quantiles("voxfarm_real_time_factor_ratio", "family", W, "{{family}}"),
                unit="short",
            ),
            Panel(
                "Stage seconds (p95)",
                "Engine stages per batch (synthesis, or encoder/duration/flow/vocoder), encode and upload per segment.",
                [
                    Target(
                        "histogram_quantile(0.95, sum by (stage, le) "
                        f"(rate(voxfarm_stage_seconds_bucket{{{W}}}[{RATE}])))",
                        "{{stage}} p95",
                    )
                ],
                unit="s",
            ),
            Panel(
                "Queue wait by bucket",
                "From enqueue to the start of the segment's batch, p50 and p95 per bucket edge.",
                _quantiles("voxfarm_queue_wait_seconds", "bucket", W, "b{{bucket}}"),
                unit="s",
            ),
            Panel(
                "Storage write latency",
                "Latency of storage PUTs, p50 and p95.",
                _quantiles("voxfarm_storage_request_seconds", "operation", W, "{{operation}}"),
                unit="s",
            ),
        ],
    ),
    Row(
        "Queues",
        [
            Panel(
                "Queue depth (messages)",
                "Messages waiting per model and bucket (control: the assembly queue).",
                [Target(f"max by (model, bucket) (voxfarm_queue_depth_messages{{{Q}}})", "{{model}} {{bucket}}")],
                stack=True,
            ),
            Panel(
                "Queued work (seconds of audio)",
                "Estimated seconds of audio waiting per model and bucket: what the autoscaler reads.",
                [Target(f"max by (model, bucket) (voxfarm_queue_work_seconds{{{Q}}})", "{{model}} b{{bucket}}")],
                unit="s",
                stack=True,
            ),
            Panel(
                "Oldest waiting segment",
                "Age of the oldest message per model and bucket.",
                [Target(f"max by (model, bucket) (voxfarm_queue_oldest_age_seconds{{{Q}}})", "{{model}} b{{bucket}}")],
                unit="s",
            ),
            Panel(
                "In flight and time to drain",
                "Messages delivered and not yet acknowledged, segments held by workers, and queued work divided "
                "by the current production rate.",
                [
                    Target("max(voxfarm_unacked_messages)", "unacked messages"),
                    Target(f"sum(voxfarm_inflight_segments{{{W}}})", "segments in workers"),
                    Target(
                        f"sum(max by (model, bucket) (voxfarm_queue_work_seconds{{{Q}}}))"
                        f" / clamp_min(sum(rate(voxfarm_audio_seconds_total{{{W}}}[{RATE}])), 0.001)",
                        "seconds to drain",
                    ),
                ],
            ),
        ],
    ),
    Row(
        "Batching",
        [
            Panel(
                "Batch size by card",
                "Mean items per engine call, per worker and bucket.",
                [Target(_mean("voxfarm_batch_size_items", "instance, card, bucket", W), "{{card}} b{{bucket}}")],
                width=8,
            ),
            Panel(
                "Padding efficiency by card",
                "Useful / computed tokens (1 = no padding), per worker and bucket.",
                [
                    Target(
                        _mean("voxfarm_batch_padding_efficiency_ratio", "instance, card, bucket", W),
                        "{{card}} b{{bucket}}",
                    )
                ],
                unit="percentunit",
                width=8,
            ),
            Panel(
                "Batches by release reason",
                "Why batches were released (full, waited, drained...), per second.",
                [Target(f"sum by (reason) (rate(voxfarm_batches_total{{{W}}}[{RATE}]))", "{{reason}}")],
                width=8,
                stack=True,
            ),
            Panel(
                "Tuned batch size",
                "Batch size chosen at warm-up per card and bucket.",
                [
                    Target(
                        f"max by (family, card, bucket) (voxfarm_tuned_batch_size_items{{{W}}})",
                        "{{family}} {{card}} b{{bucket}}",
                    )
                ],
            ),
        ],
    ),
    Row(
        "Devices and warm-up",
        [
            Panel(
                "Warm-up and first batch",
                "Seconds to load, compile and warm up; compile time inside it; compute seconds of the first real "
                "batch (slow means warm-up missed a shape).",
                [
                    Target(
                        f"max by (instance, family, card) (voxfarm_warmup_seconds{{{W}}})",
                        "warm-up {{family}} {{card}}",
                    ),
                    Target(
                        f"max by (instance, family, card) (voxfarm_compile_seconds{{{W}}})",
                        "compile {{family}} {{card}}",
                    ),
                    Target(
                        f"max by (instance, family, card) (voxfarm_first_batch_seconds{{{W}}})",
                        "first batch {{family}} {{card}}",
                    ),
                ],
                unit="s",
            ),
            Panel(
                "Compile cache",
                "Compiled warm-up shapes whose graph came from the cache (hits) or had to be compiled (misses).",
                [
                    Target(f"sum by (family) (voxfarm_compile_cache_hits_total{{{W}}})", "hits {{family}}"),
                    Target(f"sum by (family) (voxfarm_compile_cache_misses_total{{{W}}})", "misses {{family}}"),
                ],
            ),
            Panel(
                "Device memory",
                "Memory used (and reserved by the allocator, where reported) by each worker against its card's total "
                "(host memory for CPU workers).",
                [
                    Target(
                        "max by (instance, family, card, kind) "
                        f'(voxfarm_device_memory_bytes{{{W},kind=~"used|reserved|total"}})',
                        "{{kind}} {{family}} {{card}}",
                    ),
                ],
                unit="bytes",
            ),
            Panel(
                "Workers",
                "Device, runtime and engine versions of each worker.",
                [Target(f"voxfarm_worker_info{{{W}}}", instant=True)],
                kind="table",
            ),
        ],
    ),
    Row(
        "Health and errors",
        [
            Panel(
                "Workers up and ready",
                "Scrape targets up per pool, and workers that finished warm-up and consume.",
                [
                    Target('sum by (pool) (up{pool=~"$pool",pool!=""})', "up {{pool}}"),
                    Target(f"sum by (pool) (voxfarm_worker_ready{{{W}}})", "ready {{pool}}"),
                ],
                width=8,
            ),
            Panel(
                "Retries by reason",
                "Segments sent back for another attempt, per second.",
                [Target(f"sum by (reason) (rate(voxfarm_retries_total{{{W}}}[{RATE}]))", "{{reason}}")],
                width=8,
                stack=True,
            ),
            Panel(
                "Dead letters",
                "Segments given up by reason (per second), and entries waiting in voxfarm.dead.",
                [
                    Target(f"sum by (reason) (rate(voxfarm_dead_letters_total{{{W}}}[{RATE}]))", "{{reason}} per s"),
                    Target("max(voxfarm_dead_letter_queue_messages)", "in voxfarm.dead"),
                ],
                width=8,
            ),
            Panel(
                "Failed engine calls",
                "Engine calls that failed, by kind (poison, oom, time_limit, device), per second.",
                [Target(f"sum by (kind) (rate(voxfarm_batch_failures_total{{{W}}}[{RATE}]))", "{{kind}}")],
                width=8,
                stack=True,
            ),
            Panel(
                "Storage errors",
                "Failed storage requests per second, by operation.",
                [Target(f"sum by (operation) (rate(voxfarm_storage_errors_total{{{W}}}[{RATE}]))", "{{operation}}")],
                width=8,
            ),
            Panel(
                "Control plane",
                "1 when the control-plane exporter can read Redis, and how long its last read took.",
                [
                    Target("min(voxfarm_broker_up)", "broker readable"),
                    Target("max(voxfarm_exporter_read_seconds)", "read seconds"),
                ],
                width=8,
            ),
        ],
    ),
    Row(
        "Scheduling",
        [
            Panel(
                "Dispatched work by tenant",
                "Estimated seconds of audio the dispatcher puts into the queues per second, by tenant: the fair "
                "share as it is handed out (every control replica reports the same figure, hence max).",
                [
                    Target(
                        "sum by (tenant) (max by (tenant, priority) "
                        f"(rate(voxfarm_scheduler_dispatched_seconds_total[{RATE}])))",
                        "{{tenant}}",
                    )
                ],
                unit="s",
                width=8,
                stack=True,
            ),
            Panel(
                "Pending work by tenant and priority",
                "Estimated seconds of audio registered and not yet dispatched (paused jobs excluded).",
                [Target("max by (tenant, priority) (voxfarm_scheduler_pending_seconds)", "{{tenant}} p{{priority}}")],
                unit="s",
                width=8,
            ),
            Panel(
                "Longest wait for dispatch",
                "Per tenant and priority, the longest a job with work waiting has gone without any dispatched.",
                [Target("max by (tenant, priority) (voxfarm_scheduler_starved_seconds)", "{{tenant}} p{{priority}}")],
                unit="s",
                width=8,
            ),
            Panel(
                "Dispatcher",
                "Seconds the last dispatch cycle took, and which control replica holds the dispatch lease.",
                [
                    Target("max(voxfarm_dispatcher_cycle_seconds)", "cycle seconds"),
                    Target("max by (holder) (voxfarm_dispatcher_lease_holder)", "lease: {{holder}}"),
                ],
                width=8,
            ),
        ],
    ),
]


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-values"},
        "refresh": 2,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "hide": 0,
        "options": [],
        "regex": "",
    }


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    custom: dict[str, Any] = {"lineWidth": 1, "fillOpacity": 10, "showPoints": "never", "spanNulls": True}
    if panel.stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    result: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {"unit": panel.unit, **({"custom": custom} if panel.kind == "timeseries" else {})},
            "overrides": [],
        },
        "options": (
            {
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
            if panel.kind == "timeseries"
            else {"showHeader": True}
        ),
        "targets": [
            {
                "refId": chr(ord("A") + index),
                "datasource": DATASOURCE,
                "expr": target.expr,
                "legendFormat": target.legend or "__auto",
                "range": not target.instant,
                "instant": target.instant,
                **({"format": "table"} if target.instant else {}),
            }
            for index, target in enumerate(panel.targets)
        ],
        **panel.extra,
    }
    return result


def build() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model."""
    panels: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    for row in ROWS:
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        x, row_height = 0, 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y = 0, y + row_height
                row_height = 0
            panels.append(_panel(panel, next_id, x, y))
            next_id += 1
            x += panel.width
            row_height = max(row_height, panel.height)
        y += row_height
    return {
        "title": "voxfarm",
        "uid": "voxfarm",
        "description": "Throughput, latency, queues, batching, devices and errors of a voxfarm render farm.",
        "tags": ["voxfarm", "tts"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "timezone": "browser",
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "links": [],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                },
                _variable("pool", "Pool", "label_values(voxfarm_worker_ready, pool)"),
                _variable("family", "Device family", 'label_values(voxfarm_worker_ready{pool=~"$pool"}, family)'),
                _variable("card", "Card", 'label_values(voxfarm_worker_ready{pool=~"$pool",family=~"$family"}, card)'),
                _variable("model", "Model", "label_values(voxfarm_queue_depth_messages, model)"),
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if voxfarm.json differs from what this builds")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT.name} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
