"""ImageKit's origin objects, as its accounts API spells them, onto pixelport's origin keys.

`POST /v1/accounts/origins` takes `{"type": "S3", "name": …, "bucket": …, "accessKey": …}`;
`settings_of` turns that into the keys a `[[origin]]` table would hold (docs/configuration.md),
so the origin is built and checked by the same code as the config's. A new ImageKit type is one
entry in TYPES and FIELDS.
"""

from __future__ import annotations

from typing import Any

# ImageKit's type → pixelport's.
TYPES = {"S3": "s3", "S3_COMPATIBLE": "s3_compatible", "WEB_FOLDER": "web_server",
         "WEB_PROXY": "web_proxy", "GCS": "gcs", "AZURE_BLOB": "azure_blob"}
# Per type: ImageKit's field → pixelport's key. `region` and `allowedHosts` are pixelport's
# additions (ImageKit knows the bucket's region; its web proxy fetches from anywhere).
_BUCKET = {"bucket": "bucket", "prefix": "prefix"}
_S3 = {**_BUCKET, "accessKey": "access_key_id", "secretKey": "secret_access_key",
       "region": "region"}
FIELDS: dict[str, dict[str, str]] = {
    "S3": _S3,
    "S3_COMPATIBLE": {**_S3, "endpoint": "endpoint", "s3ForcePathStyle": "path_style"},
    "WEB_FOLDER": {"baseUrl": "base_url", "forwardHostHeaderToOrigin": "forward_host_header"},
    "WEB_PROXY": {"allowedHosts": "allowed_hosts"},
    "GCS": {**_BUCKET, "clientEmail": "client_email", "privateKey": "private_key"},
    "AZURE_BLOB": {**_BUCKET, "accountName": "account_name", "container": "container",
                   "sasToken": "sas_token", "endpoint": "endpoint"},
}
# What ImageKit requires of each type (pixelport's own defaults would allow less).
REQUIRED = {"S3": ("bucket", "accessKey", "secretKey"),
            "S3_COMPATIBLE": ("bucket", "accessKey", "secretKey", "endpoint"),
            "WEB_FOLDER": ("baseUrl",), "WEB_PROXY": (),
            "GCS": ("bucket", "clientEmail", "privateKey"),
            "AZURE_BLOB": ("accountName", "container", "sasToken")}
# Never answered, shown or logged; sealed at rest (security/secrets.py). The access key too:
# ImageKit does not answer it either.
SECRET = frozenset({"accessKey", "secretKey", "sasToken", "privateKey"})
COMMON = ("name", "includeCanonicalHeader", "baseUrlForCanonicalHeader")
BOOLEANS = frozenset({"s3ForcePathStyle", "forwardHostHeaderToOrigin", "includeCanonicalHeader"})


class FieldError(ValueError):
    """A field ImageKit's API would refuse: its message names the field."""


def check(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The origin's fields, typed and complete (FieldError naming the first wrong one)."""
    if kind not in TYPES:
        raise FieldError(f"type must be one of {', '.join(TYPES)}")
    known = set(FIELDS[kind]) | set(COMMON) | {"type"}
    for given in fields:
        if given not in known:
            raise FieldError(f"{given} is not a field of a {kind} origin")
    name = fields.get("name")
    if not isinstance(name, str) or not name.strip():
        raise FieldError("name is required: the origin's display name")
    for required in REQUIRED[kind]:
        if fields.get(required) in (None, ""):
            raise FieldError(f"{required} is required for a {kind} origin")
    for field_name, value in fields.items():
        if field_name in BOOLEANS and not isinstance(value, bool):
            raise FieldError(f"{field_name} must be true or false")
        if field_name == "allowedHosts":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise FieldError("allowedHosts must be a list of host names")
        elif field_name not in BOOLEANS and field_name != "type" and not isinstance(value, str):
            raise FieldError(f"{field_name} must be a string")
    return {k: v for k, v in fields.items() if k != "type"}


def settings_of(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The `[[origin]]` keys of an origin given in ImageKit's fields (secrets included)."""
    settings: dict[str, Any] = {}
    for field_name, key in FIELDS[kind].items():
        value = fields.get(field_name)
        if value not in (None, ""):
            settings[key] = value
    if kind == "WEB_PROXY":
        settings.setdefault("allowed_hosts", ["*"])  # the address guard still applies
    if kind == "AZURE_BLOB" and not str(settings.get("sas_token", "?")).startswith("?"):
        settings["sas_token"] = "?" + settings["sas_token"]
    if (kind == "WEB_FOLDER" and fields.get("includeCanonicalHeader")
            and fields.get("baseUrlForCanonicalHeader")):
        settings["canonical_base_url"] = fields["baseUrlForCanonicalHeader"]
    return settings


def answer_of(origin_id: str, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The origin as ImageKit's API answers it: no secret field, defaults filled in."""
    shown = {k: v for k, v in fields.items() if k not in SECRET}
    out: dict[str, Any] = {"id": origin_id, "type": kind, "includeCanonicalHeader": False,
                           **shown}
    if "prefix" in FIELDS[kind]:
        out.setdefault("prefix", "")
    if kind == "S3_COMPATIBLE":
        out.setdefault("s3ForcePathStyle", False)
    if kind == "WEB_FOLDER":
        out.setdefault("forwardHostHeaderToOrigin", False)
    return out
