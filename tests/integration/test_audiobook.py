"""A book goes through the farm and comes out as an audiobook: M4B with chapter marks, cover, tags and loudness.

Real Redis, real SeaweedFS, real `voxfarm worker` and `voxfarm control` processes; the M4B is read back
the way players read it (mutagen, and ffmpeg's own metadata reader).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import imageio_ffmpeg
import jsonschema
import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from mutagen.mp4 import MP4
from scipy.signal import resample_poly

from producer.audiobook import ffmetadata
from producer.samples.make_sample import cover_png
from tests.conftest import CONTRACTS
from tests.support.books import write_epub
from tests.support.processes import FarmProcesses, wait_for_state

TARGET_LUFS = -18.0
CHAPTERS = [
    ('Part "One"; #1 = the start', ["The lamp was lit at dusk. The keeper climbed the stairs."]),
    ("Night & Storm", ["Rain beat against the glass. The wind howled all night long."]),
    ("Dawn", ["The sea was calm at first light."]),
]


def _decode(path: Path, rate: int) -> np.ndarray:
    """Decode any audio file to mono float samples with ffmpeg (as a player would)."""
    raw = subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-v",
            "error",
            "-i",
            str(path),
            "-map",
            "0:a",
            "-ac",
            "1",
            "-ar",
            str(rate),
            "-f",
            "f32le",
            "pipe:1",
        ],
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(raw, dtype=np.float32)


def _lufs(samples: np.ndarray, rate: int) -> float:
    return float(pyloudnorm.Meter(rate).integrated_loudness(samples.astype(np.float64)))


def test_a_book_renders_into_an_m4b_with_chapter_marks_cover_tags_subtitles_and_target_loudness(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    farm.worker("cpu:0")
    farm.control()
    cover = cover_png(120, 180)
    book = write_epub(
        tmp_path / "keepers.epub",
        title="The Lamp & the Sea",
        author="Ann Author",
        language="en-GB",
        chapters=CHAPTERS,
        cover=cover,
    )

    submitted = farm.cli("submit", str(book), "--json", "--subtitles", "srt")
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)["job"]
    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], job, {"done", "failed"}, 120) == "done"
    out = tmp_path / "out"
    downloaded = farm.cli("download", job, "-o", str(out))
    assert downloaded.returncode == 0, downloaded.stderr

    manifest = json.loads((out / "manifest.json").read_text())
    jsonschema.validate(manifest, json.loads((CONTRACTS / "manifest.schema.json").read_text()))
    rate = manifest["sample_rate"]
    titles = [title for title, _ in CHAPTERS]
    assert [c["title"] for c in manifest["chapters"]] == titles
    assert manifest["notes"] == [] and manifest["segments_flagged"] == 0
    m4b = out / manifest["files"]["m4b"]
    assert m4b.suffix == ".m4b" and (out / manifest["files"]["cover"]).read_bytes() == cover

    # Chapter marks: one per chapter, the real titles, each within 50 ms of the manifest's chapter start.
    audiobook = MP4(str(m4b))
    assert audiobook.chapters is not None and audiobook.info is not None
    starts = [c["start_s"] for c in manifest["chapters"]]
    assert [c.title for c in audiobook.chapters] == titles
    assert [c.start for c in audiobook.chapters] == pytest.approx(starts, abs=0.05)
    assert audiobook.info.length == pytest.approx(manifest["duration_s"], abs=0.1)
    probed = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(m4b), "-f", "ffmetadata", "-"], check=True, capture_output=True
    )
    tags, marks = ffmetadata.parse(probed.stdout.decode())
    assert [m["title"] for m in marks] == titles
    assert [int(m["START"]) / int(m["TIMEBASE"].split("/")[1]) for m in marks] == pytest.approx(starts, abs=0.05)
    assert "(eng)" in probed.stderr.decode(), "the audio track carries the book's language"

    # Cover and tags.
    assert audiobook.tags is not None
    assert bytes(audiobook.tags["covr"][0]) == cover
    assert audiobook.tags["©nam"] == ["The Lamp & the Sea"] and audiobook.tags["©ART"] == ["Ann Author"]
    assert audiobook.tags["©alb"] == ["The Lamp & the Sea"] and audiobook.tags["stik"] == [2]
    assert bytes(audiobook.tags["----:com.apple.iTunes:LANGUAGE"][0]) == b"en-GB"
    assert tags["title"] == "The Lamp & the Sea" and tags["artist"] == "Ann Author"

    # Loudness: every chapter file, and every chapter of the M4B as decoded, within 0.5 LU of the target;
    # true peaks of the chapter files under the -1 dBTP ceiling.
    book_audio = _decode(m4b, rate)
    bounds = [round(s * rate) for s in starts] + [len(book_audio)]
    for number, chapter in enumerate(manifest["chapters"]):
        samples, file_rate = sf.read(out / chapter["file"], dtype="float32")
        assert file_rate == rate and len(samples) / rate == pytest.approx(chapter["duration_s"], abs=0.01)
        assert _lufs(samples, rate) == pytest.approx(TARGET_LUFS, abs=0.5)
        assert chapter["loudness_lufs"] == pytest.approx(TARGET_LUFS, abs=0.5)
        assert 20 * np.log10(np.abs(resample_poly(samples.astype(np.float64), 4, 1)).max()) <= -1.0 + 0.01
        in_book = book_audio[bounds[number] : bounds[number + 1]]
        assert _lufs(in_book, rate) == pytest.approx(TARGET_LUFS, abs=0.5)
        subtitles = (out / chapter["subtitles"]["srt"]).read_text()
        assert subtitles.startswith("1\n00:00:00,") and " --> " in subtitles

    status = farm.cli("status", job)
    assert status.returncode == 0 and "0 reused" in status.stdout


def test_render_to_a_folder_can_choose_opus_chapters_and_no_book_file(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    farm.worker("cpu:0")
    farm.control()
    book = write_epub(
        tmp_path / "short.epub",
        title="Short",
        author="B",
        language="en",
        chapters=[("One", ["A short line."]), ("Two", ["Another short line."])],
    )

    rendered = farm.cli(
        "render",
        str(book),
        "-o",
        str(tmp_path / "out"),
        "--chapter-format",
        "opus",
        "--book-format",
        "none",
        "--loudness",
        "-20",
    )

    assert rendered.returncode == 0, rendered.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["files"] == {} and manifest["loudness_target_lufs"] == -20
    for chapter in manifest["chapters"]:
        path = tmp_path / "out" / chapter["file"]
        assert path.suffix == ".opus" and sf.info(str(path)).format == "OGG"
        assert _lufs(_decode(path, 24000), 24000) == pytest.approx(-20, abs=0.5)
