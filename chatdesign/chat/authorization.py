"""Who may do what to a conversation: the authorization matrix, as one table.

Each row is an operation on a group ``G`` (alice created it with bob and carol; alice then
removed carol; dave was never a member); each column is who asks. The expected answer of every
cell is data here, and only here: ``tests/chat/test_authorization.py`` runs every in-process
cell against a real :class:`~chatdesign.chat.ChatServer` and compares, and the README's table is
:func:`markdown_table` (a test checks it is current). The rules themselves live in
:mod:`chatdesign.chat.core` and :mod:`chatdesign.chat.server`; this table is their
specification, checked from outside.

Answers: ``ok`` (allowed, sees or changes G), ``hidden`` (the call succeeds but G is not in the
answer), ``own`` (succeeds, but acts only on the caller's own device record), or an error code
(``forbidden``, ``invalid_request``, ``not_found``, ``auth_failed``). The two token columns
belong to the WebSocket layer (:mod:`chatdesign.chat.ws`), where a caller proves who they are;
in process the caller is trusted. There every request needs an authenticated connection, so a
token that is expired or not signed by the server is refused with ``auth_failed`` before any
operation runs: at the ``auth`` frame, or at the first frame after the token expires on an open
connection (the connection is then closed with code 4001), and with HTTP 401 for an attachment
download. ``tests/chat/test_authorization_ws.py`` runs those cells, and the in-process columns
of the operations the protocol carries, against a real server on loopback.

Not taught in a notebook yet; shown in the README's "Reliability" section.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

ROLES: Final = (
    "member", "non_member", "removed_member", "same_user_other_device", "other_users_device",
    "expired_token", "forged_token",
)
"""The columns, in order."""

NETWORK_ROLES: Final = ("expired_token", "forged_token")
"""Columns only the network layer can check (it authenticates; the in-process API trusts)."""

ROLE_CALLERS: Final[dict[str, str]] = {
    "member": "bob on his device `phone`",
    "non_member": "dave on his device `tablet`",
    "removed_member": "carol on her device `phone` (she had received G's first message)",
    "same_user_other_device": "bob on his second device `laptop`",
    "other_users_device": "dave naming the device id `phone`, which is bob's",
    "expired_token": "a WebSocket client whose token has expired",
    "forged_token": "a WebSocket client with a token the server did not sign",
}
"""Who asks, in each column."""

ANSWERS: Final = ("ok", "hidden", "own", "forbidden", "invalid_request", "not_found", "auth_failed")

NETWORK_ANSWER: Final = "auth_failed"
"""The answer of every token cell: the WebSocket server refuses the token before the operation."""


@dataclass(frozen=True)
class Rule:
    """One row: an operation, the call it stands for (``call -- question`` when the answer
    is read from the result), and the expected answer per role."""

    operation: str
    call: str
    answers: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.answers) != len(ROLES):
            raise ValueError(f"{self.operation}: one answer per role ({len(ROLES)})")
        for answer in self.answers:
            if answer not in ANSWERS:
                raise ValueError(f"{self.operation}: unknown answer {answer!r}")

    def answer(self, role: str) -> str:
        """The expected answer for ``role``."""
        return self.answers[ROLES.index(role)]


def _row(operation: str, call: str, *in_process: str) -> Rule:
    return Rule(operation, call, (*in_process, NETWORK_ANSWER, NETWORK_ANSWER))


MATRIX: Final = (
    _row("send_message", "send_message(X, G, text, key)",
         "ok", "forbidden", "forbidden", "ok", "forbidden"),
    _row("fetch_messages", "fetch_messages(X, G)",
         "ok", "forbidden", "forbidden", "ok", "forbidden"),
    _row("fetch_conversations", "fetch_conversations(X, 0, 10) -- is G listed?",
         "ok", "hidden", "hidden", "ok", "hidden"),
    _row("mark_seen", "mark_seen(X, G, 1)",
         "ok", "forbidden", "forbidden", "ok", "forbidden"),
    _row("seen_by", "seen_by(G, 1, viewer_id=X)",
         "ok", "forbidden", "forbidden", "ok", "forbidden"),
    _row("members", "members(G, viewer_id=X)",
         "ok", "forbidden", "forbidden", "ok", "forbidden"),
    _row("add_member", "add_member(X, G, erin)",
         "ok", "forbidden", "forbidden", "ok", "forbidden"),
    _row("remove_other", "remove_member(X, G, alice) -- only the creator removes others",
         "forbidden", "forbidden", "forbidden", "forbidden", "forbidden"),
    _row("leave", "remove_member(X, G, X)",
         "ok", "invalid_request", "invalid_request", "ok", "invalid_request"),
    _row("sync", "sync(X, device) -- are G's messages in it?",
         "ok", "hidden", "hidden", "ok", "hidden"),
    _row("ack_delivery", "ack_delivery(X, device, G, 1) -- whose position moves?",
         "ok", "forbidden", "forbidden", "own", "forbidden"),
    _row("delivered_positions", "delivered_positions(X, device) -- is the record of bob's phone shown?",
         "ok", "hidden", "hidden", "hidden", "hidden"),
    _row("live_push", "connect(X, device), alice sends to G -- does it arrive?",
         "ok", "hidden", "hidden", "ok", "hidden"),
    _row("fetch_attachment", "fetch_attachment(X, a file shared in G)",
         "ok", "forbidden", "forbidden", "ok", "forbidden"),
    _row("fetch_unknown_conversation", "fetch_messages(X, 'g:404')",
         "not_found", "not_found", "not_found", "not_found", "not_found"),
)
"""The rows. ``X`` is the caller of the column; ``G`` the group."""


def markdown_table() -> str:
    """The matrix as a Markdown table (the README shows exactly this)."""
    header = ["operation", *ROLES]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for rule in MATRIX:
        call, _, question = rule.call.partition(" -- ")
        shown = f"`{call}`" + (f" {question}" if question else "")
        lines.append(f"| {shown} | " + " | ".join(rule.answers) + " |")
    return "\n".join(lines)
