"""Attachments: content-addressed files with size and type limits.

An attachment's id is the sha256 of its bytes, so the same photo uploaded twice is stored once
(deduplicated) and an id can never point at other content. The bytes live in a file named
after the id under the server's data directory (``attachments/ab/abcdef...``); the uploader's
filename is kept only as metadata and never becomes part of a filesystem path.

Limits: :data:`DEFAULT_MAX_ATTACHMENT_BYTES` (25 MB) and :data:`ALLOWED_CONTENT_TYPES` (images
and common documents). For the binary formats whose first bytes are fixed (PNG, JPEG, GIF,
WebP, PDF), the bytes must match the declared type.

Taught in ``notebooks/02_chat_api.ipynb``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from chatdesign.chat.core import shown, validate_text
from chatdesign.chat.errors import InvalidRequest, NotFound
from chatdesign.checks import check_whole

DEFAULT_MAX_ATTACHMENT_BYTES: Final = 25_000_000
"""25 MB, decimal (the usual messenger limit for documents)."""

ALLOWED_CONTENT_TYPES: Final = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "image/heic",
        "application/pdf",
        "text/plain",
        "text/csv",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/zip",
    }
)
"""Images and common documents; anything else (executables, HTML, scripts) is refused."""

_MAGIC: Final = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "application/pdf": (b"%PDF-",),
}


@dataclass(frozen=True)
class AttachmentInfo:
    """An uploaded attachment's metadata; ``size_bytes`` is the length of its content."""

    attachment_id: str
    size_bytes: int
    content_type: str
    filename: str

    def __post_init__(self) -> None:
        if len(self.attachment_id) != 64:
            raise ValueError("attachment_id is a sha256 hex digest (64 characters)")
        check_whole(self.size_bytes, "size_bytes")


@dataclass(frozen=True)
class Attachment:
    """A fetched attachment: its metadata and its bytes."""

    info: AttachmentInfo
    data: bytes

    def __post_init__(self) -> None:
        if len(self.data) != self.info.size_bytes:
            raise ValueError("data does not have the size the metadata records")

    def __repr__(self) -> str:
        i = self.info
        return f"Attachment({i.filename!r}, {i.content_type}, {i.size_bytes:,} bytes)"


def attachment_id_of(data: bytes) -> str:
    """The id of some content: its sha256 as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()


def check_upload(
    data: object, content_type: object, filename: object, max_bytes: int
) -> AttachmentInfo:
    """Validate an upload and describe it; raises :class:`InvalidRequest` saying what is wrong."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidRequest(f"data must be bytes, got {type(data).__name__}")
    content = bytes(data)
    if not content:
        raise InvalidRequest("an attachment cannot be empty")
    if len(content) > max_bytes:
        raise InvalidRequest(
            f"the attachment is {len(content):,} bytes; the limit is {max_bytes:,} bytes"
        )
    if not isinstance(content_type, str) or content_type not in ALLOWED_CONTENT_TYPES:
        allowed = ", ".join(sorted(ALLOWED_CONTENT_TYPES))
        raise InvalidRequest(f"content type {shown(content_type)} is not allowed; allowed: {allowed}")
    magics = _MAGIC.get(content_type)
    if magics is not None and not content.startswith(magics):
        raise InvalidRequest(f"the bytes do not look like {content_type} (wrong file signature)")
    if content_type == "image/webp" and not (content[:4] == b"RIFF" and content[8:12] == b"WEBP"):
        raise InvalidRequest("the bytes do not look like image/webp (wrong file signature)")
    name = validate_text(filename, "filename", 255)
    if "/" in name or "\\" in name or name in (".", ".."):
        raise InvalidRequest(f"filename {name!r} must be a plain name without path separators")
    return AttachmentInfo(attachment_id_of(content), len(content), content_type, name)


class AttachmentFiles:
    """Attachment bytes as files under ``directory``, named by their id only."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return "AttachmentFiles(<data directory>/attachments)"

    def _path(self, attachment_id: str) -> Path:
        if len(attachment_id) != 64 or any(c not in "0123456789abcdef" for c in attachment_id):
            raise NotFound(f"{attachment_id!r} is not an attachment id")
        return self.directory / attachment_id[:2] / attachment_id

    def put(self, attachment_id: str, data: bytes) -> None:
        """Store the bytes (atomically: a temp file renamed into place); a no-op if present."""
        path = self._path(attachment_id)
        if path.exists():
            return
        path.parent.mkdir(exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(handle, "wb") as temp:
                temp.write(data)
                temp.flush()
                os.fsync(temp.fileno())
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise

    def get(self, attachment_id: str) -> bytes:
        """The stored bytes; :class:`NotFound` if the file is missing."""
        path = self._path(attachment_id)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"attachment {attachment_id} has no stored file") from None

    def total_bytes(self) -> tuple[int, int]:
        """(number of files, their total size in bytes)."""
        sizes = [p.stat().st_size for p in self.directory.glob("??/*") if p.is_file()]
        return len(sizes), sum(sizes)
