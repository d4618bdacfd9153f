"""The observed render the tests of this package share: its book, its names, and what it left behind."""

from __future__ import annotations

from dataclasses import dataclass

from tests.conftest import REPO
from tests.support.processes import FarmProcesses, VoxfarmProcess
from tests.support.prometheus import PrometheusServer, http_text

RULES = REPO / "deploy" / "prometheus" / "voxfarm-rules.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "voxfarm.json"
WORD = "Quizzlebrock"
JOB = "leakcheck-job-5e1f"
POOL = "cpu-test"
VOICE = "en_US-joe-medium"
ENGINE = "piper-onnx"

BOOK = f"""---
title: The Signal Tower
author: Test Author
language: en
---

# The Signal Tower

## Night

The keeper of the tower was called {WORD}. He lit the lamp at dusk.

Ships passed far out at sea, and none of them came close.

## Morning

At dawn the fog lifted from the harbour. The boats went out again.
"""
FIRST_JOB = "queued-first"
FIRST_BOOK = """---
title: The Harbour
author: Test Author
language: en
---

# The Harbour

## Evening

The harbour master counted the boats. There were eleven in all.

A gull landed on the wall and watched him. The tide was turning.

Lanterns were lit along the quay. Somebody was singing in a tavern.
"""


@dataclass
class LiveRun:
    prometheus: PrometheusServer
    farm: FarmProcesses
    workers: list[VoxfarmProcess]
    worker_ports: list[int]
    control: VoxfarmProcess
    exporter_port: int
    submit_log: str
    finished_at: float
    """Unix time the job reached `done`; panel queries are evaluated just after it."""

    @property
    def endpoints(self) -> list[str]:
        return [f"http://127.0.0.1:{port}/metrics" for port in [*self.worker_ports, self.exporter_port]]

    def scrape(self, url: str) -> str:
        return http_text(url)
