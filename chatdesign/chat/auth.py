"""Tokens: HMAC-SHA256 over (user, device, expiry) with a secret kept in the data directory.

A token is ``<payload>.<signature>``, both URL-safe base64 without padding: the payload is the
JSON ``[user_id, device_id, expires_at]`` (seconds since the epoch), the signature is
HMAC-SHA256 of the payload bytes under the server's secret. Verifying recomputes the HMAC and
compares in constant time (``hmac.compare_digest``), then checks the expiry against the clock
passed in. Anyone with the secret can mint tokens, so the secret file is created with mode 0600
and never leaves the directory. A token is a bearer credential: whoever holds it is that device
until it expires (there is no revocation list in this small design).

Taught in ``notebooks/06_connections.ipynb``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import os
import secrets
from pathlib import Path

from chatdesign.chat.core import validate_device_id, validate_user_id
from chatdesign.chat.errors import ChatError
from chatdesign.chat.protocol import AuthenticationFailed, Identity
from chatdesign.clock import Clock

SECRET_FILE = "token-secret.key"
"""The secret's file name inside the data directory."""

DEFAULT_TOKEN_TTL_S = 30 * 24 * 3600.0
"""How long a token is valid by default: 30 days."""


def load_or_create_secret(data_dir: str | Path) -> bytes:
    """The directory's 32-byte secret, created (mode 0600, atomically) on first use."""
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / SECRET_FILE
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes()
        if len(secret) < 32:
            raise ValueError(f"{path} holds {len(secret)} bytes; a secret needs 32") from None
        return secret
    secret = secrets.token_bytes(32)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(secret)
        handle.flush()
        os.fsync(handle.fileno())
    return secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenAuthority:
    """Issues and verifies tokens with one secret; ``clock`` returns seconds since the epoch."""

    def __init__(self, secret: bytes, clock: Clock) -> None:
        if not isinstance(secret, bytes) or len(secret) < 32:
            raise ValueError("the token secret must be at least 32 bytes")
        if not callable(clock):
            raise ValueError("clock must be a callable returning seconds")
        self._secret = secret
        self._clock = clock

    def __repr__(self) -> str:
        return "TokenAuthority(<secret hidden>)"

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()

    def issue(self, user_id: str, device_id: str, ttl_s: float = DEFAULT_TOKEN_TTL_S) -> str:
        """A token for ``device_id`` of ``user_id``, valid for ``ttl_s`` seconds from now."""
        user = validate_user_id(user_id)
        device = validate_device_id(device_id)
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float) or not (
                math.isfinite(ttl_s) and ttl_s > 0):
            raise ValueError(f"ttl_s must be a positive number of seconds, got {ttl_s!r}")
        expires_at = round(float(self._clock()) + float(ttl_s), 3)
        payload = json.dumps([user, device, expires_at], separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def verify(self, token: str) -> Identity:
        """The :class:`Identity` a token proves, or :class:`AuthenticationFailed` (forged,
        altered, malformed or expired)."""
        if not isinstance(token, str) or token.count(".") != 1 or len(token) > 1024:
            raise AuthenticationFailed("malformed token")
        encoded_payload, encoded_signature = token.split(".")
        try:
            payload = _unb64(encoded_payload)
            signature = _unb64(encoded_signature)
        except (binascii.Error, ValueError):
            raise AuthenticationFailed("malformed token") from None
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise AuthenticationFailed("invalid token signature")
        try:
            user, device, expires_at = json.loads(payload)
            identity = Identity(validate_user_id(user), validate_device_id(device), float(expires_at))
        except (ValueError, TypeError, ChatError):
            raise AuthenticationFailed("malformed token") from None
        if identity.expires_at <= float(self._clock()):
            raise AuthenticationFailed("the token has expired")
        return identity
