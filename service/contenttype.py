"""The content type of downloaded bytes, told by libmagic from the bytes themselves."""

from __future__ import annotations

from typing import IO

import magic

from service.imaging import CONTENT_TYPES, ImageRejectedError

SNIFF_BYTES = 16 * 1024
SUPPORTED = frozenset(CONTENT_TYPES.values())


def detect(file: IO[bytes]) -> str:
    """The image content type of `file`; ImageRejectedError when it is not a supported image."""
    position = file.tell()
    try:
        head = file.read(SNIFF_BYTES)
    finally:
        file.seek(position)
    found = magic.from_buffer(head, mime=True) if head else "application/x-empty"
    if found not in SUPPORTED:
        raise ImageRejectedError(
            f"The content is {found}, not a supported image (JPEG, PNG, GIF or WebP)."
        )
    return found
