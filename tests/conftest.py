"""Shared fixtures. The integration topology is started once per pytest session, for real."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401 (see below)
import pytest

import msplugin
from msplugin import health
from msplugin.sandbox import Sandbox

# hypothesis is imported here, before any test starts threads: its pytest plugin imports it
# lazily at the session's end otherwise, through pytest's assertion rewriting (ast.parse),
# and CPython 3.11's AST constructor keeps its recursion depth per interpreter, not per
# thread (cpython gh-106905): after the threaded topology tests that import failed once in
# six runs of tests/integration/test_topology.py alone with "SystemError: AST constructor
# recursion depth mismatch", all tests having passed.


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """1 primary + 2 replicas from the machine's mariadbd. No server: the tests error, loudly."""
    sb = Sandbox.up(tmp_path_factory.mktemp("sandbox"), replicas=2)
    try:
        yield sb
    finally:
        sb.down(purge=True)


def config_writer(sb: Sandbox, tmp_path: Path) -> Callable[..., str]:
    """make(**group_keys): write a copy of *sb*'s config with group keys changed; its path."""

    def make(**group_keys: Any) -> str:
        data = json.loads(sb.config_path.read_text())
        data["sandbox"].update(group_keys)
        path = tmp_path / f"config{len(list(tmp_path.iterdir()))}.json"
        path.write_text(json.dumps(data))
        return str(path)

    return make


@pytest.fixture
def make_config(sandbox: Sandbox, tmp_path: Path) -> Callable[..., str]:
    """Write a copy of the sandbox config with group keys changed; return its path."""
    return config_writer(sandbox, tmp_path)


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A sandbox of the test module's own, for tests that kill, stop or restart servers,
    with a table t (id, v). replica1 is slave_0 (server_id 2), replica2 slave_1 (3)."""
    sb = Sandbox.up(tmp_path_factory.mktemp("faults"), replicas=2)
    try:
        with msplugin.connect("sandbox", config=str(sb.config_path)) as c:
            c.cursor().execute("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
        sb.wait_replicated()
        yield sb
    finally:
        for node in sb.nodes:  # never leave a stopped server behind
            if node.pid:
                with contextlib.suppress(Exception):  # already gone
                    sb.kill(node.name, signal.SIGCONT)
        sb.down(purge=True)
        msplugin.close_pools()
        health.reset()


@pytest.fixture
def fresh_health(fsb: Sandbox) -> Iterator[None]:
    """The test starts with every server of *fsb* running and nothing quarantined."""
    for node in fsb.nodes:
        if not node.pid:
            fsb.start(node.name)
    health.reset()
    yield
    health.reset()


@pytest.fixture
def fault_config(fsb: Sandbox, tmp_path: Path) -> Callable[..., str]:
    """Write a copy of *fsb*'s config with group keys changed; return its path."""
    return config_writer(fsb, tmp_path)


SAFETY = 20.0  # a stopped server is resumed after this long whatever happens


@pytest.fixture
def stop(fsb: Sandbox) -> Iterator[Callable[[str], float]]:
    """stop(node): SIGSTOP it now (returns when); resumed at the end of the test at the latest."""
    stopped: list[str] = []
    timers: list[threading.Timer] = []

    def do(node: str) -> float:
        fsb.kill(node, signal.SIGSTOP)
        stopped.append(node)
        timer = threading.Timer(SAFETY, fsb.kill, (node, signal.SIGCONT))
        timer.start()
        timers.append(timer)
        return time.monotonic()

    yield do
    for timer in timers:
        timer.cancel()
    for node in stopped:
        fsb.kill(node, signal.SIGCONT)
