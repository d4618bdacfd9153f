"""Narration and quotation spans, and who speaks each quotation, on passages of the corpus books.

The English passages are read from the EPUBs in tests/corpus (as ingestion gives them); the Chinese
ones are a short fixture written for these tests (the corpus has no Chinese book).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from producer.ingest import load_book
from shared.frontend.dialogue import VOICE_CLOSE, VOICE_OPEN, VOICE_SEP, Span, mark_dialogue, strip_voice_marks

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
HOLMES = "arthur-conan-doyle_the-adventures-of-sherlock-holmes.epub"
TIME_MACHINE = "h-g-wells_the-time-machine.epub"
FRANKENSTEIN = "mary-shelley_frankenstein.epub"

CHINESE_STORY = [
    "天色已晚，院子里静悄悄的。",
    "张三笑着说：“你来得正好，我们正要吃饭。”",
    "「我不知道『归去来兮』是谁写的。」李四回答道。",
    "王五问：「明天还下雨吗？」",
    "“他说他明天就回来。”",
]


@cache
def paragraphs(book: str) -> list[str]:
    return [p for chapter in load_book(CORPUS / book).chapters for p in chapter.paragraphs]


def paragraph(book: str, start: str) -> tuple[list[str], int]:
    """The book's paragraphs and the index of the first one that starts with ``start``."""
    found = paragraphs(book)
    for index, text in enumerate(found):
        if text.startswith(start):
            return found, index
    raise AssertionError(f"{start!r} is not in {book}")


def spans_of(book: str, start: str) -> list[Span]:
    found, index = paragraph(book, start)
    return mark_dialogue(found[max(0, index - 3) : index + 1])[-1]


def quotes(spans: list[Span]) -> list[tuple[str, str | None]]:
    return [(s.text, s.speaker) for s in spans if s.kind == "quote"]


def test_a_quotation_followed_by_said_and_a_name_is_that_characters():
    spans = spans_of(HOLMES, "“Come in!” said Holmes.")
    assert [(s.kind, s.text) for s in spans] == [("quote", "“Come in!”"), ("narration", "said Holmes.")]
    assert spans[0].speaker == "Holmes" and spans[0].confidence >= 0.9


def test_both_quotations_around_the_attribution_go_to_the_speaker_it_names():
    spans = spans_of(HOLMES, "“Pray take a seat,” said Holmes.")
    said = quotes(spans)
    assert said[0] == ("“Pray take a seat,”", "Holmes")
    assert said[1][0].startswith("“This is my friend and colleague, Dr. Watson")
    assert said[1][1] == "Holmes"
    assert [s.kind for s in spans] == ["quote", "narration", "quote"]


def test_the_time_traveller_is_named_without_the_article():
    spans = spans_of(TIME_MACHINE, "“Why not?” said the Time Traveller.")
    assert quotes(spans) == [("“Why not?”", "Time Traveller")]


def test_a_name_before_the_verb_names_the_speaker():
    spans = spans_of(HOLMES, "“I was also aware of that,” murmured Holmes")
    assert quotes(spans)[0] == ("“I was also aware of that,”", "Holmes")


def test_a_pronoun_names_nobody():
    spans = spans_of(HOLMES, "“You had my note?” he asked with a deep harsh voice")
    assert [speaker for _, speaker in quotes(spans)] == [None, None]
    assert spans[1].kind == "narration" and spans[1].text.startswith("he asked with a deep harsh voice")


def test_nested_quotes_stay_inside_the_outer_quotation():
    spans = spans_of(HOLMES, "“Precisely. And the man who wrote the note is a German.")
    quoted = quotes(spans)
    assert "‘This account of you we have from all quarters received.’" in quoted[0][0]
    assert all(s.kind == "quote" for s in spans if "‘" in s.text)


def test_a_quotation_spanning_paragraphs_keeps_its_speaker_across_them():
    found = paragraphs(HOLMES)
    first = next(i for i, p in enumerate(found) if p.startswith("“Quite so; but the sequel was rather unusual."))
    marked = mark_dialogue(found[first - 2 : first + 2])
    opening, following = marked[2], marked[3]
    assert [s.kind for s in opening] == ["quote"], "the quotation is left open at the paragraph's end"
    assert following[0].kind == "quote" and following[0].text.startswith("“I then lounged down the street")
    assert following[0].speaker == opening[0].speaker


def test_a_speech_of_several_paragraphs_takes_the_speaker_named_in_its_last_one():
    marked = mark_dialogue(["“First part of it.", "“Second part.", "“Third part,” said Holmes.", "Then silence."])
    assert [spans[0].speaker for spans in marked[:3]] == ["Holmes", "Holmes", "Holmes"]
    assert marked[3][0].kind == "narration"


def test_apostrophes_are_not_quotes():
    spans = spans_of(TIME_MACHINE, "“Don’t follow you,” said Filby.")
    assert quotes(spans) == [("“Don’t follow you,”", "Filby")]
    narration = mark_dialogue(["It was five o’clock in the ’90s, and the boys’ hats were wet."])[0]
    assert [s.kind for s in narration] == ["narration"]


def test_a_possessive_inside_single_quotes_does_not_close_them():
    spans = mark_dialogue(["He said, ‘I don’t know the boys’ names,’ and left."])[0]
    assert [(s.kind, s.text) for s in spans] == [
        ("narration", "He said,"),
        ("quote", "‘I don’t know the boys’ names,’"),
        ("narration", "and left."),
    ]


def test_narration_in_frankenstein_has_no_quotations():
    found = paragraphs(FRANKENSTEIN)
    letter = next(p for p in found if p.startswith("You will rejoice to hear that no disaster has accompanied"))
    assert [s.kind for s in mark_dialogue([letter])[0]] == ["narration"]


def test_straight_quotes_are_quotations_too():
    spans = mark_dialogue(['"Straight quotes," said Watson. "Twice."'])[0]
    assert quotes(spans) == [('"Straight quotes,"', "Watson"), ('"Twice."', "Watson")]


@pytest.mark.parametrize(
    ("text", "speaker", "quoted"),
    [
        ("— Holmes: You see, but you do not observe.", "Holmes", "You see, but you do not observe."),
        ("—Good morning, Stephen, — said Buck Mulligan.", "Buck Mulligan", "Good morning, Stephen,"),
        ("— Is it far? — asked Mr. Lorry.", "Mr. Lorry", "Is it far?"),
    ],
)
def test_em_dash_dialogue(text: str, speaker: str, quoted: str):
    spans = mark_dialogue([text])[0]
    assert quotes(spans) == [(quoted, speaker)]


def test_attributions_from_the_issue_examples():
    marked = mark_dialogue(
        ["“Good morning,” said Mr. Lorry, “I hope I do not intrude.”", "“Not at all,” Defarge answered."]
    )
    assert quotes(marked[0]) == [("“Good morning,”", "Mr. Lorry"), ("“I hope I do not intrude.”", "Mr. Lorry")]
    assert quotes(marked[1]) == [("“Not at all,”", "Defarge")]


def test_chinese_quotations_and_speakers():
    marked = mark_dialogue(CHINESE_STORY)
    assert [s.kind for s in marked[0]] == ["narration"]
    assert quotes(marked[1]) == [("“你来得正好，我们正要吃饭。”", "张三")]
    assert quotes(marked[2]) == [("「我不知道『归去来兮』是谁写的。」", "李四")], "『』 nests inside 「」"
    assert quotes(marked[3]) == [("「明天还下雨吗？」", "王五")]
    assert quotes(marked[4]) == [("“他说他明天就回来。”", None)], "他 is a pronoun, not a name"


def test_markup_names_the_voice_and_wins_over_the_text():
    text = f"“Hello,” said Holmes. {VOICE_OPEN}watson{VOICE_SEP}“Hello yourself.”{VOICE_CLOSE}"
    spans = mark_dialogue([text])[0]
    assert quotes(spans) == [("“Hello,”", "Holmes"), ("“Hello yourself.”", "watson")]
    assert spans[-1].explicit and spans[-1].confidence == 1.0
    assert strip_voice_marks(text) == "“Hello,” said Holmes. “Hello yourself.”"


def test_a_speaker_who_is_the_subject_of_the_sentence_before_a_quotation_is_its_likely_speaker():
    marked = mark_dialogue(["“Come in,” said Holmes.", "Holmes smiled. “It is my business to know.”"])
    assert quotes(marked[1]) == [("“It is my business to know.”", "Holmes")]
    assert 0.5 <= marked[1][1].confidence < 0.85, "less sure than a speech verb"
    assert quotes(mark_dialogue(["The fire crackled. “Hot,” he said."])[0]) == [("“Hot,”", None)]
    assert quotes(mark_dialogue(["Plain text with a “quote” in it."])[0]) == [("“quote”", None)]
