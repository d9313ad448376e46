"""The chat page end to end in a real headless Chromium: two people chat, see each other's
messages, seen ticks and presence; the server restarts and both pages resync with no message
lost and none shown twice. Screenshots go to ``tests/browser/screenshots/`` (ignored by git)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatdesign.chat.client import ChatClient
from chatdesign.services import CHROMIUM_ARGS, free_port

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")

SHOTS = Path(__file__).parent / "screenshots"


class Server:
    """``python -m chatdesign serve --demo`` in a subprocess, restartable on the same port."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chatdesign", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--data", str(self.data), "--demo"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert f"listening on {self.url}" in line, (line, self.process.stderr.read() if self.process.stderr else "")

    def stop(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=15)
        assert self.process.returncode == 0, err
        assert "chat server stopped" in out and "Traceback" not in err


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path / "data")
    running.start()
    yield running
    if running.process is not None and running.process.poll() is None:
        running.process.kill()
        running.process.wait()


def bubbles(page: playwright_api.Page) -> list[str]:
    """The texts of the delivered messages shown in the open conversation, in order."""
    return page.locator("#messages .row-msg[data-seq] .text").all_inner_texts()


def open_chat(page: playwright_api.Page, title: str) -> None:
    page.locator(".conversation", has=page.locator(".title", has_text=title)).click()
    playwright_api.expect(page.locator("#chat-title")).to_have_text(title)


def send(page: playwright_api.Page, text: str) -> None:
    page.locator("#composer-input").fill(text)
    page.locator("#composer-input").press("Enter")


def dave_posts(url: str, data: Path, texts: list[str]) -> None:
    token = subprocess.run([sys.executable, "-m", "chatdesign", "token", "dave", "script", "--data", str(data)],
                           capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]

    async def post() -> None:
        async with ChatClient.connect(url, token) as dave:
            group = next(i["conversation_id"] for i in (await dave.fetch_conversations())["items"]
                         if i["kind"] == "group")
            for text in texts:
                await dave.send(group, text)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # Playwright's loop runs in this thread
        pool.submit(asyncio.run, post()).result(timeout=30)


def test_two_people_chat_and_survive_a_server_restart(server: Server, chromium_executable: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    expect = playwright_api.expect
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable, args=list(CHROMIUM_ARGS))
        pages = {}
        for user in ("alice", "bob"):
            context = browser.new_context(viewport={"width": 1100, "height": 700})
            page = context.new_page()
            page.goto(server.url)
            page.locator(f"[data-testid=login-{user}]").click()
            expect(page.locator("#app")).to_be_visible()
            pages[user] = page
        alice, bob = pages["alice"], pages["bob"]
        expect(alice.locator(".conversation")).to_have_count(2)  # the demo 1:1 and the group
        open_chat(alice, "Bob")
        open_chat(bob, "Alice")
        history = ["Hi Bob! Are you around this weekend?", "Hey! Yes, Saturday works."]
        expect(alice.locator("#messages .row-msg[data-seq] .text")).to_have_text(history)

        # presence: each sees the other online (pushed in a batch by the presence service)
        expect(alice.locator("#chat-avatar .presence-dot")).to_have_attribute("data-status", "online", timeout=15_000)
        expect(bob.locator("#chat-avatar .presence-dot")).to_have_attribute("data-status", "online", timeout=15_000)

        send(alice, "Lunch at noon?")
        expect(bob.locator("#messages .row-msg[data-seq] .text").last).to_have_text("Lunch at noon?")
        # bob has the conversation open, so he has seen it: alice's tick turns to "seen"
        expect(alice.locator(".row-msg.mine .tick").last).to_have_class("tick seen")
        send(bob, "Sure, see you there")
        expect(alice.locator("#messages .row-msg[data-seq] .text").last).to_have_text("Sure, see you there")
        alice.screenshot(path=str(SHOTS / "alice-chat.png"))
        bob.screenshot(path=str(SHOTS / "bob-chat.png"))

        # the server goes away; alice writes while it is down (the page keeps the send)
        server.stop()
        expect(alice.locator("#status-banner")).to_be_visible()
        send(alice, "Are you still there?")
        expect(alice.locator(".row-msg.pending")).to_have_count(1)
        alice.screenshot(path=str(SHOTS / "alice-offline.png"))
        server.start()
        dave_posts(server.url.replace("http", "ws") + "ws", server.data, ["back online?", "yes, all good"])

        expected = [*history, "Lunch at noon?", "Sure, see you there", "Are you still there?"]
        for page in (alice, bob):
            expect(page.locator("#status-banner")).to_be_hidden(timeout=15_000)
            expect(page.locator("#messages .row-msg[data-seq] .text")).to_have_text(expected, timeout=15_000)
        expect(alice.locator(".row-msg.pending")).to_have_count(0)
        for page in (alice, bob):
            open_chat(page, "Weekend trip")
            texts = page.locator("#messages .row-msg[data-seq] .text")
            expect(texts.last).to_have_text("yes, all good", timeout=15_000)
            shown = texts.all_inner_texts()
            assert shown.count("back online?") == 1 and shown.count("yes, all good") == 1
            seqs = page.locator("#messages .row-msg[data-seq]").evaluate_all("rows => rows.map(r => +r.dataset.seq)")
            assert seqs == list(range(1, len(seqs) + 1))  # every message once, in order, none missing
        expect(alice.locator("#messages img")).to_have_count(1)  # carol's picture, inline
        assert alice.locator("#messages img").evaluate("img => img.naturalWidth") == 96
        time.sleep(0.2)
        alice.screenshot(path=str(SHOTS / "alice-group.png"))
        browser.close()
    assert SHOTS.joinpath("alice-group.png").stat().st_size > 0
