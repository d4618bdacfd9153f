"""Content keys: the same input always maps to the same storage key.

The key covers everything that changes the audio (engine and its version,
voice weights, normalised text, token ids, synthesis parameters, sample rate
and encoding), so writes are idempotent, a re-run re-synthesises only what
changed, and duplicate deliveries never corrupt output.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from shared.names import check_key, check_voice_id
from shared.schema import SynthesisParams

AUDIO_ENCODING = "flac-pcm16"


def content_key(
    *,
    engine: str,
    engine_version: str,
    voice: str,
    voice_checksum: str,
    text: str,
    ids: Sequence[int],
    params: SynthesisParams,
    sample_rate: int,
    encoding: str = AUDIO_ENCODING,
    conditioning: Mapping[str, Any] | None = None,
) -> str:
    """The segment's key; ``conditioning`` (qwen3-tts: speaker, instruction, clone prompt...) joins the
    document only when given, so the keys of Piper segments are what they always were."""
    document: dict[str, Any] = {
        "engine": engine,
        "engine_version": engine_version,
        "voice": voice,
        "voice_checksum": voice_checksum,
        "text": text,
        "ids": list(ids),
        "params": params.model_dump(mode="json"),
        "sample_rate": sample_rate,
        "encoding": encoding,
    }
    if conditioning is not None:
        document["conditioning"] = dict(conditioning)
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def segment_path(voice: str, key: str) -> str:
    """Where a segment's audio lives under the storage prefix."""
    check_voice_id(voice)
    check_key(key)
    return f"segments/{voice}/{key[:2]}/{key}.flac"


def job_dir(job: str) -> str:
    return f"jobs/{job}"


def plan_path(job: str) -> str:
    return f"{job_dir(job)}/plan.json"


def manifest_path(job: str) -> str:
    return f"{job_dir(job)}/manifest.json"


def seed_from_key(key: str) -> int:
    """A 63-bit noise seed derived from the content key, so re-synthesis is reproducible."""
    return int(check_key(key)[:16], 16) & 0x7FFF_FFFF_FFFF_FFFF
