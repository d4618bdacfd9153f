"""The quality gate's retakes: which take of a segment is stored, and which is synthesised again.

Each take is checked on an upload thread, so the gate never calls the
engine: a failing take goes back to the batcher, and the runner thread
synthesises it again with other noise (``noise_key``). After the last
attempt the best take is kept and its findings travel with it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shared.quality import DEFAULT_LIMITS, QualityLimits, QualityReport, best_take, check_segment
from shared.schema import SegmentTask
from workers.batcher import Batcher, Pending
from workers.records import FailureRecord, Observer

log = logging.getLogger(__name__)


@dataclass
class QualityGate:
    """How the runner checks each take before it is stored."""

    attempts: int = 3
    """Takes synthesised at most; after the last the best is kept and its findings are reported."""
    limits: QualityLimits = DEFAULT_LIMITS


class Retakes:
    """The takes of every segment still being judged, shared by the upload threads and the runner thread."""

    def __init__(
        self,
        gate: QualityGate,
        batcher: Batcher[SegmentTask],
        observer: Observer,
        *,
        accepting: Callable[[], bool],
    ) -> None:
        self.gate = gate
        self.batcher = batcher
        self.observer = observer
        self._accepting = accepting
        """Whether the runner still takes work: no retake once it is stopping."""
        self._takes: dict[int, list[tuple[np.ndarray, QualityReport]]] = {}
        self._lock = threading.Lock()

    def check(
        self, item: Pending[SegmentTask], audio: np.ndarray, sample_rate: int
    ) -> tuple[np.ndarray, QualityReport] | None:
        """Check one take; None when it was requeued for another, else the take to store."""
        task = item.payload
        report = check_segment(
            audio, sample_rate, tokens=len(task.ids), length_scale=task.params.length_scale, limits=self.gate.limits
        )
        return self.judge(item, audio, report)

    def judge(
        self, item: Pending[SegmentTask], audio: np.ndarray, report: QualityReport
    ) -> tuple[np.ndarray, QualityReport] | None:
        """Decide on a checked take: None when it was requeued for another, else the take to store."""
        task = item.payload
        with self._lock:
            takes = self._takes.setdefault(id(item), [])
            takes.append((audio, report))
            attempts = len(takes)
            retry = not report.passed and attempts < self.gate.attempts and self._can_retry(item)
            if not retry:
                del self._takes[id(item)]
        if not report.passed:
            self.observer(FailureRecord("quality", 1, report.summary()))
            log.warning(
                "segment %s of %s failed the quality gate on take %d: %s",
                task.indexes[0],
                task.job,
                attempts,
                report.summary(),
                extra={"job": task.job, "segment": task.indexes[0], "key": task.key},
            )
        if retry:
            if attempts == 1:
                item.future.add_done_callback(functools.partial(self._forget, id(item)))
            self.batcher.requeue([item])
            return None
        if report.passed:
            return audio, report
        kept_audio, kept = best_take(takes)
        return kept_audio, QualityReport(kept.findings, attempts, kept.measures)

    def noise_key(self, item: Pending[SegmentTask]) -> str:
        """The key the engine seeds its noise from: the content key, or a variant of it for a retake."""
        with self._lock:
            taken = len(self._takes.get(id(item), ()))
        key = item.payload.key
        return key if taken == 0 else hashlib.sha256(f"{key}:take{taken + 1}".encode()).hexdigest()

    def _can_retry(self, item: Pending[SegmentTask]) -> bool:
        return self._accepting() and not item.future.done()

    def _forget(self, ident: int, _future: object = None) -> None:
        with self._lock:
            self._takes.pop(ident, None)
