"""Pieces shared by the API modules of the Google emulator."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TypeVar

import grpc

T = TypeVar("T")


class EmuError(Exception):
    """Raised by an API implementation; the server turns it into a gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> EmuError:
    return EmuError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> EmuError:
    return EmuError(grpc.StatusCode.NOT_FOUND, message)


def paginate(items: Sequence[T], page_size: int, page_token: str, *,
             default_size: int, max_size: int) -> tuple[list[T], str]:
    """One page of ``items`` and the token for the next ("" when none).

    Tokens are plain offsets: every list here is re-sorted on each call, so an
    offset into the same order is enough and keeps tokens debuggable.
    """
    if page_size < 0:
        raise invalid(f"page_size must not be negative, got {page_size}")
    size = min(page_size or default_size, max_size)
    start = 0
    if page_token:
        if not page_token.startswith("o:") or not page_token[2:].isdigit():
            raise invalid(f"invalid page_token {page_token!r}")
        start = int(page_token[2:])
    end = start + size
    page = list(items[start:end])
    return page, (f"o:{end}" if end < len(items) else "")


def stable_uid(name: str) -> str:
    """A uid that stays the same for the same resource across calls and runs."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli), as Secret Manager reports it; google-crc32c isn't a dependency."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
