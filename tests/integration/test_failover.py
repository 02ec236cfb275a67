"""Failover and quarantine with real server processes: kill -9, SIGSTOP, a dead master.

These tests break servers, so they run on a sandbox of their own (not the session's).
replica1 is slave_0 (server_id 2), replica2 is slave_1 (server_id 3).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymysql
import pytest
from live import PRIMARY, ids, server_id, wait_until

import msplugin
from msplugin import health
from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration

INTERVAL = 0.5  # quarantine probe interval for these tests


@pytest.fixture(autouse=True)
def _fresh(fresh_health: None) -> None:
    """Every test starts with all servers running and nothing quarantined."""


@pytest.fixture
def config(fault_config: Callable[..., str]) -> Callable[..., str]:
    def make(**group_keys: Any) -> str:
        return fault_config(
            **{"quarantine": {"interval": INTERVAL}, "filters": {"roundrobin": []}, **group_keys}
        )

    return make


def test_kill_replica_mid_read_loop(
    fsb: Sandbox, config: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="msplugin")
    cfg = config()
    seen: list[int] = []
    with msplugin.connect("sandbox", config=cfg) as conn:
        seen += ids(conn, 20)
        assert set(seen) == {2, 3}  # round robin over both replicas
        fsb.kill("replica1")
        after = ids(conn, 200)  # not one error reaches the application
        assert set(after) == {3}
        stats = conn.stats()
        # Run again once: after it broke under the read, or, when the health check found
        # the server dead first and closed the idle connection, before it was sent.
        assert stats["read_retries"] + stats["unsent_retries"] == 1, stats
        assert stats["connections_lost"] == 1
    assert any("quarantined" in r.message and "slave_0" in r.message for r in caplog.records)
    assert health.down

    # A later connection skips the quarantined server: it never even tries to connect.
    with msplugin.connect("sandbox", config=cfg) as conn:
        assert set(ids(conn, 20)) == {3}
        assert conn.stats()["lazy_connections_slave_failure"] == 0

    fsb.start("replica1")
    took = wait_until(lambda: not health.down, timeout=INTERVAL + 2.0)
    assert took <= INTERVAL + 1.0
    assert any("is back" in r.message and "slave_0" in r.message for r in caplog.records)
    with msplugin.connect("sandbox", config=cfg) as conn:
        assert set(ids(conn, 10)) == {2, 3}


def test_replica_killed_during_a_read_runs_it_again_elsewhere(
    fsb: Sandbox, config: Callable[..., str]
) -> None:
    with msplugin.connect("sandbox", config=config()) as conn:
        ids(conn, 2)  # both replicas connected; the next read goes to slave_0
        killer = threading.Timer(0.3, fsb.kill, ("replica1",))
        killer.start()
        cur = conn.cursor()
        cur.execute("SELECT @@server_id, SLEEP(1)")  # dies on replica1 after 0.3 s
        killer.join()
        assert cur.fetchone() == (3, 0)
        assert conn.stats()["read_retries"] == 1


def test_statements_that_are_not_retried_name_the_server(
    fsb: Sandbox, config: Callable[..., str]
) -> None:
    cfg = config(quarantine={"interval": INTERVAL, "failure_threshold": 100})
    cases = [
        ("/*ms=slave*/ DO SLEEP(1)", "it is not a read"),
        ("SELECT @v, SLEEP(1)", "session state"),
    ]
    for sql, why in cases:
        with msplugin.connect("sandbox", config=cfg) as conn:
            ids(conn, 2)  # the next statement goes to slave_0
            killer = threading.Timer(0.3, fsb.kill, ("replica1",))
            killer.start()
            with pytest.raises(pymysql.err.OperationalError) as info:
                conn.cursor().execute(sql)
            killer.join()
            message = str(info.value)
            assert "slave_0" in message and str(fsb.node("replica1").port) in message
            assert why in message and "not retried" in message
            assert conn.stats()["read_retries"] == 0
        fsb.start("replica1")


def test_read_in_a_read_only_transaction_is_not_retried(
    fsb: Sandbox, config: Callable[..., str]
) -> None:
    with msplugin.connect("sandbox", config=config(trx_stickiness="on")) as conn:
        conn.begin(read_only=True)
        cur = conn.cursor()
        cur.execute("SELECT @@server_id")
        assert cur.fetchone() == (2,)
        fsb.kill("replica1")
        with pytest.raises(pymysql.err.OperationalError, match="inside a transaction"):
            cur.execute("SELECT 1")
        with pytest.raises(pymysql.err.OperationalError, match=r"transaction .* was lost"):
            cur.execute("SELECT 2")
        with pytest.raises(pymysql.err.OperationalError, match="did not commit"):
            conn.commit()
        cur.execute("SELECT @@server_id")  # the transaction is over: reads go on
        assert cur.fetchone() == (3,)


def test_stopped_replica_times_out_then_fails_over(
    fsb: Sandbox, config: Callable[..., str]
) -> None:
    cfg = config()
    with msplugin.connect("sandbox", config=cfg, read_timeout=1, connect_timeout=1) as conn:
        assert ids(conn, 2) == [2, 3]  # the next read goes to slave_0
        fsb.kill("replica1", signal.SIGSTOP)
        try:
            start = time.monotonic()
            got = ids(conn, 1)  # waits read_timeout on slave_0, then runs on slave_1
            took = time.monotonic() - start
            assert got == [3], (took, conn.stats(), conn.last_used)
            assert 0.9 <= took < 3
            assert set(ids(conn, 20)) == {3}
            # A new connection does not pay the connect timeout: slave_0 is quarantined.
            with msplugin.connect("sandbox", config=cfg, connect_timeout=1) as other:
                start = time.monotonic()
                assert set(ids(other, 20)) == {3}
                assert time.monotonic() - start < 0.5
            time.sleep(INTERVAL * 3)
            assert health.down  # the probes time out while it is stopped
        finally:
            fsb.kill("replica1", signal.SIGCONT)
    took = wait_until(lambda: not health.down, timeout=INTERVAL + 3.0)
    assert took <= INTERVAL + 2.0


def test_master_killed_writes_fail_fast_reads_go_on(
    fsb: Sandbox, config: Callable[..., str]
) -> None:
    cfg = config()
    with msplugin.connect("sandbox", config=cfg, connect_timeout=2) as conn:
        cur = conn.cursor()
        cur.execute("INSERT INTO t (v) VALUES (1)")
        fsb.kill("primary")
        start = time.monotonic()
        with pytest.raises(pymysql.err.OperationalError) as info:
            cur.execute("INSERT INTO t (v) VALUES (2)")
        assert time.monotonic() - start < 2
        assert "master_0" in str(info.value) and "not a read" in str(info.value)
        start = time.monotonic()
        with pytest.raises(msplugin.NoBackendAvailable, match="quarantined"):
            cur.execute("INSERT INTO t (v) VALUES (3)")
        assert time.monotonic() - start < 0.1  # quarantined: no connect attempt at all
        assert set(ids(conn, 10)) <= {2, 3}
    with msplugin.connect("sandbox", config=cfg, connect_timeout=2) as conn:
        assert set(ids(conn, 10)) <= {2, 3}
        with pytest.raises(msplugin.NoBackendAvailable, match="master_0"):
            conn.cursor().execute("INSERT INTO t (v) VALUES (4)")
    fsb.start("primary")
    wait_until(lambda: not health.down, timeout=INTERVAL + 2.0)
    with msplugin.connect("sandbox", config=cfg) as conn:
        cur = conn.cursor()
        cur.execute("/*ms=master*/ SELECT v FROM t ORDER BY id")
        assert cur.fetchall() == ((1,),)  # the failed writes ran nowhere, and never twice
        assert server_id(conn, "/*ms=last_used*/ SELECT @@server_id") == PRIMARY


def test_failover_disabled_raises(fsb: Sandbox, config: Callable[..., str]) -> None:
    cfg = config(failover={"strategy": "disabled"}, slave={})
    data = json.loads(Path(cfg).read_text())
    data["sandbox"]["slave"] = json.loads(fsb.config_path.read_text())["sandbox"]["slave"]
    data["sandbox"]["slave"] = {"slave_0": data["sandbox"]["slave"]["slave_0"]}
    Path(cfg).write_text(json.dumps(data))
    fsb.kill("replica1")
    with msplugin.connect("sandbox", config=cfg) as conn:
        with pytest.raises(pymysql.err.OperationalError):
            ids(conn, 1)
        with pytest.raises(
            msplugin.NoBackendAvailable, match=r"slave_0 \(slave, .*\): quarantined"
        ):
            ids(conn, 1)


def test_a_read_no_server_can_serve_names_every_server_and_why(
    fsb: Sandbox, config: Callable[..., str]
) -> None:
    for node in ("replica1", "replica2", "primary"):
        fsb.kill(node)
    with msplugin.connect("sandbox", config=config()) as conn:
        for attempt in ("connects to each", "all quarantined now"):
            with pytest.raises(msplugin.NoBackendAvailable) as info:
                ids(conn, 1)
            message = str(info.value)
            for name, node in (
                ("slave_0", "replica1"),
                ("slave_1", "replica2"),
                ("master_0", "primary"),
            ):
                assert f"{name} (" in message and str(fsb.node(node).port) in message, (
                    attempt,
                    message,
                )
            assert message.count("Connection refused") == 3, (attempt, message)
