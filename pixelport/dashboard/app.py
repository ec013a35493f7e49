"""`/dashboard`: server-rendered pages (Jinja2, htmx vendored in `static/`), no build step.

The pages, one module per group over the core (board.py: log-in, the session's guard,
rendering, `media_of` / `purges_of`): overview (overview.py), external storage and URL
endpoints (origins.py), the media library (files.py), named transformations (named.py), the
URL builder and purge (tools.py), sub-accounts (accounts.py). Each works through the API's
own code, and each change is applied in every worker as the API's are.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from pixelport.config import Config
from pixelport.dashboard.accounts import AccountPages
from pixelport.dashboard.board import HERE, CreateAccount, Dashboard
from pixelport.dashboard.files import FilePages
from pixelport.dashboard.named import NamedPages
from pixelport.dashboard.origins import OriginPages
from pixelport.dashboard.overview import OverviewPage
from pixelport.dashboard.tools import ToolPages
from pixelport.state.db import is_unreachable

if TYPE_CHECKING:
    from pixelport.figures import Figures
    from pixelport.tenancy import Tenant

__all__ = ["HERE", "build_dashboard"]
SESSION_HOURS = 8
log = logging.getLogger("pixelport.dashboard")


def build_dashboard(config: Config, tenants: dict[str, Tenant], figures: Figures,
                    create_account: CreateAccount) -> Starlette:
    """The dashboard as an ASGI app, mounted at /dashboard."""
    board = Dashboard(config, tenants, figures, create_account)
    # Derived from what logs in, so every worker honours a session and changing a key or the
    # password signs everyone out; with neither, a random secret (no one can log in, and a
    # cookie made with a guessable secret must not let anyone in either).
    material = "\0".join(board.secrets) or secrets.token_hex(32)
    secret = hmac.new(material.encode(), b"pixelport dashboard session",
                      hashlib.sha256).hexdigest()
    routes = [
        Route("/dashboard/login", board.login_form, methods=["GET"]),
        Route("/dashboard/login", board.login, methods=["POST"]),
        Route("/dashboard/logout", board.logout, methods=["POST"]),
        Route("/dashboard/static/{name}", board.static, methods=["GET"]),
    ]
    for pages in (OverviewPage(board), OriginPages(board), FilePages(board),
                  NamedPages(board), ToolPages(board), AccountPages(board)):
        routes += pages.routes()
    return Starlette(routes=routes, exception_handlers={Exception: _failed},
                     middleware=[Middleware(
        SessionMiddleware, secret_key=secret, session_cookie="pixelport_dashboard",
        max_age=SESSION_HOURS * 3600, same_site="strict", https_only=False)])


async def _failed(request: Request, exc: Exception) -> Response:
    """A page that failed: 503 while the database does not answer, else a logged 500."""
    if is_unreachable(exc):
        return HTMLResponse("The database did not answer; try again shortly.", status_code=503,
                            headers={"retry-after": "5"})
    log.error("dashboard page %s failed", request.url.path, exc_info=exc)
    return HTMLResponse("Internal error; see the server's log.", status_code=500)
