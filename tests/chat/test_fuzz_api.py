"""Fuzzing the in-process API: thousands of generated bad calls, each must raise a
:class:`ChatError` subclass (never ``TypeError``, ``KeyError``, ``OverflowError``,
``RecursionError``, ``UnicodeError`` or a ``sqlite3`` error) and leave every stored row as it was.

A call is a valid call of one public method with one or two arguments swapped for a bad value
of that argument's kind: wrong types, huge or deeply nested values, invalid strings (lone
surrogates, control characters, a trailing newline, too long), NaN and infinities,
out-of-range numbers and pages, and other users' ids and conversations. The bad values are
listed per argument, so a value that turned out to be valid would store something -- and the
state check would fail the test. Seeded: the same calls on every run.

The quick run (2,000 calls) runs with every test; the long run (20,000 calls) is marked
``slow`` (CI runs it too).
"""

from __future__ import annotations

import math
import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from chatdesign.chat import ChatError, ChatServer, KeepLastN, ManualClock
from chatdesign.chat.core import shown

PNG = b"\x89PNG\r\n\x1a\n" + b"pixels"
MAX_ATTACHMENT_BYTES = 1_000


def _deep_list(depth: int) -> object:
    value: object = "alice"
    for _ in range(depth):
        value = [value]
    return value


def _deep_dict(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"g:1": value}
    return value


WRONG_TYPES: list[object] = [
    None, 5, -3, 1.5, math.nan, math.inf, True, False, b"alice", bytearray(b"x"), ["alice"],
    ("alice",), {"alice": 1}, {"alice"}, object(), 2**64, 1j, _deep_list(5_000),
    _deep_dict(5_000), [None] * 1_000,
]
BAD_TEXT_IDS: list[object] = [
    "", " ", "a b", "alice\n", "alice\r", "\nalice", "x" * 65, "a" * 100_000, "\ud800",
    "al\udfffice", "\x00", "al\x1bice", "\u202ealice", "alice\u200b", "ａlice", "é", "😀",
    "g:1", "alice;DROP TABLE users", "%s", "alice\x85", "../alice",
]
BAD_USER = [*WRONG_TYPES, *BAD_TEXT_IDS, "zed", "nobody_here"]
"""Bad in any slot that names an acting user: malformed, or well-formed but unregistered."""
BAD_DEVICE = [*WRONG_TYPES, *BAD_TEXT_IDS]
BAD_CONVERSATION_FORMS = [
    *WRONG_TYPES, "", "g:", "g:abc", "g:-1", "G:1", "g:1 ", " g:1", "g:1\n", "g:\u0663",
    "x:1", "g:" + "9" * 25, "g:999", "d:0", "g:\ud800", "g:1.5", "g: 1", "alice",
]
BAD_CURSORS: list[object] = [
    "1", 1.0, 1.5, math.nan, math.inf, -math.inf, True, -1, -(2**63) - 1, 2**53, 2**63,
    2**64, 10**100, [1], {"n": 1}, b"1", 1j, _deep_list(3_000),
]
"""Bad for an optional whole-number argument (``None`` is valid there: no cursor)."""
BAD_INTS = [None, *BAD_CURSORS]
"""Bad for a required whole-number argument."""
BAD_TEXT: list[object] = [
    *WRONG_TYPES, "\x00", "bad\x07bell", "\ud800", "x\udc00y", "\x1b[31mred", "\u0085next",
]
BAD_CONTENT = [*BAD_TEXT, "", "   ", "\n\t", "a" * 100_001]
BAD_TIMESTAMPS: list[object] = [
    math.nan, math.inf, -math.inf, -1.0, "now", 10**400, True, [1.0], 1e300, 2**63, b"1",
]


@dataclass
class World:
    """The fixed scene the calls act in (see :func:`world`)."""

    server: ChatServer
    group: str  # alice (creator), bob
    direct: str  # alice & bob
    others: str  # carol & dave: alice is not a member
    empty_group: str  # alice, carol; no messages
    attachment: str  # uploaded by alice and shared in the group
    carols: str  # uploaded by carol, never shared


def world(tmp_path: Path) -> World:
    clock = ManualClock(1_750_000_000.0)
    server = ChatServer(tmp_path / "chat.db", clock, synchronous="OFF",
                        max_attachment_bytes=MAX_ATTACHMENT_BYTES)
    for user in ("alice", "bob", "carol", "dave"):
        server.register_user(user)
    group = server.create_group("alice", ["bob"], "team")
    attachment = server.upload_attachment("alice", PNG, "image/png", "a.png")
    server.send_message("alice", group, "original", "used-key", [attachment])
    server.send_message("bob", group, "second", "b1")
    direct = server.send_message("alice", "bob", "hi", "d1").conversation_id
    others = server.send_message("carol", "dave", "private", "c1").conversation_id
    empty = server.create_group("alice", ["carol"], "quiet")
    carols = server.upload_attachment("carol", PNG + b"carol", "image/png", "c.png")
    server.sync("alice", "phone")
    server.ack_delivery("alice", "phone", group, 1)
    server.mark_seen("bob", group, 1)
    clock.advance(10)
    return World(server, group, direct, others, empty, attachment, carols)


Slot = tuple[object, list[object]]
"""(a valid value, the bad values for this argument)."""


def operations(w: World) -> dict[str, tuple[Callable[..., object], list[Slot]]]:
    """Every public method that takes input: the method and its argument slots."""
    s = w.server
    not_a_member = ["carol", "dave"]  # in an alice-and-bob conversation
    conversations_of_alice = [*BAD_CONVERSATION_FORMS, w.others]
    return {
        "register_user": (s.register_user, [
            ("erin", [*WRONG_TYPES, *BAD_TEXT_IDS, "alice", "bob"]),
            ("Erin", [*(v for v in BAD_TEXT if v is not None), "", "x" * 101])]),
        "has_user": (s.has_user, [("alice", [*WRONG_TYPES, *BAD_TEXT_IDS])]),
        "create_group": (s.create_group, [
            ("alice", BAD_USER),
            (["bob"], [*WRONG_TYPES[:10], "bob", ["zed"], [*["u"] * 2_000], ["bob"] * 1_001,
                       [f"user{i}" for i in range(200)], [None], [["bob"]], ["bob\n"],
                       _deep_list(2_000), b"bob"]),
            ("new team", [*BAD_TEXT, "", "   ", "t" * 201])]),
        "add_member": (s.add_member, [
            ("alice", [*BAD_USER, "dave"]),
            (w.group, [*BAD_CONVERSATION_FORMS, w.direct, w.others]),
            ("carol", [*BAD_USER, "bob", "alice"])]),
        "remove_member": (s.remove_member, [
            ("alice", [*BAD_USER, "dave", "carol"]),
            (w.group, [*BAD_CONVERSATION_FORMS, w.direct, w.others]),
            ("bob", [*BAD_USER, "carol", "dave"])]),
        "members": (s.members, [(w.group, [*BAD_CONVERSATION_FORMS])]),
        "send_message": (s.send_message, [
            ("alice", BAD_USER),
            (w.group, [*BAD_USER, *conversations_of_alice, "alice"]),
            ("fuzz content", BAD_CONTENT),
            ("fresh-key", [*BAD_TEXT, "", "k" * 129, "used-key"]),
            ((), ["abc", None, 5, [None], ["0" * 64], ["A" * 64], [w.attachment, w.attachment],
                  [w.attachment] * 11, [w.carols], {"a": 1}, [w.attachment + "\n"],
                  ["\ud800" * 64], [5], [_deep_list(100)]])]),
        "fetch_conversations": (s.fetch_conversations, [
            ("alice", BAD_USER),
            (0, [*BAD_INTS]),
            (10, [*BAD_INTS, 0, 101]),
            (None, BAD_TIMESTAMPS)]),
        "fetch_messages": (s.fetch_messages, [
            ("alice", [*BAD_USER, *not_a_member]),
            (w.group, conversations_of_alice),
            (None, [*BAD_CURSORS, 0]),
            (None, BAD_CURSORS),
            (50, [*BAD_INTS, 0, 101])]),
        "fetch_messages(both cursors)": (
            lambda user, cid, before: s.fetch_messages(user, cid, before_seq=before, after_seq=1),
            [("alice", ["alice"]), (w.group, [w.group]), (2, [2, 3])]),
        "mark_seen": (s.mark_seen, [
            ("bob", [*BAD_USER, *not_a_member]),
            (w.group, conversations_of_alice),
            (2, [*BAD_INTS, 0, 3, 1_000])]),
        "seen_by": (s.seen_by, [
            (w.group, [*BAD_CONVERSATION_FORMS, w.empty_group]),
            (1, [*BAD_INTS, 0, 3])]),
        "sync": (s.sync, [
            ("alice", BAD_USER),
            ("phone", BAD_DEVICE),
            ({}, ["x", 5, [(w.group, 1)], {w.group: -1}, {w.group: 10**20}, {w.group: 1.0},
                  {w.group: 3}, {"bob": 1}, {5: 1}, {w.group: None}, {w.group: "1"},
                  {w.group: math.nan}, {(w.group,): 1}, {w.group: 2**63}, _deep_dict(3_000),
                  {w.group: True}, {"g:\ud800": 1}])]),
        "ack_delivery": (s.ack_delivery, [
            ("alice", [*BAD_USER, *not_a_member]),
            ("phone", BAD_DEVICE),
            (w.group, conversations_of_alice),
            (2, [*BAD_INTS, 0, 3])]),
        "delivered_positions": (s.delivered_positions, [("alice", BAD_USER), ("phone", BAD_DEVICE)]),
        "delivered_to": (s.delivered_to, [
            (w.group, [*BAD_CONVERSATION_FORMS, w.empty_group]), (1, [*BAD_INTS, 0, 3])]),
        "connect": (s.connect, [("alice", BAD_USER), ("tablet", BAD_DEVICE)]),
        "upload_attachment": (s.upload_attachment, [
            ("alice", BAD_USER),
            (PNG + b"new", [None, "text", 5, b"", b"\x89PNG\r\n\x1a\n" + b"x" * MAX_ATTACHMENT_BYTES,
                            [1, 2], b"GIF89a", _deep_list(100)]),
            ("image/png", [*WRONG_TYPES, "text/html", "", "image/png\n", "IMAGE/PNG",
                           "application/pdf", "\ud800"]),
            ("new.png", [*BAD_TEXT, "", "../x", "a/b", "a\\b", ".", "..", "x" * 256])]),
        "fetch_attachment": (s.fetch_attachment, [
            ("bob", [*BAD_USER, "dave"]),
            (w.attachment, [*WRONG_TYPES, "0" * 64, w.carols, w.attachment.upper(), w.attachment[:-1],
                            w.attachment + "\n", "\ud800" * 64, ""])]),
        "apply_retention": (s.apply_retention, [
            (KeepLastN(100), [None, "keep all", 5, object(), {"n": 1}, KeepLastN, [KeepLastN(1)]])]),
    }


def dump(server: ChatServer) -> list[str]:
    connection: sqlite3.Connection = server.store._connection  # type: ignore[attr-defined]
    rows: list[str] = []
    for schema in ("main", "cold"):
        for (table,) in connection.execute(
            f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall():
            rows += [f"{table}:{row}" for row in connection.execute(f"SELECT * FROM {schema}.{table}")]
    return sorted(rows)


def run_fuzz(tmp_path: Path, calls: int, seed: int) -> dict[str, int]:
    """Make ``calls`` bad calls; return how many each error code answered."""
    w = world(tmp_path)
    ops = operations(w)
    names = sorted(ops)
    rng = random.Random(seed)
    before = dump(w.server)
    files_before = w.server.storage_stats().attachment_count
    codes: dict[str, int] = {}
    for n in range(calls):
        name = names[n % len(names)] if n < len(names) else rng.choice(names)
        method, slots = ops[name]
        args = [valid for valid, _ in slots]
        bad_slots = rng.sample(range(len(slots)), k=min(len(slots), rng.choice((1, 1, 1, 2))))
        for i in bad_slots:
            args[i] = rng.choice(slots[i][1])
        try:
            method(*args)
        except ChatError as error:
            codes[error.code] = codes.get(error.code, 0) + 1
        except Exception as error:  # the point: name the call that escaped
            call = ", ".join(shown(a) for a in args)
            raise AssertionError(f"{name}({call}) raised {type(error).__name__}: "
                                 f"{str(error)[:200]}") from error
        else:
            call = ", ".join(shown(a) for a in args)
            raise AssertionError(f"{name}({call}) was accepted; its bad value is not bad")
        if n % 50 == 0 or name in ("upload_attachment", "sync", "ack_delivery"):
            assert dump(w.server) == before, f"{name} changed stored state while refusing"
    assert dump(w.server) == before
    assert w.server.storage_stats().attachment_count == files_before
    # ... and the server still serves everyone
    message = w.server.send_message("bob", w.group, "still here", "after-fuzz")
    assert w.server.fetch_messages("alice", w.group, limit=1) == [message]
    w.server.close()
    return codes


def test_fuzz_quick(tmp_path: Path) -> None:
    codes = run_fuzz(tmp_path, 2_000, seed=15)
    assert set(codes) >= {"invalid_request", "not_found", "forbidden", "idempotency_conflict"}


@pytest.mark.slow
def test_fuzz_twenty_thousand_bad_calls(tmp_path: Path) -> None:
    codes = run_fuzz(tmp_path, 20_000, seed=2026)
    print(f"fuzz: {sum(codes.values()):,} bad calls, answers by code: {dict(sorted(codes.items()))}")
    assert sum(codes.values()) == 20_000
