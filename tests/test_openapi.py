"""/v1/openapi.json: valid OpenAPI 3.1, and one operation for every API route, no more."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from starlette.routing import Route, Router

from pixelport.api import openapi
from tests.helpers import make_image
from tests.library_support import PRIVATE_KEY, library_config

pytestmark = pytest.mark.integration


def _shape(path: str) -> str:
    """A path with its parameters unnamed: `/v1/files/{file_id}` → `/v1/files/{}`."""
    return re.sub(r"\{[^}]+\}", "{}", path)


def served_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path shape) of every route the running app's API answers."""
    found: set[tuple[str, str]] = set()
    for prefix, handler in app.api.default.routes:
        if isinstance(handler, Router):
            for route in handler.routes:
                assert isinstance(route, Route)
                if prefix == "/api" and not route.path.startswith("/api/"):
                    continue  # the library router is mounted twice; /api serves uploads
                for method in route.methods or ():
                    if method != "HEAD":
                        found.add((method.lower(), _shape(route.path)))
        elif prefix == "/v1/files/purge":
            found |= {("post", "/v1/files/purge"), ("get", "/v1/files/purge/{}")}
        else:
            found.add(("get", prefix))
    return found


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi.document()
    validate(document)  # raises on any error
    assert document["openapi"].startswith("3.1")
    # Every $ref points at a schema that exists.
    names = set(document["components"]["schemas"])
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(document)))
    assert refs <= names and refs


def test_every_route_is_described_and_nothing_else(serve: Any, tmp_path: Path,
                                                  database_url: str) -> None:
    root = tmp_path / "library"
    root.mkdir()
    pp = serve(library_config(root, database_url))
    described = {(op.method, _shape(op.path)) for op in openapi.OPERATIONS}
    served = served_routes(pp.app)
    assert served - described == set(), "routes the document does not describe"
    assert described - served == set(), "operations no route answers"
    # Served, without a key, as JSON; the same document; everything else still needs the key.
    answer = httpx.get(f"{pp.url}/v1/openapi.json")
    assert answer.status_code == 200 and answer.json() == openapi.document()
    assert httpx.get(f"{pp.url}/v1/files").status_code == 401


def test_documented_answers_match_what_the_api_sends(serve: Any, tmp_path: Path,
                                                     database_url: str) -> None:
    """A few operations' real answers against the document's own schemas."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    root = tmp_path / "library"
    root.mkdir()
    pp = serve(library_config(root, database_url))
    auth = (PRIVATE_KEY, "")
    document = openapi.document()
    registry: Registry = Registry().with_resource(  # type: ignore[call-arg]
        "urn:doc", Resource.from_contents({**document, "$schema":
                                           "https://json-schema.org/draft/2020-12/schema"}))

    def check(method: str, path: str, value: Any, status: str = "200") -> None:
        schema = (document["paths"][path][method]["responses"][status]["content"]
                  ["application/json"]["schema"])
        resolved = json.loads(json.dumps(schema).replace('"#/components', '"urn:doc#/components'))
        Draft202012Validator(resolved, registry=registry).validate(value)

    uploaded = httpx.post(f"{pp.url}/api/v1/files/upload", auth=auth,
                          files={"file": ("a.jpg", make_image(40, 30))},
                          data={"fileName": "a.jpg", "useUniqueFileName": "false"})
    assert uploaded.status_code == 200, uploaded.text
    check("post", "/api/v1/files/upload", uploaded.json())
    listed = httpx.get(f"{pp.url}/v1/files", auth=auth)
    check("get", "/v1/files", listed.json())
    file_id = uploaded.json()["fileId"]
    check("get", "/v1/files/{fileId}/details",
          httpx.get(f"{pp.url}/v1/files/{file_id}/details", auth=auth).json())
    check("get", "/v1/files/{fileId}/metadata",
          httpx.get(f"{pp.url}/v1/files/{file_id}/metadata", auth=auth).json())
    missing = httpx.get(f"{pp.url}/v1/files/nope/details", auth=auth)
    check("get", "/v1/files/{fileId}/details", missing.json(), str(missing.status_code))
