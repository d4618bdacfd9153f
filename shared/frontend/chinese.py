"""Chinese text: script detection, numbers read as Chinese, full-width punctuation kept.

Arabic digits inside Chinese text must become characters before a Chinese
engine sees them ("第3章" -> "第三章", "2024年" -> "二〇二四年", "50%" ->
"百分之五十"); this module does what cn2an's an2cn mode does for the cases
books contain, without the dependency.
"""

from __future__ import annotations

import re

_DIGITS = "零一二三四五六七八九"
_YEAR_DIGITS = "〇一二三四五六七八九"
_SMALL_UNITS = ((1000, "千"), (100, "百"), (10, "十"))
_BIG_UNITS = ((10**8, "亿"), (10**4, "万"))

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")
_KANA = re.compile(r"[\u3040-\u30ff]")

# Sentence and clause punctuation a Chinese reader expects; NFKC turns the full-width
# forms into ASCII, so they are turned back where they follow Chinese text.
_FULL_WIDTH = {",": "，", "!": "！", "?": "？", ";": "；", ":": "：", "(": "（", ")": "）", ".": "。"}
_ASCII_PUNCT_AFTER_HAN = re.compile(
    r"(?<=[\u3400-\u9fff\uf900-\ufaff\"'”’」』])\s*([,!?;:)]|\.(?![\d.]))|([(])(?=[\u3400-\u9fff])"
)
_ELLIPSIS = re.compile(r"\.{3,}|…+")


def is_chinese(text: str) -> bool:
    """Mostly Han characters and no kana (which would make it Japanese)."""
    han = len(_HAN.findall(text))
    if not han or _KANA.search(text):
        return False
    letters = sum(1 for ch in text if ch.isalpha())
    return han * 10 >= letters * 3


def has_han(text: str) -> bool:
    return _HAN.search(text) is not None


def _below_10000(n: int, *, leading: bool) -> str:
    out = ""
    zero_pending = False
    for unit, name in _SMALL_UNITS:
        digit, n = divmod(n, unit)
        if digit:
            if zero_pending:
                out += "零"
            # "十五", not "一十五", at the start of a number.
            out += ("" if unit == 10 and digit == 1 and leading and not out else _DIGITS[digit]) + name
            zero_pending = False
        elif out:
            zero_pending = True
    if n:
        out += ("零" if zero_pending or (out == "" and not leading) else "") + _DIGITS[n]
    return out


def integer(n: int) -> str:
    """12345 -> 一万二千三百四十五; 10 -> 十; 105 -> 一百零五."""
    if n < 0:
        return "负" + integer(-n)
    if n == 0:
        return "零"
    if n >= 10**16:
        return digits(str(n))
    out = ""
    for unit, name in _BIG_UNITS:
        high, n = divmod(n, unit)
        if high:
            out += integer(high) + name
            if n and n < unit // 10:
                out += "零"
    if n:
        out += _below_10000(n, leading=not out) if out == "" else _below_10000(n, leading=False).lstrip("零")
    return out


def digits(text: str) -> str:
    """Digit by digit, as phone numbers and years are read: 2024 -> 二〇二四."""
    return "".join(_YEAR_DIGITS[int(d)] for d in text if d.isdigit())


def _decimal(whole: str, frac: str | None) -> str:
    spoken = integer(int(whole.replace(",", "")))
    if frac:
        spoken += "点" + "".join(_DIGITS[int(d)] for d in frac)
    return spoken


_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_YEAR = re.compile(r"(\d{2,4})(?=\s?年)")
_TIME = re.compile(r"(?<!\d)([01]?\d|2[0-3])[:：]([0-5]\d)(?!\d)")
_FRACTION = re.compile(r"(?<![\d/])(\d+)/(\d+)(?![\d/])")
_LONG_DIGITS = re.compile(r"(?<![\d.,])(0\d+|\d{7,})(?![\d.,])")
_NUMBER = re.compile(r"(?<![\d.])(-?)(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?!\d)")


def _time(match: re.Match[str]) -> str:
    hours, minutes = match.groups()
    spoken = integer(int(hours)) + "点"
    if minutes == "00":
        return spoken + "整"
    return spoken + ("零" if minutes.startswith("0") else "") + integer(int(minutes)) + "分"


def normalize_numbers(text: str) -> str:
    """Arabic numerals in Chinese text as Chinese words."""
    if not any(ch.isdigit() for ch in text):
        return text
    text = _PERCENT.sub(lambda m: "百分之" + _decimal(*m.group(1).partition(".")[::2]), text)
    text = _YEAR.sub(lambda m: digits(m.group(1)), text)
    text = _TIME.sub(_time, text)
    text = _FRACTION.sub(lambda m: integer(int(m.group(2))) + "分之" + integer(int(m.group(1))), text)
    text = _LONG_DIGITS.sub(lambda m: digits(m.group(1)), text)
    return _NUMBER.sub(lambda m: ("负" if m.group(1) else "") + _decimal(m.group(2), m.group(3)), text)


def restore_punctuation(text: str) -> str:
    """Full-width punctuation after Chinese text, as a Chinese engine and reader expect."""
    text = _ELLIPSIS.sub("……", text)
    return _ASCII_PUNCT_AFTER_HAN.sub(lambda m: _FULL_WIDTH[m.group(1) or m.group(2)], text)
