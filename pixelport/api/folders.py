"""`/v1/folder` and `/v1/bulkJobs/…`: folders, and the jobs that copy, move or rename them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from pixelport.api.common import answer, flag, json_body, route, text
from pixelport.library.folders import Folders


class FolderRoutes:
    """The folder routes."""

    def __init__(self, folders: Folders) -> None:
        self.folders = folders

    @route
    async def create(self, request: Request) -> Response:
        """POST /v1/folder {folderName, parentFolderPath} → 201 {}."""
        body = await json_body(request)
        await self.folders.create(str(text(body, "folderName")),
                                  text(body, "parentFolderPath", required=False))
        return answer(201, {})

    @route
    async def delete(self, request: Request) -> Response:
        """DELETE /v1/folder with the JSON body {folderPath} → 204."""
        body = await json_body(request)
        await self.folders.delete(str(text(body, "folderPath")))
        return answer(204, None)

    @route
    async def copy(self, request: Request) -> Response:
        """POST /v1/bulkJobs/copyFolder → {jobId}."""
        body = await json_body(request)
        job = await self.folders.copy(str(text(body, "sourceFolderPath")),
                                      str(text(body, "destinationPath")),
                                      flag(body, "includeVersions", False))
        return answer(200, {"jobId": job})

    @route
    async def move(self, request: Request) -> Response:
        """POST /v1/bulkJobs/moveFolder → {jobId}."""
        body = await json_body(request)
        job = await self.folders.move(str(text(body, "sourceFolderPath")),
                                      str(text(body, "destinationPath")))
        return answer(200, {"jobId": job})

    @route
    async def rename(self, request: Request) -> Response:
        """POST /v1/bulkJobs/renameFolder → {jobId}."""
        body = await json_body(request)
        job = await self.folders.rename(str(text(body, "folderPath")),
                                        str(text(body, "newFolderName")))
        return answer(200, {"jobId": job})

    @route
    async def job(self, request: Request) -> Response:
        """GET /v1/bulkJobs/{jobId}."""
        found = await self.folders.job(request.path_params["job_id"])
        body = {"jobId": found.id, "type": found.type, "status": found.status}
        if found.purge_request_id:
            body["purgeRequestId"] = found.purge_request_id
        return answer(200, body)
