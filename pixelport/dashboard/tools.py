"""The URL builder (live preview, signed URLs) and purge (the API's PurgeApi.purge_url)."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from pixelport.api.purge import PurgeError
from pixelport.dashboard.board import Dashboard
from pixelport.security.signing import sign_url
from pixelport.siblings import Unreachable

BUILDER_CROPS = ("maintain_ratio", "force", "at_max", "at_least")
BUILDER_FORMATS = ("auto", "jpg", "png", "webp", "avif")


class ToolPages:
    """The URL builder and purge."""

    def __init__(self, board: Dashboard) -> None:
        self.board = board

    def routes(self) -> list[Route]:
        """This group's routes."""
        return [
            Route("/dashboard/builder", self.builder, methods=["GET"]),
            Route("/dashboard/builder/url", self.built_url, methods=["GET"]),
            Route("/dashboard/purge", self.purge_form, methods=["GET"]),
            Route("/dashboard/purge", self.purge, methods=["POST"]),
        ]

    async def builder(self, request: Request) -> Response:
        """GET /dashboard/builder: the URL builder."""
        if (denied := await self.board.denied(request)) is not None:
            return denied
        endpoints = await self.board.media_of(request).accounts.endpoints()
        return self.board.page(request, "builder.html",
                               prefixes=[e["urlPrefix"] for e in endpoints],
                               crops=BUILDER_CROPS, formats=BUILDER_FORMATS)

    async def built_url(self, request: Request) -> Response:
        """GET /dashboard/builder/url (htmx): the URL of the form's settings, signed if asked,
        with a preview."""
        if (denied := await self.board.denied(request)) is not None:
            return denied
        form = request.query_params
        # The endpoint's prefix within the account, after the account's own (a sub-account's).
        prefix = self.board.account_of(request).identifier(form.get("endpoint", "").strip("/"))
        path = form.get("path", "").strip().lstrip("/")
        if not path:
            return HTMLResponse('<p class="help">Give a file path.</p>')
        steps = []
        for key in ("w", "h", "q"):
            value = form.get(key, "").strip()
            if value.isdigit() and int(value) > 0:
                steps.append(f"{key}-{value}")
        for key in ("c", "f"):
            if form.get(key, "") in (BUILDER_CROPS if key == "c" else BUILDER_FORMATS):
                steps.append(f"{key}-{form[key]}")
        base = f"{request.url.scheme}://{request.url.netloc}/"
        head = base + (f"{prefix}/" if prefix else "")
        url = head + path + (f"?tr={','.join(steps)}" if steps else "")
        if form.get("signed") == "on":
            seconds = form.get("expires", "").strip()
            expires = int(time.time()) + int(seconds) if seconds.isdigit() else None
            key = self.board.security_of(request).keys[0]
            url = sign_url(url, head, key, expires)
        return self.board.page(request, "built_url.html", url=url)

    async def purge_form(self, request: Request) -> Response:
        """GET /dashboard/purge."""
        if (denied := await self.board.denied(request)) is not None:
            return denied
        return self.board.page(request, "purge.html", result=None)

    async def purge(self, request: Request) -> Response:
        """POST /dashboard/purge: a URL, or a prefix ending in `*` (htmx or a plain form)."""
        form = await request.form()
        if (denied := await self.board.denied(request, form)) is not None:
            return denied
        url = str(form.get("url", "")).strip()
        try:
            request_id = await self.board.purges_of(request).purge_url(url)
            result = {"ok": True, "text": f"Purged {url} (request {request_id})."}
        except PurgeError as error:
            result = {"ok": False, "text": str(error)}
        except Unreachable:
            result = {"ok": False, "text": "Not every worker process answered: try again."}
        if request.headers.get("hx-request"):
            return self.board.page(request, "purge_result.html", result=result)
        return self.board.page(request, "purge.html", 200 if result["ok"] else 400,
                               result=result)
