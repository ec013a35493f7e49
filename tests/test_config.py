"""Config loading: schema, env indirection, errors that name file and key, the CLI check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pixelport.cli import main
from pixelport.config import ConfigError, from_dict, load, parse_listen, parse_size
from pixelport.origins.base import Shared
from pixelport.origins.http import HttpClient
from pixelport.origins.registry import build_all

ROOT = Path(__file__).resolve().parent.parent

FULL = """
[server]
listen = "127.0.0.1:9000"

[security]
private_key = "env:PP_TEST_KEY"
require_signed_urls = false
allow_private_networks = false

[limits]
max_input_pixels = 100_000_000
max_output_pixels = 100_000_000
max_input_bytes = "40MB"

[cache]
dir = "data/cache"
max_size = "10GB"
save_originals = false

[library]
dir = "data/library"

[transformations]
thumb_small = "w-100,h-100,c-at_max"

[[origin]]
name = "website"
type = "web_server"
base_url = "https://www.example.com"
forward_host_header = false
canonical_base_url = "https://www.example.com"

[[endpoint]]
identifier = ""
origins = ["website"]

[[endpoint]]
identifier = "product-images"
origins = ["website"]
domains = ["static.example.com"]
"""


def test_design_schema_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PP_TEST_KEY", "private_secret")
    path = tmp_path / "pixelport.toml"
    path.write_text(FULL)
    config = load(path)
    assert config.security.private_key == "private_secret"
    assert config.limits.max_input_bytes == 40_000_000
    assert config.cache.max_size == 10 * 10**9
    assert config.library_dir == tmp_path / "data/library"
    assert config.transformations == {"thumb_small": "w-100,h-100,c-at_max"}
    assert [e.identifier for e in config.endpoints] == ["", "product-images"]
    assert config.endpoints[1].domains == ("static.example.com",)
    assert config.origins[0].type == "web_server"


@pytest.mark.parametrize(("snippet", "key", "what"), [
    ('[server]\nlisten = "nowhere"', "server.listen", "HOST:PORT"),
    ("[limits]\nmax_input_pixels = -3", "limits.max_input_pixels", "between"),
    ('[limits]\nmax_input_bytes = "lots"', "limits.max_input_bytes", "not a size"),
    ("[cache]\nsave_originals = 3", "cache.save_originals", "true or false"),
    ("[server]\nlistn = 1", "server.listn", "unknown key"),
    ('[security]\nprivate_key = "env:PP_UNSET_VARIABLE"', "security.private_key", "PP_UNSET"),
    ('[[origin]]\nname = "a"\ntype = "ftp"', "origin[0].type", "must be one of"),
    ('[[endpoint]]\nidentifier = "x"\norigins = ["ghost"]', "endpoint[0].origins", "ghost"),
    ('[[endpoint]]\nidentifier = "a b"', "endpoint[0].identifier", "letters"),
    ('[transformations]\nbad = 3', "transformations.bad", "string"),
    ("[images]\nwebp_effort = 7", "images.webp_effort", "between 0 and 6"),
    ('[images]\nwebp_effort = "fast"', "images.webp_effort", '"auto" or an integer'),
    ("[images]\nwebp_effort = true", "images.webp_effort", "integer"),
    ("[video]\nconcurrent_jobs = 0", "video.concurrent_jobs", "between"),
    ('[video]\njob_timeout = "soon"', "video.job_timeout", ""),
    ('[limits]\nmax_video_bytes = "huge"', "limits.max_video_bytes", "not a size"),
    ("[video]\njobs = 2", "video.jobs", "unknown key"),
    ('[[endpoint]]\nidentifier = "cl"\nurl_rewriter = "fastly"', "endpoint[0].url_rewriter",
     "must be one of cloudinary, imgix, akamai"),
    ('[[endpoint]]\nidentifier = "cl"\nurl_rewriter = 3', "endpoint[0].url_rewriter",
     "must be a string"),
    ('[dashboard]\npassword = "short"', "dashboard.password", "at least 12 characters"),
    ('[dashboard]\npassword = "env:PP_UNSET_VARIABLE"', "dashboard.password", "PP_UNSET"),
    ('[dashboard]\npasword = "x"', "dashboard.pasword", "unknown key"),
])
def test_errors_name_file_and_key(tmp_path: Path, snippet: str, key: str, what: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(snippet)
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: ") and what in message


def test_dashboard_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert from_dict({}).dashboard.password is None
    monkeypatch.setenv("PP_DASHBOARD", "a long dashboard password")
    config = from_dict({"dashboard": {"password": "env:PP_DASHBOARD"}})
    assert config.dashboard.password == "a long dashboard password"
    assert "a long dashboard password" not in repr(config)  # never in a log


def test_not_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[server\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load(path)


def test_env_values_are_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PP_PRIVATE", "true")
    monkeypatch.setenv("PP_PIXELS", "500")
    config = from_dict({"security": {"allow_private_networks": "env:PP_PRIVATE"},
                        "limits": {"max_input_pixels": "env:PP_PIXELS"}})
    assert config.security.allow_private_networks is True
    assert config.limits.max_input_pixels == 500


def test_webp_effort_is_auto_by_default_or_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    assert from_dict({}).images.webp_effort is None
    assert from_dict({"images": {"webp_effort": "auto"}}).images.webp_effort is None
    monkeypatch.setenv("PP_EFFORT", "2")
    assert from_dict({"images": {"webp_effort": "env:PP_EFFORT"}}).images.webp_effort == 2


def test_url_rewriter_is_read_per_endpoint() -> None:
    config = from_dict({"endpoint": [{"identifier": "cl", "url_rewriter": "cloudinary"},
                                     {"identifier": "ix", "url_rewriter": "imgix"},
                                     {"identifier": "", "url_rewriter": ""}]})
    assert [e.url_rewriter for e in config.endpoints] == ["cloudinary", "imgix", None]


def test_defaults_without_endpoints_serve_the_library() -> None:
    config = from_dict({})
    assert [e.identifier for e in config.endpoints] == [""]
    assert config.security.allow_private_networks is False


@pytest.mark.parametrize(("text", "size"), [("40MB", 40_000_000), ("1KiB", 1024), (512, 512),
                                            ("10GB", 10**10), ("1.5MB", 1_500_000)])
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


def test_parse_listen() -> None:
    assert parse_listen("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_listen("[::1]:8080") == ("::1", 8080)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen("localhost")


def test_origin_keys_are_checked_by_check_config(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[[origin]]\nname = "w"\ntype = "web_server"\nbase_url = "ftp://x"\n')
    assert main(["check-config", str(path)]) == 2
    assert "origin[0].base_url" in capsys.readouterr().err
    path.write_text('[[origin]]\nname = "w"\ntype = "web_server"\nbase_url = "https://x"\n'
                    'colour = "red"\n')
    assert main(["check-config", str(path)]) == 2
    assert "origin[0].colour: unknown key" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "said"), [
    ('broken = "w-abc,zz-1"', "transformations.broken: is not a valid transformation"),
    ('loop = "n-loop"', "transformations.loop: is not a valid transformation"),
    ('thumb = "w-100"\nwide = "n-nothing,w-10"', "transformations.wide"),
])
def test_named_transformations_are_checked_by_check_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, said: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(f"[transformations]\n{text}\n")
    assert main(["check-config", str(path)]) == 2
    error = capsys.readouterr().err
    assert str(path) in error and said in error, error
    path.write_text('[transformations]\nthumb = "w-100,h-100"\nsmall = "n-thumb:q-50"\n')
    assert main(["check-config", str(path)]) == 0


def test_check_config_command_on_demo() -> None:
    result = subprocess.run([sys.executable, "-m", "pixelport", "check-config",
                             str(ROOT / "demo" / "pixelport.toml")], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def build(origin: dict[str, Any]) -> None:
    """Load a config with this one web origin and build it, as check-config does."""
    config = from_dict({"origin": [origin], "endpoint": [{"identifier": "e", "origins": ["w"]}]})
    build_all(Shared(config, HttpClient(allow_private_networks=True)))


@pytest.mark.parametrize("url", ["http://exa mple.com", "http://[::1", "http://a..b",
                                 "http://x.com:99999", "http://-bad-.com", "http://x.com:0",
                                 "http://x.com/?q=1"])
def test_malformed_origin_urls_are_config_errors(url: str) -> None:
    origin = {"name": "w", "type": "web_server", "base_url": url}
    with pytest.raises(ConfigError, match=r"origin\[0\]\.base_url"):
        build(origin)
    with pytest.raises(ConfigError, match=r"origin\[0\]\.canonical_base_url"):
        build({**origin, "base_url": "https://ok.example.com", "canonical_base_url": url})


@pytest.mark.parametrize("url", ["https://bücher.de/a", "http://[::1]:8080/x",
                                 "http://127.0.0.1:8080", "https://a_b.example.com/img/"])
def test_unusual_but_valid_origin_urls_load(url: str) -> None:
    build({"name": "w", "type": "web_server", "base_url": url, "canonical_base_url": url})
