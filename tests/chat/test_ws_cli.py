"""``python -m chatdesign token`` and ``serve``: a token on the last line, a 0600 secret, and a
clean stop on SIGINT (connections closed with 1001, the database closed). SIGTERM is what the
browser test uses to restart its server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chatdesign.chat import ChatServer
from chatdesign.chat.auth import SECRET_FILE
from chatdesign.cli import main

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def token_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["token", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_token_then_serve_then_a_clean_stop_on_sigint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    code, out, _ = token_cli(capsys, "erin", "phone", "--data", str(data), "--ttl", "1 h")
    token = out.strip().splitlines()[-1]
    assert code == 0 and "registered user erin" in out and token.count(".") == 1 and " " not in token
    assert stat.S_IMODE((data / SECRET_FILE).stat().st_mode) == 0o600
    assert "registered" not in token_cli(capsys, "erin", "laptop", "--data", str(data))[1]  # known: not twice
    token_cli(capsys, "frank", "phone", "--data", str(data))

    process = subprocess.Popen([sys.executable, "-m", "chatdesign", "serve", "--port", "0", "--data", str(data)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("chat server listening on http://127.0.0.1:"), line
        ws_url = line.split("(WebSocket ")[1].rstrip(")\n")

        async def session() -> int | None:
            async with connect(ws_url, proxy=None) as ws:
                await ws.send(json.dumps({"type": "auth", "token": token}))
                assert json.loads(await ws.recv())["user_id"] == "erin"
                await ws.send(json.dumps({"type": "send", "id": 1, "to": "frank", "content": "hi frank",
                                          "client_message_id": "k1"}))
                assert json.loads(await ws.recv())["type"] in ("ack", "message")
                process.send_signal(signal.SIGINT)
                with pytest.raises(ConnectionClosed):
                    while True:
                        await ws.recv()
                return ws.close_code
        assert asyncio.run(session()) == 1001
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0 and "chat server stopped" in out, err
    assert "Traceback" not in err
    with ChatServer(data / "chat.db") as chat:  # closed cleanly: the file opens, the message is there
        (item,) = chat.fetch_conversations("erin", 0, 5).items
        assert item.last_message_preview == "hi frank"


def test_token_and_serve_refuse_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = token_cli(capsys, "not a user", "phone", "--data", str(tmp_path))
    assert code == 2 and "error:" in err and "user_id" in err
    code, _, err = token_cli(capsys, "erin", "my phone", "--data", str(tmp_path))
    assert code == 2 and "device_id" in err
    assert main(["serve", "--host", "0.0.0.0", "--demo", "--data", str(tmp_path)]) == 2
    assert "loopback" in capsys.readouterr().err
