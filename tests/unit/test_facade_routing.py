"""Routing rules that need no server, over the fake driver: load balancers, lazy and eager
connections, explain(), hints against transactions, master_on_write, trx_stickiness and
set_qos() inside a transaction. Moved here from the integration suite, which keeps what needs
MariaDB (status bits, replication, session tracking, killed servers)."""

from __future__ import annotations

import re

import pytest
from fakes import Connect, FakeServers, where

import msplugin

READ = "SELECT @@server_id"


def test_hints_and_their_statistics(connect: Connect) -> None:
    with connect() as conn:
        assert where(
            conn, f"/*ms=master*/{READ}", f"/*ms=slave*/{READ}", f"/*ms=master*/{READ}"
        ) == ["master_0", "slave_0", "master_0"]
        assert where(conn, f"/*ms=last_used*/{READ}") == ["master_0"]
        stats = conn.stats()
        assert stats["use_master_sql_hint"] == 2
        assert stats["use_slave_sql_hint"] == 1
        assert stats["use_last_used_sql_hint"] == 1


def test_locking_reads_stay_on_the_master(connect: Connect) -> None:
    with connect() as conn:
        assert where(conn, "SELECT v FROM t LIMIT 1 FOR UPDATE") == ["master_0"]
        assert where(conn, "SELECT GET_LOCK('x', 0)") == ["master_0"]


def test_roundrobin_continues_across_hinted_reads(connect: Connect) -> None:
    with connect() as conn:
        assert where(conn, READ, f"/*ms=slave*/{READ}", f"/*ms=master*/{READ}", READ) == [
            "slave_0",
            "slave_1",
            "master_0",
            "slave_0",
        ]


def test_random_once_stays_on_one_replica(connect: Connect) -> None:
    with connect(filters={"random": {"sticky": True}}) as conn:
        assert len(set(where(conn, *[READ] * 20))) == 1


def test_plain_random_uses_both_replicas(connect: Connect) -> None:
    with connect(filters=["random"]) as conn:
        assert set(where(conn, *[READ] * 60)) == {"slave_0", "slave_1"}


def test_lazy_connections_open_only_what_is_used(connect: Connect, servers: FakeServers) -> None:
    with connect() as conn:
        assert "connected=[]" in repr(conn)
        where(conn, READ)
        assert conn.stats()["lazy_connections_slave_success"] == 1
        assert conn.stats()["lazy_connections_master_success"] == 0
        assert re.search(r"connected=\['slave_0'\] ", repr(conn))
        assert servers["master_0"].connects == 0


def test_non_lazy_connections_open_everything(connect: Connect) -> None:
    with connect(lazy_connections=False) as conn:
        assert conn.stats()["non_lazy_connections_master_success"] == 1
        assert conn.stats()["non_lazy_connections_slave_success"] == 2
        assert "connected=['master_0', 'slave_0', 'slave_1']" in repr(conn)


def test_explain_names_the_server_once_known(connect: Connect) -> None:
    with connect(filters={"random": {"sticky": True}}) as conn:
        e = conn.explain("SELECT * FROM t FOR UPDATE")
        assert (e.route, e.role, e.server) == (msplugin.Route.MASTER, "master", "master_0")
        assert "FOR UPDATE" in e.reason
        e = conn.explain("SELECT 1")
        assert e.role == "slave" and e.server is None  # random once has not picked yet
        (used,) = where(conn, "SELECT 1")
        assert conn.explain("SELECT 1").server == used
        assert "connected=['" in repr(conn)


def test_explain_leaves_out_a_quarantined_slave_and_failed_servers(connect: Connect) -> None:
    from msplugin import health

    with connect(filters={"random": {"sticky": True}}) as conn:
        (used,) = where(conn, READ)
        other = "slave_1" if used == "slave_0" else "slave_0"
        address = conn._backends.by_name[used].address
        health.down[address] = "test: marked down"
        try:
            assert conn.explain(READ).server == other  # the only one left
            health.down[conn._backends.by_name[other].address] = "test: marked down"
            e = conn.explain(READ)
            assert (e.role, e.server) == ("master", "master_0")
            assert "quarantined" in e.reason and "the master serves it" in e.reason
        finally:
            health.down.clear()


def test_hints_are_ignored_inside_a_transaction(connect: Connect) -> None:
    with connect() as conn:
        conn.begin()
        assert where(conn, f"/*ms=slave*/{READ}") == ["master_0"]
        conn.commit()


def test_a_read_only_transaction_stays_on_the_master_with_stickiness_master(
    connect: Connect,
) -> None:
    with connect() as conn:
        conn.begin(read_only=True)
        assert where(conn, READ) == ["master_0"]
        conn.commit()


def test_disabled_stickiness_splits_transactions(connect: Connect) -> None:
    with connect(trx_stickiness="disabled") as conn:
        assert where(conn, "BEGIN", READ, "COMMIT") == ["master_0", "slave_0", "master_0"]


def test_set_qos_is_refused_inside_a_transaction(connect: Connect) -> None:
    with connect() as conn:
        conn.begin()
        with pytest.raises(msplugin.TransactionError, match="inside a transaction"):
            conn.set_qos("strong")
        conn.commit()
        conn.set_qos("strong")
        assert where(conn, READ) == ["master_0"]


def test_executemany_runs_on_the_master_once_routed(connect: Connect, servers: FakeServers) -> None:
    with connect() as conn:
        cur = conn.cursor()
        assert cur.executemany("INSERT INTO t (v) VALUES (%s)", [(1,), (2,), (3,)]) == 3
        assert conn.last_used is not None and conn.last_used.name == "master_0"
        assert len([s for s in servers["master_0"].log if s.startswith("INSERT")]) == 3
