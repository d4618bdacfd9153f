"""A cast mixing engines on the farm: Piper narration and a Qwen3-TTS character in one chapter.

Real worker processes (a piper-onnx worker for the bundled voice, a qwen3-tts worker for a tiny
random-weight checkpoint), real Redis and SeaweedFS. The character's line must be rendered by the
Qwen3-TTS worker at 24 kHz, the narration by the Piper worker at 22.05 kHz, and the chapter must come
out at the narrator's rate with every segment's length kept. On one machine, `voxfarm render` starts
a worker of each engine by itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import soundfile as sf

from shared.audio import decode_audio
from shared.keys import manifest_path, plan_path, segment_path
from shared.qwen.store import ModelStore
from shared.qwen.voices import QwenVoiceRegistry, QwenVoiceSpec
from shared.schema import JobPlan
from shared.storage import open_storage
from tests.conftest import CONTRACTS
from tests.qwen.conftest import CHECKPOINTS
from tests.qwen.test_farm import QWEN_ENV
from tests.support.books import write_book
from tests.support.durations import expected_chapter_s
from tests.support.logs import stored_keys
from tests.support.processes import FarmProcesses, wait_for_state

CHAPTER = """---
title: The Visitor
language: en
---

# The Visitor

The bell rang.

“Indeed,” said Holmes.
"""

CAST = """narrator = "en_US-joe-medium"

[characters]
Holmes = "vivian"
"""


def test_a_cast_reads_narration_with_piper_and_a_character_with_qwen3_tts(
    farm: FarmProcesses, farm_env: dict[str, str], tiny_models: Path, tmp_path: Path
) -> None:
    storage = open_storage(farm_env["VOXFARM_STORAGE_URL"], endpoint_url=farm_env["VOXFARM_S3_ENDPOINT_URL"])
    checkpoint = CHECKPOINTS["custom_voice"]
    ModelStore(storage=storage).publish(tiny_models / checkpoint, checkpoint)
    QwenVoiceRegistry(storage=storage).publish(
        "vivian", QwenVoiceSpec(model=checkpoint, mode="custom_voice", speaker="vivian")
    )
    piper = farm.worker("cpu:0", extra_env=QWEN_ENV, name="piper")
    qwen = farm.worker(
        "cpu:1", extra_args=["--engine", "qwen3-tts", "--model", checkpoint], extra_env=QWEN_ENV, name="qwen"
    )
    farm.control(extra_env=QWEN_ENV)
    book = write_book(tmp_path, CHAPTER, "visitor.md")
    cast = tmp_path / "visitor.cast.toml"
    cast.write_text(CAST)

    submitted = farm.cli(
        "submit", str(book), "--cast", str(cast), "--no-titles", "--book-format", "none", "--json", extra_env=QWEN_ENV
    )
    assert submitted.returncode == 0, submitted.stderr
    job = str(json.loads(submitted.stdout)["job"])
    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], job, {"done", "failed"}, 240) == "done"

    plan = JobPlan.model_validate_json(storage.get_bytes(plan_path(job)))
    read = [(s.text, s.voice) for s in plan.segments]
    assert read == [
        ("The bell rang.", "en_US-joe-medium"),
        ('"Indeed,"', "vivian"),
        ("said Holmes.", "en_US-joe-medium"),
    ]
    voicing = plan.voices["vivian"].conditioning
    assert plan.voices["vivian"].engine == "qwen3-tts" and voicing is not None and voicing.speaker == "vivian"
    holmes = [s.key for s in plan.segments if s.voice == "vivian"]
    assert stored_keys([qwen.log()]) == holmes, "the character's line went to the Qwen3-TTS checkpoint's worker"
    assert sorted(stored_keys([piper.log()])) == sorted(s.key for s in plan.segments if s.voice != "vivian")
    assert decode_audio(storage.get_bytes(segment_path("vivian", holmes[0])))[1] == 24000

    manifest = json.loads(storage.get_bytes(manifest_path(job)))
    jsonschema.validate(manifest, json.loads((CONTRACTS / "manifest.schema.json").read_text()))
    assert manifest["sample_rate"] == 22050 and manifest["cast"]["vivian"]["engine"] == "qwen3-tts"
    chapter = manifest["chapters"][0]
    assert [(v["voice"], v["sample_rate"]) for v in chapter["voices"]] == [
        ("en_US-joe-medium", 22050),
        ("vivian", 24000),
        ("en_US-joe-medium", 22050),
    ]
    out = tmp_path / "out"
    downloaded = farm.cli("download", job, "-o", str(out), extra_env=QWEN_ENV)
    assert downloaded.returncode == 0, downloaded.stderr
    written = sf.info(str(out / chapter["file"]))
    assert written.samplerate == 22050
    assert abs(written.frames / 22050 - expected_chapter_s(plan, storage)) <= 0.003


def test_render_on_one_machine_starts_a_worker_for_each_engine_of_the_cast(tiny_models: Path, tmp_path: Path) -> None:
    voices = tmp_path / "voices"
    voices.mkdir()
    spec = QwenVoiceSpec(model=CHECKPOINTS["custom_voice"], mode="custom_voice", speaker="vivian")
    (voices / "vivian.json").write_text(spec.model_dump_json(exclude_none=True))
    book = write_book(tmp_path, CHAPTER, "visitor.md")
    cast = tmp_path / "visitor.cast.toml"
    cast.write_text(CAST)
    env = {
        **{k: v for k, v in os.environ.items() if k != "VOXFARM_REDIS_URL"},
        **QWEN_ENV,
        "VOXFARM_STORAGE_URL": (tmp_path / "store").as_uri(),
        "VOXFARM_VOICES_DIR": str(voices),
        "VOXFARM_MODELS_DIR": str(tiny_models),
        "VOXFARM_CACHE_DIR": str(tmp_path / "cache"),
    }
    out = tmp_path / "out"
    render = ["render", str(book), "--cast", str(cast), "--no-titles", "--book-format", "none", "-o", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "producer.cli", *render],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    chapter = manifest["chapters"][0]
    assert [(v["voice"], v["sample_rate"]) for v in chapter["voices"]] == [
        ("en_US-joe-medium", 22050),
        ("vivian", 24000),
        ("en_US-joe-medium", 22050),
    ]
    assert sf.info(str(out / chapter["file"])).samplerate == manifest["sample_rate"] == 22050
