"""msplugin.acquire's plans, driven by hand as another edge would drive them: which backends
a plan asks to open, in what order, and what it returns or raises for each outcome. Nothing
is connected: the plans only ask."""

from __future__ import annotations

import pytest
from fakes import Connect
from pymysql import err

import msplugin
from msplugin.acquire import Plan, master_plan, slave_plan
from msplugin.backends import Backend


def _drive(plan: Plan, fails: set[str]) -> tuple[list[str], Backend]:
    """Answer every request of *plan*: refused for the names in *fails*, opened otherwise."""
    asked = []
    try:
        backend = next(plan)
        while True:
            asked.append(backend.name)
            refused = err.OperationalError(2003, f"Can't connect to {backend.name}")
            backend = plan.send(refused if backend.name in fails else None)
    except StopIteration as done:
        return asked, done.value


def test_a_read_tries_the_other_slave_then_the_master(connect: Connect) -> None:
    with connect() as conn:
        backends = conn._backends
        first = backends.by_name["slave_0"]
        asked, got = _drive(slave_plan(backends, ("slave_0", "slave_1"), first), {"slave_0"})
        assert (asked, got.name) == (["slave_0", "slave_1"], "slave_1")
        plan = slave_plan(backends, ("slave_0", "slave_1"), first)
        asked, got = _drive(plan, {"slave_0", "slave_1"})
        assert (asked, got.name) == (["slave_0", "slave_1", "master_0"], "master_0")
        assert conn.stats()["use_master_failover"] == 1


def test_failover_settings_shape_the_plan(connect: Connect) -> None:
    with connect(failover={"strategy": "master"}) as conn:
        backends = conn._backends
        plan = slave_plan(backends, ("slave_0", "slave_1"), backends.by_name["slave_0"])
        assert _drive(plan, {"slave_0"})[0] == ["slave_0", "master_0"]
    with connect(failover="disabled") as conn:
        backends = conn._backends
        plan = slave_plan(backends, ("slave_0", "slave_1"), backends.by_name["slave_0"])
        with pytest.raises(err.OperationalError, match="connect to slave_0"):
            _drive(plan, {"slave_0"})


def test_nothing_answers_names_every_server_tried(connect: Connect) -> None:
    with connect() as conn:
        backends = conn._backends
        plan = slave_plan(backends, ("slave_0", "slave_1"), backends.by_name["slave_1"])
        with pytest.raises(msplugin.NoBackendAvailable) as caught:
            _drive(plan, {"slave_0", "slave_1", "master_0"})
        message = str(caught.value)
        for name in ("slave_0", "slave_1", "master_0"):
            assert f"Can't connect to {name}" in message
        with pytest.raises(msplugin.NoBackendAvailable, match="no master could be connected"):
            _drive(master_plan(backends), {"master_0"})
