"""A model-based test over the network: hypothesis drives a real :class:`ChatNetworkServer` on
loopback through the Python :class:`ChatClient`, with connections dropped at random.

hypothesis' stateful API is synchronous and asyncio is not: each run owns an event loop on a
helper thread, the server and the clients live on that loop, and every rule submits one
coroutine to it and waits for the result (``asyncio.run_coroutine_threadsafe``), so the rules
stay plain hypothesis rules and shrinking works. Runs are seeded (``derandomize=True``).

Four devices (alice's phone, bob's phone and laptop, carol's phone) share two conversations:
alice and bob 1:1, and a group of all three. The rules: send (a fresh ``client_message_id``),
send while the connection drops under it (after 0-10 ms: the ack may or may not have left the
server; the client resends with the same key), retry an acknowledged send with the same key
(the ack must name the same message), receive what has arrived, drop a device's TCP
connection without a closing handshake
(:meth:`ChatClient.drop_connection`: the client reconnects with backoff, resends unacknowledged
sends, resyncs), and reconnect as a restarted app (a new client for the same device, starting
from the positions the old one kept). The reference model is the set of acknowledged messages.
Checked after every step: no device ever received a (conversation, seq) twice, and within a
conversation a device receives seqs 1, 2, 3, ... in order, each with the content its ack named.
Checked at the end of each run: every acknowledged message reaches every member's device,
exactly once and in seq order (waiting a bounded time: delivery is eventually, not instantly).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from chatdesign.chat.client import ChatClient, ReceivedMessage
from chatdesign.chat.ws import ChatNetworkServer

from .test_ws import SETTINGS

T = TypeVar("T")

DEVICES = (("alice", "phone"), ("bob", "phone"), ("bob", "laptop"), ("carol", "phone"))
CONVERSATIONS = ("direct", "group")
MEMBERS = {"direct": {"alice", "bob"}, "group": {"alice", "bob", "carol"}}
STEP_TIMEOUT_S = 20.0
SETTLE_S = 20.0
RUNS: list[int] = []  # acknowledged messages per run, for the closing check


@dataclass
class Acked:
    conversation_id: str
    seq: int
    message_id: int
    content: str
    sender: tuple[str, str]
    key: str
    to: str


@dataclass
class Device:
    user: str
    device: str
    client: ChatClient
    received: list[ReceivedMessage] = field(default_factory=list)
    generation: int = 0


class NetworkChatModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="chat-ws-model-"))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = ChatNetworkServer(self.directory / "data", settings=SETTINGS)
        self.devices: dict[tuple[str, str], Device] = {}
        self.conversation_ids: dict[str, str] = {}
        self.acked: dict[tuple[str, int], Acked] = {}  # (conversation_id, seq) -> the ack
        self.by_key: dict[str, Acked] = {}
        self.sends = 0
        self.seed = 0

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = STEP_TIMEOUT_S) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _new_client(self, user: str, device: str, positions: dict[str, int] | None = None) -> ChatClient:
        self.seed += 1
        token = await self.server.issue_token(user, device)
        client = ChatClient(self.server.ws_url, token, positions=positions, seed=self.seed,
                            backoff_initial_s=0.01, backoff_max_s=0.1, heartbeats=False)
        await client.start()
        return client

    @initialize()
    def start(self) -> None:
        async def start() -> None:
            await self.server.start()
            for user in ("alice", "bob", "carol"):
                await self.server.issue_token(user, "setup")
            group = await self.server.call(lambda c: c.create_group("alice", ["bob", "carol"], "team"))
            first = await self.server.call(lambda c: c.send_message("alice", "bob", "hello", "k-first"))
            self.conversation_ids = {"direct": first.conversation_id, "group": group}
            self.record(Acked(first.conversation_id, 1, first.message_id, "hello", ("alice", "setup"), "k-first",
                              "bob"))
            for user, device in DEVICES:
                self.devices[(user, device)] = Device(user, device, await self._new_client(user, device))
        self.run(start())

    def teardown(self) -> None:
        try:
            if self.devices:
                self.everything_arrives()
                RUNS.append(len(self.acked))
        finally:
            async def stop() -> None:
                for d in self.devices.values():
                    await d.client.close()
                await self.server.close()
            try:
                self.run(stop())
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self.thread.join(10)
                self.loop.close()
                shutil.rmtree(self.directory, ignore_errors=True)

    def record(self, ack: Acked) -> None:
        place = (ack.conversation_id, ack.seq)
        assert place not in self.acked, f"two acks name seq {ack.seq} of {ack.conversation_id}"
        self.acked[place] = ack
        self.by_key[ack.key] = ack

    # --- rules ------------------------------------------------------------------------------------

    @rule(who=st.sampled_from(DEVICES), conversation=st.sampled_from(CONVERSATIONS))
    def send(self, who: tuple[str, str], conversation: str) -> None:
        d = self.devices[who]
        if d.user not in MEMBERS[conversation]:
            conversation = "group"
        self.sends += 1
        key, content = f"k{self.sends}", f"m{self.sends} from {d.user}/{d.device}"
        to = "bob" if (conversation, d.user) == ("direct", "alice") else (
            "alice" if conversation == "direct" else self.conversation_ids["group"])
        ack = self.run(d.client.send(to, content, client_message_id=key, timeout=STEP_TIMEOUT_S - 2))
        assert ack.conversation_id == self.conversation_ids[conversation]
        self.record(Acked(ack.conversation_id, ack.seq, ack.message_id, content, who, key, to))

    @rule(who=st.sampled_from(DEVICES))
    def send_to_group(self, who: tuple[str, str]) -> None:
        self.send(who, "group")

    @rule(who=st.sampled_from(DEVICES), delay_s=st.sampled_from([0.0, 0.001, 0.003, 0.01]))
    def send_while_the_connection_drops(self, who: tuple[str, str], delay_s: float) -> None:
        """A send whose connection drops before (or after) the ack left the server: the client
        resends it with the same key after reconnecting; it must be stored once."""
        d = self.devices[who]
        self.sends += 1
        key, content = f"k{self.sends}", f"m{self.sends} from {d.user}/{d.device} (dropped)"
        to = self.conversation_ids["group"]

        async def go() -> Any:
            sending = asyncio.ensure_future(d.client.send(to, content, client_message_id=key,
                                                          timeout=STEP_TIMEOUT_S - 2))
            await asyncio.sleep(delay_s)
            await d.client.drop_connection()
            return await sending
        ack = self.run(go())
        self.record(Acked(ack.conversation_id, ack.seq, ack.message_id, content, who, key, to))

    @rule(index=st.integers(0, 1000))
    def retry_same_key(self, index: int) -> None:
        """Send an acknowledged message again from its device, same key and content: the
        answer is the original message, nothing new is stored."""
        mine = [a for a in self.by_key.values() if a.sender in self.devices]
        if not mine:
            return
        original = mine[index % len(mine)]
        d = self.devices[original.sender]
        ack = self.run(d.client.send(original.to, original.content, client_message_id=original.key,
                                     timeout=STEP_TIMEOUT_S - 2))
        assert (ack.message_id, ack.conversation_id, ack.seq) == (
            original.message_id, original.conversation_id, original.seq), "a retry stored a second copy"

    @rule(who=st.sampled_from(DEVICES))
    def receive(self, who: tuple[str, str]) -> None:
        d = self.devices[who]
        d.received += self.run(self._drain(d.client, 0.02))

    @staticmethod
    async def _drain(client: ChatClient, wait_s: float) -> list[ReceivedMessage]:
        got: list[ReceivedMessage] = []
        while True:
            try:
                got.append(await client.receive(timeout=wait_s))
            except TimeoutError:
                return got

    @rule(who=st.sampled_from(DEVICES))
    def drop_connection(self, who: tuple[str, str]) -> None:
        self.run(self.devices[who].client.drop_connection())

    @rule(who=st.sampled_from(DEVICES))
    def reconnect_as_restarted_app(self, who: tuple[str, str]) -> None:
        """Close the device's client (after taking what it holds) and start a new one from the
        positions the old one kept, as an app restart would."""
        d = self.devices[who]

        async def restart() -> None:
            d.received += await self._drain(d.client, 0.0001)
            positions = d.client.positions
            await d.client.close()
            d.received += await self._drain(d.client, 0.0001)
            d.client = await self._new_client(d.user, d.device, positions)
            d.generation += 1
        self.run(restart())

    # --- checks -----------------------------------------------------------------------------------

    @invariant()
    def each_device_in_order_and_once(self) -> None:
        for d in self.devices.values():
            last: dict[str, int] = {}
            for m in d.received:
                assert m.seq == last.get(m.conversation_id, 0) + 1, (
                    f"{d.user}/{d.device}: seq {m.seq} of {m.conversation_id} after {last.get(m.conversation_id)}")
                last[m.conversation_id] = m.seq
                ack = self.acked.get((m.conversation_id, m.seq))
                if ack is not None:
                    assert (m.message_id, m.content) == (ack.message_id, ack.content)

    def everything_arrives(self) -> None:
        """Every acknowledged message reaches every member's device (bounded wait)."""
        async def settle() -> None:
            deadline = self.loop.time() + SETTLE_S
            while True:
                missing = []
                for d in self.devices.values():
                    d.received += await self._drain(d.client, 0.02)
                    have = {(m.conversation_id, m.seq) for m in d.received}
                    missing += [(d.user, d.device, place) for place, ack in self.acked.items()
                                if d.user in MEMBERS[self.kind(ack.conversation_id)] and place not in have]
                if not missing:
                    return
                assert self.loop.time() < deadline, f"never delivered: {missing[:5]}"
                await asyncio.sleep(0.05)
        self.run(settle(), SETTLE_S + 10)
        self.each_device_in_order_and_once()
        for d in self.devices.values():
            expected = sorted(p for p, a in self.acked.items() if d.user in MEMBERS[self.kind(a.conversation_id)])
            assert sorted((m.conversation_id, m.seq) for m in d.received) == expected  # exactly once

    def kind(self, conversation_id: str) -> str:
        return next(k for k, cid in self.conversation_ids.items() if cid == conversation_id)


NetworkChatModel.TestCase.settings = settings(
    max_examples=25, stateful_step_count=40, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestNetworkChatModel = NetworkChatModel.TestCase


def test_the_runs_delivered_many_messages() -> None:
    """Runs after the machine: the runs must have acknowledged (and so delivered and checked)
    a good number of messages, so a rule that silently stopped sending would be noticed."""
    if RUNS:
        print(f"network model: {sum(RUNS)} acknowledged messages in {len(RUNS)} runs, each checked "
              "on every member's device")
        assert sum(RUNS) >= 5 * len(RUNS), RUNS
