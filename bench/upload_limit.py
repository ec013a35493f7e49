"""The upload limit: the least a Python upload endpoint can do, to measure pixelport against.

A bare Starlette app with one route, `POST /api/v1/files/upload` (pixelport's path, so wrk
sends both the same request): it parses the multipart form with Starlette's
`await request.form()` (python-multipart underneath, as pixelport's own parser) and writes the
`file` part under a new name into a folder. No authentication, no image probe, no database, no
fsync, no JSON beyond a two-key answer. bench/run.py serves it with uvicorn (httptools, uvloop)
and pixelport's worker count:

    UPLOAD_LIMIT_DIR=/tmp/up .venv/bin/python -m uvicorn upload_limit:app --app-dir bench \
        --http httptools --loop uvloop --workers 1 --port 8099
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

FOLDER = Path(os.environ.get("UPLOAD_LIMIT_DIR") or tempfile.mkdtemp(prefix="upload-limit-"))


async def upload(request: Request) -> JSONResponse:
    """Parse the form and write its `file` part to FOLDER under a name of its own."""
    async with request.form() as form:
        part = form.get("file")
        if not isinstance(part, UploadFile):
            return JSONResponse({"message": "Missing file parameter for upload"}, 400)
        data = await part.read()  # 200 KB stays in Starlette's spooled (in-memory) file
        name = f"{secrets.token_hex(12)}.bin"  # every upload kept, as a library keeps them
        # Written from the event loop: on tmpfs this is a memory copy, and a thread hop
        # would cost more than it saves (pixelport's parser writes in the loop as well).
        (FOLDER / name).write_bytes(data)
    return JSONResponse({"name": name, "size": len(data)})


FOLDER.mkdir(parents=True, exist_ok=True)
app = Starlette(routes=[Route("/api/v1/files/upload", upload, methods=["POST"])])
