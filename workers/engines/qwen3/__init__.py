"""``qwen3-tts``: Qwen3-TTS checkpoints (preset speakers, voice design, voice cloning) on one device.

The engine itself (``engine``) imports torch, transformers and qwen_tts;
importing this package imports none of them, so a worker of another engine,
and the control plane, never need the Qwen environment.
"""
