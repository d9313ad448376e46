"""Presence batches delivered through the chat stream (seed: "can be also sent through
conversation message"): one message per viewer, pushed to sessions, idempotent, all-or-nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatdesign.chat import ChatServer, InvalidRequest, NotFound
from chatdesign.clock import ManualClock
from chatdesign.presence import (
    PRESENCE_ACCOUNT,
    ChatPresenceChannel,
    MemoryTTLStore,
    PresenceBatch,
    PresenceChange,
    PresenceService,
    PresenceState,
)

FRIENDS = {"alice": {"bob": 6.0}, "bob": {"alice": 6.0}, "carol": {"alice": 1.0}}


@pytest.fixture
def chat(tmp_path: Path) -> ChatServer:
    server = ChatServer(clock=ManualClock(1_750_000_000.0), data_dir=tmp_path)
    for user in ("alice", "bob"):
        server.register_user(user)
    return server


def _batches_after_bob_logs_in() -> dict[str, PresenceBatch]:
    clock = ManualClock(1_000.0)
    presence = PresenceService(MemoryTTLStore(clock), clock, friends=FRIENDS)
    presence.heartbeat("alice", "phone")
    presence.flush(clock())
    presence.heartbeat("bob", "laptop")
    return presence.flush(clock.advance(5))


def test_a_batch_reaches_the_viewers_connected_device(chat: ChatServer) -> None:
    channel = ChatPresenceChannel(chat)
    session = chat.connect("alice", "phone")
    batches = _batches_after_bob_logs_in()
    assert list(batches) == ["alice"]
    (message,) = channel.deliver(batches)
    assert message.sender_id == PRESENCE_ACCOUNT
    assert session.drain() == [message]
    event = channel.read_event(message)
    assert event == batches["alice"].to_event()
    assert [(c["user_id"], c["status"]) for c in event["changes"]] == [("bob", "online")]


def test_an_offline_device_catches_up_by_sync(chat: ChatServer) -> None:
    channel = ChatPresenceChannel(chat)
    (message,) = channel.deliver(_batches_after_bob_logs_in())
    caught_up = chat.sync("alice", "tablet", {})
    assert caught_up.messages_by_conversation == {message.conversation_id: (message,)}


def test_delivering_the_same_flush_twice_stores_one_message(chat: ChatServer) -> None:
    channel = ChatPresenceChannel(chat)
    batches = _batches_after_bob_logs_in()
    first = channel.deliver(batches)
    again = channel.deliver(batches)
    assert again == first
    assert len(chat.fetch_messages("alice", first[0].conversation_id)) == 1


def test_unknown_viewers_refuse_the_whole_delivery(chat: ChatServer) -> None:
    channel = ChatPresenceChannel(chat)
    batch = _batches_after_bob_logs_in()["alice"]
    stranger = PresenceBatch("zoe", batch.sent_at_s, (PresenceChange("bob", PresenceState.ONLINE, batch.sent_at_s),))
    with pytest.raises(NotFound, match="zoe"):
        channel.deliver({"alice": batch, "zoe": stranger})
    assert chat.fetch_conversations("alice", 0, 10).items == ()


def test_mismatched_batches_and_foreign_messages_are_refused(chat: ChatServer) -> None:
    channel = ChatPresenceChannel(chat)
    batch = _batches_after_bob_logs_in()["alice"]
    with pytest.raises(ValueError, match="that viewer's PresenceBatch"):
        channel.deliver({"bob": batch})
    ordinary = chat.send_message("bob", "alice", "hi", "b-1")
    with pytest.raises(ValueError, match="not 'presence'"):
        channel.read_event(ordinary)


def test_the_account_is_created_once(chat: ChatServer) -> None:
    ChatPresenceChannel(chat)
    assert chat.has_user(PRESENCE_ACCOUNT)
    assert repr(ChatPresenceChannel(chat)) == "ChatPresenceChannel(account_id='presence')"
    with pytest.raises(InvalidRequest):
        chat.has_user("not a valid id!")
