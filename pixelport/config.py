"""Typed settings loaded from TOML; every error names the file, the key and what is wrong.

Any string value may be `"env:NAME"` to read it from the environment, so secrets stay out of
the file. Relative paths are taken relative to the config file's folder.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yarl import URL

from pixelport.errors import InvalidRequest
from pixelport.origins.types import BUILDERS
from pixelport.transform import registry

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "kib": 2**10, "ki": 2**10,
    "m": 10**6, "mb": 10**6, "mib": 2**20, "mi": 2**20,
    "g": 10**9, "gb": 10**9, "gib": 2**30, "gi": 2**30,
    "t": 10**12, "tb": 10**12, "tib": 2**40, "ti": 2**40,
}
_IDENTIFIER_RE = re.compile(r"^[A-Za-z0-9-]+(/[A-Za-z0-9-]+)*$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")


class ConfigError(ValueError):
    """A configuration problem, already phrased as `file: key: what is wrong`."""


def parse_size(text: str | int) -> int:
    """Parse a byte size such as `40MB`, `10GiB` or `1048576`."""
    if isinstance(text, int):
        if text < 0:
            raise ValueError("must not be negative")
        return text
    match = _SIZE_RE.match(text)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"{text!r} is not a size (examples: 40MB, 512KiB, 1048576)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | int | float) -> float:
    """Parse a duration such as `30m`, `12h`, `180d` or a number of seconds."""
    if isinstance(text, bool):
        raise ValueError("must be a duration (examples: 90, 30m, 12h, 180d)")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError("must not be negative")
        return float(text)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (examples: 90, 30m, 12h, 180d)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


class Section:
    """Reads one TOML table with typed getters and reports unknown keys."""

    def __init__(self, data: Mapping[str, Any], where: str, source: str, base: Path) -> None:
        self.data = data
        self.where = where
        self.source = source
        self.base = base
        self.seen: set[str] = set()

    def error(self, key: str, what: str) -> ConfigError:
        """An error naming the file and the full key."""
        dotted = f"{self.where}.{key}" if self.where else key
        return ConfigError(f"{self.source}: {dotted}: {what}")

    def raw(self, key: str) -> Any:
        """The value with `env:` resolved, or None when absent."""
        self.seen.add(key)
        value = self.data.get(key)
        if isinstance(value, str) and value.startswith("env:"):
            name = value[4:]
            if name not in os.environ:
                raise self.error(key, f"environment variable {name} is not set")
            return os.environ[name]
        return value

    def text(self, key: str, default: str | None = None, *, choices: tuple[str, ...] = ()) -> str:
        """A string; `choices` limits it."""
        value = self.raw(key)
        if value is None:
            if default is None:
                raise self.error(key, "is required")
            return default
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, not {type(value).__name__}")
        if choices and value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def optional_text(self, key: str) -> str | None:
        """A string or None when absent or empty."""
        value = self.raw(key)
        if value is None or value == "":
            return None
        return self.text(key)

    def integer(self, key: str, default: int, *, minimum: int = 0,
                maximum: int | None = None) -> int:
        """An integer within bounds (strings of digits from `env:` are accepted)."""
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip().replace("_", "")):
            value = int(value.strip().replace("_", ""))
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer, not {value!r}")
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and {maximum}" if maximum is not None else ""
            raise self.error(key, f"must be between {minimum}{upper}; got {value}")
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        """A non-negative number of seconds or similar."""
        value = self.raw(key)
        if value is None:
            return default
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or number < minimum:
            raise self.error(key, f"must be a number >= {minimum}; got {value!r}")
        return number

    def flag(self, key: str, default: bool) -> bool:
        """A boolean (`true`/`false`, also as strings from `env:`)."""
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, not {value!r}")
        return value

    def size(self, key: str, default: int) -> int:
        """A byte size such as `40MB`."""
        value = self.raw(key)
        if value is None:
            return default
        try:
            return parse_size(value)
        except (ValueError, TypeError) as exc:
            raise self.error(key, str(exc)) from None

    def duration(self, key: str, default: float) -> float:
        """Seconds, as a number or with a unit: `90s`, `30m`, `12h`, `180d`."""
        value = self.raw(key)
        if value is None:
            return default
        try:
            return parse_duration(value)
        except (ValueError, TypeError) as exc:
            raise self.error(key, str(exc)) from None

    def strings(self, key: str) -> tuple[str, ...]:
        """A list of strings (empty when absent)."""
        value = self.raw(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, "must be a list of strings")
        return tuple(value)

    def path(self, key: str, default: str | None) -> Path | None:
        """A filesystem path, relative to the config file's folder."""
        value = self.raw(key)
        if value is None:
            value = default
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.error(key, "must be a path string")
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.base / path)

    def table(self, key: str) -> Section:
        """A sub-table (empty when absent)."""
        value = self.raw(key)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.error(key, "must be a table")
        where = f"{self.where}.{key}" if self.where else key
        return Section(value, where, self.source, self.base)

    def finish(self) -> None:
        """Fail on keys nobody read: almost always a typo."""
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise self.error(unknown[0], "unknown key")


@dataclass(frozen=True)
class ServerConfig:
    """How the HTTP server listens and shares work."""

    listen: str = "127.0.0.1:8080"
    origin_header: tuple[str, str] = ("x-req-from", "pixelport")
    workers: int = 0  # server processes; 0: one per two cores
    processing_threads: int = 0  # per process; 0: its share of the cores, plus one
    processing_queue: int = 64
    cache_max_age: int = 31_536_000
    error_max_age: int = 60
    request_timeout: float = 30.0
    # A request's line and headers must arrive within this many seconds (else 408), and
    # connections past `max_connections` are refused at once: half-sent requests cannot hold
    # the process's file descriptors.
    request_head_timeout: float = 5.0
    max_connections: int = 4096
    # "json": every log line one JSON object (pixelport.accesslog); access_log: a line per
    # request (as `--access-log`), JSON with log_format "json", else uvicorn's text.
    log_format: str = "text"
    access_log: bool = False


@dataclass(frozen=True)
class SecurityConfig:
    """Keys and network policy."""

    # Keys stay out of repr() so a logged or printed config never shows them.
    private_key: str | None = field(default=None, repr=False)
    require_signed_urls: bool = False
    allow_private_networks: bool = False
    private_keys: tuple[str, ...] = field(default=(), repr=False)  # more keys, for rotation
    # Client-side uploads name it (`publicKey`, and the `kid` of v2 upload tokens); not secret.
    public_key: str | None = None
    # Encrypts origin credentials stored through the accounts API (security/secrets.py);
    # also read from PIXELPORT_SECRETS_KEY.
    secrets_key: str | None = field(default=None, repr=False)

    @property
    def keys(self) -> tuple[str, ...]:
        """Every accepted private key: `private_key` first, then `private_keys`."""
        ordered = ((self.private_key,) if self.private_key else ()) + self.private_keys
        return tuple(dict.fromkeys(ordered))


@dataclass(frozen=True)
class LimitsConfig:
    """Hard caps applied before and during work."""

    max_input_pixels: int = 100_000_000
    max_output_pixels: int = 100_000_000
    max_input_bytes: int = 40_000_000
    max_frames: int = 1000
    # What one request may decode: width x height x bands x bytes per sample, times the frames
    # of an animation it keeps (a 100 MP RGB photo is 300 MB, a 1000-frame 640 px GIF 1.6 GB).
    max_decoded_bytes: int = 512_000_000
    # Wall time of one render (the pipeline and the encode), stopped inside libvips past it.
    max_render_seconds: float = 20.0
    # One upload's file, refused with 413 while the body streams in (ImageKit's free plan: 25 MB).
    max_upload_bytes: int = 25_000_000
    # A video to transform: past either, 400 ELIMIT (ImageKit's input limit is 300 MB).
    max_video_bytes: int = 300_000_000
    max_video_seconds: float = 3600.0


@dataclass(frozen=True)
class CacheConfig:
    """Result and original caches."""

    dir: Path | None = None
    max_size: int = 10 * 10**9
    save_originals: bool = False
    memory_size: int = 256 * 2**20  # the memory tier in front of the disk
    ttl: float = 180 * 86400.0  # results older than this are made again
    originals_ttl: float = 86400.0  # saved originals older than this are revalidated
    originals_max_size: int = 10 * 10**9
    decoded_memory: int = 256 * 2**20  # decoded copies of large originals shared by variants
    shared: SharedCacheConfig | None = None  # `[cache.shared]`: the tier many nodes share


@dataclass(frozen=True)
class BucketConfig:
    """An S3-compatible bucket, its keys spelled as for an `s3_compatible` origin (`[library]`
    with `bucket`, `[cache.shared]`)."""

    bucket: str
    endpoint: str | None = None  # None: AWS (or AWS_ENDPOINT_URL_S3 when set)
    region: str = "us-east-1"
    prefix: str = ""  # normalised: no leading or trailing slash
    path_style: bool = False
    access_key_id: str | None = field(default=None, repr=False)  # None: the standard chain
    secret_access_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SharedCacheConfig(BucketConfig):
    """`[cache.shared]`: results and saved originals in an S3-compatible bucket, behind each
    node's memory and disk tiers."""

    timeout: float = 1.0  # the longest a request waits for the bucket


@dataclass(frozen=True)
class VideoConfig:
    """Video jobs (ffmpeg processes): how many, how long, how long a request waits."""

    concurrent_jobs: int = 1  # per worker process; each ffmpeg uses every core it gets
    queue_length: int = 16  # jobs waiting beyond those; past it, 503 EBUSY with Retry-After
    job_timeout: float = 600.0  # one job's wall time, then ffmpeg is killed
    # How long a request waits for its result; then a transformed video answers 302 to the
    # original (ImageKit's answer) and a thumbnail or manifest 202, while the job goes on.
    wait: float = 10.0


@dataclass(frozen=True)
class DatabaseConfig:
    """Where the media library's state lives: an SQLAlchemy URL (async driver)."""

    # "sqlite+aiosqlite:///…" (embedded, one node) or "postgresql+asyncpg://…" (many nodes).
    url: str = field(default="", repr=False)  # the URL may carry a password
    # PostgreSQL: the schema the tables live in (a sub-account's, in the default account's
    # database); None: the server's default search path.
    schema: str | None = None

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.url.split("+", 1)[0].split(":", 1)[0]


@dataclass(frozen=True)
class ImagesConfig:
    """Defaults applied to every image."""

    best_format: bool = True  # negotiate the output format by Accept unless f- says otherwise
    avif: bool = False  # automatic AVIF; f-avif always works
    quality: int = 80
    chroma_subsampling: bool = False  # ImageKit's default: off
    fast_shrink_on_load: bool = True  # JPEG: the largest DCT shrink, as Pillow and sharp do
    webp_effort: int | None = None  # libwebp's 0-6; None: 4 up to 0.32 MP, 2 above


@dataclass(frozen=True)
class OriginConfig:
    """One `[[origin]]`; its type-specific settings are read by the origin's own module."""

    name: str
    type: str
    section: Section = field(compare=False, repr=False)


@dataclass(frozen=True)
class EndpointConfig:
    """One `[[endpoint]]`: a URL prefix or domain mapped to an ordered list of origins."""

    identifier: str
    origins: tuple[str, ...]
    domains: tuple[str, ...] = ()
    library: bool = True
    require_signed_urls: bool | None = None  # None: [security] require_signed_urls decides
    url_rewriter: str | None = None  # one of URL_REWRITERS: another service's URL syntax


@dataclass(frozen=True)
class AccountConfig:
    """One `[[account]]`: a sub-account with its own keys, media library, origins, endpoints,
    named transformations and purge scope (pixelport/tenancy.py), reached under its `prefix`
    (`/<prefix>/<endpoint>/...`) or on its own `domains` without it."""

    name: str
    prefix: str
    private_key: str = field(repr=False)
    public_key: str | None = None
    domains: tuple[str, ...] = ()
    library_dir: Path = Path("accounts")
    private_keys: tuple[str, ...] = field(default=(), repr=False)  # more keys, for rotation
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    source: str = "config"  # "config", or "database" for one made in the dashboard


@dataclass(frozen=True)
class ClusterConfig:
    """Many nodes: what they share beyond the database."""

    # redis://[user:password@]host:6379/0: purges, library and config changes reach every
    # node through it (pixelport/cluster/). The URL may carry a password: not in repr().
    redis_url: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TracingConfig:
    """`[tracing]`: OpenTelemetry traces of requests (pixelport/tracing.py), off by default."""

    enabled: bool = False
    endpoint: str = "http://127.0.0.1:4318/v1/traces"  # an OTLP/HTTP (protobuf) receiver
    service_name: str = "pixelport"
    sample_ratio: float = 1.0  # of traces begun here; an incoming traceparent decides its own


@dataclass(frozen=True)
class DashboardConfig:
    """The dashboard's own settings."""

    # Logs in to the dashboard as a private key does; kept out of repr() like the keys.
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    server: ServerConfig = field(default_factory=ServerConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    library_dir: Path | None = None
    # `[library] bucket`: the library's files in an S3-compatible bucket (many nodes).
    library_bucket: BucketConfig | None = None
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    transformations: Mapping[str, str] = field(default_factory=dict)
    origins: tuple[OriginConfig, ...] = ()
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    tracing: TracingConfig = field(default_factory=TracingConfig)
    endpoints: tuple[EndpointConfig, ...] = (EndpointConfig("", ()),)
    accounts: tuple[AccountConfig, ...] = ()
    # Where sub-accounts made in the dashboard keep their libraries (`[library] accounts_dir`).
    accounts_dir: Path | None = None
    source: str = "<defaults>"


ORIGIN_TYPES = tuple(BUILDERS)
# The rewriters of delivery.rewriters.REWRITERS (named here: the config knows no delivery).
URL_REWRITERS = ("cloudinary", "imgix", "akamai")


def load(path: str | Path) -> Config:
    """Load and validate a TOML config file."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return from_dict(data, source=source, base=path.resolve().parent)


def from_dict(data: Mapping[str, Any], *, source: str = "<config>",
              base: Path | None = None) -> Config:
    """Validate an already-parsed config mapping."""
    root = Section(data, "", source, base or Path.cwd())
    library_dir, accounts_dir, library_bucket = _library(root.table("library"))
    database = _database(root.table("database"), library_dir)
    config = Config(
        server=_server(root.table("server")),
        security=_security(root.table("security")),
        limits=_limits(root.table("limits")),
        cache=_cache(root.table("cache")),
        library_dir=library_dir,
        library_bucket=library_bucket,
        database=database,
        images=_images(root.table("images")),
        video=_video(root.table("video")),
        transformations=_named(root.table("transformations")),
        origins=_origins(root),
        endpoints=_endpoints(root),
        accounts=_accounts(root, database, accounts_dir),
        accounts_dir=accounts_dir,
        dashboard=_dashboard(root.table("dashboard")),
        cluster=_cluster(root.table("cluster")),
        tracing=_tracing(root.table("tracing")),
        source=source,
    )
    root.finish()
    _cross_check(config, root)
    return config


def _server(s: Section) -> ServerConfig:
    listen = s.text("listen", ServerConfig.listen)
    try:
        parse_listen(listen)
    except ValueError as exc:
        raise s.error("listen", str(exc)) from None
    header = s.text("origin_header", "x-req-from: pixelport")
    name, sep, value = header.partition(":")
    if not sep or not re.fullmatch(r"[A-Za-z0-9-]+", name.strip()):
        raise s.error("origin_header", f"must read 'Name: value'; got {header!r}")
    cfg = ServerConfig(
        listen=listen,
        origin_header=(name.strip(), value.strip()),
        workers=s.integer("workers", ServerConfig.workers, maximum=256),
        processing_threads=s.integer("processing_threads", 0, maximum=256),
        processing_queue=s.integer("processing_queue", 64, maximum=100_000),
        cache_max_age=s.integer("cache_max_age", ServerConfig.cache_max_age),
        error_max_age=s.integer("error_max_age", ServerConfig.error_max_age),
        request_timeout=s.number("request_timeout", 30.0, minimum=0.1),
        request_head_timeout=s.number("request_head_timeout", ServerConfig.request_head_timeout,
                                      minimum=0.1),
        max_connections=s.integer("max_connections", ServerConfig.max_connections, minimum=1,
                                  maximum=1_000_000),
        log_format=s.text("log_format", ServerConfig.log_format, choices=("text", "json")),
        access_log=s.flag("access_log", ServerConfig.access_log),
    )
    s.finish()
    return cfg


def _security(s: Section) -> SecurityConfig:
    cfg = SecurityConfig(
        private_key=s.optional_text("private_key"),
        require_signed_urls=s.flag("require_signed_urls", False),
        allow_private_networks=s.flag("allow_private_networks", False),
        private_keys=_keys(s, "private_keys"),
        public_key=s.optional_text("public_key"),
        secrets_key=_secrets_key(s),
    )
    s.finish()
    return cfg


SECRETS_KEY_ENV = "PIXELPORT_SECRETS_KEY"
MIN_SECRETS_KEY = 16


def _secrets_key(s: Section) -> str | None:
    key = s.optional_text("secrets_key") or os.environ.get(SECRETS_KEY_ENV) or None
    if key is not None and len(key) < MIN_SECRETS_KEY:
        raise s.error("secrets_key", f"must be at least {MIN_SECRETS_KEY} characters "
                      f"(or set {SECRETS_KEY_ENV})")
    return key


def _keys(s: Section, key: str) -> tuple[str, ...]:
    # Each item may be "env:NAME"; errors never echo a value, since these are secrets.
    keys: list[str] = []
    for i, item in enumerate(s.strings(key)):
        if item.startswith("env:"):
            if item[4:] not in os.environ:
                raise s.error(f"{key}[{i}]", f"environment variable {item[4:]} is not set")
            item = os.environ[item[4:]]
        if not item:
            raise s.error(f"{key}[{i}]", "must not be empty")
        keys.append(item)
    return tuple(keys)


MIN_DASHBOARD_PASSWORD = 12


def _cluster(s: Section) -> ClusterConfig:
    url = s.optional_text("redis_url")
    if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
        raise s.error("redis_url", "must read redis://host:6379/0 (or rediss://, unix://)")
    s.finish()
    return ClusterConfig(redis_url=url)


def _tracing(s: Section) -> TracingConfig:
    # The traces URL of an OTLP/HTTP receiver, its path included.
    endpoint = http_url(s, "endpoint", TracingConfig.endpoint, TracingConfig.endpoint)
    name = s.text("service_name", TracingConfig.service_name)
    if not name.strip():
        raise s.error("service_name", "must not be empty")
    ratio = s.number("sample_ratio", TracingConfig.sample_ratio)
    if ratio > 1:
        raise s.error("sample_ratio", f"must be a number from 0 to 1; got {ratio:g}")
    cfg = TracingConfig(enabled=s.flag("enabled", False), endpoint=endpoint,
                        service_name=name, sample_ratio=ratio)
    s.finish()
    return cfg


def _dashboard(s: Section) -> DashboardConfig:
    password = s.optional_text("password")
    # Never echoed in the error: it is a secret.
    if password is not None and len(password) < MIN_DASHBOARD_PASSWORD:
        raise s.error("password", f"must be at least {MIN_DASHBOARD_PASSWORD} characters")
    cfg = DashboardConfig(password=password)
    s.finish()
    return cfg


def _limits(s: Section) -> LimitsConfig:
    cfg = LimitsConfig(
        max_input_pixels=s.integer("max_input_pixels", LimitsConfig.max_input_pixels, minimum=1),
        max_output_pixels=s.integer("max_output_pixels", LimitsConfig.max_output_pixels, minimum=1),
        max_input_bytes=s.size("max_input_bytes", LimitsConfig.max_input_bytes),
        max_frames=s.integer("max_frames", LimitsConfig.max_frames, minimum=1),
        max_decoded_bytes=s.size("max_decoded_bytes", LimitsConfig.max_decoded_bytes),
        max_render_seconds=s.number("max_render_seconds", LimitsConfig.max_render_seconds,
                                    minimum=0.1),
        max_upload_bytes=s.size("max_upload_bytes", LimitsConfig.max_upload_bytes),
        max_video_bytes=s.size("max_video_bytes", LimitsConfig.max_video_bytes),
        max_video_seconds=s.duration("max_video_seconds", LimitsConfig.max_video_seconds),
    )
    s.finish()
    return cfg


def _cache(s: Section) -> CacheConfig:
    cfg = CacheConfig(
        dir=s.path("dir", "data/cache"),
        max_size=s.size("max_size", CacheConfig.max_size),
        save_originals=s.flag("save_originals", False),
        memory_size=s.size("memory_size", CacheConfig.memory_size),
        ttl=s.duration("ttl", CacheConfig.ttl),
        originals_ttl=s.duration("originals_ttl", CacheConfig.originals_ttl),
        originals_max_size=s.size("originals_max_size", CacheConfig.originals_max_size),
        decoded_memory=s.size("decoded_memory", CacheConfig.decoded_memory),
        shared=_shared_cache(s.table("shared")) if s.raw("shared") is not None else None,
    )
    s.finish()
    return cfg


def read_bucket(s: Section, *, compatible: bool = True,
                need_endpoint: bool = False) -> BucketConfig:
    """A bucket's keys (`compatible`: with `endpoint`, required when `need_endpoint`, and
    `path_style`, as for `s3_compatible`)."""
    bucket = s.text("bucket")
    if not bucket.strip() or "/" in bucket:
        raise s.error("bucket", f"must be a bucket name without '/'; got {bucket!r}")
    key_id, secret = s.optional_text("access_key_id"), s.optional_text("secret_access_key")
    if (key_id is None) != (secret is None):
        missing = "secret_access_key" if secret is None else "access_key_id"
        raise s.error(missing, "access_key_id and secret_access_key are set together "
                               "(or both left out for the standard credential chain)")
    return BucketConfig(
        bucket=bucket, region=s.text("region", "us-east-1"),
        endpoint=http_url(s, "endpoint", example="https://s3.wasabisys.com")
        if compatible and (need_endpoint or s.raw("endpoint") is not None) else None,
        prefix=(s.optional_text("prefix") or "").strip("/"),
        path_style=s.flag("path_style", False) if compatible else False,
        access_key_id=key_id, secret_access_key=secret)


def _shared_cache(s: Section) -> SharedCacheConfig:
    bucket = read_bucket(s)
    cfg = SharedCacheConfig(**vars(bucket),
                            timeout=s.number("timeout", SharedCacheConfig.timeout, minimum=0.05))
    s.finish()
    return cfg


def _video(s: Section) -> VideoConfig:
    cfg = VideoConfig(
        concurrent_jobs=s.integer("concurrent_jobs", VideoConfig.concurrent_jobs, minimum=1,
                                  maximum=64),
        queue_length=s.integer("queue_length", VideoConfig.queue_length, maximum=10_000),
        job_timeout=s.duration("job_timeout", VideoConfig.job_timeout),
        wait=s.duration("wait", VideoConfig.wait),
    )
    s.finish()
    return cfg


def _library(s: Section) -> tuple[Path | None, Path | None, BucketConfig | None]:
    path = s.path("dir", "data/library")
    # Sub-accounts' libraries: beside the default one (data/library → data/accounts/<name>).
    accounts = s.path("accounts_dir", str(path.parent / "accounts") if path else None)
    # Many nodes keep the library's files in a bucket; `dir` still holds uploads being
    # received (and the SQLite file by default).
    bucket = read_bucket(s) if s.raw("bucket") is not None else None
    if bucket is not None and path is None:
        raise s.error("dir", "is needed with bucket: uploads are received there first")
    s.finish()
    return path, accounts, bucket


def _database(s: Section, library_dir: Path | None) -> DatabaseConfig:
    url = s.optional_text("url")
    s.finish()
    if url is None:
        # Embedded default: an SQLite file beside the library (data/library → data/library.db).
        return DatabaseConfig(database_url(f"sqlite:///{library_dir}.db", s.base)
                              if library_dir is not None else "")
    try:
        return DatabaseConfig(database_url(url, s.base))
    except ValueError as exc:
        raise s.error("url", str(exc)) from None


def account_database(main: DatabaseConfig, name: str, library_dir: Path) -> DatabaseConfig:
    """A sub-account's database by default: on SQLite a file beside its library; on
    PostgreSQL a schema of its own (`account_<name>`) in the default account's database."""
    if main.dialect == "postgresql":
        return DatabaseConfig(main.url, "account_" + name.replace("-", "_"))
    return DatabaseConfig(f"sqlite+aiosqlite:///{library_dir}.db")


def database_url(url: str, base: Path) -> str:
    """An SQLAlchemy URL with its async driver; relative SQLite paths are taken from `base`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("must read sqlite:///path/to/file.db or postgresql://user@host/db")
    scheme = scheme.split("+", 1)[0].lower()
    if scheme == "sqlite":
        path = rest[1:] if rest.startswith("/") else rest
        if not path or path == ":memory:":
            raise ValueError("an SQLite database needs a file (workers share it)")
        file = Path(path).expanduser()
        return f"sqlite+aiosqlite:///{file if file.is_absolute() else base / file}"
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+asyncpg://{rest}"
    raise ValueError(f"unsupported database {scheme!r}: use sqlite:/// or postgresql://")


def _webp_effort(s: Section) -> int | None:
    """`"auto"` (None) or libwebp's effort, 0 to 6."""
    value = s.raw("webp_effort")
    if value is None or value == "auto":
        return None
    if isinstance(value, str) and not value.strip().isdigit():
        raise s.error("webp_effort", f'must be "auto" or an integer from 0 to 6, not {value!r}')
    return s.integer("webp_effort", 4, minimum=0, maximum=6)


def _images(s: Section) -> ImagesConfig:
    cfg = ImagesConfig(
        best_format=s.flag("best_format", True),
        avif=s.flag("avif", False),
        quality=s.integer("quality", 80, minimum=1, maximum=100),
        chroma_subsampling=s.flag("chroma_subsampling", False),
        fast_shrink_on_load=s.flag("fast_shrink_on_load", True),
        webp_effort=_webp_effort(s),
    )
    s.finish()
    return cfg


def _named(s: Section) -> dict[str, str]:
    named: dict[str, str] = {}
    for name in list(s.data):
        if not _NAME_RE.fullmatch(name):
            raise s.error(name, "names may hold letters, digits, '-' and '_'")
        named[name] = s.text(name)
    s.finish()
    for name, text in named.items():  # each must parse, with the others it may name
        try:
            registry.parse(text, named)
        except InvalidRequest as exc:
            raise s.error(name, f"is not a valid transformation: {exc.message}") from None
    return named


def _array(root: Section, key: str) -> list[Section]:
    value = root.raw(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise root.error(key, f"must be an array of tables ([[{key}]])")
    return [Section(v, f"{key}[{i}]", root.source, root.base) for i, v in enumerate(value)]


def _origins(root: Section) -> tuple[OriginConfig, ...]:
    origins: list[OriginConfig] = []
    names: set[str] = set()
    for s in _array(root, "origin"):
        name = s.text("name")
        if not _NAME_RE.fullmatch(name):
            raise s.error("name", "may hold letters, digits, '-' and '_'")
        if name in names:
            raise s.error("name", f"origin {name!r} is defined twice")
        names.add(name)
        kind = s.text("type", choices=ORIGIN_TYPES)
        origins.append(OriginConfig(name=name, type=kind, section=s))
    return tuple(origins)


def _endpoints(root: Section) -> tuple[EndpointConfig, ...]:
    sections = _array(root, "endpoint")
    if not sections:
        return (EndpointConfig("", ()),)
    endpoints: list[EndpointConfig] = []
    seen: set[str] = set()
    for s in sections:
        identifier = s.text("identifier", "").strip("/")
        if identifier and not _IDENTIFIER_RE.fullmatch(identifier):
            raise s.error("identifier", "may hold letters, digits and '-', segments joined by '/'")
        if identifier in seen:
            raise s.error("identifier", f"endpoint {identifier!r} is defined twice")
        if identifier in ("v1", "api/v1", "api/v2") or identifier.startswith(
                ("v1/", "api/v1/", "api/v2/")):
            raise s.error("identifier", "/v1/, /api/v1/ and /api/v2/ are reserved for the API")
        seen.add(identifier)
        domains = tuple(d.lower().rstrip(".") for d in s.strings("domains"))
        signed = s.raw("require_signed_urls")
        rewriter = s.raw("url_rewriter")
        endpoints.append(EndpointConfig(identifier, s.strings("origins"), domains,
                                        s.flag("library", True),
                                        None if signed is None
                                        else s.flag("require_signed_urls", False),
                                        None if rewriter in (None, "")
                                        else s.text("url_rewriter", choices=URL_REWRITERS)))
        s.finish()
    return tuple(endpoints)


ACCOUNT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
ACCOUNT_PREFIX = re.compile(r"^[A-Za-z0-9-]{1,100}$")
# First path segments that are never an account's prefix: the API's, the dashboard's, health.
RESERVED_PREFIXES = frozenset({"v1", "api", "dashboard", "healthz", "readyz", "metrics"})


def _accounts(root: Section, main: DatabaseConfig,
              accounts_dir: Path | None) -> tuple[AccountConfig, ...]:
    accounts: list[AccountConfig] = []
    for s in _array(root, "account"):
        name = s.text("name")
        if not ACCOUNT_NAME.fullmatch(name):
            raise s.error("name", "must be 1-40 lower-case letters, digits and '-'")
        prefix = s.text("prefix", name).strip("/")
        if not ACCOUNT_PREFIX.fullmatch(prefix) or prefix in RESERVED_PREFIXES:
            raise s.error("prefix", "must be one path segment of letters, digits and '-', "
                          "other than " + ", ".join(sorted(RESERVED_PREFIXES)))
        private = s.optional_text("private_key")
        if not private:
            raise s.error("private_key", "is required: the account's API key and URL signer")
        if not main.url or accounts_dir is None:
            raise s.error("name", "sub-accounts need the media library ([library] dir)")
        folder = s.path("dir", str(accounts_dir / name))
        assert folder is not None
        url = s.optional_text("database_url")
        try:
            database = (DatabaseConfig(database_url(url, s.base)) if url
                        else account_database(main, name, folder))
        except ValueError as exc:
            raise s.error("database_url", str(exc)) from None
        accounts.append(AccountConfig(
            name=name, prefix=prefix, private_key=private,
            private_keys=_keys(s, "private_keys"), public_key=s.optional_text("public_key"),
            domains=tuple(d.lower().rstrip(".") for d in s.strings("domains")),
            library_dir=folder, database=database))
        s.finish()
    return tuple(accounts)


def _cross_check_accounts(config: Config, source: str) -> None:
    keys = set(config.security.keys)
    publics = {config.security.public_key} - {None}
    names: set[str] = set()
    prefixes = {e.identifier.split("/", 1)[0] for e in config.endpoints if e.identifier}
    domains = {d for e in config.endpoints for d in e.domains}
    for i, account in enumerate(config.accounts):
        where = f"{source}: account[{i}]"
        if account.name in names:
            raise ConfigError(f"{where}.name: account {account.name!r} is defined twice")
        if account.prefix in prefixes:
            raise ConfigError(f"{where}.prefix: {account.prefix!r} is already the first "
                              f"segment of an endpoint or another account's prefix")
        own = {account.private_key, *account.private_keys}
        if own & keys or account.public_key in publics:
            raise ConfigError(f"{where}: each account needs keys of its own")
        for domain in account.domains:
            if domain in domains:
                raise ConfigError(f"{where}.domains: {domain!r} is already bound")
            domains.add(domain)
        names.add(account.name)
        prefixes.add(account.prefix)
        keys |= own
        publics.add(account.public_key)
        publics.discard(None)


def _cross_check(config: Config, root: Section) -> None:
    names = {o.name for o in config.origins}
    domains: dict[str, str] = {}
    for i, endpoint in enumerate(config.endpoints):
        for name in endpoint.origins:
            if name not in names:
                raise ConfigError(f"{root.source}: endpoint[{i}].origins: no origin named {name!r}")
        for domain in endpoint.domains:
            if domain in domains:
                raise ConfigError(
                    f"{root.source}: endpoint[{i}].domains: {domain!r} is already bound to "
                    f"endpoint {domains[domain]!r}")
            domains[domain] = endpoint.identifier
    _cross_check_accounts(config, root.source)


def parse_listen(listen: str) -> tuple[str, int]:
    """Split `HOST:PORT` (IPv6 as `[::1]:8080`)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"must read HOST:PORT; got {listen!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


_HOST_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def http_url(s: Section, key: str, default: str | None = None, example: str = "") -> str:
    """An http(s) base URL from `key` (or `default`), without a trailing slash.

    Checked whole at start-up (host name or IP literal, port), so that a typo is a config
    error rather than every request's origin failure.
    """
    value = s.optional_text(key) or default
    if value is None:
        raise s.error(key, f"is required{f' (for example {example})' if example else ''}")
    try:
        url = URL(value)
        port = url.explicit_port
    except ValueError as exc:
        raise s.error(key, f"is not a valid URL ({exc}); got {value!r}") from None
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise s.error(key, f"must be an http(s) URL; got {value!r}")
    if not _valid_host(url.raw_host) or port == 0:
        raise s.error(key, f"has an invalid host or port; got {value!r}")
    if url.query_string or url.fragment:
        raise s.error(key, "must not have a query or fragment")
    return value.rstrip("/")


def _valid_host(host: str) -> bool:
    if ":" in host:  # yarl has checked the IPv6 literal
        return True
    labels = host.removesuffix(".").split(".")
    return all(_HOST_LABEL.fullmatch(label) for label in labels)
