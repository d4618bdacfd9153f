"""Qwen3-TTS checkpoints and voices from the command line, in the core environment.

Publishing a checkpoint, adding voices of each mode and planning a book in
one of them need no model runtime: this runs where qwen_tts, transformers
and torchaudio are not installed.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import soundfile as sf

from shared.storage import LocalStorage
from tests.conftest import CONTRACTS
from tests.support.books import write_book
from tests.support.qwen_fixture import write_planning_checkpoint

BOOK = """---
title: 灯塔
language: zh
---

# 灯塔

## 第一章

天色渐暗。安娜提着灯，慢慢走上塔顶。

## 第二章

“你看见那条船了吗？”她问。
"""


def voxfarm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_checkpoints_and_voices_are_published_listed_and_planned_without_a_model_runtime(tmp_path: Path) -> None:
    env = {"VOXFARM_STORAGE_URL": (tmp_path / "store").as_uri(), "VOXFARM_CACHE_DIR": str(tmp_path / "cache")}
    for name, mode in (("zh-custom", "custom_voice"), ("base", "voice_clone")):
        (tmp_path / name).mkdir()
        write_planning_checkpoint(tmp_path / name, mode)
        pushed = voxfarm("models", "push", str(tmp_path / name), "--name", name, env=env)
        assert pushed.returncode == 0, pushed.stderr
    reference = tmp_path / "ref.wav"
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(16000, dtype=np.float32), 16000, format="WAV")
    reference.write_bytes(buffer.getvalue())

    added = [
        voxfarm("voices", "add", "narrator", "--model", "zh-custom", "--speaker", "Vivian", env=env),
        voxfarm(
            "voices", "add", "sailor", "--model", "base", "--ref-audio", str(reference), "--ref-text", "Ahoy.", env=env
        ),
    ]
    refused = voxfarm("voices", "add", "nobody", "--model", "zh-custom", "--speaker", "nobody", env=env)
    listed = voxfarm("voices", env=env)
    models = voxfarm("models", "--json", env=env)
    plan = voxfarm("plan", str(write_book(tmp_path, BOOK, "book.md")), "--voice", "narrator", "--json", env=env)

    assert all(result.returncode == 0 for result in added), [r.stderr for r in added]
    assert json.loads(added[1].stdout)["ref_audio"].startswith("voices/refs/")
    assert refused.returncode == 2 and "has no speaker 'nobody'" in refused.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "en_US-joe-medium"
    assert lines[1].startswith("narrator\tqwen3-tts custom_voice on zh-custom")
    assert lines[2].startswith("sailor\tqwen3-tts voice_clone on base")
    assert [(m["name"], m["mode"], m["sample_rate"]) for m in json.loads(models.stdout)] == [
        ("base", "voice_clone", 24000),
        ("zh-custom", "custom_voice", 24000),
    ]
    assert plan.returncode == 0, plan.stderr
    summary = json.loads(plan.stdout)
    jsonschema.validate(summary, json.loads((CONTRACTS / "plan.schema.json").read_text()))
    assert summary["engine"] == "qwen3-tts" and summary["voice"] == "narrator"
    assert [c["segments"] for c in summary["chapters"]] == [3, 3]
    cached = {p.name for p in (tmp_path / "cache" / "models").rglob("*") if p.is_file()}
    assert "model.safetensors" not in cached and "vocab.json" in cached
    assert LocalStorage(tmp_path / "store").exists("models/zh-custom/model.safetensors")
