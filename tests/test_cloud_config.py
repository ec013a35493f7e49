"""Cloud origin settings and pure helpers: config errors, key joining, error mapping, proxy URLs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pixelport.config import ConfigError, from_dict
from pixelport.errors import AccessDenied, NotFound, OriginFailed
from pixelport.origins.base import Shared
from pixelport.origins.cloud import join_key
from pixelport.origins.failures import provider_error
from pixelport.origins.http import HttpClient
from pixelport.origins.registry import build_all
from pixelport.origins.web_proxy import parse_rule, parse_target
from tests.cloud_servers import new_private_key, pem

SAS = "?sv=2022-11-02&ss=b&srt=o&sp=r&se=2030-01-01T00:00:00Z&sig=abc%3D"


def build(origin: dict[str, Any], tmp_path: Path | None = None) -> Any:
    config = from_dict({"library": {"dir": ""}, "origin": [origin]}, source="test.toml",
                       base=tmp_path or Path.cwd())
    built = build_all(Shared(config, HttpClient(allow_private_networks=False)))[origin["name"]]
    return getattr(built, "inner", built)  # the origin itself, not a wrapper around it


@pytest.mark.parametrize(("origin", "key", "words"), [
    ({"type": "s3", "bucket": "b", "access_key_id": "AKIA"}, "secret_access_key", "together"),
    ({"type": "s3", "bucket": "b", "secret_access_key": "x"}, "access_key_id", "together"),
    ({"type": "s3", "bucket": "b", "endpoint": "http://x"}, "endpoint", "unknown key"),
    ({"type": "s3", "bucket": "a/b"}, "bucket", "without '/'"),
    ({"type": "s3_compatible", "bucket": "b"}, "endpoint", "required"),
    ({"type": "s3_compatible", "bucket": "b", "endpoint": "ftp://x"}, "endpoint", "http(s)"),
    ({"type": "s3", "bucket": "b", "read_timeout": "soon"}, "read_timeout", "number"),
    ({"type": "azure_blob", "account_name": "acct", "container": "c",
      "sas_token": SAS[1:]}, "sas_token", "starting with '?'"),
    ({"type": "azure_blob", "account_name": "My_Account", "container": "c"}, "account_name",
     "lowercase"),
    ({"type": "azure_blob", "account_name": "acct"}, "container", "required"),
    ({"type": "gcs", "bucket": "b", "client_email": "a@b"}, "private_key", "together"),
    ({"type": "gcs", "bucket": "b", "client_email": "a@b", "private_key": "nope"},
     "private_key", "PEM"),
    ({"type": "gcs", "bucket": "b", "credentials_file": "missing.json"}, "credentials_file",
     "cannot read"),
    ({"type": "web_proxy"}, "allowed_hosts", "required"),
    ({"type": "web_proxy", "allowed_hosts": ["exa mple.com"]}, "allowed_hosts", "host name"),
])
def test_config_errors_name_file_and_key(origin: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build({"name": "o", **origin})
    message = str(caught.value)
    assert message.startswith(f"test.toml: origin[0].{key}: "), message
    assert words in message


def test_valid_configs_build(tmp_path: Path) -> None:
    key_file = tmp_path / "sa.json"
    key_file.write_text(json.dumps({"type": "service_account", "client_email": "a@b.c",
                                    "token_uri": "https://oauth2.googleapis.com/token",
                                    "private_key": pem(new_private_key())}))
    assert build({"name": "a", "type": "s3", "bucket": "b"}).settings.region == "us-east-1"
    compatible = build({"name": "b", "type": "s3_compatible", "bucket": "b",
                        "endpoint": "https://s3.wasabisys.com/", "path_style": True})
    assert compatible.settings.endpoint == "https://s3.wasabisys.com"
    azure = build({"name": "c", "type": "azure_blob", "account_name": "acct",
                   "container": "c", "sas_token": SAS, "prefix": "/a/"})
    assert azure.base == "https://acct.blob.core.windows.net/c/"
    assert azure.settings.common.prefix == "a"
    gcs = build({"name": "d", "type": "gcs", "bucket": "b", "credentials_file": "sa.json"},
                tmp_path)
    assert gcs.base == "https://storage.googleapis.com/b/"
    proxy = build({"name": "e", "type": "web_proxy", "allowed_hosts": ["*.Example.org."]})
    assert proxy.settings.allowed_hosts[0].host == "example.org"


@pytest.mark.parametrize(("prefix", "path", "key"), [
    ("", "x.jpg", "x.jpg"), ("", "/x.jpg", "x.jpg"), ("a", "x.jpg", "a/x.jpg"),
    ("a/b", "c/x.jpg", "a/b/c/x.jpg"), ("a", "/x.jpg", "a/x.jpg"),
])
def test_join_key(prefix: str, path: str, key: str) -> None:
    assert join_key(prefix, path) == key


@pytest.mark.parametrize(("status", "code", "error"), [
    (404, "NoSuchKey", NotFound), (404, "BlobNotFound", NotFound), (404, None, NotFound),
    (404, "NoSuchBucket", OriginFailed), (404, "ContainerNotFound", OriginFailed),
    (403, "AccessDenied", AccessDenied), (403, "SignatureDoesNotMatch", AccessDenied),
    (403, "InvalidAccessKeyId", AccessDenied), (403, "AuthorizationFailure", AccessDenied),
    (403, "AuthenticationFailed", AccessDenied), (401, None, AccessDenied),
    (400, "ExpiredToken", AccessDenied), (500, "InternalError", OriginFailed),
    (503, "SlowDown", OriginFailed), (416, "InvalidRange", OriginFailed),
])
def test_provider_error_mapping(status: int, code: str | None, error: type) -> None:
    mapped = provider_error("s3 origin 'x'", "a.jpg", status, code)
    assert type(mapped) is error
    assert "'x'" in mapped.message or isinstance(mapped, NotFound)
    if code and error is not NotFound:
        assert code in mapped.message


@pytest.mark.parametrize(("path", "url"), [
    ("https://images.example.com/a/b.jpg", "https://images.example.com/a/b.jpg"),
    ("https:/images.example.com/a/b.jpg", "https://images.example.com/a/b.jpg"),
    ("/HTTP://host:8080/a b+%#?.jpg", "http://host:8080/a%20b+%25%23%3F.jpg"),
    ("https://host", "https://host/"),
])
def test_web_proxy_targets(path: str, url: str) -> None:
    target = parse_target(path)
    assert target is not None and str(target) == url


@pytest.mark.parametrize("path", ["photo.jpg", "ftp://host/x", "https:///x.jpg",
                                  "https://user:pw@host/x.jpg", "https:host/x.jpg"])
def test_web_proxy_refuses_non_urls(path: str) -> None:
    assert parse_target(path) is None


@pytest.mark.parametrize(("rule", "host", "port", "allowed"), [
    ("images.example.com", "images.example.com", None, True),
    ("images.example.com", "images.example.com", 8443, True),
    ("images.example.com", "other.example.com", None, False),
    ("*.example.org", "a.example.org", None, True),
    ("*.example.org", "a.b.example.org", None, True),
    ("*.example.org", "example.org", None, False),
    ("*.example.org", "badexample.org", None, False),
    ("host:8080", "host", 8080, True),
    ("host:8080", "host", None, False),
    ("*", "anything.test", 1, True),
])
def test_host_rules(rule: str, host: str, port: int | None, allowed: bool) -> None:
    parsed = parse_rule(rule)
    assert parsed is not None and parsed.matches(host, port) is allowed
