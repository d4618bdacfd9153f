"""The operators the Piper engines use, on small fixed inputs, for a card's smoke test.

Kept beside the device layer (not the engine) so a worker can check its card
before loading any model: a plugin that lacks one of these operators, or
computes it on the CPU behind the engine's back, is found at start-up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def engine_operators(device: torch.device) -> dict[str, torch.Tensor]:
    """Each operator's result on ``device``; inputs come from a seeded CPU generator, so runs compare."""
    generator = torch.Generator().manual_seed(1234)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator).to(device)

    x = normal(2, 8, 32)
    ids = torch.randint(0, 16, (2, 32), generator=generator).to(device)
    sorted_rows = torch.cumsum(torch.rand(2, 8, generator=generator) * 4, dim=1).to(device)
    positions = torch.arange(32, device=device, dtype=sorted_rows.dtype).expand(2, 32).contiguous()
    return {
        "embedding": F.embedding(ids, normal(16, 8)),
        "conv1d_dilated": F.conv1d(x, normal(8, 8, 3), normal(8), padding=2, dilation=2),
        "conv1d_depthwise": F.conv1d(x, normal(8, 1, 3), padding=1, groups=8),
        "conv_transpose1d": F.conv_transpose1d(x, normal(8, 4, 16), stride=8, padding=4),
        "matmul_softmax": torch.softmax(torch.matmul(x.transpose(1, 2), x) / 8, dim=-1),
        "layer_norm_gelu": F.gelu(F.layer_norm(x.transpose(1, 2), (8,))),
        "leaky_relu_tanh": torch.tanh(F.leaky_relu(x, 0.1)),
        "gate": torch.tanh(x[:, :4]) * torch.sigmoid(x[:, 4:]),
        "gather": x.gather(2, ids[:, None, :].expand(-1, 8, -1).clamp(max=31)),
        "cumsum_searchsorted": torch.searchsorted(sorted_rows, positions, right=True),
        "softplus_exp_ceil": torch.ceil(torch.exp(F.softplus(x))),
    }
