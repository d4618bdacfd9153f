"""Per-segment noise drawn from a generator seeded by the segment's content key.

Each item draws from its own CPU generator, in a fixed order: first the
duration noise (``[tokens, 2]``), then, only if its ``noise_scale`` is not
zero, the latent noise (``[frames, channels]``). Both are drawn position by
position (frame-major), so an item's noise depends on its key and its own
lengths only: never on the batch it shares, its row, or the bucket it was
padded to. The same key therefore renders the same audio every time, on
any worker of the same device type.
"""

from __future__ import annotations

import torch

from shared.keys import seed_from_key


class SegmentNoise:
    """The noise stream of one segment."""

    def __init__(self, key: str) -> None:
        self.generator = torch.Generator(device="cpu").manual_seed(seed_from_key(key))
        self._drawn_durations = False

    def durations(self, tokens: int) -> torch.Tensor:
        """``[2, tokens]`` standard normal noise for the duration predictor (drawn first, once)."""
        if self._drawn_durations:
            raise RuntimeError("duration noise is drawn once per segment, before the latent noise")
        self._drawn_durations = True
        return torch.randn(tokens, 2, generator=self.generator).T

    def latent(self, frames: int, channels: int) -> torch.Tensor:
        """``[channels, frames]`` standard normal noise for the prior sample."""
        if not self._drawn_durations:
            raise RuntimeError("draw the duration noise before the latent noise")
        return torch.randn(frames, channels, generator=self.generator).T
