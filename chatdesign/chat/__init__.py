"""The chat service: a core of rules without I/O, storage behind one interface (SQLite by
default), and an in-process server with sessions, devices, attachments and retention.

Everything a notebook or a later transport needs is importable from here::

    from chatdesign.chat import ChatServer, NotFound

Taught in ``notebooks/02_chat_api.ipynb`` (the API), ``03_consistency.ipynb`` (ordering,
receipts, devices, CP vs AP), ``04_storage.ipynb`` (history placement and retention) and
``06_connections.ipynb`` (the whole system drawn from code; polling, long polling, WebSockets).
"""

from chatdesign.chat.architecture import ChatScenario, ChatSystemSizing, build_chat_system, size_chat_system
from chatdesign.chat.attachments import (
    ALLOWED_CONTENT_TYPES,
    DEFAULT_MAX_ATTACHMENT_BYTES,
    Attachment,
    AttachmentInfo,
)
from chatdesign.chat.core import (
    DEFAULT_MAX_GROUP_SIZE,
    MAX_CONTENT_CHARS,
    MAX_PAGE_SIZE,
    ConversationPage,
    ConversationSummary,
    Message,
    SnowflakeGenerator,
    SnowflakeParts,
    SyncResult,
    messages_frame,
    pack_snowflake,
    unpack_snowflake,
)
from chatdesign.chat.errors import ChatError, Forbidden, IdempotencyConflict, InvalidRequest, NotFound
from chatdesign.chat.replication import (
    PartitionScenario,
    ReplicationResult,
    compare_consistency_modes,
    expected_cp_availability,
    simulate_partition,
)
from chatdesign.chat.retention import (
    ArchiveAfterDays,
    ClientOnly,
    DeleteAfterDays,
    KeepAll,
    KeepLastN,
    RetentionPolicy,
    RetentionReport,
    StorageStats,
)
from chatdesign.chat.server import ChatServer, DeviceSession, Fanout, LocalFanout
from chatdesign.chat.store import ChatStore, SQLiteStore
from chatdesign.chat.transport_cost import LoopbackLatencyModel, TransportScenario, compare_transports
from chatdesign.chat.workload import ChatWorkload, WorkloadSummary, populate
from chatdesign.clock import ManualClock

__all__ = [
    "ALLOWED_CONTENT_TYPES",
    "DEFAULT_MAX_ATTACHMENT_BYTES",
    "DEFAULT_MAX_GROUP_SIZE",
    "MAX_CONTENT_CHARS",
    "MAX_PAGE_SIZE",
    "ArchiveAfterDays",
    "Attachment",
    "AttachmentInfo",
    "ChatError",
    "ChatScenario",
    "ChatServer",
    "ChatStore",
    "ChatSystemSizing",
    "ChatWorkload",
    "ClientOnly",
    "ConversationPage",
    "ConversationSummary",
    "DeleteAfterDays",
    "DeviceSession",
    "Fanout",
    "Forbidden",
    "IdempotencyConflict",
    "InvalidRequest",
    "KeepAll",
    "KeepLastN",
    "LocalFanout",
    "LoopbackLatencyModel",
    "ManualClock",
    "Message",
    "NotFound",
    "PartitionScenario",
    "ReplicationResult",
    "RetentionPolicy",
    "RetentionReport",
    "SQLiteStore",
    "SnowflakeGenerator",
    "SnowflakeParts",
    "StorageStats",
    "SyncResult",
    "TransportScenario",
    "WorkloadSummary",
    "build_chat_system",
    "compare_consistency_modes",
    "compare_transports",
    "expected_cp_availability",
    "messages_frame",
    "pack_snowflake",
    "populate",
    "simulate_partition",
    "size_chat_system",
    "unpack_snowflake",
]
