"""``piper-torch``: Piper voices in PyTorch on any device family, matched to onnxruntime.

A batch runs in two stages with one host sync between them (see ``model``):
stage A on ``[B, L]`` tokens, then the frame totals pick a frame bucket
``T`` (``frames``), then stage B on ``[B, C, T]``. When and how the stages
are compiled, and how compiles stay off the serving path, is ``compiling``.

Frame-sorted decoding: the frame count of a segment is only known after
stage A, and items with the same token count differ by about 9% in frames.
Given more items than its decode batch size for the bucket
(``sort_by_frames``), the engine runs stage A on all of them, sorts them by
frames and runs stage B in batches of that size, so each decoded batch holds
items of nearly the same length. That is what brings useful frames per
computed frame above 0.9 at a batch of 16 (see ``voxfarm bench``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shared.errors import BadInputError, ConfigError, DeviceError, DeviceOutOfMemoryError, EngineError
from shared.voices import VoiceFiles
from workers.devices.base import DeviceBackend
from workers.engines.base import Engine, EngineOutput, EngineRequest, WarmupRecord
from workers.engines.piper_torch.compiling import (
    compile_stages,
    compiled_pays,
    mark_symbolic_frames,
    nearest_warmed,
    no_compiling_after_warmup,
)
from workers.engines.piper_torch.frames import (
    STATIC_FRAME_BUCKETS,
    frame_bucket,
    frame_buckets_for,
    frame_sorted_batches,
)
from workers.engines.piper_torch.model import AudioStage, DurationStage, build_stages
from workers.engines.piper_torch.noise import SegmentNoise
from workers.engines.piper_torch.onnx_weights import load_voice_weights

log = logging.getLogger(__name__)

#: Stage A pads its outputs to this many tokens so stage B compiles per (batch, frames) only.
TOKEN_CAPACITY = 512
#: Stage B's arithmetic. ``tf32`` keeps fp32 tensors but lets CUDA-family matmuls and convolutions
#: round inputs to TensorFloat-32; ``fp32`` turns that off, so it matches onnxruntime to 1e-4.
PRECISIONS = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class _Result:
    """What the two stages produced for one padded batch."""

    audio: list[np.ndarray]
    """Per real item, trimmed to its own frames."""
    frames: list[int]
    padded_frames: int
    """Rows x frame bucket, summed over the decoded batches."""
    encoder_s: float
    decoder_s: float


@dataclass
class _Prepared:
    """Host-side inputs of one padded batch."""

    ids: torch.Tensor
    lengths: torch.Tensor
    duration_noise: torch.Tensor
    noise_w: torch.Tensor
    length_scale: torch.Tensor
    noise_scale: torch.Tensor
    noises: list[SegmentNoise | None]
    speakers: torch.Tensor
    """Speaker id per row (0 for a single-speaker voice, which ignores it)."""


class PiperTorchEngine(Engine):
    """A Piper voice as two (optionally compiled) PyTorch stages on one device."""

    name = "piper-torch"
    sorts_by_frames = True

    def __init__(
        self,
        voice: VoiceFiles,
        backend: DeviceBackend,
        *,
        cache_dir: Path | None = None,
        precision: str = "fp32",
        compile: bool | None = None,
        frame_buckets: Sequence[int] | None = None,
        threads: int = 1,
        token_capacity: int = TOKEN_CAPACITY,
    ) -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {precision!r}; use one of: {', '.join(PRECISIONS)}")
        if frame_buckets is not None and (
            not frame_buckets or list(frame_buckets) != sorted(set(frame_buckets)) or frame_buckets[0] < 1
        ):
            raise ConfigError(f"frame buckets must be increasing positive integers, got {list(frame_buckets)}")
        self.backend = backend
        self.device = backend.device
        self.precision = precision
        self.dtype = PRECISIONS[precision]
        if not self.backend.supports_dtype(self.dtype) or (precision == "tf32" and self.device.type != "cuda"):
            raise ConfigError(f"{self.device} does not support {precision}; use fp32")
        if self.device.type == "cuda":
            # Process-wide switches; a worker process holds one engine.
            torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
            torch.backends.cudnn.allow_tf32 = precision == "tf32"
        if self.device.type == "cpu":
            torch.set_num_threads(threads)
        self.voice = voice
        self.sample_rate = voice.sample_rate
        if frame_buckets is None and self.backend.static_frames:
            frame_buckets = STATIC_FRAME_BUCKETS
        self.frame_buckets: tuple[int, ...] | None = None if frame_buckets is None else tuple(frame_buckets)
        """Static frame buckets, or None: multiples of FRAME_STEP on a symbolic frame axis."""
        self._decode_sizes: dict[int, int] = {}
        self.compiled = self.backend.compiles_by_default if compile is None else compile
        # compile=None lets warm-up drop the compiled graphs where they measure no faster than eager.
        self._decide_by_measurement = compile is None
        self.cache_dir = cache_dir

        weights = load_voice_weights(voice.model_path)
        stage_a, stage_b, self.shape = build_stages(weights, token_capacity)
        self.hop = self.shape.hop
        # Durations are rounded up (ceil) from stage A: keep it in fp32 so precision never moves a frame.
        self._eager_a = stage_a.to(self.device)
        self._eager_b = stage_b.to(self.device, self.dtype)
        self._stage_a: Any = self._eager_a
        self._stage_b: Any = self._eager_b
        if self.compiled:
            self._stage_a, self._stage_b = compile_stages(
                backend, (self._eager_a, self._eager_b), symbolic_frames=self.frame_buckets is None, cache_dir=cache_dir
            )
        self._warm_a: set[tuple[int, int]] = set()
        self._warm_b: set[tuple[int, int]] = set()

    @property
    def stages(self) -> tuple[DurationStage, AudioStage]:
        """The two eager modules (stage A, stage B), e.g. for ``torch._dynamo.explain``."""
        return self._eager_a, self._eager_b

    # --- synthesis -------------------------------------------------------------------------

    def synthesize(self, batch: Sequence[EngineRequest], pad_to: int) -> EngineOutput:
        if not batch:
            return EngineOutput(audio=[])
        started = time.perf_counter()
        rows = self._batch_rows(len(batch))
        prepared = self._prepare(batch, pad_to, rows)
        prepare_s = time.perf_counter() - started
        try:
            with self.backend.errors("synthesis"), torch.inference_mode(), self._no_compiling_after_warmup():
                result = self._run(prepared, real=len(batch), pad_to=pad_to)
        except DeviceOutOfMemoryError:
            self._shrink_decode_size(pad_to, len(batch))
            raise
        except (DeviceError, BadInputError):
            raise
        except Exception as exc:
            raise EngineError(f"piper-torch failed on a batch of {len(batch)} on {self.device}: {exc}") from exc
        return EngineOutput(
            audio=result.audio,
            stage_seconds={"prepare": prepare_s, "encoder": result.encoder_s, "decoder": result.decoder_s},
            padded_tokens=rows * prepared.ids.shape[1],
            useful_tokens=sum(len(item.ids) for item in batch),
            padded_frames=result.padded_frames,
            useful_frames=sum(result.frames[: len(batch)]),
        )

    def sort_by_frames(self, decode_sizes: Mapping[int, int], call_sizes: Mapping[int, int]) -> list[WarmupRecord]:
        self._decode_sizes = {edge: max(1, size) for edge, size in decode_sizes.items()}
        return self.warmup_durations(call_sizes.items())

    def durations(self, batch: Sequence[EngineRequest], pad_to: int = 0) -> list[int]:
        """Frames each segment renders to, from stage A alone: for planning buckets without vocoding."""
        if not batch:
            return []
        prepared = self._prepare(batch, pad_to, self._batch_rows(len(batch)))
        with self.backend.errors("durations"), torch.inference_mode(), self._no_compiling_after_warmup():
            frames = self._stage_a(*self._inputs_a(prepared))[3]
            return [int(count) for count in frames[: len(batch)].cpu()]

    def _no_compiling_after_warmup(self) -> AbstractContextManager[Any]:
        return no_compiling_after_warmup(self.compiled and bool(self._warm_a))

    def _shrink_decode_size(self, edge: int, items: int) -> None:
        """Out of memory on a frame-sorted call: halve its decode batches too, not only the call.

        The runner halves the call and lowers the bucket's call cap; without
        this the engine would keep decoding batches of the size that did not
        fit until calls shrank below it, and frame sorting would end there.
        """
        size = self._decode_sizes.get(edge)
        if size is not None and size > 1 and items > size:
            self._decode_sizes[edge] = size // 2
            log.warning("out of device memory at bucket %d: decode batches lowered to %d", edge, size // 2)

    def _batch_rows(self, size: int) -> int:
        """Pad stage A's batch up to the nearest warmed batch size, so no new shape is met."""
        return nearest_warmed(self._warm_a, size)

    def _decode_rows(self, size: int) -> int:
        """Pad stage B's batch likewise."""
        return nearest_warmed(self._warm_b, size)

    def _decode_groups(self, frame_counts: Sequence[int], rows: int, real: int, pad_to: int) -> list[list[int]]:
        """Which rows of stage A each stage-B call decodes, in order.

        Up to the decode size, all rows in one call (filler rows included: they
        have no frames). Past it, the real rows sorted by frames, cut into
        batches of the decode size, each padded to a warmed size by repeating
        its shortest row (the repeat's audio is dropped).
        """
        size = self._decode_sizes.get(pad_to)
        if size is None or real <= size:
            return [list(range(rows))]
        return [
            group + [group[0]] * (self._decode_rows(len(group)) - len(group))
            for group in frame_sorted_batches(frame_counts[:real], size)
        ]

    def _prepare(self, batch: Sequence[EngineRequest], pad_to: int, rows: int) -> _Prepared:
        width = max(pad_to, *(len(item.ids) for item in batch))
        ids = torch.zeros(rows, width, dtype=torch.long)
        lengths = torch.ones(rows, dtype=torch.long)
        duration_noise = torch.zeros(rows, 2, width)
        # Filler rows: one pad token, zero length scale (no frames), no noise.
        noise_w, length_scale, noise_scale = torch.zeros(rows), torch.zeros(rows), torch.zeros(rows)
        noises: list[SegmentNoise | None] = [None] * rows
        speakers = torch.zeros(rows, dtype=torch.long)
        for row, item in enumerate(batch):
            count = len(item.ids)
            if count == 0:
                raise BadInputError(f"segment {item.key[:12]} has no tokens")
            if max(item.ids) >= self.shape.vocabulary or min(item.ids) < 0:
                raise BadInputError(
                    f"segment {item.key[:12]} has token ids outside the voice's {self.shape.vocabulary}"
                )
            ids[row, :count] = torch.tensor(item.ids, dtype=torch.long)
            lengths[row] = count
            noise = SegmentNoise(item.key)
            duration_noise[row, :, :count] = noise.durations(count)
            noises[row] = noise
            noise_w[row] = item.params.noise_w
            length_scale[row] = item.params.length_scale
            noise_scale[row] = item.params.noise_scale
            speakers[row] = self._speaker(item)
        return _Prepared(ids, lengths, duration_noise, noise_w, length_scale, noise_scale, noises, speakers)

    def _speaker(self, item: EngineRequest) -> int:
        speaker = item.params.speaker or 0
        if speaker >= self.shape.speakers:
            raise BadInputError(
                f"segment {item.key[:12]} asks for speaker {speaker}; voice {self.voice.id} has {self.shape.speakers}"
            )
        return speaker

    def _run(
        self,
        prepared: _Prepared,
        real: int,
        frames_bucket: int | None = None,
        stages: tuple[Any, Any] | None = None,
        pad_to: int = 0,
    ) -> _Result:
        """Both stages on one padded batch; ``stages`` and ``frames_bucket`` force a path (warm-up)."""
        rows, width = prepared.ids.shape
        started = time.perf_counter()
        stage_a = self._stage_a if stages is None else stages[0]
        durations, mean, log_scale, frames = stage_a(*self._inputs_a(prepared))
        frame_counts = [int(f) for f in frames.cpu()]  # the one host sync between the stages
        encoder_s = time.perf_counter() - started

        started = time.perf_counter()
        audio: list[np.ndarray | None] = [None] * real
        padded = 0
        stage_a_out = (durations, mean, log_scale, frames)
        for group in self._decode_groups(frame_counts, rows, real, pad_to or width):
            decoded, bucket = self._decode(
                prepared, stage_a_out, frame_counts, group, real, frames_bucket, None if stages is None else stages[1]
            )
            padded += len(group) * bucket
            for position, row in enumerate(group):
                if row < real and audio[row] is None:
                    audio[row] = np.ascontiguousarray(decoded[position, : frame_counts[row] * self.hop])
        if any(clip is None for clip in audio):
            raise EngineError("a decode plan left an item without audio")  # never a silent drop
        done = [clip for clip in audio if clip is not None]
        return _Result(done, frame_counts, padded, encoder_s, time.perf_counter() - started)

    def _decode(  # noqa: PLR0917 - one stage-B call over chosen rows of stage A's output
        self,
        prepared: _Prepared,
        stage_a_out: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
        frame_counts: Sequence[int],
        group: list[int],
        real: int,
        frames_bucket: int | None,
        stage_b: Any,
    ) -> tuple[np.ndarray, int]:
        """Stage B on the rows ``group`` of stage A's output: (audio [rows, samples], frame bucket)."""
        durations, mean, log_scale, frames = stage_a_out
        noise_scale, speakers = prepared.noise_scale, prepared.speakers
        if group != list(range(len(frame_counts))):
            index = torch.tensor(group, dtype=torch.long)
            on_device = index.to(durations.device)
            durations, mean, log_scale, frames = (t.index_select(0, on_device) for t in stage_a_out)
            noise_scale, speakers = noise_scale.index_select(0, index), speakers.index_select(0, index)
        longest = max(frame_counts[row] for row in group if row < real)
        # Buckets exist for compiled graphs; an eager engine pads only to the batch's longest item.
        bucket = frames_bucket or (self.frames_bucket(longest) if self.compiled else longest)
        noise = torch.zeros(len(group), self.shape.prior_channels, bucket)
        for position, row in enumerate(group):
            segment_noise = prepared.noises[row]
            if segment_noise is not None and float(prepared.noise_scale[row]) > 0:
                count = min(frame_counts[row], bucket)
                latent = segment_noise.latent(frame_counts[row], self.shape.prior_channels)
                noise[position, :, :count] = latent[:, :count]
        inputs = self._inputs_b(durations, mean, log_scale, frames, noise, noise_scale, speakers)
        if self.compiled and self.frame_buckets is None:
            mark_symbolic_frames(inputs[4])
        audio = (stage_b or self._stage_b)(*inputs)
        return audio.float().cpu().numpy(), bucket

    def _inputs_a(self, prepared: _Prepared) -> tuple[torch.Tensor, ...]:
        tensors = (
            prepared.ids,
            prepared.lengths,
            prepared.duration_noise,
            prepared.noise_w,
            prepared.length_scale,
            prepared.speakers,
        )
        return tuple(tensor.to(self.device) for tensor in tensors)

    def _inputs_b(  # noqa: PLR0917 - stage B's inputs, in its forward's order
        self,
        durations: torch.Tensor,
        mean: torch.Tensor,
        log_scale: torch.Tensor,
        frames: torch.Tensor,
        noise: torch.Tensor,
        noise_scale: torch.Tensor,
        speakers: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        bucket = noise.shape[-1]
        return (
            durations,
            mean.to(self.dtype),
            log_scale.to(self.dtype),
            frames.clamp(max=bucket),
            noise.to(self.device, self.dtype),
            noise_scale.to(self.device, self.dtype),
            speakers.to(self.device),
        )

    def stage_inputs(
        self, tokens: int, batch: int, frames: int
    ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """Inputs of stage A and stage B for a synthetic batch of this shape (for tracing and explain)."""
        prepared = self._synthetic(tokens, batch)
        inputs_a = self._inputs_a(prepared)
        with torch.inference_mode():
            durations, mean, log_scale, frame_counts = self._eager_a(*inputs_a)
        noise = torch.zeros(batch, self.shape.prior_channels, frames)
        return inputs_a, self._inputs_b(
            durations, mean, log_scale, frame_counts, noise, prepared.noise_scale, prepared.speakers
        )

    def frames_bucket(self, frames: int) -> int:
        """The smallest frame bucket that holds ``frames``; past the largest, a multiple of it."""
        return frame_bucket(frames, self.frame_buckets)

    # --- warm-up ---------------------------------------------------------------------------

    def frame_buckets_for(self, tokens: int) -> list[int]:
        """The frame buckets warm-up runs for a token bucket (see ``frames.frame_buckets_for``)."""
        return frame_buckets_for(tokens, self.frame_buckets)

    def warmup(
        self, shapes: Iterable[tuple[int, int]], frame_buckets: Sequence[int] | None = None
    ) -> list[WarmupRecord]:
        """Compile and run every (tokens, batch, frames) shape; afterwards other shapes run eagerly.

        Compiled engines also time each shape once eagerly. Unless compilation
        was asked for explicitly, an engine whose compiled graphs are not
        faster overall on this device switches to eager: a compile that does
        not pay is not kept.
        """
        records: list[WarmupRecord] = []
        compiled = (self._stage_a, self._stage_b)
        eager = (self._eager_a, self._eager_b)
        for tokens, batch in shapes:
            for frames in frame_buckets or self.frame_buckets_for(tokens):
                prepared = self._synthetic(tokens, batch)
                first = self._timed(prepared, frames, compiled)
                steady = self._timed(prepared, frames, compiled)
                eager_s = self._timed(prepared, frames, eager) if self.compiled else None
                records.append(WarmupRecord(tokens, batch, frames, first, steady, eager_s=eager_s))
                self._warm_a.add((batch, tokens))
                self._warm_b.add((batch, frames))
        if self.compiled and self._decide_by_measurement and not compiled_pays(records):
            log.info("compiled piper-torch is not faster than eager on %s; running eagerly", self.device)
            self._stage_a, self._stage_b, self.compiled = self._eager_a, self._eager_b, False
        return records

    def warmup_durations(self, shapes: Iterable[tuple[int, int]]) -> list[WarmupRecord]:
        """Compile and run stage A alone for (tokens, batch) shapes: the larger calls of frame-sorted decoding."""
        records: list[WarmupRecord] = []
        for tokens, batch in shapes:
            if (batch, tokens) in self._warm_a:
                continue
            prepared = self._synthetic(tokens, batch)
            timings = []
            for _ in range(2):
                started = time.perf_counter()
                with self.backend.errors("warm-up"), torch.inference_mode():
                    self._stage_a(*self._inputs_a(prepared))[3].cpu()
                timings.append(time.perf_counter() - started)
            records.append(WarmupRecord(tokens, batch, None, timings[0], timings[1]))
            self._warm_a.add((batch, tokens))
        return records

    def _synthetic(self, tokens: int, batch: int) -> _Prepared:
        ids = [*([1] + [14, 0] * tokens)[: tokens - 1], 2]
        requests = [EngineRequest(key=f"{row + 1:064x}", ids=ids) for row in range(batch)]
        return self._prepare(requests, tokens, batch)

    def _timed(self, prepared: _Prepared, frames: int, stages: tuple[Any, Any]) -> float:
        started = time.perf_counter()
        with self.backend.errors("warm-up"), torch.inference_mode():
            self._run(prepared, real=prepared.ids.shape[0], frames_bucket=frames, stages=stages)
            self.backend.synchronize()
        return time.perf_counter() - started

    def close(self) -> None:
        self._stage_a = self._stage_b = None
        self._warm_a.clear()
        self._warm_b.clear()
