"""The farm's audio is the real voice: with the noise off, a worker's segment equals piper's own output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from piper import PiperVoice
from piper.config import SynthesisConfig

from shared.audio import decode_audio
from shared.keys import plan_path, segment_path
from shared.schema import JobPlan
from shared.storage import open_storage
from shared.voices import bundled_voice
from tests.support.books import write_book
from tests.support.processes import FarmProcesses, wait_for_state

SENTENCES = """# Parity

I told some of them afterwards, and they were doubtful.

The Time Traveller smiled round at us. Then, still smiling faintly, he walked slowly out of the room.
"""


def test_worker_output_matches_piper_for_the_same_phonemes_with_noise_off(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    farm.worker("cpu:0")
    farm.control()
    book = write_book(tmp_path, SENTENCES, "parity.md")
    result = farm.cli("submit", str(book), "--json", "--noise-scale", "0", "--noise-w", "0", "--no-titles")
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)["job"]
    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], job, {"queued", "rendering", "assembling", "done"}, 5)

    storage = open_storage(farm_env["VOXFARM_STORAGE_URL"], endpoint_url=farm_env["VOXFARM_S3_ENDPOINT_URL"])
    plan = JobPlan.model_validate_json(storage.get_bytes(plan_path(job)))
    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], job, {"done"}, 180) == "done"

    piper_voice = PiperVoice.load(bundled_voice().model_path)
    quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, length_scale=plan.params.length_scale)
    assert len(plan.segments) == 3
    for segment in plan.segments:
        ours, rate = decode_audio(storage.get_bytes(segment_path(plan.voice, segment.key)))
        reference = np.asarray(piper_voice.phoneme_ids_to_audio(segment.ids, quiet), dtype=np.float32)
        assert rate == 22050
        assert len(ours) == len(reference), f"segment {segment.index}: {len(ours)} vs {len(reference)} samples"
        correlation = float(np.corrcoef(ours, reference)[0, 1])
        assert correlation > 0.99, f"segment {segment.index}: correlation {correlation:.4f}"
