"""transient_error: statements the server refused with a listed error code run again."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pymysql
import pytest

import msplugin
from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration

TRANSIENT = {"mysql_error_codes": [1205], "max_retries": 2, "usleep_retry": 300_000}


@pytest.fixture(autouse=True)
def table(sandbox: Sandbox) -> None:
    with msplugin.connect("sandbox", config=str(sandbox.config_path)) as c:
        cur = c.cursor()
        cur.execute("CREATE OR REPLACE TABLE transient (id INT PRIMARY KEY, v INT)")
        cur.execute("INSERT INTO transient VALUES (1, 0)")


def hold_row_lock(sandbox: Sandbox, seconds: float) -> threading.Thread:
    """Lock row 1 from another session for *seconds* (a real lock wait on the master)."""
    holder = sandbox.admin(sandbox.primary)
    holder.select_db("test")
    holder.begin()
    holder.cursor().execute("SELECT v FROM transient WHERE id = 1 FOR UPDATE")
    timer = threading.Timer(seconds, lambda: (holder.commit(), holder.close()))
    timer.start()
    return timer


def connect(config: str) -> msplugin.Connection:
    return msplugin.connect(
        "sandbox", config=config, init_command="SET SESSION innodb_lock_wait_timeout = 1"
    )


def test_lock_wait_timeout_is_retried(sandbox: Sandbox, make_config: Callable[..., str]) -> None:
    with connect(make_config(transient_error=TRANSIENT)) as conn:
        # Held past the first wait (1 s) and released within the retry's (0.3 s later, 1 s):
        # margins of about 0.6 s each way on a loaded machine.
        timer = hold_row_lock(sandbox, 1.6)
        cur = conn.cursor()
        cur.execute("UPDATE transient SET v = v + 1 WHERE id = 1")  # 1205 once, then succeeds
        timer.join()
        assert conn.stats()["transient_error_retries"] == 1
        cur.execute("/*ms=master*/ SELECT v FROM transient WHERE id = 1")
        assert cur.fetchone() == (1,)  # applied once


def test_retries_are_bounded(sandbox: Sandbox, make_config: Callable[..., str]) -> None:
    cfg = make_config(transient_error={**TRANSIENT, "max_retries": 1, "usleep_retry": 1000})
    with connect(cfg) as conn:
        timer = hold_row_lock(sandbox, 3.5)
        with pytest.raises(pymysql.err.OperationalError) as info:
            conn.cursor().execute("UPDATE transient SET v = v + 1 WHERE id = 1")
        timer.join()
        assert info.value.args[0] == 1205
        assert conn.stats()["transient_error_retries"] == 1


def test_not_retried_inside_a_transaction(
    sandbox: Sandbox, make_config: Callable[..., str]
) -> None:
    with connect(make_config(transient_error=TRANSIENT)) as conn:
        conn.begin()
        timer = hold_row_lock(sandbox, 1.5)
        with pytest.raises(pymysql.err.OperationalError) as info:
            conn.cursor().execute("UPDATE transient SET v = v + 1 WHERE id = 1")
        timer.join()
        conn.rollback()
        assert info.value.args[0] == 1205
        assert conn.stats()["transient_error_retries"] == 0


def test_unlisted_codes_are_not_retried(sandbox: Sandbox, make_config: Callable[..., str]) -> None:
    with connect(make_config(transient_error=TRANSIENT)) as conn:
        with pytest.raises(pymysql.err.IntegrityError):
            conn.cursor().execute("INSERT INTO transient VALUES (1, 0)")
        assert conn.stats()["transient_error_retries"] == 0
