"""Demo users and history for ``python -m chatdesign serve --demo`` (loopback only).

:func:`seed_demo` is idempotent: it registers the users, one group and a little history the
first time, and recognises its own messages (by ``client_message_id``) on later starts.
"""

from __future__ import annotations

import struct
import zlib

from chatdesign.chat.server import ChatServer

DEMO_USERS: dict[str, str] = {"alice": "Alice", "bob": "Bob", "carol": "Carol", "dave": "Dave"}
"""Demo user ids and display names."""

DEMO_GROUP_TITLE = "Weekend trip"


def demo_png(width: int = 96, height: int = 64) -> bytes:
    """A small gradient picture (PNG), made here so the demo ships no binary file."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((40 + 160 * x // width, 120 + 100 * y // height, 200)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def seed_demo(chat: ChatServer) -> None:
    """Register the demo users and, once, a group and a short history."""
    for user_id, name in DEMO_USERS.items():
        if not chat.has_user(user_id):
            chat.register_user(user_id, name)
    groups = [i for i in chat.fetch_conversations("alice", 0, 50).items
              if i.kind == "group" and i.title == DEMO_GROUP_TITLE]
    group = groups[0].conversation_id if groups else chat.create_group(
        "alice", ["bob", "carol", "dave"], DEMO_GROUP_TITLE)
    picture = chat.upload_attachment("carol", demo_png(), "image/png", "lake.png")
    script = [
        ("alice", "bob", "Hi Bob! Are you around this weekend?", ()),
        ("bob", "alice", "Hey! Yes, Saturday works.", ()),
        ("alice", group, "Who is in for the lake on Saturday?", ()),
        ("carol", group, "Me! This is the spot:", (picture,)),
        ("dave", group, "Count me in, I'll bring snacks.", ()),
        ("carol", "bob", "Bob, can you drive?", ()),
    ]
    for number, (sender, recipient, content, attachments) in enumerate(script):
        chat.send_message(sender, recipient, content, f"demo-{number}", attachments)
