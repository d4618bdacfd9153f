"""How one piece from the frontend becomes a planned segment: its content key and its bucket.

The one-voice planner and the cast planner both go through here, so a
segment read by the same voice with the same settings gets the same key
whichever of them planned it (what lets a cast job reuse a plain job's audio).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.buckets import BucketPolicy
from shared.engines import EngineSpec
from shared.frontend import FrontendSegment
from shared.keys import content_key
from shared.schema import SegmentPlan, SynthesisParams


@dataclass(frozen=True)
class SegmentVoice:
    """Everything about the reading voice that enters a segment's key."""

    spec: EngineSpec
    model: str
    checksum: str
    params: SynthesisParams
    sample_rate: int
    document: Mapping[str, Any] | None = None
    """A Qwen3-TTS voicing's key document; None for Piper, whose keys never had one."""


def keyed_segment(
    piece: FrontendSegment, index: int, reader: SegmentVoice, policy: BucketPolicy, **fields: Any
) -> SegmentPlan:
    """The segment at ``index``; ``fields`` are the plan's other fields (paragraph end, cast voice, kind...)."""
    key = content_key(
        engine=reader.spec.name,
        engine_version=reader.spec.version,
        voice=reader.model,
        voice_checksum=reader.checksum,
        text=piece.text,
        ids=piece.ids,
        params=reader.params,
        sample_rate=reader.sample_rate,
        conditioning=reader.document,
    )
    return SegmentPlan(
        index=index, text=piece.text, ids=list(piece.ids), key=key, bucket=policy.edge_for(len(piece.ids)), **fields
    )
