"""The dashboard's core: log-in, the session's guard, page rendering, and the per-account
objects every page reaches through `media_of` and `purges_of`.

Log-in with a private key of any account (or `[dashboard] password`, the default account's):
the session remembers which, and every page shows and changes that account's objects only
(sub-accounts, pixelport/tenancy.py); the session is a signed cookie
(Starlette's SessionMiddleware: HttpOnly, SameSite=Strict) whose secret is derived from the
private key, so every worker process honours it; every form carries the session's CSRF token;
failed log-ins are slowed down (guard.py).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from pixelport import __version__
from pixelport.api.purge import PurgeApi
from pixelport.config import Config
from pixelport.dashboard.guard import LoginThrottle
from pixelport.errors import PixelportError
from pixelport.origins.base import Origin
from pixelport.siblings import Unreachable

if TYPE_CHECKING:
    from pixelport.config import AccountConfig, SecurityConfig
    from pixelport.delivery.account import Account
    from pixelport.figures import Figures
    from pixelport.library_app import MediaLibrary
    from pixelport.tenancy import Tenant

# Makes a sub-account (name, prefix, domains) in every worker: app.App.create_account.
CreateAccount = Callable[[str, str, list[str]], Awaitable["AccountConfig"]]

HERE = Path(__file__).resolve().parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
STATIC = ("htmx.min.js", "dashboard.css", "upload.js")
Page = Callable[..., Awaitable[Response]]
Applied = Callable[[], Awaitable[None]]  # applies a saved change in every worker process
Change = Callable[[FormData], Awaitable[object]]  # a form's change, from its fields
NOT_APPLIED = ("The change was saved, but not every worker process has applied it yet: "
               "try again.")


async def already_applied() -> None:
    """For `Dashboard.change`: a change that applied itself in every worker (the library's
    methods purge every worker's caches themselves)."""


class Dashboard:
    """What every page needs: the config, the session's guard, rendering, the account's
    objects."""

    def __init__(self, config: Config, tenants: dict[str, Tenant], figures: Figures,
                 create_account: CreateAccount) -> None:
        """`tenants`: every account by name ("" the default), the app's own (live) mapping."""
        self.config = config
        self.tenants = tenants
        self.figures = figures  # this server's health and traffic figures (the overview)
        self.create_account = create_account
        self.throttle = LoginThrottle()
        # What signs the session cookie: the default account's keys and the password.
        self.secrets = tuple(config.security.keys) + (
            (config.dashboard.password,) if config.dashboard.password else ())

    def tenant(self, request: Request) -> Tenant:
        """The session's account (`denied` has checked that it exists)."""
        return self.tenants[str(request.session.get("account", ""))]

    def media_of(self, request: Request) -> MediaLibrary:
        """The media library (files, folders, named transformations, origins and endpoints)
        of the session's account."""
        return self.tenant(request).media

    def purges_of(self, request: Request) -> PurgeApi:
        """The purge API of the session's account (its URLs only)."""
        return self.tenant(request).purges

    def account_of(self, request: Request) -> Account:
        """The session's account as delivery sees it (its prefix, for URLs)."""
        return self.tenant(request).account

    def security_of(self, request: Request) -> SecurityConfig:
        """The session's account's keys (for signed URLs and upload signatures)."""
        return self.media_of(request).config.security

    def configured_of(self, request: Request) -> dict[str, Origin]:
        """The config's origins, by name: the default account's only."""
        return self.tenant(request).configured

    def who(self, given: str) -> str | None:
        """The account whose private key (or, for the default one, the dashboard password)
        `given` is; every candidate is compared, so the time says nothing of which matched."""
        found = None
        password = self.config.dashboard.password
        for name, tenant in list(self.tenants.items()):
            for key in tenant.media.config.security.keys + (
                    (password,) if password and not name else ()):
                if hmac.compare_digest(given.encode(), key.encode()):
                    found = name
        return found

    # --- log-in -----------------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        """GET /dashboard/login."""
        return self.page(request, "login.html", error=None,
                         password=bool(self.config.dashboard.password))

    async def login(self, request: Request) -> Response:
        """POST /dashboard/login: a private key or the dashboard password, slowed down after
        failures."""
        client = request.client.host if request.client else "?"
        await self.throttle.wait(client)
        form = await request.form()
        account = self.who(str(form.get("key", "")))
        if account is None:
            self.throttle.failed(client)
            return self.page(request, "login.html", status=401,
                             password=bool(self.config.dashboard.password),
                             error="That is not one of this server's private keys, nor the "
                                   "dashboard password.")
        self.throttle.succeeded(client)
        request.session.clear()
        request.session.update(user="admin", account=account,
                               csrf=secrets.token_urlsafe(24))
        return RedirectResponse("/dashboard", status_code=303)

    async def logout(self, request: Request) -> Response:
        """POST /dashboard/logout."""
        if (denied := await self.denied(request)) is not None:
            return denied
        request.session.clear()
        return RedirectResponse("/dashboard/login", status_code=303)

    async def denied(self, request: Request, form: Any = None) -> Response | None:
        """A redirect to the log-in page, or 403 for a form without the session's token."""
        if request.session.get("user") != "admin" or \
                str(request.session.get("account", "")) not in self.tenants:
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
        signed_in = request.session.get("user") == "admin"
        tenant = self.tenants.get(str(request.session.get("account", "")))
        # A sub-account's URLs begin with its prefix: shown before its endpoints' own.
        prefix = f"/{tenant.account.prefix}" if tenant and tenant.account.prefix else ""
        return TEMPLATES.TemplateResponse(request, name, {
            "version": __version__, "csrf": request.session.get("csrf", ""),
            "signed_in": signed_in, "account": request.session.get("account", ""),
            "account_prefix": prefix, **values}, status_code=status)

    async def submit(self, request: Request, make: Change, page: Page, back: str,
                     applied: Applied | None = None) -> Response:
        """A form that changes something: the session's guard (log-in, the form's token),
        then the change `make(form)` returns, carried out as `change` does."""
        form = await request.form()
        if (denied := await self.denied(request, form)) is not None:
            return denied
        return await self.change(request, make(form), page, back, applied)

    async def change(self, request: Request, work: Awaitable[object], page: Page,
                     back: str, applied: Applied | None = None,
                     unreachable: str = NOT_APPLIED) -> Response:
        """Make a change, apply it in every worker (`applied`, by default the origins' and
        endpoints' rebuild), and go back to `back`; a refused change shows `page` again with
        the error (400), one that not every worker answered for `unreachable` (400)."""
        try:
            await work
            if applied is None:
                applied = self.media_of(request).accounts_changed
                assert applied is not None  # set by MediaLibrary.mount
            await applied()
        except PixelportError as error:
            return await page(request, error=error.message, status=400)
        except Unreachable:
            return await page(request, status=400, error=unreachable)
        return RedirectResponse(back, status_code=303)

    async def static(self, request: Request) -> Response:
        """GET /dashboard/static/{name}: the vendored htmx, the stylesheet, the upload
        script."""
        name = request.path_params["name"]
        if name not in STATIC:
            return HTMLResponse("Not Found", status_code=404)
        return FileResponse(HERE / "static" / name,
                            headers={"cache-control": "public, max-age=3600"})
