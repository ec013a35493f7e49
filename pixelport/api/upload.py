"""`POST /api/v1/files/upload` and `POST /api/v2/files/upload`, as ImageKit answers them.

v1 authenticates with the private key (HTTP Basic) or, for uploads from browsers and apps,
with `publicKey`, `signature` = hex HMAC-SHA1(private key, token + expire), `expire` (less
than an hour ahead) and a single-use `token`. v2 carries an HS256 JWT signed with the private
key (`kid` = the public key, `exp - iat` at most an hour) whose payload must match every other
field. Nothing is stored unless all of that holds.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import Response

from pixelport.api.common import UrlsFor, answer, route, urls
from pixelport.api.multipart import Form, read_form
from pixelport.config import ImagesConfig, LimitsConfig
from pixelport.errors import (
    ApiError,
    ApiForbidden,
    ApiUnauthorized,
    PixelportError,
    UploadTooLarge,
)
from pixelport.library import names, upload_steps
from pixelport.library.fields import MetadataFields
from pixelport.library.files import Library, Upload
from pixelport.library.metadata import read_metadata
from pixelport.library.named import NamedTransformations
from pixelport.library.records import upload_object
from pixelport.security.api_auth import is_authorized
from pixelport.security.upload_tokens import SKEW, Record, SpentTokens

MAX_AHEAD = 3600  # seconds an upload signature or token may be valid for
URL_TIMEOUT = 8.0  # a `file` given as a URL must arrive within this time
Fetch = Any  # async (url, path, limit, timeout) -> None; writes the URL's bytes to path


class Uploads:
    """The upload routes."""

    def __init__(self, library: Library, fields: MetadataFields, keys: Sequence[str],
                 public_key: str | None, max_upload: int, urls_for: UrlsFor,
                 fetch_url: Fetch, named: NamedTransformations, images: ImagesConfig,
                 limits: LimitsConfig, warm: Callable[[str], None],
                 tokens: SpentTokens | None = None) -> None:
        self.library = library
        # Single use of client-side tokens (security/upload_tokens.py).
        self.tokens = tokens or SpentTokens(library.db)
        self.named = named
        self.images = images
        self.limits = limits
        self.warm = warm  # produces a delivery target's result (post transformations)
        self.fields = fields
        self.keys = tuple(keys)
        self.public_key = public_key
        self.max_upload = max_upload
        self.urls_for = urls_for
        self.fetch_url = fetch_url
        # A sub-account's uploads by its public key (pixelport/tenancy.py): an upload signed
        # on the client names no account but by `publicKey` (v1) or the token's `kid` (v2).
        self.by_public_key: Callable[[str], Uploads | None] = lambda _: None

    @route
    async def v1(self, request: Request) -> Response:
        """An upload with the private key, or signed on the client."""
        return await self._upload(request, version=1)

    @route
    async def v2(self, request: Request) -> Response:
        """An upload carrying a JWT."""
        return await self._upload(request, version=2)

    async def _upload(self, request: Request, version: int) -> Response:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_upload * 4 // 3 + 65536:
            raise UploadTooLarge(f"The file is larger than the upload limit of "
                                 f"{self.max_upload} bytes.")
        form = await read_form(request.headers.get("content-type", ""), request.stream(),
                               self.library.storage.temporary, self.max_upload)
        try:
            keyed = version == 1 and is_authorized(request.headers.raw, self.keys)
            other = None if keyed else self.by_public_key(_public_key(form.fields, version))
            if other is not None and other is not self:
                return await other.store(request, form, version)
            return await self.store(request, form, version)
        finally:
            form.discard()

    async def store(self, request: Request, form: Form, version: int) -> Response:
        """An upload whose form has been read: authenticated, stored, answered."""
        try:
            record: Record | None = None  # the token's row, written with the upload's
            if version == 2:
                record = await self._check_jwt(form.fields)
            elif not is_authorized(request.headers.raw, self.keys):
                record = await self._check_signature(form.fields)
            steps = upload_steps.parse(form.fields.get("transformation"), self.named.mapping)
            upload = await self._prepare(form)
            upload.also = record
            if steps.pre:
                upload.source = await asyncio.to_thread(
                    upload_steps.apply_pre, upload.source, steps.pre, self.named.mapping,
                    self.images, self.limits)
            row = await self.library.upload(upload)
        finally:
            form.discard()
        video = row.duration is not None
        for step in steps.post:  # made now, in the background: the answer does not wait
            self.warm(step.target(row.path, video))
        body = upload_object(row, urls(request, self.urls_for))
        wanted = form.fields.get("responseFields")
        if wanted is not None:
            keep = {f.strip() for f in wanted.split(",") if f.strip()}
            if "metadata" in keep:
                async with self.library.storage.readable(row.storage_key) as stored:
                    if stored is not None:
                        body["metadata"] = await asyncio.to_thread(read_metadata, stored)
            optional = {"tags", "customCoordinates", "isPrivateFile", "isPublished",
                        "customMetadata", "metadata", "embeddedMetadata", "description"}
            body = {k: v for k, v in body.items() if k not in optional or k in keep}
        return answer(200, body)

    async def _prepare(self, form: Form) -> Upload:
        fields = form.fields
        name = names.clean_name(fields.get("fileName") or "")
        if form.file is None:
            given = fields.get("file")
            if not given:
                raise ApiError("Missing file parameter for upload")
            form.file_path = self.library.storage.temporary()
            if given.startswith(("http://", "https://")):
                await self.fetch_url(given, form.file_path, self.max_upload, URL_TIMEOUT)
            else:
                _write_base64(given, form.file_path, self.max_upload)
        metadata = _json_object(fields, "customMetadata")
        if metadata is not None:
            metadata = await self.fields.validate(metadata)
        coordinates = fields.get("customCoordinates")
        if coordinates:
            coordinates = check_coordinates(coordinates)
        source = form.file
        assert source is not None
        return Upload(
            source=source, name=name, folder=names.clean_folder(fields.get("folder")),
            tags=[t.strip() for t in fields["tags"].split(",") if t.strip()]
            if fields.get("tags") is not None else None,
            use_unique_file_name=_flag(fields, "useUniqueFileName", True) is not False,
            is_private=_flag(fields, "isPrivateFile", None),
            is_published=_flag(fields, "isPublished", None),
            custom_coordinates=coordinates, custom_metadata=metadata,
            description=fields.get("description"),
            overwrite_file=_flag(fields, "overwriteFile", True) is not False,
            overwrite_tags=_flag(fields, "overwriteTags", True) is not False,
            overwrite_custom_metadata=_flag(fields, "overwriteCustomMetadata", True) is not False,
            overwrite_ai_tags=_flag(fields, "overwriteAITags", True) is not False,
        )

    async def _check_signature(self, fields: dict[str, str]) -> Record | None:
        """The client-side scheme: public key, signature, expiry, a token used once."""
        given = [fields.get(k) for k in ("publicKey", "signature", "expire", "token")]
        if not all(given):
            raise ApiUnauthorized("Your request could not be authenticated: send the private key "
                                  "as the HTTP Basic user name, or publicKey, signature, expire "
                                  "and token.")
        public, signature, expire, token = (str(v) for v in given)
        if self.public_key is None or not hmac.compare_digest(public, self.public_key):
            raise ApiForbidden("Your account cannot be authenticated: unknown publicKey.")
        if not expire.isdigit():
            raise ApiForbidden("expire must be a Unix time in seconds.")
        moment = time.time()
        if int(expire) < moment:
            raise ApiForbidden("The upload signature has expired.")
        if int(expire) > moment + MAX_AHEAD + SKEW:
            raise ApiForbidden("expire must be less than 1 hour into the future.")
        matched = False
        for key in self.keys:
            expected = hmac.new(key.encode(), (token + expire).encode(), hashlib.sha1).hexdigest()
            matched |= hmac.compare_digest(expected, signature.lower())
        if not matched:
            raise ApiForbidden("The upload signature does not match.")
        return await self.tokens.claim(token, int(expire))

    async def _check_jwt(self, fields: dict[str, str]) -> Record | None:
        """The v2 scheme: an HS256 JWT over every field."""
        token = fields.get("token")
        if not token:
            raise ApiUnauthorized("Missing token parameter for upload")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise ApiForbidden("The upload token is not a valid JWT.") from None
        if self.public_key is None or header.get("kid") != self.public_key:
            raise ApiForbidden("The upload token's kid is not this account's public key.")
        payload: dict[str, Any] | None = None
        for key in self.keys:
            try:
                payload = jwt.decode(token, key, algorithms=["HS256"],
                                     options={"require": ["exp", "iat"]}, leeway=SKEW)
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                raise ApiForbidden("The upload token has expired.") from None
            except jwt.PyJWTError as exc:
                raise ApiForbidden(f"The upload token is not valid: {exc}.") from None
        if payload is None:
            raise ApiForbidden("The upload token's signature does not match.")
        if int(payload["exp"]) - int(payload["iat"]) > MAX_AHEAD:
            raise ApiForbidden("The upload token may be valid for an hour at most.")
        claims = {k: v for k, v in payload.items() if k not in ("iat", "exp")}
        sent = {k: v for k, v in fields.items() if k not in ("token", "file")}
        for key in set(claims) | set(sent):
            if key not in sent or key not in claims or _claim(claims[key]) != sent[key]:
                raise ApiForbidden(f"The field {key} differs from the upload token's payload.")
        return await self.tokens.claim(hashlib.sha256(token.encode()).hexdigest(),
                                       int(payload["exp"]))


def _public_key(fields: dict[str, str], version: int) -> str:
    """The public key an upload names: `publicKey` (v1), the token's `kid` (v2); "" if none."""
    if version == 1:
        return fields.get("publicKey") or ""
    try:
        kid = jwt.get_unverified_header(fields.get("token") or "").get("kid")
    except jwt.PyJWTError:
        return ""
    return kid if isinstance(kid, str) else ""


def check_coordinates(text: str) -> str:
    """`x,y,width,height` of non-negative integers (400 otherwise)."""
    parts = text.split(",")
    if len(parts) != 4 or not all(p.strip().isdigit() for p in parts):
        raise ApiError("customCoordinates must read x,y,width,height (whole pixels).")
    if int(parts[2]) == 0 or int(parts[3]) == 0:
        raise ApiError("customCoordinates must have a width and a height above 0.")
    return ",".join(p.strip() for p in parts)


def _claim(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _flag(fields: dict[str, str], key: str, default: bool | None) -> bool | None:
    value = fields.get(key)
    if value is None or value == "":
        return default
    if value.lower() not in ("true", "false"):
        raise ApiError(f"{key} must be true or false.")
    return value.lower() == "true"


def _json_object(fields: dict[str, str], key: str) -> dict[str, Any] | None:
    text = fields.get(key)
    if text is None or text == "":
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise ApiError(f"{key} must be a JSON object.") from None
    if not isinstance(value, dict):
        raise ApiError(f"{key} must be a JSON object.")
    return value


def _write_base64(given: str, path: Path, limit: int) -> None:
    """A base64 `file` (optionally a `data:` URL) decoded into `path`."""
    if given.startswith("data:"):
        given = given.partition(",")[2]
    try:
        data = base64.b64decode(given, validate=False)
    except (binascii.Error, ValueError):
        raise ApiError("file is neither a binary part, a URL nor valid base64.") from None
    if len(data) > limit:
        raise UploadTooLarge(f"The file is larger than the upload limit of {limit} bytes.")
    path.write_bytes(data)


__all__ = ["PixelportError", "Uploads", "check_coordinates"]
