"""A book goes in and chaptered audio comes out: real Redis, real SeaweedFS, real worker processes."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import soundfile as sf

from shared.audio import decode_audio
from shared.keys import job_dir, manifest_path, plan_path, segment_path
from shared.schema import JobPlan
from shared.settings import load_settings
from shared.storage import Storage, open_storage
from tests.conftest import CONTRACTS
from tests.support.books import write_book
from tests.support.processes import FarmProcesses, wait_for_state


def _storage(env: dict[str, str]) -> Storage:
    return open_storage(env["VOXFARM_STORAGE_URL"], endpoint_url=env["VOXFARM_S3_ENDPOINT_URL"])


def _submit(farm: FarmProcesses, book: Path) -> dict[str, object]:
    result = farm.cli("submit", str(book), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_multi_chapter_book_renders_into_s3_and_resubmitting_it_enqueues_nothing(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    farm.worker("cpu:0")
    farm.worker("cpu:1")
    farm.control()
    book = write_book(tmp_path)

    first = _submit(farm, book)
    job = str(first["job"])
    assert first["reused"] == 0 and first["enqueued"] == first["total"]
    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], job, {"done", "failed"}, 240) == "done"

    storage = _storage(farm_env)
    plan = JobPlan.model_validate_json(storage.get_bytes(plan_path(job)))
    assert [c.title for c in plan.chapters] == ["The Storm", "The Ship", "The Morning"]
    for segment in plan.segments:
        samples, rate = decode_audio(storage.get_bytes(segment_path(plan.voice, segment.key)))
        assert rate == 22050 and len(samples) > rate // 4, f"segment {segment.index} is too short"

    manifest = json.loads(storage.get_bytes(manifest_path(job)))
    jsonschema.validate(manifest, json.loads((CONTRACTS / "manifest.schema.json").read_text()))
    assert [c["title"] for c in manifest["chapters"]] == ["The Storm", "The Ship", "The Morning"]
    assert [c["index"] for c in manifest["chapters"]] == [0, 1, 2]
    assert manifest["segments_total"] == plan.segments_total and manifest["segments_reused"] == 0
    assert manifest["voice"] == "en_US-joe-medium" and manifest["engine"] == "piper-onnx"

    settings = load_settings()
    for chapter_plan, chapter in zip(plan.chapters, manifest["chapters"], strict=True):
        local = tmp_path / chapter["file"]
        storage.get_file(f"{job_dir(job)}/{chapter['file']}", local)
        audio, rate = sf.read(local, dtype="float32")
        assert rate == 22050
        assert abs(len(audio) / rate - chapter["duration_s"]) < 0.01
        speech = (
            sum(len(decode_audio(storage.get_bytes(segment_path(plan.voice, s.key)))[0]) for s in chapter_plan.segments)
            / rate
        )
        pauses = (
            sum(
                settings.chapter_pause_ms
                if i == len(chapter_plan.segments) - 1
                else settings.paragraph_pause_ms
                if s.paragraph_end
                else settings.sentence_pause_ms
                for i, s in enumerate(chapter_plan.segments)
            )
            / 1000
        )
        assert abs(chapter["duration_s"] - (speech + pauses)) < 0.01
        assert np.abs(audio).max() > 0.05, "chapter audio is silent"

    again = _submit(farm, book)
    assert again["job"] == job
    assert again["enqueued"] == 0 and again["reused"] == again["total"]
    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], job, {"done", "failed"}, 120) == "done"
    status = farm.cli("status", job, "--json")
    assert json.loads(status.stdout)["segments_reused"] == plan.segments_total
