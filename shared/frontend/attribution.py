"""Who speaks a quotation: the speech verbs and names in the narration beside it, with a confidence.

Only what the text says is used: "said Mr. Lorry" or "Defarge answered"
right after a quotation (0.9), "Holmes said:" right before one (0.85), a
script label "— Holmes:" (0.95), the Chinese 张三说：「…」 and 「…」张三说。,
and, least sure (0.6), a character already known as a speaker who is the
subject of the sentence just before the quotation ("Holmes smiled. “…”").
A pronoun ("he said") names nobody, so the quotation goes to the dialogue
voice unless its paragraph names the speaker elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERBS = (
    r"(?:said|says|asked|asks|answered|answers|replied|replies|cried|exclaimed|returned|continued|whispered|"
    r"shouted|muttered|murmured|remarked|observed|added|rejoined|responded|began|repeated|called|inquired|"
    r"enquired|demanded|interrupted|protested|laughed|sighed|explained|declared|growled|urged|pursued|resumed|"
    r"went on|put in|broke in|snapped|groaned|gasped|stammered|retorted|insisted|suggested|admitted)"
)
_TITLES = (
    r"(?:Mr|Mrs|Ms|Dr|St|Miss|Madame|Madam|Monsieur|Mademoiselle|Sir|Lady|Lord|Captain|Colonel|Professor|"
    r"Inspector|Father|Uncle|Aunt|Mother|Doctor)\.?"
)
_PROPER = r"[A-Z][a-zA-Z'’-]+"
_NAME = rf"(?:{_TITLES}\s+)?{_PROPER}(?:\s+{_PROPER}){{0,2}}"
_NOT_ROLE = r"(?:\w+ly|and|but|with|as|who|to|in|at|of|from|for|that|then|once|again)\b"
_ROLE = rf"(?:the|my|his|her|our|their)\s+(?:{_PROPER}(?:\s+{_PROPER}){{0,2}}|[a-z-]+(?:\s+(?!{_NOT_ROLE})[a-z-]+)?)"
_SPEAKER = rf"(?P<name>{_NAME}|{_ROLE})"
_LEADING = frozenset(
    [
        "the",
        "a",
        "an",
        "then",
        "there",
        "here",
        "but",
        "and",
        "so",
        "yet",
        "now",
        "when",
        "well",
        "oh",
        "ah",
        "yes",
        "no",
        "still",
        "at",
        "last",
    ]
)
_ARTICLES = frozenset(["the", "a", "an"])
_PRONOUNS = frozenset(["i", "he", "she", "it", "we", "they", "you", "this", "that", "who", "what", "which", "one"])

_AFTER_VERB_NAME = re.compile(rf"^[\s,;:—–-]*{_VERBS}\s+{_SPEAKER}")
_AFTER_NAME_VERB = re.compile(rf"^[\s,;:—–-]*{_SPEAKER}\s+(?:[a-z]+ly\s+)?{_VERBS}\b")
_BEFORE_NAME_VERB = re.compile(rf"{_SPEAKER}\s+(?:[a-z]+ly\s+)?{_VERBS}\b[^.!?]{{0,40}}?[,:]\s*$")
_BEFORE_VERB_NAME = re.compile(rf"{_VERBS}\s+{_SPEAKER}[,:]\s*$")
_BEFORE_SUBJECT = re.compile(rf"(?:^|[.!?;]\s+){_SPEAKER}\s+[a-z]+\b[^.!?;]*[.!?;,:]?\s*$")
_LABEL = re.compile(rf"^(?P<name>{_NAME})\s*[:：]\s*(?P<body>\S.*)$", re.S)

_ZH_VERBS = r"(?:说道|问道|答道|笑道|喊道|叫道|回答道|回答|说|问|道|答|喊|叫)"
_ZH_MANNER = r"(?:笑着|冷冷地|低声|大声|轻声|急忙|连忙|忙|又|也|便|就)?"
_ZH_NAME = r"(?P<name>[\u4e00-\u9fff]{2,3}?)"
_ZH_NOT_NAMES = frozenset({"他们", "她们", "我们", "你们", "大家", "他又", "她又", "他便", "她便", "他就", "她就"})
_ZH_AFTER = re.compile(rf"^[\s，,]*{_ZH_NAME}{_ZH_MANNER}{_ZH_VERBS}")
_ZH_BEFORE = re.compile(rf"{_ZH_NAME}{_ZH_MANNER}{_ZH_VERBS}[：:，,]?\s*$")


SUBJECT_CONFIDENCE = 0.6


@dataclass(frozen=True)
class Attribution:
    speaker: str
    confidence: float


def clean_name(name: str) -> str | None:
    """The speaker as a cast names it: "the Time Traveller" -> "Time Traveller"; pronouns are nobody."""
    words = name.split()
    # "Then Holmes" -> "Holmes", "the Time Traveller" -> "Time Traveller", but "the tall man" keeps its article.
    while len(words) > 1 and words[0].lower() in _LEADING and not (words[0] in _ARTICLES and words[1][:1].islower()):
        words = words[1:]
    if not words or words[0].lower() in _PRONOUNS or (len(words) == 1 and words[0].lower() in _LEADING):
        return None
    cleaned = " ".join(words).strip(" ,.;:")
    return cleaned or None


def _found(match: re.Match[str] | None, confidence: float) -> Attribution | None:
    if match is None:
        return None
    name = clean_name(match.group("name"))
    return Attribution(name, confidence) if name else None


def _found_zh(match: re.Match[str] | None, confidence: float) -> Attribution | None:
    if match is None or match.group("name") in _ZH_NOT_NAMES or match.group("name")[0] in "他她我你它":
        return None
    return Attribution(match.group("name"), confidence)


def attribute_after(narration: str) -> Attribution | None:
    """The speaker named by the narration that follows a quotation."""
    if not narration:
        return None
    return (
        _found(_AFTER_VERB_NAME.match(narration), 0.9)
        or _found(_AFTER_NAME_VERB.match(narration), 0.9)
        or _found_zh(_ZH_AFTER.match(narration), 0.85)
    )


def attribute_before(narration: str) -> Attribution | None:
    """The speaker named by the narration that leads into a quotation."""
    if not narration:
        return None
    tail = narration[-120:]
    label = _LABEL.match(narration.strip() + " x")
    if label is not None and label.group("body").strip() == "x":
        return _found(label, 0.95)
    return (
        _found(_BEFORE_VERB_NAME.search(tail), 0.85)
        or _found(_BEFORE_NAME_VERB.search(tail), 0.85)
        or _found_zh(_ZH_BEFORE.search(tail), 0.85)
    )


def subject_before(narration: str) -> str | None:
    """The name that starts the sentence before a quotation ("Holmes smiled."), which may be its speaker.

    Any sentence starts with a capital, so callers accept it only for a character the text names as a
    speaker elsewhere.
    """
    found = _found(_BEFORE_SUBJECT.search(narration[-120:]), SUBJECT_CONFIDENCE) if narration else None
    return found.speaker if found else None


def script_label(text: str) -> tuple[str, str] | None:
    """``Holmes: text`` as (Holmes, text): the speaker labels of dash dialogue and play-like layouts."""
    match = _LABEL.match(text)
    if match is None:
        return None
    name = clean_name(match.group("name"))
    return (name, match.group("body")) if name else None
