"""The chat service's errors: one family, each with a machine-readable ``code``.

A transport (the WebSocket layer of a later issue) turns any :class:`ChatError` into an error
frame ``{"code": error.code, "message": str(error)}``; anything else is an internal error. Every
error is raised before stored state changes, so a refused call leaves nothing half-done.

Taught in ``notebooks/02_chat_api.ipynb``.
"""

from __future__ import annotations

from typing import ClassVar


class ChatError(Exception):
    """Base of every error the chat service raises on purpose; ``code`` names the kind."""

    code: ClassVar[str] = "chat_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class NotFound(ChatError):
    """A user, conversation, message or attachment that does not exist."""

    code: ClassVar[str] = "not_found"


class Forbidden(ChatError):
    """The caller exists but may not do this (not a member, not the group's creator, ...)."""

    code: ClassVar[str] = "forbidden"


class InvalidRequest(ChatError):
    """The request itself is malformed: bad id, empty or oversized content, bad limit, ..."""

    code: ClassVar[str] = "invalid_request"


class IdempotencyConflict(ChatError):
    """A ``client_message_id`` reused by the same sender for a different message."""

    code: ClassVar[str] = "idempotency_conflict"
