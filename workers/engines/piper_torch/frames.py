"""Frame buckets: how far stage B pads a batch along the frame axis.

Frame buckets are multiples of ``FRAME_STEP`` frames, and stage B is
compiled once per batch size with a symbolic frame axis, so a bucket costs
no compile and a batch pads at most ``FRAME_STEP - 1`` frames per item. Device
families whose graph compilers want every shape static (``static_frames``)
use the geometric ``STATIC_FRAME_BUCKETS`` instead, one graph each; frames
beyond the largest round up to a multiple of it: long segments are slower,
never dropped.

Items with the same token count differ by about 9% in frames, so a call of
several batches is decoded sorted by frames (``frame_sorted_batches``): each
decoded batch then holds items of nearly the same length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Frame buckets on a symbolic frame axis (1 frame = hop samples, 11.6 ms at 22050 Hz with hop 256).
FRAME_STEP = 16
#: Static frame buckets: steps of 1.33-1.5x, so a batch pads at most a third of its frames; the last
#: one is 47 s of audio.
STATIC_FRAME_BUCKETS = (64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)
#: Frames per token seen at length_scale 1 (Piper ids interleave a pad id after every phoneme):
#: warm-up compiles the frame buckets this range implies for each token bucket.
FRAMES_PER_TOKEN = (1.0, 4.0)


def frame_bucket(frames: int, buckets: Sequence[int] | None) -> int:
    """The frame count a batch whose longest item has ``frames`` is padded to.

    ``buckets`` None: the next multiple of FRAME_STEP (a symbolic frame axis).
    Otherwise the smallest static bucket that holds it; past the largest, a
    multiple of the largest.
    """
    if buckets is None:
        return max(1, math.ceil(frames / FRAME_STEP)) * FRAME_STEP
    for bucket in buckets:
        if frames <= bucket:
            return bucket
    return math.ceil(frames / buckets[-1]) * buckets[-1]


def frame_sorted_batches(frame_counts: Sequence[int], size: int) -> list[list[int]]:
    """Indices of the items sorted by frames, cut into batches of ``size``: similar lengths decode together."""
    order = sorted(range(len(frame_counts)), key=lambda index: frame_counts[index])
    return [order[start : start + size] for start in range(0, len(order), size)]


def frame_buckets_for(tokens: int, buckets: Sequence[int] | None) -> list[int]:
    """The frame buckets a token bucket's batches land in at ordinary speeds (see FRAMES_PER_TOKEN).

    On a symbolic frame axis (``buckets`` None) one graph normally serves
    them all: warm-up runs a ladder from the shortest to the longest,
    doubling, which compiles once and catches any split of the range a
    compiler makes.
    """
    low = frame_bucket(max(1, int(tokens / 2 * FRAMES_PER_TOKEN[0])), buckets)
    high = frame_bucket(int(tokens * FRAMES_PER_TOKEN[1]), buckets)
    if buckets is None:
        ladder = [low]
        while ladder[-1] < high:
            ladder.append(min(frame_bucket(2 * ladder[-1], buckets), high))
        return ladder
    return [bucket for bucket in buckets if low <= bucket <= high] or [high]
