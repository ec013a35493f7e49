"""API authentication, the SSRF guard, the request deadline, secrets, and safe paths."""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import imagekitio
import pytest
from imagekitio import ImageKit
from yarl import URL

import pixelport.origins.http as origin_http
from pixelport.asgi import Message, Scope
from pixelport.errors import OriginFailed, OriginUnreachable
from pixelport.origins import http1
from pixelport.origins.http import HttpClient
from pixelport.security import api_auth, network
from pixelport.security.api_auth import basic_user, is_api_path, is_authorized
from pixelport.security.deadline import with_deadline
from tests.helpers import OriginServer, free_port, make_image
from tests.test_delivery import config, web_origin

KEY = "private_live_key"


def basic(user: str, password: str = "do_not_set") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


# --- API authentication -----------------------------------------------------------------------

def test_api_paths() -> None:
    for path in ("/v1/files", "/v1", "/api/v1/files/upload", "/api/v1", "/v1/",
                 "/api/v2/files/upload"):
        assert is_api_path(path), path
    for path in ("/v1.jpg", "/v10/files", "/api/v3/files/upload", "/api/x.jpg", "/tr:w-1/v1/a"):
        assert not is_api_path(path), path


def test_basic_user_parsing() -> None:
    assert basic_user(b"Basic " + base64.b64encode(b"key:do_not_set")) == b"key"
    assert basic_user(b"basic " + base64.b64encode(b"key")) == b"key"
    assert basic_user(b"BASIC " + base64.b64encode(b"k:e:y")) == b"k"
    for bad in (None, b"", b"Bearer abc", b"Basic", b"Basic !!!notbase64", b"Digest x=y"):
        assert basic_user(bad) is None, bad


def test_every_key_is_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(len(a))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    headers = [(b"authorization", b"Basic " + base64.b64encode(b"one:x"))]
    assert is_authorized(headers, ["one", "two", "three"])
    assert calls == [32, 32, 32]  # all keys, equal-length digests: no early exit, no length leak
    assert not is_authorized(headers, ["two"])
    assert not is_authorized([], ["one"])
    assert not is_authorized(headers, [])


@pytest.mark.integration
def test_api_requires_the_private_key(serve: Any) -> None:
    pp = serve(config(None, security={"private_key": KEY, "private_keys": ["older-key"]}))
    for headers in ({}, basic("wrong-key"), basic(""), basic(KEY + "x"), basic(KEY[:-1]),
                    {"Authorization": f"Bearer {KEY}"}):
        for target, method in (("/v1/files", "GET"), ("/api/v1/files/upload", "POST"),
                               ("/v1/files/abc/details", "DELETE")):
            response = pp.get(target, headers, method=method)
            assert response.status == 401, (target, headers)
            assert response.headers["content-type"].startswith("application/json")
            assert "message" in json.loads(response.body)
            assert response.headers["www-authenticate"].startswith("Basic")
            assert KEY.encode() not in response.body
    for key in (KEY, "older-key"):
        response = pp.get("/v1/files", basic(key, "anything at all"))
        assert response.status == 404 and json.loads(response.body)["message"]
        assert pp.get("/api/v1/files/upload", basic(key), method="POST").status == 404
    # Delivery is untouched by API authentication.
    assert pp.get("/v1.jpg").ik_error.startswith("ENOENT")


@pytest.mark.integration
def test_api_without_a_configured_key_refuses_everyone(serve: Any) -> None:
    pp = serve(config(None))
    assert pp.get("/v1/files", basic("")).status == 401
    assert pp.get("/v1/files", basic("anything")).status == 401


@pytest.mark.integration
def test_api_through_imagekits_sdk(serve: Any) -> None:
    pp = serve(config(None, security={"private_key": KEY}))
    wrong = ImageKit(private_key="not-the-key", base_url=pp.url, max_retries=0)
    with pytest.raises(imagekitio.AuthenticationError):
        wrong.files.get("file-id")
    with pytest.raises(imagekitio.AuthenticationError):
        wrong.files.upload(file=b"data", file_name="a.txt")
    right = ImageKit(private_key=KEY, base_url=pp.url, max_retries=0)
    with pytest.raises(imagekitio.NotFoundError):  # authenticated; the route comes later
        right.files.get("file-id")
    with pytest.raises(imagekitio.NotFoundError):
        right.files.upload(file=b"data", file_name="a.txt")


@pytest.mark.integration
def test_api_gate_routes_authenticated_requests() -> None:
    gate = api_auth.ApiGate(["k"])
    seen: list[str] = []

    async def handler(scope: Scope, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await api_auth.send_json(send, 200, {"ok": "yes"})

    gate.route("/v1/files", handler)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    def call(path: str, user: bytes) -> int:
        sent.clear()
        scope = {"type": "http", "path": path, "method": "GET",
                 "headers": [(b"authorization", b"Basic " + base64.b64encode(user + b":"))]}
        asyncio.run(gate(scope, receive, send))
        return int(sent[0]["status"])

    assert call("/v1/files/abc/details", b"k") == 200
    assert call("/v1/filesystem", b"k") == 404  # a prefix matches whole segments only
    assert call("/v1/files", b"x") == 401
    assert seen == ["/v1/files/abc/details"]


# --- the SSRF guard ---------------------------------------------------------------------------

@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.255.255.254", "::1", "0.0.0.0", "::", "10.0.0.1", "172.16.0.1",
    "172.31.255.255", "192.168.1.1", "169.254.169.254", "fe80::1", "fe80::1%eth0", "fc00::1",
    "fd12:3456::1", "100.64.0.1", "192.0.0.1", "192.0.2.1", "198.18.0.1", "198.51.100.1",
    "203.0.113.1", "224.0.0.1", "ff02::1", "240.0.0.1", "255.255.255.255", "::ffff:127.0.0.1",
    "::ffff:10.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "64:ff9b:1::a00:1",
    "2002:7f00:1::", "2002:a9fe:a9fe::", "2001:0:4136:e378:8000:63bf:80ff:fffe", "2001:db8::1",
    "not-an-ip",
])
def test_forbidden_addresses(address: str) -> None:
    assert network.blocked_reason(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111",
                                     "::ffff:8.8.8.8", "2002:0808:0808::1"])
def test_public_addresses(address: str) -> None:
    assert network.blocked_reason(address) is None


@pytest.mark.integration
def test_web_origins_never_reach_forbidden_addresses(serve: Any, origin: OriginServer) -> None:
    origin.files["/a.jpg"] = make_image(10, 10)
    port = origin.port
    hosts = [
        # the real origin, reachable only if the guard fails
        "127.0.0.1", "localhost", "127.1", "2130706433", "0x7f000001", "[::ffff:127.0.0.1]",
        "0.0.0.0", "[::1]", "localhost.",
        # other classes: refused before any connection attempt
        "10.0.0.1", "192.168.1.1", "172.16.0.1", "169.254.169.254", "100.64.0.1", "[fd00::1]",
        "[fe80::1]", "224.0.0.1",
    ]
    origins = [{"name": f"o{i}", "type": "web_server", "base_url": f"http://{host}:{port}",
                "connect_timeout": 3} for i, host in enumerate(hosts)]
    endpoints = [{"identifier": f"e{i}", "origins": [f"o{i}"]} for i in range(len(hosts))]
    pp = serve(config(None, origins, endpoints, security={"allow_private_networks": False}))
    for i, host in enumerate(hosts):
        began = time.monotonic()
        response = pp.get(f"/e{i}/a.jpg")
        assert response.status == 404, host
        # Refused, not timed out: by the guard, or earlier (yarl rejects `127.1` as a URL,
        # the system resolver does not know `localhost.`).
        assert time.monotonic() - began < 2.5, host
        assert any(why in response.ik_error for why in (
            "forbidden", "InvalidUrl", "could not resolve")), (host, response.ik_error)
        if i >= hosts.index("10.0.0.1"):
            assert "forbidden" in response.ik_error, (host, response.ik_error)
        assert origin.requests == [], host


@pytest.mark.integration
def test_allow_private_networks_opens_the_guard(serve: Any, origin: OriginServer) -> None:
    origin.files["/a.jpg"] = make_image(10, 10)
    pp = serve(config(None, [{"name": "o", "type": "web_server",
                              "base_url": f"http://localhost:{origin.port}"}],
                      security={"allow_private_networks": True}))
    assert pp.get("/a.jpg").status == 200


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: dict[str, str] = {}
    hits: list[str] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        host = str(self.server.server_address[0])  # type: ignore[index]
        self.hits.append(host + self.path)
        location = self.routes.get(self.path)
        self.send_response(302 if location else 200)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture
def servers() -> Iterator[tuple[ThreadingHTTPServer, ThreadingHTTPServer, list[str]]]:
    """A "public" server on 127.0.0.2 (the test lets the guard allow it) and a private one on
    127.0.0.1 that must never be reached."""
    hits: list[str] = []
    handler = type("Handler", (_Handler,), {"routes": {}, "hits": hits})
    public = ThreadingHTTPServer(("127.0.0.2", 0), handler)
    private = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for server in (public, private):
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield public, private, hits
    for server in (public, private):
        server.shutdown()
        server.server_close()


class FakeResolver:
    """Gives names whatever address the test says (a DNS server the attacker controls)."""

    def __init__(self, answers: dict[str, str | list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[tuple[int, tuple[object, ...]]]:
        self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, f"unknown host {host}")
        found = self.answers[host]
        return [(socket.AF_INET, (ip, port)) for ip in ([found] if isinstance(found, str)
                                                      else found)]


@pytest.fixture
def public_127_0_0_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat 127.0.0.2 as a public address, so a test origin can stand for the internet."""
    real = network.blocked_reason

    def patched(address: str) -> str | None:
        return None if address == "127.0.0.2" else real(address)

    monkeypatch.setattr(network, "blocked_reason", patched)


def fetch(client: HttpClient, url: str) -> int:
    async def go() -> int:
        try:
            response = await client.get(url, {}, http1.Timeouts(5, 5), "web origin")
            status = response.status
            response.release()
            return status
        finally:
            await client.aclose()

    return asyncio.run(go())


@pytest.mark.integration
@pytest.mark.usefixtures("public_127_0_0_2")
def test_every_redirect_hop_is_checked(servers: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    public, private, hits = servers
    pub, priv = public.server_address[1], private.server_address[1]
    resolver = FakeResolver({"public.test": "127.0.0.2", "internal.test": "127.0.0.1"})
    monkeypatch.setattr(origin_http, "resolver", resolver)
    routes = public.RequestHandlerClass.routes
    routes.update({
        "/to-literal": f"http://127.0.0.1:{priv}/secret",
        "/to-name": f"http://internal.test:{priv}/secret",
        "/to-mapped": f"http://[::ffff:127.0.0.1]:{priv}/secret",
        "/to-public": f"http://public.test:{pub}/ok",
        "/to-file": "file:///etc/passwd",
        "/loop": "/loop",
    })
    # The control: the "public" origin and a redirect between public names do work, so the
    # refusals below are the guard's doing and not a broken setup.
    assert fetch(HttpClient(allow_private_networks=False), f"http://public.test:{pub}/ok") == 200
    assert fetch(HttpClient(allow_private_networks=False),
                 f"http://public.test:{pub}/to-public") == 200
    for path in ("/to-literal", "/to-name", "/to-mapped"):
        with pytest.raises(OriginUnreachable, match="forbidden"):
            fetch(HttpClient(allow_private_networks=False), f"http://public.test:{pub}{path}")
    with pytest.raises(OriginUnreachable, match="forbidden"):
        fetch(HttpClient(allow_private_networks=False), f"http://internal.test:{priv}/secret")
    with pytest.raises(OriginFailed, match="non-HTTP"):
        fetch(HttpClient(allow_private_networks=False), f"http://public.test:{pub}/to-file")
    with pytest.raises(OriginFailed, match="more than 3 redirects"):
        fetch(HttpClient(allow_private_networks=False, max_redirects=3),
              f"http://public.test:{pub}/loop")
    assert not [hit for hit in hits if hit.startswith("127.0.0.1")]
    assert hits.count("127.0.0.2/loop") == 4


@pytest.mark.integration
def test_the_connection_check_catches_what_a_fooled_resolver_lets_through(
        servers: Any) -> None:
    """DNS rebinding and resolver caches: the address connected to is checked again."""
    _, private, hits = servers
    port = private.server_address[1]
    timeouts = http1.Timeouts(5, 5)

    async def go() -> None:
        client = http1.Client(guard=True, resolver=FakeResolver({"rebound.test": "127.0.0.1"}))
        # A cached answer that slipped past the lookup's check (a rebinding server's second
        # answer) is still refused when it is connected to.
        client.names.put(("rebound.test", port), (time.monotonic(),
                                                  [(socket.AF_INET, ("127.0.0.1", port))]))
        with pytest.raises(network.BlockedAddressError, match="connecting to a forbidden"):
            await client.get(URL(f"http://rebound.test:{port}/secret"), {}, timeouts)
        with pytest.raises(network.BlockedAddressError):
            await client.get(URL(f"http://127.0.0.1:{port}/secret"), {}, timeouts)
        client.close()

    asyncio.run(go())
    assert hits == []


def test_the_lookup_drops_forbidden_answers() -> None:
    resolver = FakeResolver({"mixed.test": ["10.0.0.1", "93.184.216.34"], "x": "10.1.1.1"})

    async def go() -> None:
        client = http1.Client(guard=True, resolver=resolver)
        answers = await client._addresses("mixed.test", 80)
        assert [a[1][0] for a in answers] == ["93.184.216.34"]
        with pytest.raises(network.BlockedAddressError, match="resolves to a forbidden"):
            await client._addresses("x", 80)
        # Without the guard (allow_private_networks), every answer is kept.
        assert len(await http1.Client(guard=False, resolver=resolver)._addresses(
            "mixed.test", 80)) == 2

    asyncio.run(go())


# --- the request deadline ---------------------------------------------------------------------

@pytest.mark.integration
def test_request_timeout_answers_504(serve: Any, origin: OriginServer) -> None:
    origin.files["/slow.jpg"] = make_image(10, 10)
    origin.delays["/slow.jpg"] = 3.0
    pp = serve(config(None, [web_origin("slow", origin, read_timeout=20)],
                      server={"request_timeout": 0.5}))
    began = time.monotonic()
    response = pp.get("/slow.jpg")
    assert time.monotonic() - began < 2.0
    assert response.status == 504
    assert response.ik_error.startswith("UNIDENTIFIED - ")
    assert response.headers["cache-control"] == "no-store"
    # The server is fine afterwards. (The slow fetch itself goes on in the background and is
    # shared by identical requests meanwhile, so another file shows it.)
    origin.files["/fast.jpg"] = make_image(10, 10)
    assert pp.get("/fast.jpg").status == 200


def test_deadline_stops_at_the_first_byte() -> None:
    """A response that has started is never cut off by the deadline (slow clients, big files)."""

    async def slow_stream(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(3):
            await asyncio.sleep(0.1)
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def own_timeout(scope: Scope, receive: Any, send: Any) -> None:
        raise TimeoutError("not the deadline's")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request"}

    scope = {"type": "http", "method": "GET", "path": "/x"}

    async def run(app: Any, seconds: float) -> None:
        await with_deadline(app, seconds)(scope, receive, send)

    asyncio.run(run(slow_stream, 0.15))
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [200]
    assert b"".join(m.get("body", b"") for m in sent) == b"xxx"
    with pytest.raises(TimeoutError, match="not the deadline's"):
        asyncio.run(run(own_timeout, 5))


# --- secrets ----------------------------------------------------------------------------------

SECRET = "S3cr3t-P4ssw0rd-do-not-leak"


@pytest.mark.integration
def test_secrets_never_reach_errors_or_logs(serve: Any, origin: OriginServer,
                                            caplog: pytest.LogCaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("PP_SIGNING_KEY", SECRET + "-key")
    origin.statuses.update({"/denied.jpg": 401, "/broken.jpg": 500})
    origin.files["/slow.jpg"] = b"x"
    origin.delays["/slow.jpg"] = 1.0
    with_credentials = f"http://admin:{SECRET}@127.0.0.1:{origin.port}"
    dead = f"http://admin:{SECRET}@127.0.0.1:{free_port()}"
    pp = serve(config(None, [
        {"name": "creds", "type": "web_server", "base_url": with_credentials,
         "read_timeout": 0.3},
        {"name": "dead", "type": "web_server", "base_url": dead},
    ], [{"identifier": "", "origins": ["creds"]}, {"identifier": "dead", "origins": ["dead"]}],
        security={"allow_private_networks": True, "private_key": "env:PP_SIGNING_KEY",
                  "require_signed_urls": False}))
    responses = [pp.get(target) for target in (
        "/denied.jpg", "/broken.jpg", "/missing.jpg", "/slow.jpg", "/dead/a.jpg",
        "/a.jpg?ik-s=0123", "/v1/files",
    )]
    assert [r.status for r in responses] == [404, 404, 404, 404, 404, 401, 401]
    assert origin.requests[0].headers["authorization"].startswith("Basic ")  # creds were used
    for response in responses:
        assert SECRET not in response.ik_error
        assert SECRET.encode() not in response.body
        assert SECRET not in json.dumps(response.headers)
    assert caplog.records  # the failures were logged...
    assert SECRET not in caplog.text  # ...without the secrets


# --- safe paths -------------------------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.parametrize("target", [
    "/%c0%ae%c0%ae/secret.txt", "/%252e%252e/secret.txt", "/.%2e/secret.txt", "/%2e./secret.txt",
    "/sub%20dir/%2e%2e/%2e%2e/secret.txt", "/%5c..%5csecret.txt", "/photo.jpg%00", "/%00",
    "/C:%5csecret.txt", "/%2F%2Fetc%2Fpasswd", "///etc/passwd", "/tr:w-10/%2e%2e%2fsecret.txt",
    "/media/..%2f..%2fsecret.txt", "/media/%2e%2e/secret.txt", "/loop/x.jpg",
    "/dir-link/secret.txt",
    "/%E2%80%A5/secret.txt", "/" + "a" * 5000 + ".jpg", "/sub%20dir/" + "../" * 20 + "etc/passwd",
])
def test_traversal_gaps(serve: Any, library: Path, target: str) -> None:
    secret = library.parent / "secret.txt"
    secret.write_text("top secret")
    (library / "loop").symlink_to(library / "loop")
    (library / "dir-link").symlink_to(library.parent, target_is_directory=True)
    pp = serve(config(library, endpoints=[{"identifier": "", "origins": []},
                                          {"identifier": "media", "origins": []}]))
    response = pp.get(target)
    assert response.status in (400, 404), target
    assert b"top secret" not in response.body
    assert response.ik_error.split(" ")[0] in ("ENOENT", "EINVALID"), response.ik_error


@pytest.mark.integration
def test_symlinks_inside_the_library_still_work(serve: Any, library: Path) -> None:
    (library / "alias.jpg").symlink_to(library / "photo.jpg")
    (library / "alias-dir").symlink_to(library / "sub dir", target_is_directory=True)
    pp = serve(config(library))
    assert pp.get("/tr:w-10/alias.jpg").status == 200
    assert pp.get("/tr:w-10/alias-dir/%C3%BCn%C3%AF%20c%C3%B6d%C3%A9%20(1)+%25.jpg").status == 200


@pytest.mark.integration
def test_web_origin_gets_the_key_without_normalisation(serve: Any, origin: OriginServer) -> None:
    names = ["%2e%2e/x.jpg", "a?b#c;d=e+f.jpg", "dir//x.jpg", "café &amp; ü.jpg", "%.jpg"]
    pp = serve(config(None, [web_origin("web", origin)]))
    for name, target in zip(names, ["/%252e%252e/x.jpg", "/a%3Fb%23c;d=e+f.jpg", "/dir//x.jpg",
                                    "/caf%C3%A9%20&amp;%20%C3%BC.jpg", "/%25.jpg"], strict=True):
        pp.get(target)
        assert origin.paths()[-1] == "/" + name, target
