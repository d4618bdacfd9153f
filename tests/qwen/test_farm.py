"""Qwen3-TTS on the farm: real worker processes (Qwen environment), real Redis, real S3 (SeaweedFS).

Checkpoints are tiny random-weight models built at test time and published
to the model store in S3; voices are voice files in S3. The assertions are
about routing, batching, lengths, caching and reproducibility: random
weights make noise, not speech.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from shared.audio import decode_audio
from shared.keys import manifest_path, plan_path, segment_path
from shared.qwen.store import ModelStore
from shared.qwen.voices import QwenVoiceRegistry, QwenVoiceSpec, prompt_path
from shared.schema import JobPlan
from shared.storage import Storage, open_storage
from tests.conftest import CONTRACTS
from tests.qwen.conftest import CHECKPOINTS, reference_wav
from tests.support.books import write_book
from tests.support.logs import JSON_LOGS, batches, records, stored_keys
from tests.support.processes import FarmProcesses, VoxfarmProcess, wait_for_state
from tests.support.qwen_fixture import MAX_NEW_TOKENS, MIN_FRAMES

SAMPLES_PER_FRAME = 1920  # 24 kHz audio, 12.5 codec frames a second

QWEN_ENV = {
    **JSON_LOGS,
    "VOXFARM_LOG_LEVEL": "DEBUG",
    "VOXFARM_BUCKET_EDGES": "[16, 32, 64]",
    "VOXFARM_BATCH_TUNING": "off",
    "VOXFARM_MAX_BATCH_ITEMS": "4",
    "VOXFARM_MAX_WAIT_MS": "400",
    "VOXFARM_FOLD_FRACTION": "0",
}

STORY = """---
title: Harbour Lights
language: en
---

# Harbour Lights

## Evening

The lamp was lit. Anna climbed the long spiral stairs of the old tower with a heavy brass lantern in her hand.
Gulls circled. The wind rose slowly over the dark water while the fishing boats came home one by one.
Night fell. Somewhere below, a bell rang twice, and the harbour master closed the heavy iron gate for the night.

## Morning

The sea was calm. By morning every boat was back in the harbour, and the nets were hung out to dry in the sun.
"""

CHINESE_BOOK = """---
title: 灯塔
language: zh
---

# 灯塔

## 第一章 黄昏

天色渐暗。安娜提着灯，慢慢走上塔顶。海风吹过，浪花拍打着礁石。

## 第二章 对话

“你看见那条船了吗？”她问。“看见了，它正朝礁石漂去！”老人回答。

## 第三章 清晨

第二天早上，海面平静。所有的人都平安无事。
"""

SIDECAR = """
instruct = "平静的叙述，语速适中。"

[chapters]
2 = "两个人的对话，语气紧张，语速稍快。"
"""


def _storage(env: dict[str, str]) -> Storage:
    return open_storage(env["VOXFARM_STORAGE_URL"], endpoint_url=env["VOXFARM_S3_ENDPOINT_URL"])


@pytest.fixture
def store(farm_env: dict[str, str], tiny_models: Path) -> Storage:
    """This test's bucket with the three tiny checkpoints published to models/ and a voice of each mode."""
    storage = _storage(farm_env)
    models = ModelStore(storage=storage)
    for name in CHECKPOINTS.values():
        models.publish(tiny_models / name, name)
    voices = QwenVoiceRegistry(storage=storage)
    voices.publish("narrator", QwenVoiceSpec(model="tiny-custom", mode="custom_voice", speaker="vivian"))
    voices.publish(
        "keeper", QwenVoiceSpec(model="tiny-design", mode="voice_design", instruct="An old keeper, low and slow.")
    )
    clone = QwenVoiceSpec(
        model="tiny-base", mode="voice_clone", ref_audio=f"voices/refs/{'0' * 64}.wav", ref_text="Ahoy."
    )
    voices.publish("sailor", clone, reference_wav())
    return storage


def _worker(farm: FarmProcesses, model: str, name: str) -> VoxfarmProcess:
    return farm.worker("cpu:0", extra_args=["--engine", "qwen3-tts", "--model", model], extra_env=QWEN_ENV, name=name)


def _submit(farm: FarmProcesses, book: Path, voice: str, *args: str) -> str:
    result = farm.cli("submit", str(book), "--voice", voice, "--json", *args, extra_env=QWEN_ENV)
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["job"])


def _prompt_events(log: str) -> Counter[str]:
    events: Counter[str] = Counter()
    for record in records(log):
        message = str(record.get("msg", ""))
        if message.startswith("clone prompt") and "computed" in message and "loaded" not in message:
            events["computed"] += 1
        elif message.startswith("clone prompt") and "loaded" in message:
            events["loaded"] += 1
    return events


def test_all_three_modes_render_on_real_workers_in_batches_of_mixed_lengths_and_reproducibly(
    farm: FarmProcesses, farm_env: dict[str, str], store: Storage, tmp_path: Path
) -> None:
    workers = {mode: _worker(farm, name, f"qwen-{name}") for mode, name in CHECKPOINTS.items()}
    farm.control(extra_env=QWEN_ENV)
    book = write_book(tmp_path, STORY, "harbour.md")
    jobs = {voice: _submit(farm, book, voice) for voice in ("narrator", "keeper", "sailor")}
    for job in jobs.values():
        assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], job, {"done", "failed"}, 240) == "done"

    for voice, mode in zip(("narrator", "keeper", "sailor"), CHECKPOINTS, strict=True):
        plan = JobPlan.model_validate_json(store.get_bytes(plan_path(jobs[voice])))
        assert plan.engine == "qwen3-tts" and plan.model == f"qwen3-tts.{CHECKPOINTS[mode]}"
        assert plan.sample_rate == 24000 and plan.conditioning is not None and plan.conditioning.mode == mode
        lengths = {}
        for segment in plan.segments:
            samples, rate = decode_audio(store.get_bytes(segment_path(voice, segment.key)))
            frames = len(samples) / SAMPLES_PER_FRAME
            cap = min(MAX_NEW_TOKENS, max(MIN_FRAMES, len(segment.ids)))
            assert rate == 24000 and frames.is_integer() and 2 <= frames <= cap, (segment.text, frames, cap)
            lengths[segment.key[:12]] = len(segment.ids)
        manifest = json.loads(store.get_bytes(manifest_path(jobs[voice])))
        jsonschema.validate(manifest, json.loads((CONTRACTS / "manifest.schema.json").read_text()))
        assert manifest["sample_rate"] == 24000 and manifest["engine"] == "qwen3-tts" and manifest["voice"] == voice
        assert [c["title"] for c in manifest["chapters"]] == ["Evening", "Morning"]

        # Every segment was rendered by the worker of its checkpoint, in batches of one bucket and of
        # items of different lengths.
        log = workers[mode].log()
        assert {s.key for s in plan.segments} <= set(stored_keys([log]))
        formed = [b for b in batches(log) if set(b["keys"]) <= set(lengths)]
        assert any(b["size"] > 1 and len({lengths[k] for k in b["keys"]}) > 1 for b in formed), formed
        assert all(len(set(b["buckets"])) == 1 for b in formed)
    assert _prompt_events(workers["voice_clone"].log())["computed"] == 1

    # A fixed seed (the content key) gives the same audio again: delete the design job's segments, render again.
    plan = JobPlan.model_validate_json(store.get_bytes(plan_path(jobs["keeper"])))
    before = {s.key: decode_audio(store.get_bytes(segment_path("keeper", s.key)))[0] for s in plan.segments}
    for key in before:
        store.delete(segment_path("keeper", key))
    again_job = _submit(farm, book, "keeper", "--job", "keeper-again")
    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], again_job, {"done", "failed"}, 240) == "done"
    assert {s.key for s in JobPlan.model_validate_json(store.get_bytes(plan_path(again_job))).segments} == set(before)
    for key, samples in before.items():
        again = decode_audio(store.get_bytes(segment_path("keeper", key)))[0]
        assert again.shape == samples.shape and np.abs(again - samples).max() <= 2 / 32768


def test_a_clone_prompt_is_computed_once_and_reused_by_a_second_worker_process(
    farm: FarmProcesses, farm_env: dict[str, str], store: Storage, tmp_path: Path
) -> None:
    first, second = _worker(farm, "tiny-base", "clone-first"), _worker(farm, "tiny-base", "clone-second")
    farm.control(extra_env=QWEN_ENV)
    job = _submit(farm, write_book(tmp_path, STORY, "harbour.md"), "sailor")
    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], job, {"done", "failed"}, 240) == "done"
    first_keys = {s.key for s in JobPlan.model_validate_json(store.get_bytes(plan_path(job))).segments}
    events = {proc.name: _prompt_events(proc.log()) for proc in (first, second)}
    assert sum(e["computed"] for e in events.values()) == 1, events

    # The worker that computed it stops; the other renders a new book in the same voice without computing.
    computer = first if events["clone-first"]["computed"] else second
    other = second if computer is first else first
    computer.stop()
    job = _submit(farm, write_book(tmp_path, STORY.replace("Anna", "Maria"), "harbour-2.md"), "sailor")
    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], job, {"done", "failed"}, 240) == "done"

    assert _prompt_events(other.log())["computed"] == 0
    assert _prompt_events(other.log())["loaded"] >= 1
    plan = JobPlan.model_validate_json(store.get_bytes(plan_path(job)))
    assert plan.conditioning is not None and plan.conditioning.prompt is not None
    assert list(store.list("voices/prompts")) == [prompt_path(plan.conditioning.prompt)]
    new_keys = {s.key for s in plan.segments} - first_keys
    assert new_keys and new_keys <= set(stored_keys([other.log()]))


def test_a_chinese_book_renders_with_per_chapter_instructions_from_its_sidecar(
    farm: FarmProcesses, farm_env: dict[str, str], store: Storage, tmp_path: Path
) -> None:
    worker = _worker(farm, "tiny-custom", "qwen-zh")
    farm.control(extra_env=QWEN_ENV)
    book = write_book(tmp_path, CHINESE_BOOK, "lighthouse.md")
    (tmp_path / "lighthouse.voice.toml").write_text(SIDECAR, encoding="utf-8")

    job = _submit(farm, book, "narrator")
    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], job, {"done", "failed"}, 240) == "done"

    plan = JobPlan.model_validate_json(store.get_bytes(plan_path(job)))
    assert plan.language == "zh" and plan.conditioning is not None
    assert plan.conditioning.language == "chinese" and plan.conditioning.speaker == "vivian"
    instructs = [plan.conditioning_of(c).instruct for c in plan.chapters]  # type: ignore[union-attr]
    assert instructs == ["平静的叙述，语速适中。", "两个人的对话，语气紧张，语速稍快。", "平静的叙述，语速适中。"]
    texts = [s.text for s in plan.chapters[0].segments]
    assert texts == ["第一章 黄昏", "天色渐暗。", "安娜提着灯，慢慢走上塔顶。", "海风吹过，浪花拍打着礁石。"]
    keys = {s.key for s in plan.segments}
    assert len(keys) == plan.segments_total and keys <= set(stored_keys([worker.log()]))
    manifest = json.loads(store.get_bytes(manifest_path(job)))
    assert manifest["sample_rate"] == 24000 and len(manifest["chapters"]) == 3
    assert all(c["duration_s"] > 0 for c in manifest["chapters"])
