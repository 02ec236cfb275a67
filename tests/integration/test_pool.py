"""Connection pooling on the sandbox: reuse, reset between borrowers, bounds, timeouts, load."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pymysql
import pytest
from live import scalar

import msplugin
from msplugin import health
from msplugin.pool import pool_stats
from msplugin.sandbox import APP_USER, DATABASE, Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def clean_pools(sandbox: Sandbox) -> Iterator[None]:
    msplugin.close_pools()
    with msplugin.connect("sandbox", config=str(sandbox.config_path)) as c:
        c.cursor().execute(
            "CREATE TABLE IF NOT EXISTS pool_t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"
        )
    msplugin.close_pools()
    yield
    msplugin.close_pools()
    health.reset()


def app_connections(sandbox: Sandbox) -> dict[str, int]:
    """Connections of the application user open on each server, as the servers count them.

    msplugin's own health checks and replica monitors log in as the same user but with no
    database; the application's connections are in the sandbox's database.
    """
    out = {}
    for node in sandbox.nodes:
        with sandbox.admin(node) as admin, admin.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s AND DB = %s",
                (APP_USER, DATABASE),
            )
            row = cur.fetchone()
            assert row is not None
            out[node.name] = int(row[0])
    return out


def since(before: dict[str, int]) -> dict[str, int]:
    """Pool counters since *before* (they are process totals)."""
    now = pool_stats()
    return {
        k: v - before[k] if not k.startswith(("pool_size", "pool_in_use")) else v
        for k, v in now.items()
    }


def test_backend_connections_are_reused(sandbox: Sandbox) -> None:
    cfg = str(sandbox.config_path)
    before = pool_stats()
    with msplugin.connect("sandbox", config=cfg) as c:
        first = scalar(c, "/*ms=master*/ SELECT CONNECTION_ID()")
    with msplugin.connect("sandbox", config=cfg) as c:
        assert scalar(c, "/*ms=master*/ SELECT CONNECTION_ID()") == first
    stats = since(before)
    assert stats["pool_created"] == 1 and stats["pool_reused"] == 1 and stats["pool_resets"] == 2


def test_second_borrower_sees_nothing_of_the_first(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = str(sandbox.config_path)
    with msplugin.connect("sandbox", config=cfg, autocommit=True) as c:
        cur = c.cursor()
        first = scalar(c, "/*ms=master*/ SELECT CONNECTION_ID()")
        cur.execute("SET @secret = 'first user'")
        cur.execute("CREATE TEMPORARY TABLE private_tmp (a INT)")
        cur.execute("/*ms=master*/ SELECT GET_LOCK('pool_test_lock', 0)")
        cur.execute("SET time_zone = '+05:00'")
        cur.execute("PREPARE st FROM 'SELECT 1'")
        c.begin()
        cur.execute("INSERT INTO pool_t (v) VALUES (42)")  # left open: must be rolled back
    assert any("rolled back" in r.message for r in caplog.records if r.levelno == logging.WARNING)
    with msplugin.connect("sandbox", config=cfg) as c:
        cur = c.cursor()
        assert scalar(c, "/*ms=master*/ SELECT CONNECTION_ID()") == first
        cur.execute(
            "/*ms=master*/ SELECT @secret, @@session.time_zone, IS_USED_LOCK('pool_test_lock')"
        )
        assert cur.fetchone() == (None, "SYSTEM", None)
        with pytest.raises(pymysql.err.ProgrammingError):
            cur.execute("/*ms=master*/ SELECT * FROM private_tmp")
        with pytest.raises(pymysql.err.OperationalError):
            cur.execute("/*ms=master*/ EXECUTE st")
        cur.execute("/*ms=master*/ SELECT COUNT(*) FROM pool_t WHERE v = 42")
        assert cur.fetchone() == (0,)
        cur.execute("/*ms=master*/ SELECT @@autocommit, DATABASE(), @@character_set_client")
        assert cur.fetchone() == (1, "test", "utf8mb4")


def test_api_settings_of_a_borrower_do_not_reach_the_next_one(sandbox: Sandbox) -> None:
    """select_db(), set_character_set() and autocommit() change the PyMySQL connection
    itself, not only the session: the pool's reset brings back the pool's own settings."""
    cfg = str(sandbox.config_path)
    with msplugin.connect("sandbox", config=cfg) as c:
        first = scalar(c, "/*ms=master*/ SELECT CONNECTION_ID()")
        c.set_character_set("latin1")
        c.select_db("information_schema")
        c.autocommit(False)
    with msplugin.connect("sandbox", config=cfg) as c:
        assert scalar(c, "/*ms=master*/ SELECT CONNECTION_ID()") == first
        cur = c.cursor()
        cur.execute("/*ms=master*/ SELECT @@autocommit, DATABASE(), @@character_set_client")
        assert cur.fetchone() == (1, "test", "utf8mb4")
        assert c.character_set_name() == "utf8mb4"


def test_pools_are_keyed_by_user_and_password(sandbox: Sandbox, tmp_path: Path) -> None:
    data = json.loads(sandbox.config_path.read_text())
    password = data["sandbox"]["master"]["master_0"]["password"]
    for role in ("master", "slave"):
        for server in data["sandbox"][role].values():
            del server["user"], server["password"]  # credentials come from connect()
    cfg = tmp_path / "nocreds.json"
    cfg.write_text(json.dumps(data))
    with msplugin.connect("sandbox", config=str(cfg), user=APP_USER, password=password) as c:
        scalar(c, "/*ms=master*/ SELECT 1")  # now idle in the pool
    # The same user name with a wrong password must not get the pooled, authenticated session.
    with msplugin.connect("sandbox", config=str(cfg), user=APP_USER, password="wrong") as c:
        with pytest.raises(pymysql.err.OperationalError) as info:
            scalar(c, "/*ms=master*/ SELECT 1")
        assert "Access denied" in str(info.value) and "wrong" not in str(info.value)
    with msplugin.connect("sandbox", config=str(cfg), user="someone_else", password=password) as c:
        with pytest.raises(pymysql.err.OperationalError) as info:
            scalar(c, "/*ms=master*/ SELECT 1")
        assert "Access denied" in str(info.value)


def test_queue_timeout(make_config: Callable[..., str]) -> None:
    cfg = make_config(pooling={"max_size": 1, "queue_timeout": 0.3})
    before = pool_stats()
    holder = msplugin.connect("sandbox", config=cfg)
    scalar(holder, "/*ms=master*/ SELECT 1")
    try:
        with msplugin.connect("sandbox", config=cfg) as c:
            start = time.monotonic()
            with pytest.raises(msplugin.PoolTimeout, match="max_size") as info:
                scalar(c, "/*ms=master*/ SELECT 1")
            assert 0.3 <= time.monotonic() - start < 1.0
            assert isinstance(info.value, pymysql.err.OperationalError)
    finally:
        holder.close()
    assert since(before)["pool_timeouts"] == 1


def test_pooling_disabled_opens_and_closes(
    sandbox: Sandbox, make_config: Callable[..., str]
) -> None:
    cfg = make_config(pooling={"enabled": False})
    before = pool_stats()
    ids = set()
    for _ in range(3):
        with msplugin.connect("sandbox", config=cfg) as c:
            ids.add(scalar(c, "/*ms=master*/ SELECT CONNECTION_ID()"))
    assert len(ids) == 3
    assert since(before)["pool_created"] == 0


def test_close_pools_closes_server_connections(sandbox: Sandbox) -> None:
    baseline = app_connections(sandbox)
    cfg = str(sandbox.config_path)
    conns = [msplugin.connect("sandbox", config=cfg) for _ in range(5)]
    for c in conns:
        scalar(c, "/*ms=master*/ SELECT 1")
    for c in conns:
        c.close()
    assert app_connections(sandbox)["primary"] == baseline["primary"] + 5  # idle in the pool
    msplugin.close_pools()
    assert wait_for(lambda: app_connections(sandbox) == baseline)


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_load_1000_facades_100_threads(sandbox: Sandbox, make_config: Callable[..., str]) -> None:
    """1,000 facade connections from 100 threads, reads and writes, max_size 20 per server."""
    max_size = 20
    cfg = make_config(pooling={"max_size": max_size, "queue_timeout": 60})
    baseline = app_connections(sandbox)
    before = pool_stats()
    peak: dict[str, int] = dict.fromkeys(baseline, 0)
    errors: list[BaseException] = []
    done = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for name, n in app_connections(sandbox).items():
                peak[name] = max(peak[name], n - baseline[name])
            time.sleep(0.05)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(10):
                with msplugin.connect("sandbox", config=cfg) as c:
                    cur = c.cursor()
                    for _ in range(4):
                        if rng.random() < 0.3:
                            cur.execute("INSERT INTO pool_t (v) VALUES (%s)", (seed,))
                        else:
                            cur.execute("SELECT COUNT(*) FROM pool_t WHERE v = %s", (seed,))
                            cur.fetchall()
                with lock:
                    done[0] += 1
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert errors == []
    assert done[0] == 1000
    stats = since(before)
    assert all(n <= max_size for n in peak.values()), peak
    assert peak["primary"] > 1  # the pool was really used concurrently
    assert stats["pool_waits"] > 0, stats  # and borrowers queued for it
    assert stats["pool_in_use"] == 0
    assert stats["pool_created"] <= 3 * max_size
    msplugin.close_pools()
    assert wait_for(lambda: app_connections(sandbox) == baseline), app_connections(sandbox)


def test_pool_repr_hides_password(sandbox: Sandbox) -> None:
    from msplugin.pool import _pools

    with msplugin.connect("sandbox", config=str(sandbox.config_path)) as c:
        scalar(c, "/*ms=master*/ SELECT 1")
    password = str(sandbox.config_path.read_text()).split('"password": "')[1].split('"')[0]
    for pool in _pools.values():
        assert password not in repr(pool)


def master_connection_id(cfg: str) -> int:
    with msplugin.connect("sandbox", config=cfg) as c:
        return scalar(c, "/*ms=master*/ SELECT CONNECTION_ID()")


def test_min_size_opens_connections_up_front(make_config: Callable[..., str]) -> None:
    before = pool_stats()
    master_connection_id(make_config(pooling={"min_size": 3}))
    assert since(before)["pool_created"] == 3  # only the master's pool was used


@pytest.mark.parametrize("key", ["max_lifetime", "max_idle_time"])
def test_old_idle_connections_are_replaced(make_config: Callable[..., str], key: str) -> None:
    cfg = make_config(pooling={key: 0.2})
    first = master_connection_id(cfg)
    assert master_connection_id(cfg) == first  # young enough: reused
    time.sleep(0.3)
    assert master_connection_id(cfg) != first


def test_pre_ping_replaces_a_connection_killed_while_idle(
    sandbox: Sandbox, make_config: Callable[..., str]
) -> None:
    for pre_ping in (True, False):
        msplugin.close_pools()
        cfg = make_config(pooling={"pre_ping": pre_ping}, session_state="off")
        first = master_connection_id(cfg)
        with sandbox.admin(sandbox.primary) as admin, admin.cursor() as cur:
            cur.execute(f"KILL CONNECTION {first}")
        with msplugin.connect("sandbox", config=cfg) as c:
            if pre_ping:
                assert scalar(c, "/*ms=master*/ SELECT CONNECTION_ID()") != first
            else:
                # Without pre_ping (and no tracking statement at checkout) the broken connection
                # surfaces on the first statement, which is then a read retried... on the
                # master only, so it is refused and named.
                with pytest.raises(pymysql.err.OperationalError, match="master_0"):
                    scalar(c, "/*ms=master*/ SELECT CONNECTION_ID()")
        # A healthy server whose one connection broke is back after the first, immediate probe.
        assert wait_for(lambda: not health.down, timeout=1.0)
