"""Routing over a real MariaDB topology: 1 primary (server_id 1) + 2 replicas (2, 3).

What needs the servers: replication, status bits, broadcasts, fetches, failover to real ports.
The routing rules that need no server are tested over the fake driver in tests/unit/test_facade*.py.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator

import pymysql
import pytest
from live import PRIMARY, REPLICAS, server_id, setup

import msplugin
from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture
def conn(sandbox: Sandbox) -> Iterator[msplugin.Connection]:
    c = msplugin.connect("sandbox", config=str(sandbox.config_path))
    yield c
    if c.open:
        c.close()


@pytest.fixture(scope="module", autouse=True)
def table(sandbox: Sandbox) -> None:
    setup(
        sandbox,
        "DROP TABLE IF EXISTS t",
        "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
    )


def test_reads_go_to_a_replica_writes_to_the_primary(conn: msplugin.Connection) -> None:
    assert server_id(conn) in REPLICAS
    assert conn.last_used is not None and conn.last_used.role == "slave"
    cur = conn.cursor()
    cur.execute("INSERT INTO t (v) VALUES (%s)", (1,))
    assert conn.last_used.role == "master"
    assert server_id(conn, "/*ms=last_used*/SELECT @@server_id") == PRIMARY


def test_writes_replicate_to_the_replicas(conn: msplugin.Connection, sandbox: Sandbox) -> None:
    cur = conn.cursor()
    cur.execute("INSERT INTO t (v) VALUES (%s)", (4242,))
    sandbox.wait_replicated()
    cur.execute("SELECT COUNT(*) FROM t WHERE v = 4242")
    assert cur.fetchone() == (1,)
    assert conn.last_used is not None and conn.last_used.role == "slave"


def test_autocommit_is_broadcast_to_open_and_later_backends(
    make_config: Callable[..., str],
) -> None:
    # trx_stickiness disabled, so that the hinted reads can reach the replicas with autocommit off.
    with msplugin.connect("sandbox", config=make_config(trx_stickiness="disabled")) as c:
        cur = c.cursor()
        cur.execute("/*ms=master*/SELECT @@autocommit")
        assert cur.fetchone() == (1,)
        c.autocommit(False)
        assert c.get_autocommit() is False
        cur.execute("/*ms=master*/SELECT @@autocommit")
        assert cur.fetchone() == (0,)
        cur.execute("/*ms=slave*/SELECT @@autocommit")  # a backend opened after the call
        assert cur.fetchone() == (0,)


def test_select_db_is_broadcast(sandbox: Sandbox, conn: msplugin.Connection) -> None:
    with sandbox.admin(sandbox.primary) as admin, admin.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS other")
        cur.execute("GRANT ALL PRIVILEGES ON other.* TO 'msplugin'@'127.0.0.1'")
    sandbox.wait_replicated()
    cur = conn.cursor()
    cur.execute("/*ms=master*/SELECT DATABASE()")
    assert cur.fetchone() == ("test",)
    conn.select_db("other")
    cur.execute("/*ms=master*/SELECT DATABASE()")
    assert cur.fetchone() == ("other",)
    cur.execute("SELECT DATABASE()")  # the slave is opened only now
    assert cur.fetchone() == ("other",)


def test_last_used_describes_the_server(sandbox: Sandbox, conn: msplugin.Connection) -> None:
    assert conn.last_used is None
    cur = conn.cursor()
    cur.execute("INSERT INTO t (v) VALUES (7)")
    used = conn.last_used
    assert used is not None
    assert (used.role, used.name, used.host, used.port) == (
        "master",
        "master_0",
        "127.0.0.1",
        sandbox.primary.port,
    )
    assert conn.insert_id() == cur.lastrowid > 0


def test_dict_cursor(conn: msplugin.Connection) -> None:
    cur = conn.cursor(pymysql.cursors.DictCursor)
    cur.execute("SELECT @@server_id AS sid")
    row = cur.fetchone()
    assert isinstance(row, dict) and row["sid"] in REPLICAS


def test_executemany_runs_on_the_master(sandbox: Sandbox, conn: msplugin.Connection) -> None:
    cur = conn.cursor()
    assert cur.executemany("INSERT INTO t (v) VALUES (%s)", [(100,), (101,), (102,)]) == 3
    assert conn.last_used is not None and conn.last_used.role == "master"
    sandbox.wait_replicated()
    cur.execute("SELECT COUNT(*) FROM t WHERE v BETWEEN 100 AND 102")
    assert cur.fetchone() == (3,)


def test_fetch_reads_the_backend_that_ran_the_last_statement(conn: msplugin.Connection) -> None:
    cur = conn.cursor()
    cur.execute("SELECT @@server_id, 'slave'")
    assert cur.description is not None and len(cur.description) == 2
    slave_row = cur.fetchall()
    cur.execute("/*ms=master*/SELECT @@server_id")
    assert cur.rowcount == 1 and len(cur.description) == 1
    assert cur.fetchall() == ((PRIMARY,),)
    assert slave_row[0][0] in REPLICAS
    cur.execute("SELECT v FROM t WHERE v < 0")
    assert cur.fetchone() is None and cur.rowcount == 0
    assert list(iter(cur)) == []


def test_commit_and_rollback_reach_the_backend_with_the_transaction(
    conn: msplugin.Connection,
) -> None:
    conn.autocommit(False)
    cur = conn.cursor()
    cur.execute("INSERT INTO t (v) VALUES (555)")
    cur.execute("SELECT COUNT(*) FROM t WHERE v = 555")  # autocommit off: stays on the master
    assert cur.fetchone() == (1,) and conn.last_used is not None and conn.last_used.role == "master"
    conn.rollback()
    cur.execute("SELECT COUNT(*) FROM t WHERE v = 555")
    assert cur.fetchone() == (0,)
    cur.execute("INSERT INTO t (v) VALUES (556)")
    conn.commit()
    conn.autocommit(True)
    cur.execute("/*ms=master*/SELECT COUNT(*) FROM t WHERE v = 556")
    assert cur.fetchone() == (1,)


def test_sql_begin_keeps_reads_on_the_primary_until_commit(conn: msplugin.Connection) -> None:
    cur = conn.cursor()
    cur.execute("BEGIN")
    assert server_id(conn) == PRIMARY
    assert conn.stats()["trx_master_forced"] == 1
    cur.execute("COMMIT")
    assert server_id(conn) in REPLICAS


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


def test_unreachable_slave_fails_over_to_another(
    sandbox: Sandbox, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(sandbox.config_path.read_text())
    good = data["sandbox"]["slave"]["slave_0"]
    data["sandbox"]["slave"] = {"dead": {**good, "port": _dead_port()}, "alive": good}
    data["sandbox"]["filters"] = ["roundrobin"]
    path = tmp_path / "failover.json"
    path.write_text(json.dumps(data))
    caplog.set_level(logging.WARNING, logger="msplugin")
    with msplugin.connect("sandbox", config=str(path)) as c:
        assert server_id(c) in REPLICAS
        assert c.last_used is not None and c.last_used.name == "alive"
    assert "cannot connect to dead" in caplog.text and "trying alive" in caplog.text


def test_all_slaves_unreachable_fails_over_to_master(
    sandbox: Sandbox, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(sandbox.config_path.read_text())
    good = data["sandbox"]["slave"]["slave_0"]
    data["sandbox"]["slave"] = {"dead": {**good, "port": _dead_port()}}
    path = tmp_path / "failover.json"
    path.write_text(json.dumps(data))
    caplog.set_level(logging.WARNING, logger="msplugin")
    with msplugin.connect("sandbox", config=str(path)) as c:
        assert server_id(c) == PRIMARY
        assert c.stats()["use_master_failover"] == 1
        assert c.stats()["lazy_connections_slave_failure"] == 1
    assert "failing over to the master" in caplog.text
    data["sandbox"]["failover"] = "disabled"
    path.write_text(json.dumps(data))
    with (
        msplugin.connect("sandbox", config=str(path)) as c,
        pytest.raises(pymysql.err.OperationalError),
    ):
        server_id(c)


def test_routing_is_logged_without_parameters(
    conn: msplugin.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="msplugin.routing")
    cur = conn.cursor()
    cur.execute("SELECT %s AS secret_value", ("top-secret-parameter",))
    assert (
        "SELECT %s AS secret_value -> slave_" in caplog.text and "SELECT is a read" in caplog.text
    )
    assert "top-secret-parameter" not in caplog.text


def test_process_wide_stats_count_every_connection(sandbox: Sandbox) -> None:
    before = msplugin.get_stats()["use_slave_guess"]
    for _ in range(2):
        with msplugin.connect("sandbox", config=str(sandbox.config_path)) as c:
            server_id(c)
    assert msplugin.get_stats()["use_slave_guess"] == before + 2


def test_password_never_in_repr_or_errors(sandbox: Sandbox, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(sandbox.config_path.read_text())
    password = data["sandbox"]["master"]["master_0"]["password"]
    with msplugin.connect("sandbox", config=str(sandbox.config_path)) as c:
        server_id(c)
        assert password not in repr(c) and password not in repr(c.cursor())
    data["sandbox"]["master"]["master_0"]["password"] = "wrong-" + password
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with (
        msplugin.connect("sandbox", config=str(path)) as c,
        pytest.raises(msplugin.NoBackendAvailable) as info,
    ):
        c.cursor().execute("INSERT INTO t (v) VALUES (1)")
    assert "Access denied" in str(info.value) and password not in str(info.value)


def test_closed_connection(conn: msplugin.Connection) -> None:
    conn.close()
    assert not conn.open
    with pytest.raises(msplugin.InterfaceError):
        conn.cursor()
    with pytest.raises(msplugin.Error, match="Already closed"):
        conn.close()


def test_pymysql_connect_as_the_connect_factory(sandbox: Sandbox) -> None:
    """A plain PyMySQL connect() opens every connection (no whole-connect deadline, not
    interruptible): routing, commit and the pool work with PyMySQL's own class."""
    opened: list[str] = []

    def factory(**params: object) -> pymysql.connections.Connection[object]:
        opened.append(str(params["port"]))
        return pymysql.connect(**params)  # type: ignore[arg-type]

    with msplugin.connect(
        "sandbox", config=str(sandbox.config_path), connect_factory=factory, autocommit=False
    ) as c:
        cur = c.cursor()
        cur.execute("INSERT INTO t (v) VALUES (777)")
        c.commit()
        assert server_id(c, "/*ms=master*/SELECT @@server_id") == PRIMARY
        c.commit()
        c.autocommit(True)
        assert server_id(c) in REPLICAS
        assert all(type(b.conn) is pymysql.connections.Connection for b in c._backends.opened())
    assert len(opened) >= 2
