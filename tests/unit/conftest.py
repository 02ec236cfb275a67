"""Fixtures of the unit tests: a facade connection over the fake driver (tests/fakes.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import Connect, FakeServers

import msplugin
from msplugin import health


@pytest.fixture
def servers() -> Iterator[FakeServers]:
    s = FakeServers()
    s.add("master_0", "master", 1, 1)
    s.add("slave_0", "slave", 2, 2)
    s.add("slave_1", "slave", 3, 3)
    yield s
    health.reset()
    msplugin.close_pools()


@pytest.fixture
def connect(servers: FakeServers, tmp_path: Path) -> Connect:
    """connect(**group_keys): a facade connection to the fake topology, round robin over
    the slaves (deterministic), no health checks or replica monitor threads."""

    def make(autocommit: bool = True, **keys: Any) -> msplugin.Connection:
        group: dict[str, Any] = {
            "master": {"master_0": {"host": "192.0.2.1", "port": 1}},
            "slave": {
                "slave_0": {"host": "192.0.2.1", "port": 2},
                "slave_1": {"host": "192.0.2.1", "port": 3},
            },
            "filters": {"roundrobin": []},
            # Two failures quarantine a server: one lost connection is a connection's fault.
            "quarantine": {"check_interval": 0, "failure_threshold": 2},
            "replica_stopped_limit": False,
            **keys,
        }
        path = tmp_path / f"c{len(list(tmp_path.iterdir()))}.json"
        path.write_text(json.dumps({"app": group}))
        return msplugin.connect(
            "app",
            config=str(path),
            user="app",
            password="secret",
            autocommit=autocommit,
            connect_factory=servers.connect,
        )

    return make
