"""A facade connection following discovered roles (msplugin.follow), over the fake driver.

The watch is a stand-in whose view the test sets; the fake servers refuse writes with 1290
"read-only" unless their role is master, as MariaDB does. What the monitor finds on real
servers, and switchovers under load, are tested in tests/integration/test_topology.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fakes import Connect, FakeServers, where
from pymysql import err

import msplugin
from msplugin.topology import View

FILE_ROLES = View(1, ("master_0",), ("slave_0", "slave_1"), (), "master_0 is writable")
SWAPPED = View(2, ("slave_0",), ("master_0", "slave_1"), (), "slave_0 is the only writable server")
NONE = View(2, (), ("master_0", "slave_0", "slave_1"), (), "no server is writable")


class StandInWatch:
    """What a Router uses of msplugin.topology_monitor.Watch."""

    galera = False  # found a Galera cluster

    def __init__(self, view: View) -> None:
        self.view = view
        self.rechecks = 0
        self.waits: list[float] = []
        self.during_wait: Callable[[], View] | None = None  # what a check finds meanwhile

    def recheck(self) -> None:
        self.rechecks += 1

    def wait_for(self, ready: Callable[[View], bool], timeout: float) -> View:
        self.waits.append(timeout)
        if self.during_wait is not None:
            self.view = self.during_wait()
        return self.view


def following(connect: Connect, **keys: Any) -> tuple[msplugin.Connection, StandInWatch]:
    conn = connect(**keys)
    watch = StandInWatch(FILE_ROLES)
    conn._router.use_topology(watch)  # type: ignore[arg-type]
    return conn, watch


def promote(servers: FakeServers, new: str) -> None:
    for s in servers.by_address.values():
        s.role = "master" if s.name == new else "slave"


def test_writes_follow_a_role_change_on_the_short_path_too(
    connect: Connect, servers: FakeServers
) -> None:
    conn, watch = following(connect)
    insert = "INSERT INTO t VALUES (1)"
    assert where(conn, insert, insert, "SELECT 1") == ["master_0", "master_0", "slave_0"]
    old_session = servers["master_0"].connections[-1]
    promote(servers, "slave_0")
    watch.view = SWAPPED
    assert where(conn, insert, "SELECT 1", "SELECT 1") == ["slave_0", "master_0", "slave_1"]
    assert not old_session.open  # the demoted master's session was ended
    assert conn.last_used is not None and conn.last_used.role == "slave"
    assert conn.stats()["role_changes"] == 1
    assert str(conn.explain(insert)).startswith("slave_0:")


def test_a_transaction_open_on_a_demoted_master_ends_with_a_clear_error(
    connect: Connect, servers: FakeServers
) -> None:
    conn, watch = following(connect, autocommit=False)
    cur = conn.cursor()
    cur.execute("INSERT INTO t VALUES (1)")
    promote(servers, "slave_0")
    watch.view = SWAPPED
    sent = len(servers["slave_0"].log)
    with pytest.raises(err.OperationalError, match="no longer the master") as info:
        cur.execute("INSERT INTO t VALUES (2)")
    assert "nothing was sent" in str(info.value)
    assert len(servers["slave_0"].log) == sent
    with pytest.raises(err.OperationalError, match=r"no longer the master.*did not commit"):
        conn.commit()
    cur.execute("INSERT INTO t VALUES (3)")  # the next transaction: the new master
    assert conn.last_used is not None and conn.last_used.name == "slave_0"
    conn.commit()


def test_commit_on_a_demoted_master_is_ended_by_commit_itself(
    connect: Connect, servers: FakeServers
) -> None:
    conn, watch = following(connect, autocommit=False)
    conn.cursor().execute("INSERT INTO t VALUES (1)")
    watch.view = SWAPPED
    conn.rollback()  # logged, not raised: the server rolled it back
    assert not any("ROLLBACK" in s for s in servers["slave_0"].log)


def test_a_write_refused_as_read_only_runs_once_on_the_new_master(
    connect: Connect, servers: FakeServers
) -> None:
    conn, watch = following(connect)
    cur = conn.cursor()
    cur.execute("INSERT INTO t VALUES (1)")
    promote(servers, "slave_0")  # the watch has not seen it yet
    watch.during_wait = lambda: SWAPPED
    cur.execute("INSERT INTO t VALUES (2)")
    assert conn.last_used is not None and conn.last_used.name == "slave_0"
    assert conn.stats()["read_only_retries"] == 1 and watch.rechecks == 1
    assert watch.waits == [5.0]
    assert servers["slave_0"].log[-1] == "INSERT INTO t VALUES (2)"


def test_a_read_only_refusal_without_a_new_master_fails_saying_it_did_not_run(
    connect: Connect, servers: FakeServers
) -> None:
    conn, _ = following(connect, topology={"wait": 0.5})
    cur = conn.cursor()
    cur.execute("INSERT INTO t VALUES (1)")
    promote(servers, "nobody")
    with pytest.raises(msplugin.NoBackendAvailable, match="refused the write as read-only") as info:
        cur.execute("INSERT INTO t VALUES (2)")
    assert "within 0.5 s" in str(info.value) and "did not run" in str(info.value)
    assert isinstance(info.value.__cause__, err.OperationalError)
    assert conn.stats()["read_only_retries"] == 0


def test_a_read_only_refusal_in_a_transaction_is_not_retried(
    connect: Connect, servers: FakeServers
) -> None:
    conn, watch = following(connect, autocommit=False)
    cur = conn.cursor()
    cur.execute("INSERT INTO t VALUES (1)")
    promote(servers, "slave_0")
    watch.during_wait = lambda: SWAPPED
    with pytest.raises(err.OperationalError) as info:
        cur.execute("INSERT INTO t VALUES (2)")
    assert info.value.args[0] == 1290 and watch.rechecks == 1 and not watch.waits
    assert not any("INSERT" in s for s in servers["slave_0"].log)


def test_another_1290_is_not_a_role_change(connect: Connect, servers: FakeServers) -> None:
    conn, watch = following(connect)
    cur = conn.cursor()
    cur.execute("INSERT INTO t VALUES (1)")
    servers["master_0"].fail_next(1290, "running with the --secure-file-priv option")
    with pytest.raises(err.OperationalError, match="secure-file-priv"):
        cur.execute("SELECT 1 INTO OUTFILE '/tmp/x'")
    assert watch.rechecks == 0 and conn.stats()["read_only_retries"] == 0


def test_a_write_with_no_master_waits_for_one(connect: Connect, servers: FakeServers) -> None:
    conn, watch = following(connect)
    watch.view = NONE
    promote(servers, "slave_1")
    watch.during_wait = lambda: View(3, ("slave_1",), ("master_0", "slave_0"), (), "promoted")
    conn.cursor().execute("INSERT INTO t VALUES (1)")
    assert conn.last_used is not None and conn.last_used.name == "slave_1"
    assert watch.waits == [5.0]


def test_a_write_with_no_master_in_time_fails_and_says_why(connect: Connect) -> None:
    conn, watch = following(connect)
    watch.view = NONE
    with pytest.raises(msplugin.NoBackendAvailable, match="no server takes writes now"):
        conn.cursor().execute("INSERT INTO t VALUES (1)")
    assert "would fail: no server takes writes now" in str(conn.explain("INSERT INTO t VALUES (1)"))


def test_a_dead_master_asks_the_monitor_to_look_again(
    connect: Connect, servers: FakeServers
) -> None:
    conn, watch = following(connect)
    servers["master_0"].down = "refused"
    with pytest.raises(msplugin.NoBackendAvailable, match="master_0"):
        conn.cursor().execute("INSERT INTO t VALUES (1)")
    assert watch.rechecks == 1


def test_state_the_ended_session_held_is_reported_under_warn(
    connect: Connect, servers: FakeServers
) -> None:
    conn, watch = following(connect, session_state="warn")
    cur = conn.cursor()
    cur.execute("CREATE TEMPORARY TABLE tmp (id INT)")  # on the master's session
    promote(servers, "slave_0")
    watch.view = SWAPPED
    with pytest.warns(msplugin.StateDivergenceWarning, match="tmp"):
        cur.execute("INSERT INTO tmp VALUES (1)")
    assert conn.last_used is not None and conn.last_used.name == "slave_0"


def test_a_master_that_becomes_a_conflict_gets_nothing_and_its_session_ends(
    connect: Connect, servers: FakeServers
) -> None:
    conn, watch = following(connect)
    assert where(conn, "INSERT INTO t VALUES (1)") == ["master_0"]
    old_session = servers["master_0"].connections[-1]
    promote(servers, "slave_0")  # and master_0 is writable too: a split brain
    watch.view = View(2, ("slave_0",), ("slave_1",), ("master_0",), "slave_0 is replicated from")
    assert where(conn, "INSERT INTO t VALUES (2)", "SELECT 1", "SELECT 1") == [
        "slave_0",
        "slave_1",
        "slave_1",
    ]
    assert not old_session.open


# ------------------------------------------------------------------ Galera (cluster: galera)

GALERA = View(1, ("master_0",), ("slave_0", "slave_1"), (), "master_0 takes the writes")


def galera(connect: Connect, monkeypatch: pytest.MonkeyPatch, **keys: Any) -> msplugin.Connection:
    watch = StandInWatch(GALERA)
    monkeypatch.setattr("msplugin.topology_monitor.watch", lambda *args: watch)
    return connect(cluster="galera", **keys)


def test_galera_retries_an_autocommit_statement_that_lost_certification_once(
    connect: Connect, servers: FakeServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = galera(connect, monkeypatch)
    cur = conn.cursor()
    cur.execute("INSERT INTO t VALUES (1)")
    deadlock = "Deadlock found when trying to get lock; try restarting transaction"
    servers["master_0"].fail_next(1213, deadlock)
    cur.execute("UPDATE t SET v = 1")  # aborted once, run again on the same node
    assert servers["master_0"].log[-1] == "UPDATE t SET v = 1"
    assert conn.stats()["certification_retries"] == 1
    servers["master_0"].fail_next(1213, deadlock)
    servers["master_0"].fail_next(1213, deadlock)
    with pytest.raises(err.OperationalError) as info:  # once only: then the application's
        cur.execute("UPDATE t SET v = 2")
    assert info.value.args[0] == 1213 and conn.stats()["certification_retries"] == 2


def test_galera_does_not_retry_a_conflict_in_a_transaction(
    connect: Connect, servers: FakeServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = galera(connect, monkeypatch, autocommit=False)
    cur = conn.cursor()
    cur.execute("INSERT INTO t VALUES (1)")
    servers["master_0"].fail_next(1213, "Deadlock found when trying to get lock")
    with pytest.raises(err.OperationalError) as info:
        cur.execute("UPDATE t SET v = 1")
    assert info.value.args[0] == 1213 and conn.stats()["certification_retries"] == 0


def test_a_replication_group_does_not_retry_a_deadlock(
    connect: Connect, servers: FakeServers
) -> None:
    conn = connect()
    cur = conn.cursor()
    cur.execute("INSERT INTO t VALUES (1)")
    servers["master_0"].fail_next(1213, "Deadlock found when trying to get lock")
    with pytest.raises(err.OperationalError):
        cur.execute("UPDATE t SET v = 1")


def test_a_galera_session_read_after_a_write_waits_on_the_node(
    connect: Connect, servers: FakeServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = galera(connect, monkeypatch, filters={"quality_of_service": {"session_consistency": 1}})
    cur = conn.cursor()
    cur.execute("SELECT 1")
    assert conn.last_used is not None
    assert servers[conn.last_used.name].log[-1] == "SELECT 1"  # nothing written: plain
    servers["master_0"].gtid_seq = 7
    cur.execute("INSERT INTO t VALUES (1)")
    cur.execute("SELECT 2")
    assert conn.last_used is not None and conn.last_used.role == "slave"
    node = servers[conn.last_used.name]
    assert node.log[-1] == "SET STATEMENT wsrep_sync_wait = 1 FOR SELECT 2"
    assert conn.stats()["gtid_checks"] == 1
    cur.execute("SELECT 3")  # the node is known to have the write now: a plain read
    assert node.log[-1] == "SELECT 3"
