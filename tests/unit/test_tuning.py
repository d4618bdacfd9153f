"""Batch-size tuning: picks the fastest size, respects memory, and is reused from its cache."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from shared.errors import DeviceOutOfMemoryError
from workers.engines.base import Engine, EngineOutput, EngineRequest
from workers.tuning import cache_path, candidates, synthetic_request, tune


class TimedEngine(Engine):
    """A fake card: a fixed cost per call plus a cost per item, out of memory above a size.

    Its calls advance a simulated clock instead of sleeping, so what tuning measures is exactly the card's cost,
    whatever else the machine is doing.
    """

    name = "fake"
    version = "1"
    sample_rate = 22050

    def __init__(self, per_call: float, per_item: float, oom_above: int = 10_000) -> None:
        self.per_call, self.per_item, self.oom_above = per_call, per_item, oom_above
        self.calls: list[int] = []
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def synthesize(self, batch: Sequence[EngineRequest], pad_to: int) -> EngineOutput:
        self.calls.append(len(batch))
        if len(batch) > self.oom_above:
            raise DeviceOutOfMemoryError("fake card is full")
        self.now += self.per_call + self.per_item * len(batch)
        return EngineOutput(audio=[np.zeros(10, dtype=np.float32) for _ in batch])


def test_candidates_are_powers_of_two_up_to_the_limit() -> None:
    assert candidates(1) == [1]
    assert candidates(16) == [1, 2, 4, 8, 16]
    assert candidates(12) == [1, 2, 4, 8, 12]


def test_synthetic_requests_have_exactly_the_asked_length() -> None:
    for tokens in (3, 32, 100, 512):
        assert len(synthetic_request(tokens).ids) == tokens


def test_a_card_with_a_large_fixed_cost_per_call_gets_large_batches() -> None:
    engine = TimedEngine(per_call=0.02, per_item=0.001)
    result = tune(engine, {32: 16}, cache_file=None, free_memory=None, min_seconds=0.05, clock=engine.clock)
    assert result.sizes[32] == 16


def test_a_card_where_batching_does_not_pay_stays_at_one() -> None:
    engine = TimedEngine(per_call=0.0, per_item=0.01)
    result = tune(engine, {64: 8}, cache_file=None, free_memory=None, min_seconds=0.05, clock=engine.clock)
    assert result.sizes[64] == 1


def test_out_of_memory_stops_the_search_at_the_last_size_that_fit() -> None:
    engine = TimedEngine(per_call=0.02, per_item=0.0005, oom_above=4)
    result = tune(engine, {128: 32}, cache_file=None, free_memory=None, min_seconds=0.05, clock=engine.clock)
    assert result.sizes[128] == 4
    assert max(engine.calls) == 8  # tried once, did not fit, never tried 16 or 32


def test_the_memory_budget_stops_growth_before_the_card_is_full() -> None:
    engine = TimedEngine(per_call=0.02, per_item=0.0005)
    peaks = iter([100, 200, 950, 2000, 4000])
    result = tune(
        engine, {32: 16}, cache_file=None, free_memory=1000, peak_memory=lambda: next(peaks), min_seconds=0.05
    )
    assert result.sizes[32] <= 4 and max(engine.calls) == 4


def test_the_result_is_cached_for_the_next_worker_with_the_same_card(tmp_path: Path) -> None:
    engine = TimedEngine(per_call=0.02, per_item=0.001)
    file = cache_path(tmp_path, device_name="Fake Card 80GB", engine=engine, voice_checksum="abc", limits={32: 8})
    first = tune(engine, {32: 8}, cache_file=file, free_memory=None, min_seconds=0.05, clock=engine.clock)
    assert file.is_file() and not first.from_cache

    again = TimedEngine(per_call=0.02, per_item=0.001)
    second = tune(again, {32: 8}, cache_file=file, free_memory=None, clock=again.clock)
    assert second.from_cache and second.sizes == first.sizes and again.calls == []

    other = cache_path(tmp_path, device_name="Other Card", engine=engine, voice_checksum="abc", limits={32: 8})
    assert other != file
