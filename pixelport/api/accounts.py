"""`/v1/accounts/origins` and `/v1/accounts/url-endpoints`: ImageKit's accounts API.

A change is applied to delivery in every worker before the answer (`changed`), without a
restart: requests in flight finish on the origins they started with.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from pixelport.api.common import answer, json_body, route
from pixelport.errors import ApiError
from pixelport.library.accounts import Accounts
from pixelport.origins.base import Origin


class AccountRoutes:
    """Origins and URL endpoints."""

    def __init__(self, accounts: Accounts, changed: Callable[[], Awaitable[None]],
                 configured: dict[str, Origin]) -> None:
        self.accounts = accounts
        self.changed = changed  # rebuilds every worker's endpoints from config and database
        self.configured = configured  # the config's origins, by name

    @route
    async def list_origins(self, request: Request) -> Response:
        """GET /v1/accounts/origins."""
        return answer(200, await self.accounts.origins())

    @route
    async def create_origin(self, request: Request) -> Response:
        """POST /v1/accounts/origins."""
        created = await self.accounts.create_origin(await json_body(request))
        await self.changed()
        return answer(201, created)

    @route
    async def get_origin(self, request: Request) -> Response:
        """GET /v1/accounts/origins/{id}."""
        return answer(200, await self.accounts.origin(request.path_params["origin_id"]))

    @route
    async def update_origin(self, request: Request) -> Response:
        """PUT /v1/accounts/origins/{id}."""
        updated = await self.accounts.update_origin(request.path_params["origin_id"],
                                                    await json_body(request))
        await self.changed()
        return answer(200, updated)

    @route
    async def delete_origin(self, request: Request) -> Response:
        """DELETE /v1/accounts/origins/{id}."""
        await self.accounts.delete_origin(request.path_params["origin_id"])
        await self.changed()
        return answer(204, None)

    @route
    async def try_origin(self, request: Request) -> Response:
        """POST /v1/accounts/origins/{id}/test {"path": …}: fetch a file through it."""
        body = await json_body(request)
        path = body.get("path")
        if not isinstance(path, str):
            raise ApiError("path is required: a file the origin should have.")
        return answer(200, await self.accounts.try_origin(request.path_params["origin_id"],
                                                          path, self.configured))

    @route
    async def list_endpoints(self, request: Request) -> Response:
        """GET /v1/accounts/url-endpoints."""
        return answer(200, await self.accounts.endpoints())

    @route
    async def create_endpoint(self, request: Request) -> Response:
        """POST /v1/accounts/url-endpoints."""
        created = await self.accounts.save_endpoint(await json_body(request))
        await self.changed()
        return answer(201, created)

    @route
    async def get_endpoint(self, request: Request) -> Response:
        """GET /v1/accounts/url-endpoints/{id}."""
        return answer(200, await self.accounts.endpoint(request.path_params["endpoint_id"]))

    @route
    async def update_endpoint(self, request: Request) -> Response:
        """PUT /v1/accounts/url-endpoints/{id}."""
        updated = await self.accounts.save_endpoint(await json_body(request),
                                                    request.path_params["endpoint_id"])
        await self.changed()
        return answer(200, updated)

    @route
    async def delete_endpoint(self, request: Request) -> Response:
        """DELETE /v1/accounts/url-endpoints/{id}."""
        await self.accounts.delete_endpoint(request.path_params["endpoint_id"])
        await self.changed()
        return answer(204, None)
