"""Back-of-the-envelope calculators: traffic, storage, history placement, retention, tiers,
connections and bandwidth.

Every calculator is a pure function that validates its inputs and returns a frozen dataclass
with a readable ``repr`` and a ``to_frame()`` for notebooks. :func:`estimate_traffic` and
:func:`estimate_storage` also take numpy arrays (they broadcast), so a plot can sweep an input.

Rounding, stated once: a day is 86,400 s and a month is the mean Gregorian month, 2,629,746 s
(:data:`chatdesign.units.SECONDS_PER_MONTH`). Alex Xu's estimates round the *result* ("~3,500
QPS" for 3,472) and count a year as 365 days; the system-design-primer rounds the *month* to
2.5 M seconds. The calculators never round; the notebooks say which rounding a source used.

Taught in ``notebooks/01_estimation.ipynb``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from chatdesign.checks import check_fraction, check_number, check_whole
from chatdesign.units import (
    SECONDS_PER_DAY,
    SECONDS_PER_MONTH,
    format_bitrate,
    format_bytes,
    format_count,
)

Quantity: TypeAlias = float | npt.NDArray[np.float64]
"""A number, or an array of numbers when the caller sweeps an input."""

BYTES_PER_GB = 1e9
DAYS_PER_MONTH = SECONDS_PER_MONTH / SECONDS_PER_DAY


def _quantity(value: object, name: str, *, positive: bool = False) -> Quantity:
    """A number (see :func:`~chatdesign.checks.check_number`) or an array of numbers, each
    finite and non-negative (positive with ``positive=True``); the messages are check_number's."""
    if np.ndim(value) == 0 and not isinstance(value, np.ndarray):  # type: ignore[arg-type]
        return check_number(value, name, minimum=0, positive=positive)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or an array of numbers, got {value!r}") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must hold finite numbers, got {value!r}")
    if positive and not np.all(array > 0):
        raise ValueError(f"{name} must be positive, got {value!r}")
    if not np.all(array >= 0):
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return float(array) if array.ndim == 0 else array


def _scalar(value: object, name: str, *, positive: bool = False) -> float:
    if np.ndim(value) != 0 or isinstance(value, np.ndarray):  # type: ignore[arg-type]
        raise ValueError(f"{name} must be a single number, got an array")
    return check_number(value, name, minimum=0, positive=positive)


def _frame(obj: object) -> pd.DataFrame:
    """One row per element: scalars give one row, swept arrays give one row per value."""
    columns = {f.name: np.atleast_1d(np.asarray(getattr(obj, f.name))) for f in fields(obj)}  # type: ignore[arg-type]
    length = max(len(v) for v in columns.values())
    return pd.DataFrame({k: np.broadcast_to(v, (length,)) for k, v in columns.items()})


def _describe(value: Quantity, formatter: object) -> str:
    if isinstance(value, np.ndarray):
        return f"array(shape={value.shape}, min={value.min():.4g}, max={value.max():.4g})"
    return formatter(value)  # type: ignore[operator, no-any-return]


# --- traffic ---------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class TrafficEstimate:
    """Request rates from daily activity. All rates are requests per second (rps)."""

    daily_active_users: Quantity
    actions_per_user_per_day: Quantity
    peak_factor: Quantity
    reads_per_write: Quantity
    per_day: Quantity
    """Writes per day."""
    per_month: Quantity
    """Writes per mean month (2,629,746 s)."""
    average_rps: Quantity
    peak_rps: Quantity
    read_average_rps: Quantity
    read_peak_rps: Quantity

    def __repr__(self) -> str:
        return (
            f"TrafficEstimate(per_day={_describe(self.per_day, format_count)}, "
            f"average_rps={_describe(self.average_rps, format_count)}, "
            f"peak_rps={_describe(self.peak_rps, format_count)}, "
            f"read_peak_rps={_describe(self.read_peak_rps, format_count)})"
        )

    def to_frame(self) -> pd.DataFrame:
        """The inputs and every rate as columns; one row per swept value."""
        return _frame(self)


def estimate_traffic(
    daily_active_users: Quantity,
    actions_per_user_per_day: Quantity,
    peak_factor: Quantity = 2.0,
    reads_per_write: Quantity = 1.0,
) -> TrafficEstimate:
    """Average and peak request rates from daily active users and their actions.

    ``average_rps = DAU x actions / 86,400``; ``peak_rps = average_rps x peak_factor`` (Xu uses
    2); reads are ``reads_per_write`` times writes (a chat message read by one recipient is 1,
    by a group of 20 is 20). Xu's Twitter example: 150 M DAU x 2 posts/day gives 3,472 rps
    average ("~3,500") and 6,944 peak ("~7,000"). Inputs broadcast like numpy arrays.
    """
    users = _quantity(daily_active_users, "daily_active_users")
    actions = _quantity(actions_per_user_per_day, "actions_per_user_per_day")
    peak = _quantity(peak_factor, "peak_factor", positive=True)
    reads = _quantity(reads_per_write, "reads_per_write")
    if np.any(np.asarray(peak) < 1):
        raise ValueError(f"peak_factor is peak/average and must be at least 1, got {peak_factor!r}")
    per_day = users * actions
    average = per_day / SECONDS_PER_DAY
    return TrafficEstimate(
        daily_active_users=users,
        actions_per_user_per_day=actions,
        peak_factor=peak,
        reads_per_write=reads,
        per_day=per_day,
        per_month=average * SECONDS_PER_MONTH,
        average_rps=average,
        peak_rps=average * peak,
        read_average_rps=average * reads,
        read_peak_rps=average * peak * reads,
    )


# --- storage ---------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class StorageEstimate:
    """Bytes written per day and kept over a retention period."""

    items_per_day: Quantity
    bytes_per_item: Quantity
    retention_days: Quantity
    replication_factor: Quantity
    media_fraction: Quantity
    media_bytes: Quantity
    text_per_day_bytes: Quantity
    media_per_day_bytes: Quantity
    per_day_bytes: Quantity
    """Logical bytes per day (one copy): text plus media."""
    total_bytes: Quantity
    """Bytes stored at the end of the retention period, all replicas included."""

    def __repr__(self) -> str:
        return (
            f"StorageEstimate(per_day={_describe(self.per_day_bytes, format_bytes)}, "
            f"total={_describe(self.total_bytes, format_bytes)} over "
            f"{_describe(self.retention_days, lambda d: f'{d:,.0f}')} days "
            f"x{_describe(self.replication_factor, lambda r: f'{r:g}')} replicas)"
        )

    def to_frame(self) -> pd.DataFrame:
        """The inputs and every size as columns; one row per swept value."""
        return _frame(self)


def estimate_storage(
    items_per_day: Quantity,
    bytes_per_item: Quantity,
    retention_days: Quantity,
    replication_factor: Quantity = 1,
    media_fraction: Quantity = 0.0,
    media_bytes: Quantity = 0,
) -> StorageEstimate:
    """Storage written per day and held after ``retention_days`` days.

    Each item has ``bytes_per_item`` of text/metadata; a ``media_fraction`` of items also carry
    ``media_bytes`` of media. Xu's Twitter example: 300 M posts/day, 10 % with 1 MB media →
    30 TB/day and 54.75 PB over 5 x 365 days ("~55 PB"). Inputs broadcast like numpy arrays.
    """
    items = _quantity(items_per_day, "items_per_day")
    size = _quantity(bytes_per_item, "bytes_per_item")
    days = _quantity(retention_days, "retention_days")
    replicas = _quantity(replication_factor, "replication_factor", positive=True)
    fraction = _quantity(media_fraction, "media_fraction")
    if np.any(np.asarray(fraction) > 1):
        raise ValueError(f"media_fraction must be a fraction between 0 and 1, got {media_fraction!r}")
    media = _quantity(media_bytes, "media_bytes")
    text_per_day = items * size
    media_per_day = items * fraction * media
    per_day = text_per_day + media_per_day
    return StorageEstimate(
        items_per_day=items,
        bytes_per_item=size,
        retention_days=days,
        replication_factor=replicas,
        media_fraction=fraction,
        media_bytes=media,
        text_per_day_bytes=text_per_day,
        media_per_day_bytes=media_per_day,
        per_day_bytes=per_day,
        total_bytes=per_day * days * replicas,
    )


# --- history placement -----------------------------------------------------------------------


class HistoryPlacement(StrEnum):
    """Where message history lives (the seed's "do we even store the message history?")."""

    SERVER_KEEPS_ALL = "server keeps all"
    SERVER_KEEPS_LAST_N = "server keeps last N per conversation"
    CLIENT_ONLY = "client keeps all, server keeps nothing (backup to the user's drive)"


@dataclass(frozen=True, repr=False)
class PlacementEstimate:
    """One history placement: what the server stores, and what the user sees and loses."""

    placement: HistoryPlacement
    server_bytes: float
    """Message bytes held by the servers (one copy)."""
    client_bytes_per_user: float
    """History one user's phone holds."""
    new_device_messages_per_conversation: float
    """Messages a freshly installed device can show per conversation."""
    lost_messages_per_user: float
    """Messages a user loses for good when the phone is lost (on average)."""

    def __repr__(self) -> str:
        return (
            f"PlacementEstimate({self.placement.value}: server {format_bytes(self.server_bytes)}, "
            f"phone {format_bytes(self.client_bytes_per_user)}, new device sees "
            f"{self.new_device_messages_per_conversation:,.0f} messages/conversation, "
            f"a lost phone loses {self.lost_messages_per_user:,.0f})"
        )


@dataclass(frozen=True, repr=False)
class PlacementComparison:
    """The three placements side by side, for the same workload."""

    options: tuple[PlacementEstimate, ...]
    messages_per_conversation: float
    """History length per conversation over the period considered."""

    def __repr__(self) -> str:
        return "PlacementComparison(\n" + "".join(f"  {option!r},\n" for option in self.options) + ")"

    def __getitem__(self, placement: HistoryPlacement) -> PlacementEstimate:
        for option in self.options:
            if option.placement == placement:
                return option
        raise KeyError(placement)

    def to_frame(self) -> pd.DataFrame:
        """One row per placement, indexed by its name."""
        rows = [
            {
                "server_bytes": o.server_bytes,
                "client_bytes_per_user": o.client_bytes_per_user,
                "new_device_messages_per_conversation": o.new_device_messages_per_conversation,
                "lost_messages_per_user": o.lost_messages_per_user,
            }
            for o in self.options
        ]
        return pd.DataFrame(rows, index=pd.Index([o.placement.value for o in self.options], name="placement"))


def compare_history_placement(
    users: float,
    messages_per_user_per_day: float,
    bytes_per_message: float,
    history_days: float,
    conversations_per_user: float = 20,
    keep_last_n: int = 1_000,
    undelivered_wait_s: float = 600.0,
    backup_interval_days: float = 1.0,
) -> PlacementComparison:
    """Compare the seed's three ways to keep chat history for one workload.

    - *server keeps all*: every message of ``history_days`` stays on the server; a new device
      sees everything; losing a phone loses nothing.
    - *server keeps last N*: each conversation keeps its newest ``keep_last_n`` messages; a new
      device sees those; older ones survive only on the old phone.
    - *client only* (old WhatsApp, backup to the user's Google Drive): the server holds a message
      only until it is delivered (on average ``undelivered_wait_s``); a new device restores the
      last backup; losing a phone loses what arrived since the last backup (on average half a
      ``backup_interval_days``).

    Conversations are 1:1 (two members); a message is stored once on the server and once on
    each member's phone.
    """
    user_count = _scalar(users, "users", positive=True)
    per_user = _scalar(messages_per_user_per_day, "messages_per_user_per_day")
    size = _scalar(bytes_per_message, "bytes_per_message", positive=True)
    days = _scalar(history_days, "history_days", positive=True)
    per_conversation_users = _scalar(conversations_per_user, "conversations_per_user", positive=True)
    check_whole(keep_last_n, "keep_last_n", minimum=1)
    wait_s = _scalar(undelivered_wait_s, "undelivered_wait_s")
    backup_days = _scalar(backup_interval_days, "backup_interval_days", positive=True)

    messages = user_count * per_user * days
    conversations = user_count * per_conversation_users / 2
    per_conversation = messages / conversations
    kept_per_conversation = min(float(keep_last_n), per_conversation)
    # A user takes part in conversations_per_user conversations; sent and received both count.
    client_messages = per_conversation * per_conversation_users
    lost_since_backup = min(1.0, backup_days / 2 / days)
    options = (
        PlacementEstimate(
            HistoryPlacement.SERVER_KEEPS_ALL,
            server_bytes=messages * size,
            client_bytes_per_user=client_messages * size,
            new_device_messages_per_conversation=per_conversation,
            lost_messages_per_user=0.0,
        ),
        PlacementEstimate(
            HistoryPlacement.SERVER_KEEPS_LAST_N,
            server_bytes=conversations * kept_per_conversation * size,
            client_bytes_per_user=client_messages * size,
            new_device_messages_per_conversation=kept_per_conversation,
            lost_messages_per_user=(per_conversation - kept_per_conversation) * per_conversation_users,
        ),
        PlacementEstimate(
            HistoryPlacement.CLIENT_ONLY,
            server_bytes=user_count * per_user / SECONDS_PER_DAY * wait_s * size,
            client_bytes_per_user=client_messages * size,
            new_device_messages_per_conversation=per_conversation * (1 - lost_since_backup),
            lost_messages_per_user=client_messages * lost_since_backup,
        ),
    )
    return PlacementComparison(options=options, messages_per_conversation=per_conversation)


# --- retention -------------------------------------------------------------------------------


class RetentionAction(StrEnum):
    """What happens to data older than the retention period."""

    ARCHIVE = "archive"
    DELETE = "delete"


@dataclass(frozen=True, repr=False)
class RetentionEstimate:
    """Sizes after ``horizon_days`` of writing, with data older than ``retain_days`` archived or deleted."""

    action: RetentionAction
    retain_days: float
    horizon_days: float
    hot_bytes: float
    cold_bytes: float
    """Archived bytes after compression (0 when deleting)."""
    deleted_bytes: float
    """Logical bytes removed for good (0 when archiving)."""

    def __repr__(self) -> str:
        return (
            f"RetentionEstimate({self.action.value} after {self.retain_days:g} days, at day "
            f"{self.horizon_days:g}: hot {format_bytes(self.hot_bytes)}, cold {format_bytes(self.cold_bytes)}, "
            f"deleted {format_bytes(self.deleted_bytes)})"
        )

    def to_frame(self) -> pd.DataFrame:
        """A one-row table of the estimate."""
        return _frame(self)


def estimate_retention(
    per_day_bytes: float,
    retain_days: float,
    horizon_days: float,
    action: RetentionAction | str = RetentionAction.ARCHIVE,
    cold_compression_ratio: float = 3.0,
) -> RetentionEstimate:
    """Hot and cold sizes after writing ``per_day_bytes`` for ``horizon_days``.

    Data younger than ``retain_days`` stays hot; older data is archived (kept in a cold store,
    ``cold_compression_ratio`` times smaller, e.g. zlib on text) or deleted (the seed's "how
    long to keep, archive or delete").
    """
    per_day = _scalar(per_day_bytes, "per_day_bytes")
    retain = _scalar(retain_days, "retain_days", positive=True)
    horizon = _scalar(horizon_days, "horizon_days")
    ratio = _scalar(cold_compression_ratio, "cold_compression_ratio", positive=True)
    if ratio < 1:
        raise ValueError(f"cold_compression_ratio must be at least 1, got {cold_compression_ratio!r}")
    try:
        chosen = RetentionAction(action)
    except ValueError:
        choices = ", ".join(a.value for a in RetentionAction)
        raise ValueError(f"unknown retention action {action!r}; use one of: {choices}") from None
    old_bytes = per_day * max(0.0, horizon - retain)
    return RetentionEstimate(
        action=chosen,
        retain_days=retain,
        horizon_days=horizon,
        hot_bytes=per_day * min(retain, horizon),
        cold_bytes=old_bytes / ratio if chosen is RetentionAction.ARCHIVE else 0.0,
        deleted_bytes=old_bytes if chosen is RetentionAction.DELETE else 0.0,
    )


# --- hot/cold tiers --------------------------------------------------------------------------


@dataclass(frozen=True)
class StorageTier:
    """A storage tier: data younger than ``max_age_days`` (and older than the tier before) lives here."""

    name: str
    price_per_gb_month: float
    """List price in dollars per GB-month (illustrative; put in your provider's)."""
    max_age_days: float
    """Upper age bound in days; ``math.inf`` for the last tier."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a tier needs a name")
        _scalar(self.price_per_gb_month, f"price_per_gb_month of tier {self.name!r}")
        if not self.max_age_days > 0:
            raise ValueError(f"max_age_days of tier {self.name!r} must be positive, got {self.max_age_days!r}")


DEFAULT_TIERS: tuple[StorageTier, ...] = (
    StorageTier("memory", price_per_gb_month=3.00, max_age_days=1),
    StorageTier("ssd", price_per_gb_month=0.10, max_age_days=30),
    StorageTier("hdd", price_per_gb_month=0.045, max_age_days=365),
    StorageTier("object storage", price_per_gb_month=0.023, max_age_days=math.inf),
)
"""Illustrative prices in $/GB-month, roughly cloud list prices of the mid-2020s (RAM on a
memory-optimised instance, SSD and HDD block volumes, standard object storage)."""


@dataclass(frozen=True, repr=False)
class TieringPlan:
    """Data split into tiers by age: bytes, monthly cost and share of reads per tier."""

    tiers: tuple[StorageTier, ...]
    bytes_per_tier: tuple[float, ...]
    monthly_cost_per_tier: tuple[float, ...]
    read_share_per_tier: tuple[float, ...]
    read_half_life_days: float
    single_tier_monthly_cost: float
    """What keeping everything in the first tier that holds reads well (the second tier, SSD by
    default) would cost, for comparison."""

    @property
    def total_bytes(self) -> float:
        return sum(self.bytes_per_tier)

    @property
    def monthly_cost(self) -> float:
        return sum(self.monthly_cost_per_tier)

    def to_frame(self) -> pd.DataFrame:
        """One row per tier: age range, bytes, $/month and share of reads."""
        lower = [0.0, *[t.max_age_days for t in self.tiers[:-1]]]
        return pd.DataFrame(
            {
                "from_age_days": lower,
                "to_age_days": [t.max_age_days for t in self.tiers],
                "bytes": self.bytes_per_tier,
                "monthly_cost_usd": self.monthly_cost_per_tier,
                "read_share": self.read_share_per_tier,
            },
            index=pd.Index([t.name for t in self.tiers], name="tier"),
        )

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{t.name}: {format_bytes(b)} ${c:,.0f}/mo {s:.1%} of reads"
            for t, b, c, s in zip(
                self.tiers, self.bytes_per_tier, self.monthly_cost_per_tier, self.read_share_per_tier, strict=True
            )
        )
        return f"TieringPlan({parts}; total ${self.monthly_cost:,.0f}/mo)"


def read_share_by_age(
    age_from_days: Quantity, age_to_days: Quantity, half_life_days: float, history_days: float
) -> Quantity:
    """Share of reads that hit data aged between ``age_from_days`` and ``age_to_days``.

    The access-decay model: the read rate of a message halves every ``half_life_days`` of age
    (most reads hit recent messages), over a history of ``history_days``.
    """
    half_life = _scalar(half_life_days, "half_life_days", positive=True)
    history = _scalar(history_days, "history_days", positive=True)
    rate = math.log(2) / half_life
    start = np.minimum(_quantity(age_from_days, "age_from_days"), history)
    stop = np.minimum(_quantity(age_to_days, "age_to_days"), history)
    share = (np.exp(-rate * start) - np.exp(-rate * stop)) / (1 - math.exp(-rate * history))
    return float(share) if np.ndim(share) == 0 else np.asarray(share, dtype=np.float64)


def plan_hot_cold(
    per_day_bytes: float,
    history_days: float,
    read_half_life_days: float = 7.0,
    tiers: Sequence[StorageTier] = DEFAULT_TIERS,
) -> TieringPlan:
    """Split ``history_days`` of data (``per_day_bytes`` a day) into tiers by age.

    Returns each tier's bytes, monthly cost and share of reads under the exponential
    access-decay model of :func:`read_share_by_age`. Tiers must be ordered by ``max_age_days``
    and the last one must be unbounded (``math.inf``).
    """
    per_day = _scalar(per_day_bytes, "per_day_bytes")
    history = _scalar(history_days, "history_days", positive=True)
    chosen = tuple(tiers)
    if not chosen:
        raise ValueError("tiers must not be empty")
    bounds = [t.max_age_days for t in chosen]
    if any(b >= c for b, c in itertools.pairwise(bounds)):
        raise ValueError(f"tiers must be ordered by increasing max_age_days, got {bounds}")
    if not math.isinf(bounds[-1]):
        raise ValueError("the last tier must hold everything older (max_age_days=math.inf)")
    lower = [0.0, *bounds[:-1]]
    sizes = tuple(per_day * max(0.0, min(hi, history) - lo) for lo, hi in zip(lower, bounds, strict=True))
    costs = tuple(size / BYTES_PER_GB * t.price_per_gb_month for size, t in zip(sizes, chosen, strict=True))
    shares = tuple(
        float(read_share_by_age(min(lo, history), min(hi, history), read_half_life_days, history))
        for lo, hi in zip(lower, bounds, strict=True)
    )
    reference = chosen[1] if len(chosen) > 1 else chosen[0]
    return TieringPlan(
        tiers=chosen,
        bytes_per_tier=sizes,
        monthly_cost_per_tier=costs,
        read_share_per_tier=shares,
        read_half_life_days=float(read_half_life_days),
        single_tier_monthly_cost=per_day * history / BYTES_PER_GB * reference.price_per_gb_month,
    )


# --- connections and bandwidth ---------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class ConnectionEstimate:
    """Persistent connections (WebSockets) and what they cost in memory and servers."""

    concurrent_users: float
    devices_per_user: float
    connections: float
    memory_per_connection_bytes: float
    memory_bytes: float
    connections_per_server: float
    servers: int

    def __repr__(self) -> str:
        return (
            f"ConnectionEstimate(connections={format_count(self.connections)}, "
            f"memory={format_bytes(self.memory_bytes)}, servers={self.servers})"
        )

    def to_frame(self) -> pd.DataFrame:
        """A one-row table of the estimate."""
        return _frame(self)


def estimate_connections(
    concurrent_users: float,
    memory_per_connection_bytes: float = 10_000,
    connections_per_server: float = 1_000_000,
    devices_per_user: float = 1.0,
    target_utilisation: float = 1.0,
) -> ConnectionEstimate:
    """Memory and servers for persistent connections.

    Xu: 1 M concurrent connections x 10 KB = 10 GB. WhatsApp reported 2 M+ connections on one
    server (2012); the default budget is a more cautious 1 M per server.

    ``target_utilisation`` (0-1] is the share of ``connections_per_server`` a server is planned
    to hold at the peak, leaving headroom for the connections of a failed server, a reconnect
    storm or a deploy (notebook 01 plans at 0.5). The default, 1.0, fills every server.
    """
    users = _scalar(concurrent_users, "concurrent_users")
    per_connection = _scalar(memory_per_connection_bytes, "memory_per_connection_bytes")
    per_server = _scalar(connections_per_server, "connections_per_server", positive=True)
    devices = _scalar(devices_per_user, "devices_per_user", positive=True)
    utilisation = check_fraction(target_utilisation, "target_utilisation")
    if utilisation == 0:
        raise ValueError("target_utilisation must be positive, got 0")
    connections = users * devices
    return ConnectionEstimate(
        concurrent_users=users,
        devices_per_user=devices,
        connections=connections,
        memory_per_connection_bytes=per_connection,
        memory_bytes=connections * per_connection,
        connections_per_server=per_server,
        servers=math.ceil(connections / (per_server * utilisation)),
    )


@dataclass(frozen=True, repr=False)
class BandwidthEstimate:
    """Ingress (clients → servers) and egress (servers → clients) in bits per second."""

    writes_per_s: float
    bytes_per_write: float
    fanout: float
    ingress_bps: float
    egress_bps: float

    def __repr__(self) -> str:
        return (
            f"BandwidthEstimate(ingress={format_bitrate(self.ingress_bps)}, egress={format_bitrate(self.egress_bps)})"
        )

    def to_frame(self) -> pd.DataFrame:
        """A one-row table of the estimate."""
        return _frame(self)


def estimate_bandwidth(writes_per_s: float, bytes_per_write: float, fanout: float = 1.0) -> BandwidthEstimate:
    """Network rates for ``writes_per_s`` writes of ``bytes_per_write`` each, every write
    delivered to ``fanout`` receivers (1 for 1:1 chat, the member count for a group)."""
    writes = _scalar(writes_per_s, "writes_per_s")
    size = _scalar(bytes_per_write, "bytes_per_write")
    receivers = _scalar(fanout, "fanout")
    ingress = writes * size * 8
    return BandwidthEstimate(
        writes_per_s=writes,
        bytes_per_write=size,
        fanout=receivers,
        ingress_bps=ingress,
        egress_bps=ingress * receivers,
    )


# --- a whole messenger -----------------------------------------------------------------------


@dataclass(frozen=True)
class MessengerEstimate:
    """Traffic, storage, connections and bandwidth of one chat service, estimated together."""

    traffic: TrafficEstimate
    storage: StorageEstimate
    connections: ConnectionEstimate
    bandwidth: BandwidthEstimate

    def summary(self) -> pd.Series:
        """The headline figures, formatted with units, as a labelled Series."""
        return pd.Series(
            {
                "messages per day": format_count(float(self.traffic.per_day)),
                "average send rate": f"{format_count(float(self.traffic.average_rps))} rps",
                "peak send rate": f"{format_count(float(self.traffic.peak_rps))} rps",
                "peak delivery rate": f"{format_count(float(self.traffic.read_peak_rps))} rps",
                "storage per day (one copy)": format_bytes(float(self.storage.per_day_bytes)),
                "storage over retention (all replicas)": format_bytes(float(self.storage.total_bytes)),
                "concurrent connections": format_count(self.connections.connections),
                "connection memory": format_bytes(self.connections.memory_bytes),
                "connection servers": str(self.connections.servers),
                "peak ingress": format_bitrate(self.bandwidth.ingress_bps),
                "peak egress": format_bitrate(self.bandwidth.egress_bps),
            },
            name="estimate",
        )

    def to_frame(self) -> pd.DataFrame:
        """The summary as a one-column table."""
        return self.summary().to_frame()

    def __repr__(self) -> str:
        return "MessengerEstimate(\n" + self.summary().to_string() + "\n)"


def estimate_messenger(
    daily_active_users: float,
    messages_per_user_per_day: float,
    bytes_per_message: float = 100,
    retention_days: float = 5 * 365,
    peak_factor: float = 2.0,
    receivers_per_message: float = 1.0,
    media_fraction: float = 0.0,
    media_bytes: float = 0,
    replication_factor: float = 3,
    online_share: float = 0.1,
    memory_per_connection_bytes: float = 10_000,
    connections_per_server: float = 1_000_000,
) -> MessengerEstimate:
    """Estimate a chat service end to end from a few habits of its users.

    A message is stored once (not once per receiver) and delivered to
    ``receivers_per_message`` devices; ``online_share`` of the daily users hold a connection at
    the peak. Used by notebook 01's widget panel and by ``python -m chatdesign estimate``.
    """
    share = check_fraction(online_share, "online_share")
    traffic = estimate_traffic(daily_active_users, messages_per_user_per_day, peak_factor, receivers_per_message)
    storage = estimate_storage(
        float(traffic.per_day), bytes_per_message, retention_days, replication_factor, media_fraction, media_bytes
    )
    connections = estimate_connections(
        _scalar(daily_active_users, "daily_active_users") * share, memory_per_connection_bytes, connections_per_server
    )
    average_message_bytes = float(storage.per_day_bytes) / float(traffic.per_day) if traffic.per_day else 0.0
    bandwidth = estimate_bandwidth(float(traffic.peak_rps), average_message_bytes, receivers_per_message)
    return MessengerEstimate(traffic, storage, connections, bandwidth)
