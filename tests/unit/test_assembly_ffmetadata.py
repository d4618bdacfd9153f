"""Chapter titles from books may hold anything: the ffmetadata file escapes them, and ffmpeg reads them back intact."""

from __future__ import annotations

from pathlib import Path

import pytest

from producer.audiobook import ffmetadata
from producer.audiobook.ffmetadata import ChapterMark
from producer.audiobook.ffmpeg import run_ffmpeg

HOSTILE = [
    'Part "One"',
    "Key=value; and more",
    "#1 not a comment",
    "back\\slash at the end\\",
    "line one\nline two\r\n\tindented",
    "Ça va, 第十二章 — «Ἀρχή» 🎧",
    "[CHAPTER]",
    ";FFMETADATA1",
    "zero\u200bwidth and \x07bell",
]


def test_special_characters_are_escaped_and_whitespace_runs_become_one_space() -> None:
    text = ffmetadata.document({"title": "A=B;C#D\\E"}, [ChapterMark("x\ny = z", 0, 10)])
    lines = text.splitlines()
    assert lines[0] == ";FFMETADATA1"
    assert lines[1] == "title=A\\=B\\;C\\#D\\\\E"
    assert lines[-1] == "title=x y \\= z"
    assert "TIMEBASE=1/1000" in lines and "START=0" in lines and "END=10" in lines


def test_hostile_titles_survive_a_round_trip_through_our_own_parser() -> None:
    marks = [ChapterMark(title, i * 1000, (i + 1) * 1000) for i, title in enumerate(HOSTILE)]
    tags, chapters = ffmetadata.parse(ffmetadata.document({"title": HOSTILE[1], "artist": None}, marks))
    assert tags == {"title": ffmetadata.clean_value(HOSTILE[1])}
    assert [c["title"] for c in chapters] == [ffmetadata.clean_value(t) for t in HOSTILE]
    assert [int(c["START"]) for c in chapters] == [i * 1000 for i in range(len(HOSTILE))]


def test_hostile_titles_survive_ffmpeg_reading_and_rewriting_them(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    marks = [ChapterMark(title, i * 22050, (i + 1) * 22050) for i, title in enumerate(HOSTILE)]
    source.write_text(ffmetadata.document({"title": HOSTILE[0]}, marks, ticks_per_s=22050), encoding="utf-8")
    audio = tmp_path / "book.m4a"
    run_ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            f"anullsrc=r=22050:cl=mono:d={len(HOSTILE)}",
            "-i",
            str(source),
            "-map",
            "0:a",
            "-map_metadata",
            "1",
            "-map_chapters",
            "1",
            "-c:a",
            "aac",
            "-f",
            "mp4",
            str(audio),
        ],
        what="test",
    )
    read_back = run_ffmpeg(["-i", str(audio), "-f", "ffmetadata", "pipe:1"], what="test").decode("utf-8")
    tags, chapters = ffmetadata.parse(read_back)
    assert tags["title"] == HOSTILE[0]
    assert [c["title"] for c in chapters] == [ffmetadata.clean_value(t) for t in HOSTILE]
    starts = [int(c["START"]) / int(c["TIMEBASE"].split("/")[1]) for c in chapters]
    assert starts == pytest.approx(list(range(len(HOSTILE))), abs=0.001)


def test_control_and_invisible_characters_are_dropped_but_unicode_is_kept() -> None:
    assert ffmetadata.clean_value("zero\u200bwidth and \x07bell") == "zerowidth and bell"
    assert ffmetadata.clean_value("a trailing backslash\\") == "a trailing backslash"
    assert ffmetadata.clean_value("Ça va, 第十二章 🎧") == "Ça va, 第十二章 🎧"


def test_a_chapter_ending_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        ffmetadata.document({}, [ChapterMark("x", 10, 5)])


def test_an_unusual_tag_name_is_refused_rather_than_written() -> None:
    with pytest.raises(ValueError, match="unusual metadata key"):
        ffmetadata.document({"title=x\n[CHAPTER]": "y"})
