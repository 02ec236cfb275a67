"""Optimistic transactions through the facade, over the fake driver: where each statement of
a transaction runs, what the master receives when it moves, and when it conflicts. What the
server does with them (snapshots, read-only replicas) is tested in tests/integration."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest
from fakes import Connect, FakeServers, received, where
from routes import full_routes

import msplugin

ROWS = ((1, "a"),)


@pytest.fixture
def same(servers: FakeServers) -> FakeServers:
    """Every server answers ``FROM t`` alike: replicas are up to date."""
    for name in ("master_0", "slave_0", "slave_1"):
        servers[name].answers["FROM t"] = ROWS
    return servers


def optimistic(connect: Connect, **keys: Any) -> msplugin.Connection:
    return connect(autocommit=False, trx_stickiness="optimistic", **keys)


def test_a_unit_of_work_that_only_reads_runs_on_a_replica(
    connect: Connect, same: FakeServers
) -> None:
    seen = []
    with optimistic(connect) as conn:
        for _ in range(3):
            seen.append(where(conn, "SELECT v FROM t WHERE id = 1", "SELECT v FROM t"))
            conn.commit()
        stats = conn.stats()
    # Each transaction stays on the replica it started on, and the next one picks anew.
    assert seen == [["slave_0"] * 2, ["slave_1"] * 2, ["slave_0"] * 2]
    assert received(same, "master_0", "FROM t") == []
    assert stats["optimistic_started"] == 3
    assert stats["optimistic_completed_on_replica"] == 3
    assert stats["optimistic_replayed"] == stats["optimistic_conflicts"] == 0
    # The replica sessions run with autocommit off (as the application's): the read opens
    # the transaction, no START TRANSACTION is sent.
    assert received(same, "slave_0", "START TRANSACTION") == []


def test_the_reads_of_one_transaction_stay_on_its_replica(
    connect: Connect, same: FakeServers
) -> None:
    with optimistic(connect) as conn:
        assert where(conn, "SELECT v FROM t", "SELECT v FROM t", "SELECT 1") == ["slave_0"] * 3
        conn.commit()
        assert where(conn, "SELECT v FROM t", "SELECT v FROM t") == ["slave_1"] * 2
        conn.rollback()
        assert received(same, "slave_0", "COMMIT") == ["COMMIT"]
        assert received(same, "slave_1", "ROLLBACK") == ["ROLLBACK"]


def test_a_write_moves_the_transaction_its_reads_run_again_on_the_master(
    connect: Connect, same: FakeServers
) -> None:
    with optimistic(connect) as conn:
        cur = conn.cursor()
        cur.execute("SELECT v FROM t WHERE id = %s", (1,))
        assert cur.fetchall() == list(ROWS)
        assert conn.last_used is not None and conn.last_used.name == "slave_0"
        cur.execute("UPDATE t SET v = 'b' WHERE id = 1")
        assert conn.last_used.name == "master_0"
        assert where(conn, "SELECT v FROM t") == ["master_0"]  # the transaction is there now
        conn.commit()
        stats = conn.stats()
    assert same["slave_0"].log[-1] == "ROLLBACK"
    assert same["master_0"].log[-4:] == [
        "SELECT v FROM t WHERE id = 1",  # the kept read, run again
        "UPDATE t SET v = 'b' WHERE id = 1",
        "SELECT v FROM t",
        "COMMIT",
    ]
    assert stats["optimistic_replayed"] == 1
    assert stats["optimistic_conflicts"] == stats["optimistic_completed_on_replica"] == 0


def test_a_read_the_master_answers_differently_is_a_conflict_and_nothing_is_written(
    connect: Connect, same: FakeServers
) -> None:
    same["master_0"].answers["FROM t"] = ((1, "changed"),)
    with optimistic(connect) as conn:
        cur = conn.cursor()
        cur.execute("SELECT v FROM t WHERE id = 1")
        with pytest.raises(msplugin.OptimisticConflict) as caught:
            cur.execute("UPDATE t SET v = 'b' WHERE id = 1")
        exc = caught.value
        assert isinstance(exc, msplugin.OperationalError)
        assert exc.args[0] == 1213 and exc.sqlstate == "40001"
        assert "read 1 of 1 (SELECT v FROM t WHERE id = 1) answered differently" in str(exc)
        assert received(same, "master_0", "UPDATE") == []
        assert same["master_0"].log[-1] == "ROLLBACK"
        assert conn.stats()["optimistic_conflicts"] == 1
        # The connection is usable. The retry starts on the master (the replica may still be
        # behind), so it cannot conflict again; the transaction after it is optimistic again.
        conn.rollback()
        assert where(conn, "SELECT v FROM t WHERE id = 1") == ["master_0"]
        cur.execute("UPDATE t SET v = 'b' WHERE id = 1")
        conn.commit()
        assert where(conn, "SELECT v FROM t WHERE id = 1") == ["slave_1"]
        conn.commit()
    assert received(same, "master_0", "UPDATE") == ["UPDATE t SET v = 'b' WHERE id = 1"]


@pytest.mark.parametrize(
    "first",
    [
        "UPDATE t SET v = 1",
        "SELECT NOW()",
        "/*ms=master*/SELECT v FROM t",
        "SELECT v FROM t FOR UPDATE",
    ],
)
def test_a_transaction_that_does_not_start_with_a_plain_read_starts_on_the_master(
    connect: Connect, same: FakeServers, first: str
) -> None:
    with optimistic(connect) as conn:
        assert where(conn, first, "SELECT v FROM t") == ["master_0", "master_0"]
        assert conn.stats()["optimistic_started"] == 0


def test_a_server_dependent_read_moves_the_transaction_before_it_runs(
    connect: Connect, same: FakeServers
) -> None:
    with optimistic(connect) as conn:
        assert where(conn, "SELECT v FROM t", "SELECT NOW()") == ["slave_0", "master_0"]
        assert received(same, "slave_0", "NOW()") == []
        assert conn.stats()["optimistic_replayed"] == 1


def test_a_replica_session_in_autocommit_mode_gets_a_read_only_transaction(
    connect: Connect, same: FakeServers
) -> None:
    with optimistic(connect) as conn:
        where(conn, "SELECT v FROM t")
        conn.commit()
        assert received(same, "slave_0", "START TRANSACTION") == []
        # The session is in autocommit mode (as after a reset): the read alone would open
        # nothing, so the transaction is started explicitly, read-only.
        replica = same["slave_0"].connections[-1]
        replica.autocommit_mode = True
        replica._status()
        assert where(conn, "SELECT 1", "SELECT 1") == ["slave_1"] * 2  # the balancer's turn
        conn.commit()
        assert where(conn, "SELECT v FROM t") == ["slave_0"]
        assert received(same, "slave_0", "START TRANSACTION") == ["START TRANSACTION READ ONLY"]


def test_set_autocommit_0_in_sql_opens_the_transaction_on_the_master(
    connect: Connect, same: FakeServers
) -> None:
    with connect(trx_stickiness="optimistic") as conn:
        where(conn, "SET autocommit = 0")  # the master's session holds the transaction now
        assert where(conn, "SELECT v FROM t") == ["master_0"]


def test_over_the_cap_after_reads_the_transaction_conflicts(
    connect: Connect, same: FakeServers
) -> None:
    with optimistic(connect, optimistic={"max_statements": 2}) as conn:
        where(conn, "SELECT v FROM t", "SELECT v FROM t")
        with pytest.raises(msplugin.OptimisticConflict, match=r"2 statements kept \(cap 2\)"):
            conn.cursor().execute("SELECT v FROM t")
        assert same["slave_0"].log[-1] == "ROLLBACK"
        # Its retry would go over the cap again on a replica: it starts on the master.
        assert (
            where(conn, "SELECT v FROM t", "SELECT v FROM t", "SELECT v FROM t") == ["master_0"] * 3
        )


def test_a_replica_lost_mid_transaction_moves_it_without_an_error(
    connect: Connect, same: FakeServers
) -> None:
    with optimistic(connect) as conn:
        assert where(conn, "SELECT v FROM t WHERE id = 1") == ["slave_0"]
        same["slave_0"].lose_next()
        assert where(conn, "SELECT v FROM t WHERE id = 2") == ["master_0"]
        assert same["master_0"].log[-2:] == [
            "SELECT v FROM t WHERE id = 1",
            "SELECT v FROM t WHERE id = 2",
        ]
        conn.commit()
        assert conn.stats()["optimistic_replayed"] == 1


def test_a_replica_lost_before_commit_loses_nothing(connect: Connect, same: FakeServers) -> None:
    with optimistic(connect) as conn:
        where(conn, "SELECT v FROM t")
        same["slave_0"].lose_next()
        conn.cursor().execute("SELECT v FROM t WHERE id = 3")  # moves to the master
        conn.commit()
        assert received(same, "master_0", "COMMIT") == ["COMMIT"]


@pytest.mark.parametrize("applied", [True, False])
def test_session_consistency_starts_on_a_replica_that_has_the_writes(
    connect: Connect, same: FakeServers, applied: bool
) -> None:
    qos = {"quality_of_service": {"session_consistency": 1}, "roundrobin": []}
    with optimistic(connect, filters=qos) as conn:
        where(conn, "INSERT INTO t VALUES (2)")
        conn.commit()
        assert conn.last_gtid() == "0-1-1"
        if applied:
            same["slave_0"].applied = 1
        # The replica is checked first; one that lacks the write leaves it to the master.
        expected = "slave_0" if applied else "master_0"
        assert where(conn, "SELECT v FROM t", "SELECT v FROM t") == [expected] * 2
        assert len(received(same, "slave_0", "MASTER_GTID_WAIT")) == 1
        stats = conn.stats()
        assert stats["optimistic_started"] == int(applied)
        assert stats["gtid_check_failed"] == int(not applied)
        conn.commit()


def test_explain_says_when_and_why_the_transaction_would_move(
    connect: Connect, same: FakeServers
) -> None:
    with optimistic(connect) as conn:
        first = conn.explain("SELECT v FROM t")
        assert first.role == "slave" and "starts on a replica" in first.reason
        where(conn, "SELECT v FROM t")
        move = conn.explain("UPDATE t SET v = 2")
        assert move.server == "master_0"
        assert move.reason == (
            "optimistic transaction moves from slave_0 to the master: UPDATE is not a read; "
            "its 1 kept read(s) run again there first"
        )
        stay = conn.explain("SELECT v FROM t")
        assert stay.server == "slave_0"
        assert received(same, "master_0", "FROM t") == []  # explain() ran nothing


def test_executemany_and_callproc_move_the_transaction_first(
    connect: Connect, same: FakeServers
) -> None:
    with optimistic(connect) as conn:
        where(conn, "SELECT v FROM t")
        conn.cursor().executemany("SELECT v FROM t WHERE id = %s", [(1,), (2,)])
        assert received(same, "slave_0", "id =") == []
        assert received(same, "master_0", "id =") == [
            "SELECT v FROM t WHERE id = 1",
            "SELECT v FROM t WHERE id = 2",
        ]
        conn.commit()
        where(conn, "SELECT v FROM t")
        conn.cursor().callproc("p")
        assert received(same, "master_0", "CALL") == ["CALL p()"]
        assert received(same, "slave_1", "CALL") == []


def test_an_unbuffered_cursor_starts_the_transaction_on_the_master(
    connect: Connect, same: FakeServers
) -> None:
    import pymysql.cursors

    with optimistic(connect) as conn:
        cur = conn.cursor(pymysql.cursors.SSCursor)
        cur.execute("SELECT v FROM t")
        cur.fetchall()
        assert conn.last_used is not None and conn.last_used.name == "master_0"
        stats = conn.stats()
        assert stats["optimistic_started"] == 0 and stats["use_slave"] == 0


def test_read_only_begin_runs_on_a_slave_under_optimistic(
    connect: Connect, same: FakeServers
) -> None:
    with connect(trx_stickiness="optimistic") as conn:
        conn.begin(read_only=True)
        assert where(conn, "SELECT v FROM t") == ["slave_0"]
        conn.commit()


def test_autocommit_on_keeps_reads_statement_by_statement(
    connect: Connect, same: FakeServers
) -> None:
    with connect(trx_stickiness="optimistic") as conn:
        assert where(conn, "SELECT v FROM t", "SELECT v FROM t") == ["slave_0", "slave_1"]
        assert conn.stats()["optimistic_started"] == 0


def _units(conn: msplugin.Connection, servers: FakeServers) -> list[tuple[str, str]]:
    """Read-only units, units that write, a conflict and its retry; where each ran."""
    out = []
    cur = conn.cursor()
    for n in range(6):
        for sql in ("SELECT v FROM t WHERE id = 1", "SELECT v FROM t WHERE id = 2"):
            cur.execute(sql)
            cur.fetchall()
            assert conn.last_used is not None
            out.append((sql, conn.last_used.name))
        if n % 3 == 1:
            cur.execute("UPDATE t SET v = 2 WHERE id = 1")
            out.append(("UPDATE", conn.last_used.name))
        if n == 3:
            servers["master_0"].answers["FROM t"] = ((9, "x"),)
            try:
                cur.execute("UPDATE t SET v = 3")
            except msplugin.OptimisticConflict:
                out.append(("conflict", ""))
            servers["master_0"].answers["FROM t"] = ROWS
            conn.rollback()
            continue
        conn.commit()
    return out


def test_remembered_starts_route_and_count_as_the_full_path(
    connect: Connect, same: FakeServers
) -> None:
    with optimistic(connect) as full:
        full._core.remembers = False
        full._core.moved()
        expected = _units(full, same)
        expected_stats = full.stats()
        expected_logs = {n: list(same[n].log) for n in ("master_0", "slave_0", "slave_1")}
    for name in ("master_0", "slave_0", "slave_1"):
        same[name].log.clear()
    with optimistic(connect) as fast:
        routed = full_routes(fast)
        assert _units(fast, same) == expected
        assert fast.stats() == expected_stats
        assert {n: same[n].log for n in expected_logs} == expected_logs
    assert ("conflict", "") in expected
    assert expected_stats["optimistic_started"] == 5  # the retry after the conflict: the master
    # A start is remembered per state: the first unit's (nothing had run yet) and the second's
    # were routed the full way, and the retry after the conflict (it must start on the
    # master); every other unit started on a replica without being routed again.
    assert routed.count("SELECT v FROM t WHERE id = 1") == 3, routed


def test_a_filter_that_chooses_servers_decides_every_start(
    connect: Connect, same: FakeServers
) -> None:
    # user_multi narrows the replicas at each statement: a start is never remembered past
    # it (the round robin alone would send every other unit to slave_0).
    filters = {"user_multi": {"callback": "fakes:only_slave_1"}, "roundrobin": []}
    with optimistic(connect, filters=filters) as conn:
        for _ in range(4):
            assert where(conn, "SELECT v FROM t WHERE id = 1") == ["slave_1"]
            conn.commit()
        assert conn.stats()["optimistic_completed_on_replica"] == 4
    assert received(same, "slave_0", "FROM t") == []


def test_a_change_of_state_during_a_transaction_is_decided_anew_after_it(
    connect: Connect, same: FakeServers
) -> None:
    # An optimistic transaction ends in the state it started from, whose remembered routes
    # apply again, unless the state changed on the way: here what was remembered is
    # forgotten (set_session_state), so the next start must be routed the full way.
    sql = "SELECT v FROM t WHERE id = 1"
    with optimistic(connect) as conn:
        for _ in range(2):
            where(conn, sql)
            conn.commit()
        routed = full_routes(conn)
        where(conn, sql)
        conn.commit()
        assert routed == []  # remembered: started without being routed
        where(conn, sql)
        conn.set_session_state("sync")
        conn.commit()
        assert where(conn, sql) == ["slave_0"]
        conn.commit()
        assert routed == [sql]
        assert conn.stats()["optimistic_completed_on_replica"] == 5


# ------------------------------------------------------------ BEGIN with autocommit on


def _log(servers: FakeServers, name: str) -> list[str]:
    """What *name* received that is not the facade's own session set-up."""
    return [s for s in servers[name].log if not s.upper().startswith(("SET ", "SELECT @@"))]


def test_begin_is_held_back_and_a_read_only_transaction_runs_on_a_replica(
    connect: Connect, same: FakeServers
) -> None:
    with connect(trx_stickiness="optimistic") as conn:  # autocommit on
        for begin in (conn.begin, lambda: conn.cursor().execute("START TRANSACTION")):
            begin()
            assert where(conn, "SELECT v FROM t", "SELECT v FROM t WHERE id = 1") == (
                ["slave_0"] * 2 if begin == conn.begin else ["slave_1"] * 2
            )
            conn.commit()
        stats = conn.stats()
    assert received(same, "master_0", "FROM t") == []
    assert received(same, "master_0", "BEGIN") == received(same, "master_0", "START") == []
    assert _log(same, "slave_0") == [
        "START TRANSACTION READ ONLY",
        "SELECT v FROM t",
        "SELECT v FROM t WHERE id = 1",
        "COMMIT",
    ]
    assert stats["optimistic_started"] == stats["optimistic_completed_on_replica"] == 2


def test_a_held_back_begin_opens_the_masters_transaction_before_a_write(
    connect: Connect, same: FakeServers
) -> None:
    with connect(trx_stickiness="optimistic") as conn:
        cur = conn.cursor()
        cur.execute("BEGIN")
        cur.execute("UPDATE t SET v = 1")  # the first statement: the master, after BEGIN
        cur.execute("SELECT v FROM t")
        conn.rollback()
        cur.execute("BEGIN")
        cur.execute("SELECT v FROM t WHERE id = 1")  # on a replica
        cur.execute("UPDATE t SET v = 2")  # moves: BEGIN, the read again, the write
        conn.commit()
        stats = conn.stats()
    assert _log(same, "master_0") == [
        "BEGIN",
        "UPDATE t SET v = 1",
        "SELECT v FROM t",
        "ROLLBACK",
        "BEGIN",
        "SELECT v FROM t WHERE id = 1",
        "UPDATE t SET v = 2",
        "COMMIT",
    ]
    assert _log(same, "slave_0") == [
        "START TRANSACTION READ ONLY",
        "SELECT v FROM t WHERE id = 1",
        "ROLLBACK",
    ]
    assert stats["optimistic_replayed"] == 1


def test_a_held_back_begin_whose_transaction_conflicts_leaves_the_master_untouched(
    connect: Connect, same: FakeServers
) -> None:
    # Over the cap after a read: the transaction ends in a conflict on its replica.
    with connect(trx_stickiness="optimistic", optimistic={"max_rows": 1}) as conn:
        cur = conn.cursor()
        cur.execute("START TRANSACTION")
        same["slave_0"].answers["FROM big"] = ((1,), (2,))
        cur.execute("SELECT v FROM big")  # 2 rows kept: over the cap
        with pytest.raises(msplugin.OptimisticConflict):
            cur.execute("SELECT v FROM t")
        conn.rollback()
    assert _log(same, "master_0") == []  # the conflict ended it before the master


def test_begin_then_commit_sends_nothing_and_shows_an_empty_result(
    connect: Connect, same: FakeServers
) -> None:
    with connect(trx_stickiness="optimistic") as conn:
        cur = conn.cursor()
        assert str(conn.explain("BEGIN")).startswith("nowhere: held back, not sent: ")
        assert cur.execute("BEGIN") == 0
        assert conn.explain("COMMIT").role == "none"
        assert conn.explain("SELECT v FROM t").role == "slave"
        assert conn.explain("UPDATE t SET v = 1").role == "master"
        assert cur.description is None and cur.rowcount == 0 and cur.fetchall() == []
        assert cur.fetchone() is None and cur.nextset() is None
        cur.execute("COMMIT")  # as the first statement: nothing is open anywhere
        cur.execute("BEGIN")
        conn.rollback()
        assert where(conn, "SELECT v FROM t") == ["slave_0"]  # autocommit again: a plain read
        assert conn.stats()["optimistic_started"] == 0
    assert _log(same, "slave_0") == ["SELECT v FROM t"]
    assert [s for s in _log(same, "master_0") if s != "COMMIT"] == []


def test_begin_with_consistent_snapshot_or_a_hint_is_sent_at_once(
    connect: Connect, same: FakeServers
) -> None:
    with connect(trx_stickiness="optimistic") as conn:
        cur = conn.cursor()
        for begin in ("START TRANSACTION WITH CONSISTENT SNAPSHOT", "/*ms=master*/BEGIN"):
            cur.execute(begin)
            assert conn.last_used is not None and conn.last_used.name == "master_0"
            assert where(conn, "SELECT v FROM t") == ["master_0"]
            conn.commit()
    assert _log(same, "slave_0") == _log(same, "slave_1") == []


def test_a_held_back_begin_that_does_not_reach_the_master_loses_nothing(
    connect: Connect, same: FakeServers
) -> None:
    with connect(trx_stickiness="optimistic") as conn:
        cur = conn.cursor()
        where(conn, "UPDATE t SET v = 0")  # the master is connected
        cur.execute("BEGIN")
        same["master_0"].lose_next(sent=False)  # BEGIN never reaches it
        # As with autocommit off: the statement that opens the transaction is not run
        # again on its own (outside the transaction the application asked for).
        with pytest.raises(pymysql.err.OperationalError, match="run the whole transaction"):
            cur.execute("UPDATE t SET v = 1")
        conn.rollback()
        cur.execute("BEGIN")
        cur.execute("UPDATE t SET v = 1")
        conn.commit()
    assert received(same, "master_0", "v = 1") == ["UPDATE t SET v = 1"]  # once, in BEGIN..COMMIT
    assert _log(same, "master_0")[-3:] == ["BEGIN", "UPDATE t SET v = 1", "COMMIT"]
