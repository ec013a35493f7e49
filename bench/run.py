"""pixelport against thumbor, ipx, nginx and the bare libvips limit, on this machine.

    make bench                       # setup.sh, then this with the defaults (about 11 minutes)
    .venv/bin/python bench/run.py --quick --no-docs        # a 3-second smoke run
    .venv/bin/python bench/run.py --scenarios cold-jpeg-c4,hot --servers pixelport,thumbor

One nginx on 127.0.0.1 serves the originals (bench/media: every /img-<x>.jpg is the 12 MP photo
and every /small-<x>.jpg the 1200x900 one, each followed by a line naming the URL, so every URL
is a distinct file); pixelport, thumbor (two processes behind an nginx proxy) and ipx read from
it, each on its own loopback port. wrk drives each scenario against each server in turn while
/proc is sampled for the RSS and CPU time of that server's process tree. Results go to
bench/results/<timestamp>.json (and latest.json); the table also goes to docs/performance.md
between its bench markers.

The `library` scenario (library_scenario.py) runs last, on a pixelport of its own: the media
library on SQLite filled with 100,000 files, uploads against the upload limit (upload_limit.py,
a bare Starlette endpoint) and the latency of a folder listing and of a searchQuery. The
`video` scenario (video_scenario.py) runs after it, on a pixelport of its own as well: a
transcode, thumbnails and an HLS ladder, each against bare ffmpeg doing the same work. The
`cluster` scenario (cluster_scenario.py) runs last: two pixelport nodes on one Redis and one
shared bucket (moto), then a third node that never saw the URLs; origin fetches and renders per
URL, and that node's shared-tier hits.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import functools
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work"


def store_dir() -> Path:
    """Where the servers keep cached files: tmpfs when there is one.

    This machine's root is ext4 without a journal, where creating a file within minutes of
    deleting many costs 7-10 times more (ext4 then skips recently freed inodes one by one):
    the servers' caches would be slowed by each other's clean-ups, and by the previous run's.
    """
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm / f"pixelport-bench-{os.getuid()}"
    return WORK / "store"


STORE = store_dir()
RESULTS = BENCH / "results"
DOC = REPO / "docs" / "performance.md"
PYTHON = Path(sys.executable)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SRCSET_WIDTHS = (320, 480, 640, 768, 1024, 1280, 1600, 1920)
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


# --- URL grammars -------------------------------------------------------------------------------

def _formats(fmt: str) -> dict[str, str]:
    """The output format's name in each server's grammar."""
    return {"pixelport": "jpg" if fmt == "jpeg" else fmt, "thumbor": fmt, "ipx": fmt}


def url(server: str, width: int, fmt: str, name: str, origin: str) -> str:
    """The path asking `server` for `name` (an origin path) at `width` px, quality 80, `fmt`."""
    f = _formats(fmt)[server]
    if server == "pixelport":
        return f"/tr:w-{width},q-80,f-{f}/{name}"
    if server == "thumbor":
        host = origin.removeprefix("http://")
        return f"/unsafe/{width}x0/filters:quality(80):format({f})/{host}/{name}"
    if server == "ipx":
        return f"/w_{width},q_80,f_{f}/o/{name}"
    raise ValueError(server)


@dataclass(frozen=True)
class Scenario:
    """One wrk run per server: `variants` are (width, format) asked of each original."""

    name: str
    connections: int
    original: str  # origin path with {id}, or a fixed path (the same URL every time)
    variants: tuple[tuple[int, str], ...]
    what: str

    def templates(self, server: str, origin: str) -> list[str]:
        """wrk path templates for `server`."""
        return [url(server, w, f, self.original, origin) for w, f in self.variants]


SCENARIOS = [
    Scenario("cold-jpeg-c4", 4, "img-{id}.jpg", ((300, "jpeg"),),
             "12 MP JPEG -> 300 px JPEG q80, every URL unique, 4 connections"),
    Scenario("cold-jpeg-c16", 16, "img-{id}.jpg", ((300, "jpeg"),),
             "12 MP JPEG -> 300 px JPEG q80, every URL unique, 16 connections"),
    Scenario("cold-jpeg-c64", 64, "img-{id}.jpg", ((300, "jpeg"),),
             "12 MP JPEG -> 300 px JPEG q80, every URL unique, 64 connections (memory bound)"),
    Scenario("cold-webp", 8, "img-{id}.jpg", ((300, "webp"),),
             "12 MP JPEG -> 300 px WebP q80, every URL unique, 8 connections"),
    Scenario("small", 8, "small-{id}.jpg", ((300, "jpeg"),),
             "1200x900 JPEG -> 300 px JPEG q80, every URL unique, 8 connections"),
    Scenario("srcset", 16, "img-{id}.jpg",
             tuple((w, f) for w in SRCSET_WIDTHS for f in ("jpeg", "webp")),
             "each distinct 12 MP original asked at 8 widths x 2 formats in a row, 16 conns"),
    Scenario("hot", 16, "img-hot.jpg", ((300, "jpeg"),),
             "one URL repeated (result cache), 16 connections; nginx serves the same bytes"),
]


# The limit.py operation that bounds each scenario (the same work without HTTP).
LIMIT_OF = {"cold-jpeg-c4": "jpeg-12mp", "cold-jpeg-c16": "jpeg-12mp",
            "cold-webp": "webp-12mp", "small": "jpeg-1200"}


# --- processes and /proc ------------------------------------------------------------------------

_PORTS: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on right now, never the same one twice."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _PORTS:
            _PORTS.add(port)
            return port


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(text[text.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    kids = _children()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def cpu_times(pids: list[int]) -> tuple[float, float]:
    """(utime, stime) of `pids` added up, in seconds."""
    user = system = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            text = Path(f"/proc/{pid}/stat").read_text()
            fields = text[text.rindex(")") + 2:].split()
            user += int(fields[11])
            system += int(fields[12])
    return user / CLK_TCK, system / CLK_TCK


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of `pids`, in seconds."""
    return sum(cpu_times(pids))


def memory(pids: list[int]) -> tuple[int, int]:
    """(RSS, PSS) of `pids` added up, in bytes. PSS splits pages shared by forked workers."""
    rss = pss = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
    return rss, pss


class Sampler:
    """Samples the peak RSS/PSS of a process tree every `interval` seconds in a thread."""

    def __init__(self, root: int, interval: float = 0.1) -> None:
        self.root, self.interval = root, interval
        self.peak_rss = self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            rss, pss = memory(tree(self.root))
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Server:
    """A server under test (or the origin), started in its own process group."""

    name: str
    port: int
    command: list[str]
    ready_path: str
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = REPO
    process: subprocess.Popen[bytes] | None = None
    ready: Callable[[], bool] | None = None  # instead of a GET of ready_path (not HTTP: Redis)

    @property
    def base(self) -> str:
        """http://127.0.0.1:port"""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The root of the process tree."""
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        """Start it with its output in .work/<name>.log, and wait until it answers."""
        log = (WORK / f"{self.name}.log").open("wb")
        self.process = subprocess.Popen(self.command, cwd=self.cwd, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        env={**os.environ, **self.env})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"bench: {self.name} exited at start; see {log.name}")
            if self.ready is not None:
                if self.ready():
                    return
            else:
                with contextlib.suppress(OSError):
                    status, _, _ = get(self.port, self.ready_path)
                    if status < 500:
                        return
            time.sleep(0.2)
        raise SystemExit(f"bench: {self.name} did not answer within 60 s; see {log.name}")

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL after 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until the tree is idle (requests wrk abandoned at the end are finished)."""
        deadline = time.monotonic() + timeout
        before = cpu_seconds(tree(self.pid))
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = cpu_seconds(tree(self.pid))
            if now - before < 0.05:
                return
            before = now


def get(port: int, path: str, timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    """One GET to 127.0.0.1:port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def render(template: str, target: Path, **values: str) -> Path:
    """Fill bench/conf/<template> into `target`."""
    text = Template((BENCH / "conf" / template).read_text()).substitute(values)
    target.write_text(text)
    return target


def make_servers(names: list[str], pixelport: list[str],
                 workers: int = 0) -> tuple[Server, dict[str, Server]]:
    """The nginx origin and the servers under test, configured but not started."""
    nginx_port = free_port()
    for sub in ("nginx-tmp", "hot"):
        (WORK / sub).mkdir(parents=True, exist_ok=True)
    nginx = Server("nginx", nginx_port, [
        "nginx", "-p", str(WORK), "-e", str(WORK / "nginx-error.log"), "-c",
        str(render("nginx.conf.in", WORK / "nginx.conf", work=str(WORK), port=str(nginx_port),
                   media=str(BENCH / "media")))], "/img-ready.jpg")
    origin = nginx.base
    servers: dict[str, Server] = {}
    if "pixelport" in names:
        port = free_port()
        config = render("pixelport.toml.in", WORK / "pixelport.toml", port=str(port),
                        workers=str(workers),
                        origin=origin, store=str(STORE))
        servers["pixelport"] = Server("pixelport", port, [
            *pixelport, "serve", "--config", str(config),
            "--listen", f"127.0.0.1:{port}", "--log-level", "warning"], "/healthz")
    if "thumbor" in names:
        port, port1, port2 = free_port(), free_port(), free_port()
        (WORK / "thumbor-lb-tmp").mkdir(parents=True, exist_ok=True)
        config = render("thumbor.conf.in", WORK / "thumbor.conf", store=str(STORE))
        balancer = render("thumbor-lb.conf.in", WORK / "thumbor-lb.conf", work=str(WORK),
                          port=str(port), port1=str(port1), port2=str(port2))
        servers["thumbor"] = Server("thumbor", port, [
            "bash", str(BENCH / "thumbor_cluster.sh"),
            str(BENCH / ".venv-thumbor" / "bin" / "thumbor"), str(config), str(port1),
            str(port2), str(balancer)], "/healthcheck")
    if "ipx" in names:
        port = free_port()
        servers["ipx"] = Server("ipx", port, [
            "node", str(BENCH / "ipx_server.mjs"), str(port), origin], "/")
    return nginx, servers


# --- wrk --------------------------------------------------------------------------------------

def wrk(port: int, connections: int, seconds: float, nonce: str,
        templates: list[str]) -> dict[str, Any]:
    """Run wrk with bench/wrk/paths.lua; its JSON summary."""
    return _wrk(connections, seconds, "paths.lua", f"http://127.0.0.1:{port}",
                [nonce, *templates])


def wrk_fixed(port: int, connections: int, seconds: float, path: str, method: str = "GET",
              body: Path | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Run wrk with bench/wrk/fixed.lua (one request repeated); its JSON summary."""
    return _wrk(connections, seconds, "fixed.lua", f"http://127.0.0.1:{port}{path}",
                [method, str(body) if body else "-",
                 *(f"{k}: {v}" for k, v in (headers or {}).items())])


def _wrk(connections: int, seconds: float, script: str, target: str,
         arguments: list[str]) -> dict[str, Any]:
    threads = min(2, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "60s",
               "-s", str(BENCH / "wrk" / script), target, "--", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return dict(json.loads(line.removeprefix("WRKJSON ")))
    raise SystemExit(f"bench: wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")


def measure(server: Server, nginx: Server, scenario: Scenario, seconds: float,
            nonce: str) -> dict[str, Any]:
    """One wrk run of `scenario` against `server`, with /proc figures for its tree."""
    templates = ([t if "{id}" in scenario.original else t.replace("{id}", nonce)
                  for t in scenario.templates(server.name, nginx.base)]
                 if server.name != "nginx" else ["/hot/result.jpg"])
    if "{id}" not in scenario.original:  # one URL: ask once so result caches hold it
        status, _, _ = get(server.port, templates[0])
        if status != 200:
            raise SystemExit(f"bench: {server.name} answered {status} for {templates[0]}")
    return observe(server, scenario.name, scenario.connections, nginx,
                   lambda: wrk(server.port, scenario.connections, seconds, nonce, templates))


def observe(server: Server, scenario: str, connections: int, origin: Server | None,
            run: Callable[[], dict[str, Any]], label: str | None = None) -> dict[str, Any]:
    """`run` (one wrk run against `server`), with /proc figures for the server's tree (and the
    origin's CPU time when there is one); `label` names the server in the results."""
    user0, sys0 = cpu_times(tree(server.pid))
    origin0 = cpu_seconds(tree(origin.pid)) if origin else 0.0
    t0 = time.monotonic()
    with Sampler(server.pid) as sampler:
        result = run()
        user1, sys1 = cpu_times(tree(server.pid))
        origin1 = cpu_seconds(tree(origin.pid)) if origin else 0.0
    wall = time.monotonic() - t0
    cpu0, cpu1 = user0 + sys0, user1 + sys1
    requests = max(1, result["requests"])
    statuses = {int(k): v for k, v in result["statuses"].items()}
    ok = sum(v for k, v in statuses.items() if 200 <= k < 300)
    busy = statuses.get(503, 0)
    lat = result["latency_us"]
    return {
        "server": label or server.name, "scenario": scenario, "connections": connections,
        "seconds": round(result["duration_us"] / 1e6, 2),
        "requests": result["requests"], "ok": ok, "busy_503": busy,
        "other_errors": result["requests"] - ok - busy + sum(
            result["errors"][k] for k in ("connect", "read", "write", "timeout")),
        "rps": round(ok / (result["duration_us"] / 1e6), 2),
        "p50_ms": round(lat["p50"] / 1000, 2), "p90_ms": round(lat["p90"] / 1000, 2),
        "p99_ms": round(lat["p99"] / 1000, 2), "max_ms": round(lat["max"] / 1000, 2),
        "peak_rss_mb": round(sampler.peak_rss / 2**20, 1),
        "peak_pss_mb": round(sampler.peak_pss / 2**20, 1),
        "cpu_ms_per_request": round((cpu1 - cpu0) * 1000 / requests, 2),
        "cpu_utilisation": round((cpu1 - cpu0) / wall, 2),
        "cpu_system_share": round((sys1 - sys0) / max(1e-9, cpu1 - cpu0), 2),
        "origin_cpu_ms_per_request": (round((origin1 - origin0) * 1000 / requests, 2)
                                      if origin else None),
        "statuses": statuses, "wrk_errors": result["errors"],
        "bytes_per_response": round(result["bytes"] / requests),
    }


def best(tries: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of repeated runs; errors added up and the highest memory peak over all."""
    out = dict(max(tries, key=lambda r: r["rps"]))
    out["attempts_rps"] = [r["rps"] for r in tries]
    for key in ("other_errors", "busy_503"):
        out[key] = sum(r[key] for r in tries)
    for key in ("peak_rss_mb", "peak_pss_mb"):
        out[key] = max(r[key] for r in tries)
    return out


def check_outputs(servers: dict[str, Server], nginx: Server, nonce: str) -> dict[str, Any]:
    """Every server answers every variant with an image of the asked format and width."""
    import pyvips

    magic = {"jpeg": b"\xff\xd8\xff", "webp": b"RIFF"}
    sizes: dict[str, Any] = {}
    seen: set[tuple[str, int, str, str]] = set()
    for scenario in SCENARIOS:
        for name, server in servers.items():
            for width, fmt in scenario.variants:
                key = (name, width, fmt, scenario.original.split("-")[0])
                if key in seen:
                    continue
                seen.add(key)
                original = scenario.original.replace("{id}", f"check-{nonce}")
                path = url(name, width, fmt, original, nginx.base)
                status, _, body = get(server.port, path)
                if status != 200 or not body.startswith(magic[fmt]):
                    raise SystemExit(f"bench: {name} {path}: {status} {body[:200]!r}")
                image = pyvips.Image.new_from_buffer(body, "")
                if image.width != width:
                    raise SystemExit(f"bench: {name} {path}: {image.width} px wide, not {width}")
                sizes[f"{name} {key[3]} {width} {fmt}"] = len(body)
    return sizes


# --- machine and versions -----------------------------------------------------------------------

def limit_round(limit: dict[str, Any], name: str, seconds: float,
                pipeline: str = "thumbnail") -> None:
    """One round of limit.py's operation `name`, added to `limit` (the best round counts)."""
    out = subprocess.run([str(PYTHON), str(BENCH / "limit.py"), "--seconds", str(seconds),
                          "--only", name, "--pipeline", pipeline],
                         capture_output=True, text=True, check=True)
    measured = json.loads(out.stdout)[name]
    entry = limit.setdefault(name, {**measured, "rounds": []})
    entry["rounds"].append(measured["images_per_s"])
    entry["images_per_s"] = max(entry["rounds"])
    print(f"bench: limit          {name:9} {measured['images_per_s']:9.1f} images/s "
          f"({pipeline}, no HTTP)", flush=True)


def _run(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (done.stdout + done.stderr).strip()


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / CLK_TCK


def own_seconds() -> float:
    """CPU seconds of this process and its reaped children (servers, wrk, limit.py)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def machine() -> dict[str, Any]:
    """CPU, cores, memory, kernel, date."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.M)
    return {
        "cpu": model.group(1) if model else platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem.group(1)) / 2**20, 1) if mem else None,
        "kernel": platform.release(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def versions() -> dict[str, str]:
    """Versions of everything measured."""
    from importlib.metadata import version

    import pyvips

    out = {"python": platform.python_version(), "pixelport": version("pixelport")}
    commit = _run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    if re.fullmatch(r"[0-9a-f]{7,40}", commit):
        dirty = _run(["git", "-C", str(REPO), "status", "--porcelain", "--", "pixelport"])
        out["pixelport commit"] = commit + (" with uncommitted changes" if dirty else "")
    for dist in ("pyvips", "pyvips-binary", "uvicorn", "uvloop", "httptools", "aiohttp"):
        out[dist] = version(dist)
    out["libvips (pixelport)"] = ".".join(str(pyvips.version(i)) for i in range(3))
    thumbor_py = BENCH / ".venv-thumbor" / "bin" / "python"
    if thumbor_py.exists():
        text = _run([str(thumbor_py), "-c", "from importlib.metadata import version as v; "
                     "print(v('thumbor'), v('pillow'), v('tornado'))"]).split()
        if len(text) == 3:
            out.update({"thumbor": text[0], "pillow (thumbor)": text[1],
                        "tornado (thumbor)": text[2]})
    modules = BENCH / ".ipx" / "node_modules"
    if modules.exists():
        for pkg in ("ipx", "sharp"):
            meta = json.loads((modules / pkg / "package.json").read_text())
            out[pkg] = meta["version"]
        vips = _run(["node", "-e", f"console.log(require({str(modules / 'sharp')!r})"
                     ".versions.vips)"])
        out["libvips (sharp)"] = vips.splitlines()[-1] if vips else "?"
        out["node"] = _run(["node", "--version"]).removeprefix("v")
    out["nginx"] = _run(["nginx", "-v"]).split("/")[-1]
    wrk_v = _run(["wrk", "-v"]).splitlines()
    out["wrk"] = wrk_v[0].split()[1] if wrk_v and len(wrk_v[0].split()) > 1 else "?"
    return out


# --- the report ---------------------------------------------------------------------------------

def _find(runs: list[dict[str, Any]], server: str, scenario: str) -> dict[str, Any] | None:
    return next((r for r in runs if r["server"] == server and r["scenario"] == scenario), None)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def video_targets(video: dict[str, Any]) -> list[dict[str, Any]]:
    """The video issue's three targets, each a ratio to bare ffmpeg (n/a when not run)."""
    transcode, thumbs, ladder = (video.get(k, {}) for k in ("transcode", "thumbnail", "ladder"))
    rows = [
        ("transcodes/s (720p to 480p MP4) / bare ffmpeg",
         _ratio(transcode.get("pixelport_per_s"), transcode.get("ffmpeg_per_s")), ">=", 0.9),
        ("thumbnails/s / bare ffmpeg",
         _ratio(thumbs.get("pixelport_per_s"), thumbs.get("ffmpeg_per_s")), ">=", 0.9),
        ("seconds until an sr-240_360_480_720 ladder is ready / bare ffmpeg",
         _ratio(ladder.get("pixelport_s"), ladder.get("ffmpeg_s")), "<=", 1.15),
    ]
    return [{"scenario": VIDEO, "measure": m, "value": v, "target": f"{op} {t:g}",
             "met": v is not None and (v >= t if op == ">=" else v <= t)}
            for m, v, op, t in rows]


def targets(runs: list[dict[str, Any]], limit: dict[str, Any],
            video: dict[str, Any] | None = None,
            cluster: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Each target of issue 7 with its measured ratio."""
    def rps(server: str, scenario: str) -> float | None:
        run = _find(runs, server, scenario)
        return run["rps"] if run else None

    def lim(name: str) -> float | None:
        return limit[name]["images_per_s"] if name in limit else None

    px = "pixelport"
    rows: list[tuple[str, str, float | None, float]] = [
        ("cold-jpeg", "req/s / libvips limit", _ratio(rps(px, "cold-jpeg-c16"),
                                                      lim("jpeg-12mp")), 0.95),
        ("cold-jpeg", "req/s / thumbor", _ratio(rps(px, "cold-jpeg-c16"),
                                               rps("thumbor", "cold-jpeg-c16")), 1.0),
        ("cold-jpeg", "req/s / ipx", _ratio(rps(px, "cold-jpeg-c16"),
                                           rps("ipx", "cold-jpeg-c16")), 1.35),
        ("cold-webp", "req/s / libvips limit", _ratio(rps(px, "cold-webp"), lim("webp-12mp")),
         0.95),
        ("cold-webp", "req/s / thumbor", _ratio(rps(px, "cold-webp"),
                                               rps("thumbor", "cold-webp")), 1.0),
        ("cold-webp", "req/s / ipx", _ratio(rps(px, "cold-webp"), rps("ipx", "cold-webp")), 1.35),
        ("small", "req/s / libvips limit", _ratio(rps(px, "small"), lim("jpeg-1200")), 0.95),
        ("small", "req/s / thumbor", _ratio(rps(px, "small"), rps("thumbor", "small")), 1.1),
        ("srcset", "variants/s / thumbor", _ratio(rps(px, "srcset"), rps("thumbor", "srcset")),
         3.0),
        ("hot", "req/s / nginx", _ratio(rps(px, "hot"), rps("nginx", "hot")), 0.5),
        ("hot", "req/s / thumbor result storage", _ratio(rps(px, "hot"),
                                                         rps("thumbor", "hot")), 5.0),
    ]
    out = [{"scenario": s, "measure": m, "value": v, "target": f">= {t:g}",
            "met": v is not None and v >= t} for s, m, v, t in rows]
    for scenario, bound in (("cold-jpeg-c4", 2.0), ("cold-jpeg-c16", 3.0)):
        run = _find(runs, px, scenario)
        value = _ratio(run["p99_ms"], run["p50_ms"]) if run else None
        out.append({"scenario": scenario, "measure": "p99 / p50", "value": value,
                    "target": f"<= {bound:g}", "met": value is not None and value <= bound})
    upload = _find(runs, px, "library-upload")
    value = _ratio(upload["rps"] if upload else None,
                   (_find(runs, "upload-limit", "library-upload") or {}).get("rps"))
    out.append({"scenario": LIBRARY, "measure": "uploads/s (200 KB JPEG, 4 conns) / upload limit",
                "value": value, "target": ">= 0.5", "met": value is not None and value >= 0.5})
    for scenario, what in (("library-list", "GET /v1/files?path= p50 ms, 100,000 files"),
                           ("library-search", "searchQuery p50 ms, 100,000 files")):
        run = _find(runs, px, scenario)
        value = run["p50_ms"] if run else None
        out.append({"scenario": LIBRARY, "measure": what, "value": value, "target": "<= 20",
                    "met": value is not None and value <= 20})
    out += layers_targets(runs)
    out += video_targets(video or {})
    out += cluster_targets(cluster or {})
    px_runs = [r for r in runs if r["server"] == px]
    errors = sum(r["other_errors"] for r in px_runs)
    out.append({"scenario": "all", "measure": "errors other than 503 EBUSY",
                "value": errors if px_runs else None, "target": "= 0",
                "met": bool(px_runs) and errors == 0})
    peaks = {s: max((r["peak_rss_mb"] for r in runs if r["server"] == s
                     and r["scenario"].startswith("cold-jpeg")), default=None)
             for s in (px, "thumbor")}
    value = _ratio(peaks[px], peaks["thumbor"])
    out.append({"scenario": "cold-jpeg", "measure": "peak RSS / thumbor's", "value": value,
                "target": "<= 1", "met": value is not None and value <= 1})
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def tables(report: dict[str, Any]) -> str:
    """The Markdown tables: targets, ratios per scenario, raw figures."""
    runs, limit = report["runs"], report["limit"]
    lines = ["| scenario | measure | measured | target | met |", "|---|---|---|---|---|"]
    for t in report["targets"]:
        lines.append(f"| {t['scenario']} | {t['measure']} | {_fmt(t['value'])} | {t['target']} "
                     f"| {'yes' if t['met'] else '**no**'} |")
    own = report.get("render_loop", {})
    lines += ["", "Ratios of requests/s (pixelport ÷ peer, pixelport ÷ limit; the last column: "
              "÷ pixelport's own render in the limit's loop, what the server around the render "
              "costs):", "",
              "| scenario | pixelport req/s | ÷ thumbor | ÷ ipx | ÷ nginx | ÷ libvips limit "
              "| ÷ own render loop |",
              "|---|---|---|---|---|---|---|"]
    for scenario in SCENARIOS:
        px = _find(runs, "pixelport", scenario.name)
        if px is None:
            continue
        cells = [_ratio(px["rps"], (_find(runs, peer, scenario.name) or {}).get("rps"))
                 for peer in ("thumbor", "ipx", "nginx")]
        lim = limit.get(LIMIT_OF.get(scenario.name, ""), {}).get("images_per_s")
        mine = own.get(LIMIT_OF.get(scenario.name, ""), {}).get("images_per_s")
        lines.append(f"| {scenario.name} | {_fmt(px['rps'])} | "
                     + " | ".join(_fmt(c) for c in cells) + f" | {_fmt(_ratio(px['rps'], lim))} "
                     f"| {_fmt(_ratio(px['rps'], mine))} |")
    lines += ["", "Every run (CPU ms per request: user + system time of the server's process "
              "tree over the run ÷ requests; RSS/PSS: peak of the tree, sampled every 0.1 s):", "",
              "| scenario | server | conns | req/s | each attempt | p50 ms | p99 ms | "
              "non-2xx (503) | peak RSS MB | peak PSS MB | CPU ms/req | origin CPU ms/req |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        each = ", ".join(_fmt(x) for x in r.get("attempts_rps", [r["rps"]]))
        lines.append(f"| {r['scenario']} | {r['server']} | {r['connections']} | {_fmt(r['rps'])} "
                     f"| {each} "
                     f"| {_fmt(r['p50_ms'])} | {_fmt(r['p99_ms'])} | "
                     f"{r['other_errors'] + r['busy_503']} ({r['busy_503']}) | "
                     f"{_fmt(r['peak_rss_mb'])} | {_fmt(r['peak_pss_mb'])} | "
                     f"{_fmt(r['cpu_ms_per_request'])} | "
                     f"{_fmt(r['origin_cpu_ms_per_request'])} |")
    sizes = report.get("output_bytes", {})
    if sizes:
        kinds = sorted({k.split(" ", 1)[1] for k in sizes
                        if k.split()[2] in ("300", "640", "1920")})
        servers = [s for s in ("pixelport", "thumbor", "ipx") if any(k.startswith(s + " ")
                                                                      for k in sizes)]
        lines += ["", "Bytes of each answer (the output settings differ; see above):", "",
                  "| input, width, format | " + " | ".join(servers) + " |",
                  "|---" * (len(servers) + 1) + "|"]
        for kind in sorted(kinds, key=lambda k: (k.split()[0], int(k.split()[1]), k)):
            lines.append(f"| {kind} | " + " | ".join(
                f"{sizes[f'{s} {kind}']:,}" if f"{s} {kind}" in sizes else "n/a"
                for s in servers) + " |")
    lines += ["", "The libvips limit (thumbnail_buffer + encode with pixelport's settings) and "
              "pixelport's own render (its largest shrink-on-load, then the same encode), each "
              f"in {next(iter(limit.values()))['workers'] if limit else '?'} processes, "
              "no HTTP:", "", "| operation | loop | images/s | each round |", "|---|---|---|---|"]
    for loop, measured in (("libvips limit", limit), ("own render", own)):
        lines += [f"| {name} | {loop} | {_fmt(v['images_per_s'])} | "
                  f"{', '.join(_fmt(x) for x in v.get('rounds', []))} |"
                  for name, v in measured.items()]
    lines += library_text(report)
    lines += video_text(report)
    lines += cluster_text(report)
    return "\n".join(lines)


def library_text(report: dict[str, Any]) -> list[str]:
    """The `library` scenario's section of the tables (empty when it did not run)."""
    facts = report.get("library")
    if not facts:
        return []
    import library_scenario as lib

    runs, pop = report["runs"], facts["population"]
    upload, limit = (_find(runs, s, "library-upload") for s in ("pixelport", "upload-limit"))
    lines = ["", f"The media library (`library`): SQLite holding {pop['files']:,} files in "
             f"{pop['folders'] - 1} folders of {pop['files'] // (pop['folders'] - 1):,} "
             f"({pop['file_versions']:,} versions, {pop['file_tags']:,} tags, "
             f"{pop['database_mb']} MB), written straight into the database in "
             f"{pop['build_s'] + pop['insert_s']:.1f} s before pixelport started on it; the "
             f"library, its database and the upload limit's folder on {facts['store']}. "
             f"Uploads: one {facts['jpeg_bytes']:,}-byte JPEG in a {facts['body_bytes']:,}-byte "
             "multipart body posted by wrk (`useUniqueFileName=true`: a new file each time), "
             f"pixelport with {facts['workers']} worker process(es), the upload limit "
             "(`bench/upload_limit.py`: Starlette's `request.form()` and a file write) under "
             f"uvicorn with as many; {facts.get('uploads_stored', 'n/a')} uploads stored in "
             "pixelport's database by the end. Each upload run's files (pixelport's "
             f"{facts.get('pixelport_files', 'n/a')} blobs, the limit's "
             f"{facts.get('upload-limit_files', 'n/a')} files) are deleted after it: GBs "
             "more on tmpfs slowed the next run of either server up to twice. Listings at "
             "one connection in "
             f"{min(LIBRARY_LATENCY_SECONDS, report['settings']['seconds']):g} s runs, p50 "
             "and p99 from wrk's latency distribution:", "",
             "| measure | pixelport | upload limit | pixelport ÷ limit |", "|---|---|---|---|"]
    for key, unit in (("rps", "uploads/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"),
                      ("cpu_ms_per_request", "CPU ms per upload")):
        mine, bound = (upload or {}).get(key), (limit or {}).get(key)
        lines.append(f"| {unit} | {_fmt(mine)} | {_fmt(bound)} | {_fmt(_ratio(mine, bound))} |")
    lines += ["", "| query | rows | p50 ms | p99 ms | in process ms (no HTTP) | SQLite ms "
              "(its statements) | scans of a whole library table or index |",
              "|---|---|---|---|---|---|---|"]
    for name, scenario in (("list", "library-list"), ("search", "library-search")):
        entry = facts["plans"].get(name, {})
        run = _find(runs, "pixelport", scenario) or {}
        shown = "/v1/files?" + "&".join(f"{k}={v}" for k, v in facts["queries"][name].items())
        scans = [line for st in entry.get("statements", []) for line in st["scans"]]
        sql_ms = sum(st["sqlite_ms"] for st in entry.get("statements", []))
        lines.append(f"| `{shown}` | {facts.get('rows', {}).get(scenario, 'n/a')} | "
                     f"{_fmt(run.get('p50_ms'))} | {_fmt(run.get('p99_ms'))} | "
                     f"{_fmt(entry.get('in_process_ms'))} | {_fmt(round(sql_ms, 2))} | "
                     f"{', '.join(scans) if scans else 'none: indexes used'} |")
    for error in facts.get("errors", []):
        lines += ["", f"**Failed, not measured:** `{error}`"]
    lines += ["", "Query plans (`EXPLAIN QUERY PLAN` of every statement pixelport ran for each "
              "listing, captured from its own code; SQLite's median time for each; "
              f"`{lib.SEARCH_QUERY}` is the search):", "", "```text",
              plans_text(facts["plans"]), "```"]
    return lines


def video_text(report: dict[str, Any]) -> list[str]:
    """The `video` scenario's section of the tables (empty when it did not run)."""
    facts = report.get("video")
    if not facts:
        return []
    transcode, thumbs, ladder = facts["transcode"], facts["thumbnail"], facts["ladder"]
    return [
        "", f"Video (`video`): bench/media/{facts['clip']} (6 s, 1280x720 H.264 + AAC) in "
        f"pixelport's library on {facts['store']}, pixelport with {facts['workers']} worker "
        "process(es), each request a new result, one at a time; the limit is the bundled "
        "ffmpeg run bare with the same settings in the same run (the transcode's command is "
        "pixelport's own plan, printed below). Best of "
        f"{facts['repeat']} round(s), interleaved:", "",
        "| measure | pixelport | bare ffmpeg | pixelport ÷ ffmpeg |", "|---|---|---|---|",
        f"| transcodes/s, `w-854,h-480` ({transcode['count']} per round) | "
        f"{_fmt(transcode['pixelport_per_s'])} | {_fmt(transcode['ffmpeg_per_s'])} | "
        f"{_fmt(_ratio(transcode['pixelport_per_s'], transcode['ffmpeg_per_s']))} |",
        f"| thumbnails/s, `w-320,so-<t>` ({thumbs['count']} per round) | "
        f"{_fmt(thumbs['pixelport_per_s'])} | {_fmt(thumbs['ffmpeg_per_s'])} | "
        f"{_fmt(_ratio(thumbs['pixelport_per_s'], thumbs['ffmpeg_per_s']))} |",
        f"| seconds until `{facts['ladder_chain']}` is ready ({', '.join(ladder['rungs'])}) | "
        f"{_fmt(ladder['pixelport_s'])} | {_fmt(ladder['ffmpeg_s'])} | "
        f"{_fmt(_ratio(ladder['pixelport_s'], ladder['ffmpeg_s']))} |",
        "", "The transcode's command: `ffmpeg -nostdin -hide_banner -loglevel error -y "
        + " ".join(transcode["command"]) + "`",
    ]


def environment_text(report: dict[str, Any]) -> str:
    """Machine, load and versions, as Markdown."""
    m = report["machine"]
    load0, other = report["load_before"], report.get("other_cpu_share", 0.0)
    lines = [
        f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}; wrk {report['settings']['seconds']:g} s per run. Load average "
        f"before the run {'/'.join(f'{x:.2f}' for x in load0)} (1/5/15 min); processes "
        f"other than the benchmark's used {other:.0%} of the machine's CPU time during it"
        + (" — **the machine was shared with other work**, so the figures are noisy."
           if other > 0.05 else "."),
        "",
        f"Each scenario ran {report['settings']['repeat']} time(s) per server, interleaved, "
        "and the fastest run counts (every attempt's req/s is listed: their spread is the "
        "noise; errors are added up over all runs and memory is the "
        "highest peak of any run). The libvips limit is measured next to the scenarios it "
        "bounds, one round after each of their attempts, and its best round counts: the "
        "speed of this shared machine drifts by a quarter over minutes, so a limit measured "
        "once at the start would bound runs made on a different machine, in effect.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()) + ".",
    ]
    workers = report["settings"].get("pixelport_workers", 0)
    if workers:
        lines += ["", f"pixelport ran with `[server] workers = {workers}`, not its default."]
    return "\n".join(lines)


def update_doc(report: dict[str, Any]) -> None:
    """Replace the part of docs/performance.md between the bench markers."""
    block = f"{BEGIN}\n{environment_text(report)}\n\n{tables(report)}\n{END}"
    text = DOC.read_text() if DOC.exists() else (
        "# Performance\n\n`make bench` measures pixelport against thumbor, ipx, nginx and the "
        "bare libvips limit; see bench/run.py.\n\n## Latest run\n\n" + BEGIN + "\n" + END + "\n")
    if BEGIN not in text or END not in text:
        text += f"\n## Latest run\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(head + block + tail)


# --- layers (`layers`) -----------------------------------------------------------------------

LAYERS = "layers"
LAYERS_WHAT = ("1200x900 JPEG -> 300 px JPEG q80, every URL unique, 8 connections: plain, with "
               "a text layer, with an image layer from the media library (one pixelport, "
               "interleaved)")
LAYER_CHAINS = {
    "plain": "w-300,q-80,f-jpg",
    "text": "w-300,q-80,f-jpg,l-text,i-pixelport,fs-28,co-FFFFFF,bg-00000080,pa-6,"
            "lfo-bottom_right,l-end",
    "image": "w-300,q-80,f-jpg,l-image,i-logo.png,w-60,lfo-top_right,l-end",
}


def layers_targets(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 23's two targets: a layer's request time over the plain resize's."""
    def rps(name: str) -> float | None:
        run = _find(runs, "pixelport", f"layers-{name}")
        return run["rps"] if run else None

    rows = [("time with a text layer / plain 300-px resize", _ratio(rps("plain"), rps("text")),
             1.25),
            ("time with an image layer from the library / plain 300-px resize",
             _ratio(rps("plain"), rps("image")), 1.3)]
    return [{"scenario": LAYERS, "measure": m, "value": v, "target": f"<= {t:g}",
             "met": v is not None and v <= t} for m, v, t in rows]


def run_layers(pixelport: list[str], workers: int, nginx: Server, seconds: float,
               repeat: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The `layers` scenario: each chain's best run of `repeat`, and every attempt."""
    import pyvips

    library = STORE / "layers-library"
    library.mkdir(parents=True, exist_ok=True)
    logo = pyvips.Image.black(160, 80).new_from_image([200, 30, 30, 230]).cast("uchar")
    (library / "logo.png").write_bytes(logo.copy(interpretation="srgb").pngsave_buffer())
    port = free_port()
    config = render("pixelport-layers.toml.in", WORK / "pixelport-layers.toml", port=str(port),
                    workers=str(workers), store=str(STORE), origin=nginx.base)
    server = Server("pixelport-layers", port, [
        *pixelport, "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}",
        "--log-level", "warning"], "/healthz")
    attempts: dict[str, list[dict[str, Any]]] = {}
    with running([server]):
        wrk(port, 4, 3, f"warmlayers{int(time.time())}",
            [f"/tr:{chain}/small-{{id}}.jpg" for chain in LAYER_CHAINS.values()])
        server.settle()
        for attempt in range(max(1, repeat)):
            for name, chain in LAYER_CHAINS.items():
                nonce = f"layers{int(time.time())}{name}{attempt}"
                template = [f"/tr:{chain}/small-{{id}}.jpg"]
                result = observe(server, f"layers-{name}", 8, nginx,
                                 lambda n=nonce, t=template: wrk(port, 8, seconds, n, t),
                                 label="pixelport")
                attempts.setdefault(name, []).append(result)
                print(f"bench: layers-{name:9} {result['rps']:9.1f} req/s  p50 "
                      f"{result['p50_ms']:8.1f} ms  non-2xx "
                      f"{result['other_errors'] + result['busy_503']:4}", flush=True)
                server.settle()
    return ([best(tries) for tries in attempts.values()],
            [t for tries in attempts.values() for t in tries])


# --- video (`video`) -------------------------------------------------------------------------

VIDEO = "video"
VIDEO_WHAT = ("video on bench/media/clip-720p.mp4: a 720p-to-480p transcode, thumbnails and "
              "an HLS ladder through pixelport, each against bare ffmpeg doing the same work")


def run_video(pixelport: list[str], workers: int, repeat: int, quick: bool) -> dict[str, Any]:
    """The `video` scenario (video_scenario.py): the best of `repeat` rounds of each measure,
    pixelport and bare ffmpeg interleaved."""
    import video_scenario as video

    from pixelport.config import load
    from pixelport.workers import worker_count

    library = STORE / "video-library"
    library.mkdir(parents=True, exist_ok=True)
    clip = library / video.CLIP
    shutil.copyfile(BENCH / "media" / video.CLIP, clip)
    port = free_port()
    config = render("pixelport-video.toml.in", WORK / "pixelport-video.toml", port=str(port),
                    workers=str(workers), store=str(STORE))
    server = Server("pixelport-video", port, [
        *pixelport, "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}",
        "--log-level", "warning"], "/healthz")
    transcodes, thumbs = (1, 4) if quick else (3, 20)
    rounds: dict[str, list[dict[str, Any]]] = {"transcode": [], "thumbnail": [], "ladder": []}
    with running([server]):
        video.get(port, f"/{video.CLIP}?tr=w-64&v=warm")  # imports, the first job
        video.get(port, f"/{video.CLIP}/ik-thumbnail.jpg?tr=w-64&v=warm")
        for attempt in range(max(1, repeat)):
            nonce = f"{int(time.time())}r{attempt}"
            rounds["transcode"].append(video.transcode(port, clip, transcodes, nonce))
            rounds["thumbnail"].append(video.thumbnails(port, clip, thumbs, nonce))
            rounds["ladder"].append(video.ladder(port, clip, nonce))
            for name, measured in rounds.items():
                print(f"bench: video {name:9} {json.dumps(measured[-1], default=str)[:150]}",
                      flush=True)
    best_of = {
        "transcode": dict(max(rounds["transcode"], key=lambda r: r["pixelport_per_s"])),
        "thumbnail": dict(max(rounds["thumbnail"], key=lambda r: r["pixelport_per_s"])),
        "ladder": dict(min(rounds["ladder"], key=lambda r: r["pixelport_s"])),
    }
    # The limit's best round too: each side's best, measured in the same run.
    best_of["transcode"]["ffmpeg_per_s"] = max(r["ffmpeg_per_s"] for r in rounds["transcode"])
    best_of["thumbnail"]["ffmpeg_per_s"] = max(r["ffmpeg_per_s"] for r in rounds["thumbnail"])
    best_of["ladder"]["ffmpeg_s"] = min(r["ffmpeg_s"] for r in rounds["ladder"])
    return {**best_of, "rounds": rounds, "clip": video.CLIP, "store": str(STORE),
            "workers": worker_count(load(config)), "repeat": max(1, repeat),
            "ladder_chain": video.LADDER}


# --- many nodes (`cluster`) -------------------------------------------------------------------

CLUSTER = "cluster"
CLUSTER_WHAT = ("two pixelport nodes (a cache folder each) on one Redis and one shared bucket "
                "(moto): distinct 1200x900 -> 300 px URLs each asked of both at once, then of "
                "a third node with an empty cache: origin fetches and renders per URL, the "
                "third node's shared-tier hits and their latency")
CLUSTER_URLS = 200  # distinct URLs (40 with --quick)


def run_cluster(pixelport: list[str], workers: int, quick: bool) -> dict[str, Any]:
    """The `cluster` scenario (cluster_scenario.py): nodes A and B asked each URL at the same
    moment, then node C, started afterwards on an empty cache folder, asked each URL twice."""
    import cluster_scenario as cluster

    from pixelport.config import load
    from pixelport.workers import worker_count

    count = 40 if quick else CLUSTER_URLS
    redis_port, bucket_port = free_port(), free_port()
    (STORE / "cluster-redis").mkdir(parents=True, exist_ok=True)
    redis = Server("redis", redis_port,
                   cluster.redis_command(redis_port, STORE / "cluster-redis"), "",
                   ready=functools.partial(cluster.redis_answers, redis_port))
    bucket = Server("moto", bucket_port, [str(PYTHON), "-m", "moto.server", "-H", "127.0.0.1",
                                          "-p", str(bucket_port)], "/")
    nonce = f"{int(time.time())}{os.getpid() % 1000:03d}"
    targets, names = cluster.paths(nonce, count)
    warm = f"/tr:{cluster.CHAIN}/cluster-warm{nonce}.jpg"
    with cluster.origin_serving(BENCH / "media" / "photo-1200x900.jpg") as origin:
        nodes: dict[str, Server] = {}
        for name in ("a", "b", "c"):
            port = free_port()
            config = render("pixelport-cluster.toml.in", WORK / f"pixelport-cluster-{name}.toml",
                            port=str(port), workers=str(workers), store=str(STORE), node=name,
                            bucket=cluster.BUCKET, bucket_endpoint=bucket.base,
                            redis_url=f"redis://127.0.0.1:{redis_port}/0", origin=origin.base)
            nodes[name] = Server(f"pixelport-cluster-{name}", port, [
                *pixelport, "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}",
                "--log-level", "warning"], "/healthz")
        a, b, c = nodes.values()
        with running([redis, bucket]):
            cluster.bucket_client(bucket.base).create_bucket(Bucket=cluster.BUCKET)
            with running([a, b]):
                for node in (a, b):  # imports, the pool, the bucket's and Redis' connections
                    _warm_cluster(node, warm)
                before = cluster.Figures({"a": a.port, "b": b.port})
                phase_both = cluster.both({"a": a.port, "b": b.port}, targets)
                made_ab = before.since()
                print(f"bench: cluster both   {count} URLs x 2 nodes in "
                      f"{phase_both['wall_s']} s: {phase_both['states']} "
                      f"{phase_both['statuses']}", flush=True)
                with running([c]):
                    _warm_cluster(c, warm)  # a shared hit: the bucket's connection made
                    before_c = cluster.Figures({"c": c.port})
                    fresh = cluster.one_by_one(c.port, targets)
                    fresh["made"] = before_c.since()["c"]
                    before_c = cluster.Figures({"c": c.port})
                    local = cluster.one_by_one(c.port, targets)
                    local["made"] = before_c.since()["c"]
                    made = before.since()  # A and B over every phase
                for phase, measured in (("fresh", fresh), ("local", local)):
                    print(f"bench: cluster {phase:6} node c: {measured['states']} "
                          f"{measured['statuses']}  p50 {measured['p50_ms']} ms  "
                          f"p99 {measured['p99_ms']} ms", flush=True)
            stored = cluster.bucket_keys(bucket.base, "results/", f"cluster-{nonce}-")
        fetches = origin.count(names)
    made["c"] = {k: fresh["made"][k] + local["made"][k] for k in ("renders", "made")}
    renders = sum(node["renders"] for node in made.values())
    answers = [phase_both["statuses"], fresh["statuses"], local["statuses"]]
    facts: dict[str, Any] = {
        "urls": count, "chain": cluster.CHAIN, "concurrent_urls": cluster.CONCURRENT,
        "origin_delay_s": cluster.ORIGIN_DELAY, "store": str(STORE),
        "workers": worker_count(load(WORK / "pixelport-cluster-a.toml")),
        "both": {**phase_both, "made": made_ab}, "fresh": fresh, "local": local,
        "made": made, "origin_fetches": fetches, "renders": renders,
        "bucket_results": stored,
        "not_200": sum(n for each in answers for status, n in each.items() if status != 200),
        "fetches_per_url": round(fetches / count, 3),
        "renders_per_url": round(renders / count, 3),
        "shared_hit_ratio": round(fresh["states"].get("shared", 0) / count, 3),
    }
    print(f"bench: cluster        origin fetches/URL {facts['fetches_per_url']}, renders/URL "
          f"{facts['renders_per_url']}, node c's shared-tier hits {facts['shared_hit_ratio']}, "
          f"made by node {made}", flush=True)
    return facts


def _warm_cluster(node: Server, path: str) -> None:
    status, _, body = get(node.port, path)
    if status != 200:
        raise SystemExit(f"bench: {node.name} answered {status} for {path}: {body[:200]!r}")


def cluster_targets(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 25's targets: one fetch and one render per URL over every node, and every first
    answer of a node that never saw the URL from the shared tier (n/a when not run)."""
    rows = [("origin fetches per distinct URL", facts.get("fetches_per_url"), 1),
            ("renders per distinct URL (pixelport_transformation_seconds_count, every node)",
             facts.get("renders_per_url"), 1),
            ("shared-tier hits / first asks of a node that never saw the URL",
             facts.get("shared_hit_ratio"), 1),
            ("answers other than 200", facts.get("not_200"), 0)]
    return [{"scenario": CLUSTER, "measure": m, "value": v, "target": f"= {t:g}",
             "met": v is not None and v == t} for m, v, t in rows]


def cluster_text(report: dict[str, Any]) -> list[str]:
    """The `cluster` scenario's section of the tables (empty when it did not run)."""
    facts = report.get("cluster")
    if not facts:
        return []
    both, fresh, local = facts["both"], facts["fresh"], facts["local"]

    def states(counted: dict[str, int]) -> str:
        return " | ".join(str(counted.get(s, 0)) for s in ("miss", "shared", "hit"))

    lines = [
        "", f"Many nodes (`cluster`): {facts['urls']} distinct URLs `/tr:{facts['chain']}/"
        "cluster-<n>.jpg`, each a distinct 1200x900 original of a counting origin "
        f"(`bench/cluster_scenario.py`, answering in {facts['origin_delay_s'] * 1000:g} ms); "
        "nodes A and B (separate processes, a cache folder each on "
        f"{facts['store']}, {facts['workers']} worker process(es) each) on one Redis "
        "(`[cluster] redis_url`) and one moto S3 bucket as `[cache.shared]`. Each URL asked of "
        f"A and B at the same moment ({facts['concurrent_urls']} URLs at a time); then node C, "
        "started afterwards on an empty cache folder, asked each URL once, one at a time, and "
        "once more. Answers by `Server-Timing` (`miss`: made there; `shared`: read from the "
        "bucket; `hit`: its own tiers), renders and answers made from each node's /metrics:",
        "", "| phase | node | miss | shared | hit | renders | wall s |",
        "|---|---|---|---|---|---|---|"]
    for node in ("a", "b"):
        lines.append(f"| A and B at once | {node.upper()} | {states(both['states'][node])} | "
                     f"{both['made'][node]['renders']} | {_fmt(both['wall_s'])} |")
    lines += [f"| first ask | C | {states(fresh['states'])} | {fresh['made']['renders']} "
              "| n/a |",
              f"| second ask | C | {states(local['states'])} | {local['made']['renders']} "
              "| n/a |",
              "", "| per distinct URL | origin fetches | renders | results in the bucket |",
              "|---|---|---|---|",
              f"| {facts['urls']} URLs | {_fmt(facts['fetches_per_url'])} "
              f"| {_fmt(facts['renders_per_url'])} "
              f"| {_fmt(round(facts['bucket_results'] / facts['urls'], 3))} |",
              "", "Latency on node C, one request at a time on a kept-alive connection:", "",
              "| answer | p50 ms | p90 ms | p99 ms |", "|---|---|---|---|"]
    for what, measured in (("shared-tier hit (first ask)", fresh),
                           ("local hit (second ask)", local)):
        lines.append(f"| {what} | {_fmt(measured['p50_ms'])} | {_fmt(measured['p90_ms'])} | "
                     f"{_fmt(measured['p99_ms'])} |")
    return lines


# --- the media library (`library`) ----------------------------------------------------------

LIBRARY = "library"
LIBRARY_WHAT = ("media library on SQLite with 100,000 files: a ~200 KB JPEG uploaded at 4 "
                "connections (pixelport, and the upload limit), a folder listing and a "
                "searchQuery of 100 rows at 1 connection")
# Runs at one connection are latency runs: at ~10-30 ms a request, 5 s give hundreds of
# samples, enough for a p50, and keep the scenario's share of `make bench` near a minute.
LIBRARY_LATENCY_SECONDS = 5.0


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, bytes]:
    """One request to 127.0.0.1:port; its status and body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class LibraryRun:
    """One measured request of the `library` scenario, repeated by wrk."""

    scenario: str
    server: Server
    label: str  # the server's name in the results
    connections: int
    path: str
    method: str = "GET"
    body: Path | None = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = LIBRARY_LATENCY_SECONDS

    def once(self) -> tuple[int, bytes]:
        """The request once, outside wrk (to check the answer)."""
        return request(self.server.port, self.method, self.path,
                       self.body.read_bytes() if self.body else None, self.headers)

    def wrk(self, seconds: float) -> dict[str, Any]:
        """One wrk run of it."""
        return wrk_fixed(self.server.port, self.connections, seconds, self.path, self.method,
                         self.body, self.headers)


def library_servers(pixelport: list[str], workers: int,
                    with_limit: bool) -> tuple[Server, Server | None, Path, int]:
    """pixelport on a library of its own and the upload limit, configured, not started;
    also the database file and the worker count pixelport will run with."""
    import library_scenario as lib

    from pixelport.config import load
    from pixelport.workers import worker_count

    port = free_port()
    config = render("pixelport-library.toml.in", WORK / "pixelport-library.toml",
                    port=str(port), workers=str(workers), store=str(STORE),
                    private_key=lib.PRIVATE_KEY)
    loaded = load(config)
    count = worker_count(loaded)  # what pixelport will run: the limit gets as many
    pixelport_server = Server("pixelport-library", port, [
        *pixelport, "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}",
        "--log-level", "warning"], "/healthz")
    limit = None
    if with_limit:
        limit_port = free_port()
        # A GET of the POST-only route answers 405, which tells Server.start it is up.
        limit = Server("upload-limit", limit_port, [
            str(PYTHON), "-m", "uvicorn", "upload_limit:app", "--app-dir", str(BENCH),
            "--host", "127.0.0.1", "--port", str(limit_port), "--workers", str(count),
            "--http", "httptools", "--loop", "uvloop", "--log-level", "warning",
            "--no-access-log"], lib.UPLOAD_PATH,
            env={"UPLOAD_LIMIT_DIR": str(STORE / "upload-limit")})
    database = Path(loaded.database.url.split(":///", 1)[1])
    return pixelport_server, limit, database, count


def run_library(pixelport: list[str], workers: int, seconds: float, repeat: int,
                with_limit: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                           dict[str, Any]]:
    """The `library` scenario: a 100,000-file database written before pixelport starts on
    it, the query plans of the two listings, then uploads against the upload limit and the
    listings' latency with wrk; (the best run of each, every attempt, the scenario's facts)."""
    import library_scenario as lib

    px, limit, database, count = library_servers(pixelport, workers, with_limit)
    config = WORK / "pixelport-library.toml"
    migrated = subprocess.run([*pixelport, "migrate", "--config", str(config)],
                              capture_output=True, text=True, check=False)
    if migrated.returncode:
        raise SystemExit(f"bench: pixelport migrate failed: {migrated.stdout}{migrated.stderr}")
    population = lib.populate(database)
    print(f"bench: library        {population['files']:,} files in "
          f"{population['folders'] - 1} folders written in "
          f"{population['build_s'] + population['insert_s']:.1f} s "
          f"({population['database_mb']} MB)", flush=True)
    from pixelport.config import load

    plans = lib.query_plans(database, load(config).database.url)
    print(plans_text(plans), flush=True)
    jpeg = lib.make_jpeg(BENCH / "media" / "photo-4000x3000.jpg")
    body, content_type = lib.multipart_body(jpeg)
    body_file = WORK / "upload-body.bin"
    body_file.write_bytes(body)
    auth = {"Authorization": "Basic " + base64.b64encode(
        f"{lib.PRIVATE_KEY}:".encode()).decode()}
    facts: dict[str, Any] = {
        "population": population, "plans": plans, "workers": count, "errors": [],
        "jpeg_bytes": len(jpeg), "body_bytes": len(body), "store": str(STORE),
        "queries": {"list": lib.LIST_PARAMS, "search": lib.SEARCH_PARAMS},
        "upload_fields": {"fileName": "bench-upload.jpg", "folder": lib.UPLOAD_FOLDER,
                          "useUniqueFileName": "true"}}
    jobs = [LibraryRun("library-list", px, "pixelport", 1, lib.query_path(lib.LIST_PARAMS),
                       headers=auth),
            LibraryRun("library-search", px, "pixelport", 1,
                       lib.query_path(lib.SEARCH_PARAMS), headers=auth),
            LibraryRun("library-upload", px, "pixelport", 4, lib.UPLOAD_PATH, "POST",
                       body_file, {**auth, "Content-Type": content_type}, seconds)]
    if limit is not None:
        jobs.append(LibraryRun("library-upload", limit, "upload-limit", 4, lib.UPLOAD_PATH,
                               "POST", body_file, {"Content-Type": content_type}, seconds))
    attempts: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with running([s for s in (px, limit) if s is not None]):
        for job in list(jobs):
            status, answer = job.once()
            rows = _rows(answer)
            if status != 200 or rows is None:
                # Reported (and the target missed), not fatal: the other measures still run.
                error = f"{job.label} {job.method} {job.path}: {status} {answer[:300]!r}"
                print(f"bench: library        FAILED {error}", flush=True)
                facts["errors"].append(error)
                jobs.remove(job)
            elif job.method == "GET":
                facts.setdefault("rows", {})[job.scenario] = rows
        for job in jobs:  # warm up: imports, SQLite's page cache, connections
            job.wrk(1)
            job.server.settle()
        for _ in range(max(1, repeat)):
            for job in jobs:
                result = observe(job.server, job.scenario, job.connections, None,
                                 functools.partial(job.wrk, min(job.seconds, seconds)),
                                 job.label)
                attempts.setdefault((job.scenario, job.label), []).append(result)
                print(f"bench: {job.scenario:14} {job.label:12} {result['rps']:6.1f} req/s"
                      f"  p50 {result['p50_ms']:8.2f} ms  p99 {result['p99_ms']:8.2f} ms  "
                      f"non-2xx {result['other_errors'] + result['busy_503']:4}  "
                      f"RSS {result['peak_rss_mb']:7.1f} MB  "
                      f"CPU {result['cpu_ms_per_request']:7.2f} ms/req", flush=True)
                if job.method == "POST":
                    cleared = _clear_uploads(job.label)
                    facts[f"{job.label}_files"] = facts.get(f"{job.label}_files", 0) + cleared
                job.server.settle()
    # Every upload answered 200 should be a row: the database says how many there are.
    with contextlib.closing(sqlite3.connect(database)) as connection:
        facts["uploads_stored"] = connection.execute(
            "SELECT count(*) FROM files WHERE folder = ?", (lib.UPLOAD_FOLDER,)).fetchone()[0]
    tries = [t for runs in attempts.values() for t in runs]
    return [best(runs) for runs in attempts.values()], tries, facts


def _clear_uploads(label: str) -> int:
    """Delete the files an upload run stored (pixelport's blobs, the limit's files); how many.

    A run stores GBs on tmpfs (2,000 uploads/s of 200 KB), and a fuller tmpfs made the next
    run of either server up to twice as slow: each run starts from the same state instead.
    pixelport's rows stay (its database keeps growing, as a library's does); nothing reads
    the deleted bytes during the benchmark.
    """
    folder = (STORE / "library" / ".pixelport" / "blobs" if label == "pixelport"
              else STORE / "upload-limit")
    removed = 0
    for path in list(folder.rglob("*")) if folder.exists() else []:
        if path.is_file():
            path.unlink()
            removed += 1
    return removed


def _rows(answer: bytes) -> int | None:
    """Rows of a listing's JSON answer (1 for an upload's object); None when not JSON."""
    try:
        parsed = json.loads(answer)
    except ValueError:
        return None
    if isinstance(parsed, list):
        return len(parsed)
    return 1 if isinstance(parsed, dict) and ("fileId" in parsed or "name" in parsed) else None


def _short_sql(sql: str) -> str:
    """A statement as the doc shows it: column lists and long IN lists elided."""
    sql = re.sub(r"SELECT (?:[\w.]+(?: AS \w+)?, ){3,}[\w.]+(?: AS \w+)? FROM",
                 "SELECT … FROM", sql)
    return re.sub(r"\((?:\?, ){3,}\?\)", lambda m: f"({m.group(0).count('?')} values)", sql)


def plans_text(plans: dict[str, Any]) -> str:
    """The query plans as indented text: each statement, SQLite's time for it, its plan."""
    lines = []
    for name, entry in plans.items():
        lines.append(f"{name}: {entry['path']} (SQL from {entry['source']}"
                     + (f"; {entry['error']}" if entry["error"] else "") + ")")
        for statement in entry["statements"]:
            lines.append(f"  {_short_sql(statement['sql'])}   [{statement['sqlite_ms']} ms]")
            lines += [f"    {line}" for line in statement["plan"]]
    return "\n".join(lines)


# --- profiling ----------------------------------------------------------------------------------

def profile(server: Server, nginx: Server, scenario: Scenario, seconds: float, nonce: str,
            out: Path) -> None:
    """py-spy record of `server` under `scenario` (a separate, uncounted run)."""
    spy = BENCH / ".venv-tools" / "bin" / "py-spy"
    recorder = subprocess.Popen([str(spy), "record", "--pid", str(server.pid), "--subprocesses",
                                 "--threads", "--native", "--rate", "100", "--duration",
                                 str(int(seconds)), "--format", "raw", "--output", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1)
    result = measure(server, nginx, scenario, seconds, nonce)
    _, err = recorder.communicate(timeout=120)
    print(f"bench: profiled {scenario.name}: {result['rps']} req/s under py-spy -> {out}"
          + (f" ({err.decode().strip().splitlines()[-1]})" if recorder.returncode else ""))


# --- main -------------------------------------------------------------------------------------

@contextlib.contextmanager
def running(servers: list[Server]) -> Iterator[None]:
    """Start servers in order; stop them all (in reverse) whatever happens."""
    started: list[Server] = []

    def on_signal(signum: int, _: Any) -> None:
        raise SystemExit(f"bench: stopped by signal {signum}")

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        for server in servers:
            started.append(server)
            server.start()
            print(f"bench: {server.name} on {server.base} (pid {server.pid})", flush=True)
        yield
    finally:
        for server in reversed(started):
            server.stop()
        signal.signal(signal.SIGTERM, previous)


def main() -> int:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="wrk duration per run")
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs per scenario and server, interleaved; the fastest counts")
    parser.add_argument("--limit-seconds", type=float, default=5)
    parser.add_argument("--scenarios",
                        default=",".join([*(s.name for s in SCENARIOS), LAYERS, LIBRARY,
                                          VIDEO, CLUSTER]),
                        help="comma-separated, from: %(default)s")
    parser.add_argument("--servers", default="pixelport,thumbor,ipx")
    parser.add_argument("--quick", action="store_true", help="3 s runs, 2 s limit")
    parser.add_argument("--pixelport-workers", type=int, default=0, metavar="N",
                        help="pixelport's [server] workers (default 0: its default, one per "
                        "two cores)")
    parser.add_argument("--pixelport-cmd", default=str(REPO / ".venv" / "bin" / "pixelport"),
                        help="the pixelport command (to compare builds)")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/performance.md")
    parser.add_argument("--no-limit", action="store_true",
                        help="skip the libvips limit and the upload limit")
    parser.add_argument("--profile", default="", metavar="SCENARIOS",
                        help="comma-separated scenarios to profile pixelport in with py-spy "
                        "afterwards (extra, uncounted runs; results/profile-*.txt)")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.limit_seconds, args.repeat = 3, 2, 1
    wanted = set(filter(None, args.scenarios.split(",")))
    unknown = wanted - {s.name for s in SCENARIOS} - {LAYERS, LIBRARY, VIDEO, CLUSTER}
    profiled = set(filter(None, args.profile.split(",")))
    unknown |= profiled - {s.name for s in SCENARIOS}  # py-spy runs image scenarios only
    if unknown:
        raise SystemExit(f"bench: unknown scenario(s) {', '.join(sorted(unknown))}")
    scenarios = [s for s in SCENARIOS if s.name in wanted]
    names = [n for n in args.servers.split(",") if n]
    web = bool(scenarios) or LAYERS in wanted  # the scenarios nginx is the origin of
    # wrk drives those and `library`; `video` and `cluster` ask with a client of their own.
    for tool in ["nginx"] * web + ["wrk"] * (web or LIBRARY in wanted):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench: {tool} is missing; run bench/setup.sh (make bench does)")

    nonce = f"{int(time.time())}{os.getpid() % 1000:03d}"
    busy0, own0, wall0 = busy_seconds(), own_seconds(), time.monotonic()
    for folder in (WORK, STORE):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    atexit.register(shutil.rmtree, STORE, True)  # tmpfs is memory: never left behind
    RESULTS.mkdir(exist_ok=True)
    report: dict[str, Any] = {"machine": machine(), "load_before": list(os.getloadavg()),
                              "settings": {"seconds": args.seconds, "nonce": nonce,
                                           "repeat": args.repeat,
                                           "pixelport_workers": args.pixelport_workers,
                                           "scenarios": {s.name: s.what for s in scenarios}}}
    if LIBRARY in wanted:
        report["settings"]["scenarios"][LIBRARY] = LIBRARY_WHAT
    if VIDEO in wanted:
        report["settings"]["scenarios"][VIDEO] = VIDEO_WHAT
    if LAYERS in wanted:
        report["settings"]["scenarios"][LAYERS] = LAYERS_WHAT
    if CLUSTER in wanted:
        report["settings"]["scenarios"][CLUSTER] = CLUSTER_WHAT
    print(f"bench: {report['machine']['cpu']}, {report['machine']['cores']} cores, load "
          f"{report['load_before'][0]:.2f}", flush=True)
    report["versions"] = versions()

    limit: dict[str, Any] = {}
    render_loop: dict[str, Any] = {}  # pixelport's own render in the same loop (limit.py)

    # With no image scenario (`--scenarios library,video,cluster`) nothing starts here.
    nginx, servers = make_servers(names if web else [], shlex.split(args.pixelport_cmd),
                                  args.pixelport_workers)
    runs: list[dict[str, Any]] = []
    with running([nginx, *servers.values()] if web else []):
        report["output_bytes"] = check_outputs(servers, nginx, nonce)
        for server in servers.values():  # warm up: pools, connections, imports
            wrk(server.port, 4, 2 if args.quick else 3, f"warm{nonce}",
                SCENARIOS[0].templates(server.name, nginx.base))
            server.settle()
        for scenario in scenarios:
            order = list(servers.values())
            if scenario.name == "hot" and "pixelport" in servers:
                hot = url("pixelport", 300, "jpeg", scenario.original, nginx.base)
                status, _, body = get(servers["pixelport"].port, hot)
                if status == 200:
                    (WORK / "hot" / "result.jpg").write_bytes(body)
                    order.append(nginx)
            attempts: dict[str, list[dict[str, Any]]] = {}
            for attempt in range(max(1, args.repeat)):
                for server in order:
                    # A fresh id space per run: no run can hit what an earlier one cached.
                    run_nonce = f"{nonce}{SCENARIOS.index(scenario)}x{attempt}"
                    result = measure(server, nginx, scenario, args.seconds, run_nonce)
                    attempts.setdefault(server.name, []).append(result)
                    print(f"bench: {scenario.name:14} {server.name:9} {result['rps']:9.1f} req/s"
                          f"  p50 {result['p50_ms']:8.1f} ms  p99 {result['p99_ms']:8.1f} ms  "
                          f"non-2xx {result['other_errors'] + result['busy_503']:4}  "
                          f"RSS {result['peak_rss_mb']:7.1f} MB  "
                          f"CPU {result['cpu_ms_per_request']:7.1f} ms/req", flush=True)
                    if server is not nginx:
                        server.settle()
                    for sub in ("thumbor-storage", "thumbor-result-storage"):
                        shutil.rmtree(STORE / sub, ignore_errors=True)
                if scenario.name in LIMIT_OF and not args.no_limit:
                    limit_round(limit, LIMIT_OF[scenario.name], args.limit_seconds)
                    limit_round(render_loop, LIMIT_OF[scenario.name], args.limit_seconds,
                                "render")
            runs.extend(best(tries) for tries in attempts.values())
            report.setdefault("attempts", []).extend(
                t for tries in attempts.values() for t in tries)
        if LAYERS in wanted and "pixelport" in servers:
            best_runs, tries = run_layers(shlex.split(args.pixelport_cmd),
                                          args.pixelport_workers, nginx, args.seconds,
                                          args.repeat)
            runs.extend(best_runs)
            report.setdefault("attempts", []).extend(tries)
        for name in filter(None, args.profile.split(",")):
            if "pixelport" in servers:
                scenario = next(s for s in SCENARIOS if s.name == name)
                profile(servers["pixelport"], nginx, scenario, args.seconds, f"prof{nonce}",
                        RESULTS / f"profile-pixelport-{name}.txt")
    if LIBRARY in wanted and "pixelport" in names:
        best_runs, tries, report["library"] = run_library(
            shlex.split(args.pixelport_cmd), args.pixelport_workers, args.seconds, args.repeat,
            not args.no_limit)
        runs.extend(best_runs)
        report.setdefault("attempts", []).extend(tries)
    elif LIBRARY in wanted:
        print("bench: library needs pixelport in --servers; skipped", flush=True)
    if VIDEO in wanted and "pixelport" in names:
        report["video"] = run_video(shlex.split(args.pixelport_cmd), args.pixelport_workers,
                                    args.repeat, args.quick)
    elif VIDEO in wanted:
        print("bench: video needs pixelport in --servers; skipped", flush=True)
    if CLUSTER in wanted and "pixelport" in names:
        if shutil.which("redis-server") is None:
            print("bench: cluster needs redis-server (bench/setup.sh installs it); skipped",
                  flush=True)
        else:
            report["cluster"] = run_cluster(shlex.split(args.pixelport_cmd),
                                            args.pixelport_workers, args.quick)
    elif CLUSTER in wanted:
        print("bench: cluster needs pixelport in --servers; skipped", flush=True)
    report["limit"] = limit
    report["render_loop"] = render_loop
    report["load_after"] = list(os.getloadavg())
    # Every server has been stopped and reaped by now, so their CPU time is in own_seconds().
    other = busy_seconds() - busy0 - (own_seconds() - own0)
    report["cpu_seconds"] = {"machine_busy": round(busy_seconds() - busy0, 1),
                             "benchmark": round(own_seconds() - own0, 1),
                             "wall": round(time.monotonic() - wall0, 1)}
    report["other_cpu_share"] = round(max(0.0, other) / ((time.monotonic() - wall0)
                                                         * (os.cpu_count() or 1)), 3)
    report["runs"] = runs
    report["targets"] = targets(runs, limit, report.get("video"), report.get("cluster"))

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for path in (RESULTS / f"{stamp}.json", RESULTS / "latest.json"):
        path.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(tables(report))
    print(f"\nbench: results in {RESULTS / (stamp + '.json')}")
    if not args.no_docs:
        update_doc(report)
        print(f"bench: updated {DOC.relative_to(REPO)}")
    shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
