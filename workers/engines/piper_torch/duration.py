"""The stochastic duration predictor, run in reverse: noise -> log-durations per token.

Piper voices use VITS's flow-based predictor: an affine flow and a stack of
convolutional flows whose coupling is a monotonic rational-quadratic spline
(Durkan et al., "Neural Spline Flows", 2019) with linear tails. At inference
the flows run backwards from Gaussian noise (scaled by ``noise_w``); the
first convolutional flow only shapes the training posterior and is skipped,
which is why the exported voice has no weights for it. The spline is written
with ``torch.where`` instead of boolean indexing so shapes stay static.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from shared.errors import BadInputError
from workers.engines.piper_torch.modules import ChannelLayerNorm, conv1d
from workers.engines.piper_torch.onnx_weights import VoiceWeights

#: Floors of the spline's bin widths, heights and knot derivatives (the
#: defaults of the neural-spline-flow transform that VITS uses).
MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3
#: The searchsorted tolerance on the last knot, so a value equal to the bound falls in the last bin.
SEARCH_EPS = 1e-6


class DilatedDepthSeparableConv(nn.Module):
    """Residual stack of dilated depthwise convs + 1x1 convs with layer norm and exact GELU."""

    def __init__(self, weights: VoiceWeights, prefix: str) -> None:
        super().__init__()
        layers = weights.indices(f"{prefix}.convs_sep")
        self.separable = nn.ModuleList(conv1d(weights, f"{prefix}.convs_sep.{i}") for i in layers)
        self.pointwise = nn.ModuleList(conv1d(weights, f"{prefix}.convs_1x1.{i}") for i in layers)
        self.norm_1 = nn.ModuleList(ChannelLayerNorm(weights, f"{prefix}.norms_1.{i}") for i in layers)
        self.norm_2 = nn.ModuleList(ChannelLayerNorm(weights, f"{prefix}.norms_2.{i}") for i in layers)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        if condition is not None:
            x = x + condition
        for separable, pointwise, norm_1, norm_2 in zip(
            self.separable, self.pointwise, self.norm_1, self.norm_2, strict=True
        ):
            y = F.gelu(norm_1(separable(x * mask)))
            y = F.gelu(norm_2(pointwise(y)))
            x = x + y
        return x * mask


def inverse_rational_quadratic(
    y: torch.Tensor,
    raw_widths: torch.Tensor,
    raw_heights: torch.Tensor,
    raw_derivatives: torch.Tensor,
    tail_bound: float,
) -> torch.Tensor:
    """Invert a monotonic rational-quadratic spline on ``[-B, B]``, identity outside it.

    ``y`` is ``[...]``; the raw parameters are ``[..., K]``, ``[..., K]`` and
    ``[..., K - 1]`` (the inner knots' derivatives; the outer two are pinned
    to 1 so the spline meets the linear tails smoothly).
    """
    bins = raw_widths.shape[-1]
    left, right = -tail_bound, tail_bound
    inside = (y >= left) & (y <= right)
    edge_derivative = math.log(math.exp(1 - MIN_DERIVATIVE) - 1)
    derivatives = MIN_DERIVATIVE + F.softplus(F.pad(raw_derivatives, (1, 1), value=edge_derivative))

    knots_x, widths = _knots(raw_widths, bins, MIN_BIN_WIDTH, left, right)
    knots_y, heights = _knots(raw_heights, bins, MIN_BIN_HEIGHT, left, right)

    # The bin each output falls in: how many knots (last one nudged up) lie at or below it.
    search = torch.cat([knots_y[..., :-1], knots_y[..., -1:] + SEARCH_EPS], dim=-1)
    index = ((y.unsqueeze(-1) >= search).sum(dim=-1, keepdim=True) - 1).clamp(0, bins - 1)

    x_low = knots_x.gather(-1, index).squeeze(-1)
    width = widths.gather(-1, index).squeeze(-1)
    y_low = knots_y.gather(-1, index).squeeze(-1)
    height = heights.gather(-1, index).squeeze(-1)
    slope = (heights / widths).gather(-1, index).squeeze(-1)
    d_low = derivatives.gather(-1, index).squeeze(-1)
    d_high = derivatives[..., 1:].gather(-1, index).squeeze(-1)

    # Solve the bin's rational quadratic for theta in [0, 1] (the numerically stable root).
    offset = y - y_low
    curvature = d_low + d_high - 2 * slope
    a = offset * curvature + height * (slope - d_low)
    b = height * d_low - offset * curvature
    c = -slope * offset
    discriminant = (b.pow(2) - 4 * a * c).clamp_min(0)
    theta = (2 * c) / (-b - torch.sqrt(discriminant))
    x = theta * width + x_low
    return torch.where(inside, x, y)


def _knots(raw: torch.Tensor, bins: int, floor: float, low: float, high: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax bin sizes with a floor -> knot positions on ``[low, high]`` and the bin sizes between them."""
    sizes = floor + (1 - floor * bins) * torch.softmax(raw, dim=-1)
    cumulative = (high - low) * torch.cumsum(sizes, dim=-1) + low
    first = torch.full_like(cumulative[..., :1], low)
    last = torch.full_like(cumulative[..., :1], high)
    knots = torch.cat([first, cumulative[..., :-1], last], dim=-1)
    return knots, knots[..., 1:] - knots[..., :-1]


class SplineFlow(nn.Module):
    """One convolutional coupling flow: half the channels drive a spline applied to the other half."""

    def __init__(self, weights: VoiceWeights, prefix: str) -> None:
        super().__init__()
        self.pre = conv1d(weights, f"{prefix}.pre")
        self.convs = DilatedDepthSeparableConv(weights, f"{prefix}.convs")
        self.proj = conv1d(weights, f"{prefix}.proj")
        self.half_channels = self.pre.in_channels
        parameters = self.proj.out_channels // self.half_channels
        if (parameters + 1) % 3:
            raise BadInputError(f"{prefix}.proj has {self.proj.out_channels} outputs, not a spline's 3K-1 per channel")
        self.bins = (parameters + 1) // 3
        self.scale = math.sqrt(self.pre.out_channels)
        self.tail_bound = weights.scalars["spline_tail_bound"]

    def forward(self, x: torch.Tensor, mask: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """The inverse direction (noise to durations): the only one inference needs."""
        x0, x1 = torch.split(x, [self.half_channels, self.half_channels], dim=1)
        h = self.convs(self.pre(x0), mask, condition)
        h = self.proj(h) * mask
        batch, channels, length = x0.shape
        h = h.reshape(batch, channels, -1, length).permute(0, 1, 3, 2)  # [B, half, L, 3K-1]
        raw_widths = h[..., : self.bins] / self.scale
        raw_heights = h[..., self.bins : 2 * self.bins] / self.scale
        raw_derivatives = h[..., 2 * self.bins :]
        x1 = inverse_rational_quadratic(x1, raw_widths, raw_heights, raw_derivatives, self.tail_bound)
        return torch.cat([x0, x1], dim=1) * mask


class StochasticDurationPredictor(nn.Module):
    """Text hidden states + noise -> log-duration per token (the reverse of the trained flow)."""

    affine_mean: torch.Tensor
    affine_inverse_scale: torch.Tensor

    def __init__(self, weights: VoiceWeights) -> None:
        super().__init__()
        self.pre = conv1d(weights, "dp.pre")
        self.cond = conv1d(weights, "dp.cond") if weights.has("dp.cond.weight") else None
        """Multi-speaker voices: the speaker embedding, projected and added to the text's hidden states."""
        self.convs = DilatedDepthSeparableConv(weights, "dp.convs")
        self.proj = conv1d(weights, "dp.proj")
        flows = [i for i in weights.indices("dp.flows") if weights.has(f"dp.flows.{i}.proj.weight")]
        # Flow 1 (the first spline flow) is the "useless vflow" that inference skips; exports drop it.
        flows = sorted((i for i in flows if i != 1), reverse=True)
        if not flows:
            raise BadInputError("the voice's duration predictor has no spline flows (dp.flows.*)")
        self.flows = nn.ModuleList(SplineFlow(weights, f"dp.flows.{i}") for i in flows)
        self.register_buffer("affine_mean", weights.get("dp.flows.0.m"))
        if weights.has("dp.flows.0.exp_neg_logs"):
            self.register_buffer("affine_inverse_scale", weights.get("dp.flows.0.exp_neg_logs"))
        else:
            self.register_buffer("affine_inverse_scale", torch.exp(-weights.get("dp.flows.0.logs")))

    def forward(
        self, hidden: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor, speaker: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``noise`` is ``[B, 2, L]`` already scaled by ``noise_w``; returns ``[B, 1, L]`` log-durations.

        ``speaker`` is the speaker embedding ``[B, G, 1]`` of a multi-speaker voice."""
        condition = self.pre(hidden)
        if self.cond is not None and speaker is not None:
            condition = condition + self.cond(speaker)
        condition = self.convs(condition, mask)
        condition = self.proj(condition) * mask
        z = noise
        for flow in self.flows:
            z = flow(torch.flip(z, [1]), mask, condition)
        z = torch.flip(z, [1])
        z = (z - self.affine_mean) * self.affine_inverse_scale * mask
        log_durations: torch.Tensor = z[:, :1]
        return log_durations
