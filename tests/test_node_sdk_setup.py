"""ImageKit's Node SDK is installed, loads, and builds a client (tests/node/smoke.mjs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.node_sdk import run_node

pytestmark = pytest.mark.integration


def test_node_sdk_loads(node_sdk: Path) -> None:
    """The smoke script prints the client's keys, among them the resources the tests use."""
    result = run_node("smoke.mjs", {"IK_PRIVATE_KEY": "private_test_key",
                                    "IK_BASE_URL": "http://127.0.0.1:9"})
    assert result.returncode == 0, result.stderr
    keys = set(json.loads(result.stdout))
    assert {"files", "assets", "folders", "customMetadataFields", "cache"} <= keys
