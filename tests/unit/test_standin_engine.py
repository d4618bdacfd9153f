"""The benchmark's stand-in engine: real speech of the estimated length at once, and usable only by the bench."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from producer.ingest import load_book
from producer.planner import PlanOptions, default_params, plan_book
from shared.buckets import BucketPolicy
from shared.engines import engine_spec
from shared.errors import BadInputError
from shared.quality import check_segment
from shared.settings import load_settings
from shared.voices import bundled_voice
from tests.support.books import write_book
from workers.devices import open_device
from workers.engines import create_engine
from workers.engines.base import EngineRequest
from workers.engines.standin import STANDIN_ENGINE, BenchStandInEngine
from workers.tuning import synthetic_request


@pytest.fixture(scope="module")
def standin() -> BenchStandInEngine:
    engine = create_engine(STANDIN_ENGINE, bundled_voice(), open_device("cpu").backend)
    assert isinstance(engine, BenchStandInEngine)
    return engine


def test_every_request_gets_speech_that_passes_the_quality_gate_at_the_estimated_length(
    standin: BenchStandInEngine,
) -> None:
    tokens = [8, 40, 160, 511, 2000]  # the last is longer than the whole reel: it wraps
    requests = [EngineRequest(f"{n:064x}", synthetic_request(n).ids) for n in tokens]

    output = standin.synthesize(requests, 512)

    assert len(output.audio) == len(requests)
    for n, audio in zip(tokens, output.audio, strict=True):
        expected = engine_spec(STANDIN_ENGINE).estimate_s(n) * standin.sample_rate
        assert abs(len(audio) - expected) <= 1
        assert audio.dtype == np.float32
        report = check_segment(audio, standin.sample_rate, tokens=n)
        assert report.passed, (n, report.summary())
    assert len(output.audio[-1]) > standin.reel_samples


def test_the_reel_is_rendered_speech_and_a_key_always_gets_the_same_clip(standin: BenchStandInEngine) -> None:
    request = EngineRequest("a" * 64, synthetic_request(200).ids)
    first, again = standin.synthesize([request], 256).audio[0], standin.synthesize([request], 256).audio[0]
    lengths = {len(standin.synthesize([EngineRequest(f"{i:064x}", request.ids)], 256).audio[0]) for i in range(8)}
    starts = {
        standin.synthesize([EngineRequest(f"{i:064x}", request.ids)], 256).audio[0][:64].tobytes() for i in range(16)
    }

    np.testing.assert_array_equal(first, again)
    assert lengths == {len(first)}
    assert len(starts) > 1, "different keys start at different sentences of the reel"
    assert float(np.abs(first).max()) > 0.1 and float(np.std(first)) > 0.01  # speech, not silence or a constant


def test_the_planner_refuses_the_stand_in_outside_the_benchmark_and_keys_it_apart(tmp_path: Path) -> None:
    voice = bundled_voice()
    book = load_book(write_book(tmp_path))
    policy = BucketPolicy.from_edges(load_settings().bucket_edges)

    with pytest.raises(BadInputError, match="voxfarm bench --engine-standin"):
        plan_book(book, PlanOptions(STANDIN_ENGINE, voice, default_params(voice), policy))
    bench = plan_book(book, PlanOptions(STANDIN_ENGINE, voice, default_params(voice), policy, bench=True))
    real = plan_book(book, PlanOptions("piper-onnx", voice, default_params(voice), policy))

    assert [s.text for s in bench.segments] == [s.text for s in real.segments]
    assert not {s.key for s in bench.segments} & {s.key for s in real.segments}


def _voxfarm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_render_with_the_stand_in_is_refused_before_anything_starts(tmp_path: Path) -> None:
    book = write_book(tmp_path)
    result = _voxfarm("render", str(book), "--engine", STANDIN_ENGINE, "-o", str(tmp_path))

    assert result.returncode == 2, result.stderr
    assert "does not speak the text" in result.stderr
    assert not list(tmp_path.glob("*.flac")) and not list(tmp_path.glob("*.m4b"))


def test_the_bench_refuses_units_a_worker_would_refuse_before_starting_anything() -> None:
    result = _voxfarm("bench", "--engine-standin", "--unit-segments", "65")

    assert result.returncode == 2, result.stderr
    assert "--unit-segments must be 1 to 64" in result.stderr
