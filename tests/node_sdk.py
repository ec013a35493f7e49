"""ImageKit's Node SDK (@imagekit/nodejs, pinned in tests/node/package.json) for the tests.

A pytest plugin (tests/conftest.py lists it in `pytest_plugins`); `make setup` installs the SDK
into tests/node/node_modules. Scripts live in tests/node and run there, so that `import ... from
'@imagekit/nodejs'` resolves to that installation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"
SDK_NAME = "@imagekit/nodejs"
SDK_DIR = NODE_DIR / "node_modules" / "@imagekit" / "nodejs"


def pinned_version() -> str:
    """The SDK version tests/node/package.json pins."""
    manifest = json.loads((NODE_DIR / "package.json").read_text())
    return str(manifest["dependencies"][SDK_NAME])


def _environment(extra: dict[str, str]) -> dict[str, str]:
    # The SDK falls back to variables (IMAGEKIT_PRIVATE_KEY, IMAGE_KIT_BASE_URL, ...): one set
    # on the machine must never point a test at the real ImageKit, nor lend it a real key.
    env = {name: value for name, value in os.environ.items()
           if "IMAGEKIT" not in name.upper() and "IMAGE_KIT" not in name.upper()}
    return {**env, **extra}


def run_node(script: Path | str, env: dict[str, str],
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `node` on a script of tests/node (a name there, or a path) with extra variables."""
    path = Path(script)
    if not path.is_absolute():
        path = NODE_DIR / path
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: install Node.js (20 or newer)", pytrace=False)
    return subprocess.run([node, str(path)], cwd=NODE_DIR, env=_environment(env),
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def node_sdk() -> Path:
    """tests/node with the pinned SDK installed; fails when `make setup` has not installed it."""
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH: install Node.js (20 or newer)", pytrace=False)
    manifest = SDK_DIR / "package.json"
    if not manifest.is_file():
        pytest.fail(f"{SDK_NAME} is not installed in {NODE_DIR / 'node_modules'}: "
                    "run `make setup`", pytrace=False)
    installed = json.loads(manifest.read_text())["version"]
    if installed != pinned_version():
        pytest.fail(f"{SDK_NAME} {installed} is installed, tests/node/package.json pins "
                    f"{pinned_version()}: run `make setup`", pytrace=False)
    return NODE_DIR
