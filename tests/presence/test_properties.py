"""Property tests: no flapping under jitter, bounds kept, nothing pushed to offline viewers."""

from __future__ import annotations

import bisect
import itertools
import math

import numpy as np
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


@settings(max_examples=25, deadline=None)
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


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), drop=st.floats(0, 0.5))
def test_single_dropped_beats_never_take_a_user_offline(seed: int, drop: float) -> None:
    beats = heartbeat_times(300, 5.0, jitter_s=2.0, drop_probability=drop, seed=seed)
    long_gaps = sum(b - a >= POLICY.offline_after_s for a, b in itertools.pairwise(beats))
    flaps = count_flaps(status_timeline(beats, until_s=float(beats[-1])))
    assert flaps <= long_gaps  # only a silence of a whole grace period can take a user offline


# -- the service under a slow network: every property at once ---------------------------------

USERS = ("ann", "ben", "cat", "dan")
FRIENDS = {  # importance ≥ 5 puts a friend in the 5-s tier, the rest wait up to 2 min
    "ann": {"ben": 6.0, "cat": 1.0, "dan": 2.0},
    "ben": {"ann": 1.0, "cat": 5.0},
    "cat": {"ann": 7.0, "ben": 1.0, "dan": 1.0},
    "dan": {"ann": 1.0, "cat": 3.0},
}
HEARTBEAT_S = 5.0
SESSION_SPAN_S = 300.0  # sessions start and end inside this span


@st.composite
def slow_network(draw: st.DrawFn) -> tuple[float, PresencePolicy, list[tuple[float, str, str, bool, bool]]]:
    """A start time, a policy, and every heartbeat arrival ``(time_s, user, device, active, pull)``
    (``pull``: the client also re-pulls its friends' statuses then, as when a list is reopened).

    Within a session a device beats every 5 s; each beat arrives up to ``jitter_s`` late and
    runs of at most ``max_drops`` beats are lost, with ``(max_drops + 1) × 5 s + jitter_s`` kept
    below the grace period: the network is slow, but the device never falls silent for a
    whole grace period while its session lasts.
    """
    start_s = draw(st.sampled_from((0.0, 1_000.0, 1.7e9, 1.7e9 + 0.123)))  # wall-clock times too
    offline_after_s = draw(st.sampled_from((30.0, 30.3)))
    away_after_s = draw(st.sampled_from((45.0, 60.3)))
    policy = PresencePolicy(HEARTBEAT_S, offline_after_s, away_after_s)
    max_drops = draw(st.integers(0, 4))
    room_s = offline_after_s - HEARTBEAT_S * (max_drops + 1)
    jitter_s = draw(st.floats(0.0, room_s - 0.01))
    drop = draw(st.floats(0.0, 0.6))
    active_share = draw(st.floats(0.0, 1.0))
    pull_share = draw(st.sampled_from((0.0, 0.1, 0.5)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    arrivals: list[tuple[float, str, str, bool, bool]] = []
    for user in USERS:
        for _ in range(draw(st.integers(0, 3))):
            begin = draw(st.floats(0.0, SESSION_SPAN_S - 10))
            length = draw(st.floats(1.0, SESSION_SPAN_S - begin))
            device = draw(st.sampled_from(("phone", "laptop")))
            sent = begin + np.arange(0.0, length, HEARTBEAT_S)
            lost = rng.random(sent.size) < drop
            lost[0] = False  # a session starts with a beat that arrives
            run = 0
            for k in range(sent.size):  # no run of more than max_drops lost beats
                run = run + 1 if lost[k] else 0
                if run > max_drops:
                    lost[k], run = False, 0
            late = rng.uniform(0.0, jitter_s, size=sent.size)
            active = rng.random(sent.size) < active_share
            pulls = rng.random(sent.size) < pull_share
            for at, gone, is_active, pull in zip(sent + late, lost, active, pulls, strict=True):
                if not gone:
                    arrivals.append((start_s + float(at), user, device, bool(is_active), bool(pull)))
    arrivals.sort()
    return start_s, policy, arrivals


@settings(max_examples=50, deadline=None)
@given(scenario=slow_network())
def test_presence_under_jitter_and_drops(
    scenario: tuple[float, PresencePolicy, list[tuple[float, str, str, bool, bool]]],
) -> None:
    """No flapping, every change reaches each online viewer within its tier's bound (as the
    viewer's client shows it), nothing reaches an offline viewer, every change is in the table.

    The clients are modelled: on login (a heartbeat from an offline user), and at random moments
    after, a client pulls every friend's status; it applies each batch it is sent. At every flush (once a second) each
    online viewer's screen may differ from a friend's true state only for as long as that
    friend's tier allows (+ 1 s, the flush period).
    """
    start_s, policy, arrivals = scenario
    clock = ManualClock(start_s)
    service = PresenceService(MemoryTTLStore(clock), clock, policy, friends=FRIENDS)
    grace = policy.offline_after_s
    beats_of = {u: [arrival[0] for arrival in arrivals if arrival[1] == u] for u in USERS}

    def covered(user: str, t: float) -> bool:
        """Is ``user`` inside a grace period of one of its heartbeats at ``t``?"""
        beats = beats_of[user]
        i = bisect.bisect_right(beats, t)
        return i > 0 and t < beats[i - 1] + grace

    truth = dict.fromkeys(USERS, PresenceState.OFFLINE)
    truth_since = dict.fromkeys(USERS, start_s)
    screens: dict[str, dict[str, PresenceState]] = {}  # what each logged-in client shows
    bound = {(v, f): policy.tier_for(score).max_delay_s + 1.0 for v, fs in FRIENDS.items() for f, score in fs.items()}
    last_beat = arrivals[-1][0] if arrivals else start_s
    end_s = last_beat + grace + max(t.max_delay_s for t in policy.tiers) + 3
    tick = start_s
    next_arrival = 0
    while tick < end_s:
        tick += 1.0
        while next_arrival < len(arrivals) and arrivals[next_arrival][0] <= tick:
            at, user, device, active, pull = arrivals[next_arrival]
            next_arrival += 1
            clock.set(at)
            logging_in = service.status(user).status is PresenceState.OFFLINE
            assert service.heartbeat(user, device, active=active).status is not PresenceState.OFFLINE
            if logging_in or pull:  # the client pulls every friend on login, and now and then
                friends = sorted(FRIENDS[user])
                screens[user] = {s.user_id: s.status for s in service.statuses(user, friends)}
        clock.set(tick)
        for viewer, batch in service.flush(tick).items():
            assert service.status(viewer).status is not PresenceState.OFFLINE, "pushed to an offline viewer"
            for change in batch:
                assert batch.sent_at_s - change.changed_at_s <= bound[viewer, change.user_id]
                if change.status is PresenceState.OFFLINE:
                    assert not covered(change.user_id, change.changed_at_s), "a flap was announced"
                screens[viewer][change.user_id] = change.status
        for user in USERS:
            state = service.status(user).status
            if state is PresenceState.OFFLINE:
                assert not covered(user, tick), f"{user} flapped offline while its heartbeats kept coming"
                screens.pop(user, None)  # the client is disconnected; it pulls again on login
            if state is not truth[user]:
                legal = {TRANSITIONS.get((truth[user], e)) for e in PresenceEvent}
                assert state in legal, f"{truth[user]} -> {state} is not in the table"
                truth[user], truth_since[user] = state, tick
        for viewer, screen in screens.items():
            for friend, shown in screen.items():
                if shown is not truth[friend]:
                    late_s = tick - truth_since[friend]
                    assert late_s <= bound[viewer, friend], f"{viewer} still shows {friend} {shown.value}"
    assert service.pending_changes == 0
    assert all(state is PresenceState.OFFLINE for state in truth.values())
    assert math.isfinite(clock())
