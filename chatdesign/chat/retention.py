"""History retention: how long the server keeps messages, and where (hot or cold).

The seed asks "do we even store the message history?", "how long to keep, archive or delete"
and "hot/cold data". Each policy here is a value; :meth:`ChatServer.apply_retention` runs one.
Every policy removes a *prefix* of each conversation (its oldest messages, up to a cut ``seq``),
so history never gets holes in the middle and paging cursors stay valid. This module only
decides the cut; it does no I/O.

- :class:`KeepAll` -- the server keeps everything (a new device sees the whole history).
- :class:`KeepLastN` -- each conversation keeps its newest ``n`` messages.
- :class:`ClientOnly` -- old WhatsApp: the server deletes a message once every device of every
  member has received it (the phones hold history; backups go to the user's cloud drive).
- :class:`ArchiveAfterDays` -- messages older than ``days`` move to the cold store (a separate,
  zlib-compressed SQLite file), still readable through ``fetch_messages`` and marked ``cold``.
- :class:`DeleteAfterDays` -- messages older than ``days`` are deleted.

Taught in ``notebooks/04_storage.ipynb``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import pandas as pd

from chatdesign.checks import check_number, check_whole
from chatdesign.units import SECONDS_PER_DAY

RetentionAction = Literal["keep", "delete", "archive"]


@dataclass(frozen=True)
class KeepAll:
    """The server keeps every message hot."""

    action: ClassVar[RetentionAction] = "keep"

    def describe(self) -> str:
        """A short label for tables and plots."""
        return "keep all"


@dataclass(frozen=True)
class KeepLastN:
    """Each conversation keeps its newest ``n`` messages; older ones are deleted."""

    n: int
    action: ClassVar[RetentionAction] = "delete"

    def __post_init__(self) -> None:
        check_whole(self.n, "n", minimum=1)

    def describe(self) -> str:
        """A short label for tables and plots."""
        return f"keep last {self.n}"

    def cut(self, last_seq: int) -> int:
        """Messages with ``seq <= cut`` go."""
        return max(0, last_seq - self.n)


@dataclass(frozen=True)
class ClientOnly:
    """The server deletes a message once every device of every member has received it."""

    action: ClassVar[RetentionAction] = "delete"

    def describe(self) -> str:
        """A short label for tables and plots."""
        return "client only"

    def cut(self, delivered_seqs: Sequence[int], every_member_has_a_device: bool) -> int:
        """Messages up to the least-advanced device's position go. A member without any
        device has received nothing yet, so nothing goes (their first device will need it)."""
        if not every_member_has_a_device or not delivered_seqs:
            return 0
        return min(delivered_seqs)


@dataclass(frozen=True)
class ArchiveAfterDays:
    """Messages older than ``days`` (whole or fractional days) move to the cold store."""

    days: float
    action: ClassVar[RetentionAction] = "archive"

    def __post_init__(self) -> None:
        check_number(self.days, "days", minimum=0)

    def describe(self) -> str:
        """A short label for tables and plots."""
        return f"archive after {self.days:g} d"

    def cutoff_time(self, now: float) -> float:
        """Messages created before this time (seconds) are old enough to move."""
        return now - self.days * SECONDS_PER_DAY


@dataclass(frozen=True)
class DeleteAfterDays:
    """Messages older than ``days`` are deleted."""

    days: float
    action: ClassVar[RetentionAction] = "delete"

    def __post_init__(self) -> None:
        check_number(self.days, "days", minimum=0)

    def describe(self) -> str:
        """A short label for tables and plots."""
        return f"delete after {self.days:g} d"

    def cutoff_time(self, now: float) -> float:
        """Messages created before this time (seconds) are old enough to delete."""
        return now - self.days * SECONDS_PER_DAY


RetentionPolicy = KeepAll | KeepLastN | ClientOnly | ArchiveAfterDays | DeleteAfterDays
"""Any of the five policies."""

RETENTION_POLICY_TYPES = (KeepAll, KeepLastN, ClientOnly, ArchiveAfterDays, DeleteAfterDays)


@dataclass(frozen=True)
class RetentionReport:
    """What one :meth:`ChatServer.apply_retention` run did. Every run also forgets the
    idempotency keys older than the server's ``idempotency_window_s``."""

    policy: str
    conversations_touched: int
    deleted_messages: int
    archived_messages: int
    expired_idempotency_keys: int = 0

    def __post_init__(self) -> None:
        for name in ("conversations_touched", "deleted_messages", "archived_messages",
                     "expired_idempotency_keys"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    def to_frame(self) -> pd.DataFrame:
        """One row: the policy and its counts."""
        return pd.DataFrame([self.__dict__])


@dataclass(frozen=True)
class StorageStats:
    """Measured sizes of the server's stores, in bytes (SQLite pages in use) and messages.

    ``hot_bytes``/``cold_bytes`` count the pages the databases use (page size x pages in use),
    which is what the files hold after a checkpoint and ``VACUUM``; ``attachment_bytes`` is the
    sum of the stored attachment files.
    """

    hot_messages: int
    cold_messages: int
    hot_bytes: int
    cold_bytes: int
    attachment_count: int
    attachment_bytes: int

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")

    @property
    def total_bytes(self) -> int:
        """Hot, cold and attachment bytes together."""
        return self.hot_bytes + self.cold_bytes + self.attachment_bytes

    def to_frame(self) -> pd.DataFrame:
        """One row with every size and the total."""
        return pd.DataFrame([{**self.__dict__, "total_bytes": self.total_bytes}])
