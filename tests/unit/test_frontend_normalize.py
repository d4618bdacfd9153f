"""Text normalisation on real sentences of the corpus books: numbers, abbreviations, initials, quotes, dashes."""

from __future__ import annotations

import pytest

from shared.frontend.chinese import integer, is_chinese, normalize_numbers
from shared.frontend.normalize import clean_unicode, normalize
from shared.frontend.numbers import cardinal, expand_numbers, ordinal, roman_to_int, year


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # Frankenstein, Letter I
        ("To Mrs. Saville, England.", "To Missus Saville, England."),
        ("St. Petersburgh, Dec. 11th, 17⁠—.", "Saint Petersburgh, December eleventh, seventeen."),
        # Frankenstein, Chapter III
        (
            "that M. Waldman, a fellow-professor, would lecture upon chemistry",
            "that Monsieur Waldman, a fellow-professor, would lecture upon chemistry",
        ),
        # Frankenstein, Introduction
        (
            "In the summer of 1816, we visited Switzerland, and became the neighbours of Lord Byron.",
            "In the summer of eighteen sixteen, we visited Switzerland, and became the neighbours of Lord Byron.",
        ),
        # The Red-Headed League
        (
            "My gross takings amount to £27 10s. Every day, from nine in the morning",
            "My gross takings amount to twenty-seven pounds ten shillings. Every day, from nine in the morning",
        ),
        (
            "of Lebanon, Pennsylvania, U.S.A., there is now another vacancy",
            "of Lebanon, Pennsylvania, U S A, there is now another vacancy",
        ),
        (
            "a salary of £4 a week for purely nominal services.",
            "a salary of four pounds a week for purely nominal services.",
        ),
        # The Noble Bachelor
        (
            "‘Oct. 4th, rooms 8s., breakfast 2s. 6d., cocktail 1s., lunch 2s. 6d., glass sherry, 8d.’ "
            "I see nothing in that.",
            "'October fourth, rooms eight shillings, breakfast two shillings and six pence, cocktail one shilling, "
            "lunch two shillings and six pence, glass sherry, eight pence.' I see nothing in that.",
        ),
        ("Come at once. F. H. M.’ Now my theory", "Come at once. F H M.' Now my theory"),
        ("Lady St. Simon was decoyed away", "Lady Saint Simon was decoyed away"),
        # A Scandal in Bohemia and The Blue Carbuncle
        ("by the 5:15 train from Charing Cross", "by the five fifteen train from Charing Cross"),
        (
            "by applying at 6:30 this evening at 221B, Baker Street.",
            "by applying at six thirty this evening at two twenty-one B, Baker Street.",
        ),
        ("I have already offered a reward of £1,000.", "I have already offered a reward of one thousand pounds."),
        # The Time Machine, Chapter I: quotes, word joiners and em dashes
        ("“Don’t follow you,” said Filby.", '"Don\'t follow you," said Filby.'),
        (
            "“There I object,” said Filby. “Of course a solid body may exist. All real things⁠—”",
            '"There I object," said Filby. "Of course a solid body may exist. All real things,"',
        ),
        (
            "And he put it to us in this way⁠—marking the points with a lean forefinger⁠—as we sat",
            "And he put it to us in this way, marking the points with a lean forefinger, as we sat",
        ),
        # Frankenstein, Epigraph
        ("Paradise Lost, X, 743⁠–⁠45", "Paradise Lost, X, seven hundred forty-three to forty-five"),
    ],
)
def test_corpus_sentences_are_written_out(source: str, expected: str) -> None:
    assert normalize(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("T. S. Eliot met H. G. Wells.", "T S Eliot met H G Wells."),
        ("Dr. Watson and Mr Holmes", "Doctor Watson and Mister Holmes"),
        ("apples, pears, etc. Then we left.", "apples, pears, et cetera. Then we left."),
        ("apples, pears, etc., and more", "apples, pears, et cetera, and more"),
        ("e.g. this, i.e. that", "for example this, that is that"),
        ("No. 7 and vol. 2", "number seven and volume two"),
        ("John Melbourne, Esq. Her ugly sister", "John Melbourne, Esquire. Her ugly sister"),
    ],
)
def test_abbreviations_and_initials(source: str, expected: str) -> None:
    assert normalize(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Chapter IV", "Chapter four"),
        ("CHAPTER XIV. THE END OF IT ALL", "Chapter fourteen. The End Of It All"),
        ("Letter I", "Letter one"),
        ("XII", "Chapter twelve."),
        (
            "Henry VIII and Louis XIV during World War I.",
            "Henry the eighth and Louis the fourteenth during World War one.",
        ),
        ("the letter I wrote", "the letter I wrote"),
    ],
)
def test_roman_numerals_in_headings_and_names(source: str, expected: str) -> None:
    assert normalize(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("It cost $5.50 in 1895.", "It cost five dollars fifty cents in eighteen ninety-five."),
        ("$3 million", "three million dollars"),
        ("€1 and ¥500", "one euro and five hundred yen"),
        ("at 10:30 a.m. He left.", "at ten thirty a.m. He left."),
        ("at 5 p.m. on Monday", "at five p.m on Monday"),
        ("at 6:00 sharp", "at six o'clock sharp"),
        ("the 22d of June, the 1st and the 103rd", "the twenty-second of June, the first and the one hundred third"),
        ("in the 1890s and the '60s", "in the eighteen nineties and the sixties"),
        ("1900, 1805, 2005, 2024", "nineteen hundred, eighteen oh five, two thousand five, twenty twenty-four"),
        ("50% of 1,234,567", "fifty percent of one million two hundred thirty-four thousand five hundred sixty-seven"),
        ("2 1/2 cups and ½ a pint", "two and a half cups and one half a pint"),
        (
            "30°C, -5 degrees, 3.14, 007",
            "thirty degrees Celsius, minus five degrees, three point one four, zero zero seven",
        ),
    ],
)
def test_english_numbers(source: str, expected: str) -> None:
    assert normalize(source) == expected


def test_number_words() -> None:
    assert cardinal(0) == "zero"
    assert cardinal(1_000_001) == "one million one"
    assert ordinal(12) == "twelfth" and ordinal(21) == "twenty-first" and ordinal(90) == "ninetieth"
    assert year(1066) == "ten sixty-six" and year(2000) == "two thousand" and year(2010) == "twenty ten"
    assert [roman_to_int(r) for r in ["XXIV", "MCMXC", "IIII", "IC", ""]] == [24, 1990, None, None, None]
    assert expand_numbers("no digits here") == "no digits here"


def test_unicode_clean_up() -> None:
    assert clean_unicode("a\u200bb\u2060c\u0007d\ufeff e\u00a0f\u3000g") == "abcd e f g"
    assert clean_unicode("Ｆｕｌｌ　ｗｉｄｔｈ！") == "Full width!"
    assert clean_unicode("Hello… “world” — ‘yes’") == "Hello... \"world\" — 'yes'"
    assert clean_unicode("[[ h ə ]] and ]]") == "[ h ə ] and ]"


def test_emoji_and_symbols_are_dropped_and_symbol_only_text_is_empty() -> None:
    assert normalize("Hello 😀 world ★ 🇬🇧 1️⃣") == "Hello world one"
    assert normalize("😀 🎉 ★ ♥") == ""


def test_other_languages_keep_their_digits_for_their_own_reader() -> None:
    assert normalize("Il a 3 chats, M. Dupont.", "fr") == "Il a 3 chats, M. Dupont."


def test_chinese_numbers_and_punctuation() -> None:
    assert normalize("第3章 你好,世界!他说:“走吧。”真的?") == '第三章 你好，世界！他说："走吧。"真的？'
    assert (
        normalize("今天是2024年5月1日，增长了50%，在10:30开会。")
        == "今天是二〇二四年五月一日，增长了百分之五十，在十点三十分开会。"
    )
    assert (
        normalize_numbers("共1,000人，3.14，-5度，1/2，电话13800138000")
        == "共一千人，三点一四，负五度，二分之一，电话一三八〇〇一三八〇〇〇"
    )
    assert [integer(n) for n in (10, 15, 105, 1010, 10001, 20000, 123456789)] == [
        "十",
        "十五",
        "一百零五",
        "一千零一十",
        "一万零一",
        "二万",
        "一亿二千三百四十五万六千七百八十九",
    ]
    assert is_chinese("第十二章 你好。") and not is_chinese("Hello 你") and not is_chinese("こんにちは世界")
