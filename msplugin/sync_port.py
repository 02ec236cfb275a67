"""The sync edge's port (msplugin.port): the flows' I/O done with PyMySQL's blocking calls.

No method suspends, so msplugin.port.run_sync completes any flow in one step. Connections
come from msplugin.driver (whole-connect deadline, interruptible) or the process's pools.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from msplugin import driver
from msplugin.config import PoolingConfig
from msplugin.pool import get_pool

__all__ = ["SYNC_PORT", "SyncPort"]


class SyncPort:
    """PyMySQL, blocking: one instance serves every sync facade connection (it holds nothing)."""

    __slots__ = ()

    async def connect(
        self,
        params: dict[str, Any],
        pooling: PoolingConfig | None,
        info: str,
        before_wait: Callable[[], None] | None,
    ) -> tuple[Any, Any]:
        if pooling is not None and pooling.enabled:
            pool = get_pool(params, pooling, info)
            return pool.checkout(before_wait), pool
        return driver.connect(**params), None

    def release(self, conn: Any, pool: Any, *, broken: bool) -> None:
        if pool is not None:
            pool.checkin(conn, broken=broken)
        elif conn.open:
            conn.close()

    def peer_closed(self, conn: Any) -> bool:
        return driver.peer_closed(conn)

    def cursor(self, conn: Any, cursorclass: Any) -> Any:
        return conn.cursor(cursorclass)

    def empty_result(self, cursorclass: Any, sql: str) -> Any:
        done = cursorclass(None)
        done._executed = sql
        done.rowcount = 0
        done.lastrowid = 0
        return done

    async def execute(self, cur: Any, sql: str, args: Any) -> int:
        result: int = cur.execute(sql, args)
        return result

    async def executemany(self, cur: Any, sql: str, args: Any) -> int | None:
        result: int | None = cur.executemany(sql, args)
        return result

    async def callproc(self, cur: Any, name: str, args: Any) -> Any:
        return cur.callproc(name, args)

    async def fetchone(self, cur: Any) -> Any:
        return cur.fetchone()

    async def fetchall(self, cur: Any) -> Any:
        return cur.fetchall()

    async def nextset(self, cur: Any) -> bool | None:
        result: bool | None = cur.nextset()
        return result

    async def query(self, conn: Any, sql: str) -> Any:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone() if cur.description else None

    async def commit(self, conn: Any) -> None:
        conn.commit()

    async def rollback(self, conn: Any) -> None:
        conn.rollback()

    async def ping(self, conn: Any) -> None:
        conn.ping(False)

    async def call(self, conn: Any, method: str, *args: Any) -> None:
        getattr(conn, method)(*args)

    async def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def max_allowed_packet(self, params: dict[str, Any]) -> int | None:
        return driver.max_allowed_packet(params)

    async def blocking(self, call: Callable[[], object]) -> None:
        call()


SYNC_PORT = SyncPort()
