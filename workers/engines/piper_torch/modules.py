"""Building blocks shared by the port, and the VITS text encoder.

Every layer is built from the weights and node attributes of the voice file
(see ``onnx_weights``), so channel counts, kernel sizes, dilations, heads and
the attention window follow the voice rather than one hard-coded config. All
modules take a ``[B, 1, L]`` mask and keep padded positions from leaking into
real ones, which is what lets a padded batch reproduce each item alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from shared.errors import BadInputError
from workers.engines.piper_torch.onnx_weights import VoiceWeights


def conv1d(weights: VoiceWeights, module: str, *, padding: int | None = None) -> nn.Conv1d:
    """An ``nn.Conv1d`` with the voice's weights and the exported padding, dilation, stride and groups."""
    weight = weights.get(f"{module}.weight")
    attributes = weights.conv(module)
    bias_name = f"{module}.bias"
    out_channels, in_per_group, kernel = weight.shape
    conv = nn.Conv1d(
        in_per_group * attributes.groups,
        out_channels,
        kernel,
        stride=attributes.stride,
        padding=attributes.padding if padding is None else padding,
        dilation=attributes.dilation,
        groups=attributes.groups,
        bias=weights.has(bias_name),
    )
    _load(conv, weight, weights.tensors.get(bias_name))
    return conv


def conv_transpose1d(weights: VoiceWeights, module: str) -> nn.ConvTranspose1d:
    """An ``nn.ConvTranspose1d`` (the vocoder's upsampling layers) from the voice."""
    weight = weights.get(f"{module}.weight")
    attributes = weights.conv(module)
    in_channels, out_per_group, kernel = weight.shape
    conv = nn.ConvTranspose1d(
        in_channels,
        out_per_group * attributes.groups,
        kernel,
        stride=attributes.stride,
        padding=attributes.padding,
        dilation=attributes.dilation,
        groups=attributes.groups,
        bias=weights.has(f"{module}.bias"),
    )
    _load(conv, weight, weights.tensors.get(f"{module}.bias"))
    return conv


def _load(conv: nn.Conv1d | nn.ConvTranspose1d, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None and conv.bias is not None:
            conv.bias.copy_(bias)
    conv.requires_grad_(False)


def sequence_mask(lengths: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """``[B] -> [B, 1, size]``: 1 where the position is inside the item, 0 in its padding."""
    positions = torch.arange(size, device=lengths.device)
    return (positions.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(1).to(dtype)


class ChannelLayerNorm(nn.Module):
    """Layer norm over the channel axis of a ``[B, C, L]`` tensor (VITS keeps channels first)."""

    gamma: torch.Tensor
    beta: torch.Tensor

    def __init__(self, weights: VoiceWeights, prefix: str) -> None:
        super().__init__()
        self.register_buffer("gamma", weights.get(f"{prefix}.gamma"))
        self.register_buffer("beta", weights.get(f"{prefix}.beta"))
        self.eps = weights.scalars["layer_norm_eps"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = F.layer_norm(x.transpose(1, -1), (x.shape[1],), self.gamma, self.beta, self.eps)
        return normed.transpose(1, -1)


class RelativeSelfAttention(nn.Module):
    """Multi-head self-attention with learned relative-position keys and values inside a window.

    Scores get ``q . emb_k[j - i]`` for ``|j - i| <= window`` and the output
    gets ``sum_j p_ij emb_v[j - i]``; both are computed with gathers over a
    ``[L, L]`` index grid, which keeps shapes static for the compiler.
    """

    emb_k: torch.Tensor
    emb_v: torch.Tensor

    def __init__(self, weights: VoiceWeights, prefix: str) -> None:
        super().__init__()
        self.conv_q = conv1d(weights, f"{prefix}.conv_q")
        self.conv_k = conv1d(weights, f"{prefix}.conv_k")
        self.conv_v = conv1d(weights, f"{prefix}.conv_v")
        self.conv_o = conv1d(weights, f"{prefix}.conv_o")
        emb_k = weights.get(f"{prefix}.emb_rel_k")
        emb_v = weights.get(f"{prefix}.emb_rel_v")
        channels = self.conv_q.out_channels
        self.head_channels = emb_k.shape[-1]
        self.heads = channels // self.head_channels
        self.window = (emb_k.shape[1] - 1) // 2
        if self.heads * self.head_channels != channels or emb_k.shape[1] != 2 * self.window + 1:
            raise BadInputError(f"{prefix}: relative embeddings {tuple(emb_k.shape)} do not fit {channels} channels")
        # [heads or 1, 2w+1, d] -> [1, heads or 1, 2w+1, d] so it broadcasts over the batch.
        self.register_buffer("emb_k", emb_k.unsqueeze(0))
        self.register_buffer("emb_v", emb_v.unsqueeze(0))

    def forward(self, x: torch.Tensor, pair_mask: torch.Tensor) -> torch.Tensor:
        batch, channels, length = x.shape
        query = self._heads(self.conv_q(x)) / math.sqrt(self.head_channels)
        key = self._heads(self.conv_k(x))
        value = self._heads(self.conv_v(x))

        scores = torch.matmul(query, key.transpose(-2, -1))
        relative_logits = torch.matmul(query, self.emb_k.transpose(-2, -1))  # [B, H, L, 2w+1]
        scores = scores + self._band_to_square(relative_logits, length)
        scores = scores.masked_fill(pair_mask == 0, -1e4)
        weights = torch.softmax(scores, dim=-1)

        output = torch.matmul(weights, value)
        output = output + torch.matmul(self._square_to_band(weights, length), self.emb_v)
        output = output.transpose(2, 3).reshape(batch, channels, length)
        projected: torch.Tensor = self.conv_o(output)
        return projected

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, length = x.shape
        return x.view(batch, self.heads, self.head_channels, length).transpose(2, 3)

    def _band_to_square(self, band: torch.Tensor, length: int) -> torch.Tensor:
        """``[..., L, 2w+1]`` relative logits -> ``[..., L, L]``, zero outside the window."""
        positions = torch.arange(length, device=band.device)
        offset = positions.unsqueeze(0) - positions.unsqueeze(1) + self.window  # column - row + w
        inside = (offset >= 0) & (offset <= 2 * self.window)
        index = offset.clamp(0, 2 * self.window).expand(*band.shape[:-2], length, length)
        return torch.where(inside, torch.gather(band, -1, index), torch.zeros((), dtype=band.dtype, device=band.device))

    def _square_to_band(self, square: torch.Tensor, length: int) -> torch.Tensor:
        """``[..., L, L]`` attention weights -> ``[..., L, 2w+1]`` by relative offset, zero past the edges."""
        rows = torch.arange(length, device=square.device).unsqueeze(1)
        offsets = torch.arange(2 * self.window + 1, device=square.device).unsqueeze(0) - self.window
        column = rows + offsets
        inside = (column >= 0) & (column < length)
        index = column.clamp(0, length - 1).expand(*square.shape[:-2], length, 2 * self.window + 1)
        zero = torch.zeros((), dtype=square.dtype, device=square.device)
        return torch.where(inside, torch.gather(square, -1, index), zero)


class FeedForward(nn.Module):
    """Two 'same'-padded convolutions with a ReLU (or the GELU approximation some voices use)."""

    def __init__(self, weights: VoiceWeights, prefix: str) -> None:
        super().__init__()
        self.conv_1 = conv1d(weights, f"{prefix}.conv_1", padding=0)
        self.conv_2 = conv1d(weights, f"{prefix}.conv_2", padding=0)
        kernel = self.conv_1.kernel_size[0]
        self.pad = ((kernel - 1) // 2, kernel // 2)
        ops = weights.scope_ops.get(prefix, set())
        if not ops & {"Relu", "Sigmoid"}:
            raise BadInputError(f"{prefix}: unknown feed-forward activation (graph ops: {sorted(ops)})")
        self.relu = "Relu" in ops

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.conv_1(F.pad(x * mask, self.pad))
        x = torch.relu(x) if self.relu else x * torch.sigmoid(1.702 * x)
        x = self.conv_2(F.pad(x * mask, self.pad))
        return x * mask


class TextEncoder(nn.Module):
    """Phoneme ids -> hidden states and the prior's mean and log-scale per token."""

    embedding: torch.Tensor

    def __init__(self, weights: VoiceWeights) -> None:
        super().__init__()
        embedding = weights.get("enc_p.emb.weight")
        self.register_buffer("embedding", embedding)
        self.hidden = embedding.shape[1]
        layers = weights.indices("enc_p.encoder.attn_layers")
        if not layers:
            raise BadInputError("the voice has no text encoder layers (enc_p.encoder.attn_layers.*)")
        self.attention = nn.ModuleList(RelativeSelfAttention(weights, f"enc_p.encoder.attn_layers.{i}") for i in layers)
        self.norm_1 = nn.ModuleList(ChannelLayerNorm(weights, f"enc_p.encoder.norm_layers_1.{i}") for i in layers)
        self.feed_forward = nn.ModuleList(FeedForward(weights, f"enc_p.encoder.ffn_layers.{i}") for i in layers)
        self.norm_2 = nn.ModuleList(ChannelLayerNorm(weights, f"enc_p.encoder.norm_layers_2.{i}") for i in layers)
        self.proj = conv1d(weights, "enc_p.proj")
        self.prior_channels = self.proj.out_channels // 2

    def forward(
        self, ids: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.embedding(ids, self.embedding) * math.sqrt(self.hidden)
        x = x.transpose(1, -1)  # [B, hidden, L]
        mask = sequence_mask(lengths, ids.shape[1], x.dtype)
        pair_mask = mask.unsqueeze(2) * mask.unsqueeze(-1)
        x = x * mask
        for attention, norm_1, feed_forward, norm_2 in zip(
            self.attention, self.norm_1, self.feed_forward, self.norm_2, strict=True
        ):
            x = norm_1(x + attention(x, pair_mask))
            x = norm_2(x + feed_forward(x, mask))
        x = x * mask
        stats = self.proj(x) * mask
        mean, log_scale = torch.split(stats, self.prior_channels, dim=1)
        return x, mean, log_scale, mask
