"""What only the asyncio edge has: many tasks at once over the async pools, session
consistency under concurrency, and SQLAlchemy's async engine over msplugin.aio.

The behaviours both facades share are tests/integration/test_contract.py's.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from live import setup, wait_until
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

import msplugin
import msplugin.aio
from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def table(sandbox: Sandbox) -> None:
    setup(
        sandbox,
        "DROP TABLE IF EXISTS at",
        "CREATE TABLE at (id INT PRIMARY KEY, v INT, task INT)",
        "INSERT INTO at VALUES (1, 100, 0)",
    )


def app_connections(sandbox: Sandbox) -> dict[str, int]:
    """Sessions of the application's user with the test database, per server (msplugin's
    probes and monitors connect with no database)."""
    counts = {}
    for node in sandbox.nodes:
        admin = sandbox.admin(node)
        try:
            cur = admin.cursor()
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                "WHERE USER = 'msplugin' AND DB = 'test'"
            )
            row = cur.fetchone()
            assert row is not None
            counts[node.name] = int(row[0])
        finally:
            admin.close()
    return counts


class Sampler:
    """The most application sessions each server had while the block ran (sampled)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, n in app_connections(self.sandbox).items():
                self.peak[name] = max(self.peak.get(name, 0), n)
            self._stop.wait(0.05)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_thousand_tasks_share_the_pools_within_their_bounds(
    sandbox: Sandbox, make_config: Callable[..., str]
) -> None:
    config = make_config(pooling={"max_size": 20, "queue_timeout": 60})
    before = app_connections(sandbox)
    errors: list[BaseException] = []
    writes = [0]

    async def task(n: int) -> None:
        conn = await msplugin.aio.connect("sandbox", config=config)
        try:
            async with conn.cursor() as cur:
                for i in range(5):
                    if random.Random(n * 10 + i).random() < 0.3:
                        await cur.execute("UPDATE at SET v = v + 1, task = %s WHERE id = 1", (n,))
                        writes[0] += 1
                    else:
                        await cur.execute("SELECT v FROM at WHERE id = 1")
                        assert await cur.fetchone() is not None
        except Exception as exc:  # counted, not raised: the test reports them all
            errors.append(exc)
        finally:
            await conn.ensure_closed()

    async def run() -> dict[str, int]:
        await asyncio.gather(*(task(n) for n in range(1000)))
        stats = msplugin.get_stats()
        await msplugin.aio.close_pools()
        return stats

    with Sampler(sandbox) as sampler:
        started = time.monotonic()
        stats = asyncio.run(run())
        took = time.monotonic() - started
    assert errors == [], errors[:3]
    assert writes[0] > 1000  # about 30% of 5,000 statements
    assert all(n <= 20 + before[name] for name, n in sampler.peak.items()), sampler.peak
    assert stats["pool_created"] >= 1
    wait_until(lambda: app_connections(sandbox) == before, 10)
    print(f"\n1,000 tasks: {took:.1f} s, sessions per server: peak {sampler.peak}, before {before}")


def test_two_hundred_tasks_read_their_own_writes(
    sandbox: Sandbox, make_config: Callable[..., str]
) -> None:
    config = make_config(filters={"quality_of_service": {"session_consistency": 1}})
    setup(sandbox, "DELETE FROM at WHERE id > 1")
    stale: list[tuple[int, Any]] = []
    served: dict[str, int] = {}

    async def task(n: int) -> None:
        conn = await msplugin.aio.connect("sandbox", config=config)
        try:
            async with conn.cursor() as cur:
                await cur.execute("INSERT INTO at VALUES (%s, %s, %s)", (1000 + n, n, n))
                await cur.execute("SELECT v FROM at WHERE id = %s", (1000 + n,))
                row = await cur.fetchone()
                if row != (n,):
                    stale.append((n, row))
                role = str(conn.last_used.role) if conn.last_used else "?"
                served[role] = served.get(role, 0) + 1
        finally:
            await conn.ensure_closed()

    async def run() -> None:
        await asyncio.gather(*(task(n) for n in range(200)))
        await msplugin.aio.close_pools()

    asyncio.run(run())
    assert stale == []
    assert sum(served.values()) == 200
    print(f"\n200 write-then-read pairs: reads served by {served}")


@pytest.fixture
def engine_url(make_config: Callable[..., str]) -> Iterator[Callable[..., str]]:
    def url(**group_keys: Any) -> str:
        return (
            f"mysql+msplugin_aio://msplugin:unused@sandbox/test?config={make_config(**group_keys)}"
        )

    yield url


def test_sqlalchemy_async_engine_reads_on_replicas_and_commits_writes(
    engine_url: Callable[..., str], sandbox: Sandbox
) -> None:
    async def run() -> tuple[list[str], int]:
        engine = create_async_engine(engine_url(trx_stickiness="optimistic"))
        roles = []
        async with AsyncSession(engine) as session:
            for _ in range(5):
                result = await session.execute(text("SELECT v FROM at WHERE id = 1"))
                assert result.scalar_one() is not None
                raw = await (await session.connection()).get_raw_connection()
                facade = raw.dbapi_connection._connection  # type: ignore[union-attr]
                roles.append(str(facade.last_used.role))
                await session.commit()
            await session.execute(text("UPDATE at SET v = 555 WHERE id = 1"))
            await session.commit()
        async with engine.connect() as conn:
            result = await conn.execute(text("SELECT v FROM at WHERE id = 1 FOR UPDATE"))
            value = result.scalar_one()
        await engine.dispose()
        await msplugin.aio.close_pools()
        return roles, value

    roles, value = asyncio.run(run())
    assert roles == ["slave"] * 5  # each read-only unit ran on a replica
    assert value == 555  # the write committed on the primary (a locking read runs there)
    setup(sandbox, "UPDATE at SET v = 100 WHERE id = 1")


def test_the_event_loop_is_not_blocked_while_a_statement_waits(
    sandbox: Sandbox,
) -> None:
    config = str(sandbox.config_path)

    async def run() -> tuple[int, float]:
        conn = await msplugin.aio.connect("sandbox", config=config)
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        tick_task = asyncio.create_task(ticker())
        started = time.monotonic()
        cur = await conn.cursor()  # awaited, as aiomysql's cursor() is
        await cur.execute("SELECT SLEEP(0.5)")
        await cur.close()
        took = time.monotonic() - started
        stop.set()
        await tick_task
        await conn.ensure_closed()
        await msplugin.aio.close_pools()
        return ticks, took

    ticks, took = asyncio.run(run())
    assert took >= 0.5
    assert ticks >= 20  # the loop ran other tasks during the half second
