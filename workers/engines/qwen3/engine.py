"""The ``qwen3-tts`` engine: one Qwen3-TTS checkpoint on one device, one ``generate`` call per batch.

A checkpoint serves one mode (CustomVoice: preset speakers; VoiceDesign:
described voices; Base: cloned voices), and a worker serves one checkpoint,
so every batch is of one mode. Items inside a batch may differ in speaker,
instruction, language, cloned voice and seed: qwen_tts left-pads their
prompts and generates them together.

Token ids come from the control plane (the checkpoint's own tokenizer, see
``shared.frontend.qwen3``); the engine wraps them in the chat template and
calls the model's ``generate`` directly, mirroring what qwen_tts's
``generate_custom_voice`` / ``generate_voice_design`` / ``generate_voice_clone``
do with text. Sampling is seeded per item from the content key, and every
item's length is capped by its own token count (``FRAMES_PER_TOKEN``), so a
stuck decode cannot run a whole batch to the checkpoint's maximum.
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf
import torch

from shared.errors import BadInputError, ConfigError, EngineError
from shared.keys import seed_from_key
from shared.quality import QualityLimits
from shared.qwen import MODEL_TYPES
from shared.qwen.store import ModelFiles
from shared.schema import VoiceConditioning
from workers.devices.base import DeviceBackend
from workers.engines.base import Engine, EngineOutput, EngineRequest, WarmupRecord
from workers.engines.qwen3.prompts import ClonePrompt, PromptStore
from workers.engines.qwen3.sampling import Sampling, seeded_generation

log = logging.getLogger(__name__)

FRAMES_PER_TOKEN = 8.0
"""Codec frames (80 ms each) an item may take per text token: speech needs about 3 (0.25 s a token)."""
MIN_FRAMES = 25
"""Frames any item may take (2 s), so a one-word segment has room for its word."""
WARMUP_FRAMES = 2
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

#: The frame cap already bounds an item's duration per token, so 'too slow' never fires; a clip far
#: shorter than its text (skipped words) or silent or clipped still fails the gate.
QUALITY_LIMITS = QualityLimits(min_s_per_token=0.03, max_s_per_token=3.0)

_PREFIX = "<|im_start|>assistant\n"
_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"


@dataclass
class _Item:
    """One request, ready for ``generate``."""

    ids: list[int]
    seed: int
    cap: int
    language: str
    speaker: str | None
    instruct: str | None
    prompt: ClonePrompt | None


class Qwen3TTSEngine(Engine):
    """A Qwen3-TTS checkpoint on one device."""

    name = "qwen3-tts"
    quality_limits = QUALITY_LIMITS

    def __init__(
        self,
        model: ModelFiles,
        backend: DeviceBackend,
        *,
        threads: int = 1,
        precision: str = "fp32",
        prompts: PromptStore | None = None,
        frames_per_token: float | None = None,
        min_frames: int | None = None,
    ) -> None:
        import transformers
        from qwen_tts import Qwen3TTSModel

        if precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {precision!r} for qwen3-tts; use one of: {', '.join(PRECISIONS)}")
        transformers.logging.set_verbosity_error()
        self.backend = backend
        self.device = self.backend.device
        if self.device.type == "cpu" and threads > 0:
            torch.set_num_threads(threads)
        self.files = model
        self.model_name = model.name
        self.prompts = prompts
        with self.backend.errors(f"loading Qwen3-TTS {model.name}"):
            self.tts = Qwen3TTSModel.from_pretrained(
                str(model.path), device_map=str(self.device), dtype=PRECISIONS[precision]
            )
        self.model = self.tts.model
        self.mode = model.mode
        if self.model.tts_model_type != MODEL_TYPES[model.mode]:
            raise ConfigError(f"model {model.name}: config says {model.mode}, the loaded model disagrees")
        speech = self.model.speech_tokenizer
        self.sample_rate = int(speech.get_output_sample_rate())
        self.samples_per_frame = int(speech.get_decode_upsample_rate())
        tokenizer = self.tts.processor.tokenizer
        self._prefix = list(tokenizer(_PREFIX)["input_ids"])
        self._suffix = list(tokenizer(_SUFFIX)["input_ids"])
        if len(self._prefix) != 3 or len(self._suffix) != 5:
            raise ConfigError(f"model {model.name}: its tokenizer does not split the chat template as Qwen3-TTS does")
        generation = dict(self.model.generate_config or {})
        self.talker_sampling = Sampling.from_config(generation)
        self.codes_sampling = Sampling.from_config(generation, prefix="subtalker_")
        self.repetition_penalty = float(generation.get("repetition_penalty") or 1.05)
        self.max_frames = int(generation.get("max_new_tokens") or 2048)
        # A checkpoint may set its own length bounds in generation_config.json (they are part of its checksum).
        per_token = frames_per_token or generation.get("voxfarm_frames_per_token") or FRAMES_PER_TOKEN
        self.frames_per_token = float(per_token)
        self.min_frames = int(min_frames or generation.get("voxfarm_min_frames") or MIN_FRAMES)
        self.eos = int(self.model.config.talker_config.codec_eos_token_id)
        self.speakers = sorted(str(s) for s in (self.model.get_supported_speakers() or []))
        self.languages = sorted(str(s) for s in (self.model.get_supported_languages() or []))
        self._instructs: dict[str, torch.Tensor] = {}
        log.info("qwen3-tts ready: %s", self.describe())

    # --- what it is --------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Mode, languages, speakers and rate, as `voxfarm models` and the worker log report them."""
        return {
            "model": self.model_name,
            "mode": self.mode,
            "languages": self.languages,
            "speakers": self.speakers,
            "sample_rate": self.sample_rate,
            "device": str(self.device),
            "checksum": self.files.checksum[:16],
        }

    def frame_cap(self, tokens: int) -> int:
        """The most codec frames an item of ``tokens`` text tokens may generate."""
        return max(2, min(self.max_frames, max(self.min_frames, math.ceil(self.frames_per_token * tokens))))

    # --- a batch -----------------------------------------------------------------------------

    def synthesize(self, batch: Sequence[EngineRequest], pad_to: int) -> EngineOutput:
        if not batch:
            return EngineOutput(audio=[])
        stages: dict[str, float] = {}
        started = time.perf_counter()
        items = [self._item(request) for request in batch]
        if any(item.prompt is not None for item in items):
            stages["prompt"] = time.perf_counter() - started
        return self._run(items, stages)

    def _run(self, items: list[_Item], stages: dict[str, float]) -> EngineOutput:
        started = time.perf_counter()
        with self.backend.errors("a Qwen3-TTS batch"), torch.inference_mode():
            codes = self._generate(items)
            self.backend.synchronize()
            stages["talker"] = time.perf_counter() - started
            started = time.perf_counter()
            audio = self._decode(items, codes)
            stages["decoder"] = time.perf_counter() - started
        frames = [int(c.shape[0]) for c in codes]
        tokens = [len(item.ids) for item in items]
        return EngineOutput(
            audio=audio,
            stage_seconds=stages,
            padded_tokens=len(items) * max(tokens),
            useful_tokens=sum(tokens),
            padded_frames=len(items) * max(frames),
            useful_frames=sum(frames),
        )

    def _item(self, request: EngineRequest) -> _Item:
        conditioning = request.conditioning or self._default_conditioning()
        if conditioning.model != self.model_name or conditioning.mode != self.mode:
            raise BadInputError(
                f"segment for {conditioning.model} ({conditioning.mode}) reached a worker serving "
                f"{self.model_name} ({self.mode}); check the queue routing"
            )
        prompt = None
        if self.mode == "voice_clone":
            prompt = self._prompt(conditioning) if request.conditioning is not None else self._silent_prompt()
        ids = [int(i) for i in request.ids]
        return _Item(
            ids=ids,
            seed=seed_from_key(request.key),
            cap=self.frame_cap(len(ids)),
            language=conditioning.language,
            speaker=conditioning.speaker,
            instruct=conditioning.instruct,
            prompt=prompt,
        )

    def _default_conditioning(self) -> VoiceConditioning:
        """For warm-up, tuning and the canary: the first speaker, no instruction, a silent clone."""
        speaker = self.speakers[0] if self.mode == "custom_voice" and self.speakers else None
        return VoiceConditioning.model_validate({"model": self.model_name, "mode": self.mode, "speaker": speaker})

    def _generate(self, items: list[_Item]) -> list[torch.Tensor]:
        device = self.device
        input_ids = [torch.tensor([self._prefix + item.ids + self._suffix], device=device) for item in items]
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "languages": [item.language for item in items],
            "max_new_tokens": max(item.cap for item in items) + 1,
            "do_sample": False,
            "top_k": None,
            "top_p": None,
            "temperature": None,
            "subtalker_dosample": False,
            "subtalker_top_k": None,
            "subtalker_top_p": None,
            "subtalker_temperature": None,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.mode == "voice_clone":
            prompts = [item.prompt for item in items if item.prompt is not None]
            if len(prompts) != len(items):
                raise EngineError("a voice_clone batch item has no clone prompt")
            kwargs["voice_clone_prompt"] = {
                "ref_code": [self._ref_code(p) for p in prompts],
                "ref_spk_embedding": [torch.from_numpy(p.speaker_embedding).to(device) for p in prompts],
                "x_vector_only_mode": [p.ref_code is None for p in prompts],
                "icl_mode": [p.ref_code is not None for p in prompts],
            }
            kwargs["ref_ids"] = [
                self._text_ids(p.ref_text, ref=True) if p.ref_code is not None and p.ref_text else None for p in prompts
            ]
            kwargs["non_streaming_mode"] = False
        else:
            instructs = [item.instruct for item in items]
            size = str(self.model.tts_model_size or "")
            if self.mode == "custom_voice" and size and size in "0b6":
                instructs = [None] * len(items)  # the 0.6B CustomVoice checkpoint takes no instruction
            kwargs["instruct_ids"] = [self._text_ids(text) if text else None for text in instructs]
            kwargs["non_streaming_mode"] = True
            if self.mode == "custom_voice":
                kwargs["speakers"] = [item.speaker for item in items]
        with seeded_generation(
            self.model,
            [item.seed for item in items],
            talker=self.talker_sampling,
            codes=self.codes_sampling,
            caps=[item.cap for item in items],
            eos=self.eos,
        ):
            codes, _hidden = self.model.generate(**kwargs)
        return list(codes)

    def _decode(self, items: list[_Item], codes: list[torch.Tensor]) -> list[np.ndarray]:
        """Codec frames to audio; a clone's reference codes lead its decode (context) and are cut off after."""
        inputs = []
        for item, frames in zip(items, codes, strict=True):
            reference = self._ref_code(item.prompt) if item.prompt is not None else None
            inputs.append({"audio_codes": frames if reference is None else torch.cat([reference, frames], dim=0)})
        wavs, _rate = self.model.speech_tokenizer.decode(inputs)
        out = []
        for item, frames, wav in zip(items, codes, wavs, strict=True):
            lead = 0
            if item.prompt is not None and item.prompt.ref_code is not None:
                lead = int(item.prompt.ref_code.shape[0]) * self.samples_per_frame
            clip = np.ascontiguousarray(np.asarray(wav, dtype=np.float32)[lead:])
            expected = int(frames.shape[0]) * self.samples_per_frame
            if len(clip) != expected:
                raise EngineError(f"decoder returned {len(clip)} samples for {frames.shape[0]} frames")
            out.append(clip)
        return out

    # --- prompts and text ----------------------------------------------------------------------

    def _text_ids(self, text: str, *, ref: bool = False) -> torch.Tensor:
        """Instruction (user turn) or clone transcript (assistant turn) ids, as qwen_tts builds them."""
        template = f"<|im_start|>assistant\n{text}<|im_end|>\n" if ref else f"<|im_start|>user\n{text}<|im_end|>\n"
        cached = self._instructs.get(template)
        if cached is None:
            ids = self.tts.processor.tokenizer(template)["input_ids"]
            cached = torch.tensor([ids], device=self.device)
            if len(self._instructs) < 1024:
                self._instructs[template] = cached
        return cached

    def _ref_code(self, prompt: ClonePrompt | None) -> torch.Tensor | None:
        if prompt is None or prompt.ref_code is None:
            return None
        return torch.from_numpy(prompt.ref_code).to(self.device)

    def _prompt(self, conditioning: VoiceConditioning) -> ClonePrompt:
        if conditioning.prompt is None or conditioning.ref_audio is None:
            raise BadInputError("a voice_clone segment needs its clone prompt key and reference audio")
        if self.prompts is None:
            raise ConfigError("this qwen3-tts engine has no prompt store; cloned voices need storage")
        store, reference, text = self.prompts, conditioning.ref_audio, conditioning.ref_text
        return store.get(conditioning.prompt, lambda: self.compute_prompt(store.reference_audio(reference), text))

    def compute_prompt(self, audio: bytes, ref_text: str | None) -> ClonePrompt:
        """Speech codes and speaker embedding of a reference recording (the expensive, cached part)."""
        try:
            wav, rate = sf.read(io.BytesIO(audio), dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as exc:
            raise BadInputError(f"reference audio of a cloned voice is not readable WAV/FLAC: {exc}") from exc
        mono = wav.mean(axis=1).astype(np.float32)
        with self.backend.errors("computing a clone prompt"), torch.inference_mode():
            made = self.tts.create_voice_clone_prompt(
                ref_audio=(mono, int(rate)), ref_text=ref_text or None, x_vector_only_mode=not ref_text
            )[0]
        code = None if made.ref_code is None else made.ref_code.detach().cpu().numpy().astype(np.int64)
        embedding = made.ref_spk_embedding.detach().float().cpu().numpy()
        return ClonePrompt(code, embedding, ref_text or None)

    def _silent_prompt(self) -> ClonePrompt:
        """A neutral x-vector prompt for warm-up, tuning and the canary (no reference needed)."""
        size = int(self.model.config.speaker_encoder_config.enc_dim)
        return ClonePrompt(None, np.zeros(size, dtype=np.float32), None)

    # --- warm-up -------------------------------------------------------------------------------

    def canary_request(self) -> EngineRequest:
        ids = list(self.tts.processor.tokenizer("Hello.")["input_ids"])
        return EngineRequest(key="0" * 64, ids=ids)

    def warmup(self, shapes: Iterable[tuple[int, int]]) -> list[WarmupRecord]:
        """Run each (tokens, batch) shape for a couple of frames: there is nothing to compile, only to touch."""
        records = []
        for tokens, batch in shapes:
            requests = [EngineRequest(key=f"{row + 1:064x}", ids=[20 + row % 50] * tokens) for row in range(batch)]
            timings = []
            for _ in range(2):
                items = [self._item(request) for request in requests]
                for item in items:
                    item.cap = WARMUP_FRAMES
                started = time.perf_counter()
                self._run(items, {})
                timings.append(time.perf_counter() - started)
            records.append(WarmupRecord(tokens, batch, WARMUP_FRAMES, timings[0], timings[1]))
        return records

    def close(self) -> None:
        self._instructs.clear()
