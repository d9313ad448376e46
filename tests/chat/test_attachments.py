"""Attachment validation and the content-addressed file directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatdesign.chat import ALLOWED_CONTENT_TYPES, Attachment, AttachmentInfo, InvalidRequest, NotFound
from chatdesign.chat.attachments import AttachmentFiles, attachment_id_of, check_upload

PNG = b"\x89PNG\r\n\x1a\nrest"


def test_check_upload_describes_a_good_file() -> None:
    info = check_upload(PNG, "image/png", "cat.png", 1000)
    assert info == AttachmentInfo(attachment_id_of(PNG), len(PNG), "image/png", "cat.png")


@pytest.mark.parametrize(
    ("data", "content_type", "filename", "match"),
    [
        (b"", "text/plain", "a.txt", "cannot be empty"),
        ("text", "text/plain", "a.txt", "must be bytes"),
        (b"x" * 1001, "text/plain", "a.txt", "limit is 1,000 bytes"),
        (b"<script>", "text/html", "a.html", "'text/html' is not allowed"),
        (b"not a png", "image/png", "a.png", "do not look like image/png"),
        (b"RIFF1234WAVE", "image/webp", "a.webp", "do not look like image/webp"),
        (PNG, "image/png", "dir/a.png", "path separators"),
        (PNG, "image/png", "..", "path separators"),
        (PNG, "image/png", "", "filename must not be empty"),
    ],
)
def test_check_upload_errors(data: object, content_type: str, filename: str, match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        check_upload(data, content_type, filename, 1000)


def test_allowed_types_are_images_and_documents() -> None:
    assert {"image/jpeg", "image/png", "application/pdf"} <= ALLOWED_CONTENT_TYPES
    assert not any(t.startswith(("text/html", "application/x-")) for t in ALLOWED_CONTENT_TYPES)


def test_files_by_id(tmp_path: Path) -> None:
    files = AttachmentFiles(tmp_path / "attachments")
    attachment_id = attachment_id_of(PNG)
    files.put(attachment_id, PNG)
    files.put(attachment_id, PNG)  # a second upload of the same content is a no-op
    assert files.get(attachment_id) == PNG
    assert files.total_bytes() == (1, len(PNG))
    assert (tmp_path / "attachments" / attachment_id[:2] / attachment_id).is_file()
    with pytest.raises(NotFound, match="no stored file"):
        files.get("f" * 64)
    with pytest.raises(NotFound, match="not an attachment id"):
        files.get("../../etc/passwd")


def test_attachment_value_checks_size() -> None:
    info = AttachmentInfo(attachment_id_of(PNG), len(PNG), "image/png", "cat.png")
    assert repr(Attachment(info, PNG)) == "Attachment('cat.png', image/png, 12 bytes)"
    with pytest.raises(ValueError, match="size"):
        Attachment(info, PNG + b"!")
    with pytest.raises(ValueError, match="sha256"):
        AttachmentInfo("abc", 1, "text/plain", "a.txt")
