"""Shared fixtures. The integration topology is started once per pytest session, for real."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from msplugin.sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """1 primary + 2 replicas from the machine's mariadbd. No server: the tests error, loudly."""
    sb = Sandbox.up(tmp_path_factory.mktemp("sandbox"), replicas=2)
    try:
        yield sb
    finally:
        sb.down(purge=True)


@pytest.fixture
def make_config(sandbox: Sandbox, tmp_path: Path) -> Callable[..., str]:
    """Write a copy of the sandbox config with group keys changed; return its path."""

    def make(**group_keys: Any) -> str:
        data = json.loads(sandbox.config_path.read_text())
        data["sandbox"].update(group_keys)
        path = tmp_path / f"config{len(list(tmp_path.iterdir()))}.json"
        path.write_text(json.dumps(data))
        return str(path)

    return make
