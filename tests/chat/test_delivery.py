"""Acknowledged delivery: the device presents its positions, the server advances its record of
a device only on ``ack_delivery``; a response lost on the way loses nothing (at-least-once,
with de-duplication by ``seq`` on the device)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chatdesign.chat import ChatServer, ClientOnly, Forbidden, InvalidRequest, Message, NotFound

Dump = Callable[[ChatServer], list[str]]


def _seqs(messages: tuple[Message, ...] | list[Message]) -> list[int]:
    return [m.seq for m in messages]


def test_sync_records_nothing_until_the_device_acknowledges(server: ChatServer) -> None:
    conversation = server.send_message("alice", "bob", "one", "k1").conversation_id
    server.send_message("alice", "bob", "two", "k2")
    first = server.sync("bob", "phone")
    assert _seqs(first.messages_by_conversation[conversation]) == [1, 2]
    assert server.delivered_positions("bob", "phone") == {}
    again = server.sync("bob", "phone")  # the first response was lost: nothing is skipped
    assert again == first
    assert server.ack_delivery("bob", "phone", conversation, 2) == 2
    assert server.delivered_positions("bob", "phone") == {conversation: 2}
    assert server.sync("bob", "phone").message_count == 0


def test_a_lost_push_loses_nothing(server: ChatServer) -> None:
    """The standard failure: the server pushes, the connection drops before the device gets
    it. The device never acks, so its next sync (from its own position) brings it back."""
    phone = server.connect("bob", "phone")
    first = server.send_message("alice", "bob", "kept", "k1")
    assert phone.drain() == [first]
    phone.ack(first.conversation_id, first.seq)
    lost = server.send_message("alice", "bob", "lost in transit", "k2")
    assert phone.drain() == [lost]  # ... taken off the queue, then the connection drops
    phone.close()
    device_has = {first.conversation_id: first.seq}  # the device's own record
    caught_up = server.sync("bob", "phone", device_has)
    assert caught_up.messages_by_conversation == {lost.conversation_id: (lost,)}
    # without its own record (a reinstall), the server's acknowledged position is the start
    assert server.sync("bob", "phone").messages_by_conversation == {lost.conversation_id: (lost,)}


def test_duplicates_after_a_lost_ack_carry_the_same_seq(server: ChatServer) -> None:
    """At-least-once: a lost *ack* means the device sees a message again; the repeat has the
    same seq, so a device that keeps its positions drops it (shown once)."""
    message = server.send_message("alice", "bob", "hi", "k1")
    shown: dict[str, int] = {}
    for _ in range(2):  # the ack of the first sync never arrived
        for cid, messages in server.sync("bob", "phone").messages_by_conversation.items():
            fresh = [m for m in messages if m.seq > shown.get(cid, 0)]
            if fresh:
                shown[cid] = fresh[-1].seq
    assert shown == {message.conversation_id: 1}


def test_ack_never_moves_backwards_and_is_idempotent(server: ChatServer, dump: Dump) -> None:
    conversation = server.send_message("alice", "bob", "one", "k1").conversation_id
    server.send_message("alice", "bob", "two", "k2")
    assert server.ack_delivery("bob", "phone", conversation, 2) == 2
    before = dump(server)
    assert server.ack_delivery("bob", "phone", conversation, 1) == 2  # late ack: no-op
    assert server.ack_delivery("bob", "phone", conversation, 2) == 2  # repeated ack: no-op
    assert dump(server) == before


def test_ack_errors_change_nothing(server: ChatServer, dump: Dump) -> None:
    conversation = server.send_message("alice", "bob", "one", "k1").conversation_id
    group = server.create_group("alice", ["carol"], "team")
    before = dump(server)
    with pytest.raises(InvalidRequest, match="beyond the conversation's last message"):
        server.ack_delivery("bob", "phone", conversation, 2)
    with pytest.raises(InvalidRequest, match="up_to_seq"):
        server.ack_delivery("bob", "phone", conversation, 0)
    with pytest.raises(InvalidRequest, match="up_to_seq"):
        server.ack_delivery("bob", "phone", conversation, True)  # type: ignore[arg-type]
    with pytest.raises(Forbidden, match="bob is not a member"):
        server.ack_delivery("bob", "phone", group, 1)
    with pytest.raises(NotFound):
        server.ack_delivery("bob", "phone", "g:999", 1)
    with pytest.raises(NotFound):
        server.ack_delivery("zed", "phone", conversation, 1)
    with pytest.raises(InvalidRequest, match="device_id"):
        server.ack_delivery("bob", "my phone", conversation, 1)
    assert dump(server) == before


def test_a_position_beyond_the_last_message_is_refused(server: ChatServer, dump: Dump) -> None:
    conversation = server.send_message("alice", "bob", "one", "k1").conversation_id
    server.sync("bob", "phone")
    before = dump(server)
    with pytest.raises(InvalidRequest, match="beyond the conversation's last message"):
        server.sync("bob", "phone", {conversation: 2})
    assert dump(server) == before
    assert server.sync("bob", "phone", {conversation: 1}).message_count == 0


def test_delivered_receipts_follow_acks_not_pushes(server: ChatServer) -> None:
    group = server.create_group("alice", ["bob", "carol"], "team")
    phone = server.connect("bob", "phone")
    server.connect("carol", "laptop")
    message = server.send_message("alice", group, "hello", "k1")
    assert phone.drain() == [message]
    assert server.delivered_to(group, 1) == ()  # pushed is not delivered
    phone.ack(group, 1)
    assert server.delivered_to(group, 1) == ("bob",)
    server.ack_delivery("carol", "laptop", group, 1)
    assert server.delivered_to(group, 1) == ("bob", "carol")
    with pytest.raises(InvalidRequest, match=r"seq must be 1\.\.1"):
        server.delivered_to(group, 2)


def test_client_only_retention_keeps_what_was_pushed_but_not_acknowledged(
    server: ChatServer,
) -> None:
    conversation = server.send_message("alice", "bob", "one", "k1").conversation_id
    server.ack_delivery("alice", "phone", conversation, 1)
    phone = server.connect("bob", "phone")
    server.send_message("alice", "bob", "two", "k2")
    server.ack_delivery("alice", "phone", conversation, 2)
    assert len(phone.drain()) == 1  # bob's phone took #2 off the queue but acked nothing
    assert server.apply_retention(ClientOnly()).deleted_messages == 0
    server.ack_delivery("bob", "phone", conversation, 1)
    assert server.apply_retention(ClientOnly()).deleted_messages == 1  # only #1: #2 is kept
    assert _seqs(server.sync("bob", "phone").messages_by_conversation[conversation]) == [2]


def test_ack_deliveries_commit_together_and_refuse_alone(server: ChatServer, dump: Dump) -> None:
    conversation = server.send_message("alice", "bob", "one", "k1").conversation_id
    results = server.ack_deliveries([("bob", "phone", conversation, 1), ("bob", "phone", conversation, 5),
                                     ("carol", "web", conversation, 1), ("alice", "web", conversation, 1)])
    assert results[0] == 1 and results[3] == 1
    assert isinstance(results[1], InvalidRequest) and isinstance(results[2], Forbidden)
    assert server.delivered_to(conversation, 1) == ("alice", "bob")
    before = dump(server)
    assert server.ack_deliveries([("bob", "phone", conversation, 1)]) == [1]  # a repeat: no-op
    assert dump(server) == before
