"""Text normalisation: what an engine should read, written out.

The normalised text is part of every segment's content key, so the rules
here are deterministic and depend only on the input text and the language.
Order matters: Unicode clean-up first, then abbreviations and Roman
numerals (which need the periods and capitals), then numbers, then symbols.
"""

from __future__ import annotations

import re
import unicodedata

from shared.frontend import chinese
from shared.frontend.numbers import expand_numbers, ordinal, roman_to_int

_TRANSLATE = str.maketrans(
    {
        "“": '"', "”": '"', "„": '"', "‟": '"', "«": '"', "»": '"', "″": '"', "〝": '"', "〞": '"',
        "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "‹": "'", "›": "'", "`": "'", "´": "'",
        "—": " — ", "―": " — ", "⸺": " — ", "⸻": " — ", "‐": "-", "‑": "-", "‒": "-", "−": "-",
        "\u3000": " ", "\u00ad": "", "•": ", ", "·": " ",
    }
)  # fmt: skip
# Format (Cf: zero-width, word joiner, bidi marks), control, private-use, unassigned and surrogate
# characters are never spoken; variation selectors and enclosing marks only restyle emoji.
_DROP_CATEGORIES = frozenset({"Cf", "Cc", "Co", "Cn", "Cs", "Me"})
_SYMBOL_CATEGORIES = frozenset({"So", "Sk"})
_KEEP_SYMBOLS = frozenset("°")
_SPACE = re.compile(r"\s+")
_CAPS_WORD = re.compile(r"[A-Z][A-Z']+")
_NEXT_SENTENCE = re.compile(r"[\"')\]]*(?:\s+[\"'(]?[A-Z]|\s*$)")
_BRACKETS = re.compile(r"\[{2,}|\]{2,}")

_TITLES = {
    "Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Dr": "Doctor", "Prof": "Professor", "Rev": "Reverend",
    "Hon": "Honourable", "Capt": "Captain", "Col": "Colonel", "Gen": "General", "Lt": "Lieutenant",
    "Sgt": "Sergeant", "Cpl": "Corporal", "Gov": "Governor", "Messrs": "Messieurs", "Mme": "Madame",
    "Mlle": "Mademoiselle", "Mt": "Mount", "Fr": "Father",
}  # fmt: skip
_MAY_END = {
    "etc": "et cetera", "Esq": "Esquire", "Jr": "Junior", "Sr": "Senior", "Ltd": "Limited", "Inc": "Incorporated",
    "Bros": "Brothers", "vs": "versus", "approx": "approximately", "Ave": "Avenue", "Rd": "Road", "Dept": "Department",
}  # fmt: skip
_LATIN = {"e.g.": "for example", "i.e.": "that is", "viz.": "namely", "cf.": "compare", "et al.": "and others"}
_BEFORE_NUMBER = {"No": "number", "Nos": "numbers", "no": "number", "Vol": "volume", "vol": "volume",
                  "p": "page", "pp": "pages", "Fig": "figure", "fig": "figure"}  # fmt: skip
_MONTHS = {
    "Jan": "January", "Feb": "February", "Mar": "March", "Apr": "April", "Jun": "June", "Jul": "July",
    "Aug": "August", "Sep": "September", "Sept": "September", "Oct": "October", "Nov": "November", "Dec": "December",
}  # fmt: skip

_TITLE_RE = re.compile(rf"\b(?:(Mrs|Mr|Ms|Dr)\b\.?|({'|'.join(_TITLES)})\.)(?=\s+[A-Z\"'])")
_SAINT_RE = re.compile(r"\bSt\.?(?=\s+[A-Z])")
# "M. Waldman" is Monsieur; "J. M. Barrie" and a signature "M. W. S." are initials.
_MONSIEUR_RE = re.compile(r"(?<![A-Z]\. )(?<![\w.])M\.(?=\s+[A-Z][a-z])")
_STREET_RE = re.compile(r"(?<=[a-z] )St\b\.?")
_MAY_END_RE = re.compile(rf"\b({'|'.join(_MAY_END)})\.")
_LATIN_RE = re.compile("|".join(rf"(?<!\w){re.escape(k)}" for k in _LATIN))
_BEFORE_NUMBER_RE = re.compile(rf"\b({'|'.join(_BEFORE_NUMBER)})\.\s*(?=\d)")
_MONTH_RE = re.compile(rf"\b({'|'.join(_MONTHS)})\.\s*(?=\d)")
_INITIALISM_RE = re.compile(r"(?<![\w.])((?:[A-Z]\.){2,})(?=[\s,;:)\"']|$)")
_INITIAL_RE = re.compile(r"(?<![\w.])([A-HJ-Z])\.(?=\s+[A-Z])")
_HEADING_WORDS = (
    "Chapter|Book|Part|Volume|Vol|Letter|Section|Act|Scene|Canto|Stave|Appendix|Psalm|Article|Lecture|Lesson|"
    "Epistle|Phase|Stage|Level|Class|Type|Grade|War|Number|Series|Mark|Episode"
)
_HEADING_ROMAN_RE = re.compile(rf"\b((?i:{_HEADING_WORDS}))(\s+)([IVXLCDM]+)\b(?!['-]\w)")
_PRONOUN_AFTER = re.compile(r"\s+[A-Za-z]")
_REGNAL_RE = re.compile(r"\b([A-Z][a-z]+)\s+([IVXLC]{2,}|V|X)\b(?![-'])")
_BARE_ROMAN_RE = re.compile(r"^([IVXLCDM]+)\.?$")
_DASH_RE = re.compile(r"\s*(?:—|--+)\s*")
_EN_DASH_RE = re.compile(r"\s*–\s*")
_TIDY = (
    (re.compile(r"\s+([,.;:!?])"), r"\1"),
    (re.compile(r"([,;:])(?:\s*[,;:])+"), r"\1"),
    (re.compile(r",\s*([.!?])"), r"\1"),
    (re.compile(r"([,;:])\s+([\"'])(?=\s|$)"), r"\1\2"),
    (re.compile(r"^[\s,;:.]+"), ""),
    (re.compile(r"([(\[])\s+"), r"\1"),
    (re.compile(r"\s*&\s*"), " and "),
    (re.compile(r"#(?=\d)"), "number "),
    (re.compile(r"[*_~|\\^]+"), " "),
)


def clean_unicode(text: str) -> str:
    """NFKC, one form of each quote and dash, no invisible characters, single spaces.

    ``[[`` and ``]]`` are reduced to single brackets: doubled, they would be read
    as a raw phoneme block, and a book's text must never be able to inject phonemes.
    """
    text = unicodedata.normalize("NFKC", text).translate(_TRANSLATE)
    text = "".join(
        " " if ch in "\t\n\r\v\f" else ch
        for ch in text
        if unicodedata.category(ch) not in _DROP_CATEGORIES or ch in "\t\n\r\v\f"
    )
    text = "".join(ch for ch in text if not 0xFE00 <= ord(ch) <= 0xFE0F)
    text = _BRACKETS.sub(lambda m: m.group(0)[0], text)
    return _SPACE.sub(" ", text).strip()


def strip_symbols(text: str) -> str:
    """Emoji, pictographs and decorative symbols are dropped rather than named aloud."""
    if text.isascii():
        return text
    return "".join(
        " " if unicodedata.category(ch) in _SYMBOL_CATEGORIES and ch not in _KEEP_SYMBOLS else ch for ch in text
    )


def has_speakable(text: str) -> bool:
    """Whether any letter or digit survives: symbol-only text has nothing to say."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


def _sentence_end(text: str, end: int) -> bool:
    return _NEXT_SENTENCE.match(text, end) is not None


def _may_end(match: re.Match[str]) -> str:
    word = _MAY_END[match.group(1)]
    return word + ("." if _sentence_end(match.string, match.end()) else "")


def _latin(match: re.Match[str]) -> str:
    word = _LATIN[match.group(0)]
    return word + ("." if match.group(0).endswith(".") and _sentence_end(match.string, match.end()) else "")


def _initialism(match: re.Match[str]) -> str:
    letters = " ".join(match.group(1).replace(".", ""))
    return letters + ("." if not match.string[match.end() :].strip() else "")


def expand_abbreviations(text: str) -> str:
    """Mr. -> Mister, St. Paul -> Saint Paul, e.g. -> for example, Dec. 11 -> December 11, T. S. -> T S."""
    if "." not in text and not _TITLE_RE.search(text):
        return text
    text = _TITLE_RE.sub(lambda m: _TITLES[m.group(1) or m.group(2)], text)
    text = _SAINT_RE.sub("Saint", text)
    text = _MONSIEUR_RE.sub("Monsieur", text)
    text = _STREET_RE.sub("Street", text)
    text = _LATIN_RE.sub(_latin, text)
    text = _MAY_END_RE.sub(_may_end, text)
    text = _BEFORE_NUMBER_RE.sub(lambda m: _BEFORE_NUMBER[m.group(1)] + " ", text)
    text = _MONTH_RE.sub(lambda m: _MONTHS[m.group(1)] + " ", text)
    text = _INITIALISM_RE.sub(_initialism, text)
    return _INITIAL_RE.sub(r"\1", text)


def expand_roman_numerals(text: str) -> str:
    """'Chapter IV' -> 'Chapter 4', 'Henry VIII' -> 'Henry the eighth', a bare 'XII' heading -> 'Chapter 12'."""
    bare = _BARE_ROMAN_RE.match(text)
    if bare and (value := roman_to_int(bare.group(1))):
        return f"Chapter {value}."

    def heading(match: re.Match[str]) -> str:
        value = roman_to_int(match.group(3))
        if not value or (match.group(3) == "I" and _PRONOUN_AFTER.match(match.string, match.end())):
            return match.group(0)  # "the letter I wrote": the pronoun, not a numeral
        return f"{match.group(1)}{match.group(2)}{value}"

    def regnal(match: re.Match[str]) -> str:
        value = roman_to_int(match.group(2))
        return f"{match.group(1)} the {ordinal(value)}" if value else match.group(0)

    text = _HEADING_ROMAN_RE.sub(heading, text)
    return _REGNAL_RE.sub(regnal, text)


def _deshout(text: str) -> str:
    """ALL-CAPS text ("CHAPTER XIV. THE END OF IT ALL") in ordinary case: espeak spells short capitalised words.

    Roman numerals stay upper-case so that they are still read as numbers.
    """
    if any(ch.islower() for ch in text) or len(_CAPS_WORD.findall(text)) < 2:
        return text
    return _CAPS_WORD.sub(lambda m: m.group(0) if roman_to_int(m.group(0)) else m.group(0).capitalize(), text)


def _tidy(text: str) -> str:
    for pattern, replacement in _TIDY:
        text = pattern.sub(replacement, text)
    return _SPACE.sub(" ", text).strip()


def normalize(text: str, language: str | None = "en") -> str:
    """The text an engine reads for one paragraph or sentence.

    English-specific rules (abbreviations, Roman numerals, numbers as English
    words) apply only when ``language`` is English; Chinese text is detected
    from its script whatever the voice's language, so a Chinese book segments
    correctly for an engine that speaks Chinese. Other languages keep their
    digits for the engine's own reader.
    """
    text = clean_unicode(text)
    if not text:
        return ""
    if chinese.has_han(text) and chinese.is_chinese(text):
        text = chinese.normalize_numbers(_DASH_RE.sub(",", text))
        text = chinese.restore_punctuation(strip_symbols(text))
        return _SPACE.sub(" ", text).strip()
    text = _deshout(_DASH_RE.sub(", ", text))
    if (language or "en").lower().startswith("en"):
        text = expand_abbreviations(text)
        text = expand_roman_numerals(text)
        text = expand_numbers(text)
    text = _EN_DASH_RE.sub(", ", text)
    return _tidy(strip_symbols(text))
