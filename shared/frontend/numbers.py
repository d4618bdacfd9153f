"""English numbers as words: cardinals, ordinals, years, decades, currency, times, percentages.

espeak reads "1895" as "one thousand eight hundred ninety five" and "$5.50" as
"dollar five point five zero", so the frontend writes numbers out itself. The
spelled-out form is also what goes into the content key, which keeps keys
independent of how a given engine would have read the digits.
"""

from __future__ import annotations

import re

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ((10**18, "quintillion"), (10**15, "quadrillion"), (10**12, "trillion"), (10**9, "billion"),
           (10**6, "million"), (10**3, "thousand"))  # fmt: skip
_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip
_DIGIT_NAMES = {str(i): _ONES[i] for i in range(10)}

_MAX_CARDINAL = 10**21


def cardinal(n: int) -> str:
    """1234 -> 'one thousand two hundred thirty-four' (no 'and', as US narrators read)."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n >= _MAX_CARDINAL:
        return digits(str(n))
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("-" + _ONES[ones] if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + (" " + cardinal(rest) if rest else "")
    for scale, name in _SCALES:
        if n >= scale:
            high, rest = divmod(n, scale)
            return cardinal(high) + " " + name + (" " + cardinal(rest) if rest else "")
    raise AssertionError("unreachable")  # pragma: no cover


def ordinal(n: int) -> str:
    """22 -> 'twenty-second'."""
    words = cardinal(n)
    head, sep, last = words.rpartition("-") if "-" in words.split(" ")[-1] else words.rpartition(" ")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def year(n: int) -> str:
    """1895 -> 'eighteen ninety-five', 1900 -> 'nineteen hundred', 2005 -> 'two thousand five'."""
    if n < 1000 or n >= 10000:
        return cardinal(n)
    high, low = divmod(n, 100)
    if 2000 <= n < 2010 or (high % 10 == 0 and low == 0):
        return cardinal(n)
    if low == 0:
        return cardinal(high) + " hundred"
    if low < 10:
        return cardinal(high) + " oh " + cardinal(low)
    return cardinal(high) + " " + cardinal(low)


def digits(text: str) -> str:
    """'007' -> 'zero zero seven': for long digit strings, codes and leading zeros."""
    return " ".join(_DIGIT_NAMES[d] for d in text if d in _DIGIT_NAMES)


def _plural(word: str) -> str:
    if word.endswith("y"):
        return word[:-1] + "ies"
    if word.endswith("x"):
        return word + "es"
    return word + "s"


def decade(n: int) -> str:
    """1890 -> 'eighteen nineties', 60 -> 'sixties'."""
    words = year(n) if n >= 1000 else cardinal(n)
    if words.endswith("hundred"):
        return words + "s"
    head, _, last = words.rpartition(" ")
    return (head + " " if head else "") + _plural(last)


def _number(text: str) -> str:
    """A plain integer or decimal as read aloud ('3.14' -> 'three point one four')."""
    whole, _, frac = text.replace(",", "").partition(".")
    if (len(whole) > 1 and whole.startswith("0")) or len(whole) > 21:
        spoken = digits(whole)
    else:
        spoken = cardinal(int(whole or "0"))
    if frac:
        spoken += " point " + digits(frac)
    return spoken


_CURRENCIES = {
    "$": ("dollar", "cent"),
    "£": ("pound", "penny"),
    "€": ("euro", "cent"),
    "¥": ("yen", ""),
    "₹": ("rupee", "paisa"),
}
_MAGNITUDES = r"(?:\s+(thousand|million|billion|trillion))?"
_CURRENCY = re.compile(r"([$£€¥₹])\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?(?!\d)" + _MAGNITUDES)
_OLD_MONEY = re.compile(r"(?<![\w.])(\d{1,2})s\.(?:\s?(\d{1,2})d\.?)?|(?<![\w.])(\d{1,2})d\.")
_TIME = re.compile(r"(?<![\d:])([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?(?![\d:])(\s?[ap]\.?\s?m\b\.?)?", re.I)
_BARE_MERIDIEM = re.compile(r"(?<=\d)\s?([ap])\.?\s?m\b\.?", re.I)
_ORDINAL = re.compile(r"(?<![\w.,])(\d+)(st|nd|rd|th|d)\b", re.I)
_DECADE = re.compile(r"(?<![\w.,])'?(1\d\d|20\d|[1-9])0'?s\b")
_PERCENT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s?(%|per cent\b|percent\b)")
_DEGREES = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?)\s?°\s?([CF](?![a-z]))?")
_FRACTION = re.compile(r"(?<![\w./⁄])(?:(\d+)\s+)?(\d{1,2})[/⁄](\d{1,2})(?![\w/⁄])")
_RANGE = re.compile(r"(?<=\d)\s?–\s?(?=\d)")
_YEAR = re.compile(r"(?<![\w.,:$£€¥₹-])(1[1-9]\d\d|20\d\d)(?![\w,.]\d|\d)")
_NUMBER = re.compile(r"(?<![\w.])-?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?!\d)")
_NUMBER_SUFFIX = re.compile(r"(?<![\w.,])(\d+)([A-Za-z])\b")
_NEXT_SENTENCE = re.compile(r"[\"')\]]*(?:\s+[\"'(]?[A-Z]|\s*$)")

_DENOMINATORS = {2: ("half", "halves"), 4: ("quarter", "quarters")}


def _currency(match: re.Match[str]) -> str:
    symbol, whole, cents, magnitude = match.groups()
    unit, small = _CURRENCIES[symbol]
    amount = int(whole.replace(",", ""))
    if magnitude:
        spoken = _number(whole + ("." + cents if cents else "")) + " " + magnitude + " " + _plural(unit)
        return spoken if symbol != "¥" else spoken.removesuffix("s")
    words = cardinal(amount) + " " + (unit if amount == 1 or symbol == "¥" else _plural(unit))
    if cents and int(cents) and small:
        value = int(cents.ljust(2, "0"))
        small_word = small if value == 1 else ("pence" if small == "penny" else _plural(small))
        words += " " + cardinal(value) + " " + small_word
    return words


def _old_money(match: re.Match[str]) -> str:
    """Pre-decimal British money: '2s. 6d.' -> 'two shillings and six pence'."""
    shillings, pence, pence_only = match.groups()
    if pence_only:
        words = cardinal(int(pence_only)) + " pence"
    else:
        words = cardinal(int(shillings)) + (" shilling" if shillings == "1" else " shillings")
        if pence:
            words += " and " + cardinal(int(pence)) + " pence"
    return words + ("." if match.group(0).endswith(".") and _sentence_ends(match) else "")


def _sentence_ends(match: re.Match[str]) -> bool:
    """Whether the text after a match starts a new sentence (a period there is a full stop)."""
    return _NEXT_SENTENCE.match(match.string, match.end()) is not None


def _time(match: re.Match[str]) -> str:
    hours, minutes, seconds, meridiem = match.groups()
    words = cardinal(int(hours))
    if minutes == "00":
        words += "" if meridiem else " o'clock"
    elif minutes.startswith("0"):
        words += " oh " + cardinal(int(minutes))
    else:
        words += " " + cardinal(int(minutes))
    if seconds and seconds != "00":
        words += " and " + cardinal(int(seconds)) + " seconds"
    if meridiem:
        words += " " + _meridiem(meridiem, match)
    return words


def _meridiem(text: str, match: re.Match[str]) -> str:
    """'a.m' (espeak reads the letters); the period is kept only where the sentence ends."""
    letter = text.strip().lower()[0]
    return f"{letter}.m" + ("." if text.endswith(".") and _sentence_ends(match) else "")


def _ordinal(match: re.Match[str]) -> str:
    number, suffix = match.groups()
    n = int(number)
    if suffix.lower() == "d" and n % 10 not in (2, 3):
        return match.group(0)
    return ordinal(n)


def _fraction(match: re.Match[str]) -> str:
    whole, top, bottom = match.groups()
    num, den = int(top), int(bottom)
    if den in (0, 1) or num >= den * 4:
        return match.group(0)
    if den in _DENOMINATORS:
        one, many = _DENOMINATORS[den]
        spoken = ("a " + one if whole else "one " + one) if num == 1 else cardinal(num) + " " + many
    else:
        spoken = cardinal(num) + " " + (ordinal(den) if num == 1 else _plural(ordinal(den)))
    return (cardinal(int(whole)) + " and " + spoken) if whole else spoken


def _degrees(match: re.Match[str]) -> str:
    value, scale = match.groups()
    words = _number(value.lstrip("-")) + (" degree" if value.lstrip("-") == "1" else " degrees")
    if value.startswith("-"):
        words = "minus " + words
    if scale:
        words += " Celsius" if scale == "C" else " Fahrenheit"
    return words


def _plain(match: re.Match[str]) -> str:
    text = match.group(0)
    negative = text.startswith("-")
    spoken = _number(text.lstrip("-"))
    return ("minus " if negative else "") + spoken


def _house_number(match: re.Match[str]) -> str:
    """'221B' -> 'two twenty-one B', as addresses are read; '7a' -> 'seven A'."""
    number, letter = int(match.group(1)), match.group(2).upper()
    if 100 <= number < 1000 and number % 100:
        hundreds, rest = divmod(number, 100)
        spoken = cardinal(hundreds) + (" oh " if rest < 10 else " ") + cardinal(rest)
    else:
        spoken = year(number) if 1000 <= number < 10000 else cardinal(number)
    return f"{spoken} {letter}"


def expand_numbers(text: str) -> str:
    """Write every number in an English sentence out as words; the order of the rules matters."""
    if not any(ch.isdigit() for ch in text):
        return text
    text = _CURRENCY.sub(_currency, text)
    text = _OLD_MONEY.sub(_old_money, text)
    text = _TIME.sub(_time, text)
    text = _BARE_MERIDIEM.sub(lambda m: " " + _meridiem(m.group(0), m), text)
    text = _PERCENT.sub(lambda m: _number(m.group(1)) + " percent", text)
    text = _DEGREES.sub(_degrees, text)
    text = _FRACTION.sub(_fraction, text)
    text = _ORDINAL.sub(_ordinal, text)
    text = _DECADE.sub(lambda m: decade(int(m.group(1) + "0")), text)
    text = _RANGE.sub(" to ", text)
    text = _YEAR.sub(lambda m: year(int(m.group(1))), text)
    text = _NUMBER_SUFFIX.sub(_house_number, text)
    return _NUMBER.sub(_plain, text)


_ROMAN = re.compile(r"^M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})$")
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}


def roman_to_int(text: str) -> int | None:
    """'XIV' -> 14; None unless the text is a well-formed upper-case Roman numeral."""
    if not text or not _ROMAN.match(text):
        return None
    total = 0
    for current, following in zip(text, [*text[1:], ""], strict=True):
        value = _ROMAN_VALUES[current]
        total += -value if following and _ROMAN_VALUES[following] > value else value
    return total
