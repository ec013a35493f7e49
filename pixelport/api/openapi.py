"""`GET /v1/openapi.json`: an OpenAPI 3.1 description of the management and upload API.

Written as a table of operations (method, path, summary, what goes in and out) turned into the
document once. tests/test_openapi.py checks it both ways: valid OpenAPI 3.1
(openapi-spec-validator), and one operation for every route the API answers, no more.
A new route is one row here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Receive, Scope, Send

from pixelport import __version__
from pixelport.asgi import send_bytes

JSON = "application/json"
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def array(items: Schema) -> Schema:
    """An array of `items`."""
    return {"type": "array", "items": items}


def obj(required: tuple[str, ...] = (), **properties: Schema) -> Schema:
    """An object with `properties` (others allowed: ImageKit adds fields over time)."""
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


STRING: Schema = {"type": "string"}
BOOLEAN: Schema = {"type": "boolean"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
STRINGS = array(STRING)
NULLABLE_STRING: Schema = {"type": ["string", "null"]}

SCHEMAS: dict[str, Schema] = {
    "Error": obj(("message",), message=STRING, help=STRING),
    "File": obj(
        ("fileId", "name", "filePath", "type"),
        fileId=STRING, type={"enum": ["file", "file-version"]}, name=STRING, filePath=STRING,
        url=STRING, thumbnail=STRING, fileType={"enum": ["image", "non-image"]},
        mime=STRING, size=INTEGER, height=INTEGER, width=INTEGER, hasAlpha=BOOLEAN,
        tags={"type": ["array", "null"], "items": STRING},
        AITags={"type": ["array", "null"], "items": {"type": "object"}},
        isPrivateFile=BOOLEAN, isPublished=BOOLEAN, customCoordinates=NULLABLE_STRING,
        customMetadata={"type": "object"}, description=NULLABLE_STRING,
        embeddedMetadata={"type": "object"}, versionInfo=obj(id=STRING, name=STRING),
        duration=INTEGER, videoCodec=STRING, audioCodec=STRING, bitRate=INTEGER,
        createdAt={"type": "string", "format": "date-time"},
        updatedAt={"type": "string", "format": "date-time"},
    ),
    "Folder": obj(("type", "name", "folderPath"), type={"const": "folder"}, name=STRING,
                  folderPath=STRING, folderId=STRING, createdAt=STRING, updatedAt=STRING),
    "Upload": obj(
        ("fileId", "name", "filePath"),
        fileId=STRING, name=STRING, filePath=STRING, url=STRING, thumbnailUrl=STRING,
        size=INTEGER, height=INTEGER, width=INTEGER, fileType=STRING, isPrivateFile=BOOLEAN,
        tags={"type": ["array", "null"], "items": STRING}, versionInfo=obj(id=STRING,
                                                                          name=STRING),
        extensionStatus={"type": "object"},
    ),
    "Metadata": obj(height=INTEGER, width=INTEGER, size=INTEGER, format=STRING,
                    hasColorProfile=BOOLEAN, quality=INTEGER, density=INTEGER,
                    hasTransparency=BOOLEAN, exif={"type": "object"}, pHash=STRING,
                    duration=INTEGER, videoCodec=STRING, audioCodec=STRING, bitRate=INTEGER),
    "FileIds": obj(("fileIds",), fileIds=STRINGS),
    "Tags": obj(("fileIds", "tags"), fileIds=STRINGS, tags=STRINGS),
    "AITags": obj(("fileIds", "AITags"), fileIds=STRINGS, AITags=STRINGS),
    "SuccessfullyUpdated": obj(("successfullyUpdatedFileIds",),
                               successfullyUpdatedFileIds=STRINGS),
    "SuccessfullyDeleted": obj(("successfullyDeletedFileIds",),
                               successfullyDeletedFileIds=STRINGS),
    "CopyFile": obj(("sourceFilePath", "destinationPath"), sourceFilePath=STRING,
                    destinationPath=STRING, includeFileVersions=BOOLEAN),
    "MoveFile": obj(("sourceFilePath", "destinationPath"), sourceFilePath=STRING,
                    destinationPath=STRING),
    "RenameFile": obj(("filePath", "newFileName"), filePath=STRING, newFileName=STRING,
                      purgeCache=BOOLEAN),
    "FileUpdate": obj(tags={"type": ["array", "null"], "items": STRING},
                      customCoordinates=NULLABLE_STRING, customMetadata={"type": "object"},
                      description=STRING, extensions=array({"type": "object"}),
                      removeAITags={"oneOf": [STRINGS, {"const": "all"}]},
                      webhookUrl=STRING, publish=obj(("isPublished",), isPublished=BOOLEAN)),
    "CreateFolder": obj(("folderName", "parentFolderPath"), folderName=STRING,
                        parentFolderPath=STRING),
    "DeleteFolder": obj(("folderPath",), folderPath=STRING),
    "FolderJob": obj(("sourceFolderPath",), sourceFolderPath=STRING, destinationPath=STRING,
                     includeVersions=BOOLEAN),
    "RenameFolder": obj(("folderPath", "newFolderName"), folderPath=STRING,
                        newFolderName=STRING, purgeCache=BOOLEAN),
    "Job": obj(("jobId",), jobId=STRING),
    "JobStatus": obj(("jobId", "status"), jobId=STRING, type=STRING,
                     status={"enum": ["Pending", "Completed"]}),
    "MetadataField": obj(("id", "name", "label", "schema"), id=STRING, name=STRING,
                         label=STRING, schema={"type": "object"}),
    "MetadataFieldCreate": obj(("name", "label", "schema"), name=STRING, label=STRING,
                               schema={"type": "object"}),
    "MetadataFieldUpdate": obj(label=STRING, schema={"type": "object"}),
    "NamedTransformation": obj(("id", "name", "transformation"), id=STRING, name=STRING,
                               transformation=STRING, description=STRING),
    "NamedTransformationCreate": obj(("name", "transformation"), name=STRING,
                                     transformation=STRING, description=STRING),
    "Origin": obj(("id", "name", "type"), id=STRING, name=STRING,
                  type={"enum": ["S3", "S3_COMPATIBLE", "WEB_FOLDER", "WEB_PROXY", "GCS",
                                 "AZURE_BLOB"]},
                  includeCanonicalHeader=BOOLEAN, baseUrlForCanonicalHeader=STRING,
                  bucket=STRING, prefix=STRING, endpoint=STRING, s3ForcePathStyle=BOOLEAN,
                  region=STRING, baseUrl=STRING, forwardHostHeaderToOrigin=BOOLEAN,
                  allowedHosts=STRINGS, clientEmail=STRING, accountName=STRING,
                  container=STRING, readOnly=BOOLEAN, description=STRING),
    "OriginRequest": obj(("name", "type"), name=STRING, type=STRING,
                         includeCanonicalHeader=BOOLEAN, baseUrlForCanonicalHeader=STRING,
                         bucket=STRING, prefix=STRING, accessKey=STRING, secretKey=STRING,
                         endpoint=STRING, s3ForcePathStyle=BOOLEAN, region=STRING,
                         baseUrl=STRING, forwardHostHeaderToOrigin=BOOLEAN,
                         allowedHosts=STRINGS, clientEmail=STRING, privateKey=STRING,
                         accountName=STRING, container=STRING, sasToken=STRING),
    "URLEndpoint": obj(("id", "description", "urlPrefix", "origins"), id=STRING,
                       description=STRING, urlPrefix=STRING, origins=STRINGS, domains=STRINGS,
                       urlRewriter=obj(("type",), type={"enum": ["CLOUDINARY", "IMGIX",
                                                                  "AKAMAI"]},
                                       preserveAssetDeliveryTypes=BOOLEAN),
                       readOnly=BOOLEAN),
    "URLEndpointRequest": obj(("description",), description=STRING, urlPrefix=STRING,
                              origins=STRINGS, domains=STRINGS,
                              urlRewriter=obj(("type",), type=STRING)),
    "Purge": obj(("url",), url=STRING),
    "PurgeRequest": obj(("requestId",), requestId=STRING),
    "PurgeStatus": obj(("status",), status={"enum": ["Pending", "Completed"]}),
    "Empty": obj(),
}
UPLOAD_FORM: Schema = obj(
    ("file", "fileName"),
    file={"type": "string", "contentMediaType": "application/octet-stream"},
    fileName=STRING, publicKey=STRING, signature=STRING, expire=STRING, token=STRING,
    useUniqueFileName={"enum": ["true", "false"]}, tags=STRING, folder=STRING,
    isPrivateFile={"enum": ["true", "false"]}, isPublished={"enum": ["true", "false"]},
    customCoordinates=STRING, responseFields=STRING, extensions=STRING, webhookUrl=STRING,
    overwriteFile={"enum": ["true", "false"]}, overwriteAITags={"enum": ["true", "false"]},
    overwriteTags={"enum": ["true", "false"]}, overwriteCustomMetadata={"enum": ["true",
                                                                               "false"]},
    customMetadata=STRING, transformation=STRING, checks=STRING, description=STRING,
)


@dataclass(frozen=True)
class Operation:
    """One method on one path."""

    method: str
    path: str
    summary: str
    body: Schema | None = None  # a JSON request body
    answer: Schema | None = None  # the 200 (or `status`) JSON answer; None: no content
    status: int = 200
    query: dict[str, Schema] = field(default_factory=dict)
    form: bool = False  # a multipart/form-data body (uploads)
    public: bool = False  # needs no private key


FILE_ID, VERSION_ID = "/v1/files/{fileId}", "/v1/files/{fileId}/versions/{versionId}"
OPERATIONS = (
    Operation("post", "/api/v1/files/upload", "Upload a file (v1: the private key, or a "
              "client-side signature with publicKey, signature, expire and token)",
              answer=ref("Upload"), form=True, public=True),
    Operation("post", "/api/v2/files/upload", "Upload a file (v2: a JWT signed with the "
              "private key in `token`, or the private key)", answer=ref("Upload"), form=True,
              public=True),
    Operation("get", "/v1/files", "List and search files and folders",
              answer=array({"oneOf": [ref("File"), ref("Folder")]}),
              query={"path": STRING, "searchQuery": STRING, "type": STRING, "sort": STRING,
                     "fileType": STRING, "tags": STRING, "name": STRING,
                     "skip": INTEGER, "limit": INTEGER}),
    Operation("post", "/v1/files/batch/deleteByFileIds", "Delete several files",
              body=ref("FileIds"), answer=ref("SuccessfullyDeleted")),
    Operation("post", "/v1/files/addTags", "Add tags to files", body=ref("Tags"),
              answer=ref("SuccessfullyUpdated")),
    Operation("post", "/v1/files/removeTags", "Remove tags from files", body=ref("Tags"),
              answer=ref("SuccessfullyUpdated")),
    Operation("post", "/v1/files/removeAITags", "Remove AI tags from files",
              body=ref("AITags"), answer=ref("SuccessfullyUpdated")),
    Operation("post", "/v1/files/copy", "Copy a file", body=ref("CopyFile"), status=204),
    Operation("post", "/v1/files/move", "Move a file", body=ref("MoveFile"), status=204),
    Operation("put", "/v1/files/rename", "Rename a file", body=ref("RenameFile"),
              answer=obj(purgeRequestId=STRING)),
    Operation("get", f"{FILE_ID}/details", "A file's details", answer=ref("File")),
    Operation("patch", f"{FILE_ID}/details", "Update a file's details",
              body=ref("FileUpdate"), answer=ref("File")),
    Operation("get", f"{FILE_ID}/versions", "A file's versions", answer=array(ref("File"))),
    Operation("get", VERSION_ID, "One version of a file", answer=ref("File")),
    Operation("delete", VERSION_ID, "Delete a version (not the current one)", status=204),
    Operation("put", f"{VERSION_ID}/restore", "Make a version the current one",
              answer=ref("File")),
    Operation("get", f"{FILE_ID}/metadata", "A file's image or video metadata",
              answer=ref("Metadata")),
    Operation("delete", FILE_ID, "Delete a file and its versions", status=204),
    Operation("get", "/v1/metadata", "The metadata of a file delivered at a URL",
              answer=ref("Metadata"), query={"url": STRING}),
    Operation("post", "/v1/folder", "Create a folder", body=ref("CreateFolder"),
              status=201, answer=ref("Empty")),
    Operation("delete", "/v1/folder", "Delete a folder and everything in it",
              body=ref("DeleteFolder"), status=204),
    Operation("post", "/v1/bulkJobs/copyFolder", "Copy a folder (a job)",
              body=ref("FolderJob"), answer=ref("Job")),
    Operation("post", "/v1/bulkJobs/moveFolder", "Move a folder (a job)",
              body=ref("FolderJob"), answer=ref("Job")),
    Operation("post", "/v1/bulkJobs/renameFolder", "Rename a folder (a job)",
              body=ref("RenameFolder"), answer=ref("Job")),
    Operation("get", "/v1/bulkJobs/{jobId}", "A folder job's status", answer=ref("JobStatus")),
    Operation("get", "/v1/customMetadataFields", "Custom metadata fields",
              answer=array(ref("MetadataField")), query={"includeDeleted": BOOLEAN}),
    Operation("post", "/v1/customMetadataFields", "Create a custom metadata field",
              body=ref("MetadataFieldCreate"), status=201, answer=ref("MetadataField")),
    Operation("patch", "/v1/customMetadataFields/{fieldId}", "Update a custom metadata field",
              body=ref("MetadataFieldUpdate"), answer=ref("MetadataField")),
    Operation("delete", "/v1/customMetadataFields/{fieldId}",
              "Delete a custom metadata field", answer=ref("Empty")),
    Operation("get", "/v1/named-transformations", "Named transformations",
              answer=array(ref("NamedTransformation"))),
    Operation("post", "/v1/named-transformations", "Create a named transformation",
              body=ref("NamedTransformationCreate"), status=201,
              answer=ref("NamedTransformation")),
    Operation("get", "/v1/named-transformations/{namedId}", "One named transformation",
              answer=ref("NamedTransformation")),
    Operation("patch", "/v1/named-transformations/{namedId}",
              "Update a named transformation", body=ref("NamedTransformationCreate"),
              answer=ref("NamedTransformation")),
    Operation("put", "/v1/named-transformations/{namedId}",
              "Replace a named transformation", body=ref("NamedTransformationCreate"),
              answer=ref("NamedTransformation")),
    Operation("delete", "/v1/named-transformations/{namedId}",
              "Delete a named transformation", status=204),
    Operation("post", "/v1/files/purge", "Purge a URL, or every URL under a prefix (`*`)",
              body=ref("Purge"), status=201, answer=ref("PurgeRequest")),
    Operation("get", "/v1/files/purge/{requestId}", "A purge's status",
              answer=ref("PurgeStatus")),
    Operation("get", "/v1/accounts/origins", "Origins: the config's (read-only) and the API's",
              answer=array(ref("Origin"))),
    Operation("post", "/v1/accounts/origins", "Create an origin (secret fields are stored "
              "encrypted and never answered)", body=ref("OriginRequest"), status=201,
              answer=ref("Origin")),
    Operation("get", "/v1/accounts/origins/{id}", "One origin", answer=ref("Origin")),
    Operation("put", "/v1/accounts/origins/{id}", "Replace an origin (secret fields left out "
              "keep their values)", body=ref("OriginRequest"), answer=ref("Origin")),
    Operation("delete", "/v1/accounts/origins/{id}", "Delete an origin no endpoint uses",
              status=204),
    Operation("post", "/v1/accounts/origins/{id}/test", "Fetch a file through one origin "
              "alone and report the outcome with its ik-error code (pixelport's addition)",
              body=obj(("path",), path=STRING),
              answer=obj(("ok", "path"), ok=BOOLEAN, path=STRING, status=INTEGER,
                         ikError=STRING, contentType=NULLABLE_STRING,
                         size={"type": ["integer", "null"]}, milliseconds=NUMBER)),
    Operation("get", "/v1/accounts/url-endpoints", "URL endpoints: the config's (read-only) "
              "and the API's", answer=array(ref("URLEndpoint"))),
    Operation("post", "/v1/accounts/url-endpoints", "Create a URL endpoint",
              body=ref("URLEndpointRequest"), status=201, answer=ref("URLEndpoint")),
    Operation("get", "/v1/accounts/url-endpoints/{id}", "One URL endpoint",
              answer=ref("URLEndpoint")),
    Operation("put", "/v1/accounts/url-endpoints/{id}", "Replace a URL endpoint",
              body=ref("URLEndpointRequest"), answer=ref("URLEndpoint")),
    Operation("delete", "/v1/accounts/url-endpoints/{id}", "Delete a URL endpoint",
              status=204),
    Operation("get", "/v1/openapi.json", "This document", answer={"type": "object"},
              public=True),
)


def _parameters(op: Operation) -> list[Schema]:
    names = [part[1:-1] for part in op.path.split("/") if part.startswith("{")]
    params: list[Schema] = [{"name": n, "in": "path", "required": True, "schema": STRING}
                            for n in names]
    params += [{"name": n, "in": "query", "schema": s} for n, s in op.query.items()]
    return params


def _operation(op: Operation) -> Schema:
    error = {"description": "An error: the message says what, help where to read more",
             "content": {JSON: {"schema": ref("Error")}}}
    answer: Schema = {"description": op.summary}
    if op.answer is not None:
        answer["content"] = {JSON: {"schema": op.answer}}
    out: Schema = {
        "summary": op.summary,
        "operationId": op.method + "".join(
            part.strip("{}").replace("-", "_").replace(".", "_").title().replace("_", "")
            for part in op.path.split("/") if part and part not in ("v1", "api")),
        "responses": {str(op.status): answer, "400": error, "401": error, "404": error},
    }
    if op.public:
        out["security"] = []
    parameters = _parameters(op)
    if parameters:
        out["parameters"] = parameters
    if op.form:
        out["requestBody"] = {"required": True,
                              "content": {"multipart/form-data": {"schema": UPLOAD_FORM}}}
    elif op.body is not None:
        out["requestBody"] = {"required": True, "content": {JSON: {"schema": op.body}}}
    return out


def document() -> Schema:
    """The whole OpenAPI 3.1 document."""
    paths: dict[str, Schema] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "pixelport management and upload API", "version": __version__,
                 "description": "ImageKit's media library API, as pixelport serves it: send "
                                "the private key as the HTTP Basic user name (no password). "
                                "The library routes answer when the media library is on "
                                "([library] dir). Errors are JSON {message, help}."},
        "servers": [{"url": "/"}],
        "security": [{"privateKey": []}],
        "paths": paths,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"privateKey": {"type": "http",
                                                          "scheme": "basic"}}},
    }


BODY = json.dumps(document(), separators=(",", ":")).encode()


async def serve(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI: the document, as JSON."""
    await send_bytes(send, 200, {"content-type": JSON, "cache-control": "public, max-age=300",
                                 "access-control-allow-origin": "*"}, BODY)
