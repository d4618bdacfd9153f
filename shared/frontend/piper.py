"""Piper frontend: espeak-ng phonemes from piper-tts, mapped to the voice's phoneme ids.

Only piper's phonemiser and its id mapping are used, never an onnxruntime
session: the control plane must not load models. espeak-ng keeps global
state in the process, so every call into it holds one process-wide lock.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Mapping
from typing import Any

from shared.errors import BadInputError
from shared.frontend import Frontend
from shared.frontend.chinese import is_chinese
from shared.frontend.lexicon import Lexicon

_ESPEAK_LOCK = threading.Lock()
_PHONEMIZER: Any = None
_PHONEME_BLOCK_SPLIT = r"(\[\[.*?\]\])"
_CHINESE_ESPEAK_VOICES = ("cmn", "yue", "zh", "sit/")
"""espeak-ng voices (prefixes) that read Chinese characters; a sentence with Chinese in it goes to ``cmn``
when the voice's own espeak voice is none of these."""


def _phonemizer() -> Any:
    """piper's espeak phonemiser with its bundled espeak-ng data, created once per process (lock held)."""
    global _PHONEMIZER
    if _PHONEMIZER is None:
        from piper.phonemize_espeak import ESPEAK_DATA_DIR, EspeakPhonemizer

        _PHONEMIZER = EspeakPhonemizer(ESPEAK_DATA_DIR)
    return _PHONEMIZER


class PiperFrontend(Frontend):
    """Normalise, split and phonemise for a Piper voice; one segment is one id sequence (BOS ... EOS)."""

    name = "piper"

    def __init__(self, voice_config: dict[str, Any], *, max_tokens: int = 512, lexicon: Lexicon | None = None) -> None:
        id_map = voice_config.get("phoneme_id_map")
        espeak = voice_config.get("espeak") or {}
        phoneme_type = str(voice_config.get("phoneme_type", "espeak"))
        if not isinstance(id_map, Mapping) or not id_map:
            raise BadInputError("voice config has no phoneme_id_map: is it a Piper .onnx.json?")
        if phoneme_type not in ("espeak", "text"):
            raise BadInputError(f"Piper voices with phoneme_type {phoneme_type!r} are not supported yet (espeak, text)")
        if phoneme_type == "espeak" and not isinstance(espeak.get("voice"), str):
            raise BadInputError("voice config has no espeak.voice: is it a Piper .onnx.json?")
        language_block = voice_config.get("language") or {}
        language = str(language_block.get("code") or espeak.get("voice") or "en").replace("_", "-")
        super().__init__(max_tokens=max_tokens, lexicon=lexicon, language=language)
        self._id_map: dict[str, list[int]] = {str(k): [int(i) for i in v] for k, v in id_map.items()}
        self._phoneme_type = phoneme_type
        self._voice = str(espeak.get("voice", ""))
        clusters = voice_config.get("vowel_clusters")
        self._vowel_clusters = {tuple(c) for c in clusters} if clusters else None

    def ids(self, text: str) -> list[int]:
        """Token ids for already-normalised text, as one sequence whatever espeak's own sentence breaks."""
        from piper.phoneme_ids import phonemes_to_ids

        phonemes = [p for p in self._phonemes(text) if p in self._id_map]
        return list(phonemes_to_ids(phonemes, self._id_map))

    def truncate(self, ids: list[int]) -> list[int]:
        """Unreachable in practice (one character never needs hundreds of ids); keeps the bound absolute."""
        return [*ids[: self.max_tokens - 1], ids[-1]]

    def _phonemes(self, text: str) -> list[str]:
        """Phonemes of text with ``[[ raw ]]`` blocks, joined the way piper's own voice.phonemize does."""
        if self._phoneme_type == "text":
            return list(unicodedata.normalize("NFD", text))
        voice = self._voice
        if is_chinese(text) and not self._voice.startswith(_CHINESE_ESPEAK_VOICES):
            voice = "cmn"
        phonemes: list[str] = []
        parts = re.split(_PHONEME_BLOCK_SPLIT, text)
        for index, part in enumerate(parts):
            if part.startswith("[["):
                if index > 0 and parts[index - 1].endswith(" ") and phonemes and phonemes[-1] != " ":
                    phonemes.append(" ")
                phonemes.extend(part[2:-2].strip())
                if index < len(parts) - 1 and parts[index + 1].startswith(" "):
                    phonemes.append(" ")
                continue
            if not part.strip():
                continue
            with _ESPEAK_LOCK:
                sentences = _phonemizer().phonemize(voice, part, vowel_clusters=self._vowel_clusters)
            for sentence in sentences:
                if not sentence:
                    continue
                if phonemes and phonemes[-1] != " ":
                    phonemes.append(" ")
                phonemes.extend(sentence)
        while phonemes and phonemes[-1] == " ":
            phonemes.pop()
        return phonemes
