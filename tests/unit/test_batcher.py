"""The batcher, driven directly with a fake clock: formation, deadlines, fairness, folding, priority."""

from __future__ import annotations

import threading

from workers.batcher import Batcher, BatchPolicy

EDGES = [32, 64, 128, 256, 512]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(policy: BatchPolicy | None = None) -> tuple[Batcher[str], FakeClock]:
    clock = FakeClock()
    return Batcher(policy or BatchPolicy(max_items=4, max_tokens=100_000, max_wait_s=0.05), EDGES, clock=clock), clock


def test_a_full_bucket_is_released_at_once_with_items_of_that_bucket_only() -> None:
    batcher, _ = make()
    for i in range(4):
        batcher.submit(f"short{i}", 20)
    batcher.submit("long", 300)

    batch = batcher.next_batch(timeout=0)

    assert batch is not None
    assert batch.edge == 32 and batch.reason == "full"
    assert batch.payloads == ["short0", "short1", "short2", "short3"]
    assert batcher.pending_by_edge()[512] == 1


def test_a_partial_bucket_waits_until_its_oldest_item_reaches_its_deadline() -> None:
    batcher, clock = make()
    batcher.submit("a", 50)
    assert batcher.next_batch(timeout=0) is None

    clock.advance(0.049)
    assert batcher.next_batch(timeout=0) is None

    clock.advance(0.002)
    batch = batcher.next_batch(timeout=0)
    assert batch is not None and batch.reason == "deadline" and batch.payloads == ["a"] and batch.edge == 64


def test_padded_token_budget_caps_the_batch_size() -> None:
    batcher, _ = make(BatchPolicy(max_items=64, max_tokens=1024, max_wait_s=1.0))
    for i in range(10):
        batcher.submit(i, 200)  # bucket 256: the budget allows 4 per batch

    batch = batcher.next_batch(timeout=0)

    assert batch is not None and len(batch.items) == 4 and batch.padded_tokens == 1024


def test_tuned_sizes_per_edge_override_the_default_cap() -> None:
    policy = BatchPolicy(max_items=16, max_tokens=100_000, max_wait_s=1.0, items_per_edge={32: 2})
    batcher, _ = make(policy)
    for i in range(3):
        batcher.submit(i, 10)
    batch = batcher.next_batch(timeout=0)
    assert batch is not None and len(batch.items) == 2


def test_the_most_overdue_bucket_is_served_first_so_none_starves() -> None:
    batcher, clock = make(BatchPolicy(max_items=2, max_tokens=100_000, max_wait_s=0.05))
    batcher.submit("lonely-long", 400)
    clock.advance(0.2)
    # A busy short bucket that is always full competes with the overdue one.
    for i in range(6):
        batcher.submit(f"s{i}", 10)

    first = batcher.next_batch(timeout=0)

    assert first is not None and first.payloads == ["lonely-long"]


def test_a_nearly_empty_overdue_bucket_folds_into_its_larger_neighbour() -> None:
    batcher, clock = make(BatchPolicy(max_items=8, max_tokens=100_000, max_wait_s=0.05))
    batcher.submit("short", 20)  # bucket 32
    batcher.submit("mid1", 60)  # bucket 64
    batcher.submit("mid2", 60)
    clock.advance(0.06)

    batch = batcher.next_batch(timeout=0)

    assert batch is not None
    assert batch.reason == "fold" and batch.edge == 64 and batch.folded_from == 32
    assert sorted(batch.payloads) == ["mid1", "mid2", "short"]
    assert batcher.pending_count() == 0


def test_no_fold_when_the_neighbour_is_empty_or_would_overflow() -> None:
    batcher, clock = make(BatchPolicy(max_items=2, max_tokens=100_000, max_wait_s=0.05))
    batcher.submit("short", 20)
    batcher.submit("mid1", 60)
    batcher.submit("mid2", 60)
    clock.advance(0.06)
    # 64 is full on its own (2 items): it is served as a full batch and 32 stays separate.
    batches = [batcher.next_batch(timeout=0), batcher.next_batch(timeout=0)]
    edges = sorted(b.edge for b in batches if b is not None)
    assert edges == [32, 64]


def test_interactive_items_are_served_before_older_bulk_work() -> None:
    batcher, clock = make()
    batcher.submit("bulk", 20)
    clock.advance(0.06)
    batcher.submit("urgent", 20, interactive=True)
    clock.advance(0.01)

    batch = batcher.next_batch(timeout=0)

    assert batch is not None and batch.reason == "interactive" and batch.payloads == ["urgent"]


def test_drain_releases_partial_batches_immediately() -> None:
    batcher, _ = make()
    batcher.submit("a", 20)
    batcher.submit("b", 300)
    batcher.drain()
    batches = [batcher.next_batch(timeout=0), batcher.next_batch(timeout=0)]
    assert all(b is not None and b.reason == "drain" for b in batches)


def test_close_hands_out_what_is_left_then_returns_none() -> None:
    batcher, _ = make()
    batcher.submit("a", 20)
    batcher.close()
    assert batcher.next_batch(timeout=0) is not None
    assert batcher.next_batch(timeout=0) is None


def test_requeued_items_go_back_to_the_front_of_their_bucket() -> None:
    batcher, clock = make()
    for name in ("a", "b", "c", "d"):
        batcher.submit(name, 20)
    first = batcher.next_batch(timeout=0)
    assert first is not None
    batcher.submit("e", 20)
    batcher.requeue(first.items[2:])
    clock.advance(1)
    again = batcher.next_batch(timeout=0)
    assert again is not None and again.payloads[:2] == ["c", "d"]


def test_next_batch_wakes_a_waiting_runner_when_a_bucket_fills() -> None:
    batcher: Batcher[int] = Batcher(BatchPolicy(max_items=2, max_tokens=100_000, max_wait_s=30.0), EDGES)
    results = []
    runner = threading.Thread(target=lambda: results.append(batcher.next_batch(timeout=10)))
    runner.start()
    batcher.submit(1, 10)
    batcher.submit(2, 10)
    runner.join(5)
    assert not runner.is_alive()
    assert results[0] is not None and results[0].payloads == [1, 2]


def test_items_longer_than_the_largest_bucket_are_refused() -> None:
    batcher, _ = make()
    try:
        batcher.submit("too-long", 600)
    except ValueError as exc:
        assert "largest bucket" in str(exc)
    else:
        raise AssertionError("an item over the largest bucket was accepted")


def test_a_full_batch_takes_the_oldest_item_and_its_nearest_neighbours_in_length() -> None:
    batcher, _ = make(BatchPolicy(max_items=3, max_tokens=100_000, max_wait_s=1.0))
    for name, tokens in [("oldest", 200), ("far", 130), ("near1", 205), ("far2", 140), ("near2", 190)]:
        batcher.submit(name, tokens)

    batch = batcher.next_batch(timeout=0)

    assert batch is not None and batch.payloads == ["oldest", "near1", "near2"]
    assert batcher.pending_by_edge()[256] == 2


def test_items_left_behind_become_the_anchor_of_the_next_batch() -> None:
    batcher, _clock = make(BatchPolicy(max_items=2, max_tokens=100_000, max_wait_s=1.0))
    for name, tokens in [("a", 200), ("odd", 130), ("b", 201), ("c", 202), ("d", 203)]:
        batcher.submit(name, tokens)
    first = batcher.next_batch(timeout=0)
    second = batcher.next_batch(timeout=0)
    assert first is not None and second is not None
    assert first.payloads == ["a", "b"] and second.payloads[0] == "odd"


def test_take_all_empties_every_bucket_and_the_interactive_lane() -> None:
    batcher, _ = make()
    batcher.submit("a", 20)
    batcher.submit("b", 300)
    batcher.submit("c", 20, interactive=True)
    taken = batcher.take_all()
    assert sorted(item.payload for item in taken) == ["a", "b", "c"]
    assert batcher.pending_count() == 0


def test_items_submitted_alone_are_each_a_call_of_their_own_served_before_full_buckets() -> None:
    batcher, _ = make()
    for i in range(4):
        batcher.submit(f"bulk{i}", 20)  # a full bucket, due at once
    batcher.submit_many([("suspect1", 20, False), ("bulk4", 20, False), ("suspect2", 20, True)], alone={0, 2})
    assert batcher.pending_count() == 7

    first, second, third = (batcher.next_batch(timeout=0) for _ in range(3))

    assert first is not None and first.payloads == ["suspect1"] and first.reason == "alone"
    assert second is not None and second.payloads == ["suspect2"] and second.edge == 32, "alone even if interactive"
    assert third is not None and third.payloads == ["bulk0", "bulk1", "bulk2", "bulk3"]
    assert batcher.pending_count() == 1, "the unit's unsuspected item waits in its bucket as usual"


def test_a_suspect_given_back_stays_alone_and_take_all_includes_it() -> None:
    batcher, _ = make()
    [future] = batcher.submit_many([("suspect", 20, False)], alone={0})
    batch = batcher.next_batch(timeout=0)
    assert batch is not None
    batcher.requeue(batch.items)
    batcher.submit("bulk", 20)
    taken = batcher.take_all()
    first = taken[0]
    assert first.payload == "suspect" and first.alone and first.future is future, "still alone, still first"
    assert batcher.pending_count() == 0
