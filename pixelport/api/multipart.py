"""Upload bodies: multipart/form-data streamed by python-multipart, every part counted as it
arrives.

The `file` part stays in memory up to MEMORY_PART bytes (most uploads: photos of a few
hundred KB) and is written to a temporary file of the library's storage once it grows past
that. Kept in memory, its bytes reach the disk in one write from a worker thread
(`Storage.write`) instead of a write per chunk from the event loop: every such system call
gives up the GIL, and under load the loop then waits for it behind the database and file
threads (uploads/s went up by a quarter without them).

An upload larger than `[limits] max_upload_bytes` is refused (UploadTooLarge, 413) at the
chunk that crosses the limit, never after the whole body is in; text fields are kept in
memory up to a cap of their own (a base64 `file` field may be 4/3 the upload limit).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import parse_qs

from python_multipart.multipart import MultipartParser, parse_options_header

from pixelport.errors import ApiError, UploadTooLarge

MAX_FIELD = 1024 * 1024  # any text field but `file`
MAX_FIELDS = 200
MEMORY_PART = 1024 * 1024  # a larger `file` part goes to a temporary file as it arrives


@dataclass
class Form:
    """A parsed upload form: text fields, and the file part (in memory or in a file)."""

    fields: dict[str, str] = field(default_factory=dict)
    file_path: Path | None = None  # the binary `file` part, when it was written to a file
    file_data: bytes | None = None  # the binary `file` part, when it was kept in memory
    file_name: str | None = None  # the part's own filename=, when it had one

    @property
    def file(self) -> Path | bytes | None:
        """The binary `file` part, wherever it is (None: `file` was a text field or absent)."""
        return self.file_data if self.file_data is not None else self.file_path

    def discard(self) -> None:
        """Remove the temporary file (nothing of a refused upload is kept)."""
        if self.file_path is not None:
            self.file_path.unlink(missing_ok=True)
            self.file_path = None
        self.file_data = None


async def read_form(content_type: str, body: AsyncIterator[bytes],
                    temporary: Callable[[], Path], max_upload: int) -> Form:
    """Parse a multipart body; a binary `file` part past MEMORY_PART goes to a file named by
    `temporary()`."""
    kind, options = parse_options_header(content_type)
    if kind == b"application/x-www-form-urlencoded":
        return await _read_urlencoded(body, max_upload)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise ApiError("Send the upload as multipart/form-data.")
    state = _State(temporary, max_upload)
    parser = MultipartParser(boundary, {
        "on_part_begin": state.part_begin, "on_part_data": state.part_data,
        "on_part_end": state.part_end, "on_header_field": state.header_field,
        "on_header_value": state.header_value, "on_header_end": state.header_end,
        "on_headers_finished": state.headers_finished,
    })
    try:
        async for chunk in body:
            parser.write(chunk)
            if state.error is not None:
                raise state.error
        parser.finalize()
        if state.error is not None:
            raise state.error
    except BaseException:
        state.close()
        state.form.discard()
        raise
    state.close()
    return state.form


async def _read_urlencoded(body: AsyncIterator[bytes], max_upload: int) -> Form:
    """A form of text fields only (`file` as base64 or a URL), within the upload limit."""
    cap = max_upload * 4 // 3 + MAX_FIELD
    chunks: list[bytes] = []
    size = 0
    async for chunk in body:
        size += len(chunk)
        if size > cap:
            raise UploadTooLarge(f"The file is larger than the upload limit of {max_upload} "
                                 "bytes.")
        chunks.append(chunk)
    fields = parse_qs(b"".join(chunks).decode("utf-8", "replace"), keep_blank_values=True)
    if len(fields) > MAX_FIELDS:
        raise ApiError("Too many form fields.")
    return Form(fields={k: v[-1] for k, v in fields.items()})


class _State:
    """python-multipart's callbacks, building a Form."""

    def __init__(self, temporary: Callable[[], Path], max_upload: int) -> None:
        self.form = Form()
        self.temporary = temporary
        self.max_upload = max_upload
        self.error: ApiError | None = None
        self.headers: dict[bytes, bytes] = {}
        self.header_name = b""
        self.header_value_ = b""
        self.name = ""
        self.data: bytearray | None = None  # a text field, or the file part while in memory
        self.in_memory = False  # self.data holds the file part
        self.writer: IO[bytes] | None = None  # the file part, once past MEMORY_PART
        self.size = 0
        self.cap = MAX_FIELD

    def part_begin(self) -> None:
        self.headers = {}

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value_ += data[start:end]

    def header_end(self) -> None:
        self.headers[self.header_name.lower()] = self.header_value_
        self.header_name, self.header_value_ = b"", b""

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = options.get(b"name", b"").decode("utf-8", "replace")
        self.size = 0
        if len(self.form.fields) >= MAX_FIELDS:
            self.error = self.error or ApiError("Too many form fields.")
        if self.name == "file" and b"filename" in options:
            if self.form.file is not None or self.in_memory or self.writer is not None:
                self.error = self.error or ApiError("Send one file per upload.")
                return
            self.form.file_name = options[b"filename"].decode("utf-8", "replace")
            self.data = bytearray()
            self.in_memory = True
        else:
            self.data = bytearray()
            # A base64 file is 4/3 of its bytes, plus a data: prefix.
            self.cap = (self.max_upload * 4 // 3 + 256) if self.name == "file" else MAX_FIELD

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        self.size += end - start
        if self.in_memory or self.writer is not None:
            if self.size > self.max_upload:
                self.error = UploadTooLarge(
                    f"The file is larger than the upload limit of {self.max_upload} bytes.")
                return
            if self.writer is not None:
                self.writer.write(data[start:end])
                return
            assert self.data is not None
            self.data += data[start:end]
            if len(self.data) > MEMORY_PART:  # from now on, into a file as it arrives
                self.form.file_path = self.temporary()
                self.writer = self.form.file_path.open("wb")
                self.writer.write(self.data)
                self.data, self.in_memory = None, False
        elif self.data is not None:
            if self.size > self.cap:
                self.error = (UploadTooLarge(f"The file is larger than the upload limit of "
                                             f"{self.max_upload} bytes.")
                              if self.name == "file" else
                              ApiError(f"The field {self.name} is longer than 1 MB."))
                return
            self.data += data[start:end]

    def part_end(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        elif self.in_memory:
            self.form.file_data = bytes(self.data or b"")
            self.data, self.in_memory = None, False
        elif self.data is not None:
            self.form.fields[self.name] = self.data.decode("utf-8", "replace")
            self.data = None

    def close(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(OSError):
                self.writer.close()
            self.writer = None
