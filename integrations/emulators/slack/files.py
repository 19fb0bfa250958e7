"""Slack's file upload flow, as `files_upload_v2` drives it:

1. `files.getUploadURLExternal` (filename, length) → an `upload_url` and a `file_id`;
2. the bytes POSTed to that URL (any body: raw, or a multipart form's one file),
   refused unless exactly `length` bytes;
3. `files.completeUploadExternal` (files=[{id, title}], channel_id, thread_ts,
   initial_comment) shares them: a message in the channel (or thread) whose `files`
   list names each file.

Errors are Slack's: `invalid_arguments`, `file_not_found` (unknown or not yet
uploaded), `channel_not_found`, `not_in_channel`. The bytes are kept, for tests and
the shell sandbox to read back (`SlackFiles.content`).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import mimetypes
import time
from typing import Any

from aiohttp import web

MAX_FILE_BYTES = 1024 * 1024 * 1024  # Slack's limit: 1 GB


class FileError(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclasses.dataclass
class EmuFile:
    id: str
    name: str
    length: int
    created: int
    content: bytes | None = None  # None until uploaded
    title: str = ""
    shared_in: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (channel, ts)

    @property
    def mimetype(self) -> str:
        return mimetypes.guess_type(self.name)[0] or "application/octet-stream"

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "title": self.title or self.name,
                "mimetype": self.mimetype, "size": self.length, "created": self.created,
                "filetype": self.name.rsplit(".", 1)[-1] if "." in self.name else "binary"}


class SlackFiles:
    """The workspace's files, from upload URL to shared message."""

    def __init__(self) -> None:
        self.files: dict[str, EmuFile] = {}
        self._ids = itertools.count(1)
        self.upload_base = ""  # "<emulator base URL>/upload", set when it starts

    def content(self, file_id: str) -> bytes | None:
        found = self.files.get(file_id)
        return None if found is None else found.content

    def upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        name = str(args.get("filename") or "").strip()
        try:
            length = int(str(args.get("length", "")))
        except ValueError:
            raise FileError("invalid_arguments") from None
        if not name or not 0 < length <= MAX_FILE_BYTES:
            raise FileError("invalid_arguments")
        file = EmuFile(id=f"F{next(self._ids):08d}", name=name, length=length,
                       created=int(time.time()))
        self.files[file.id] = file
        return {"upload_url": f"{self.upload_base}/{file.id}", "file_id": file.id}

    async def receive(self, request: web.Request) -> web.Response:
        """The upload URL: the bytes, as the body or as a multipart form's file."""
        file = self.files.get(request.match_info["file_id"])
        if file is None:
            return web.Response(status=404, text="unknown upload url")
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            parts = [v for v in form.values() if isinstance(v, web.FileField)]
            body = parts[0].file.read() if parts else b""
        else:
            body = await request.read()
        if len(body) != file.length:
            return web.Response(status=400, text=f"expected {file.length} bytes, "
                                                 f"got {len(body)}")
        file.content = body
        return web.Response(status=200, text=f"OK - {len(body)}")

    def to_share(self, args: dict[str, Any]) -> list[EmuFile]:
        """The files `files.completeUploadExternal` names, each uploaded, titled."""
        raw = args.get("files")
        try:
            wanted = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            raise FileError("invalid_arguments") from None
        if not isinstance(wanted, list) or not wanted:
            raise FileError("invalid_arguments")
        out: list[EmuFile] = []
        for entry in wanted:
            file = self.files.get(str(entry.get("id"))) if isinstance(entry, dict) else None
            if file is None or file.content is None:
                raise FileError("file_not_found")
            file.title = str(entry.get("title") or file.name)
            out.append(file)
        return out
