"""Length buckets and the queue names derived from them.

A segment goes to the smallest bucket whose edge holds its token count, and
a worker pads every batch to that edge, so the engine only ever sees a fixed
set of shapes (edge x batch size) and compiled graphs are reused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.errors import BadInputError
from shared.names import check_engine_id, check_voice_id

QUEUE_PREFIX = "voxfarm"
CONTROL_QUEUE = "voxfarm.control"
DEAD_LETTER_QUEUE = "voxfarm.dead"
INTERACTIVE_SUFFIX = "interactive"


def model_name(engine: str, voice: str) -> str:
    """A model is an engine with one set of weights; only its items share a batch."""
    return f"{check_engine_id(engine)}.{check_voice_id(voice)}"


def queue_name(model: str, edge: int) -> str:
    return f"{QUEUE_PREFIX}.{model}.b{edge}"


def interactive_queue_name(model: str) -> str:
    """The priority lane of a model: short interactive requests, served before bulk work."""
    return f"{QUEUE_PREFIX}.{model}.{INTERACTIVE_SUFFIX}"


def parse_queue_name(name: str) -> tuple[str, int | None]:
    """Split ``voxfarm.<model>.b<edge>`` into (model, edge); edge is None for the priority lane."""
    prefix = QUEUE_PREFIX + "."
    if not name.startswith(prefix):
        raise ValueError(f"not a voxfarm bucket queue: {name!r}")
    model, _, tail = name[len(prefix) :].rpartition(".")
    if not model:
        raise ValueError(f"not a voxfarm bucket queue: {name!r}")
    if tail == INTERACTIVE_SUFFIX:
        return model, None
    if not tail.startswith("b") or not tail[1:].isdigit():
        raise ValueError(f"not a voxfarm bucket queue: {name!r}")
    return model, int(tail[1:])


@dataclass(frozen=True)
class BucketPolicy:
    """Maps token counts to bucket edges."""

    edges: tuple[int, ...] = (32, 64, 128, 256, 512)

    @classmethod
    def from_edges(cls, edges: Sequence[int]) -> BucketPolicy:
        ordered = tuple(edges)
        if not ordered or list(ordered) != sorted(set(ordered)) or ordered[0] <= 0:
            raise BadInputError(f"bucket edges must be positive and ascending, got {list(edges)}")
        return cls(ordered)

    @property
    def largest(self) -> int:
        return self.edges[-1]

    def fits(self, tokens: int) -> bool:
        return 0 < tokens <= self.largest

    def edge_for(self, tokens: int) -> int:
        """The smallest edge that holds ``tokens``; longer input must be split by the frontend first."""
        if tokens <= 0:
            raise BadInputError("a segment must have at least one token")
        for edge in self.edges:
            if tokens <= edge:
                return edge
        raise BadInputError(
            f"segment of {tokens} tokens exceeds the largest bucket ({self.largest}); "
            "the frontend should have split it at clause boundaries"
        )

    def next_larger(self, edge: int) -> int | None:
        """The neighbour a nearly empty bucket can be folded into."""
        larger = [e for e in self.edges if e > edge]
        return larger[0] if larger else None

    def queues(self, model: str) -> list[str]:
        return [queue_name(model, edge) for edge in self.edges]
