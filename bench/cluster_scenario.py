"""The `cluster` scenario's pieces: a counting origin, the nodes' figures and the three phases.

Two pixelport nodes (separate processes, a cache folder each) share one Redis (`[cluster]
redis_url`: leases that coalesce identical work across nodes) and one bucket (moto's S3
server) as `[cache.shared]`. bench/run.py starts them (`--scenarios cluster`) and drives
these phases on N distinct transformation URLs, each a distinct original of the origin here:

  both    each URL asked of node A and of node B at the same moment (`CONCURRENT` URLs at a
          time): the node that claims the lease fetches and renders, the other waits for the
          result in the bucket.
  fresh   node C, started after that with an empty cache folder, asked each URL once, one at
          a time: every answer should come from the shared tier (`Server-Timing:
          cache;desc=shared`), neither fetched nor rendered there.
  local   C asked each URL again: a local hit (its memory tier or the hot path).

Measured: origin fetches per URL (the origin counts them), renders per URL (the nodes'
`pixelport_transformation_seconds_count` from /metrics, added up), the share of C's first
answers that are shared-tier hits, and the latency of those against C's local hits, each
request on a kept-alive connection. Nothing here starts a server process.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BUCKET = "pixelport-cluster"
CHAIN = "w-300,q-80,f-jpg"
CONCURRENT = 4  # URLs asked at once in the first phase (each of both nodes: 8 requests)
ORIGIN_DELAY = 0.05  # seconds the origin takes to answer: a web origin's, and long enough
#                      that the second node's request arrives while the first node's is made
RENDERS = "pixelport_transformation_seconds_count"
FETCHES = "pixelport_download_seconds_count"


# --- the origin -------------------------------------------------------------------------------

class CountingOrigin:
    """An HTTP origin on 127.0.0.1 counting the GETs of each path: every `/<name>.jpg` is
    `photo` followed by a line naming the path (after the JPEG's end-of-image marker), so each
    name is a distinct original, as bench/conf/nginx.conf.in does for the other scenarios."""

    def __init__(self, photo: Path, delay: float = ORIGIN_DELAY) -> None:
        self.photo = photo.read_bytes()
        self.delay = delay
        self.fetches: Counter[str] = Counter()
        self.lock = threading.Lock()
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.partition("?")[0]
                with origin.lock:
                    origin.fetches[path] += 1
                time.sleep(origin.delay)
                body = (origin.photo + b"\n" + path.encode() + b"\n"
                        if path.endswith(".jpg") else b"not here")
                self.send_response(200 if path.endswith(".jpg") else 404)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        """http://127.0.0.1:port"""
        return f"http://127.0.0.1:{self.port}"

    def count(self, paths: list[str]) -> int:
        """GETs of these origin paths so far."""
        with self.lock:
            return sum(self.fetches[p] for p in paths)

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


# --- Redis and the bucket ---------------------------------------------------------------------

def redis_command(port: int, folder: Path) -> list[str]:
    """Debian's redis-server on 127.0.0.1:port, no persistence (as tests/redis_server.py)."""
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(folder), "--protected-mode", "no"]


def redis_answers(port: int) -> bool:
    """Whether the Redis on 127.0.0.1:port answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def bucket_client(endpoint: str) -> Any:
    """A boto3 client of moto's S3 server (it takes any credentials)."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="bench", aws_secret_access_key="bench")


def bucket_keys(endpoint: str, prefix: str, containing: str = "") -> int:
    """Objects under `prefix` in the bucket whose key contains `containing`."""
    paginator = bucket_client(endpoint).get_paginator("list_objects_v2")
    return sum(1 for page in paginator.paginate(Bucket=BUCKET, Prefix=prefix)
               for item in page.get("Contents", []) if containing in item["Key"])


# --- a node's answers and figures -------------------------------------------------------------

@dataclass
class Client:
    """One kept-alive connection to a node (made again when the node closed it)."""

    port: int
    connection: http.client.HTTPConnection | None = None

    def get(self, path: str) -> tuple[int, str, float]:
        """GET `path`: status, Server-Timing's cache description, seconds taken."""
        for attempt in (0, 1):
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            started = time.perf_counter()
            try:
                self.connection.request("GET", path)
                response = self.connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
                continue
            took = time.perf_counter() - started
            return response.status, cache_state(response.getheader("server-timing") or ""), took
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection."""
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def cache_state(server_timing: str) -> str:
    """`hit`, `miss` or `shared` from `Server-Timing: …, cache;desc=…` ("" when absent)."""
    for part in server_timing.split(","):
        name, _, rest = part.strip().partition(";")
        if name == "cache":
            return rest.partition("desc=")[2].strip('"')
    return ""


def metric(port: int, name: str) -> float:
    """The value of `name` in the node's /metrics (every sample of it added up)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass
class Figures:
    """What each node's /metrics says, before and after a phase."""

    ports: dict[str, int]
    start: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.start = self.now()

    def now(self) -> dict[str, tuple[float, float]]:
        """(renders, answers made here) of each node, now."""
        return {node: (metric(port, RENDERS), metric(port, FETCHES))
                for node, port in self.ports.items()}

    def since(self) -> dict[str, dict[str, int]]:
        """Renders and answers made here by each node since this was made."""
        now = self.now()
        return {node: {"renders": round(now[node][0] - self.start[node][0]),
                       "made": round(now[node][1] - self.start[node][1])}
                for node in self.ports}


# --- the phases ---------------------------------------------------------------------------------

def paths(nonce: str, count: int) -> tuple[list[str], list[str]]:
    """(delivery paths, origin paths) of `count` distinct URLs."""
    names = [f"/cluster-{nonce}-{index}.jpg" for index in range(count)]
    return [f"/tr:{CHAIN}{name}" for name in names], names


def both(ports: dict[str, int], targets: list[str],
         concurrent_urls: int = CONCURRENT) -> dict[str, Any]:
    """Each target asked of every node at the same moment; the answers' statuses and cache
    states by node, and the wall time."""
    clients: dict[str, list[Client]] = {node: [] for node in ports}
    local = threading.local()
    lock = threading.Lock()

    def ask(node: str, target: str) -> tuple[str, int, str]:
        mine = getattr(local, "clients", None)
        if mine is None:
            mine = local.clients = {n: Client(p) for n, p in ports.items()}
            with lock:
                for n, c in mine.items():
                    clients[n].append(c)
        status, state, _ = mine[node].get(target)
        return node, status, state

    jobs = [(node, target) for target in targets for node in ports]  # a URL's asks side by side
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrent_urls * len(ports)) as pool:
        answers = list(pool.map(lambda job: ask(*job), jobs))
    wall = time.perf_counter() - started
    for each in clients.values():
        for client in each:
            client.close()
    states: dict[str, Counter[str]] = {node: Counter() for node in ports}
    statuses: Counter[int] = Counter()
    for node, status, state in answers:
        statuses[status] += 1
        states[node][state] += 1
    return {"wall_s": round(wall, 2), "statuses": dict(statuses),
            "states": {node: dict(counter) for node, counter in states.items()}}


def one_by_one(port: int, targets: list[str]) -> dict[str, Any]:
    """Each target asked once, one at a time on one connection: statuses, cache states and
    each answer's milliseconds."""
    client = Client(port)
    statuses: Counter[int] = Counter()
    states: Counter[str] = Counter()
    times: list[float] = []
    try:
        for target in targets:
            status, state, took = client.get(target)
            statuses[status] += 1
            states[state] += 1
            times.append(took * 1000)
    finally:
        client.close()
    return {"statuses": dict(statuses), "states": dict(states), **latency(times)}


def latency(ms: list[float]) -> dict[str, float | None]:
    """p50, p90 and p99 of `ms`, rounded."""
    if not ms:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None}
    ordered = sorted(ms)

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50_ms": round(statistics.median(ordered), 3), "p90_ms": rank(0.9),
            "p99_ms": rank(0.99)}


@contextlib.contextmanager
def origin_serving(photo: Path, delay: float = ORIGIN_DELAY) -> Iterator[CountingOrigin]:
    """A counting origin for the length of the block."""
    origin = CountingOrigin(photo, delay)
    try:
        yield origin
    finally:
        origin.close()
