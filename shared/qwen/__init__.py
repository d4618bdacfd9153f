"""Qwen3-TTS on the control plane: checkpoints in the model store, voices as data, languages.

Nothing here imports torch, transformers or qwen_tts: the producer plans
Qwen3-TTS jobs with the checkpoint's tokenizer files and config only, and
the engine that loads the weights lives in ``workers.engines.qwen3``.
"""

from __future__ import annotations

ENGINE = "qwen3-tts"
SAMPLE_RATE = 24000
"""Every Qwen3-TTS checkpoint decodes through its 12 Hz speech tokenizer to 24 kHz audio."""

MODES = ("custom_voice", "voice_design", "voice_clone")
"""A voice is a preset speaker (custom_voice), a described voice (voice_design) or a cloned one (voice_clone)."""

MODEL_TYPES = {"custom_voice": "custom_voice", "voice_design": "voice_design", "voice_clone": "base"}
"""Voice mode -> the ``tts_model_type`` of the checkpoints that serve it (one mode per checkpoint)."""

_LANGUAGES = {
    "zh": "chinese",
    "en": "english",
    "ja": "japanese",
    "ko": "korean",
    "de": "german",
    "fr": "french",
    "ru": "russian",
    "pt": "portuguese",
    "es": "spanish",
    "it": "italian",
}


def mode_of_model_type(model_type: str) -> str:
    """The voice mode a checkpoint of ``tts_model_type`` serves."""
    for mode, kind in MODEL_TYPES.items():
        if kind == model_type:
            return mode
    raise ValueError(f"unknown Qwen3-TTS model type {model_type!r}")


def qwen_language(code: str | None) -> str:
    """A book's language tag (``zh-CN``, ``en``) as the language name Qwen3-TTS takes; 'auto' if unknown."""
    if not code:
        return "auto"
    lowered = code.strip().lower().replace("_", "-")
    if lowered in _LANGUAGES.values() or lowered == "auto":
        return lowered
    return _LANGUAGES.get(lowered.split("-")[0], "auto")
