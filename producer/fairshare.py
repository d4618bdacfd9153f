"""The fair order in which the dispatcher hands out work: a pure policy, testable with a fake clock.

Order, from strongest to weakest:

1. the interactive lane before bulk work;
2. strict priority classes, higher first, where a job gains one point per
   ``aging_s`` seconds since it was last served, up to the highest class
   that has work (so a low class is never starved for ever: it catches up
   with the class above and then shares; and aging never lifts a job above
   every class, where it would outrank the weights of its own);
3. within a class, tenants by weighted fair share: each tenant has a
   virtual time that grows by the estimated audio seconds it is given
   divided by its weight, and the lowest virtual time is served next;
4. within a tenant, its jobs evenly, by the same rule with weight one.

A tenant or job that becomes active starts at the lowest virtual time of
those already active, so idle time earns no credit to burst with later
(start-time fair queueing, as Slurm's fair-share and OpenCue's
subscriptions approximate it). Quotas are applied by the caller, which
leaves a tenant at its limit out of the candidates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

DEFAULT_PRIORITY = 50
MIN_PRIORITY = 0
MAX_PRIORITY = 100


@dataclass
class ShareState:
    """What the policy remembers of one job between decisions."""

    job: str
    tenant: str
    priority: int = DEFAULT_PRIORITY
    interactive: bool = False
    registered_at: float = 0.0
    last_served: float = 0.0
    virtual_s: float = 0.0
    served_s: float = 0.0


@dataclass
class FairShare:
    aging_s: float = 60.0
    clock: Callable[[], float] = field(default=lambda: 0.0)
    tenant_virtual_s: dict[str, float] = field(default_factory=dict)
    _active_jobs: set[str] = field(default_factory=set)
    _active_tenants: set[str] = field(default_factory=set)

    def effective_priority(self, share: ShareState, now: float | None = None) -> int:
        waited = (self.clock() if now is None else now) - max(share.last_served, share.registered_at)
        return share.priority + max(int(waited // self.aging_s), 0)

    def begin_cycle(self, active: Iterable[ShareState]) -> None:
        """Note who has work now; newcomers start at the lowest virtual time of the others."""
        jobs = list(active)
        tenants = {s.tenant for s in jobs}
        known_tenants = [self.tenant_virtual_s.get(t, 0.0) for t in tenants & self._active_tenants]
        floor_t = min(known_tenants) if known_tenants else None
        for tenant in tenants - self._active_tenants:
            current = self.tenant_virtual_s.get(tenant, 0.0)
            self.tenant_virtual_s[tenant] = current if floor_t is None else max(current, floor_t)
        by_tenant: dict[str, list[ShareState]] = {}
        for share in jobs:
            by_tenant.setdefault(share.tenant, []).append(share)
        for shares in by_tenant.values():
            known = [s.virtual_s for s in shares if s.job in self._active_jobs]
            floor_j = min(known) if known else None
            for share in shares:
                if share.job not in self._active_jobs and floor_j is not None:
                    share.virtual_s = max(share.virtual_s, floor_j)
        self._active_jobs = {s.job for s in jobs}
        self._active_tenants = tenants

    def rank(
        self, share: ShareState, now: float, ceiling: int = MAX_PRIORITY
    ) -> tuple[int, int, float, float, float, str]:
        """Sort key: smaller is served first; aging lifts a job no higher than ``ceiling``."""
        return (
            0 if share.interactive else 1,
            -min(self.effective_priority(share, now), max(ceiling, share.priority)),
            self.tenant_virtual_s.get(share.tenant, 0.0),
            share.virtual_s,
            share.registered_at,
            share.job,
        )

    def choose(self, candidates: Iterable[ShareState]) -> ShareState | None:
        now = self.clock()
        shares = list(candidates)
        ceilings: dict[bool, int] = {}  # per lane: the highest class with work there
        for share in shares:
            ceilings[share.interactive] = max(ceilings.get(share.interactive, MIN_PRIORITY), share.priority)
        return min(shares, key=lambda s: self.rank(s, now, ceilings[s.interactive]), default=None)

    def charge(self, share: ShareState, seconds: float, weights: Mapping[str, float], default_weight: float) -> None:
        """Account ``seconds`` of estimated audio given to ``share``."""
        weight = weights.get(share.tenant, default_weight)
        self.tenant_virtual_s[share.tenant] = self.tenant_virtual_s.get(share.tenant, 0.0) + seconds / weight
        share.virtual_s += seconds
        share.served_s += seconds
        share.last_served = self.clock()
