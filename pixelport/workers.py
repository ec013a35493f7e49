"""Serving from several processes (`[server] workers`), and what each one's share is.

Why processes: libvips takes process-wide locks in every operation (its global lock around
each property get and set, GLib's signal lock, its thread set), so the threads of one process
keep about 1.6 of 2 cores busy on small images where two processes keep 1.9
(docs/performance.md). Each worker is a whole server with its own SO_REUSEPORT socket on the
same address: the kernel spreads connections between them, and no process forwards requests.

What the workers share: the disk caches (files; each worker indexes and evicts its own part,
and reads the others'), purges (`pixelport.siblings`: one worker's purge reaches all before it
answers), and the decoded copies of large originals (`transform/mezzanine.py`, in files under
the run folder). The budgets of the config are the server's, divided between the workers.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from pixelport.config import Config
from pixelport.metricsdir import prepare_multiprocess, process_dead
from pixelport.place import Place, alive

log = logging.getLogger("pixelport.workers")
_PR_SET_PDEATHSIG = 1
# Linux's SO_REUSEPORT spreads connections over the sockets bound to one address.
SPREADS = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")
RESTART_LIMIT = 5  # workers that die this many times in a row within a minute of starting
STOP_GRACE = 20.0  # seconds a worker has to finish its requests after SIGTERM


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def cores() -> int:
    """The cores this process may run on."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return usable or 1


def worker_count(config: Config) -> int:
    """`[server] workers`; 0 (the default) is one per two cores.

    One process keeps 1.6 to 1.9 cores busy (small to large images), so one per two cores
    uses most of the machine at half the memory of one per core. On 2 cores that is one
    process, which `make bench` measured faster than two on `srcset` (two: -5 to -8 %, each
    original's resizes made in both) and at half their memory, though slower on `small`
    (two: +10 to +18 %). Only on Linux: elsewhere SO_REUSEPORT sends every connection to
    one socket, or is missing, so one process serves.
    """
    if not SPREADS:
        return 1
    return config.server.workers or max(1, cores() // 2)


def share(config: Config, count: int) -> Config:
    """The config one of `count` workers runs with: its part of every budget."""
    if count == 1:
        return config
    server, cache = config.server, config.cache
    threads = server.processing_threads or max(1, cores() // count) + 1
    return dataclasses.replace(
        config,
        server=dataclasses.replace(server, processing_threads=threads,
                                   processing_queue=max(1, server.processing_queue // count),
                                   max_connections=max(1, server.max_connections // count)),
        cache=dataclasses.replace(cache, max_size=cache.max_size // count,
                                  memory_size=cache.memory_size // count,
                                  originals_max_size=cache.originals_max_size // count,
                                  decoded_memory=cache.decoded_memory // count))


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port that other workers can bind as well (SO_REUSEPORT)."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass(frozen=True)
class Options:
    """How `pixelport serve` was asked to run."""

    host: str
    port: int
    log_level: str = "info"
    access_log: bool = False


def run_worker(config: Config, options: Options, place: Place) -> None:
    """One worker process: its share of the config, its own socket, until SIGTERM/SIGINT."""
    from pixelport import server
    from pixelport.app import App

    json_logs = config.server.log_format == "json"
    setup_logging(options.log_level, place, json_logs)
    access = options.access_log or config.server.access_log
    # JSON access lines are written by the app, and by the protocol for hot answers (kept on);
    # uvicorn's text access log needs every request to go through ASGI.
    app = App(share(config, place.count), hot_answers=json_logs or not access, place=place,
              access_log=access and json_logs)
    sock = None if place.alone else listening_socket(options.host, options.port)
    server.run(app, options.host, options.port, options.log_level,
               access and not json_logs, sock)


def _die_with(parent: int) -> None:
    """Leave the terminal's process group and stop when the supervisor `parent` dies.

    A Ctrl-C then reaches the supervisor alone, which stops each worker once; and a worker
    whose supervisor is killed outright stops too, rather than keep the port.
    """
    os.setpgrp()
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # it died before the call
        os.kill(os.getpid(), signal.SIGTERM)


def setup_logging(level: str, place: Place, json_lines: bool = False) -> None:
    """Log lines with the worker's number when there are several (`json_lines`: as JSON)."""
    if json_lines:
        from pixelport import accesslog

        accesslog.setup(level, None if place.alone else place.index)
        logging.getLogger("pyvips").setLevel(logging.WARNING)
        return
    who = "" if place.alone else f"[{place.index}] "
    logging.basicConfig(level=level.upper(),
                        format=f"%(asctime)s %(levelname)s {who}%(name)s: %(message)s")
    logging.getLogger("pyvips").setLevel(logging.WARNING)  # libvips narrates every operation


def serve(config: Config, options: Options) -> int:
    """Serve with `[server] workers` processes until SIGTERM/SIGINT; the exit status."""
    count = worker_count(config)
    if count < config.server.workers:
        log.warning("[server] workers = %d: one process serves here (several need Linux)",
                    config.server.workers)
    if count == 1:
        prepare_multiprocess(None)  # one process: its metrics in memory
        run_worker(config, options, Place())
        return 0
    setup_logging(options.log_level, Place(), config.server.log_format == "json")
    # A taken port is the supervisor's error, said once. Bound without SO_REUSEPORT, so that
    # a server already running (whose workers' sockets allow it) is found too, rather than
    # sharing the port with this one.
    try:
        with socket.socket(_family(options.host)) as probe:
            probe.bind((options.host, options.port))
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", options.host, options.port, exc.strerror)
        return 1
    folder = _memory_folder()
    _remove_abandoned(Path(folder or tempfile.gettempdir()))
    run_dir = Path(tempfile.mkdtemp(prefix=f"pixelport-run-{os.getpid()}-", dir=folder))
    prepare_multiprocess(run_dir)  # before a worker imports prometheus-client
    try:
        return Supervisor(config, options, count, run_dir).run()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _remove_abandoned(parent: Path) -> None:
    """Delete the run folders of supervisors that were killed (their decoded copies are
    memory on tmpfs)."""
    for folder in parent.glob("pixelport-run-*-*"):
        try:
            pid = int(folder.name.split("-")[2])
            mine = folder.stat().st_uid == os.getuid()
        except (ValueError, OSError):
            continue
        if mine and not alive(pid):
            shutil.rmtree(folder, ignore_errors=True)


def _memory_folder() -> str | None:
    """The tmpfs /dev/shm if this system has one: decoded copies are memory, not disk."""
    shm = Path("/dev/shm")  # noqa: S108 (mkdtemp makes a private 0700 folder in it)
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


class Supervisor:
    """Starts the workers, restarts one that dies, and stops them all on a signal."""

    def __init__(self, config: Config, options: Options, count: int, run_dir: Path) -> None:
        self.config = config
        self.options = options
        self.run_dir = run_dir
        self.workers: list[subprocess.Popen[bytes] | None] = [None] * count
        self.started = [0.0] * count
        self.failures = [0] * count
        self.stopping = False

    def start(self, index: int) -> None:
        """Start (or restart) worker `index`: a new interpreter, handed its settings on stdin.

        Not forked: libvips and GLib have started threads by import time, which fork would
        copy in whatever state they were in; nor multiprocessing's spawn, which adds a
        process of its own (13 MB) to track resources the workers do not use.
        """
        place = Place(index, len(self.workers), self.run_dir,
                      restarted=self.workers[index] is not None)
        process = subprocess.Popen([sys.executable, "-m", "pixelport.workers"],
                                   stdin=subprocess.PIPE)
        assert process.stdin is not None
        with process.stdin:
            process.stdin.write(pickle.dumps((self.config, self.options, place, os.getpid())))
        self.workers[index] = process
        self.started[index] = time.monotonic()

    def run(self) -> int:
        """Supervise until a signal; 1 if workers kept dying at start."""
        def stop(signum: int, _: FrameType | None) -> None:
            self.stopping = True

        previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
        status = 0
        try:
            for index in range(len(self.workers)):
                self.start(index)
            log.info("pixelport: %d workers on %s:%d", len(self.workers), self.options.host,
                     self.options.port)
            while not self.stopping:
                time.sleep(0.2)
                if not self.check():
                    status = 1
                    break
        finally:
            self.stop_all()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return status

    def check(self) -> bool:
        """Restart dead workers; False once one keeps dying young."""
        for index, process in enumerate(self.workers):
            if process is None or process.poll() is None or self.stopping:
                continue
            process_dead(process.pid)
            young = time.monotonic() - self.started[index] < 60
            self.failures[index] = self.failures[index] + 1 if young else 1
            if self.failures[index] >= RESTART_LIMIT:
                log.error("worker %d exited %d times in a row soon after starting; stopping",
                          index, self.failures[index])
                return False
            log.error("worker %d exited (code %s); restarting it", index, process.returncode)
            self.start(index)
        return True

    def stop_all(self) -> None:
        """SIGTERM every worker, then SIGKILL what is left after STOP_GRACE seconds."""
        alive = [p for p in self.workers if p is not None and p.poll() is None]
        for process in alive:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for process in alive:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def main() -> None:
    """A worker process: its settings come pickled on stdin from the supervisor."""
    config, options, place, parent = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 (our own parent, through a pipe)
    sys.stdin.close()
    _die_with(parent)
    run_worker(config, options, place)


if __name__ == "__main__":
    main()
