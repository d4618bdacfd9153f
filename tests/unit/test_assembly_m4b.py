"""The M4B writer and covers: chapter marks, tags and pictures as players read them (mutagen, ffmpeg)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mutagen.mp4 import MP4

from producer.audiobook import ffmetadata
from producer.audiobook.cover import prepare_cover, sniff, svg_size
from producer.audiobook.ffmetadata import ChapterMark
from producer.audiobook.ffmpeg import run_ffmpeg
from producer.audiobook.m4b import LANGUAGE_TAG, BookInfo, build_m4b, iso639_2
from producer.samples.make_sample import cover_png
from tests.conftest import CORPUS

RATE = 22050


def _chapters(tmp_path: Path, seconds: list[float]) -> list[Path]:
    files = []
    for number, length in enumerate(seconds):
        t = np.arange(int(length * RATE)) / RATE
        tone = (0.3 * np.sin(2 * np.pi * (220 + 110 * number) * t)).astype(np.float32)
        path = tmp_path / f"c{number}.flac"
        sf.write(path, tone, RATE, subtype="PCM_16")
        files.append(path)
    return files


def test_an_m4b_carries_chapter_marks_titles_tags_language_and_cover(tmp_path: Path) -> None:
    seconds = [1.5, 2.25, 1.0]
    files = _chapters(tmp_path, seconds)
    bounds = np.cumsum([0, *[round(s * RATE) for s in seconds]])
    titles = ['Part "One"; #1', "Ça va = 第二章", "The End"]
    marks = [ChapterMark(t, int(bounds[i]), int(bounds[i + 1])) for i, t in enumerate(titles)]
    cover = prepare_cover(cover_png(40, 60))[0]
    target = tmp_path / "book.m4b"

    build_m4b(
        files,
        marks,
        BookInfo("A Title", "An Author", "en-GB", "a-voice"),
        target,
        bitrate_kbps=48,
        cover=cover,
        ticks_per_s=RATE,
    )

    book = MP4(str(target))
    assert book.chapters is not None and book.info is not None
    assert book.info.length == pytest.approx(sum(seconds), abs=0.1)
    assert [c.title for c in book.chapters] == titles
    assert [c.start for c in book.chapters] == pytest.approx(list(bounds[:-1] / RATE), abs=0.01)
    tags = book.tags
    assert tags is not None
    assert tags["©nam"] == ["A Title"] and tags["©ART"] == ["An Author"] and tags["©alb"] == ["A Title"]
    assert tags["©gen"] == ["Audiobook"] and tags["stik"] == [2]
    assert bytes(tags[LANGUAGE_TAG][0]) == b"en-GB"
    assert cover is not None and bytes(tags["covr"][0]) == cover.data
    _, chapters = ffmetadata.parse(run_ffmpeg(["-i", str(target), "-f", "ffmetadata", "pipe:1"], what="t").decode())
    assert [c["title"] for c in chapters] == titles
    probe = run_ffmpeg(["-i", str(target), "-map", "0:a", "-f", "null", "-"], what="t", timeout_s=60)
    assert probe == b""


def test_iso639_codes_for_the_audio_track() -> None:
    assert iso639_2("en-GB") == "eng"
    assert iso639_2("zh_CN") == "zho"
    assert iso639_2("fra") == "fra"
    assert iso639_2(None) == "und" and iso639_2("xx") == "und"


def test_png_and_jpeg_covers_are_used_as_they_are() -> None:
    png = cover_png(30, 45)
    cover, note = prepare_cover(png)
    assert note is None and cover is not None and cover.data == png and cover.mime == "image/png"


def test_an_svg_cover_from_the_corpus_is_rasterised_to_a_jpeg_of_its_own_shape() -> None:
    with zipfile.ZipFile(CORPUS / "h-g-wells_the-time-machine.epub") as book:
        svg = book.read("epub/images/cover.svg")
    assert sniff(svg) == "svg"
    assert svg_size(svg) == (1067, 1600)
    cover, note = prepare_cover(svg)
    assert note is None and cover is not None and cover.extension == "jpg"
    assert cover.data.startswith(b"\xff\xd8\xff") and len(cover.data) > 20_000


def test_a_cover_that_is_not_a_picture_is_left_out_with_a_note() -> None:
    cover, note = prepare_cover(b"<html>not a picture</html>")
    assert cover is None and note is not None and "not embedded" in note
    broken, note = prepare_cover(b"GIF89a" + b"\0" * 20)
    assert broken is None and note is not None and "GIF" in note
