"""The asyncio facade on a failing topology (the module's own sandbox): a hung server costs
seconds, a write that may have run is never retried, as with the sync facade
(tests/integration/test_hung.py), with no statement blocking the event loop.

replica1 is slave_0 (server_id 2), replica2 is slave_1 (server_id 3).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import Any

import pymysql
import pytest

import msplugin
import msplugin.aio
from msplugin import health
from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _fresh(fresh_health: None) -> None:
    """Every test starts with all servers running and nothing quarantined."""


async def server_ids(conn: msplugin.aio.Connection, n: int) -> list[int]:
    out = []
    async with conn.cursor() as cur:
        for _ in range(n):
            await cur.execute("SELECT @@server_id")
            row = await cur.fetchone()
            out.append(int(row[0]))
    return out


def run(coro: Any) -> Any:
    async def with_pools() -> Any:
        try:
            return await coro
        finally:
            await msplugin.aio.close_pools()

    return asyncio.run(with_pools())


def test_connecting_to_a_hung_master_is_bounded_by_connect_timeout(
    fsb: Sandbox, fault_config: Callable[..., str], stop: Callable[[str], float]
) -> None:
    stop("primary")

    async def scenario() -> tuple[float, str]:
        conn = await msplugin.aio.connect("sandbox", config=fault_config(), connect_timeout=2)
        start = time.monotonic()
        with pytest.raises(msplugin.NoBackendAvailable) as info:
            async with conn.cursor() as cur:
                await cur.execute("INSERT INTO t (v) VALUES (301)")
        conn.close()
        return time.monotonic() - start, str(info.value)

    took, message = run(scenario())
    assert took <= 2 + 1, took
    assert "master_0" in message and "connect_timeout 2 s" in message, message


def test_a_read_in_flight_on_a_hung_replica_finishes_on_another_within_seconds(
    fsb: Sandbox, fault_config: Callable[..., str], stop: Callable[[str], float]
) -> None:
    """Default settings: the health check finds the replica hung and interrupts the read
    (its aiomysql connection is registered with the quarantine); it runs again elsewhere."""
    cfg = fault_config(filters={"roundrobin": []})
    slave_0 = ("127.0.0.1", fsb.node("replica1").port, "")

    async def scenario() -> tuple[Any, float, dict[str, int], int]:
        conn = await msplugin.aio.connect("sandbox", config=cfg)
        assert await server_ids(conn, 2) == [2, 3]  # the next read goes to slave_0
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, stop, "replica1")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.05)

        tick = asyncio.create_task(ticker())
        start = time.monotonic()
        async with conn.cursor() as cur:
            await cur.execute("SELECT @@server_id, SLEEP(1)")  # replica1 stops 0.3 s into it
            row = await cur.fetchone()
        took = time.monotonic() - start
        tick.cancel()
        stats = conn.stats()
        await conn.ensure_closed()
        return row, took, stats, ticks

    row, took, stats, ticks = run(scenario())
    assert row == (3, 0)
    assert took < 5, took
    assert ticks >= took / 0.05 * 0.5  # the loop kept running while the read waited
    assert "hung" in health.down[slave_0]
    assert stats["read_retries"] + stats["unsent_retries"] == 1
    fsb.kill("replica1", signal.SIGCONT)


def test_a_write_in_flight_on_a_hung_master_fails_as_may_have_run(
    fsb: Sandbox, fault_config: Callable[..., str], stop: Callable[[str], float]
) -> None:
    async def scenario() -> tuple[float, str]:
        conn = await msplugin.aio.connect("sandbox", config=fault_config())
        async with conn.cursor() as cur:
            await cur.execute("INSERT INTO t (v) VALUES (311)")
            asyncio.get_running_loop().call_later(0.3, stop, "primary")
            start = time.monotonic()
            with pytest.raises(pymysql.err.OperationalError) as info:
                await cur.execute("INSERT INTO t (v) SELECT 312 FROM (SELECT SLEEP(1)) AS s")
        conn.close()
        return time.monotonic() - start, str(info.value)

    took, message = run(scenario())
    assert took < 4, took
    assert "master_0" in message and "hung" in message, message
    assert "not a read, and it may have run" in message


def test_a_dead_replica_fails_over_to_the_other(
    fsb: Sandbox, fault_config: Callable[..., str]
) -> None:
    fsb.kill("replica1", signal.SIGKILL)
    try:

        async def scenario() -> list[int]:
            conn = await msplugin.aio.connect("sandbox", config=fault_config())
            ids = await server_ids(conn, 10)
            await conn.ensure_closed()
            return ids

        assert set(run(scenario())) == {3}
    finally:
        fsb.start("replica1")


def test_read_timeout_bounds_a_statement(fsb: Sandbox, fault_config: Callable[..., str]) -> None:
    async def scenario() -> tuple[float, str]:
        conn = await msplugin.aio.connect("sandbox", config=fault_config(), read_timeout=1)
        start = time.monotonic()
        with pytest.raises(pymysql.err.OperationalError) as info:
            async with conn.cursor() as cur:
                await cur.execute("/*ms=master*/SELECT SLEEP(3)")
        conn.close()
        return time.monotonic() - start, str(info.value)

    took, message = run(scenario())
    assert took < 2, took
    assert "read_timeout 1 s" in message, message
