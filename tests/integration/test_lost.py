"""A lost server inside a transaction never wedges the connection, and says what became of
the transaction. Real server processes: kill -9, SIGSTOP, restarts, on the module's own sandbox.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Callable

import pymysql
import pytest
from live import scalar, wait_until

import msplugin
from msplugin import health
from msplugin.sandbox import Sandbox, SandboxError

pytestmark = pytest.mark.integration

PROBE = 2.0  # the default quarantine.interval: a restarted server is back within one


@pytest.fixture(autouse=True)
def _fresh(fresh_health: None) -> None:
    """Every test starts with all servers running and nothing quarantined."""


def rows(fsb: Sandbox, v: int) -> int:
    """How many rows of t have *v*, read on the primary."""
    with msplugin.connect("sandbox", config=str(fsb.config_path)) as c:
        return scalar(c, f"/*ms=master*/ SELECT COUNT(*) FROM t WHERE v = {v}")


def restart_primary(fsb: Sandbox) -> None:
    fsb.start("primary")
    wait_until(lambda: not health.down, timeout=PROBE + 3)


def test_commit_after_the_primary_died_did_not_commit_and_the_connection_works_again(
    fsb: Sandbox, fault_config: Callable[..., str]
) -> None:
    with msplugin.connect("sandbox", config=fault_config()) as conn:
        cur = conn.cursor()
        conn.begin()
        cur.execute("INSERT INTO t (v) VALUES (101)")
        fsb.kill("primary")
        with pytest.raises(pymysql.err.OperationalError) as info:
            conn.commit()
        message = str(info.value)
        assert "master_0" in message and str(fsb.primary.port) in message, message
        assert "did not commit" in message, message
        conn.rollback()  # never raises because a backend is gone
        conn.rollback()
        with pytest.raises(msplugin.NoBackendAvailable, match="master_0"):
            conn.begin()  # the primary is down: said at once, nothing hangs
        conn.rollback()
        restart_primary(fsb)
        conn.begin()
        cur.execute("INSERT INTO t (v) VALUES (102)")
        conn.commit()
    assert rows(fsb, 101) == 0  # what it said: the transaction did not commit
    assert rows(fsb, 102) == 1


def test_a_statement_in_a_lost_transaction_says_the_transaction_did_not_commit(
    fsb: Sandbox, fault_config: Callable[..., str]
) -> None:
    with msplugin.connect("sandbox", config=fault_config()) as conn:
        cur = conn.cursor()
        conn.begin()
        cur.execute("INSERT INTO t (v) VALUES (111)")
        fsb.kill("primary")
        with pytest.raises(pymysql.err.OperationalError) as info:
            cur.execute("INSERT INTO t (v) VALUES (112)")
        message = str(info.value)
        assert "master_0" in message and "did not commit" in message, message
        with pytest.raises(pymysql.err.OperationalError, match="did not commit"):
            conn.commit()
        conn.rollback()
        restart_primary(fsb)
        cur.execute("INSERT INTO t (v) VALUES (113)")
    assert (rows(fsb, 111), rows(fsb, 112), rows(fsb, 113)) == (0, 0, 1)


def test_commit_that_got_no_reply_says_the_outcome_is_unknown(
    fsb: Sandbox, fault_config: Callable[..., str]
) -> None:
    with msplugin.connect("sandbox", config=fault_config()) as conn:
        cur = conn.cursor()
        conn.begin()
        cur.execute("INSERT INTO t (v) VALUES (121)")
        fsb.kill("primary", signal.SIGSTOP)  # the COMMIT is sent, and never answered
        resume = threading.Timer(12, fsb.kill, ("primary", signal.SIGCONT))
        resume.start()
        try:
            start = time.monotonic()
            with pytest.raises(pymysql.err.OperationalError) as info:
                conn.commit()
            took = time.monotonic() - start
        finally:
            resume.cancel()
            fsb.kill("primary", signal.SIGCONT)
        message = str(info.value)
        assert "master_0" in message and "unknown" in message and "hung" in message, message
        assert took < 4, took  # the health check found it hung (1 s checks, 1 s timeout)
        conn.rollback()
        wait_until(lambda: not health.down, timeout=PROBE + 3)
        cur.execute("INSERT INTO t (v) VALUES (122)")
    assert rows(fsb, 122) == 1


def test_a_worker_loop_works_again_as_soon_as_the_primary_is_back(
    fsb: Sandbox, fault_config: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    """The loop of the issue: begin / write / commit, except: rollback."""
    caplog.set_level(logging.WARNING, logger="msplugin.health")
    cfg = fault_config()
    stop = threading.Event()
    done: list[tuple[float, int, str]] = []  # (when, value written, "ok" or the error)
    crashed: list[BaseException] = []

    def worker() -> None:
        try:
            with msplugin.connect("sandbox", config=cfg) as conn:
                cur = conn.cursor()
                v = 1000
                while not stop.is_set():
                    v += 1
                    try:
                        conn.begin()
                        cur.execute("INSERT INTO t (v) VALUES (%s)", (v,))
                        conn.commit()
                        done.append((time.monotonic(), v, "ok"))
                    except msplugin.Error as exc:
                        done.append((time.monotonic(), v, str(exc)))
                        conn.rollback()  # must never raise
                        time.sleep(0.02)
        except BaseException as exc:  # collected and asserted below
            crashed.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        wait_until(lambda: len(done) >= 20, timeout=10)
        fsb.kill("primary")
        time.sleep(1.0)
        fsb.start("primary")
        back = time.monotonic()
        wait_until(lambda: any(t > back and r == "ok" for t, _, r in done), timeout=PROBE + 3)
        took = next(t for t, _, r in done if t > back and r == "ok") - back
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    assert crashed == []
    assert took <= PROBE + 1.0, took
    failed = [(v, r) for _, v, r in done if r != "ok"]
    assert failed, "the primary's death must have failed some transactions"
    quarantines = [r for r in caplog.records if "quarantined" in r.message]
    assert len(quarantines) == 1, [r.message for r in quarantines]  # not again after restart
    assert not health.down
    with msplugin.connect("sandbox", config=cfg) as check:
        cur = check.cursor()
        cur.execute("/*ms=master*/ SELECT v, COUNT(*) FROM t WHERE v > 1000 GROUP BY v")
        written = dict(cur.fetchall())
    assert all(n == 1 for n in written.values())  # nothing ran twice
    assert all(v in written for _, v, r in done if r == "ok")
    # What a failure said is what happened: "did not commit" means not written.
    assert not [v for v, r in failed if "did not commit" in r and v in written]


def test_a_write_on_a_connection_from_before_an_outage_runs_once_on_a_new_one(
    fsb: Sandbox, fault_config: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    """The health check found the primary dead and closed the process's connections to it;
    after the restart, a write on such a connection was never sent, so it runs on a new one,
    and finding that old connection broken does not quarantine the restarted primary."""
    caplog.set_level(logging.WARNING, logger="msplugin.health")
    with msplugin.connect("sandbox", config=fault_config()) as conn:
        cur = conn.cursor()
        cur.execute("INSERT INTO t (v) VALUES (141)")
        fsb.kill("primary")
        wait_until(lambda: bool(health.down), timeout=3)  # the check found it dead
        restart_primary(fsb)
        cur.execute("INSERT INTO t (v) VALUES (142)")
        assert conn.stats()["unsent_retries"] == 1
    assert not health.down
    assert len([r for r in caplog.records if "quarantined" in r.message]) == 1
    assert rows(fsb, 142) == 1


def test_a_server_that_cannot_start_is_reported_with_its_exit_status(fsb: Sandbox) -> None:
    # The readiness wait asks the server's own process whether it exited (stop 20 saw a
    # /proc-based check call a running server gone): a server that really exits (its port
    # taken) is named with its exit status, and starts once the port is free.
    fsb.kill("replica2")
    port = fsb.node("replica2").port
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with pytest.raises(SandboxError, match=r"replica2 .*exited during start with status [1-9]"):
            fsb.start("replica2")
    fsb.start("replica2")
    with fsb.admin(fsb.node("replica2")) as admin, admin.cursor() as cur:
        cur.execute("SELECT @@port")
        assert cur.fetchone() == (port,)
