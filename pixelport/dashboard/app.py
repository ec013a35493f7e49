"""`/dashboard`: server-rendered pages (Jinja2, htmx vendored in `static/`), no build step.

Log-in with a private key; the session is a signed cookie (Starlette's SessionMiddleware:
HttpOnly, SameSite=Strict) whose secret is derived from the private key, so every worker
process honours it; every form carries the session's CSRF token; failed log-ins are slowed
down (guard.py). Pages so far: overview, external storage (origins: list, add, test, delete),
URL endpoints (list, add, delete), the URL builder (live preview, signed URLs) and purge, over
the API's own code (library/accounts.py, api/purge.py), each change applied in every worker as
the API's are.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from pixelport import __version__
from pixelport.api.purge import PurgeApi, PurgeError
from pixelport.config import Config
from pixelport.dashboard.guard import LoginThrottle
from pixelport.errors import PixelportError
from pixelport.library.accounts import REWRITERS, Accounts
from pixelport.origins import imagekit_fields
from pixelport.origins.base import Origin
from pixelport.security.signing import sign_url
from pixelport.siblings import Unreachable

HERE = Path(__file__).resolve().parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
SESSION_HOURS = 8
Changed = Callable[[], Awaitable[None]]
# A folder's folders and files (MediaLibrary.listing): path, Host, scheme.
Listing = Callable[[str, str | None, str], Awaitable[list[dict[str, Any]]]]
UPLOAD_SIGNATURE_SECONDS = 600
ORIGINS, ENDPOINTS = "/dashboard/origins", "/dashboard/endpoints"


class Dashboard:
    """The dashboard's routes, over the accounts API's objects."""

    def __init__(self, config: Config, accounts: Accounts, changed: Changed,
                 configured: dict[str, Origin], purges: PurgeApi, listing: Listing) -> None:
        self.config = config
        self.purges = purges
        self.listing = listing
        self.accounts = accounts
        self.changed = changed  # applies an origin or endpoint change in every worker
        self.configured = configured
        self.throttle = LoginThrottle()

    # --- log-in -----------------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        """GET /dashboard/login."""
        return self.page(request, "login.html", error=None)

    async def login(self, request: Request) -> Response:
        """POST /dashboard/login: a private key, slowed down after failures."""
        client = request.client.host if request.client else "?"
        await self.throttle.wait(client)
        form = await request.form()
        given = str(form.get("key", ""))
        if not any(hmac.compare_digest(given.encode(), k.encode())
                   for k in self.config.security.keys):
            self.throttle.failed(client)
            return self.page(request, "login.html", status=401,
                             error="That key is not one of this server's private keys.")
        self.throttle.succeeded(client)
        request.session.clear()
        request.session.update(user="admin", csrf=secrets.token_urlsafe(24))
        return RedirectResponse("/dashboard", status_code=303)

    async def logout(self, request: Request) -> Response:
        """POST /dashboard/logout."""
        if (denied := await self.denied(request)) is not None:
            return denied
        request.session.clear()
        return RedirectResponse("/dashboard/login", status_code=303)

    async def denied(self, request: Request, form: Any = None) -> Response | None:
        """A redirect to the log-in page, or 403 for a form without the session's token."""
        if request.session.get("user") != "admin":
            return RedirectResponse("/dashboard/login", status_code=303)
        if request.method == "POST":
            form = form if form is not None else await request.form()
            token = str(form.get("csrf", ""))
            if not hmac.compare_digest(token.encode(),
                                       str(request.session.get("csrf", "")).encode()):
                return HTMLResponse("Forbidden: the form's token is missing or stale; reload "
                                    "the page.", status_code=403)
        return None

    def page(self, request: Request, name: str, status: int = 200, **values: Any) -> Response:
        """A template with what every page shows."""
        return TEMPLATES.TemplateResponse(request, name, {
            "version": __version__, "csrf": request.session.get("csrf", ""),
            "signed_in": request.session.get("user") == "admin", **values},
            status_code=status)

    # --- pages ------------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        """GET /dashboard."""
        if (denied := await self.denied(request)) is not None:
            return denied
        return self.page(request, "overview.html", origins=await self.accounts.origins(),
                         endpoints=await self.accounts.endpoints())

    async def origins(self, request: Request, error: str | None = None,
                      status: int = 200) -> Response:
        """GET /dashboard/origins: external storage."""
        if (denied := await self.denied(request)) is not None:
            return denied
        return self.page(request, "origins.html", status, origins=await self.accounts.origins(),
                         types=list(imagekit_fields.TYPES), fields=FORM_FIELDS, error=error)

    async def add_origin(self, request: Request) -> Response:
        """POST /dashboard/origins."""
        form = await request.form()
        if (denied := await self.denied(request, form)) is not None:
            return denied
        kind = str(form.get("type", ""))
        body: dict[str, Any] = {"type": kind, "name": str(form.get("name", "")).strip()}
        for field in imagekit_fields.FIELDS.get(kind, {}):
            if field in imagekit_fields.BOOLEANS:
                body[field] = form.get(field) == "on"
            elif field == "allowedHosts":
                hosts = [h.strip() for h in str(form.get(field, "")).split(",") if h.strip()]
                if hosts:
                    body[field] = hosts
            elif str(form.get(field, "")).strip():
                body[field] = str(form.get(field)).strip()
        return await self.change(request, self.accounts.create_origin(body), self.origins,
                                 ORIGINS)

    async def change(self, request: Request, work: Awaitable[object],
                     page: Callable[..., Awaitable[Response]], back: str) -> Response:
        """Make an origin or endpoint change, apply it in every worker, and go back to `back`;
        a refused change shows `page` again with the error (400)."""
        try:
            await work
        except PixelportError as error:
            return await page(request, error=error.message, status=400)
        await self.changed()
        return RedirectResponse(back, status_code=303)

    async def delete_origin(self, request: Request) -> Response:
        """POST /dashboard/origins/{id}/delete."""
        if (denied := await self.denied(request)) is not None:
            return denied
        return await self.change(
            request, self.accounts.delete_origin(request.path_params["origin_id"]),
            self.origins, ORIGINS)

    async def test_origin(self, request: Request) -> Response:
        """POST /dashboard/origins/{id}/test (htmx): the outcome, as a fragment."""
        form = await request.form()
        if (denied := await self.denied(request, form)) is not None:
            return denied
        try:
            report = await self.accounts.try_origin(request.path_params["origin_id"],
                                                    str(form.get("path", "")), self.configured)
        except PixelportError as error:
            report = {"ok": False, "ikError": error.header, "path": form.get("path", "")}
        return self.page(request, "origin_test.html", report=report)

    async def endpoints(self, request: Request, error: str | None = None,
                        status: int = 200) -> Response:
        """GET /dashboard/endpoints: URL endpoints."""
        if (denied := await self.denied(request)) is not None:
            return denied
        return self.page(request, "endpoints.html", status,
                         endpoints=await self.accounts.endpoints(),
                         origins=await self.accounts.origins(), rewriters=list(REWRITERS),
                         error=error)

    async def add_endpoint(self, request: Request) -> Response:
        """POST /dashboard/endpoints."""
        form = await request.form()
        if (denied := await self.denied(request, form)) is not None:
            return denied
        body: dict[str, Any] = {
            "description": str(form.get("description", "")),
            "urlPrefix": str(form.get("urlPrefix", "")).strip(),
            "origins": [str(v) for v in form.getlist("origins")],
            "domains": [d.strip() for d in str(form.get("domains", "")).split(",")
                        if d.strip()]}
        if form.get("urlRewriter"):
            body["urlRewriter"] = {"type": str(form.get("urlRewriter"))}
        return await self.change(request, self.accounts.save_endpoint(body), self.endpoints,
                                 ENDPOINTS)

    async def delete_endpoint(self, request: Request) -> Response:
        """POST /dashboard/endpoints/{id}/delete."""
        if (denied := await self.denied(request)) is not None:
            return denied
        return await self.change(
            request, self.accounts.delete_endpoint(request.path_params["endpoint_id"]),
            self.endpoints, ENDPOINTS)

    async def builder(self, request: Request) -> Response:
        """GET /dashboard/builder: the URL builder."""
        if (denied := await self.denied(request)) is not None:
            return denied
        prefixes = [e["urlPrefix"] for e in await self.accounts.endpoints()]
        return self.page(request, "builder.html", prefixes=prefixes, crops=BUILDER_CROPS,
                         formats=BUILDER_FORMATS)

    async def built_url(self, request: Request) -> Response:
        """GET /dashboard/builder/url (htmx): the URL of the form's settings, signed if asked,
        with a preview."""
        if (denied := await self.denied(request)) is not None:
            return denied
        form = request.query_params
        prefix = form.get("endpoint", "").strip("/")
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
            key = self.config.security.keys[0]
            url = sign_url(url, head, key, expires)
        return self.page(request, "built_url.html", url=url)

    async def purge_form(self, request: Request) -> Response:
        """GET /dashboard/purge."""
        if (denied := await self.denied(request)) is not None:
            return denied
        return self.page(request, "purge.html", result=None)

    async def purge(self, request: Request) -> Response:
        """POST /dashboard/purge: a URL, or a prefix ending in `*` (htmx or a plain form)."""
        form = await request.form()
        if (denied := await self.denied(request, form)) is not None:
            return denied
        url = str(form.get("url", "")).strip()
        try:
            request_id = await self.purges.purge_url(url)
            result = {"ok": True, "text": f"Purged {url} (request {request_id})."}
        except PurgeError as error:
            result = {"ok": False, "text": str(error)}
        except Unreachable:
            result = {"ok": False, "text": "Not every worker process answered: try again."}
        if request.headers.get("hx-request"):
            return self.page(request, "purge_result.html", result=result)
        return self.page(request, "purge.html", 200 if result["ok"] else 400, result=result)

    async def library(self, request: Request) -> Response:
        """GET /dashboard/library?path=/folder: folders, a grid of thumbnails, uploads."""
        if (denied := await self.denied(request)) is not None:
            return denied
        path = "/" + request.query_params.get("path", "/").strip("/")
        try:
            items = await self.listing(path, request.headers.get("host"),
                                       request.url.scheme)
        except PixelportError as error:
            items, path = [], "/"
            return self.page(request, "library.html", 400, items=items, path=path,
                             parent=None, error=error.message,
                             uploads=bool(self.config.security.public_key))
        parent = None if path == "/" else "/" + path.strip("/").rpartition("/")[0]
        return self.page(request, "library.html", items=items, path=path, parent=parent,
                         uploads=bool(self.config.security.public_key), error=None)

    async def upload_signature(self, request: Request) -> Response:
        """GET /dashboard/library/signature: ImageKit's client-side upload parameters (a
        single-use token, its expiry, their signature), for the page's uploads."""
        if (denied := await self.denied(request)) is not None:
            return denied
        public_key = self.config.security.public_key
        if not public_key:
            return JSONResponse({"message": "Set [security] public_key to upload from the "
                                            "dashboard."}, status_code=400)
        token = secrets.token_hex(16)
        expire = str(int(time.time()) + UPLOAD_SIGNATURE_SECONDS)
        key = self.config.security.keys[0]
        signature = hmac.new(key.encode(), (token + expire).encode(), hashlib.sha1).hexdigest()
        return JSONResponse({"token": token, "expire": expire, "signature": signature,
                             "publicKey": public_key},
                            headers={"cache-control": "no-store"})

    async def static(self, request: Request) -> Response:
        """GET /dashboard/static/{name}: the vendored htmx and the stylesheet."""
        name = request.path_params["name"]
        if name not in ("htmx.min.js", "dashboard.css", "upload.js"):
            return HTMLResponse("Not Found", status_code=404)
        return FileResponse(HERE / "static" / name,
                            headers={"cache-control": "public, max-age=3600"})


BUILDER_CROPS = ("maintain_ratio", "force", "at_max", "at_least")
BUILDER_FORMATS = ("auto", "jpg", "png", "webp", "avif")

# The add-origin form's fields, in order, with their help (ImageKit's field names).
FORM_FIELDS = [
    ("baseUrl", "Base URL", "WEB_FOLDER", "http(s)://host/folder: the file path is appended"),
    ("forwardHostHeaderToOrigin", "Forward the Host header", "WEB_FOLDER", ""),
    ("allowedHosts", "Allowed hosts", "WEB_PROXY",
     "comma-separated (images.example.com, *.example.org); empty: any public host"),
    ("bucket", "Bucket", "S3 S3_COMPATIBLE GCS", ""),
    ("prefix", "Prefix", "S3 S3_COMPATIBLE GCS AZURE_BLOB", "a folder inside the bucket"),
    ("region", "Region", "S3 S3_COMPATIBLE", "us-east-1 when empty"),
    ("endpoint", "Endpoint", "S3_COMPATIBLE AZURE_BLOB", "https://s3.example.com"),
    ("s3ForcePathStyle", "Path-style URLs", "S3_COMPATIBLE", "MinIO, bucket names with dots"),
    ("accessKey", "Access key", "S3 S3_COMPATIBLE", "stored encrypted, never shown again"),
    ("secretKey", "Secret key", "S3 S3_COMPATIBLE", "stored encrypted, never shown again"),
    ("clientEmail", "Client e-mail", "GCS", "the service account's"),
    ("privateKey", "Private key (PEM)", "GCS", "stored encrypted, never shown again"),
    ("accountName", "Account name", "AZURE_BLOB", ""),
    ("container", "Container", "AZURE_BLOB", ""),
    ("sasToken", "SAS token", "AZURE_BLOB", "read-only; stored encrypted, never shown again"),
]


def build_dashboard(config: Config, accounts: Accounts, changed: Changed,
                    configured: dict[str, Origin], purges: PurgeApi,
                    listing: Listing) -> Starlette:
    """The dashboard as an ASGI app, mounted at /dashboard."""
    board = Dashboard(config, accounts, changed, configured, purges, listing)
    key = (config.security.keys or ("",))[0]
    secret = hmac.new(key.encode(), b"pixelport dashboard session", hashlib.sha256).hexdigest()
    routes = [
        Route("/dashboard", board.overview, methods=["GET"]),
        Route("/dashboard/login", board.login_form, methods=["GET"]),
        Route("/dashboard/login", board.login, methods=["POST"]),
        Route("/dashboard/logout", board.logout, methods=["POST"]),
        Route("/dashboard/origins", board.origins, methods=["GET"]),
        Route("/dashboard/origins", board.add_origin, methods=["POST"]),
        Route("/dashboard/origins/{origin_id}/delete", board.delete_origin, methods=["POST"]),
        Route("/dashboard/origins/{origin_id}/test", board.test_origin, methods=["POST"]),
        Route("/dashboard/endpoints", board.endpoints, methods=["GET"]),
        Route("/dashboard/endpoints", board.add_endpoint, methods=["POST"]),
        Route("/dashboard/endpoints/{endpoint_id}/delete", board.delete_endpoint,
              methods=["POST"]),
        Route("/dashboard/library", board.library, methods=["GET"]),
        Route("/dashboard/library/signature", board.upload_signature, methods=["GET"]),
        Route("/dashboard/builder", board.builder, methods=["GET"]),
        Route("/dashboard/builder/url", board.built_url, methods=["GET"]),
        Route("/dashboard/purge", board.purge_form, methods=["GET"]),
        Route("/dashboard/purge", board.purge, methods=["POST"]),
        Route("/dashboard/static/{name}", board.static, methods=["GET"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(
        SessionMiddleware, secret_key=secret, session_cookie="pixelport_dashboard",
        max_age=SESSION_HOURS * 3600, same_site="strict", https_only=False)])
