"""pixelport.api.multipart: the `file` part in memory up to MEMORY_PART, in a file past it, the
upload limit at the chunk that crosses it, one file per upload."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pixelport.api.multipart import MEMORY_PART, Form, read_form
from pixelport.errors import ApiError, UploadTooLarge

BOUNDARY = "pixelporttestboundary"
TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def body(fields: dict[str, str], file: bytes | None, files: int = 1) -> bytes:
    """A multipart body of text fields and `files` copies of a binary `file` part."""
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
             .encode() for k, v in fields.items()]
    for _ in range(files if file is not None else 0):
        assert file is not None
        parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
                     'filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
                     + file + b"\r\n")
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def parse(tmp_path: Path, data: bytes, chunk: int = 65536,
          limit: int = 10 * MEMORY_PART) -> tuple[Form, list[Path]]:
    made: list[Path] = []

    def temporary() -> Path:
        made.append(tmp_path / f"part-{len(made)}")
        return made[-1]

    form = asyncio.run(read_form(TYPE, chunks(data, chunk), temporary, limit))
    return form, made


@settings(max_examples=40, deadline=None)
@given(size=st.sampled_from([1, 1000, MEMORY_PART - 1, MEMORY_PART, MEMORY_PART + 1,
                             3 * MEMORY_PART]),
       chunk=st.sampled_from([1000, 65536, 10**7]))
def test_file_part_in_memory_or_in_a_file(tmp_path_factory: pytest.TempPathFactory,
                                          size: int, chunk: int) -> None:
    tmp_path = tmp_path_factory.mktemp("form")
    data = random.Random(size).randbytes(size)
    form, made = parse(tmp_path, body({"fileName": "a.jpg", "folder": "/x"}, data), chunk)
    assert form.fields == {"fileName": "a.jpg", "folder": "/x"}
    if size <= MEMORY_PART:
        assert form.file_data == data and form.file_path is None and made == []
    else:
        assert form.file_data is None and form.file_path == made[0]
        assert made[0].read_bytes() == data
    assert form.file == data or (isinstance(form.file, Path) and form.file.read_bytes() == data)
    form.discard()
    assert form.file is None and not any(p.exists() for p in made)


@pytest.mark.parametrize("size", [MEMORY_PART // 2, 3 * MEMORY_PART])
def test_past_the_limit_is_413_and_nothing_is_left(tmp_path: Path, size: int) -> None:
    data = bytes(size + 1)
    with pytest.raises(UploadTooLarge):
        parse(tmp_path, body({"fileName": "a.jpg"}, data), limit=size)
    assert list(tmp_path.iterdir()) == []


def test_one_file_per_upload(tmp_path: Path) -> None:
    with pytest.raises(ApiError, match="one file"):
        parse(tmp_path, body({}, b"abc", files=2))
    with pytest.raises(ApiError, match="one file"):
        parse(tmp_path, body({}, bytes(MEMORY_PART + 10), files=2))
    assert list(tmp_path.iterdir()) == []


def test_file_as_a_text_field_is_not_the_file_part(tmp_path: Path) -> None:
    form, made = parse(tmp_path, body({"file": "aGVsbG8=", "fileName": "h.txt"}, None))
    assert form.file is None and form.fields["file"] == "aGVsbG8=" and made == []
