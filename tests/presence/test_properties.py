"""Property tests: no flapping under jitter, bounds kept, nothing pushed to offline viewers."""

from __future__ import annotations

import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from chatdesign.presence import (
    TRANSITIONS,
    ManualClock,
    MemoryTTLStore,
    PresenceEvent,
    PresencePolicy,
    PresenceService,
    PresenceState,
    count_flaps,
    heartbeat_times,
    status_timeline,
)

POLICY = PresencePolicy()


@settings(max_examples=40, deadline=None)
@given(
    jitter_s=st.floats(0, POLICY.offline_after_s - POLICY.heartbeat_interval_s - 0.1),
    seed=st.integers(0, 10_000),
)
def test_no_flapping_when_jitter_stays_below_the_grace_period(jitter_s: float, seed: int) -> None:
    beats = heartbeat_times(300, POLICY.heartbeat_interval_s, jitter_s=jitter_s, seed=seed)
    timeline = status_timeline(beats, until_s=300)
    online = timeline[timeline["time_s"] >= beats[0]]
    assert count_flaps(online) == 0
    assert set(online["status"]) == {"online"}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), drop=st.floats(0, 0.5))
def test_single_dropped_beats_never_take_a_user_offline(seed: int, drop: float) -> None:
    beats = heartbeat_times(300, 5.0, jitter_s=2.0, drop_probability=drop, seed=seed)
    long_gaps = sum(b - a >= POLICY.offline_after_s for a, b in itertools.pairwise(beats))
    flaps = count_flaps(status_timeline(beats, until_s=float(beats[-1])))
    assert flaps <= long_gaps  # only a silence of a whole grace period can take a user offline


USERS = ("u0", "u1", "u2", "u3", "u4")
FRIENDS = {u: {v: float(i + j) for j, v in enumerate(USERS) if v != u} for i, u in enumerate(USERS)}

actions = st.lists(
    st.tuples(
        st.floats(0.0, 40.0),  # seconds to wait before this step
        st.sampled_from(USERS),
        st.sampled_from(("phone", "laptop")),
        st.booleans(),  # active
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(steps=actions)
def test_batches_keep_bounds_skip_offline_viewers_and_follow_the_table(
    steps: list[tuple[float, str, str, bool]],
) -> None:
    clock = ManualClock(0.0)
    policy = PresencePolicy(away_after_s=60)
    service = PresenceService(MemoryTTLStore(clock), clock, policy, friends=FRIENDS)
    slowest = max(tier.max_delay_s for tier in policy.tiers)
    last_seen: dict[str, PresenceState] = {u: PresenceState.OFFLINE for u in USERS}
    flush_at = 0.0

    def flush_until(until: float) -> None:
        nonlocal flush_at
        while flush_at + 1 <= until:
            flush_at += 1
            clock.set(flush_at)
            for viewer, batch in service.flush(flush_at).items():
                assert service.status(viewer).status is not PresenceState.OFFLINE
                for change in batch:
                    score = FRIENDS[viewer][change.user_id]
                    bound = policy.tier_for(score).max_delay_s + 1  # flushed once a second
                    assert batch.sent_at_s - change.changed_at_s <= bound
            for user in USERS:
                state = service.status(user).status
                if state is not last_seen[user]:
                    legal = {TRANSITIONS.get((last_seen[user], e)) for e in PresenceEvent}
                    assert state in legal
                    last_seen[user] = state

    for wait_s, user, device, active in steps:
        flush_until(clock() + wait_s)
        clock.set(max(clock(), flush_at))
        status = service.heartbeat(user, device, active=active)
        assert status.status is not PresenceState.OFFLINE
    flush_until(clock() + slowest + policy.offline_after_s + 2)
    assert service.pending_changes == 0
    assert all(service.status(u).status is PresenceState.OFFLINE for u in USERS)
    assert math.isfinite(clock())

