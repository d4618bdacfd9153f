"""piper-torch computes what onnxruntime computes, item by item and in padded batches.

Sentences are from the project's corpus books (Standard Ebooks editions,
CC0): H. G. Wells, The Time Machine; A. Conan Doyle, The Adventures of
Sherlock Holmes; Mary Shelley, Frankenstein.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from engine_helpers import NOISE_OFF, max_abs_diff, request

from shared.errors import BadInputError
from shared.schema import SynthesisParams
from workers.engines.piper_onnx import PiperOnnxEngine
from workers.engines.piper_torch import PiperTorchEngine

#: (token bucket, text): each text's token count falls inside its bucket (above the previous edge).
BUCKET_SENTENCES = [
    (32, "Oh!"),
    (32, "Mrs."),
    (64, "He was at work again."),
    (64, "I passed the night wretchedly."),
    (128, "To Sherlock Holmes she is always the woman."),
    (128, "For this I had deprived myself of rest and health."),
    (256, "It was on a dreary night of November, that I beheld the accomplishment of my toils."),
    (
        256,
        "He was pacing the room swiftly, eagerly, with his head sunk upon his chest and his hands clasped behind him.",
    ),
    (
        512,
        "With an anxiety that almost amounted to agony, I collected the instruments of life around me, that I might "
        "infuse a spark of being into the lifeless thing that lay at my feet.",
    ),
    # Two sentences joined into one long segment, as the frontend's longest bucket holds.
    (
        512,
        "I had desired it with an ardour that far exceeded moderation; but now that I had finished, the beauty of "
        "the dream vanished, and breathless horror and disgust filled my heart. For this I had deprived myself of "
        "rest and health.",
    ),
]
#: Parity bound from the issue: noise off, same ids, same sample count.
PARITY_ATOL = 1e-4


@pytest.mark.parametrize(("bucket", "text"), BUCKET_SENTENCES, ids=[f"b{b}-{t[:12]}" for b, t in BUCKET_SENTENCES])
def test_matches_onnxruntime_with_noise_off_in_every_bucket(
    bucket: int,
    text: str,
    phonemize: Callable[[str], list[int]],
    torch_engine: PiperTorchEngine,
    onnx_engine: PiperOnnxEngine,
) -> None:
    ids = phonemize(text)
    lower = 0 if bucket == 32 else bucket // 2
    assert lower < len(ids) <= bucket, f"{len(ids)} tokens is outside bucket {bucket}: fix the test text"
    item = request(ids)

    expected = onnx_engine.synthesize([item], pad_to=len(ids)).audio[0]
    actual = torch_engine.synthesize([item], pad_to=bucket).audio[0]

    assert actual.dtype == np.float32
    assert actual.shape == expected.shape
    assert max_abs_diff(actual, expected) < PARITY_ATOL


def test_padded_batch_gives_each_item_its_own_length_and_audio(
    phonemize: Callable[[str], list[int]], torch_engine: PiperTorchEngine
) -> None:
    texts = [text for bucket, text in BUCKET_SENTENCES if bucket in (64, 128)]
    items = [request(phonemize(text), SynthesisParams(), name=text) for text in texts]

    batched = torch_engine.synthesize(items, pad_to=128)

    for item, audio in zip(items, batched.audio, strict=True):
        alone = torch_engine.synthesize([item], pad_to=len(item.ids)).audio[0]
        assert audio.shape == alone.shape
        assert max_abs_diff(audio, alone) < 1e-3
    assert batched.useful_tokens == sum(len(item.ids) for item in items)
    assert batched.padded_tokens == len(items) * 128
    assert batched.useful_frames * torch_engine.hop == sum(len(audio) for audio in batched.audio)


def test_items_with_different_parameters_share_a_batch(
    phonemize: Callable[[str], list[int]], torch_engine: PiperTorchEngine
) -> None:
    ids = phonemize("He was at work again.")
    slow = request(ids, SynthesisParams(noise_scale=0.0, noise_w=0.0, length_scale=1.5), name="slow")
    plain = request(ids, NOISE_OFF, name="plain")

    together = torch_engine.synthesize([slow, plain], pad_to=64).audio

    assert max_abs_diff(together[0], torch_engine.synthesize([slow], pad_to=64).audio[0]) < 1e-3
    assert max_abs_diff(together[1], torch_engine.synthesize([plain], pad_to=64).audio[0]) < 1e-3
    assert len(together[0]) > 1.3 * len(together[1])


def test_same_segment_twice_gives_identical_audio_and_other_keys_differ(
    phonemize: Callable[[str], list[int]], torch_engine: PiperTorchEngine
) -> None:
    ids = phonemize("To Sherlock Holmes she is always the woman.")
    noisy = SynthesisParams()  # default noise scales: the noise comes from the key's seed

    first = torch_engine.synthesize([request(ids, noisy, name="key-a")], pad_to=128).audio[0]
    again = torch_engine.synthesize([request(ids, noisy, name="key-a")], pad_to=128).audio[0]
    other = torch_engine.synthesize([request(ids, noisy, name="key-b")], pad_to=128).audio[0]

    assert np.array_equal(first, again)
    assert first.shape != other.shape or max_abs_diff(first, other) > 1e-2


def test_bf16_output_correlates_with_fp32(
    phonemize: Callable[[str], list[int]], torch_engine: PiperTorchEngine
) -> None:
    bf16 = PiperTorchEngine(torch_engine.voice, torch_engine.backend, compile=False, precision="bf16")
    item = request(phonemize("The laboratory got hazy and went dark."))

    reference = torch_engine.synthesize([item], pad_to=128).audio[0]
    reduced = bf16.synthesize([item], pad_to=128).audio[0]

    assert reduced.shape == reference.shape  # durations stay in fp32, so no frame moves
    assert np.corrcoef(reduced, reference)[0, 1] >= 0.99


def test_token_ids_the_voice_does_not_have_are_bad_input(torch_engine: PiperTorchEngine) -> None:
    with pytest.raises(BadInputError, match="outside"):
        torch_engine.synthesize([request([1, 999, 2])], pad_to=32)
    with pytest.raises(BadInputError, match="no tokens"):
        torch_engine.synthesize([request([])], pad_to=32)


def test_durations_alone_predict_the_rendered_frames(
    phonemize: Callable[[str], list[int]], torch_engine: PiperTorchEngine
) -> None:
    texts = [text for bucket, text in BUCKET_SENTENCES if bucket == 64]
    items = [request(phonemize(text), SynthesisParams(), name=text) for text in texts]

    frames = torch_engine.durations(items, pad_to=64)
    audio = torch_engine.synthesize(items, pad_to=64).audio

    assert frames == [len(samples) // torch_engine.hop for samples in audio]


def test_padding_frames_leaves_an_items_samples_unchanged(torch_engine: PiperTorchEngine) -> None:
    # Loud random latents make any leak from the padded frames into the item's last samples visible.
    inputs_a, _ = torch_engine.stage_inputs(tokens=32, batch=1, frames=1)
    duration_stage, audio_stage = torch_engine.stages
    generator = torch.Generator().manual_seed(7)
    with torch.inference_mode():
        durations, mean, log_scale, frames = duration_stage(*inputs_a)
        count = int(frames[0])
        noise = torch.randn(1, torch_engine.shape.prior_channels, count, generator=generator)
        scale, speakers = torch.ones(1), torch.zeros(1, dtype=torch.long)
        exact = audio_stage(durations, mean, log_scale, frames, noise, scale, speakers)
        padded = audio_stage(durations, mean, log_scale, frames, F.pad(noise, (0, count)), scale, speakers)

    assert padded.shape[-1] == 2 * exact.shape[-1]
    assert torch.allclose(padded[:, : exact.shape[-1]], exact, atol=1e-5, rtol=0)
