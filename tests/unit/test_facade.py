"""The facade's rules, over the fake driver (tests/fakes.py): no server needed.

Where each statement runs, what pins a connection to a server, failover and retries, GTID
read-your-writes and session state, checked through what each fake server received. What
MariaDB itself does (status bits, session tracking, killed servers) is tested against real
servers in tests/integration.
"""

from __future__ import annotations

import warnings

import pytest
from fakes import Connect, FakeConnection, FakeServers, received, where
from routes import full_routes

import msplugin
from msplugin import health

# ------------------------------------------------------------------ routing and hints


def test_reads_go_to_slaves_in_turn_and_writes_to_the_master(connect: Connect) -> None:
    with connect() as conn:
        assert where(conn, "SELECT 1", "SELECT 1", "INSERT INTO t VALUES (1)", "SELECT 1") == [
            "slave_0",
            "slave_1",
            "master_0",
            "slave_0",
        ]
        stats = conn.stats()
        assert (stats["use_slave"], stats["use_master"], stats["use_slave_guess"]) == (3, 1, 3)


def test_hints_override_the_classifier(connect: Connect) -> None:
    with connect() as conn:
        assert where(
            conn,
            "/*ms=master*/SELECT 1",
            "/*ms=slave*/SELECT 1",
            "/*ms=last_used*/SELECT 1",
        ) == ["master_0", "slave_0", "slave_0"]
        assert conn.stats()["use_master_sql_hint"] == 1


def test_a_last_used_hint_before_any_statement_is_refused_before_anything_is_sent(
    connect: Connect, servers: FakeServers
) -> None:
    with connect() as conn, pytest.raises(msplugin.RoutingError, match="nothing was sent"):
        conn.cursor().execute("/*ms=last_used*/SELECT 1")
    assert sum(s.connects for s in servers.by_address.values()) == 0


def test_repeated_statements_are_remembered_and_counted_as_routed(
    connect: Connect, servers: FakeServers
) -> None:
    with connect() as conn:
        full = full_routes(conn)
        statements = ["SELECT 1", "INSERT INTO t VALUES (1)"] * 4
        assert where(conn, *statements) == ["slave_0", "master_0", "slave_1", "master_0"] * 2
        # Decided the full way until the state stopped changing (the first server used, the
        # first write): then remembered.
        assert len(full) < len(statements) / 2
        assert conn.stats()["use_master"] == 4 and conn.stats()["use_slave_guess"] == 4


def test_explain_connects_nothing(connect: Connect, servers: FakeServers) -> None:
    with connect() as conn:
        e = conn.explain("INSERT INTO t VALUES (1)")
        assert (e.role, e.server) == ("master", "master_0")
        assert conn.explain("SELECT 1").role == "slave"
    assert sum(s.connects for s in servers.by_address.values()) == 0


# ------------------------------------------------------------------ transactions


def test_autocommit_off_runs_the_transaction_on_the_master_until_commit(
    connect: Connect, servers: FakeServers
) -> None:
    with connect(autocommit=False) as conn:
        for _ in range(3):  # remembered from the second unit on: the same routes
            assert where(conn, "SELECT v FROM t", "UPDATE t SET v = 2") == ["master_0"] * 2
            assert conn._core.pinned == "master_0"
            conn.commit()
            assert conn._core.pinned is None
        assert len(received(servers, "master_0", "COMMIT")) == 3
        assert servers["slave_0"].connects == 0


def test_begin_pins_reads_to_the_master_until_commit(connect: Connect) -> None:
    with connect() as conn:
        conn.begin()
        assert where(conn, "SELECT 1", "SELECT 1") == ["master_0", "master_0"]
        conn.commit()
        assert where(conn, "SELECT 1") == ["slave_0"]
        assert where(conn, "BEGIN", "SELECT 1", "COMMIT", "SELECT 1") == [
            "master_0",
            "master_0",
            "master_0",
            "slave_1",
        ]


def test_set_autocommit_0_sent_as_sql_opens_a_transaction_on_the_master(
    connect: Connect,
) -> None:
    with connect() as conn:
        assert where(conn, "SELECT 1", "SELECT 1") == ["slave_0", "slave_1"]
        where(conn, "SET autocommit = 0")
        assert where(conn, "SELECT 1", "SELECT 1") == ["master_0", "master_0"]
        where(conn, "SET autocommit = 1")
        assert where(conn, "SELECT 1") == ["slave_0"]


def test_master_on_write_sends_reads_after_a_write_to_the_master(connect: Connect) -> None:
    with connect(master_on_write=True) as conn:
        assert where(conn, "SELECT 1", "INSERT INTO t VALUES (1)", "SELECT 1", "SELECT 1") == [
            "slave_0",
            "master_0",
            "master_0",
            "master_0",
        ]
        assert conn.stats()["use_master_on_write"] == 2


# ------------------------------------------------------------------ failover and retries


def test_a_slave_that_refuses_connections_is_skipped_then_the_master_serves(
    connect: Connect, servers: FakeServers
) -> None:
    servers["slave_0"].down = "refused"
    with connect() as conn:
        assert where(conn, "SELECT 1", "SELECT 1") == ["slave_1", "slave_1"]
    servers["slave_1"].down = "refused"
    health.reset()
    with connect() as conn:
        assert where(conn, "SELECT 1") == ["master_0"]
        assert conn.stats()["use_master_failover"] == 1


def test_failover_disabled_raises_naming_the_server(connect: Connect, servers: FakeServers) -> None:
    servers["slave_0"].down = "refused"
    with (
        connect(failover={"strategy": "disabled"}) as conn,
        pytest.raises(msplugin.OperationalError, match="refused"),
    ):
        conn.cursor().execute("SELECT 1")
    assert received(servers, "master_0", "SELECT") == []


def test_a_read_whose_connection_broke_runs_again_on_another_server(
    connect: Connect, servers: FakeServers
) -> None:
    with connect() as conn:
        where(conn, "SELECT 1", "SELECT 1")  # both slaves connected
        servers["slave_0"].lose_next(sent=True)
        assert where(conn, "SELECT 1") == ["slave_1"]
        assert conn.stats()["read_retries"] == 1


def _master_loses_the_next_statement(
    conn: msplugin.Connection, servers: FakeServers, *, sent: bool
) -> None:
    """A write ran on the master (connected); its connection breaks at the next statement,
    after it reached the server (*sent*) or before."""
    where(conn, "INSERT INTO t VALUES (1)")
    servers["master_0"].lose_next(sent=sent)


def test_a_write_that_may_have_run_is_never_sent_again(
    connect: Connect, servers: FakeServers
) -> None:
    with connect() as conn:
        _master_loses_the_next_statement(conn, servers, sent=True)
        with pytest.raises(msplugin.OperationalError, match="not retried") as info:
            conn.cursor().execute("INSERT INTO t VALUES (2)")
        assert "it may have run" in str(info.value.args[1])
        assert received(servers, "master_0", "VALUES (2)") == []  # lost with its reply
        assert conn.stats()["read_retries"] == conn.stats()["unsent_retries"] == 0


def test_a_write_that_never_reached_the_server_runs_once_on_a_new_connection(
    connect: Connect, servers: FakeServers
) -> None:
    with connect() as conn:
        _master_loses_the_next_statement(conn, servers, sent=False)
        assert where(conn, "INSERT INTO t VALUES (2)") == ["master_0"]
        assert len(received(servers, "master_0", "VALUES (2)")) == 1
        assert servers["master_0"].connects == 2
        assert conn.stats()["unsent_retries"] == 1


def test_a_transient_error_code_is_retried_on_the_same_server(
    connect: Connect, servers: FakeServers
) -> None:
    keys = {"transient_error": {"mysql_error_codes": [1205], "usleep_retry": 0}}
    with connect(**keys) as conn:
        where(conn, "SELECT 1", "SELECT 1")  # both connected: the error goes to the statement
        servers["slave_0"].fail_next(1205, "Lock wait timeout exceeded")
        assert where(conn, "SELECT 1") == ["slave_0"]
        assert conn.stats()["transient_error_retries"] == 1
        servers["slave_1"].fail_next(1062, "Duplicate entry")
        with pytest.raises(msplugin.OperationalError, match="Duplicate"):
            where(conn, "SELECT 1")


def test_commit_after_the_server_closed_the_connection_says_it_did_not_commit(
    connect: Connect, servers: FakeServers
) -> None:
    with connect(autocommit=False) as conn:
        where(conn, "UPDATE t SET v = 1")
        backend = conn._backends.by_name["master_0"].conn
        backend.server_closes()  # type: ignore[union-attr]
        with pytest.raises(msplugin.OperationalError, match="did not commit"):
            conn.commit()
        assert received(servers, "master_0", "COMMIT") == []
        assert where(conn, "SELECT 1") == ["master_0"]  # the connection works again


# ------------------------------------------------------------------ read-your-writes


def test_session_reads_check_the_gtid_and_fall_back_to_the_master(
    connect: Connect, servers: FakeServers
) -> None:
    with connect() as conn:
        conn.set_qos("session")
        assert where(conn, "INSERT INTO t VALUES (1)") == ["master_0"]
        assert conn.last_gtid() == "0-1-1"
        # slave_0 has not applied it: the check fails and the master answers.
        assert where(conn, "SELECT v FROM t") == ["master_0"]
        assert received(servers, "slave_0", "MASTER_GTID_WAIT('0-1-1'")
        assert conn.stats()["gtid_check_failed"] == 1
        servers["slave_0"].applied = servers["slave_1"].applied = 1
        conn._core.gtid.apply_delay = 0.0  # do not wait out the adaptive delay
        assert where(conn, "SELECT v FROM t")[0].startswith("slave_")
        assert conn.stats()["gtid_checks"] == 2


def test_set_qos_session_before_the_first_read_puts_the_check_in_the_reads_packet(
    connect: Connect, servers: FakeServers
) -> None:
    with connect() as conn:  # a group not configured for session consistency
        where(conn, "SELECT 1")  # slave_0 opened before: its checks are statements of their own
        conn.set_qos("session")
        servers["slave_0"].applied = servers["slave_1"].applied = 2
        assert where(conn, "INSERT INTO t VALUES (1)", "SELECT v FROM t") == [
            "master_0",
            "slave_1",
        ]
        # The application's own multi-statement strings stay refused on slave_1 (known to
        # have the GTID, so chosen again).
        with pytest.raises(msplugin.ProgrammingError, match="MULTI_STATEMENTS"):
            where(conn, "SELECT 1; SELECT 2")
        assert where(conn, "INSERT INTO t VALUES (1)", "SELECT v FROM t") == [
            "master_0",
            "slave_0",
        ]
        # slave_1, opened after set_qos("session"), got the check in the read's packet.
        assert received(servers, "slave_1", "MASTER_GTID_WAIT") == [
            "SELECT MASTER_GTID_WAIT('0-1-1', 0);SELECT v FROM t"
        ]
        assert received(servers, "slave_0", "MASTER_GTID_WAIT") == [
            "SELECT MASTER_GTID_WAIT('0-1-2', 0)"
        ]


def test_a_session_read_the_master_serves_takes_no_replicas_turn(
    connect: Connect, servers: FakeServers
) -> None:
    """Replicas likely behind: the master serves the read before the load balancer picks,
    so round robin goes on where it was; no check statement is built for that GTID."""
    with connect() as conn:
        conn.set_qos("session")
        assert where(conn, "SELECT 1", "SELECT 1") == ["slave_0", "slave_1"]
        where(conn, "INSERT INTO t VALUES (1)")
        conn._core.gtid.apply_delay = 100.0
        assert where(conn, "SELECT v FROM t") == ["master_0"]
        assert conn._core.gtid.check_sql == ""  # built by the first read that checks
        servers["slave_0"].applied = servers["slave_1"].applied = 1
        conn._core.gtid.apply_delay = 0.0
        assert where(conn, "SELECT v FROM t") == ["slave_0"]  # its turn, checked
        assert received(servers, "slave_0", "MASTER_GTID_WAIT('0-1-1'")


def _write_read_loop(
    conn: msplugin.Connection, servers: FakeServers, *, applied: bool, delay: float
) -> list[tuple[str, str, str | None]]:
    """Five INSERTs, each followed by two reads; the slaves have applied every write
    (*applied*) or none. *delay*: the adaptive apply delay, held fixed. Each statement's
    server, and the GTID the connection requires after it."""
    conn.set_qos("session")
    cur = conn.cursor()
    out = []
    for _ in range(5):
        for sql in ("INSERT INTO t VALUES (1)", "SELECT v FROM t", "SELECT v FROM t"):
            conn._core.gtid.apply_delay = delay
            cur.execute(sql)
            cur.fetchall()
            if applied:
                servers["slave_0"].applied = servers["slave_1"].applied = servers[
                    "master_0"
                ].gtid_seq
            assert conn.last_used is not None
            out.append((sql, conn.last_used.name, conn.last_gtid()))
    return out


@pytest.mark.parametrize(
    ("applied", "delay"),
    [(True, 0.0), (False, 100.0)],
    ids=["replicas have the writes: checked, then known", "replicas behind: the master"],
)
def test_remembered_writes_and_session_reads_route_and_count_as_the_full_path(
    connect: Connect, servers: FakeServers, applied: bool, delay: float
) -> None:
    with connect() as full:
        full._core.remembers = False
        full._core.moved()
        expected = _write_read_loop(full, servers, applied=applied, delay=delay)
        expected_stats = full.stats()
        expected_checks = received(servers, "slave_0", "MASTER_GTID_WAIT") + received(
            servers, "slave_1", "MASTER_GTID_WAIT"
        )
    for name in ("master_0", "slave_0", "slave_1"):
        servers[name].log.clear()
        servers[name].gtid_seq = servers[name].applied = 0
    with connect() as fast:
        routed = full_routes(fast)
        assert _write_read_loop(fast, servers, applied=applied, delay=delay) == expected
        assert fast.stats() == expected_stats
        checks = received(servers, "slave_0", "MASTER_GTID_WAIT") + received(
            servers, "slave_1", "MASTER_GTID_WAIT"
        )
        assert checks == expected_checks
    # Each write's GTID was learned from its reply, and each read followed it...
    assert [gtid for _, _, gtid in expected[::3]] == [f"0-1-{n}" for n in range(1, 6)]
    assert expected_stats["gtid_tracked"] == 5
    if applied:  # ...checked on a replica after each write, then known there without a check
        assert expected_stats["gtid_checks"] == 5 and expected_stats["gtid_replica_known"] == 5
        checked = sorted(c.split("'")[1] for c in expected_checks)
        assert checked == [f"0-1-{n}" for n in range(1, 6)]
    else:  # ...or sent to the master while replicas are likely behind
        assert expected_stats["use_master_session"] == 10 and not expected_checks
    # ...and the remembering connection routed only its first statements the full way.
    assert len(routed) <= 3, routed


def test_a_write_whose_reply_reports_more_than_its_gtid_is_learned_the_full_way(
    connect: Connect, servers: FakeServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    with connect(session_state="warn") as conn:
        conn.set_qos("session")
        where(conn, "INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (1)")  # remembered
        assert conn.last_gtid() == "0-1-2"
        # A trigger changed the database too: the block reports that as well as the GTID.
        schema = b"\x01" + bytes([8, 7]) + b"otherdb"
        plain = FakeConnection._commit_gtid

        def with_schema(self: FakeConnection) -> bytes:
            block = plain(self)
            return block[:1] + bytes([block[1] + len(schema)]) + block[2:] + schema

        monkeypatch.setattr(FakeConnection, "_commit_gtid", with_schema)
        where(conn, "INSERT INTO t VALUES (1)")
        assert conn.last_gtid() == "0-1-3"
        assert conn.stats()["state_server_changes"] == 1  # the full path saw the schema


def test_a_commit_reports_the_gtid_of_the_transaction(
    connect: Connect, servers: FakeServers
) -> None:
    with connect() as conn:
        conn.set_qos("session")
        conn.autocommit(False)
        where(conn, "INSERT INTO t VALUES (1)")
        assert conn.last_gtid() is None  # not committed yet
        conn.commit()
        assert conn.last_gtid() == "0-1-1"  # from the COMMIT's OK packet
        conn.autocommit(True)
        servers["slave_0"].applied = servers["slave_1"].applied = 1
        assert where(conn, "SELECT v FROM t")[0].startswith("slave_")


# ------------------------------------------------------------------ session state


def test_warn_mode_warns_when_a_read_lacks_a_user_variable(connect: Connect) -> None:
    with connect(session_state="warn") as conn:
        where(conn, "SET @v = 1")
        with pytest.warns(msplugin.StateDivergenceWarning, match="@v was set on master_0"):
            assert where(conn, "SELECT @v") == ["slave_0"]


def test_sync_mode_moves_the_read_to_the_server_holding_the_variable(connect: Connect) -> None:
    with connect(session_state="sync") as conn, warnings.catch_warnings():
        warnings.simplefilter("error")
        where(conn, "SET @v = 1")
        assert where(conn, "SELECT @v", "SELECT 1") == ["master_0", "slave_1"]
        assert conn.stats()["state_moved"] == 1


def test_sync_mode_replays_session_settings_on_a_slave_first(
    connect: Connect, servers: FakeServers
) -> None:
    with connect(session_state="sync") as conn:
        where(conn, "SET SESSION sql_mode = 'ANSI'")
        assert where(conn, "SELECT 1") == ["slave_0"]
        assert servers["slave_0"].log[-2:] == ["SET SESSION sql_mode = 'ANSI'", "SELECT 1"]
        assert conn.stats()["state_replayed"] == 1


def test_a_read_only_transaction_runs_on_one_slave_with_trx_stickiness_on(
    connect: Connect,
) -> None:
    with connect(trx_stickiness="on") as conn:
        assert (
            where(conn, "START TRANSACTION READ ONLY", "SELECT 1", "SELECT 1", "COMMIT")
            == ["slave_0"] * 4
        )
        assert conn.stats()["use_slave_trx"] == 3
        assert where(conn, "SELECT 1") == ["slave_1"]


def test_reads_avoid_a_quarantined_slave_and_come_back_to_it(connect: Connect) -> None:
    with connect() as conn:
        assert where(conn, "SELECT 1", "SELECT 1", "SELECT 1") == ["slave_0", "slave_1"] * 1 + [
            "slave_0"
        ]
        address = conn._backends.by_name["slave_0"].address
        health.down[address] = "test: marked down"
        try:
            assert where(conn, "SELECT 1", "SELECT 1", "SELECT 1") == ["slave_1"] * 3
        finally:
            health.down.pop(address)
        assert set(where(conn, "SELECT 1", "SELECT 1")) == {"slave_0", "slave_1"}


def test_a_statement_of_a_transaction_whose_connection_broke_says_it_did_not_commit(
    connect: Connect, servers: FakeServers
) -> None:
    with connect() as conn:
        where(conn, "BEGIN", "INSERT INTO t VALUES (1)")
        servers["master_0"].lose_next(sent=True)
        with pytest.raises(msplugin.OperationalError, match="did not commit"):
            where(conn, "INSERT INTO t VALUES (2)")
        # Until the application rolls back, no statement runs as if the transaction went on.
        with pytest.raises(msplugin.OperationalError, match="roll back and start again"):
            where(conn, "SELECT 1")
        conn.rollback()
        assert where(conn, "SELECT 1") == ["slave_0"]
