"""What the dispatcher holds for one job: its units owed, its units in flight, its place in the fair order.

A unit is what one message carries: one segment (the default) or several
segments of one job and one queue. Everything here is rebuilt from the
stored plan and the ledger whenever the dispatcher reloads the job.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from producer.fairshare import ShareState
from shared.schema import SegmentTask


@dataclass
class Unit:
    """What one message carries: segments of one job and one queue."""

    queue: str
    tasks: list[SegmentTask]
    seconds: float

    @property
    def indexes(self) -> list[int]:
        return [i for task in self.tasks for i in task.indexes]

    @property
    def first(self) -> int:
        return self.tasks[0].indexes[0]


@dataclass
class JobWork:
    share: ShareState
    gen: str
    pending: dict[str, deque[Unit]] = field(default_factory=dict)
    flight: dict[int, Unit] = field(default_factory=dict)
    """Units dispatched (or found in flight at load) and not yet seen done, by first index."""
    fresh: bool = False
    """Nothing of the job was ever sent: its first unit goes to the head of its queue."""

    @property
    def pending_s(self) -> float:
        return sum(unit.seconds for units in self.pending.values() for unit in units)

    def next_unit(self, room: Mapping[str, int]) -> Unit | None:
        """The earliest unit, in book order, whose queue has room."""
        heads = [units[0] for queue, units in self.pending.items() if units and room.get(queue, 0) > 0]
        return min(heads, key=lambda u: u.first, default=None)

    @property
    def in_flight(self) -> int:
        return sum(len(unit.indexes) for unit in self.flight.values())

    def take(self, unit: Unit) -> None:
        self.pending[unit.queue].popleft()
        self.flight[unit.first] = unit

    def settle(self, done: set[int], sent: set[int], firsts: Iterable[int] | None = None) -> None:
        """Forget units that are done; put back units a worker handed back (paused job: its sent marks cleared).

        ``firsts`` limits it to those units in flight (by first index); ``done`` and ``sent`` must cover their
        indexes. Without it every unit in flight is judged.
        """
        judged = list(self.flight) if firsts is None else [f for f in firsts if f in self.flight]
        for first in judged:
            unit = self.flight[first]
            left = [i for i in unit.indexes if i not in done]
            if not left:
                del self.flight[first]
            elif not any(i in sent for i in left):
                del self.flight[first]
                self.pending.setdefault(unit.queue, deque()).appendleft(unit)


def build_units(
    tasks: Iterable[tuple[str, SegmentTask]], per_unit: int, seconds_of: Callable[[SegmentTask], float]
) -> dict[str, deque[Unit]]:
    """Group consecutive tasks of one queue into units of up to ``per_unit`` segments."""
    pending: dict[str, deque[Unit]] = {}
    for queue, task in tasks:
        units = pending.setdefault(queue, deque())
        if units and len(units[-1].tasks) < per_unit:
            units[-1].tasks.append(task)
            units[-1].seconds += seconds_of(task)
        else:
            units.append(Unit(queue, [task], seconds_of(task)))
    return pending
