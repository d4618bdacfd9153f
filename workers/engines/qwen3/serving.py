"""Which checkpoint a qwen3-tts worker serves (torch-free: decided before the card is opened)."""

from __future__ import annotations

from shared.errors import ConfigError
from shared.names import check_voice_id
from shared.qwen.voices import QwenVoiceRegistry
from shared.settings import Settings
from shared.storage import Storage


def checkpoint_to_serve(settings: Settings, model: str | None, voice: str | None) -> str:
    """``--model``, else the checkpoint that ``--voice`` (a Qwen3-TTS voice) names.

    A worker serves every voice of its checkpoint: the queues are the
    checkpoint's, so naming any one of its voices is enough.
    """
    if model:
        return check_voice_id(model)
    if voice:
        storage = Storage.from_settings(settings)
        spec = QwenVoiceRegistry(settings.voices_dir, storage).find(voice)
        if spec is not None:
            return spec.model
    raise ConfigError(
        f"a qwen3-tts worker serves one checkpoint: give --model NAME, or --voice with a Qwen3-TTS voice "
        f"({voice!r} is not one; list them with `voxfarm voices`)"
    )
