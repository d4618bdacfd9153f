"""Sentence splitting on real corpus paragraphs, abbreviations and initials, and Chinese text."""

from __future__ import annotations

from pathlib import Path

import pytest

from producer.ingest import load_book
from shared.frontend.normalize import normalize
from shared.frontend.sentences import split_characters, split_clauses, split_sentences, split_words

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def test_time_machine_dialogue_splits_where_sentences_end() -> None:
    paragraph = (
        "Filby became pensive. “Clearly,” the Time Traveller proceeded, “any real body must have extension in "
        "four directions: it must have Length, Breadth, Thickness, and⁠—Duration. But through a natural infirmity "
        "of the flesh, which I will explain to you in a moment, we incline to overlook this fact.”"
    )
    assert split_sentences(paragraph) == [
        "Filby became pensive.",
        "“Clearly,” the Time Traveller proceeded, “any real body must have extension in four directions: it must "
        "have Length, Breadth, Thickness, and⁠—Duration.",
        "But through a natural infirmity of the flesh, which I will explain to you in a moment, we incline to "
        "overlook this fact.”",
    ]


@pytest.mark.parametrize(
    "sentence",
    [
        "“Is not that rather a large thing to expect us to begin upon?” said Filby, an argumentative person.",
        "I had called upon my friend, Mr. Sherlock Holmes, one day in the autumn of last year.",
        "To Mrs. Saville, England, from St. Petersburgh, Dec. 11th, 17⁠—.",
        "“Peace, peace! learn my miseries, and do not seek to increase your own.”",
        "T. S. Eliot met H. G. Wells and Dr. Watson at No. 7 on the U.S.A. tour.",
        "We met Prof. Moriarty, i.e. the Napoleon of crime, e.g. at the club.",
    ],
)
def test_abbreviations_initials_and_lowercase_continuations_do_not_split(sentence: str) -> None:
    assert split_sentences(sentence) == [sentence]
    assert len(split_sentences(normalize(sentence))) == 1


@pytest.mark.parametrize(
    ("paragraph", "count"),
    [
        ("“Indeed! My mistress told me that you were likely to call. She left this morning.”", 3),
        ("Come at once. F. H. M.’ Now my theory all along has been that.", 3),
        ("They took apples, pears, etc. Then we left.", 2),
        ("It was late... Nobody came. Why? Because!", 4),
        ("He was 5. 10 men came.", 2),
    ],
)
def test_sentences_end_at_terminal_punctuation_before_a_new_sentence(paragraph: str, count: int) -> None:
    assert len(split_sentences(paragraph)) == count


def test_every_character_of_a_real_chapter_survives_splitting() -> None:
    chapter = load_book(CORPUS / "h-g-wells_the-time-machine.epub", chapters="1").chapters[0]
    for paragraph in chapter.paragraphs:
        sentences = split_sentences(paragraph)
        assert " ".join(sentences) == paragraph
    first = split_sentences(chapter.paragraphs[0])
    assert (
        first[0]
        == "The Time Traveller (for so it will be convenient to speak of him) was expounding a recondite matter to us."
    )
    assert len(first) == 5


def test_chinese_splits_at_full_stops_exclamations_questions_semicolons_and_ellipses() -> None:
    text = "他说：“我们走吧。”今天天气很好！你呢？我……不知道；也许吧"
    assert split_sentences(text) == ["他说：“我们走吧。”", "今天天气很好！", "你呢？", "我……", "不知道；", "也许吧"]
    assert split_sentences(normalize("第3章 你好,世界!真的?")) == ["第三章 你好，世界！", "真的？"]


def test_clauses_words_and_characters_for_over_long_sentences() -> None:
    assert split_clauses("One, two; three: four") == ["One, ", "two; ", "three: ", "four"]
    assert split_clauses("春天来了，花开了、鸟叫了；我们走吧") == ["春天来了，", "花开了、", "鸟叫了；", "我们走吧"]
    assert split_clauses("keep [[ a, b ]] whole, then") == ["keep [[ a, b ]] whole, ", "then"]
    assert split_words("a [[ wˈiː nə ]]'s word") == ["a ", "[[ wˈiː nə ]]'s ", "word"]
    assert split_characters("abcdefg", 3) == ["abc", "def", "g"]
    assert split_characters("ab[[ x y ]]cd", 2) == ["ab", "[[ x y ]]", "cd"]
