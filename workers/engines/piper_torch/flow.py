"""The normalising flow between the text prior and the vocoder's latent, run in reverse.

A stack of residual coupling layers (each a WaveNet-style stack of gated
dilated convolutions) separated by channel flips. At inference each layer
is inverted in reverse order: ``x1 = (x1 - m(x0)) * exp(-logs(x0))``. The
WaveNet convolutions' weight norm was folded into plain weights at export,
so they load as ordinary convolutions.
"""

from __future__ import annotations

import torch
from torch import nn

from shared.errors import BadInputError
from workers.engines.piper_torch.modules import conv1d
from workers.engines.piper_torch.onnx_weights import VoiceWeights


class GatedWaveNet(nn.Module):
    """Non-causal WaveNet: dilated conv -> tanh * sigmoid gate -> residual and skip 1x1 convs."""

    def __init__(self, weights: VoiceWeights, prefix: str) -> None:
        super().__init__()
        layers = weights.indices(f"{prefix}.in_layers")
        in_layers = [conv1d(weights, f"{prefix}.in_layers.{i}") for i in layers]
        self.in_layers = nn.ModuleList(in_layers)
        self.res_skip_layers = nn.ModuleList(conv1d(weights, f"{prefix}.res_skip_layers.{i}") for i in layers)
        self.hidden = in_layers[0].in_channels
        conditioned = weights.has(f"{prefix}.cond_layer.weight")
        self.cond_layer = conv1d(weights, f"{prefix}.cond_layer") if conditioned else None
        """Multi-speaker voices: the speaker embedding -> a gate bias for every layer (2 x hidden each)."""
        if self.cond_layer is not None and self.cond_layer.out_channels != 2 * self.hidden * len(layers):
            raise BadInputError(
                f"{prefix}.cond_layer has {self.cond_layer.out_channels} outputs, not 2 per channel and layer"
            )

    def forward(self, x: torch.Tensor, mask: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        output = torch.zeros_like(x)
        last = len(self.in_layers) - 1
        gates = self.cond_layer(speaker) if self.cond_layer is not None and speaker is not None else None
        for i, (in_layer, res_skip) in enumerate(zip(self.in_layers, self.res_skip_layers, strict=True)):
            activations = in_layer(x)
            if gates is not None:
                activations = activations + gates[:, 2 * self.hidden * i : 2 * self.hidden * (i + 1)]
            gated = torch.tanh(activations[:, : self.hidden]) * torch.sigmoid(activations[:, self.hidden :])
            res_skip_activations = res_skip(gated)
            if i < last:
                x = (x + res_skip_activations[:, : self.hidden]) * mask
                output = output + res_skip_activations[:, self.hidden :]
            else:
                output = output + res_skip_activations
        result: torch.Tensor = output * mask
        return result


class ResidualCoupling(nn.Module):
    """Half the channels predict a shift (and, unless mean-only, a log-scale) for the other half."""

    def __init__(self, weights: VoiceWeights, prefix: str) -> None:
        super().__init__()
        self.pre = conv1d(weights, f"{prefix}.pre")
        self.enc = GatedWaveNet(weights, f"{prefix}.enc")
        self.post = conv1d(weights, f"{prefix}.post")
        self.half_channels = self.pre.in_channels
        self.mean_only = self.post.out_channels == self.half_channels

    def forward(self, x: torch.Tensor, mask: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        """The inverse direction (latent from prior): the only one inference needs."""
        x0, x1 = torch.split(x, [self.half_channels, self.half_channels], dim=1)
        h = self.enc(self.pre(x0) * mask, mask, speaker)
        stats = self.post(h) * mask
        if self.mean_only:
            x1 = (x1 - stats) * mask
        else:
            mean, log_scale = torch.split(stats, [self.half_channels, self.half_channels], dim=1)
            x1 = (x1 - mean) * torch.exp(-log_scale) * mask
        return torch.cat([x0, x1], dim=1)


class CouplingFlow(nn.Module):
    """The prior-to-latent flow of a Piper voice, inverted: latent = flow^-1(prior sample)."""

    def __init__(self, weights: VoiceWeights) -> None:
        super().__init__()
        layers = [i for i in weights.indices("flow.flows") if weights.has(f"flow.flows.{i}.pre.weight")]
        if not layers:
            raise BadInputError("the voice has no flow layers (flow.flows.*)")
        couplings = [ResidualCoupling(weights, f"flow.flows.{i}") for i in sorted(layers, reverse=True)]
        self.layers = nn.ModuleList(couplings)
        self.channels = 2 * couplings[0].half_channels

    def forward(self, z: torch.Tensor, mask: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        # Forward order is coupling, flip, coupling, flip, ...; the inverse flips before each coupling.
        for layer in self.layers:
            z = layer(torch.flip(z, [1]), mask, speaker)
        return z
