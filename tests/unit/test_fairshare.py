"""The fair-order policy on its own, with a fake clock: shares, classes, aging, newcomers."""

from __future__ import annotations

from collections import Counter

from producer.fairshare import FairShare, ShareState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def serve(policy: FairShare, shares: list[ShareState], turns: int, weights: dict[str, float], cost: float = 2.0):
    """Give ``turns`` units of ``cost`` seconds, one decision each; audio seconds per job."""
    given: Counter[str] = Counter()
    policy.begin_cycle(shares)
    for _ in range(turns):
        chosen = policy.choose(shares)
        assert chosen is not None
        policy.charge(chosen, cost, weights, 1.0)
        given[chosen.job] += cost
    return given


def test_equal_weights_split_evenly_between_tenants() -> None:
    clock = Clock()
    policy = FairShare(aging_s=60, clock=clock)
    shares = [ShareState("a", "alpha", registered_at=clock.now), ShareState("b", "beta", registered_at=clock.now)]
    given = serve(policy, shares, 100, {})
    assert given["a"] == given["b"] == 100


def test_weights_three_to_one_give_three_quarters() -> None:
    clock = Clock()
    policy = FairShare(aging_s=60, clock=clock)
    shares = [ShareState("a", "studio", registered_at=clock.now), ShareState("b", "team", registered_at=clock.now)]
    given = serve(policy, shares, 400, {"studio": 3.0, "team": 1.0})
    assert given["a"] / (given["a"] + given["b"]) == 0.75


def test_jobs_of_one_tenant_share_its_part_evenly_and_other_tenants_keep_theirs() -> None:
    clock = Clock()
    policy = FairShare(aging_s=60, clock=clock)
    shares = [
        ShareState("a1", "alpha", registered_at=clock.now),
        ShareState("a2", "alpha", registered_at=clock.now),
        ShareState("b", "beta", registered_at=clock.now),
    ]
    given = serve(policy, shares, 400, {})
    assert given["b"] == 400 and given["a1"] == given["a2"] == 200


def test_shares_are_in_audio_seconds_not_messages() -> None:
    clock = Clock()
    policy = FairShare(aging_s=60, clock=clock)
    short, long = ShareState("short", "alpha"), ShareState("long", "beta")
    seconds: Counter[str] = Counter()
    policy.begin_cycle([short, long])
    for _ in range(300):
        chosen = policy.choose([short, long])
        assert chosen is not None
        cost = 1.0 if chosen is short else 4.0
        policy.charge(chosen, cost, {}, 1.0)
        seconds[chosen.job] += cost
    assert abs(seconds["short"] - seconds["long"]) <= 4.0


def test_a_higher_class_goes_first_and_the_interactive_lane_before_it() -> None:
    clock = Clock()
    policy = FairShare(aging_s=60, clock=clock)
    low = ShareState("low", "alpha", priority=40, registered_at=clock.now, last_served=clock.now)
    high = ShareState("high", "beta", priority=60, registered_at=clock.now, last_served=clock.now)
    lane = ShareState("lane", "gamma", priority=0, interactive=True, registered_at=clock.now, last_served=clock.now)
    given = serve(policy, [low, high], 50, {})
    assert given == {"high": 100}
    assert policy.choose([low, high, lane]) is lane


def test_aging_lifts_a_starved_class_until_it_shares() -> None:
    clock = Clock()
    policy = FairShare(aging_s=60, clock=clock)
    low = ShareState("low", "alpha", priority=48, registered_at=clock.now, last_served=clock.now)
    high = ShareState("high", "beta", priority=50, registered_at=clock.now, last_served=clock.now)
    policy.begin_cycle([low, high])
    assert policy.choose([low, high]) is high
    clock.now += 119  # one point of age: 49, still below
    policy.charge(high, 1.0, {}, 1.0)
    assert policy.choose([low, high]) is high
    clock.now += 2  # two points: 50, the same class; it has had nothing, so it goes first
    assert policy.effective_priority(low) == 50
    assert policy.choose([low, high]) is low
    policy.charge(low, 1.0, {}, 1.0)  # served: its age starts again
    assert policy.effective_priority(low) == 48


def test_a_newcomer_gets_no_credit_for_the_time_it_was_away() -> None:
    clock = Clock()
    policy = FairShare(aging_s=600, clock=clock)
    first = ShareState("first", "alpha", registered_at=clock.now)
    serve(policy, [first], 100, {})  # alpha has had 200 s of audio alone
    second = ShareState("second", "beta", registered_at=clock.now)
    given = serve(policy, [first, second], 100, {})
    assert given["first"] == given["second"] == 100


def test_a_tenant_away_and_back_starts_level_with_the_others() -> None:
    clock = Clock()
    policy = FairShare(aging_s=600, clock=clock)
    a, b = ShareState("a", "alpha"), ShareState("b", "beta")
    serve(policy, [a, b], 10, {})
    serve(policy, [a], 200, {})  # beta idle: no credit piles up for alpha either way
    given = serve(policy, [a, b], 100, {})
    assert given["a"] == given["b"] == 100


def test_many_aging_jobs_of_one_tenant_do_not_outweigh_another_tenant_s_weight() -> None:
    clock = Clock()
    policy = FairShare(aging_s=60, clock=clock)
    heavy = ShareState("heavy", "studio", registered_at=clock.now, last_served=clock.now)
    many = [ShareState(f"small-{n}", "team", registered_at=clock.now, last_served=clock.now) for n in range(100)]
    shares = [heavy, *many]
    given: Counter[str] = Counter()
    policy.begin_cycle(shares)
    for _ in range(3000):
        clock.now += 1.0  # a unit a second: each of the 100 jobs waits long enough to age
        chosen = policy.choose(shares)
        assert chosen is not None
        policy.charge(chosen, 2.0, {"studio": 10.0, "team": 1.0}, 1.0)
        given["studio" if chosen is heavy else "team"] += 2.0
    share = given["studio"] / (given["studio"] + given["team"])
    assert abs(share - 10 / 11) < 0.02, f"weight 10 against 1 is 91% of the audio, not {share:.0%}"
