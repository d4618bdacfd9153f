"""Piper VITS on onnxruntime: the baseline engine, and the default on CPU.

The voice graph is patched in memory to also output its per-phoneme frame
counts (the ``Ceil`` of the durations), so a padded batch can be trimmed to
each item's own length. onnxruntime draws the model's noise itself and
cannot be seeded, so only the noise-free path is reproducible.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import numpy as np

from shared.errors import DeviceError, EngineError
from shared.voices import VoiceFiles
from workers.devices.base import DeviceBackend
from workers.engines.base import Engine, EngineOutput, EngineRequest, WarmupRecord

#: Execution providers to ask for, per device family. onnxruntime silently
#: falls back to the CPU when a provider fails to load, so every provider
#: asked for is checked after the session is created.
PROVIDERS_BY_FAMILY: dict[str, list[str]] = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider"],
    "dcu": ["MIGraphXExecutionProvider", "ROCMExecutionProvider"],
    "npu": ["CANNExecutionProvider"],
}


class PiperOnnxEngine(Engine):
    name = "piper-onnx"

    def __init__(self, voice: VoiceFiles, backend: DeviceBackend | None = None, *, threads: int = 1) -> None:
        """Load ``voice`` for the opened card ``backend`` (None: the host's CPU, which needs nothing opened).

        onnxruntime drives the card itself: only the card's family and its
        index in this process are taken from the backend.
        """
        import onnx
        import onnxruntime as ort
        from piper.patch_voice_with_alignment import add_alignment_output

        family, local_index, device = "cpu", 0, "cpu"
        if backend is not None and backend.family != "cpu":
            family, local_index, device = backend.family, backend.local_index(), f"{backend.family}:{backend.index}"
        self.voice = voice
        self.device = device
        self.sample_rate = voice.sample_rate
        self.hop_length = int(voice.config.get("hop_length", 256))
        wanted = PROVIDERS_BY_FAMILY.get(family)
        if wanted is None:
            raise DeviceError(f"piper-onnx has no onnxruntime provider for device family {family!r}; use piper-torch")
        available = ort.get_available_providers()
        usable = [p for p in wanted if p in available]
        if not usable:
            raise DeviceError(
                f"onnxruntime provider {' or '.join(wanted)} for {device} is not installed "
                f"(available: {', '.join(available)}); install the matching onnxruntime build or use piper-torch"
            )
        provider = usable[0]
        provider_options = [{"device_id": local_index}] if provider != "CPUExecutionProvider" else [{}]

        model = onnx.load(str(voice.model_path))
        self._durations_output = add_alignment_output(model)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(
            model.SerializeToString(), sess_options=options, providers=[provider], provider_options=provider_options
        )
        loaded = self._session.get_providers()
        if provider not in loaded:
            raise DeviceError(
                f"onnxruntime did not load {provider} for {device} (it loaded {', '.join(loaded)}); "
                "refusing to run on the CPU by accident"
            )
        self.provider = provider
        self._speakers = int(voice.config.get("num_speakers", 1))

    def synthesize(self, batch: Sequence[EngineRequest], pad_to: int) -> EngineOutput:
        if not batch:
            return EngineOutput(audio=[])
        # onnxruntime runs any shape at no extra cost: pad only to the longest item, never to the bucket edge.
        width = max(len(item.ids) for item in batch)
        ids = np.zeros((len(batch), width), dtype=np.int64)
        lengths = np.zeros((len(batch),), dtype=np.int64)
        for row, item in enumerate(batch):
            ids[row, : len(item.ids)] = item.ids
            lengths[row] = len(item.ids)
        params = batch[0].params
        if any(item.params != params for item in batch[1:]):
            # onnxruntime takes one scales vector per call: split by parameters.
            return self._by_params(batch, pad_to)
        feeds: dict[str, np.ndarray] = {
            "input": ids,
            "input_lengths": lengths,
            "scales": np.array([params.noise_scale, params.length_scale, params.noise_w], dtype=np.float32),
        }
        if self._speakers > 1:
            # Piper exports sid with a fixed size of one: one speaker per call, broadcast over the batch
            # (items with other speakers have other params, so _by_params gave them their own call).
            feeds["sid"] = np.array([params.speaker or 0], dtype=np.int64)
        started = time.perf_counter()
        try:
            audio, durations = self._session.run(None, feeds)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EngineError(f"onnxruntime failed on a batch of {len(batch)}: {exc}") from exc
        elapsed = time.perf_counter() - started
        audio = audio.reshape(len(batch), -1)
        frames = durations.reshape(len(batch), -1).sum(axis=1).astype(np.int64)
        outputs = [
            np.ascontiguousarray(audio[row, : int(frames[row]) * self.hop_length], dtype=np.float32)
            for row in range(len(batch))
        ]
        return EngineOutput(
            audio=outputs,
            stage_seconds={"synthesis": elapsed},
            padded_tokens=len(batch) * width,
            useful_tokens=int(lengths.sum()),
            padded_frames=len(batch) * int(frames.max()),
            useful_frames=int(frames.sum()),
        )

    def _by_params(self, batch: Sequence[EngineRequest], pad_to: int) -> EngineOutput:
        groups: dict[object, list[int]] = {}
        for position, item in enumerate(batch):
            groups.setdefault(item.params, []).append(position)
        audio: list[np.ndarray] = [np.zeros(0, dtype=np.float32)] * len(batch)
        total = EngineOutput(audio=[])
        for positions in groups.values():
            part = self.synthesize([batch[p] for p in positions], pad_to)
            for position, samples in zip(positions, part.audio, strict=True):
                audio[position] = samples
            for stage, seconds in part.stage_seconds.items():
                total.stage_seconds[stage] = total.stage_seconds.get(stage, 0.0) + seconds
            total.padded_tokens += part.padded_tokens
            total.useful_tokens += part.useful_tokens
            total.padded_frames += part.padded_frames
            total.useful_frames += part.useful_frames
        total.audio = audio
        return total

    def warmup(self, shapes: Iterable[tuple[int, int]]) -> list[WarmupRecord]:
        """One call per shape: onnxruntime compiles nothing per shape, and a second call measured as fast as
        the first (0.05-0.8 s each on two CPU cores) while it doubled every worker's start."""
        records = []
        for tokens, batch_size in shapes:
            requests = [EngineRequest(key="0" * 64, ids=[1] + [14, 0] * ((tokens - 2) // 2) + [2])] * batch_size
            started = time.perf_counter()
            self.synthesize(requests, tokens)
            took = time.perf_counter() - started
            records.append(WarmupRecord(tokens, batch_size, None, took, took))
        return records
