"""The asyncio edge's own rules, without a server: keywords translated for aiomysql, the
async pools' bounds and resets (over a fake connection), and the sync runner of flows."""

from __future__ import annotations

import asyncio
from typing import Any

import pymysql
import pytest

import msplugin
from msplugin.aio.pool import AsyncPool
from msplugin.aio.port import aiomysql_params
from msplugin.config.model import PoolingConfig
from msplugin.port import run_sync


def test_pymysql_keywords_become_aiomysql_ones() -> None:
    params = {"host": "h", "database": "d", "read_timeout": 3, "charset": "utf8mb4"}
    assert aiomysql_params(params) == {"host": "h", "db": "d", "charset": "utf8mb4"}


def test_keywords_aiomysql_lacks_are_refused_by_name() -> None:
    with pytest.raises(pymysql.err.NotSupportedError, match="bind_address, ssl_ca"):
        aiomysql_params({"host": "h", "ssl_ca": "/ca.pem", "bind_address": "10.0.0.1"})


def test_run_sync_refuses_a_flow_that_suspends() -> None:
    async def suspends() -> int:
        await asyncio.sleep(0)
        return 1

    async def completes() -> int:
        return 2

    assert run_sync(completes()) == 2
    with pytest.raises(RuntimeError, match="suspended on the sync edge"):
        run_sync(suspends())


class FakeConn:
    """What the async pool uses of an aiomysql connection; records the reset."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.server_status = 0
        self.closed = False
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def _execute_command(self, command: int, sql: bytes) -> None:
        self.calls.append(("command", (command,)))

    async def _read_ok_packet(self) -> None:
        pass

    async def rollback(self) -> None:
        self.calls.append(("rollback", ()))

    async def ping(self, reconnect: bool) -> None:
        self.calls.append(("ping", ()))

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any) -> None:
            self.calls.append((name, args))

        return call

    def close(self) -> None:
        self.closed = True


def test_a_connection_given_back_outside_its_loop_is_closed_not_pooled() -> None:
    async def borrow() -> tuple[AsyncPool, FakeConn]:
        pool, _ = _pool()
        return pool, await pool.checkout()

    pool, conn = asyncio.run(borrow())
    pool.checkin(conn)  # the loop has ended: no task can reset it
    assert conn.closed and pool.size == 0 and pool.in_use == 0
    assert pool.counts["pool_discarded"] == 1


def _pool(**config: Any) -> tuple[AsyncPool, list[FakeConn]]:
    opened: list[FakeConn] = []

    async def opener(params: dict[str, Any]) -> FakeConn:
        opened.append(FakeConn(len(opened)))
        return opened[-1]

    cfg = PoolingConfig(**{"enabled": True, "max_size": 1, "queue_timeout": 0.2, **config})
    return AsyncPool({"database": "d", "autocommit": True}, cfg, "srv", opener), opened


def test_a_full_pool_makes_the_next_borrower_wait_then_time_out() -> None:
    async def scenario() -> None:
        pool, opened = _pool()
        first = await pool.checkout()
        with pytest.raises(msplugin.PoolTimeout, match="max_size"):
            await pool.checkout()
        waiter = asyncio.ensure_future(pool.checkout())
        await asyncio.sleep(0.01)
        pool.checkin(first)  # reset as a task, then lent to the waiter
        assert await waiter is first
        assert len(opened) == 1 and pool.size == 1 and pool.in_use == 1

    asyncio.run(scenario())


def test_a_returned_connection_is_reset_to_its_connect_state() -> None:
    async def scenario() -> None:
        pool, _ = _pool()
        conn = await pool.checkout()
        conn.server_status = pymysql.constants.SERVER_STATUS.SERVER_STATUS_IN_TRANS
        pool.checkin(conn)
        await asyncio.gather(*pool._tasks)
        names = [name for name, _ in conn.calls]
        assert names == ["rollback", "command", "set_charset", "select_db", "autocommit"]
        assert conn.calls[1] == ("command", (0x1F,))  # COM_RESET_CONNECTION
        assert pool.counts["pool_rollbacks"] == 1 and pool.counts["pool_resets"] == 1
        assert pool.in_use == 0 and len(pool._idle) == 1

    asyncio.run(scenario())


def test_a_broken_connection_is_dropped_not_lent_again() -> None:
    async def scenario() -> None:
        pool, opened = _pool(max_size=2)
        conn = await pool.checkout()
        pool.checkin(conn, broken=True)
        assert conn.closed and pool.size == 0 and pool.counts["pool_discarded"] == 1
        again = await pool.checkout()
        assert again is not conn and len(opened) == 2

    asyncio.run(scenario())


def test_pre_ping_checks_an_idle_connection_before_lending_it() -> None:
    async def scenario() -> None:
        pool, _ = _pool(pre_ping=True)
        conn = await pool.checkout()
        pool.checkin(conn)
        await asyncio.gather(*pool._tasks)
        assert await pool.checkout() is conn
        assert ("ping", ()) in conn.calls

    asyncio.run(scenario())


def test_run_void_completes_a_flow_or_refuses_one_that_suspends() -> None:
    from msplugin.port import run_void

    done: list[int] = []

    async def completes() -> None:
        done.append(1)

    async def suspends() -> None:
        await asyncio.sleep(0)

    run_void(completes())
    assert done == [1]
    with pytest.raises(RuntimeError, match="suspended on the sync edge"):
        run_void(suspends())
