"""Fuzzing the WebSocket server with raw frames: :data:`FRAMES` generated bad frames over real
connections on loopback.

Each frame is garbage of one family: not JSON, JSON that is not an object, unknown or missing
``type``, fields of the wrong type, huge or deeply nested values, lone surrogates and control
characters, ``NaN``/``Infinity``, out-of-range numbers and pages, other users' ids and devices,
binary frames with invalid UTF-8. Frames stay under the transport's hard limit
(``hard_max_frame_bytes``), above which ``websockets`` itself closes the connection with 1009
(tested in ``test_ws.py``); between the soft and the hard limit the server answers
``frame_too_large``. For every one, the server must answer an ``error`` frame with
a code and a message (never ``internal_error``) and keep the connection open -- or, for a
read-only request whose extra fields it may ignore (a ``heartbeat`` with junk beside it), take it
without storing anything. A probe request after each frame marks where the server's answers to
that frame end. Afterwards the stored state is exactly what it was, and another client still
sends and receives.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chatdesign.chat.client import ChatClient
from chatdesign.chat.ws import ChatNetworkServer

from .test_ws import SETTINGS, raw, run, stored

pytestmark = pytest.mark.slow

FRAMES = 10_000
SEED = 15

_REQUEST_TYPES = ("send", "delivered", "conversations", "messages", "seen", "heartbeat", "presence", "sync")
_WEIRD_VALUES: list[Any] = [
    None, True, False, -1, 0, 2**63, -(2**63) - 1, 10**400, 1.5, "", " ", "x" * 5000, "\x00", "\ud800",
    "bob\n", "🙂" * 100, [], [1, 2], {}, {"a": 1}, "bob", "carol", "g:1", "d:1", "NaN",
]
_FIELDS = ("id", "to", "content", "client_message_id", "attachments", "conversation_id", "seq", "page_number",
           "page_size", "last_updated_timestamp", "before_seq", "after_seq", "limit", "active", "user_ids",
           "positions", "user_id", "device_id", "sender_id")


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def bad_frames(rng: random.Random, count: int) -> list[str | bytes]:
    """``count`` bad frames, a seeded mix of every family."""
    families: list[Callable[[], str | bytes]] = [
        lambda: rng.choice(["", "{", "}", "not json", "{'type': 'send'}", "[1,", "\"send\"", "nul", "{\"type\":}"]),
        lambda: json.dumps(rng.choice([[], [1, 2], 3, "send", None, True])),
        lambda: json.dumps({"type": rng.choice(["", "SEND", "auth", "welcome", "ack", "drop_table", 7, None])}),
        lambda: json.dumps({"id": 1}),
        lambda: json.dumps({"type": rng.choice(_REQUEST_TYPES),
                            **{rng.choice(_FIELDS): rng.choice(_WEIRD_VALUES) for _ in range(rng.randint(1, 4))}}),
        lambda: '{"type": "send", "to": "bob", "content": NaN, "client_message_id": "k"}',
        lambda: '{"type": "seen", "conversation_id": "d:1", "seq": -Infinity}',
        lambda: '{"type": "messages", "conversation_id": "d:1", "limit": Infinity}',
        lambda: ('{"type": "' + rng.choice(_REQUEST_TYPES) + '", "x": '
                 + _nested(rng.choice([50, 500, 5_000, 20_000])) + "}"),
        lambda: json.dumps({"type": "send", "to": "bob", "content": "\ud800 lone", "client_message_id": "\udfff"}),
        lambda: json.dumps({"type": "send", "to": "bob\x07", "content": "bell", "client_message_id": "k\x00"}),
        lambda: json.dumps({"type": "sync", "positions": {"d:1": rng.choice([-1, 2**64, 1e300, "5", None])}}),
        lambda: json.dumps({"type": "conversations", "page_number": rng.choice([-1, 2**63, 10**9, "0", 1.5])}),
        lambda: json.dumps({"type": "seen", "conversation_id": rng.choice(["d:999", "g:1", "nope"]), "seq": 1}),
        lambda: json.dumps({"type": "send", "to": "bob", "content": "as carol", "client_message_id": "spoof",
                            "sender_id": "carol"}),
        lambda: json.dumps({"type": "delivered", "conversation_id": "d:1", "seq": 1, "device_id": "bobs-phone"}),
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))) + b"\xff\xfe",
        lambda: json.dumps({"type": "send", "to": "bob", "content": "x" * rng.choice([5_000, 60_000]),
                            "client_message_id": "big"}),
    ]
    return [rng.choice(families)() for _ in range(count)]


def _with_id(frame: str | bytes, n: int) -> tuple[str | bytes, str | None]:
    """A ``send`` frame gets a request id (its answer comes after a group commit, so it is awaited
    by id); every other frame is left as it is and followed by a probe."""
    if isinstance(frame, bytes):
        return frame, None
    try:
        decoded = json.loads(frame)
    except (ValueError, RecursionError):
        return frame, None
    if not isinstance(decoded, dict) or decoded.get("type") != "send" or "id" in decoded:
        return frame, None
    decoded["id"] = f"fuzz-{n}"
    return json.dumps(decoded), f"fuzz-{n}"


def test_ten_thousand_bad_frames_are_refused_and_change_nothing(tmp_path: Path) -> None:
    frames = bad_frames(random.Random(SEED), FRAMES)
    codes: Counter[str] = Counter()

    async def scenario(server: ChatNetworkServer) -> None:
        alice_token = await server.issue_token("alice", "fuzz")
        ws = await raw(server, alice_token)
        before = await stored(server)  # after the login, which records the device
        for n, frame in enumerate(frames):
            frame, awaited = _with_id(frame, n)
            await ws.send(frame)
            if awaited is None:
                # a probe with its own id: everything the server says about `frame` comes before its answer
                # (sends are the exception -- they wait for their group commit -- so they carry an id)
                awaited = f"probe-{n}"
                await ws.send(json.dumps({"type": "conversations", "id": awaited, "page_size": 1}))
            refusal = None
            while True:
                answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if answer.get("type") == "error":  # frames are handled in order: it refuses this one
                    refusal = answer
                if answer.get("id") == awaited:
                    break
            if refusal is None:  # accepted: only requests that store nothing may be taken as they are
                kind = json.loads(frame).get("type") if isinstance(frame, str) else None  # parsed by the server
                assert kind in ("heartbeat", "presence", "conversations", "messages", "sync", "delivered"), frame
                codes["accepted, read-only"] += 1
                continue
            assert refusal["code"] != "internal_error", (frame, refusal)
            assert isinstance(refusal["message"], str) and refusal["message"]
            codes[refusal["code"]] += 1
        await ws.close()
        # the fuzzing device itself is remembered the first time it syncs (a read it may make)
        fuzz_device = "devices:('alice', 'fuzz')"
        assert [r for r in await stored(server) if r != fuzz_device] == [r for r in before if r != fuzz_device]
        async with ChatClient.connect(server.ws_url, await server.issue_token("bob", "phone")) as bob, \
                ChatClient.connect(server.ws_url, alice_token) as alice:
            ack = await alice.send("bob", "still here")
            assert (await bob.receive(timeout=5)).seq == ack.seq

    run(tmp_path, scenario, SETTINGS)
    assert sum(codes.values()) == FRAMES
    assert len(codes) >= 5  # many families, many different refusals
    assert codes["accepted, read-only"] < FRAMES // 10
