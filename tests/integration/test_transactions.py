"""Transactions are never split: SQL- and API-level, read-only on one slave, implicit commits."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from live import PRIMARY, REPLICAS, server_id, setup

import msplugin
from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def table(sandbox: Sandbox) -> None:
    setup(sandbox, "CREATE TABLE IF NOT EXISTS trx (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")


@pytest.fixture
def conn(sandbox: Sandbox) -> Iterator[msplugin.Connection]:
    with msplugin.connect("sandbox", config=str(sandbox.config_path)) as c:
        yield c


def run(conn: msplugin.Connection, sql: str) -> None:
    conn.cursor().execute(sql)


def test_sql_transaction_stays_on_the_master(conn: msplugin.Connection) -> None:
    assert server_id(conn) in REPLICAS
    run(conn, "START TRANSACTION")
    assert server_id(conn) == PRIMARY
    run(conn, "INSERT INTO trx (v) VALUES (1)")
    assert server_id(conn, "SELECT @@server_id FROM trx LIMIT 1") == PRIMARY
    run(conn, "COMMIT")
    assert server_id(conn) in REPLICAS
    assert conn.stats()["trx_master_forced"] == 4  # SELECT, INSERT, SELECT, COMMIT


def test_rolled_back_sql_transaction_ends_too(conn: msplugin.Connection) -> None:
    run(conn, "BEGIN")
    assert server_id(conn) == PRIMARY
    run(conn, "ROLLBACK")
    assert server_id(conn) in REPLICAS


def test_api_transaction(conn: msplugin.Connection) -> None:
    conn.begin()
    assert server_id(conn) == PRIMARY
    conn.commit()
    assert server_id(conn) in REPLICAS
    conn.begin()
    run(conn, "INSERT INTO trx (v) VALUES (777)")
    conn.rollback()
    assert server_id(conn) in REPLICAS
    cur = conn.cursor()
    cur.execute("/*ms=master*/SELECT COUNT(*) FROM trx WHERE v = 777")
    assert cur.fetchone() == (0,)


def test_autocommit_off_keeps_every_transaction_on_the_master(conn: msplugin.Connection) -> None:
    conn.autocommit(False)
    assert server_id(conn) == PRIMARY
    conn.commit()
    assert (
        server_id(conn) == PRIMARY
    )  # the next transaction starts at once: autocommit is still off
    conn.autocommit(True)
    assert server_id(conn) in REPLICAS
    assert conn.stats()["trx_autocommit_off"] == 1 and conn.stats()["trx_autocommit_on"] == 1


def test_sql_autocommit_off_is_seen_from_the_server_status(conn: msplugin.Connection) -> None:
    run(conn, "SET autocommit = 0")
    assert server_id(conn) == PRIMARY
    run(conn, "COMMIT")
    assert server_id(conn) == PRIMARY  # still autocommit=0 on the master: a new transaction
    run(conn, "SET autocommit = 1")
    assert server_id(conn) in REPLICAS


def test_ddl_implicit_commit_ends_the_transaction(conn: msplugin.Connection) -> None:
    run(conn, "BEGIN")
    run(conn, "INSERT INTO trx (v) VALUES (5)")
    assert server_id(conn) == PRIMARY
    run(conn, "CREATE TABLE IF NOT EXISTS trx_ddl (a INT)")  # commits implicitly
    assert server_id(conn) in REPLICAS


def test_xa_transaction_stays_on_the_master(conn: msplugin.Connection) -> None:
    run(conn, "XA START 'msplugin-xa'")
    run(conn, "INSERT INTO trx (v) VALUES (9)")
    run(conn, "XA END 'msplugin-xa'")
    assert server_id(conn) == PRIMARY
    run(conn, "XA PREPARE 'msplugin-xa'")
    run(conn, "XA COMMIT 'msplugin-xa'")
    assert server_id(conn) in REPLICAS


def test_read_only_transactions_run_on_one_slave(make_config: Callable[..., str]) -> None:
    with msplugin.connect(
        "sandbox", config=make_config(trx_stickiness="on", filters=["roundrobin"])
    ) as c:
        run(c, "START TRANSACTION READ ONLY")
        first = c.last_used
        assert first is not None and first.role == "slave"
        ids = {
            server_id(c) for _ in range(4)
        }  # round robin would alternate outside the transaction
        assert len(ids) == 1 and ids <= REPLICAS
        run(c, "COMMIT")
        assert {server_id(c) for _ in range(2)} == REPLICAS  # alternating again
        c.begin(read_only=True)
        assert c.last_used is not None and c.last_used.role == "slave"
        assert len({server_id(c) for _ in range(3)}) == 1
        c.commit()
        run(c, "BEGIN")  # a read-write transaction still goes to the master
        assert server_id(c) == PRIMARY
        run(c, "COMMIT")
        assert c.stats()["trx_read_only_slave"] == 2
