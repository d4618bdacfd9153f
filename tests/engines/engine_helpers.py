"""Helpers for the engine tests (imported by name: the tests folders are not packages)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from shared.schema import SynthesisParams
from workers.engines.base import EngineRequest

NOISE_OFF = SynthesisParams(noise_scale=0.0, noise_w=0.0)


def request(ids: Sequence[int], params: SynthesisParams = NOISE_OFF, name: str = "segment") -> EngineRequest:
    """A request whose content key is derived from ``name`` (the key seeds the torch engine's noise)."""
    return EngineRequest(key=hashlib.sha256(name.encode()).hexdigest(), ids=list(ids), params=params)


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, f"sample counts differ: {a.shape} vs {b.shape}"
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())
