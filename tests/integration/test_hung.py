"""A hung server (SIGSTOP) costs seconds with default settings, and replicas that do not
replicate lose their reads. Real server processes, on the module's own sandbox.

replica1 is slave_0 (server_id 2), replica2 is slave_1 (server_id 3).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

import pymysql
import pytest
from live import ids, wait_until

import msplugin
from msplugin import health
from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration

PROBE = 2.0  # the default quarantine.interval


@pytest.fixture(autouse=True)
def _fresh(fresh_health: None) -> None:
    """Every test starts with all servers running and nothing quarantined."""


def test_connecting_to_a_hung_master_is_bounded_by_connect_timeout(
    fsb: Sandbox, fault_config: Callable[..., str], stop: Callable[[str], float]
) -> None:
    stop("primary")
    with msplugin.connect("sandbox", config=fault_config(), connect_timeout=2) as conn:
        start = time.monotonic()
        with pytest.raises(msplugin.NoBackendAvailable) as info:
            conn.cursor().execute("INSERT INTO t (v) VALUES (201)")
        took = time.monotonic() - start
    message = str(info.value)
    assert took <= 2 + 1, took
    assert "master_0" in message and "connect_timeout 2 s" in message, message
    assert "hung" in message


def test_a_read_in_flight_on_a_hung_replica_finishes_on_another_within_seconds(
    fsb: Sandbox,
    fault_config: Callable[..., str],
    stop: Callable[[str], float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Default settings: no read_timeout; the health check (every 1 s, 1 s timeout) finds the
    replica hung and interrupts the read, which runs again on the other replica."""
    caplog.set_level(logging.WARNING, logger="msplugin")
    cfg = fault_config(filters={"roundrobin": []})
    slave_0 = ("127.0.0.1", fsb.node("replica1").port, "")
    with msplugin.connect("sandbox", config=cfg) as conn:
        assert ids(conn, 2) == [2, 3]  # the next read goes to slave_0
        stopped_at: list[float] = []  # wall-clock time, as log records have it

        def stop_replica1() -> None:
            stop("replica1")
            stopped_at.append(time.time())

        stopper = threading.Timer(0.3, stop_replica1)
        stopper.start()
        cur = conn.cursor()
        start = time.monotonic()
        cur.execute("SELECT @@server_id, SLEEP(1)")  # replica1 stops 0.3 s into it
        took = time.monotonic() - start
        stopper.join()
        assert cur.fetchone() == (3, 0)
        assert took < 5, took
        assert "hung" in health.down[slave_0]
        quarantined = next(r.created for r in caplog.records if "quarantined" in r.message)
        assert quarantined - stopped_at[0] <= 3  # new statements avoid it from then on
        assert conn.stats()["read_retries"] + conn.stats()["unsent_retries"] == 1
    with msplugin.connect("sandbox", config=cfg) as other:  # new statements avoid it
        start = time.monotonic()
        assert set(ids(other, 20)) == {3}
        assert time.monotonic() - start < 0.5
    fsb.kill("replica1", signal.SIGCONT)
    back = wait_until(lambda: slave_0 not in health.down, timeout=PROBE + 3)
    assert back <= PROBE + 0.5, back  # within one probe interval
    with msplugin.connect("sandbox", config=cfg) as conn:
        assert set(ids(conn, 10)) == {2, 3}


def test_a_write_in_flight_on_a_hung_master_fails_as_may_have_run(
    fsb: Sandbox, fault_config: Callable[..., str], stop: Callable[[str], float]
) -> None:
    with msplugin.connect("sandbox", config=fault_config()) as conn:
        cur = conn.cursor()
        cur.execute("INSERT INTO t (v) VALUES (211)")
        threading.Timer(0.3, stop, ("primary",)).start()
        start = time.monotonic()
        with pytest.raises(pymysql.err.OperationalError) as info:
            cur.execute("INSERT INTO t (v) SELECT 212 FROM (SELECT SLEEP(1)) AS s")
        took = time.monotonic() - start
    message = str(info.value)
    assert took < 4, took
    assert "master_0" in message and "hung" in message, message
    assert "not a read, and it may have run" in message


def test_a_long_query_on_a_healthy_server_is_never_interrupted(
    fsb: Sandbox, fault_config: Callable[..., str]
) -> None:
    cfg = fault_config(quarantine={"check_interval": 0.2, "check_timeout": 0.5})
    with msplugin.connect("sandbox", config=cfg) as conn:
        cur = conn.cursor()
        cur.execute("/*ms=master*/ SELECT SLEEP(0.1)")  # connects: the checks start
        start = time.monotonic()
        cur.execute("/*ms=master*/ SELECT SLEEP(2.5)")
        assert cur.fetchone() == (0,)
        assert time.monotonic() - start >= 2.5  # ran to its end, checked ~12 times meanwhile
        assert conn.stats()["connections_lost"] == 0
    assert not health.down


def replication(fsb: Sandbox, node: str, action: str) -> None:
    with fsb.admin(fsb.node(node)) as admin, admin.cursor() as cur:
        cur.execute(f"{action} SLAVE")


def test_a_replica_that_stops_replicating_loses_its_reads_and_gets_them_back(
    fsb: Sandbox, fault_config: Callable[..., str]
) -> None:
    cfg = fault_config(
        filters={"roundrobin": []}, replica_stopped_limit=1, replica_status_interval=0.2
    )
    with msplugin.connect("sandbox", config=cfg) as conn:
        assert set(ids(conn, 4)) == {2, 3}
        replication(fsb, "replica1", "STOP")
        try:
            took = wait_until(lambda: set(ids(conn, 4)) == {3}, timeout=5)
            assert took >= 0.5  # within the limit it still served reads
            assert set(ids(conn, 20)) == {3}
        finally:
            replication(fsb, "replica1", "START")
        wait_until(lambda: set(ids(conn, 4)) == {2, 3}, timeout=3)


def test_by_default_a_replica_not_replicating_for_5_s_loses_its_reads(
    fsb: Sandbox, fault_config: Callable[..., str]
) -> None:
    cfg = fault_config(filters={"roundrobin": []})
    with msplugin.connect("sandbox", config=cfg) as conn:
        assert set(ids(conn, 4)) == {2, 3}
        replication(fsb, "replica1", "STOP")
        try:
            start = time.monotonic()
            time.sleep(3)
            assert set(ids(conn, 4)) == {2, 3}  # under the limit: still a replica to read
            took = wait_until(lambda: set(ids(conn, 4)) == {3}, timeout=5) + 3
            assert 5 <= took <= 5 + 2, took  # the limit, plus up to one status interval
            assert time.monotonic() - start < 8
        finally:
            replication(fsb, "replica1", "START")


def test_replicas_that_stopped_replicating_still_serve_when_the_master_cannot(
    fsb: Sandbox, fault_config: Callable[..., str]
) -> None:
    """The master dies: its replicas stop replicating (the IO thread reconnects). Reads go on
    on the replicas instead of failing (MaxScale's "stale slave")."""
    cfg = fault_config(replica_stopped_limit=0.5, replica_status_interval=0.2)
    with msplugin.connect("sandbox", config=cfg) as conn:
        ids(conn, 2)
        fsb.kill("primary")
        time.sleep(1.5)  # past the limit: both replicas count as not replicating
        assert set(ids(conn, 10)) <= {2, 3}
        assert conn.stats()["use_slave_stale"] >= 1


def test_replicas_reconnect_to_a_restarted_primary_within_seconds(fsb: Sandbox) -> None:
    fsb.kill("primary")
    time.sleep(0.5)
    fsb.start("primary")

    def replicating() -> bool:
        for node in fsb.replicas:
            with fsb.admin(node) as admin, admin.cursor(pymysql.cursors.DictCursor) as cur:
                cur.execute("SHOW SLAVE STATUS")
                row = cur.fetchone()
                if not row or row["Slave_IO_Running"] != "Yes":
                    return False
        return True

    took = wait_until(replicating, timeout=10)
    assert took <= 3, took  # MASTER_CONNECT_RETRY=1 (MariaDB's default is 60 s)
    with msplugin.connect("sandbox", config=str(fsb.config_path)) as conn:
        conn.cursor().execute("INSERT INTO t (v) VALUES (221)")
    fsb.wait_replicated()
    with fsb.admin(fsb.node("replica1")) as admin, admin.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM test.t WHERE v = 221")
        assert cur.fetchone() == (1,)
