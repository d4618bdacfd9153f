"""The padding model of `voxfarm bench`: the worker's batcher and the engine's frame-sorted decoding."""

from __future__ import annotations

import random

from producer.bench.padding import Item, bucketed_padding, fifo_padding
from producer.bench.sentences import sample_segments
from workers.engines.piper_torch.frames import (
    FRAME_STEP,
    STATIC_FRAME_BUCKETS,
    frame_bucket,
    frame_sorted_batches,
)

EDGES = [32, 64, 128, 256, 512]


def book(count: int = 2000, seed: int = 7) -> list[Item]:
    """Sentence-like lengths: tokens skewed short, frames about 2.2 per token give or take 10%."""
    rng = random.Random(seed)
    items = []
    for _ in range(count):
        tokens = min(512, max(4, int(rng.lognormvariate(4.2, 0.7))))
        items.append(Item(tokens, max(1, round(tokens * 2.2 * rng.gauss(1.0, 0.1)))))
    return items


def test_frame_sorted_batches_group_similar_lengths_and_keep_every_item() -> None:
    frames = [50, 400, 60, 390, 55, 410]

    groups = frame_sorted_batches(frames, 2)

    assert groups == [[0, 4], [2, 3], [1, 5]]
    assert sorted(i for group in groups for i in group) == list(range(len(frames)))


def test_frame_buckets_are_steps_on_a_symbolic_axis_or_static_buckets() -> None:
    assert frame_bucket(1, None) == FRAME_STEP
    assert frame_bucket(FRAME_STEP * 3 + 1, None) == FRAME_STEP * 4
    assert frame_bucket(65, STATIC_FRAME_BUCKETS) == 96
    assert frame_bucket(STATIC_FRAME_BUCKETS[-1] + 1, STATIC_FRAME_BUCKETS) == 2 * STATIC_FRAME_BUCKETS[-1]


def test_sorting_by_frames_pays_off_at_a_batch_of_sixteen() -> None:
    items = book()

    unsorted = bucketed_padding(items, 16, EDGES, None)
    sorted_4 = bucketed_padding(items, 16, EDGES, None, sort_batches=4)
    sorted_8 = bucketed_padding(items, 16, EDGES, None, sort_batches=8)
    static_8 = bucketed_padding(items, 16, EDGES, STATIC_FRAME_BUCKETS, sort_batches=8)
    fifo = fifo_padding(items, 16)

    assert sorted_8.useful_frames == unsorted.useful_frames == fifo.useful_frames == sum(i.frames for i in items)
    assert sorted_8.frames > sorted_4.frames > unsorted.frames > fifo.frames
    assert static_8.frames < sorted_8.frames  # static buckets round every batch up further
    assert sorted_8.computed_tokens >= sorted_8.useful_tokens


def test_one_item_per_batch_pads_frames_only_to_the_bucket_step() -> None:
    items = book(300)

    single = bucketed_padding(items, 1, EDGES, None)

    worst = sum(frame_bucket(i.frames, None) for i in items)
    assert single.computed_frames == worst
    assert fifo_padding(items, 1).frames == 1.0


def test_the_padding_sample_is_seeded_runs_of_neighbours_in_book_order() -> None:
    sample = sample_segments(6848, 2000, seed=1, run_length=200)

    assert sample == sample_segments(6848, 2000, seed=1, run_length=200)
    assert sample.indices != sample_segments(6848, 2000, seed=2, run_length=200).indices
    assert len(sample.indices) == 2000 and sample.indices == sorted(set(sample.indices))
    assert all(i % 200 == 0 or i - 1 in sample.indices for i in sample.indices)  # whole runs of neighbours
    assert sample.as_dict() == {
        "segments": 2000,
        "book_segments": 6848,
        "seed": 1,
        "run_length": 200,
        "whole_book": False,
    }


def test_a_book_no_longer_than_the_sample_is_measured_whole() -> None:
    assert sample_segments(1958, 2000).indices == list(range(1958))
    assert sample_segments(1958, 2000).whole_book
    assert sample_segments(6848, 0).indices == list(range(6848))
