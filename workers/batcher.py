"""Length-bucketed micro-batching, free of any transport.

Items arrive one by one (from Celery tasks, or straight from a test) with a
token count; the batcher files each under its bucket edge and releases a
batch of ONE bucket when it is full (item cap or padded-token budget), or
when its oldest item has used up its wait budget. Among buckets that are
ready it serves the one whose oldest item has waited longest relative to its
deadline, so no bucket starves. A bucket released on its deadline while
still nearly empty can be folded into its larger neighbour, paying some
padding to save a whole engine call. An optional interactive lane is served
before bulk work. An item submitted ``alone`` (a segment that was in an
engine call that took a worker down) is an engine call of its own, served
first, so that if it is the culprit it takes no other segment with it.

The batcher only forms batches; running them is the runner's job.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass
class BatchPolicy:
    """How big a batch may get and how long an item may wait for one."""

    max_items: int = 16
    max_tokens: int = 8192
    """Padded token budget of one batch: items x bucket edge."""
    max_wait_s: float = 0.05
    items_per_edge: Mapping[int, int] = field(default_factory=dict)
    """Tuned batch sizes per bucket edge (found at warm-up); capped by max_items."""
    fold_fraction: float = 0.5
    """A deadline-released bucket filled below this fraction may join its larger neighbour."""
    interactive_wait_s: float = 0.005

    def capacity(self, edge: int) -> int:
        tuned = self.items_per_edge.get(edge, self.max_items)
        return max(1, min(tuned, self.max_items, self.max_tokens // edge))


@dataclass
class Pending(Generic[T]):
    payload: T
    tokens: int
    edge: int
    arrived: float
    deadline: float
    interactive: bool
    future: Future[Any]
    alone: bool = False
    """An engine call of its own (see the module)."""


@dataclass
class Batch(Generic[T]):
    edge: int
    """Every item is padded to this many tokens."""
    items: list[Pending[T]]
    reason: str
    """Why it was released: full, deadline, fold, interactive, alone or drain."""
    formed_at: float
    folded_from: int | None = None

    @property
    def payloads(self) -> list[T]:
        return [item.payload for item in self.items]

    @property
    def useful_tokens(self) -> int:
        return sum(item.tokens for item in self.items)

    @property
    def padded_tokens(self) -> int:
        return self.edge * len(self.items)


class Batcher(Generic[T]):
    """Thread-safe: many producers call ``submit``, one runner calls ``next_batch``."""

    def __init__(
        self, policy: BatchPolicy, edges: Iterable[int], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy
        self.edges = sorted(edges)
        self._clock = clock
        self._buckets: dict[int, deque[Pending[T]]] = {edge: deque() for edge in self.edges}
        self._interactive: deque[Pending[T]] = deque()
        self._alone: deque[Pending[T]] = deque()
        self._cond = threading.Condition()
        self._draining = False
        self._closed = False

    # --- producers ---------------------------------------------------------
    def edge_for(self, tokens: int) -> int:
        for edge in self.edges:
            if tokens <= edge:
                return edge
        raise ValueError(f"{tokens} tokens exceed the largest bucket {self.edges[-1]}")

    def submit(self, payload: T, tokens: int, *, interactive: bool = False) -> Future[Any]:
        """Queue one item; its future is resolved by whoever runs the batch."""
        return self.submit_many([(payload, tokens, interactive)])[0]

    def submit_many(self, items: Sequence[tuple[T, int, bool]], *, alone: Container[int] = ()) -> list[Future[Any]]:
        """Queue (payload, tokens, interactive) items under one lock and one wake-up (a work unit's segments).

        ``alone``: positions of items that are each an engine call of their own, served before any other batch.
        """
        now = self._clock()
        pending = [
            Pending(
                payload,
                tokens,
                self.edge_for(tokens),
                now,
                now + (self.policy.interactive_wait_s if interactive else self.policy.max_wait_s),
                interactive,
                Future(),
                position in alone,
            )
            for position, (payload, tokens, interactive) in enumerate(items)
        ]
        with self._cond:
            if self._closed:
                raise RuntimeError("batcher is closed")
            for item in pending:
                self._lane(item).append(item)
            self._cond.notify_all()
        return [item.future for item in pending]

    def requeue(self, items: Iterable[Pending[T]]) -> None:
        """Put items back at the front of their buckets (a batch split after a failure)."""
        with self._cond:
            for item in reversed(list(items)):
                self._lane(item).appendleft(item)
            self._cond.notify_all()

    def _lane(self, item: Pending[T]) -> deque[Pending[T]]:
        if item.alone:
            return self._alone
        return self._interactive if item.interactive else self._buckets[item.edge]

    # --- the runner ----------------------------------------------------------
    def next_batch(self, timeout: float | None = None) -> Batch[T] | None:
        """Block until a batch is due; None on timeout or when closed and empty."""
        end = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                now = self._clock()
                batch = self._pick(now)
                if batch is not None:
                    return batch
                if self._closed and self.pending_count_locked() == 0:
                    return None
                waits = [d - now for d in self._deadlines()]
                if end is not None:
                    waits.append(end - now)
                    if end - now <= 0:
                        return None
                self._cond.wait(max(min(waits), 0.0005) if waits else None)

    def drain(self) -> None:
        """Release everything without waiting for batches to fill (shutdown)."""
        with self._cond:
            self._draining = True
            self._cond.notify_all()

    def close(self) -> None:
        """Accept nothing more; ``next_batch`` returns None once the rest is handed out."""
        with self._cond:
            self._closed = True
            self._draining = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called: the runner stops once nothing is left."""
        return self._closed

    def take_all(self) -> list[Pending[T]]:
        """Remove and return everything waiting (a worker giving its items back before it stops)."""
        with self._cond:
            items = [*self._alone, *self._interactive]
            self._alone.clear()
            self._interactive.clear()
            for queue in self._buckets.values():
                items.extend(queue)
                queue.clear()
            self._cond.notify_all()
            return items

    def pending_count(self) -> int:
        with self._cond:
            return self.pending_count_locked()

    def pending_count_locked(self) -> int:
        return len(self._alone) + len(self._interactive) + sum(len(q) for q in self._buckets.values())

    def pending_by_edge(self) -> dict[int, int]:
        with self._cond:
            return {edge: len(q) for edge, q in self._buckets.items()}

    # --- policy ----------------------------------------------------------------
    def _deadlines(self) -> list[float]:
        heads = [q[0].deadline for q in self._buckets.values() if q]
        if self._interactive:
            heads.append(self._interactive[0].deadline)
        if self._alone:
            heads.append(self._alone[0].arrived)
        return heads

    def _pick(self, now: float) -> Batch[T] | None:
        if self._alone:
            item = self._alone.popleft()
            return Batch(item.edge, [item], "alone", now)
        lane = self._take_interactive(now)
        if lane is not None:
            return lane
        best_edge, best_score = None, -1.0
        for edge, queue in self._buckets.items():
            if not queue:
                continue
            oldest = queue[0]
            full = len(queue) >= self.policy.capacity(edge)
            due = self._draining or oldest.deadline <= now
            if not (full or due):
                continue
            budget = max(oldest.deadline - oldest.arrived, 1e-6)
            score = (now - oldest.arrived) / budget
            if score > best_score:
                best_edge, best_score = edge, score
        if best_edge is None:
            return None
        queue = self._buckets[best_edge]
        capacity = self.policy.capacity(best_edge)
        if len(queue) >= capacity:
            return self._take(best_edge, capacity, "full", now)
        folded = self._fold(best_edge, now)
        if folded is not None:
            return folded
        return self._take(best_edge, capacity, "drain" if self._draining else "deadline", now)

    def _take(self, edge: int, count: int, reason: str, now: float) -> Batch[T]:
        """The oldest item plus the items closest to it in length.

        Always including the oldest keeps the bucket first-come-first-served
        (nothing waits forever); filling the rest by nearest length makes the
        items of a batch similar, so less of the batch is padding, in tokens
        and in the frames the decoder computes.
        """
        queue = self._buckets[edge]
        if len(queue) <= count:
            items = list(queue)
            queue.clear()
            return Batch(edge, items, reason, now)
        anchor = queue[0]
        rest = sorted(range(1, len(queue)), key=lambda i: (abs(queue[i].tokens - anchor.tokens), i))
        chosen = {0, *rest[: count - 1]}
        items = [item for i, item in enumerate(queue) if i in chosen]
        remaining = [item for i, item in enumerate(queue) if i not in chosen]
        queue.clear()
        queue.extend(remaining)
        return Batch(edge, items, reason, now)

    def _fold(self, edge: int, now: float) -> Batch[T] | None:
        """Join a nearly empty, overdue bucket with its larger neighbour when both fit one batch."""
        small = self._buckets[edge]
        if len(small) >= self.policy.fold_fraction * self.policy.capacity(edge):
            return None
        larger = [e for e in self.edges if e > edge]
        if not larger or not self._buckets[larger[0]]:
            return None
        target = larger[0]
        room = self.policy.capacity(target)
        neighbour = self._buckets[target]
        if len(small) + len(neighbour) > room:
            # The neighbour fills a batch on its own; folding would only delay it.
            return None
        items = list(small) + list(neighbour)
        small.clear()
        neighbour.clear()
        items.sort(key=lambda p: p.arrived)
        return Batch(target, items, "fold", now, folded_from=edge)

    def _take_interactive(self, now: float) -> Batch[T] | None:
        lane = self._interactive
        if not lane:
            return None
        edge = max(item.edge for item in lane)
        capacity = self.policy.capacity(edge)
        if not (self._draining or len(lane) >= capacity or lane[0].deadline <= now):
            return None
        items = [lane.popleft() for _ in range(min(capacity, len(lane)))]
        return Batch(max(item.edge for item in items), items, "interactive", now)
