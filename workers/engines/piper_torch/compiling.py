"""When piper-torch compiles, and how it keeps compiles off the serving path.

Each stage is compiled whole (no graph breaks) through the device backend,
which falls back to eager if the compiler fails. Batches are padded up to a
batch size the engine was warmed up with (``nearest_warmed``), so the shapes
a worker meets are the shapes it compiled; after warm-up, a shape outside
that set (an unusually long segment, an unusual batch) runs eagerly instead
of stalling on a compile (``no_compiling_after_warmup``). Unless compiling
was asked for explicitly, warm-up keeps the compiled graphs only where they
measured faster than eager (``compiled_pays``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch

from workers.devices.base import DeviceBackend
from workers.engines.base import WarmupRecord

log = logging.getLogger(__name__)


def compile_stages(
    backend: DeviceBackend,
    stages: tuple[Callable[..., Any], Callable[..., Any]],
    *,
    symbolic_frames: bool,
    cache_dir: Path | None,
) -> tuple[Any, Any]:
    """Stage A and stage B compiled for ``backend``; stage B with a symbolic frame axis where asked."""
    if cache_dir is not None:
        backend.configure_compile_cache(cache_dir)

    def fell_back(exc: BaseException) -> None:
        log.warning("compiling piper-torch on %s failed; running eagerly: %s", backend.device, exc)

    stage_a, stage_b = stages
    return (
        backend.compile(stage_a, on_fallback=fell_back),
        backend.compile(stage_b, on_fallback=fell_back, marked_dynamic=symbolic_frames),
    )


def mark_symbolic_frames(noise: torch.Tensor) -> None:
    """Mark the frame axis of stage B's noise input symbolic: one graph for every frame bucket."""
    torch._dynamo.mark_dynamic(noise, 2)


def no_compiling_after_warmup(warmed: bool) -> AbstractContextManager[Any]:
    """After warm-up a shape no graph covers runs eagerly instead of stalling the card on a compile.

    That covers an unusual batch or token shape, a static frame bucket
    warm-up did not reach, and a split of a symbolic frame axis that a
    compiler makes (the CPU's convolution heuristics guard on sizes).
    """
    if warmed:
        stance: AbstractContextManager[Any] = torch.compiler.set_stance("eager_on_recompile")
        return stance
    return nullcontext()


def nearest_warmed(shapes: set[tuple[int, int]], size: int) -> int:
    """The smallest warmed batch size that holds ``size`` items; ``size`` itself when none does."""
    warmed = sorted(batch for batch, _ in shapes if batch >= size)
    return warmed[0] if warmed else size


def compiled_pays(records: Sequence[WarmupRecord]) -> bool:
    """Whether the compiled graphs ran the warm-up shapes faster than eager, in total."""
    return not records or sum(r.steady_s for r in records) < sum(r.eager_s or 0 for r in records)
