"""Real cloud storage emulators on 127.0.0.1, one per test session, filled with the same files.

- S3: moto's server, with IAM credentials enforced (two read-only users, one per bucket).
- Azure Blob: Azurite from npm (installed into .tools by `make setup`).
- GCS: gcp-storage-emulator behind a small gate that is also the service account's token
  endpoint: it checks the JWT's RS256 signature and lets through only the tokens it issued.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.client
import json
import logging
import secrets
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import moto.settings
import pytest
from azure.storage.blob import (
    AccountSasPermissions,
    BlobServiceClient,
    ContainerSasPermissions,
    ContentSettings,
    ResourceTypes,
    generate_account_sas,
    generate_container_sas,
)
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from gcp_storage_emulator.server import create_server
from moto.server import ThreadedMotoServer

from tests.helpers import free_port, make_image

ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob"
BUCKET = "photos"  # the bucket (container) every emulator holds the corpus in
ARCHIVE = "archive"  # a second S3 bucket, readable only by the second S3 user
PRIVATE_META = {"isprivatefile": "true"}

# Names that break naive URL building: space, unicode, +, %, #, ?.
SPECIAL_NAMES = ("a b.txt", "ünï cödé.txt", "a+b.txt", "100%.txt", "a#b.txt", "a?b.txt")


@dataclass(frozen=True)
class Item:
    """One object of the corpus."""

    data: bytes
    content_type: str
    private: bool = False


@functools.cache
def corpus() -> dict[str, Item]:
    """The files every provider holds under BUCKET (keys without a leading slash)."""
    items = {
        "gallery/photo.jpg": Item(make_image(120, 80), "image/jpeg"),
        "gallery/private.jpg": Item(make_image(30, 20), "image/jpeg", private=True),
        "gallery/notes.txt": Item(b"hello from the gallery\n", "text/plain"),
        "top.txt": Item(b"at the top\n", "text/plain"),
        "gallery/clip.mp4": Item(bytes(range(256)) * 4, "video/mp4"),  # streamed, by type
        # Past the tests' max_input_bytes (1 MB), and no image to sniff.
        "gallery/huge.jpg": Item(b"\0" * 1_500_000, "image/jpeg"),
    }
    for name in SPECIAL_NAMES:
        items[f"gallery/special/{name}"] = Item(f"file {name}\n".encode(), "text/plain")
    return items


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None,
                  timeout: float = 30.0) -> None:
    """Block until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


# --- S3 (moto) --------------------------------------------------------------------------------

@dataclass
class MotoS3:
    """moto's S3 + IAM server with two read-only users."""

    port: int
    reader: tuple[str, str]  # GetObject on BUCKET only
    archivist: tuple[str, str]  # GetObject on ARCHIVE only
    resolved: set[str] = field(default_factory=set)  # *.localhost names looked up

    @property
    def endpoint(self) -> str:
        """Path-style endpoint (an IP address)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def virtual_endpoint(self) -> str:
        """A host name endpoint, so buckets become `<bucket>.localhost`."""
        return f"http://localhost:{self.port}"


def _read_only_user(iam: Any, name: str, bucket: str) -> tuple[str, str]:
    iam.create_user(UserName=name)
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    iam.put_user_policy(UserName=name, PolicyName="read-only", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@contextlib.contextmanager
def localhost_subdomains(resolved: set[str]) -> Iterator[None]:
    """Resolve `*.localhost` to 127.0.0.1 in this process (virtual-hosted buckets).

    glibc without nss-myhostname does not, and the test must not depend on the machine.
    """
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".localhost"):
            resolved.add(host)
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    socket.getaddrinfo = resolve
    try:
        yield
    finally:
        socket.getaddrinfo = real


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """moto on a free port; credentials are enforced once the corpus is in place."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    admin = {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1",
             "aws_access_key_id": "admin", "aws_secret_access_key": "admin"}
    s3 = boto3.client("s3", **admin)
    s3.create_bucket(Bucket=BUCKET)
    s3.create_bucket(Bucket=ARCHIVE)
    for key, item in corpus().items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=item.data, ContentType=item.content_type,
                      Metadata=PRIVATE_META if item.private else {})
    s3.put_object(Bucket=ARCHIVE, Key="archived.jpg", Body=make_image(64, 48),
                  ContentType="image/jpeg")
    iam = boto3.client("iam", **admin)
    servers = MotoS3(port, _read_only_user(iam, "reader", BUCKET),
                     _read_only_user(iam, "archivist", ARCHIVE))
    request = urllib.request.Request(f"{servers.endpoint}/moto-api/reset-auth", data=b"0",
                                     headers={"Content-Type": "text/plain"}, method="POST")
    urllib.request.urlopen(request, timeout=10).read()
    try:
        with localhost_subdomains(servers.resolved):
            yield servers
    finally:
        # The flag is moto's, process-wide: leave later in-process moto users unauthenticated.
        moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
        server.stop()


# --- Azure Blob (Azurite) ---------------------------------------------------------------------

# Azurite's fixed development account (public, documented by Microsoft).
AZURE_ACCOUNT = "devstoreaccount1"
AZURE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
             "KBHBeksoGMGw==")


@dataclass
class Azurite:
    """Azurite's blob service with the corpus in container BUCKET."""

    port: int

    @property
    def endpoint(self) -> str:
        """The account's blob service URL (path-style, as Azurite serves it)."""
        return f"http://127.0.0.1:{self.port}/{AZURE_ACCOUNT}"

    def account_sas(self, *, expiry: datetime | None = None, key: str = AZURE_KEY) -> str:
        """A read-only account SAS token, with its leading '?'."""
        now = datetime.now(UTC)
        return "?" + generate_account_sas(
            AZURE_ACCOUNT, key, ResourceTypes(object=True), AccountSasPermissions(read=True),
            expiry=expiry or now + timedelta(hours=2), start=now - timedelta(hours=2))

    def container_sas(self) -> str:
        """A read-only service SAS for the container."""
        now = datetime.now(UTC)
        return "?" + generate_container_sas(
            AZURE_ACCOUNT, BUCKET, account_key=AZURE_KEY,
            permission=ContainerSasPermissions(read=True), expiry=now + timedelta(hours=2),
            start=now - timedelta(hours=2))


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite on a free port, in memory, stopped at the end of the session."""
    if not AZURITE_BIN.exists():
        raise RuntimeError(f"{AZURITE_BIN} is missing: run `make setup`")
    port = free_port()
    workdir = tmp_path_factory.mktemp("azurite")
    log = workdir / "azurite.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(AZURITE_BIN), "--blobHost", "127.0.0.1", "--blobPort", str(port),
             "--skipApiVersionCheck", "--inMemoryPersistence", "--silent"],
            stdout=output, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        try:
            wait_for_port(port, process)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {log.read_text(errors='replace')[-2000:]}") from None
        servers = Azurite(port)
        service = BlobServiceClient(servers.endpoint, credential={
            "account_name": AZURE_ACCOUNT, "account_key": AZURE_KEY})
        container = service.create_container(BUCKET)
        for key, item in corpus().items():
            container.upload_blob(key, item.data, metadata=PRIVATE_META if item.private else None,
                                  content_settings=ContentSettings(item.content_type))
        container.upload_blob("chain/only-azure.jpg", make_image(70, 50),
                              content_settings=ContentSettings("image/jpeg"))
        service.close()
        yield servers
    finally:
        # In memory there is nothing to flush, and a graceful stop takes seconds.
        process.kill()
        process.wait()


# --- GCS (gcp-storage-emulator behind a token-checking gate) ----------------------------------

READ_ONLY_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"
# google-auth always addresses the assertion to Google's token endpoint, whatever token_uri is.
TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def new_private_key() -> rsa.RSAPrivateKey:
    """A fresh RSA key, as Google generates for a service account."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    """The key as PKCS#8 PEM, as in a service-account JSON file."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@dataclass
class GcsServers:
    """The emulator, the gate in front of it, and a service account the gate trusts."""

    gate_port: int
    client_email: str
    private_key: str  # PEM
    credentials_file: Path
    issued: set[str] = field(default_factory=set)
    token_requests: dict[str, int] = field(default_factory=dict)  # by client_email

    @property
    def endpoint(self) -> str:
        """The storage endpoint (the gate)."""
        return f"http://127.0.0.1:{self.gate_port}"

    @property
    def token_uri(self) -> str:
        """The service account's token endpoint (the gate too)."""
        return f"{self.endpoint}/token"

    def service_account(self, key_pem: str | None = None) -> dict[str, str]:
        """A service-account JSON document (with another key when given)."""
        return {
            "type": "service_account", "project_id": "pixelport-test",
            "private_key_id": "k1", "private_key": key_pem or self.private_key,
            "client_email": self.client_email, "client_id": "1",
            "token_uri": self.token_uri,
        }


def _gate(servers: GcsServers, public_keys: dict[str, rsa.RSAPublicKey],
          emulator_port: int) -> ThreadingHTTPServer:
    class Gate(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            email = self.check_assertion(form.get("assertion", [""])[0])
            if email is None:
                error = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
                self.reply(400, json.dumps(error).encode(), {"Content-Type": "application/json"})
                return
            servers.token_requests[email] = servers.token_requests.get(email, 0) + 1
            token = secrets.token_urlsafe(24)
            servers.issued.add(token)
            body = {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
            self.reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

        def check_assertion(self, assertion: str) -> str | None:
            try:
                header_b64, claims_b64, signature_b64 = assertion.split(".")
                header = json.loads(_b64url(header_b64))
                claims = json.loads(_b64url(claims_b64))
                key = public_keys[claims["iss"]]
                key.verify(_b64url(signature_b64), f"{header_b64}.{claims_b64}".encode(),
                           padding.PKCS1v15(), hashes.SHA256())
            except (ValueError, KeyError, InvalidSignature):
                return None
            fresh = claims.get("exp", 0) > time.time()
            if header.get("alg") != "RS256" or claims.get("aud") != TOKEN_AUDIENCE or \
                    READ_ONLY_SCOPE not in claims.get("scope", "").split() or not fresh:
                return None
            return str(claims["iss"])

        def do_GET(self) -> None:
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if token not in servers.issued:
                self.reply(401, b"<Error><Code>AuthenticationRequired</Code></Error>",
                           {"Content-Type": "application/xml"})
                return
            upstream = http.client.HTTPConnection("127.0.0.1", emulator_port, timeout=10)
            forwarded = {k: v for k, v in self.headers.items() if k.lower() == "range"}
            upstream.request("GET", self.path, headers=forwarded)
            answer = upstream.getresponse()
            body = answer.read()
            upstream.close()
            keep = ("content-type", "content-range", "etag", "last-modified")
            headers = {k: v for k, v in answer.getheaders()
                       if k.lower() in keep or k.lower().startswith("x-goog-meta-")}
            self.reply(answer.status, body, headers)

    server = ThreadingHTTPServer(("127.0.0.1", servers.gate_port), Gate)
    server.daemon_threads = True
    return server


def _emulator_put(port: int, key: str, item: Item) -> None:
    quoted = urllib.parse.quote(key, safe="")
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("PUT", f"/{BUCKET}/{quoted}", body=item.data,
                           headers={"Content-Type": item.content_type})
        assert connection.getresponse().read() is not None
        if item.private:
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("PATCH", f"/storage/v1/b/{BUCKET}/o/{quoted}",
                               body=json.dumps({"metadata": PRIVATE_META}),
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == 200, response.read()
            response.read()
    finally:
        connection.close()


@pytest.fixture(scope="session")
def gcs_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsServers]:
    """The emulator with the corpus, and the gate with one trusted service account."""
    logging.getLogger("api").setLevel(logging.CRITICAL)
    logging.getLogger("gcp_storage_emulator").setLevel(logging.CRITICAL)
    emulator_port = free_port()
    emulator = create_server("127.0.0.1", emulator_port, in_memory=True, default_bucket=BUCKET)
    emulator.start()
    key = new_private_key()
    folder = tmp_path_factory.mktemp("gcs")
    servers = GcsServers(free_port(), "reader@pixelport-test.iam.gserviceaccount.com", pem(key),
                         folder / "service-account.json")
    servers.credentials_file.write_text(json.dumps(servers.service_account()))
    gate = _gate(servers, {servers.client_email: key.public_key()}, emulator_port)
    threading.Thread(target=gate.serve_forever, daemon=True).start()
    try:
        items = dict(corpus())
        items["chain/only-gcs.jpg"] = Item(make_image(90, 60), "image/jpeg")
        for object_key, item in items.items():
            _emulator_put(emulator_port, object_key, item)
        yield servers
    finally:
        gate.shutdown()
        gate.server_close()
        emulator.stop()
