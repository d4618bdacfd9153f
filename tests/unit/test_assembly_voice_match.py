"""Loudness between voices: each voice of a chapter is brought to the narrator's loudness before levelling."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from producer.audiobook.loudness import integrated_loudness
from producer.audiobook.voice_match import MAX_MATCH_DB, VoiceMatcher

RATE = 22050


def tone(seconds: float, amplitude: float, frequency: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def chapter(tmp_path: Path, pieces: list[tuple[str, np.ndarray]]) -> tuple[Path, VoiceMatcher]:
    matcher = VoiceMatcher(RATE, "narrator")
    raw = tmp_path / "chapter.f32"
    written = 0
    with raw.open("wb") as out:
        for voice, samples in pieces:
            matcher.add(voice, samples, written)
            out.write(samples.tobytes())
            written += len(samples)
    return raw, matcher


def test_a_quiet_character_is_raised_to_the_narrators_loudness(tmp_path: Path):
    narrator, whisper = tone(3, 0.3, 220), tone(2, 0.1, 330)
    raw, matcher = chapter(tmp_path, [("narrator", narrator), ("whisperer", whisper), ("narrator", narrator)])

    gains = matcher.gains_db()
    matcher.apply(raw, gains)

    samples = np.fromfile(raw, dtype=np.float32)
    assert set(gains) == {"whisperer"} and gains["whisperer"] > 8
    matched = integrated_loudness(samples[len(narrator) : len(narrator) + len(whisper)], RATE)
    assert abs(matched - integrated_loudness(narrator, RATE)) < 0.5
    assert np.array_equal(samples[: len(narrator)], narrator), "the narrator is the reference, left alone"


def test_one_voice_is_left_as_it_is_and_a_near_silent_voice_is_not_blown_up(tmp_path: Path):
    _, alone = chapter(tmp_path, [("narrator", tone(2, 0.3, 220))])
    assert alone.gains_db() == {}
    _, faint = chapter(tmp_path, [("narrator", tone(2, 0.3, 220)), ("ghost", tone(2, 0.0005, 220))])
    assert faint.gains_db() == {"ghost": MAX_MATCH_DB}
