"""The management and upload API's routes (Starlette's router), ImageKit's paths and methods.

`pixelport.security.api_auth.ApiGate` authenticates every request before it gets here, but
for the upload routes, which may instead carry a client-side signature or a JWT (checked in
`pixelport.api.upload`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from pixelport.api.accounts import AccountRoutes
from pixelport.api.common import answer
from pixelport.api.files import Files
from pixelport.api.folders import FolderRoutes
from pixelport.api.settings import SettingRoutes
from pixelport.api.upload import Uploads

UPLOAD_PATHS = ("/api/v1/files/upload", "/api/v2/files/upload")


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope, receive)
    await answer(404, {"message": f"No API route {request.method} {request.url.path}.",
                       "help": "See the ImageKit API reference for the routes."}
                 )(scope, receive, send)


def build(uploads: Uploads, files: Files, folders: FolderRoutes,
          settings: SettingRoutes, accounts: AccountRoutes) -> Router:
    """Every library route, as one ASGI app."""
    origin, endpoint = "/v1/accounts/origins", "/v1/accounts/url-endpoints"
    routes = [
        Route(origin, accounts.list_origins, methods=["GET"]),
        Route(origin, accounts.create_origin, methods=["POST"]),
        Route(origin + "/{origin_id}", accounts.get_origin, methods=["GET"]),
        Route(origin + "/{origin_id}", accounts.update_origin, methods=["PUT"]),
        Route(origin + "/{origin_id}", accounts.delete_origin, methods=["DELETE"]),
        Route(origin + "/{origin_id}/test", accounts.try_origin, methods=["POST"]),
        Route(endpoint, accounts.list_endpoints, methods=["GET"]),
        Route(endpoint, accounts.create_endpoint, methods=["POST"]),
        Route(endpoint + "/{endpoint_id}", accounts.get_endpoint, methods=["GET"]),
        Route(endpoint + "/{endpoint_id}", accounts.update_endpoint, methods=["PUT"]),
        Route(endpoint + "/{endpoint_id}", accounts.delete_endpoint, methods=["DELETE"]),
        Route("/api/v1/files/upload", uploads.v1, methods=["POST"]),
        Route("/api/v2/files/upload", uploads.v2, methods=["POST"]),
        Route("/v1/files", files.list, methods=["GET"]),
        Route("/v1/files/batch/deleteByFileIds", files.bulk_delete, methods=["POST"]),
        Route("/v1/files/addTags", files.add_tags, methods=["POST"]),
        Route("/v1/files/removeTags", files.remove_tags, methods=["POST"]),
        Route("/v1/files/removeAITags", files.remove_ai_tags, methods=["POST"]),
        Route("/v1/files/copy", files.copy, methods=["POST"]),
        Route("/v1/files/move", files.move, methods=["POST"]),
        Route("/v1/files/rename", files.rename, methods=["PUT"]),
        Route("/v1/files/{file_id}/details", files.details, methods=["GET"]),
        Route("/v1/files/{file_id}/details", files.update, methods=["PATCH"]),
        Route("/v1/files/{file_id}/versions", files.versions, methods=["GET"]),
        Route("/v1/files/{file_id}/versions/{version_id}", files.version, methods=["GET"]),
        Route("/v1/files/{file_id}/versions/{version_id}", files.delete_version,
              methods=["DELETE"]),
        Route("/v1/files/{file_id}/versions/{version_id}/restore", files.restore_version,
              methods=["PUT"]),
        Route("/v1/files/{file_id}/metadata", files.metadata, methods=["GET"]),
        Route("/v1/files/{file_id}", files.delete, methods=["DELETE"]),
        Route("/v1/metadata", files.metadata_from_url, methods=["GET"]),
        Route("/v1/folder", folders.create, methods=["POST"]),
        Route("/v1/folder", folders.delete, methods=["DELETE"]),
        Route("/v1/bulkJobs/copyFolder", folders.copy, methods=["POST"]),
        Route("/v1/bulkJobs/moveFolder", folders.move, methods=["POST"]),
        Route("/v1/bulkJobs/renameFolder", folders.rename, methods=["POST"]),
        Route("/v1/bulkJobs/{job_id}", folders.job, methods=["GET"]),
        Route("/v1/customMetadataFields", settings.list_fields, methods=["GET"]),
        Route("/v1/customMetadataFields", settings.create_field, methods=["POST"]),
        Route("/v1/customMetadataFields/{field_id}", settings.update_field, methods=["PATCH"]),
        Route("/v1/customMetadataFields/{field_id}", settings.delete_field,
              methods=["DELETE"]),
        Route("/v1/named-transformations", settings.list_named, methods=["GET"]),
        Route("/v1/named-transformations", settings.create_named, methods=["POST"]),
        Route("/v1/named-transformations/{named_id}", settings.get_named, methods=["GET"]),
        Route("/v1/named-transformations/{named_id}", settings.update_named,
              methods=["PATCH", "PUT"]),
        Route("/v1/named-transformations/{named_id}", settings.delete_named,
              methods=["DELETE"]),
    ]
    return Router(routes=routes, default=_not_found)
