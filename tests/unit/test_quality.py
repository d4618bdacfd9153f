"""The quality gate: real takes of the default voice pass, crafted bad takes fail, and the runner retakes them."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from producer.planner import default_params
from producer.progress import describe
from shared.frontend import create_frontend
from shared.keys import segment_path
from shared.ledger import Ledger
from shared.quality import (
    QualityLimits,
    QualityReport,
    best_take,
    check_segment,
    encode_checked_flac,
    report_from_comment,
    speech_bounds,
)
from shared.schema import SegmentTask
from shared.storage import open_storage
from shared.voices import bundled_voice
from workers.batcher import Batcher, BatchPolicy
from workers.engines.base import Engine, EngineOutput, EngineRequest
from workers.engines.piper_onnx import PiperOnnxEngine
from workers.runner import BatchRunner, StoredSegment

RATE = 22050
#: Real sentences of the corpus books, and short utterances that stretch the duration bounds.
SENTENCES = [
    "I told some of you last Thursday of the principles of the Time Machine.",
    "It was, as I think I have said, of bronze.",
    "No.",
    "Chapter one.",
]


@pytest.fixture(scope="module")
def engine() -> Iterator[PiperOnnxEngine]:
    loaded = PiperOnnxEngine(bundled_voice())
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def takes(engine: PiperOnnxEngine) -> list[tuple[str, list[int], np.ndarray]]:
    """Each sentence's token ids and one real take of it."""
    voice = bundled_voice()
    frontend = create_frontend("piper", voice.config, max_tokens=512)
    params = default_params(voice)
    out = []
    for sentence in SENTENCES:
        piece = next(iter(frontend.segment_chapter([sentence])))
        audio = engine.synthesize([EngineRequest("0" * 64, piece.ids, params)], 512).audio[0]
        out.append((sentence, list(piece.ids), audio))
    return out


def _checks(report: QualityReport) -> set[str]:
    return {f.check for f in report.findings}


def test_real_takes_of_corpus_sentences_and_short_utterances_pass(
    takes: list[tuple[str, list[int], np.ndarray]],
) -> None:
    for sentence, ids, audio in takes:
        report = check_segment(audio, RATE, tokens=len(ids))
        assert report.passed, f"{sentence!r}: {report.summary()}"
        assert 0.008 < report.measures["s_per_token"] < 0.07


def test_non_finite_samples_fail_first(takes: list[tuple[str, list[int], np.ndarray]]) -> None:
    _, ids, audio = takes[0]
    broken = audio.copy()
    broken[100:110] = np.nan
    broken[200] = np.inf
    report = check_segment(broken, RATE, tokens=len(ids))
    assert _checks(report) == {"non_finite"}
    assert report.findings[0].value == 11


def test_an_empty_take_fails() -> None:
    assert _checks(check_segment(np.zeros(0, dtype=np.float32), RATE, tokens=10)) == {"empty"}


def test_a_clipped_burst_fails_but_a_loud_clean_take_passes(takes: list[tuple[str, list[int], np.ndarray]]) -> None:
    _, ids, audio = takes[0]
    loud = audio / np.abs(audio).max() * 0.98
    assert check_segment(loud, RATE, tokens=len(ids)).passed
    clipped = np.clip(audio * 8.0, -1.0, 1.0)
    report = check_segment(clipped, RATE, tokens=len(ids))
    assert "clipping" in _checks(report)
    assert report.findings[0].value > 100


def test_silence_only_fails_as_silent() -> None:
    hiss = np.random.default_rng(0).normal(0, 1e-4, RATE).astype(np.float32)
    assert _checks(check_segment(hiss, RATE, tokens=40)) == {"silent"}


def test_a_take_far_too_short_for_its_tokens_fails_as_too_fast(
    takes: list[tuple[str, list[int], np.ndarray]],
) -> None:
    _, ids, audio = takes[0]
    start, end = speech_bounds(audio, RATE)
    truncated = audio[start : start + (end - start) // 3]
    assert _checks(check_segment(truncated, RATE, tokens=len(ids))) == {"too_fast"}


def test_a_take_far_too_long_for_its_tokens_fails_as_too_slow(
    takes: list[tuple[str, list[int], np.ndarray]],
) -> None:
    _, ids, audio = takes[1]
    babbling = np.concatenate([audio, audio, audio, audio])
    assert _checks(check_segment(babbling, RATE, tokens=len(ids))) == {"too_slow"}


def test_a_slower_length_scale_raises_the_duration_bound(takes: list[tuple[str, list[int], np.ndarray]]) -> None:
    _, ids, audio = takes[1]
    doubled = np.concatenate([audio, audio, audio])
    assert "too_slow" in _checks(check_segment(doubled, RATE, tokens=len(ids), length_scale=1.0))
    assert check_segment(doubled, RATE, tokens=len(ids), length_scale=3.0).passed


def test_long_silence_before_or_after_speech_fails(takes: list[tuple[str, list[int], np.ndarray]]) -> None:
    _, ids, audio = takes[0]
    gap = np.zeros(int(1.5 * RATE), dtype=np.float32)
    assert _checks(check_segment(np.concatenate([gap, audio]), RATE, tokens=len(ids))) == {"leading_silence"}
    assert _checks(check_segment(np.concatenate([audio, gap]), RATE, tokens=len(ids))) == {"trailing_silence"}


def test_speech_bounds_find_the_words_inside_silence(takes: list[tuple[str, list[int], np.ndarray]]) -> None:
    _, _, audio = takes[0]
    start, end = speech_bounds(audio, RATE)
    pad = 100 * 220  # a whole number of 10 ms frames, so the frames line up with the unpadded take's
    padded = np.concatenate([np.zeros(pad, dtype=np.float32), audio, np.zeros(pad, dtype=np.float32)])
    assert speech_bounds(padded, RATE) == (start + pad, end + pad)


def test_the_best_take_has_the_fewest_and_mildest_findings(takes: list[tuple[str, list[int], np.ndarray]]) -> None:
    _, ids, audio = takes[1]
    worse = np.concatenate([audio] * 5)
    bad = np.concatenate([audio] * 3)
    nan = audio.copy()
    nan[0] = np.nan
    candidates = [(a, check_segment(a, RATE, tokens=len(ids))) for a in (nan, worse, bad)]
    assert best_take(candidates)[0] is bad


def test_findings_travel_in_the_stored_flac_comment(takes: list[tuple[str, list[int], np.ndarray]]) -> None:
    _, ids, audio = takes[1]
    report = check_segment(np.concatenate([audio] * 4), RATE, tokens=len(ids))
    data = encode_checked_flac(np.concatenate([audio] * 4), RATE, QualityReport(report.findings, attempts=3))
    with sf.SoundFile(io.BytesIO(data)) as stored:
        read_back = report_from_comment(stored.comment)
        assert stored.frames == 4 * len(audio)
    assert read_back is not None
    assert read_back.attempts == 3 and [f.check for f in read_back.findings] == ["too_slow"]
    assert report_from_comment(None) is None and report_from_comment("made by someone else") is None


# --- the gate in the runner ------------------------------------------------------------------


class FlakyEngine(Engine):
    """The real engine, except that the takes listed in ``spoil`` come back with NaNs in them.

    It records which thread called it and which noise keys it was given.
    """

    name = "piper-onnx"
    version = "1"

    def __init__(self, real: PiperOnnxEngine, spoil: set[int]) -> None:
        self.real = real
        self.sample_rate = real.sample_rate
        self.spoil = spoil
        self.calls = 0
        self.threads: list[str] = []
        self.keys: list[str] = []

    def synthesize(self, batch: Sequence[EngineRequest], pad_to: int) -> EngineOutput:
        self.threads.append(threading.current_thread().name)
        self.keys += [r.key for r in batch]
        out = self.real.synthesize(batch, pad_to)
        self.calls += 1
        if self.calls in self.spoil:
            for audio in out.audio:
                audio[::50] = np.nan
        return out


def _task(ids: list[int], key: str = "ab" * 32) -> SegmentTask:
    return SegmentTask(
        job="quality-job",
        indexes=[3],
        chapter=0,
        text="x",
        ids=ids,
        voice="en_US-joe-medium",
        engine="piper-onnx",
        key=key,
        bucket=128,
        enqueued_at=time.time(),
    )


def _render(engine: Engine, tmp_path: Path, ids: list[int], limits: QualityLimits | None = None) -> StoredSegment:
    storage = open_storage((tmp_path / "store").as_uri())
    batcher: Batcher[SegmentTask] = Batcher(BatchPolicy(max_items=1, max_wait_s=0.001), [32, 64, 128, 256, 512])
    runner = BatchRunner(engine, batcher, storage, time_limit_s=60)
    if limits is not None:
        runner.quality.limits = limits
    runner.start()
    try:
        result = batcher.submit(_task(ids), len(ids)).result(timeout=60)
    finally:
        runner.stop()
    assert isinstance(result, StoredSegment)
    return result


def _stored(tmp_path: Path, result: StoredSegment) -> tuple[np.ndarray, QualityReport | None]:
    data = open_storage((tmp_path / "store").as_uri()).get_bytes(segment_path("en_US-joe-medium", result.key))
    with sf.SoundFile(io.BytesIO(data)) as stored:
        return stored.read(dtype="float32"), report_from_comment(stored.comment)


def test_a_failing_take_is_synthesised_again_on_the_runner_thread_with_other_noise(
    engine: PiperOnnxEngine, takes: list[tuple[str, list[int], np.ndarray]], tmp_path: Path
) -> None:
    _, ids, _ = takes[0]
    flaky = FlakyEngine(engine, spoil={1})
    result = _render(flaky, tmp_path, ids)
    assert flaky.calls == 2
    assert set(flaky.threads) == {"voxfarm-runner"}
    assert flaky.keys[0] == "ab" * 32 and flaky.keys[1] != flaky.keys[0]
    assert result.quality is None
    audio, report = _stored(tmp_path, result)
    assert report is None and np.isfinite(audio).all()


def test_after_the_last_attempt_the_best_take_is_stored_with_its_findings(
    engine: PiperOnnxEngine, takes: list[tuple[str, list[int], np.ndarray]], tmp_path: Path
) -> None:
    _, ids, _ = takes[0]
    flaky = FlakyEngine(engine, spoil=set())
    # No real take is this slow: every take fails, each by about as much.
    strict = QualityLimits(max_s_per_token=0.005, min_s_per_token=0.001)
    result = _render(flaky, tmp_path, ids, strict)
    assert flaky.calls == 3
    assert result.quality is not None and result.quality.attempts == 3
    assert [f.check for f in result.quality.findings] == ["too_slow"]
    audio, report = _stored(tmp_path, result)
    assert report is not None and report.attempts == 3 and report.findings == result.quality.findings
    assert len(audio) > RATE // 4


# --- where the findings are reported -------------------------------------------------------------


def test_findings_recorded_in_the_ledger_are_counted_by_voxfarm_status(redis_url: str) -> None:
    ledger = Ledger.from_url(redis_url)
    ledger.create_job("gate-job", total=4, reused=[], meta={"title": "Gate"})
    record = {"attempts": 3, "findings": [{"check": "too_slow", "value": 0.09, "limit": 0.07, "detail": "slow"}]}

    assert ledger.record_quality("gate-job", 2, record) == 1
    assert ledger.record_quality("gate-job", 3, record) == 2

    assert ledger.quality("gate-job") == {2: record, 3: record}
    assert "quality   2 segments kept after failing the quality gate" in describe(ledger.status("gate-job"))
    assert ledger.replace_quality("gate-job", {1: record}, clear=True) == 1
    assert ledger.quality("gate-job") == {1: record}
    assert ledger.record_quality("gate-job", 1, None) == 0
    assert "quality" not in describe(ledger.status("gate-job"))
    assert ledger.record_quality("no-such-job", 1, record) == -1
    assert not ledger.exists("no-such-job")
