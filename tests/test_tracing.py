"""OpenTelemetry traces (`[tracing]`, pixelport/tracing.py): a real `pixelport serve` sends its
spans over OTLP/HTTP to a receiver in the test, which decodes them with opentelemetry-proto.
A request's server span carries its method, route class, endpoint, status, cache result and
x-request-id and continues the caller's W3C traceparent; a miss has `download` and
`transformation` children, a video thumbnail a `video` job span over its own; hot answers are
traced too. Off (the default), OpenTelemetry is never imported."""

from __future__ import annotations

import gzip
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from pixelport.config import ConfigError, from_dict
from tests.helpers import OriginServer, make_image
from tests.test_workers import _serve_config, _stop
from tests.video_media import make_clip

ROOT = Path(__file__).resolve().parent.parent
SERVER_KIND = 2  # Span.SpanKind.SPAN_KIND_SERVER


@dataclass
class Received:
    """One span as the receiver decoded it."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]
    resource: dict[str, Any]


def _value(value: AnyValue) -> Any:
    return getattr(value, value.WhichOneof("value") or "string_value")


class Receiver:
    """An OTLP/HTTP trace receiver on 127.0.0.1 (what a Collector's `otlphttp` receiver
    takes): each POST's protobuf body decoded into `spans`."""

    def __init__(self) -> None:
        self.spans: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                assert self.path == "/v1/traces"
                assert self.headers["content-type"] == "application/x-protobuf"
                receiver.take(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """Where spans are sent."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def take(self, request: ExportTraceServiceRequest) -> None:
        """Keep every span of an export request."""
        with self.lock:
            for resource_spans in request.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(Received(
                            span.name, span.trace_id.hex(), span.span_id.hex(),
                            span.parent_span_id.hex(), span.kind,
                            {a.key: _value(a.value) for a in span.attributes}, resource))

    def of_trace(self, trace_id: str, count: int, seconds: float = 15.0) -> list[Received]:
        """The spans of a trace, once `count` of them have arrived."""
        deadline = time.monotonic() + seconds
        while True:
            with self.lock:
                found = [s for s in self.spans if s.trace_id == trace_id]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def traceparent(trace_id: str, parent: str, sampled: bool = True) -> dict[str, str]:
    """The W3C header a caller (a CDN, a gateway) sends."""
    return {"traceparent": f"00-{trace_id}-{parent}-{'01' if sampled else '00'}"}


def traced_config(tmp_path: Path, origin: str, receiver: Receiver) -> Path:
    """A node with two endpoints on one web origin, tracing to `receiver`."""
    config = tmp_path / "pixelport.toml"
    config.write_text(f"""
[server]
workers = 1
[security]
private_key = "trace_key"
allow_private_networks = true
[cache]
dir = "{tmp_path / 'cache'}"
[library]
dir = ""
[tracing]
enabled = true
endpoint = "{receiver.url}"
service_name = "pixelport-test"
[[origin]]
name = "web"
type = "web_server"
base_url = "{origin}"
[[endpoint]]
identifier = ""
origins = ["web"]
[[endpoint]]
identifier = "shop"
origins = ["web"]
""")
    return config


@pytest.mark.integration
def test_spans_reach_an_otlp_receiver_with_their_parents_and_attributes(
        tmp_path: Path, origin: OriginServer, receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch) -> None:
    origin.files["/a.jpg"] = make_image(120, 90)
    origin.files["/clip.mp4"] = make_clip(tmp_path / "clip.mp4", 64, 48, 1.0,
                                          audio=False).read_bytes()
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # batches leave every 0.1 s
    process, url = _serve_config(traced_config(tmp_path, origin.url, receiver), 0)
    try:
        # A miss, continuing the caller's trace: server span, download and transformation.
        caller = "0af7651916cd43dd8448eb211c80319c"
        answer = httpx.get(f"{url}/shop/tr:w-50/a.jpg",
                           headers=traceparent(caller, "b7ad6b7169203331"), timeout=20)
        assert answer.status_code == 200
        spans = {s.name: s for s in receiver.of_trace(caller, 3)}
        assert set(spans) == {"GET delivery", "download", "transformation"}
        server = spans["GET delivery"]
        assert (server.kind, server.parent_id) == (SERVER_KIND, "b7ad6b7169203331")
        assert server.attributes == {
            "http.request.method": "GET", "url.path": "/shop/tr:w-50/a.jpg",
            "server.address": url.removeprefix("http://"), "client.address": "127.0.0.1",
            "pixelport.route": "delivery", "pixelport.endpoint": "shop",
            "http.response.status_code": 200, "pixelport.cache": "miss",
            "pixelport.request_id": answer.headers["x-request-id"]}
        assert server.resource["service.name"] == "pixelport-test"
        for child in ("download", "transformation"):
            assert spans[child].parent_id == server.span_id
        assert spans["download"].attributes["pixelport.bytes"] == len(origin.files["/a.jpg"])
        assert spans["transformation"].attributes["pixelport.render_ms"] > 0

        # The same URL again, each on a new connection: a memory hit through the app, then
        # hot answers written by the HTTP protocol; every one has its span.
        results = []
        for n in range(3):
            trace = f"{n + 1:032x}"
            again = httpx.get(f"{url}/shop/tr:w-50/a.jpg",
                              headers=traceparent(trace, "00f067aa0ba902b7"), timeout=20)
            (span,) = receiver.of_trace(trace, 1)
            assert span.parent_id == "00f067aa0ba902b7"
            assert span.attributes["pixelport.request_id"] == again.headers["x-request-id"]
            assert span.attributes["pixelport.endpoint"] == "shop"
            results.append(span.attributes["pixelport.cache"])
        assert results[0] == "hit" and results[-1] == "hot", results

        # A caller that did not sample its trace: nothing is sent for it.
        unsampled = "f" * 32
        httpx.get(f"{url}/tr:w-60/a.jpg", headers=traceparent(unsampled, "1" * 16, False))

        # The API: its own route class; the answer is given a request id to find it by.
        refused = httpx.get(f"{url}/v1/files", timeout=20)
        assert refused.status_code == 401
        api = _first(receiver, lambda s: s.name == "GET api")
        assert api.attributes["http.response.status_code"] == 401
        assert api.attributes["pixelport.request_id"] == refused.headers["x-request-id"]
        assert api.parent_id == "" and "pixelport.endpoint" not in api.attributes

        # A video thumbnail: a `video` job span over its download and its frame's render.
        thumb = httpx.get(f"{url}/clip.mp4/ik-thumbnail.jpg", timeout=30)
        assert thumb.status_code == 200
        request = _first(receiver,
                         lambda s: s.attributes.get("url.path") == "/clip.mp4/ik-thumbnail.jpg")
        video = receiver.of_trace(request.trace_id, 4)
        by_name = {s.name: s for s in video}
        assert by_name["video"].parent_id == request.span_id
        assert by_name["video"].attributes["pixelport.video.job"] == "thumbnail"
        assert by_name["download"].parent_id == by_name["video"].span_id
        assert by_name["transformation"].parent_id == by_name["video"].span_id
        assert receiver.of_trace(unsampled, 1, seconds=0.5) == []
    finally:
        _stop(process)


def _first(receiver: Receiver, check: Callable[[Received], bool],
           seconds: float = 15.0) -> Received:
    """The first span received that passes `check`, once there is one."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with receiver.lock:
            found = [s for s in receiver.spans if check(s)]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError("no such span received")


def test_off_by_default_nothing_of_opentelemetry_is_imported(tmp_path: Path) -> None:
    """An app made and serving without `[tracing]` (in a fresh interpreter: other tests import
    OpenTelemetry) never imports it."""
    script = f"""
import asyncio, sys
from pixelport.app import App
from pixelport.config import from_dict
from pixelport.server import hot_protocol, uvicorn_config
config = from_dict({{"cache": {{"dir": {str(tmp_path / 'cache')!r}}}, "library": {{"dir": ""}}}})
app = App(config)
uvicorn_config(app, "127.0.0.1", 0)
answer = asyncio.run(app.deliver("/missing.jpg"))
assert answer.status == 404 and app.tracing is None, answer
loaded = sorted(name for name in sys.modules if name.startswith("opentelemetry"))
assert not loaded, loaded
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_tracing_keys_are_checked() -> None:
    on = from_dict({"tracing": {"enabled": True, "sample_ratio": 0.25}}).tracing
    assert (on.enabled, on.endpoint, on.service_name, on.sample_ratio) == (
        True, "http://127.0.0.1:4318/v1/traces", "pixelport", 0.25)
    assert from_dict({}).tracing.enabled is False
    for bad, key in (({"endpoint": "grpc://collector:4317"}, "tracing.endpoint"),
                     ({"sample_ratio": 1.5}, "tracing.sample_ratio"),
                     ({"sample_ratio": "half"}, "tracing.sample_ratio"),
                     ({"service_name": ""}, "tracing.service_name"),
                     ({"enabled": "sometimes"}, "tracing.enabled"),
                     ({"exporter": "otlp"}, "tracing.exporter")):
        with pytest.raises(ConfigError, match=f"^p.toml: {key}: "):
            from_dict({"tracing": bad}, source="p.toml")
