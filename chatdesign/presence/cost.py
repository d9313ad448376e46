"""What presence costs at scale: naive fan-out, online-only, and tiered + batched pushes.

Facebook's chat team (2008) found naive presence costs grow as *friends × online users ×
churn*: every login or logout is a message to every friend. This module simulates N users
at once with numpy, one tick (default 1 s) at a time, and counts pushes and bytes three ways:

- **naive** -- every change goes to every friend, online or not;
- **online-only** -- every change goes to each friend who is online right now;
- **tiered + batched** -- as :class:`~chatdesign.presence.PresenceService` does: a change
  arms the viewer's window (5 s for very important friends, 2 min for the rest); when it
  ends, one push carries every change that arrived meanwhile. Offline viewers get nothing.

The population: friend counts are heavy-tailed (a Pareto tail, capped like Facebook's 5,000),
each user is online a fraction of the day drawn from a beta distribution around
``online_fraction``, and sessions last ``mean_session_s`` on average (exponential), so each
user's state is a two-state Markov chain in its stationary regime. Friends are drawn at random
(mean-field): the changes reaching a viewer in a tick are Poisson with mean ``friends ×
(changes this tick / users)``. Flap collapsing is left out, so batched counts are an upper bound.

Pushes are not the only load. Every heartbeat that writes the presence store is a write:
``online users ÷ heartbeat interval`` per second (:func:`heartbeat_write_rate`; 5 M connected
users beating every 5 s make 1 M writes/s), more than all the pushes. The usual fix keeps each
connection's last heartbeat in the memory of the connection server that holds the socket and
writes the store only when the state changes, plus a coarse refresh so the record's TTL does not
run out (:func:`gateway_write_rate`). And batching has a ceiling the naive strategies lack: a
viewer gets at most one push per window, so pushes/s ≤ online viewers ÷ window
(:func:`batched_push_ceiling`), however many friends they have.

Taught in ``notebooks/05_presence.ipynb``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from chatdesign.checks import check_fraction, check_number, check_whole
from chatdesign.exercises import CheckResult, check_within, not_answered
from chatdesign.units import SECONDS_PER_DAY, format_count, format_duration


@dataclass(frozen=True)
class PresenceCostModel:
    """The scenario for :func:`simulate_presence_cost` (durations in seconds, sizes in bytes).

    ``warmup_s`` runs before counting starts, so every window is in its steady state;
    ``duration_s`` is the measured time. ``header_bytes`` is paid per push (frame and envelope),
    ``change_bytes`` per change carried.
    """

    users: int = 2_000
    mean_friends: float = 50.0
    friends_tail_alpha: float = 2.5
    max_friends: int = 5_000
    online_fraction: float = 0.1
    mean_session_s: float = 1_200.0
    very_important_share: float = 0.05
    very_important_delay_s: float = 5.0
    others_delay_s: float = 120.0
    tick_s: float = 1.0
    warmup_s: float = 120.0
    duration_s: float = 600.0
    header_bytes: int = 60
    change_bytes: int = 40
    seed: int = 0
    heartbeat_interval_s: float = 5.0
    store_refresh_s: float = 60.0

    def __post_init__(self) -> None:
        for what in ("users", "max_friends", "header_bytes", "change_bytes", "seed"):
            value = getattr(self, what)
            check_whole(value, what)
        if self.users < 1 or self.max_friends < 1:
            raise ValueError("users and max_friends must be at least 1")
        check_number(self.mean_friends, "mean_friends", minimum=1, maximum=self.max_friends)
        check_number(self.friends_tail_alpha, "friends_tail_alpha", minimum=1.01, maximum=100)
        check_number(self.online_fraction, "online_fraction", minimum=0.001, maximum=0.999)
        check_fraction(self.very_important_share, "very_important_share")
        check_number(self.tick_s, "tick_s", minimum=0.01, maximum=60)
        for what in ("mean_session_s", "very_important_delay_s", "others_delay_s", "duration_s"):
            check_number(getattr(self, what), what, minimum=self.tick_s)
        check_number(self.warmup_s, "warmup_s", minimum=0)
        check_number(self.heartbeat_interval_s, "heartbeat_interval_s", positive=True, unit="seconds")
        check_number(self.store_refresh_s, "store_refresh_s", minimum=self.heartbeat_interval_s, unit="seconds")
        if self.very_important_delay_s > self.others_delay_s:
            raise ValueError(
                f"very important friends may not wait longer ({self.very_important_delay_s:g} s) "
                f"than the others ({self.others_delay_s:g} s)"
            )

    @property
    def changes_per_user_per_s(self) -> float:
        """Mean state changes per user per second: two per session (login and logout)."""
        sessions_per_s = self.online_fraction / self.mean_session_s
        return 2 * sessions_per_s

    @property
    def ticks(self) -> int:
        """How many ticks the simulation runs, warm-up included."""
        return math.ceil((self.warmup_s + self.duration_s) / self.tick_s)


@dataclass(frozen=True)
class PresenceCostResult:
    """Pushes and bytes per second for each strategy, and the staleness batching causes."""

    model: PresenceCostModel
    mean_friends: float
    mean_online_users: float
    changes_per_s: float
    naive_pushes_per_s: float
    online_only_pushes_per_s: float
    batched_pushes_per_s: float
    naive_bytes_per_s: float
    online_only_bytes_per_s: float
    batched_bytes_per_s: float
    very_important_mean_staleness_s: float
    very_important_max_staleness_s: float
    others_mean_staleness_s: float
    others_max_staleness_s: float

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if name != "model":
                check_number(value, name, minimum=0)

    def __repr__(self) -> str:
        return (
            f"PresenceCostResult(users={format_count(self.model.users)}, "
            f"naive={format_count(self.naive_pushes_per_s)}/s, "
            f"online-only={format_count(self.online_only_pushes_per_s)}/s, "
            f"batched={format_count(self.batched_pushes_per_s)}/s, "
            f"naive/batched={self.naive_to_batched_ratio:.1f}x)"
        )

    @property
    def heartbeat_writes_per_s(self) -> float:
        """Store writes/s when every heartbeat writes the store: online users ÷ interval."""
        return heartbeat_write_rate(self.mean_online_users, self.model.heartbeat_interval_s)

    @property
    def gateway_writes_per_s(self) -> float:
        """Store writes/s when connection servers write on change plus one refresh per period."""
        return gateway_write_rate(self.mean_online_users, self.changes_per_s, self.model.store_refresh_s)

    @property
    def push_ceiling_per_s(self) -> float:
        """The most batched pushes/s possible: each online viewer at most once per shortest window."""
        return batched_push_ceiling(self.mean_online_users, self.model.very_important_delay_s)

    @property
    def others_push_ceiling_per_s(self) -> float:
        """The ceiling if only ordinary friends changed: online viewers ÷ the ordinary window."""
        return batched_push_ceiling(self.mean_online_users, self.model.others_delay_s)

    def writes_frame(self) -> pd.DataFrame:
        """Store writes/s under both designs, next to the batched pushes/s, per strategy row."""
        model = self.model
        return pd.DataFrame(
            {
                "store_writes_per_s": [self.heartbeat_writes_per_s, self.gateway_writes_per_s],
                "writes_per_push": [
                    self.heartbeat_writes_per_s / self.batched_pushes_per_s if self.batched_pushes_per_s else math.inf,
                    self.gateway_writes_per_s / self.batched_pushes_per_s if self.batched_pushes_per_s else math.inf,
                ],
                "what_is_written": [
                    f"every heartbeat (every {format_duration(model.heartbeat_interval_s)})",
                    f"each change + a refresh every {format_duration(model.store_refresh_s)}",
                ],
            },
            index=pd.Index(["every heartbeat writes", "connection server writes"], name="design"),
        )

    @property
    def naive_to_batched_ratio(self) -> float:
        """How many times more pushes naive fan-out sends than tiered batching (inf if none)."""
        if self.batched_pushes_per_s == 0:
            return math.inf
        return self.naive_pushes_per_s / self.batched_pushes_per_s

    def to_frame(self) -> pd.DataFrame:
        """One row per strategy: pushes/s, bytes/s, pushes relative to naive, staleness (s)."""
        pushes = [self.naive_pushes_per_s, self.online_only_pushes_per_s, self.batched_pushes_per_s]
        naive = self.naive_pushes_per_s
        return pd.DataFrame(
            {
                "pushes_per_s": pushes,
                "bytes_per_s": [
                    self.naive_bytes_per_s,
                    self.online_only_bytes_per_s,
                    self.batched_bytes_per_s,
                ],
                "share_of_naive": [p / naive if naive else math.nan for p in pushes],
                "max_staleness_s": [0.0, 0.0, self.others_max_staleness_s],
            },
            index=pd.Index(["naive", "online-only", "tiered + batched"], name="strategy"),
        )

    def staleness_frame(self) -> pd.DataFrame:
        """Mean and maximum staleness (seconds) each tier sees under tiered batching."""
        model = self.model
        return pd.DataFrame(
            {
                "max_delay_s": [model.very_important_delay_s, model.others_delay_s],
                "mean_staleness_s": [
                    self.very_important_mean_staleness_s,
                    self.others_mean_staleness_s,
                ],
                "max_staleness_s": [
                    self.very_important_max_staleness_s,
                    self.others_max_staleness_s,
                ],
            },
            index=pd.Index(["very important", "others"], name="tier"),
        )


def draw_friend_counts(model: PresenceCostModel, rng: np.random.Generator) -> np.ndarray:
    """Heavy-tailed friend counts (int64, one per user): a Pareto tail scaled to the mean, capped."""
    alpha = model.friends_tail_alpha
    scale = (model.mean_friends - 1) * (alpha - 1)
    raw = 1 + rng.pareto(alpha, size=model.users) * scale
    return np.minimum(np.rint(raw), model.max_friends).astype(np.int64)


class PresenceCostSimulation:
    """The vectorised population of :class:`PresenceCostModel`, advanced one tick at a time.

    Each :meth:`step` is one batching tick for every user at once: logins and logouts, the
    friend changes reaching each viewer, windows armed, due batches sent, offline viewers
    dropped. :meth:`result` summarises the ticks after the warm-up. Deterministic for a model
    (every draw comes from ``numpy.random.default_rng(model.seed)``).
    """

    def __init__(self, model: PresenceCostModel) -> None:
        if not isinstance(model, PresenceCostModel):
            raise ValueError(f"model must be a PresenceCostModel, got {type(model).__name__}")
        self.model = model
        self._rng = np.random.default_rng(model.seed)
        n = model.users
        self._friends = draw_friend_counts(model, self._rng)
        self._very_important = self._rng.binomial(self._friends, model.very_important_share)
        self._others = self._friends - self._very_important
        concentration = 2.0
        share_online = np.clip(
            self._rng.beta(
                concentration * model.online_fraction,
                concentration * (1 - model.online_fraction),
                size=n,
            ),
            0.001,
            0.999,
        )
        self._p_logout = min(1.0, model.tick_s / model.mean_session_s)
        self._p_login = np.minimum(1.0, self._p_logout * share_online / (1 - share_online))
        self._online = self._rng.random(n) < share_online
        self._pending = np.zeros((2, n), dtype=np.int64)  # very important, others
        self._arrival_sum = np.zeros((2, n))
        self._first_arrival = np.full((2, n), np.inf)
        self._due = np.full(n, np.inf)
        self._delays = (model.very_important_delay_s, model.others_delay_s)
        self._warmup_ticks = math.ceil(model.warmup_s / model.tick_s)
        self._tick = 0
        self._counts = dict.fromkeys(("changes", "naive", "online", "pushes", "carried"), 0.0)
        self._stale_sum, self._stale_n, self._stale_max = [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]
        self._online_user_ticks = 0.0

    def __repr__(self) -> str:
        return f"PresenceCostSimulation(users={self.model.users}, tick={self._tick})"

    @property
    def ticks_done(self) -> int:
        """How many ticks have run so far."""
        return self._tick

    def step(self) -> int:
        """Run one tick; returns how many batches were pushed in it."""
        now = self._tick * self.model.tick_s
        measuring = self._tick >= self._warmup_ticks
        self._tick += 1
        n = self.model.users
        online, pending = self._online, self._pending
        flips = self._rng.random(n) < np.where(online, self._p_logout, self._p_login)
        online ^= flips
        went_offline = flips & ~online
        pending[:, went_offline] = 0
        self._arrival_sum[:, went_offline] = 0.0
        self._first_arrival[:, went_offline] = np.inf
        self._due[went_offline] = np.inf
        change_rate = np.count_nonzero(flips) / n
        arrivals = np.stack(
            (
                self._rng.poisson(self._very_important * change_rate),
                self._rng.poisson(self._others * change_rate),
            )
        )
        arrivals[:, ~online] = 0
        for tier in (0, 1):
            got = arrivals[tier] > 0
            self._due[got] = np.minimum(self._due[got], now + self._delays[tier])
            self._first_arrival[tier, got] = np.minimum(self._first_arrival[tier, got], now)
        pending += arrivals
        self._arrival_sum += arrivals * now
        deliver = np.flatnonzero(self._due <= now + 1e-9)
        if measuring:
            self._count(flips, arrivals, deliver, now)
        pending[:, deliver] = 0
        self._arrival_sum[:, deliver] = 0.0
        self._first_arrival[:, deliver] = np.inf
        self._due[deliver] = np.inf
        return int(deliver.size)

    def _count(self, flips: np.ndarray, arrivals: np.ndarray, deliver: np.ndarray, now: float) -> None:
        counts = self._counts
        counts["changes"] += np.count_nonzero(flips)
        counts["naive"] += self._friends[flips].sum()
        counts["online"] += arrivals.sum()
        counts["pushes"] += deliver.size
        counts["carried"] += self._pending[:, deliver].sum()
        self._online_user_ticks += np.count_nonzero(self._online)
        for tier in (0, 1):
            carried = self._pending[tier, deliver]
            self._stale_sum[tier] += (carried * now - self._arrival_sum[tier, deliver]).sum()
            self._stale_n[tier] += carried.sum()
            has = carried > 0
            if has.any():
                oldest = now - self._first_arrival[tier, deliver][has].min()
                self._stale_max[tier] = max(self._stale_max[tier], oldest)

    def result(self) -> PresenceCostResult:
        """Pushes, bytes and staleness over the measured ticks (needs one tick past warm-up)."""
        model = self.model
        measured = self._tick - self._warmup_ticks
        if measured <= 0:
            raise ValueError(f"run past the {self._warmup_ticks} warm-up ticks before asking")
        seconds = measured * model.tick_s
        counts = self._counts
        naive_rate = counts["naive"] / seconds
        online_rate = counts["online"] / seconds
        pushes_rate = counts["pushes"] / seconds
        per_change = model.header_bytes + model.change_bytes
        stale_sum, stale_n = self._stale_sum, self._stale_n
        return PresenceCostResult(
            model=model,
            mean_friends=float(self._friends.mean()),
            mean_online_users=self._online_user_ticks / measured,
            changes_per_s=counts["changes"] / seconds,
            naive_pushes_per_s=naive_rate,
            online_only_pushes_per_s=online_rate,
            batched_pushes_per_s=pushes_rate,
            naive_bytes_per_s=naive_rate * per_change,
            online_only_bytes_per_s=online_rate * per_change,
            batched_bytes_per_s=(
                pushes_rate * model.header_bytes + counts["carried"] / seconds * model.change_bytes
            ),
            very_important_mean_staleness_s=stale_sum[0] / stale_n[0] if stale_n[0] else 0.0,
            very_important_max_staleness_s=self._stale_max[0],
            others_mean_staleness_s=stale_sum[1] / stale_n[1] if stale_n[1] else 0.0,
            others_max_staleness_s=self._stale_max[1],
        )


def simulate_presence_cost(model: PresenceCostModel) -> PresenceCostResult:
    """Run ``model`` for ``model.ticks`` ticks and return its pushes, bytes and staleness.

    Deterministic for a given model (all draws come from ``numpy.random.default_rng(seed)``).
    """
    simulation = PresenceCostSimulation(model)
    for _ in range(model.ticks):
        simulation.step()
    return simulation.result()


def naive_push_rate(users: float, mean_friends: float, changes_per_user_per_s: float) -> float:
    """Pushes/s when every change goes to every friend: users × friends × churn."""
    check_number(users, "users", minimum=0)
    check_number(mean_friends, "mean_friends", minimum=0)
    check_number(changes_per_user_per_s, "changes_per_user_per_s", minimum=0)
    return users * mean_friends * changes_per_user_per_s


def online_only_push_rate(
    users: float, mean_friends: float, online_fraction: float, changes_per_user_per_s: float
) -> float:
    """Pushes/s when changes go to online friends only: naive × online fraction.

    This is Facebook's "friends × online users × churn" with online users = users × fraction.
    """
    check_fraction(online_fraction, "online_fraction")
    return naive_push_rate(users, mean_friends, changes_per_user_per_s) * online_fraction


def heartbeat_write_rate(online_users: float, heartbeat_interval_s: float) -> float:
    """Store writes/s when each heartbeat writes the presence record: online users ÷ interval.

    5 M connected users beating every 5 s: 1 M writes/s. Taught in ``notebooks/05_presence.ipynb``.
    """
    check_number(online_users, "online_users", minimum=0)
    interval = check_number(heartbeat_interval_s, "heartbeat_interval_s", positive=True, unit="seconds")
    return online_users / interval


def gateway_write_rate(online_users: float, changes_per_s: float, refresh_s: float) -> float:
    """Store writes/s when the connection server keeps each connection's last heartbeat in memory
    and writes the store only on a change (login, logout, away) plus one refresh per ``refresh_s``
    per online user, so the record's TTL never runs out while the user is connected.
    """
    check_number(online_users, "online_users", minimum=0)
    check_number(changes_per_s, "changes_per_s", minimum=0)
    refresh = check_number(refresh_s, "refresh_s", positive=True, unit="seconds")
    return changes_per_s + online_users / refresh


def batched_push_ceiling(online_viewers: float, window_s: float) -> float:
    """The most batched pushes/s: each online viewer gets at most one push per window."""
    check_number(online_viewers, "online_viewers", minimum=0)
    window = check_number(window_s, "window_s", positive=True, unit="seconds")
    return online_viewers / window


WINDOW_PANEL_USERS = 2_000
"""Users in the window panel of notebook 05 (small, so a slider answers in well under a second)."""
WINDOW_PANEL_DURATION_S = 300.0
"""Seconds measured by the window panel of notebook 05."""


def _window_model(very_important_delay_s: float, others_delay_s: float, seed: int) -> PresenceCostModel:
    return PresenceCostModel(
        users=WINDOW_PANEL_USERS,
        very_important_delay_s=very_important_delay_s,
        others_delay_s=max(others_delay_s, very_important_delay_s),
        duration_s=WINDOW_PANEL_DURATION_S,
        seed=seed,
    )


def window_cost_table(
    very_important_delay_s: float = 5.0, others_delay_s: float = 120.0, seed: int = 0
) -> pd.DataFrame:
    """Notebook 05's panel: pushes, bytes and staleness for one pair of tier windows (seconds).

    A population of :data:`WINDOW_PANEL_USERS` measured for :data:`WINDOW_PANEL_DURATION_S`; the
    ordinary window is raised to the very-important one if a slider puts it below.
    """
    result = simulate_presence_cost(_window_model(very_important_delay_s, others_delay_s, seed))
    table = result.to_frame()
    table["mean_staleness_s"] = [0.0, 0.0, result.others_mean_staleness_s]
    return table


def window_sweep(
    very_important_delays_s: tuple[float, ...] = (1.0, 5.0, 30.0),
    others_delays_s: tuple[float, ...] = (30.0, 120.0, 240.0),
    seed: int = 0,
) -> pd.DataFrame:
    """The panel's effect without a kernel: batched pushes/s and staleness as each window moves.

    One row per setting: each very-important delay with the ordinary window at 120 s, then each
    ordinary window with the very-important delay at 5 s (the panel's defaults). Windows are
    kept well inside :data:`WINDOW_PANEL_DURATION_S`, or the run would cut them short.
    """
    rows = []
    settings = [("very important window", v, v, 120.0) for v in very_important_delays_s]
    settings += [("ordinary window", o, 5.0, o) for o in others_delays_s]
    for control, value, very_important, others in settings:
        result = simulate_presence_cost(_window_model(very_important, others, seed))
        rows.append(
            {
                "control moved": control,
                "window": format_duration(value),
                "batched pushes/s": result.batched_pushes_per_s,
                "share of naive": result.batched_pushes_per_s / result.naive_pushes_per_s,
                "very important: mean wait": format_duration(result.very_important_mean_staleness_s),
                "others: mean wait": format_duration(result.others_mean_staleness_s),
            }
        )
    return pd.DataFrame(rows).set_index(["control moved", "window"])


def check_online_only_answer(
    answer: float | None,
    users: float,
    mean_friends: float,
    online_fraction: float,
    logins_per_user_per_day: float,
) -> CheckResult:
    """Self-check for notebook 05's exercise: online-only pushes/s (within 10 %).

    Each login makes two changes (online, then offline). ``None`` is "not answered yet" with a
    hint; a wrong answer is diagnosed -- too high or low, and the likely mistake (naive fan-out,
    a forgotten logout, a per-day rate) -- without the expected value.
    """
    check_number(logins_per_user_per_day, "logins_per_user_per_day", minimum=0)
    churn = 2 * logins_per_user_per_day / SECONDS_PER_DAY
    expected = online_only_push_rate(users, mean_friends, online_fraction, churn)
    start = "changes/s = users × 2 × logins/day ÷ 86,400; each reaches friends × online share"
    if answer is None:
        return not_answered("online-only pushes/s", f"hint: {start}")
    result = check_within("online-only pushes/s", answer, expected, rel_tol=0.1, unit="pushes/s")
    if result.passed:
        return result
    naive = naive_push_rate(users, mean_friends, churn)
    if check_within("naive", answer, naive, rel_tol=0.1).passed:
        hint = "that is naive fan-out: multiply by the share of friends who are online"
    elif check_within("half", answer, expected / 2, rel_tol=0.1).passed:
        hint = "a login makes two changes (online, and later offline)"
    elif check_within("per day", answer, expected * SECONDS_PER_DAY, rel_tol=0.1).passed:
        hint = "that is a rate per day: divide by the seconds in a day"
    else:
        hint = start
    return CheckResult(result.name, False, f"{result.explanation}; hint: {hint}")
