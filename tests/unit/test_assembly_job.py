"""assemble_job over file storage: formats, pauses, subtitles, findings and repeatability, without a farm."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Literal

import jsonschema
import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from producer.assemble import Pauses, assemble_job
from producer.ingest import load_book
from producer.planner import PlanOptions, default_params, plan_book
from shared.audio import decode_audio, encode_flac
from shared.buckets import BucketPolicy
from shared.errors import NotFoundError
from shared.keys import job_dir, plan_path, segment_path
from shared.quality import Finding, QualityReport, encode_checked_flac
from shared.schema import AssemblyOptions, JobPlan
from shared.storage import LocalStorage, open_storage
from shared.voices import bundled_voice
from tests.conftest import CONTRACTS
from tests.support.books import KEEPERS_EDITION_ONE, write_book
from workers.engines.base import EngineRequest
from workers.engines.piper_onnx import PiperOnnxEngine

RATE = 22050


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, JobPlan]:
    """A three-chapter book whose segments are all in file storage, synthesised once for the module."""
    root = tmp_path_factory.mktemp("rendered")
    voice = bundled_voice()
    options = PlanOptions("piper-onnx", voice, default_params(voice), BucketPolicy.from_edges([32, 64, 128, 256, 512]))
    plan = plan_book(load_book(write_book(root, KEEPERS_EDITION_ONE, "keepers.md")), options)
    storage = open_storage((root / "store").as_uri())
    engine = PiperOnnxEngine(voice)
    for segment in plan.segments:
        audio = engine.synthesize([EngineRequest(segment.key, segment.ids, plan.params)], segment.bucket).audio[0]
        storage.put_bytes(segment_path(plan.voice, segment.key), encode_flac(audio, RATE))
    engine.close()
    return root / "store", plan


def _storage_with(rendered: tuple[Path, JobPlan], tmp_path: Path, options: AssemblyOptions | None) -> LocalStorage:
    store, plan = rendered
    shutil.copytree(store, tmp_path / "store")
    storage = open_storage((tmp_path / "store").as_uri())
    assert isinstance(storage, LocalStorage)
    chosen = plan.model_copy(update={"assembly": options})
    storage.put_bytes(plan_path(plan.job), chosen.model_dump_json().encode())
    return storage


def _local(storage: LocalStorage, job: str, name: str, tmp_path: Path) -> Path:
    target = tmp_path / "out" / name
    storage.get_file(f"{job_dir(job)}/{name}", target)
    return target


def test_wav_chapters_with_pauses_a_lead_in_and_both_subtitle_formats(
    rendered: tuple[Path, JobPlan], tmp_path: Path
) -> None:
    _, plan = rendered
    options = AssemblyOptions(
        chapter_format="wav",
        book_format="none",
        subtitles="both",
        chapter_lead_ms=500,
        sentence_pause_ms=300,
        paragraph_pause_ms=700,
        chapter_pause_ms=2000,
    )
    storage = _storage_with(rendered, tmp_path, options)

    manifest = assemble_job(storage, plan.job, pauses=Pauses())

    jsonschema.validate(
        json.loads(manifest.model_dump_json()), json.loads((CONTRACTS / "manifest.schema.json").read_text())
    )
    assert manifest.files == {} and manifest.segments_flagged == 0
    offset = 0.0
    for chapter_plan, chapter in zip(plan.chapters, manifest.chapters, strict=True):
        assert chapter.file.endswith(".wav") and set(chapter.subtitles) == {"srt", "vtt"}
        audio, rate = sf.read(_local(storage, plan.job, chapter.file, tmp_path), dtype="float32")
        assert rate == RATE and sf.info(str(tmp_path / "out" / chapter.file)).format == "WAV"
        speech = sum(
            len(decode_audio(storage.get_bytes(segment_path(plan.voice, s.key)))[0]) for s in chapter_plan.segments
        )
        pauses = 0.5 + sum(
            2.0 if i == len(chapter_plan.segments) - 1 else 0.7 if s.paragraph_end else 0.3
            for i, s in enumerate(chapter_plan.segments)
        )
        assert len(audio) / RATE == pytest.approx(speech / RATE + pauses, abs=0.002)
        assert chapter.duration_s == pytest.approx(len(audio) / RATE, abs=0.001)
        assert chapter.start_s == pytest.approx(offset, abs=0.001)
        offset += len(audio) / RATE
        assert not np.any(audio[: RATE // 2]), "the lead-in is silent"
        assert pyloudnorm.Meter(RATE).integrated_loudness(audio.astype(np.float64)) == pytest.approx(-18, abs=0.2)
        srt = _local(storage, plan.job, chapter.subtitles["srt"], tmp_path).read_text()
        vtt = _local(storage, plan.job, chapter.subtitles["vtt"], tmp_path).read_text()
        assert srt.startswith("1\n00:00:00,5") and chapter_plan.segments[0].text in srt
        assert vtt.startswith("WEBVTT\n\n00:00:00.5")
        assert srt.count(" --> ") == vtt.count(" --> ") >= len(chapter_plan.segments)


@pytest.mark.parametrize(("fmt", "codec"), [("mp3", "MP3"), ("opus", "OGG")])
def test_lossy_chapter_files_decode_at_the_chapter_length(
    rendered: tuple[Path, JobPlan], tmp_path: Path, fmt: Literal["mp3", "opus"], codec: str
) -> None:
    _, plan = rendered
    storage = _storage_with(rendered, tmp_path, AssemblyOptions(chapter_format=fmt, book_format="none"))
    manifest = assemble_job(storage, plan.job, pauses=Pauses())
    for chapter in manifest.chapters:
        local = _local(storage, plan.job, chapter.file, tmp_path)
        assert local.suffix == f".{fmt}" and sf.info(str(local)).format == codec
        assert sf.info(str(local)).duration == pytest.approx(chapter.duration_s, abs=0.1)


def test_assembling_twice_writes_the_same_chapter_bytes(rendered: tuple[Path, JobPlan], tmp_path: Path) -> None:
    _, plan = rendered
    storage = _storage_with(rendered, tmp_path, AssemblyOptions(book_format="none"))
    first = assemble_job(storage, plan.job, pauses=Pauses())
    before = {c.file: storage.get_bytes(f"{job_dir(plan.job)}/{c.file}") for c in first.chapters}
    second = assemble_job(storage, plan.job, pauses=Pauses())
    assert {c.file: storage.get_bytes(f"{job_dir(plan.job)}/{c.file}") for c in second.chapters} == before


def test_a_segment_kept_after_failing_the_gate_is_reported_in_its_chapter(
    rendered: tuple[Path, JobPlan], tmp_path: Path
) -> None:
    _, plan = rendered
    storage = _storage_with(rendered, tmp_path, AssemblyOptions(book_format="none"))
    flagged = plan.chapters[1].segments[1]
    audio, _ = decode_audio(storage.get_bytes(segment_path(plan.voice, flagged.key)))
    finding = Finding("too_slow", 0.09, 0.07, "90.0 ms of speech per token, over 70 ms")
    storage.put_bytes(
        segment_path(plan.voice, flagged.key), encode_checked_flac(audio, RATE, QualityReport((finding,), attempts=3))
    )

    manifest = assemble_job(storage, plan.job, pauses=Pauses())

    assert manifest.segments_flagged == 1
    assert manifest.chapters[0].quality == [] and manifest.chapters[2].quality == []
    assert manifest.chapters[1].quality == [
        {"segment": flagged.index, "key": flagged.key, "attempts": 3, "findings": [finding.as_dict()]}
    ]


def test_the_plans_own_options_win_over_the_control_services(rendered: tuple[Path, JobPlan], tmp_path: Path) -> None:
    _, plan = rendered
    storage = _storage_with(rendered, tmp_path, AssemblyOptions(chapter_format="wav", book_format="none"))
    manifest = assemble_job(storage, plan.job, pauses=Pauses(), options=AssemblyOptions(chapter_format="mp3"))
    assert all(c.file.endswith(".wav") for c in manifest.chapters) and "m4b" not in manifest.files


def test_a_missing_segment_names_the_command_that_repairs_it(rendered: tuple[Path, JobPlan], tmp_path: Path) -> None:
    _, plan = rendered
    storage = _storage_with(rendered, tmp_path, None)
    storage.delete(segment_path(plan.voice, plan.chapters[2].segments[0].key))
    with pytest.raises(NotFoundError, match=f"voxfarm resume {plan.job}"):
        assemble_job(storage, plan.job, pauses=Pauses())
