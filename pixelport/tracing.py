"""Optional OpenTelemetry traces of requests (`[tracing] enabled = true`), off by default.

Off, nothing here imports OpenTelemetry and no request does any work for it: the app holds no
`Tracing` (one `is None` test per request answered through ASGI), the HTTP protocol's hot
answers are built without a hook (`server.hot_protocol`), and the few places that open a
child span do so on a miss only, where a fetch or a render takes milliseconds anyway.

On, each worker process has its own tracer provider; spans leave in batches, from the SDK's
background thread, to an OTLP/HTTP (protobuf) receiver: an OpenTelemetry Collector, Jaeger,
Tempo. A request's W3C `traceparent` (and `tracestate`) makes its span a child of the caller's;
`sample_ratio` samples the traces that begin here (an incoming traceparent's sampled flag
decides for its own: ParentBased). Spans:

- one server span per request, `GET delivery` (method and route class, as in the metrics),
  with `http.request.method`, `url.path`, `server.address`, `client.address`,
  `http.response.status_code`, `pixelport.route`, `pixelport.endpoint` (the delivery
  endpoint's identifier, "" for the default one), `pixelport.cache` (Server-Timing's: `hit`,
  `miss`, `shared`, or `hot` for an answer the HTTP protocol repeated itself) and
  `pixelport.request_id` (the answer's x-request-id, given one when it has none). Hot answers
  take microseconds: their span is opened and ended as the answer is written.
- `download`: the original fetched from the endpoint's sources on a miss (produce/originals.py,
  produce/video.py);
- `transformation`: a render, from asking the render pool until the result is written, with
  `pixelport.render_ms` the render's own time on its thread (produce/image.py); a video's
  ffmpeg run or thumbnail (produce/video.py);
- `video`: a video job (a transcode, thumbnail or stream ladder), parent of its download and
  transformation. A job outlives a request that stopped waiting for it (302 to the original,
  202): its span then ends after the request's.

Work shared by identical requests (coalesced) is traced under the request that started it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from pixelport.asgi import Scope
from pixelport.config import TracingConfig

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.trace import Span

Attributes = dict[str, str | int | float | bool]
_OFF: AbstractContextManager[None] = contextlib.nullcontext()
_CARRIED = (b"traceparent", b"tracestate")


class Tracing:
    """This worker's tracer: server spans for requests, child spans for the work."""

    def __init__(self, config: TracingConfig, instance: str,
                 endpoint_of: Callable[[str, str], str | None]) -> None:
        """`instance`: this worker's id (node and worker); `endpoint_of(host, path)`: the
        delivery endpoint's identifier a request is on (None: on none)."""
        # Imported here alone: a deployment without traces loads none of it.
        from opentelemetry import context, trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.context = context
        self.trace = trace
        self.server_kind = trace.SpanKind.SERVER
        self.error = trace.Status(trace.StatusCode.ERROR)
        resource = Resource.create({"service.name": config.service_name,
                                    "service.instance.id": instance})
        # Our own provider, not the global one: several apps in one process (tests) each
        # have theirs, and nothing else in the process starts sending spans.
        self.provider = TracerProvider(
            resource=resource, sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)))
        self.provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=config.endpoint)))
        self.tracer = self.provider.get_tracer("pixelport")
        self.propagator = TraceContextTextMapPropagator()
        self.endpoint_of = endpoint_of

    def _parent(self, headers: Iterable[tuple[bytes, bytes]]) -> tuple[Context | None, str]:
        """The caller's trace context from `traceparent` (None: a new trace), and the Host."""
        carrier: dict[str, str] = {}
        host = ""
        for name, value in headers:
            if name in _CARRIED:
                carrier[name.decode("ascii")] = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
        parent = self.propagator.extract(carrier) if carrier else None
        return parent, host

    def start(self, scope: Scope, route: str) -> ServerSpan:
        """The server span of a request answered through ASGI, begun."""
        parent, host = self._parent(scope["headers"])
        # The sampler decides by trace id alone: attributes are gathered for kept spans only.
        span = self.tracer.start_span(f"{scope['method']} {route}", context=parent,
                                      kind=self.server_kind)
        if span.is_recording():
            path: str = scope["path"]
            span.set_attributes(self._request(scope["method"], path, host, route,
                                              scope.get("client")))
        return ServerSpan(self, span)

    def hot(self, target: bytes, request_id: bytes, headers: Iterable[tuple[bytes, bytes]],
            client: tuple[str, int] | None, size: int) -> None:
        """The span of a hot answer, just written by the HTTP protocol (`server.py`)."""
        parent, host = self._parent(headers)
        span = self.tracer.start_span("GET delivery", context=parent, kind=self.server_kind)
        if span.is_recording():
            path = target.split(b"?", 1)[0].decode("latin-1")
            attributes = self._request("GET", path, host, "delivery", client)
            attributes.update({"http.response.status_code": 200, "pixelport.cache": "hot",
                               "pixelport.request_id": request_id.decode("ascii"),
                               "http.response.body.size": size})
            span.set_attributes(attributes)
        span.end()

    def _request(self, method: str, path: str, host: str, route: str,
                 client: tuple[str, int] | None) -> Attributes:
        """A server span's attributes of the request."""
        attributes: Attributes = {"http.request.method": method, "url.path": path,
                                  "server.address": host, "pixelport.route": route}
        if client:
            attributes["client.address"] = client[0]
        if route == "delivery":
            endpoint = self.endpoint_of(host, path)
            if endpoint is not None:
                attributes["pixelport.endpoint"] = endpoint
        return attributes

    def shutdown(self) -> None:
        """Send the spans still queued and stop (blocking: call it from a thread)."""
        self.provider.shutdown()


class ServerSpan:
    """A request's span: current while the request runs, ended with what it answered."""

    def __init__(self, tracing: Tracing, span: Span) -> None:
        self.tracing = tracing
        self.span = span
        self.token: Token[Context] | None = None

    def enter(self) -> None:
        """Make it the current span: the work of the request opens its spans under it."""
        self.token = self.tracing.context.attach(
            self.tracing.trace.set_span_in_context(self.span))

    def failed(self, error: BaseException) -> None:
        """The request raised instead of answering."""
        if isinstance(error, Exception):
            self.span.record_exception(error)
        self.span.set_status(self.tracing.error)

    def finish(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """End it with the answer's status and headers (request id, cache result)."""
        if self.token is not None:
            self.tracing.context.detach(self.token)
        span = self.span
        if span.is_recording():
            span.set_attribute("http.response.status_code", status)
            for name, value in headers:
                if name == b"x-request-id":
                    span.set_attribute("pixelport.request_id", value.decode("latin-1"))
                elif name == b"server-timing":
                    cache = _cache_result(value.decode("latin-1"))
                    if cache:
                        span.set_attribute("pixelport.cache", cache)
            if status >= 500:  # the server's failure; a 4xx is the client's (semconv)
                span.set_status(self.tracing.error)
        span.end()


def span(tracing: Tracing | None, name: str,
         attributes: Attributes | None = None) -> AbstractContextManager[Span | None]:
    """A child span of the current one, current while the block runs; nothing when off."""
    if tracing is None:
        return _OFF
    return tracing.tracer.start_as_current_span(name, attributes=attributes)


def _cache_result(header: str) -> str | None:
    """Server-Timing's `cache;desc=...` value."""
    for entry in header.split(","):
        name, _, param = entry.strip().partition(";")
        if name == "cache" and param.startswith("desc="):
            return param[5:]
    return None
