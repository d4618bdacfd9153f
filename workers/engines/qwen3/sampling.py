"""Per-item seeded sampling inside one batched ``generate`` call.

Hugging Face ``generate`` samples every row of a batch from one global
random stream, so an item's audio would depend on what else shared its
batch. Here each row draws from its own generator, seeded from the
segment's content key: the talker's codec frames and the code predictor's
residual codebooks each get a stream per item. The sampler runs as the last
logits processor of a greedy ``generate`` (after repetition penalty, token
suppression and the minimum length) and leaves one token per row finite, so
greedy decoding takes exactly the token it drew. It also ends each item at
its own frame cap, so a batch of mixed lengths gives each item a length
bound by its own text.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

#: Mixed into the seed of the code predictor's stream so it differs from the talker's.
_CODES_STREAM = 0x5DEECE66D


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of one stage (from the checkpoint's generation_config.json)."""

    do_sample: bool = True
    temperature: float = 0.9
    top_k: int = 50
    top_p: float = 1.0

    @classmethod
    def from_config(cls, config: dict[str, Any], prefix: str = "") -> Sampling:
        def pick(name: str, default: Any) -> Any:
            value = config.get(prefix + name)
            return default if value is None else value

        return cls(
            do_sample=bool(pick("dosample" if prefix else "do_sample", True)),
            temperature=float(pick("temperature", 0.9)),
            top_k=int(pick("top_k", 50)),
            top_p=float(pick("top_p", 1.0)),
        )


class SeededSampler:
    """A logits processor that draws one token per row from that row's own generator."""

    def __init__(
        self,
        seeds: Sequence[int],
        sampling: Sampling,
        *,
        caps: Sequence[int] | None = None,
        eos: int | None = None,
        stream: int = 0,
    ) -> None:
        self.generators = [torch.Generator().manual_seed((seed ^ stream) & 0x7FFF_FFFF_FFFF_FFFF) for seed in seeds]
        self.sampling = sampling
        self.caps = list(caps) if caps is not None else None
        self.eos = eos
        self.step = 0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        logits = scores.float()
        rows = logits.shape[0]
        if rows != len(self.generators):
            raise RuntimeError(f"sampler made for {len(self.generators)} rows was given {rows}")
        chosen = self._choose(logits)
        if self.caps is not None and self.eos is not None:
            for row, cap in enumerate(self.caps):
                if self.step >= cap:
                    chosen[row] = self.eos
        self.step += 1
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(rows), chosen.to(scores.device)] = 0.0
        return out

    def _choose(self, logits: torch.Tensor) -> torch.Tensor:
        settings = self.sampling
        if not settings.do_sample or settings.temperature <= 0:
            return logits.argmax(dim=-1).cpu()
        logits = logits / settings.temperature
        if 0 < settings.top_k < logits.shape[-1]:
            kth = torch.topk(logits, settings.top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if settings.top_p < 1.0:
            ordered, order = torch.sort(logits, descending=False, dim=-1)
            cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
            drop = cumulative <= (1 - settings.top_p)
            drop[..., -1] = False  # always keep the most likely token
            logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
        probs = torch.softmax(logits, dim=-1).cpu()
        chosen = torch.empty(probs.shape[0], dtype=torch.long)
        for row, generator in enumerate(self.generators):
            weights = probs[row]
            if not bool(torch.isfinite(weights).all()) or float(weights.sum()) <= 0:
                chosen[row] = int(logits[row].argmax())
                continue
            chosen[row] = int(torch.multinomial(weights, 1, generator=generator))
        return chosen


@contextmanager
def seeded_generation(
    model: Any,
    seeds: Sequence[int],
    *,
    talker: Sampling,
    codes: Sampling,
    caps: Sequence[int],
    eos: int,
) -> Iterator[None]:
    """Make the talker and code predictor of ``model`` sample per row for the calls inside.

    qwen_tts does not pass logits processors through to the two nested
    ``generate`` calls, so their bound ``generate`` is shadowed for the
    duration of one batch (the runner thread is the only caller).
    """
    talker_sampler = SeededSampler(seeds, talker, caps=caps, eos=eos)
    codes_sampler = SeededSampler(seeds, codes, stream=_CODES_STREAM)
    modules = [(model.talker, talker_sampler), (model.talker.code_predictor, codes_sampler)]
    for module, sampler in modules:
        module.generate = _with_sampler(module.generate, sampler)
    try:
        yield
    finally:
        for module, _sampler in modules:
            del module.generate


def _with_sampler(generate: Any, sampler: SeededSampler) -> Any:
    from transformers import LogitsProcessorList

    def seeded(*args: Any, **kwargs: Any) -> Any:
        kwargs.update(do_sample=False, top_k=None, top_p=None, temperature=None)
        kwargs["logits_processor"] = LogitsProcessorList([sampler])
        return generate(*args, **kwargs)

    return seeded
