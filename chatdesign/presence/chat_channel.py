"""Presence through the chat stream: "this notification can be also sent through conversation
message" (seed notes, Online notification).

A :class:`ChatPresenceChannel` turns each :class:`~chatdesign.presence.PresenceBatch` from
``PresenceService.flush`` into one chat message from a system account to the viewer, in the
1:1 conversation between the two; the content is the batch's :meth:`to_event` as JSON. The
viewer's devices then get presence the way they get messages -- pushed to connected sessions,
caught up by ``sync`` after being offline -- with no second channel to keep open. The message's
``client_message_id`` is made from (viewer, ``sent_at_s``), so delivering the same flush twice (a
retry after a crash) stores one message.

Taught in ``notebooks/05_presence.ipynb``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from chatdesign.chat import ChatServer, Message, NotFound
from chatdesign.presence.service import PresenceBatch

PRESENCE_ACCOUNT: Final = "presence"
"""The default system account that sends presence batches."""


class ChatPresenceChannel:
    """Delivers presence batches as chat messages from a system account (created if missing)."""

    def __init__(self, chat: ChatServer, account_id: str = PRESENCE_ACCOUNT) -> None:
        if not isinstance(chat, ChatServer):
            raise ValueError(f"chat must be a ChatServer, got {type(chat).__name__}")
        if not isinstance(account_id, str) or not account_id:
            raise ValueError(f"account_id must be a non-empty string, got {account_id!r}")
        self.chat = chat
        self.account_id = account_id
        if not chat.has_user(account_id):
            chat.register_user(account_id, "Presence")

    def __repr__(self) -> str:
        return f"ChatPresenceChannel(account_id={self.account_id!r})"

    def deliver(self, batches: Mapping[str, PresenceBatch]) -> list[Message]:
        """Send one message per viewer, in viewer order; returns the stored messages.

        Every viewer must be a registered chat user: ``NotFound`` names the missing ones and
        nothing is sent. A batch already delivered returns its original message.
        """
        if not isinstance(batches, Mapping):
            raise ValueError(f"batches must map each viewer id to that viewer's PresenceBatch, got {batches!r}")
        for viewer_id, batch in batches.items():
            if not isinstance(batch, PresenceBatch) or batch.viewer_id != viewer_id:
                raise ValueError(f"batches must map each viewer id to that viewer's PresenceBatch ({viewer_id!r})")
        missing = sorted(v for v in batches if not self.chat.has_user(v))
        if missing:
            raise NotFound(f"not chat users, so presence cannot go through chat: {', '.join(missing)}")
        return [
            self.chat.send_message(
                self.account_id,
                viewer_id,
                json.dumps(batches[viewer_id].to_event(), sort_keys=True),
                client_message_id=f"presence:{viewer_id}:{batches[viewer_id].sent_at_s!r}",
            )
            for viewer_id in sorted(batches)
        ]

    def read_event(self, message: Message) -> dict[str, Any]:
        """The presence event a message carries; ``ValueError`` if it is not one of this channel's."""
        if message.sender_id != self.account_id:
            raise ValueError(f"message {message.message_id} is from {message.sender_id!r}, not {self.account_id!r}")
        event: dict[str, Any] = json.loads(message.content)
        if event.get("type") != "presence":
            raise ValueError(f"message {message.message_id} does not carry a presence event")
        return event
