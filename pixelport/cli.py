"""Command line: `pixelport serve | check-config | sign-url | purge | migrate | library scan`."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

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
    serve.add_argument("--access-log", action="store_true",
                       help="log every request (as [server] access_log = true; JSON lines "
                            "with [server] log_format = \"json\")")

    check = commands.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("config", type=Path)

    sign = commands.add_parser("sign-url", help="print a signed delivery URL")
    sign.add_argument("url", help="the full URL, e.g. https://cdn.example.com/tr:w-300/a.jpg")
    sign.add_argument("--expires-in", type=int, default=0, metavar="S",
                      help="seconds until the URL expires (default: never)")
    sign.add_argument("--config", type=Path, help="TOML config file: the endpoints and "
                      "[security] private_key (default: the PIXELPORT_PRIVATE_KEY variable)")

    purge = commands.add_parser("purge", help="purge a file's cached results from a server")
    purge.add_argument("url", help="the file's URL (a trailing * purges a prefix)")
    purge.add_argument("--config", type=Path, help="TOML config: [security] private_key and "
                       "[server] listen (default: PIXELPORT_PRIVATE_KEY and 127.0.0.1:8080)")
    purge.add_argument("--server", help="the server's base URL (default: from [server] listen)")

    migrate = commands.add_parser("migrate", help="bring the library's database schema up "
                                  "to date (serve does this too)")
    migrate.add_argument("--config", type=Path, help="TOML config file ([database] url, "
                         "[library] dir)")

    library = commands.add_parser("library", help="media library maintenance")
    library_commands = library.add_subparsers(dest="library_command", required=True)
    scan = library_commands.add_parser("scan", help="index the files found in [library] dir "
                                       "into the database (idempotent)")
    scan.add_argument("--config", type=Path, help="TOML config file")
    scan.add_argument("--quiet", action="store_true", help="no progress bar")
    scan.add_argument("--account", default="", metavar="NAME",
                      help="a sub-account's library ([[account]] name; default: the default "
                           "account's)")

    args = parser.parse_args(argv)
    try:
        if args.command == "migrate":
            return migrate_command(args.config)
        if args.command == "library":
            return scan_command(args.config, args.quiet, args.account)
        if args.command == "check-config":
            return check_config(args.config)
        if args.command == "purge":
            return purge_command(args.url, args.config, args.server)
        if args.command == "sign-url":
            return sign_url(args.url, args.expires_in, args.config)
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


def sign_url(url: str, expires_in: int, path: Path | None) -> int:
    """Print `url` signed with the first private key (ImageKit's ik-t/ik-s scheme)."""
    from pixelport.security.signing import endpoint_prefix
    from pixelport.security.signing import sign_url as sign

    config = load(path) if path is not None else Config()
    key = next(iter(config.security.keys), None) or os.environ.get("PIXELPORT_PRIVATE_KEY")
    if not key:
        raise ConfigError("sign-url needs [security] private_key in --config, or the "
                          "PIXELPORT_PRIVATE_KEY environment variable")
    expires_at = int(time.time()) + expires_in if expires_in > 0 else None
    try:
        print(sign(url, endpoint_prefix(url, config.endpoints), key, expires_at))
    except ValueError as exc:
        print(f"pixelport: sign-url: {exc}", file=sys.stderr)
        return 2
    return 0


def purge_command(url: str, path: Path | None, server: str | None) -> int:
    """Ask a running server to purge `url` through its purge API."""
    import base64
    import json
    import urllib.error
    import urllib.request

    config = load(path) if path is not None else Config()
    key = next(iter(config.security.keys), None) or os.environ.get("PIXELPORT_PRIVATE_KEY")
    if not key:
        raise ConfigError("purge needs [security] private_key in --config, or the "
                          "PIXELPORT_PRIVATE_KEY environment variable")
    if server is None:
        host, port = parse_listen(config.server.listen)
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        server = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    token = base64.b64encode(f"{key}:".encode()).decode()
    request = urllib.request.Request(  # noqa: S310 (an operator-given server URL)
        server.rstrip("/") + "/v1/files/purge", data=json.dumps({"url": url}).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            print(f"purged {url} (request {json.loads(response.read())['requestId']})")
            return 0
    except urllib.error.HTTPError as exc:
        message = exc.read().decode("utf-8", "replace")
        print(f"pixelport: purge failed: HTTP {exc.code} {message}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"pixelport: purge failed: cannot reach {server}: {exc}", file=sys.stderr)
    return 1


def _database(config: Config) -> Any:
    from pixelport.state.db import Database

    if config.library_dir is None or not config.database.url:
        raise ConfigError(f"{config.source}: [library] dir: the media library is turned off")
    return Database(config.database.url, schema=config.database.schema)


def _account(config: Config, name: str) -> Config:
    """The config of the sub-account `name` ("": the default account's own)."""
    if not name:
        return config
    from pixelport.tenancy import account_config

    for spec in config.accounts:
        if spec.name == name:
            return account_config(config, spec)
    raise ConfigError(f"{config.source}: no [[account]] named {name!r}")


def migrate_command(path: Path | None) -> int:
    """Apply the database migrations."""
    import asyncio

    config = _load(path)
    db = _database(config)

    async def run() -> None:
        try:
            await db.migrate()
        finally:
            await db.aclose()

    asyncio.run(run())
    print(f"database schema up to date ({config.database.dialect})")
    return 0


def scan_command(path: Path | None, quiet: bool, account: str = "") -> int:
    """Index the files in the library folder (an account's), with a progress bar."""
    import asyncio

    from tqdm import tqdm

    from pixelport.library.files import Library
    from pixelport.library.scan import scan
    from pixelport.library.storage import library_files
    from pixelport.library.storages import open_storage

    config = _account(_load(path), account)
    db = _database(config)
    root = config.library_dir
    assert root is not None
    if config.library_bucket is None and not root.is_dir():
        raise ConfigError(f"{config.source}: [library] dir: {root} is not a folder")

    async def run() -> int:
        storage = open_storage(root, config.library_bucket)
        try:
            await db.migrate()
            total = None if config.library_bucket is not None else await asyncio.to_thread(
                lambda: sum(1 for _ in library_files(root)))
            with tqdm(total=total, unit="file", disable=quiet, desc="scanning") as bar:
                report = await scan(Library(db, storage), bar.update)
            print(f"{report.seen} file(s) found, {report.indexed} indexed, "
                  f"{report.skipped} already indexed or skipped")
            return 0
        finally:
            await storage.aclose()
            await db.aclose()

    return asyncio.run(run())


def serve_command(args: argparse.Namespace) -> int:
    """Run the HTTP server until SIGINT/SIGTERM."""
    from pixelport import workers

    config = _load(args.config)
    try:
        host, port = parse_listen(args.listen or config.server.listen)
    except ValueError as exc:
        raise ConfigError(f"--listen: {exc}") from None
    return workers.serve(config, workers.Options(host, port, args.log_level, args.access_log))
