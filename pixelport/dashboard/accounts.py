"""Sub-accounts: the config's `[[account]]` (read-only) and those made here, which get fresh
keys shown once (App.create_account: stored sealed, served by every worker before the page
answers). Only the default account manages accounts; a sub-account sees only itself."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pixelport.dashboard.board import Dashboard
from pixelport.errors import PixelportError
from pixelport.siblings import Unreachable

ACCOUNTS = "/dashboard/accounts"


class AccountPages:
    """The accounts page."""

    def __init__(self, board: Dashboard) -> None:
        self.board = board

    def routes(self) -> list[Route]:
        """This group's routes."""
        return [Route(ACCOUNTS, self.listing, methods=["GET"]),
                Route(ACCOUNTS, self.add, methods=["POST"])]

    async def listing(self, request: Request, error: str | None = None, status: int = 200,
                      made: dict[str, str] | None = None) -> Response:
        """GET /dashboard/accounts: every account (a sub-account: itself only)."""
        board = self.board
        if (denied := await board.denied(request)) is not None:
            return denied
        mine = board.account_of(request)
        rows = []
        for tenant in list(board.tenants.values()):
            account = tenant.account
            if mine.name and account is not mine:
                continue
            rows.append({
                "name": account.name or "default", "prefix": account.prefix,
                "domains": account.domains,
                "url": f"/{account.prefix}/" if account.prefix else "/",
                "source": "dashboard" if tenant.source == "database" else "config file",
                "public_key": tenant.media.config.security.public_key or ""})
        return board.page(request, "accounts.html", status, rows=rows, error=error,
                          manages=not mine.name, made=made)

    async def add(self, request: Request) -> Response:
        """POST /dashboard/accounts: a new sub-account; its keys shown this once."""
        form = await request.form()
        board = self.board
        if (denied := await board.denied(request, form)) is not None:
            return denied
        if board.account_of(request).name:
            return await self.listing(request, status=403, error="Only the default account "
                                      "makes accounts.")
        domains = [d.strip() for d in str(form.get("domains", "")).split(",") if d.strip()]
        try:
            spec = await board.create_account(str(form.get("name", "")),
                                              str(form.get("prefix", "")), domains)
        except PixelportError as failure:
            return await self.listing(request, status=400, error=failure.message)
        except Unreachable:
            return await self.listing(request, status=400, error="The account was made, but "
                                      "not every worker process serves it yet: reload.")
        made = {"name": spec.name, "private_key": spec.private_key,
                "public_key": spec.public_key or ""}
        return await self.listing(request, status=201, made=made)
