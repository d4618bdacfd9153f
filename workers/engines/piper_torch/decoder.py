"""The HiFi-GAN generator that turns the latent frames into samples.

Upsampling rates, kernel sizes, residual-block kernels and dilations and the
LeakyReLU slopes are all read from the voice. Unlike the training code, the
input to every convolution is masked to each item's own length: the
generator is otherwise unmasked, so padding frames (from a batch, or from a
static frame bucket) would bleed into the last few hundred samples. With the
mask, an item in a padded bucket computes exactly what it computes alone.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from shared.errors import BadInputError
from workers.engines.piper_torch.modules import conv1d, conv_transpose1d, sequence_mask
from workers.engines.piper_torch.onnx_weights import VoiceWeights


class ResidualBlock(nn.Module):
    """HiFi-GAN residual block: type "1" (pairs of dilated + plain convs) or type "2" (dilated convs)."""

    def __init__(self, weights: VoiceWeights, prefix: str, slope: float) -> None:
        super().__init__()
        self.slope = slope
        if weights.indices(f"{prefix}.convs"):
            self.first = nn.ModuleList(
                conv1d(weights, f"{prefix}.convs.{i}") for i in weights.indices(f"{prefix}.convs")
            )
            self.second: nn.ModuleList | None = None
        else:
            pairs = weights.indices(f"{prefix}.convs1")
            if not pairs:
                raise BadInputError(f"{prefix}: neither a type 1 nor a type 2 HiFi-GAN residual block")
            self.first = nn.ModuleList(conv1d(weights, f"{prefix}.convs1.{i}") for i in pairs)
            self.second = nn.ModuleList(conv1d(weights, f"{prefix}.convs2.{i}") for i in pairs)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.first):
            residual = conv(F.leaky_relu(x, self.slope) * mask)
            if self.second is not None:
                residual = self.second[i](F.leaky_relu(residual, self.slope) * mask)
            x = x + residual
        return x


class Generator(nn.Module):
    """Latent ``[B, C, T]`` + frame counts -> audio ``[B, T * hop]`` in [-1, 1]."""

    def __init__(self, weights: VoiceWeights) -> None:
        super().__init__()
        self.conv_pre = conv1d(weights, "dec.conv_pre")
        self.cond = conv1d(weights, "dec.cond") if weights.has("dec.cond.weight") else None
        """Multi-speaker voices: the speaker embedding, projected and added after the first convolution."""
        stages = weights.indices("dec.ups")
        ups = [conv_transpose1d(weights, f"dec.ups.{i}") for i in stages]
        self.ups = nn.ModuleList(ups)
        self.rates = [int(up.stride[0]) for up in ups]
        for up in ups:
            kernel, stride, padding = up.kernel_size[0], up.stride[0], int(up.padding[0])
            if kernel - 2 * padding != stride:
                raise BadInputError(f"upsampling layer with kernel {kernel}, stride {stride}, padding {padding}")
        blocks = weights.indices("dec.resblocks")
        if not stages or len(blocks) % len(stages):
            raise BadInputError(f"{len(blocks)} residual blocks do not divide among {len(stages)} upsampling layers")
        self.kernels_per_stage = len(blocks) // len(stages)
        block_slope = _slope(weights, r"dec/resblocks\.\d+/LeakyRelu(_\d+)?")
        self.resblocks = nn.ModuleList(ResidualBlock(weights, f"dec.resblocks.{i}", block_slope) for i in blocks)
        self.conv_post = conv1d(weights, "dec.conv_post")
        stage_slopes = sorted(
            (
                (int(m.group(1) or 0), slope)
                for name, slope in weights.leaky_slopes.items()
                if (m := re.fullmatch(r"dec/LeakyRelu(?:_(\d+))?", name))
            ),
        )
        if len(stage_slopes) != len(stages) + 1:
            raise BadInputError(f"expected {len(stages) + 1} vocoder LeakyRelu nodes, found {len(stage_slopes)}")
        self.stage_slopes = [slope for _, slope in stage_slopes[:-1]]
        self.final_slope = stage_slopes[-1][1]
        self.hop = 1
        for rate in self.rates:
            self.hop *= rate

    def forward(self, z: torch.Tensor, frames: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        length = z.shape[-1]
        mask = sequence_mask(frames, length, z.dtype)
        x = self.conv_pre(z * mask)
        if self.cond is not None and speaker is not None:
            x = x + self.cond(speaker)
        scale = 1
        for stage, (up, rate) in enumerate(zip(self.ups, self.rates, strict=True)):
            x = up(F.leaky_relu(x, self.stage_slopes[stage]) * mask)
            scale *= rate
            mask = sequence_mask(frames * scale, length * scale, z.dtype)
            blocks = self.resblocks[stage * self.kernels_per_stage : (stage + 1) * self.kernels_per_stage]
            total = blocks[0](x, mask)
            for block in blocks[1:]:
                total = total + block(x, mask)
            x = total / self.kernels_per_stage
        x = self.conv_post(F.leaky_relu(x, self.final_slope) * mask)
        return torch.tanh(x).squeeze(1)


def _slope(weights: VoiceWeights, pattern: str) -> float:
    found = {slope for name, slope in weights.leaky_slopes.items() if re.fullmatch(pattern, name)}
    if len(found) != 1:
        raise BadInputError(f"expected one LeakyRelu slope for {pattern}, found {sorted(found)}")
    return found.pop()
