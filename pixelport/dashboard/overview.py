"""The overview: health, version, the result cache's size and hit ratio, recent errors by
`ik-error` code, and each origin's state, summed over every worker process when they all
answer (pixelport.figures), else this worker's, labelled so."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pixelport.dashboard.board import Dashboard


def origin_state(state: list[int] | None) -> str:
    """An origin's state in words, from (most consecutive failures, open circuits,
    upstreams)."""
    if state is None:
        return "not built (unused or invalid)"
    failures, opened, _ = state
    if opened:
        return f"circuit open ({failures} failures in a row): failing fast"
    if failures:
        return f"{failures} failure(s) in a row"
    return "ok"


def ratio(figures: dict[str, Any]) -> str:
    """The hit ratio as a percentage, or "no requests yet"."""
    asked = figures["hits"] + figures["misses"]
    return f"{100 * figures['hits'] / asked:.1f} %" if asked else "no requests yet"


def scope_of(workers: int, everyone: bool) -> str:
    """Whose figures the overview shows, honestly."""
    if not everyone:
        return "this worker process only (the others did not answer)"
    return "this server's only worker process" if workers == 1 else (
        f"all {workers} worker processes, summed")


class OverviewPage:
    """The overview."""

    def __init__(self, board: Dashboard) -> None:
        self.board = board

    def routes(self) -> list[Route]:
        """This group's routes."""
        return [Route("/dashboard", self.overview, methods=["GET"])]

    async def overview(self, request: Request) -> Response:
        """GET /dashboard."""
        board = self.board
        if (denied := await board.denied(request)) is not None:
            return denied
        accounts = board.media_of(request).accounts
        origins = await accounts.origins()
        figures, everyone = await board.figures.gathered()
        states = {o["id"]: origin_state(figures["origins"].get(o["id"])) for o in origins}
        return board.page(request, "overview.html", origins=origins,
                          endpoints=await accounts.endpoints(), figures=figures,
                          scope=scope_of(figures["workers"], everyone),
                          hit_ratio=ratio(figures), states=states,
                          names={o["id"]: o["name"] for o in origins},
                          errors=sorted(figures["errors"].items(), key=lambda kv: -kv[1]),
                          # The server's cache and errors are every account's traffic: the
                          # default account's to see, not a sub-account's.
                          server=not board.account_of(request).name)
