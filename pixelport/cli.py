"""Command line: `pixelport serve | check-config`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pixelport import __version__
from pixelport.config import Config, ConfigError, load, parse_listen


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `pixelport` command."""
    parser = argparse.ArgumentParser(prog="pixelport", description="Self-hosted media delivery.")
    parser.add_argument("--version", action="version", version=f"pixelport {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve media over HTTP")
    serve.add_argument("--config", type=Path, help="TOML config file (default: built-in demo "
                       "defaults: the media library in ./data/library)")
    serve.add_argument("--listen", help="HOST:PORT, overrides [server] listen")
    serve.add_argument("--log-level", default="info",
                       choices=("debug", "info", "warning", "error"))
    serve.add_argument("--access-log", action="store_true", help="log every request")

    check = commands.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("config", type=Path)

    args = parser.parse_args(argv)
    try:
        if args.command == "check-config":
            return check_config(args.config)
        return serve_command(args)
    except ConfigError as exc:
        print(f"pixelport: config error: {exc}", file=sys.stderr)
        return 2


def _load(path: Path | None) -> Config:
    return load(path) if path is not None else Config(library_dir=Path("data/library"))


def check_config(path: Path) -> int:
    """Validate the file, including each origin's own keys, without serving."""
    from pixelport.origins.base import Shared
    from pixelport.origins.http import HttpClient
    from pixelport.origins.registry import build_all

    config = load(path)
    build_all(Shared(config, HttpClient(allow_private_networks=True)))
    print(f"{path}: OK ({len(config.origins)} origin(s), {len(config.endpoints)} endpoint(s))")
    return 0


def serve_command(args: argparse.Namespace) -> int:
    """Run the HTTP server until SIGINT/SIGTERM."""
    import uvicorn

    from pixelport.app import App

    config = _load(args.config)
    try:
        host, port = parse_listen(args.listen or config.server.listen)
    except ValueError as exc:
        raise ConfigError(f"--listen: {exc}") from None
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pyvips").setLevel(logging.WARNING)  # libvips narrates every operation
    app = App(config)
    uvicorn.run(app, host=host, port=port, log_level=args.log_level, access_log=args.access_log,
                loop="uvloop", http="httptools", lifespan="on", server_header=False,
                timeout_graceful_shutdown=15)
    return 0
