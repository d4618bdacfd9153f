"""Piper VITS inference as two static-shape stages, so each compiles once per shape.

Stage A (``DurationStage``) runs on ``[B, L]`` token ids: text encoder and
duration predictor, giving each token's frame count. The host then reads the
frame totals once to choose a frame bucket ``T``. Stage B (``AudioStage``)
runs on ``[B, C, T]``: it expands the prior to frames, draws the latent
from it, inverts the flow and vocodes. Everything that changes between
calls and is not a shape (noise, the three scales, lengths, the speaker
ids of a multi-speaker voice) is a tensor input, so no value is baked into a
compiled graph. A multi-speaker voice conditions its duration predictor,
flow and vocoder on the speaker's embedding (``emb_g``), as VITS does; the
text encoder is not conditioned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from shared.errors import BadInputError
from workers.engines.piper_torch.decoder import Generator
from workers.engines.piper_torch.duration import StochasticDurationPredictor
from workers.engines.piper_torch.flow import CouplingFlow
from workers.engines.piper_torch.modules import TextEncoder, sequence_mask
from workers.engines.piper_torch.onnx_weights import VoiceWeights


@dataclass(frozen=True)
class VoiceShape:
    """What the engine needs to know about a loaded voice to build its inputs."""

    vocabulary: int
    hidden: int
    prior_channels: int
    hop: int
    speakers: int = 1


class SpeakerEmbedding(nn.Module):
    """Speaker ids ``[B]`` -> ``[B, G, 1]`` embeddings; None for a single-speaker voice (which ignores ids)."""

    def __init__(self, weights: VoiceWeights) -> None:
        super().__init__()
        table = weights.get("emb_g.weight") if weights.has("emb_g.weight") else None
        self.table = None if table is None else nn.Embedding.from_pretrained(table, freeze=True)

    @property
    def speakers(self) -> int:
        return 1 if self.table is None else int(self.table.num_embeddings)

    def forward(self, speakers: torch.Tensor) -> torch.Tensor | None:
        if self.table is None:
            return None
        embedded: torch.Tensor = self.table(speakers).unsqueeze(-1)
        return embedded


class DurationStage(nn.Module):
    """Stage A: ``ids [B, L]`` -> frames per token, the prior's mean and log-scale, frames per item.

    Outputs are padded along the token axis to ``token_capacity`` so stage B's
    shapes depend on the frame bucket and batch only, not on the token bucket.
    """

    def __init__(self, weights: VoiceWeights, token_capacity: int) -> None:
        super().__init__()
        self.encoder = TextEncoder(weights)
        self.speaker = SpeakerEmbedding(weights)
        self.duration = StochasticDurationPredictor(weights)
        self.token_capacity = token_capacity

    def forward(  # noqa: PLR0917 - compiled graphs take their tensors positionally
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor,
        duration_noise: torch.Tensor,
        noise_w: torch.Tensor,
        length_scale: torch.Tensor,
        speakers: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden, mean, log_scale, mask = self.encoder(ids, lengths)
        speaker = self.speaker(speakers)
        log_durations = self.duration(hidden, mask, duration_noise * noise_w[:, None, None], speaker)
        durations = torch.ceil(torch.exp(log_durations) * mask * length_scale[:, None, None]).squeeze(1)
        frames = torch.clamp_min(durations.sum(dim=1), 1).long()
        pad = max(self.token_capacity - ids.shape[1], 0)
        if pad:
            durations = F.pad(durations, (0, pad))
            mean = F.pad(mean, (0, pad))
            log_scale = F.pad(log_scale, (0, pad))
        return durations, mean, log_scale, frames


class AudioStage(nn.Module):
    """Stage B: expand the prior to ``T`` frames, sample, invert the flow and vocode -> ``[B, T * hop]``."""

    def __init__(self, weights: VoiceWeights) -> None:
        super().__init__()
        self.speaker = SpeakerEmbedding(weights)
        self.flow = CouplingFlow(weights)
        self.decoder = Generator(weights)

    def forward(  # noqa: PLR0917 - compiled graphs take their tensors positionally
        self,
        durations: torch.Tensor,
        mean: torch.Tensor,
        log_scale: torch.Tensor,
        frames: torch.Tensor,
        noise: torch.Tensor,
        noise_scale: torch.Tensor,
        speakers: torch.Tensor,
    ) -> torch.Tensor:
        length = noise.shape[-1]
        speaker = self.speaker(speakers)
        if speaker is not None:
            speaker = speaker.to(mean.dtype)
        ends = torch.cumsum(durations, dim=1).long()  # [B, L]: the frame where each token stops
        positions = torch.arange(length, device=noise.device).unsqueeze(0).expand(ends.shape[0], length)
        # The token that frame t belongs to is the number of tokens that ended at or before t.
        token = torch.searchsorted(ends, positions.contiguous(), right=True)
        covered = (token < ends.shape[1]).unsqueeze(1).to(mean.dtype)
        index = token.clamp(max=ends.shape[1] - 1).unsqueeze(1).expand(-1, mean.shape[1], -1)
        frame_mean = mean.gather(2, index) * covered
        frame_log_scale = log_scale.gather(2, index) * covered

        mask = sequence_mask(frames, length, mean.dtype)
        prior = (frame_mean + noise * torch.exp(frame_log_scale) * noise_scale[:, None, None]) * mask
        latent = self.flow(prior, mask, speaker)
        audio: torch.Tensor = self.decoder(latent * mask, frames, speaker)
        return audio


def build_stages(weights: VoiceWeights, token_capacity: int) -> tuple[DurationStage, AudioStage, VoiceShape]:
    """Both stages in eval mode, plus the voice's shape facts."""
    stage_a = DurationStage(weights, token_capacity).eval()
    stage_b = AudioStage(weights).eval()
    embedding = weights.get("enc_p.emb.weight")
    shape = VoiceShape(
        vocabulary=embedding.shape[0],
        hidden=embedding.shape[1],
        prior_channels=stage_a.encoder.prior_channels,
        hop=stage_b.decoder.hop,
        speakers=stage_a.speaker.speakers,
    )
    if stage_b.flow.channels != shape.prior_channels:
        raise BadInputError("the voice's flow and text encoder disagree on the latent channel count")
    return stage_a, stage_b, shape
