"""The padding model: the worker's batcher and the engine's frame-sorted decoding, against FIFO batching."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from workers.batcher import Batcher, BatchPolicy


@dataclass(frozen=True)
class Item:
    tokens: int
    frames: int


@dataclass(frozen=True)
class Padding:
    useful_tokens: int
    computed_tokens: int
    useful_frames: int
    computed_frames: int

    @property
    def tokens(self) -> float:
        return self.useful_tokens / self.computed_tokens if self.computed_tokens else 1.0

    @property
    def frames(self) -> float:
        return self.useful_frames / self.computed_frames if self.computed_frames else 1.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "tokens": round(self.tokens, 4),
            "frames": round(self.frames, 4),
            "useful_tokens": self.useful_tokens,
            "computed_tokens": self.computed_tokens,
            "useful_frames": self.useful_frames,
            "computed_frames": self.computed_frames,
        }


def fifo_padding(items: Sequence[Item], batch: int) -> Padding:
    """Consecutive items, each batch padded to its own longest item (dynamic shapes: FIFO's best case)."""
    useful_t = useful_f = computed_t = computed_f = 0
    for start in range(0, len(items), batch):
        group = items[start : start + batch]
        useful_t += sum(i.tokens for i in group)
        useful_f += sum(i.frames for i in group)
        computed_t += len(group) * max(i.tokens for i in group)
        computed_f += len(group) * max(i.frames for i in group)
    return Padding(useful_t, computed_t, useful_f, computed_f)


def bucketed_padding(  # noqa: PLR0917 - the worker's batching knobs, as the worker sets them
    items: Sequence[Item],
    batch: int,
    edges: Sequence[int],
    frame_buckets: Sequence[int] | None,
    sort_batches: int = 1,
    window: int | None = None,
) -> Padding:
    """The worker's batcher and engine on the same items, as an accelerator worker runs them.

    Items arrive in book order; the worker holds ``window`` of them at once
    (its message concurrency: twice the largest call by default) and its
    batcher releases calls of one bucket, full or on their deadline. A call
    holds up to ``sort_batches`` batches, which the engine decodes sorted by
    frames (``frame_sorted_batches``); every decoded batch is padded to the
    edge in tokens and to its frame bucket (``frame_bucket``: None means
    steps on a symbolic frame axis) in frames.
    """
    from workers.engines.piper_torch.frames import frame_bucket, frame_sorted_batches

    call = batch * sort_batches
    clock = [0.0]
    batcher: Batcher[Item] = Batcher(
        BatchPolicy(max_items=call, max_tokens=10**9, max_wait_s=1.0), edges, clock=lambda: clock[0]
    )
    window = window or 2 * call
    useful_t = useful_f = computed_t = computed_f = 0
    pending = deque(items)
    held = 0
    while pending or held:
        while pending and held < window:
            item = pending.popleft()
            batcher.submit(item, item.tokens)
            held += 1
        formed = batcher.next_batch(timeout=0)
        if formed is None:
            clock[0] += 2.0  # nothing full: let the oldest bucket's deadline pass
            continue
        called = formed.payloads
        held -= len(called)
        useful_t += sum(i.tokens for i in called)
        useful_f += sum(i.frames for i in called)
        computed_t += len(called) * formed.edge
        groups: Sequence[Sequence[int]] = [range(len(called))]
        if len(called) > batch:
            groups = frame_sorted_batches([i.frames for i in called], batch)
        for group in groups:
            longest = max(called[index].frames for index in group)
            computed_f += len(group) * frame_bucket(longest, frame_buckets)
    return Padding(useful_t, computed_t, useful_f, computed_f)
