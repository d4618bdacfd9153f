"""Casting through the whole farm: a chapter read by three voices on real workers, Redis and SeaweedFS.

Two voices are presets of the bundled model (different speaking rates), the third a speaker of a small
multi-speaker Piper model built by the test (random weights) that declares 16 kHz audio, so the chapter
mixes sample rates. The manifest must show every quotation read by its character's voice and all
narration by the narrator's, the chapter must come out at the narrator's rate with every segment's
length kept, and re-casting one character must re-render exactly that character's lines.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import redis
import soundfile as sf

from shared.keys import plan_path
from shared.schema import JobPlan
from shared.storage import Storage, open_storage
from tests.integration.test_pool import http_text
from tests.support.books import write_book
from tests.support.durations import expected_chapter_s
from tests.support.processes import FarmProcesses, wait_for_state
from tests.support.services import free_port_pair
from tests.support.tiny_voice import build_tiny_voice

NARRATOR_RATE = 22050
TRIO_RATE = 16000

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"

CHAPTER = """---
title: The Visitor
language: en
---

# A Visitor at Baker Street

The bell rang twice, and a tall man was shown into the sitting room.

“Good evening,” he said.

“You have been in Afghanistan, I perceive,” said Holmes.

“How on earth did you know that?” Watson asked.

Holmes smiled. “It is my business to know what other people do not know.”

“Is he always like this?” the tall man whispered to nobody in particular.

Nobody answered him. The fire crackled in the grate.

“你好，朋友。”
"""

CAST = """narrator = "joe-narrator"
dialogue = "joe-quick"

[characters]
Holmes = "{holmes}"
Watson = "joe-quick"
"""


def _add_voices(farm: FarmProcesses, tmp_path: Path) -> None:
    model = build_tiny_voice(tmp_path, sample_rate=TRIO_RATE)
    for args in (
        ["joe-narrator", "--piper", "en_US-joe-medium", "--noise-scale", "0", "--noise-w", "0"],
        ["joe-quick", "--piper", "en_US-joe-medium", "--length-scale", "0.8", "--noise-scale", "0", "--noise-w", "0"],
        ["trio-ben", "--piper", str(model), "--speaker", "ben"],
        ["trio-cy", "--piper", str(model), "--speaker", "cy"],
    ):
        added = farm.cli("voices", "add", *args)
        assert added.returncode == 0, added.stderr


def _submit(farm: FarmProcesses, env: dict[str, str], book: Path, cast: Path) -> dict[str, object]:
    submitted = farm.cli(
        "submit", str(book), "--cast", str(cast), "--job", "visitor", "--json", "--book-format", "none"
    )
    assert submitted.returncode == 0, submitted.stderr
    result: dict[str, object] = json.loads(submitted.stdout)
    assert wait_for_state(env["VOXFARM_REDIS_URL"], "visitor", {"done", "failed"}, 240) == "done"
    return result


def _manifest(farm: FarmProcesses, out: Path) -> dict[str, object]:
    downloaded = farm.cli("download", "visitor", "-o", str(out))
    assert downloaded.returncode == 0, downloaded.stderr
    manifest: dict[str, object] = json.loads((out / "manifest.json").read_text())
    jsonschema.validate(manifest, json.loads((CONTRACTS / "manifest.schema.json").read_text()))
    return manifest


def _storage(env: dict[str, str]) -> Storage:
    return open_storage(env["VOXFARM_STORAGE_URL"], endpoint_url=env["VOXFARM_S3_ENDPOINT_URL"])


def _plan(env: dict[str, str]) -> JobPlan:
    return JobPlan.model_validate_json(_storage(env).get_bytes(plan_path("visitor")))


def test_a_chapter_read_by_three_voices_and_recast_re_renders_only_that_characters_lines(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    _add_voices(farm, tmp_path)
    listed = farm.cli("voices", "--json")
    assert {"joe-narrator", "joe-quick", "trio-ben", "trio-cy"} <= {row["id"] for row in json.loads(listed.stdout)}
    # A worker per model: presets of the bundled model share one, the multi-speaker model has its own.
    port = free_port_pair()
    farm.worker("cpu:0", extra_args=["--voice", "joe-narrator", "--metrics-port", str(port)])
    farm.worker("cpu:1", extra_args=["--voice", "tiny-trio"])
    metrics = http_text(f"http://127.0.0.1:{port}/metrics")
    assert 'voice="en_US-joe-medium"' in metrics
    assert 'voice="joe-narrator"' not in metrics, "a worker started with a preset labels its series with the model"
    farm.control()
    book = write_book(tmp_path, CHAPTER, "visitor.md")
    cast = tmp_path / "cast.toml"
    cast.write_text(CAST.format(holmes="trio-ben"))

    first = _submit(farm, farm_env, book, cast)
    manifest = _manifest(farm, tmp_path / "first")
    chapter = manifest["chapters"][0]  # type: ignore[index]
    voices = chapter["voices"]
    expected = {"Holmes": "trio-ben", "Watson": "joe-quick"}
    for entry in voices:
        if entry["kind"] == "narration":
            assert entry["voice"] == "joe-narrator", entry
        else:
            assert entry["voice"] == expected.get(entry["speaker"], "joe-quick"), entry
    spoken = {(e["kind"], e["speaker"], e["voice"]) for e in voices}
    assert spoken == {
        ("narration", None, "joe-narrator"),
        ("quote", "Holmes", "trio-ben"),
        ("quote", "Watson", "joe-quick"),
        ("quote", "the tall man", "joe-quick"),
        ("quote", None, "joe-quick"),
    }
    assert sum(1 for e in voices if e["speaker"] == "Holmes") == 2
    assert set(manifest["cast"]) == {"joe-narrator", "joe-quick", "trio-ben"}  # type: ignore[arg-type]
    assert manifest["cast"]["trio-ben"]["params"]["speaker"] == 1  # type: ignore[index]
    assert "trio-ben" in chapter["voice_gains_db"], "the random-weight voice is matched to the narrator"
    assert first["enqueued"] == len(voices)
    assert [e["language"] for e in voices][-1] == "zh"

    # Mixed rates: the 16 kHz voice's lines are resampled into the narrator's 22.05 kHz chapter, lengths kept.
    assert manifest["sample_rate"] == NARRATOR_RATE
    assert {e["voice"]: e["sample_rate"] for e in voices} == {
        "joe-narrator": NARRATOR_RATE,
        "joe-quick": NARRATOR_RATE,
        "trio-ben": TRIO_RATE,
    }
    written = sf.info(str(tmp_path / "first" / chapter["file"]))
    assert written.samplerate == NARRATOR_RATE
    expected = expected_chapter_s(_plan(farm_env), _storage(farm_env))
    assert abs(written.frames / NARRATOR_RATE - expected) <= 0.001 * len(voices), (written.frames, expected)
    assert abs(chapter["duration_s"] - expected) <= 0.001 * len(voices)
    assert any("'zh'" in note and "joe-quick" in note and "qwen3-tts" in note for note in manifest["notes"]), (  # type: ignore[attr-defined]
        "a passage no voice of the cast speaks is reported in the manifest, with the options"
    )

    before = _plan(farm_env)
    cast.write_text(CAST.format(holmes="trio-cy"))
    second = _submit(farm, farm_env, book, cast)
    after = _plan(farm_env)
    changed = [s.index for s in after.segments if s.key not in {b.key for b in before.segments}]
    assert changed == [s.index for s in after.segments if s.speaker == "Holmes"]
    assert second["enqueued"] == 2 and second["reused"] == len(voices) - 2
    recast = _manifest(farm, tmp_path / "second")["chapters"][0]["voices"]  # type: ignore[index]
    assert [e["voice"] for e in recast if e["speaker"] == "Holmes"] == ["trio-cy", "trio-cy"]
    assert [e for e in recast if e["speaker"] != "Holmes"] == [e for e in voices if e["speaker"] != "Holmes"]


def test_a_cast_naming_an_unknown_voice_or_a_missing_model_is_refused_before_anything_is_queued(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    book = write_book(tmp_path, CHAPTER, "visitor.md")
    cast = tmp_path / "cast.toml"
    cast.write_text('narrator = "en_US-joe-medium"\n[characters]\nHolmes = "no-such-voice"\n')
    refused = farm.cli("submit", str(book), "--cast", str(cast))
    assert refused.returncode == 2
    assert "no-such-voice" in refused.stderr and "Holmes" in refused.stderr
    assert "Traceback" not in refused.stderr

    storage = _storage(farm_env)
    storage.put_bytes("voices/orphan.json", json.dumps({"engine": "piper", "model": "gone-model"}).encode())
    cast.write_text('narrator = "orphan"\n')
    missing = farm.cli("render", str(book), "--cast", str(cast), "-o", str(tmp_path / "out"))
    assert missing.returncode == 2
    assert "orphan" in missing.stderr and "gone-model" in missing.stderr
    client = redis.Redis.from_url(farm_env["VOXFARM_REDIS_URL"])
    queued = [key for key in client.scan_iter("voxfarm*") if not key.startswith(b"voxfarm:test:")]
    assert queued == [], "nothing was queued or recorded"
    assert list(storage.list("jobs")) == []


def test_cast_lists_characters_and_writes_a_cast_file_that_renders(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    book = write_book(tmp_path, CHAPTER, "visitor.md")
    target = tmp_path / "visitor.cast.toml"
    listed = farm.cli("cast", str(book), "--json", "-o", str(target))
    assert listed.returncode == 0, listed.stderr
    document = json.loads(listed.stdout)
    jsonschema.validate(document, json.loads((CONTRACTS / "cast.schema.json").read_text()))
    names = [(c["name"], c["lines"]) for c in document["characters"]]
    assert names == [("Holmes", 2), ("Watson", 1), ("the tall man", 1)]
    assert document["characters"][0]["sample"] == "“You have been in Afghanistan, I perceive,”"
    assert document["quotations"] == 6 and document["unattributed"] == 2
    assert document["cast_file"] == str(target)
    planned = farm.cli("plan", str(book), "--cast", str(target), "--json")
    assert planned.returncode == 0, planned.stderr
    summary = json.loads(planned.stdout)
    jsonschema.validate(summary, json.loads((CONTRACTS / "plan.schema.json").read_text()))
    assert summary["voices"] == {"en_US-joe-medium": summary["segments_total"]}
    assert len(summary["notes"]) == 1 and "'zh'" in summary["notes"][0]
    text = farm.cli("plan", str(book))
    assert "note: " in text.stdout and "voxfarm voices add" in text.stdout and "qwen3-tts" in text.stdout
    again = farm.cli("cast", str(book), "-o", str(target))
    assert again.returncode == 2 and "--force" in again.stderr
