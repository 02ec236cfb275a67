"""The contract both facades keep, run against each: msplugin.connect() and
msplugin.aio.connect() on the same sandbox, in the same run (tests/integration/facades.py
gives both one blocking surface).

Each test states a behaviour a user can observe; none knows which facade it drives.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest
from facades import KINDS, Facade
from live import PRIMARY, REPLICAS, setup

import msplugin
from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_facade(kind: str, sandbox: Sandbox) -> Iterator[Callable[..., Facade]]:
    """open_facade(config=None, **connect_kwargs): a facade of this test's kind."""
    opened: list[Facade] = []

    def make(config: str | None = None, **kwargs: Any) -> Facade:
        f = Facade(kind, config=config or str(sandbox.config_path), **kwargs)
        opened.append(f)
        return f

    yield make
    for f in opened:
        f.close()


@pytest.fixture
def fc(open_facade: Callable[..., Facade]) -> Facade:
    return open_facade()


@pytest.fixture(scope="module", autouse=True)
def table(sandbox: Sandbox) -> None:
    setup(
        sandbox,
        "DROP TABLE IF EXISTS ct",
        "CREATE TABLE ct (id INT AUTO_INCREMENT PRIMARY KEY, v INT, who VARCHAR(10))",
        "INSERT INTO ct (id, v, who) VALUES (1, 100, 'seed'), (2, 200, 'seed')",
    )


def test_reads_go_to_a_replica_and_writes_to_the_primary(fc: Facade) -> None:
    assert fc.scalar("SELECT @@server_id") in REPLICAS
    assert fc.role == "slave"
    assert fc.execute("INSERT INTO ct (v, who) VALUES (1, 'w')") == 1
    assert fc.role == "master"
    assert fc.cur.lastrowid > 2
    assert fc.scalar("/*ms=last_used*/SELECT @@server_id") == PRIMARY


def test_hints_choose_the_server(fc: Facade) -> None:
    assert fc.scalar("/*ms=master*/SELECT @@server_id") == PRIMARY
    assert fc.scalar("/*ms=slave*/SELECT @@server_id") in REPLICAS
    replica = fc.server
    assert fc.scalar("/*ms=last_used*/SELECT @@server_id") in REPLICAS
    assert fc.server == replica


def test_results_have_the_db_api_shape(fc: Facade) -> None:
    assert fc.execute("SELECT id, v FROM ct WHERE id IN (1, 2) ORDER BY id") == 2
    assert [d[0] for d in fc.cur.description] == ["id", "v"]
    assert fc.cur.rowcount == 2
    assert fc.fetchone() == (1, 100)
    assert list(fc.fetchall()) == [(2, 200)]
    dict_cur = fc.cursor(dict_rows=True)
    fc.execute("SELECT id, v FROM ct WHERE id = 1", cur=dict_cur)
    assert fc.fetchone(dict_cur) == {"id": 1, "v": 100}
    fc.execute("SELECT id FROM ct WHERE id IN (1, 2) ORDER BY id")
    assert list(fc.fetchmany(1)) == [(1,)]


def test_parameters_are_escaped_as_the_driver_does(fc: Facade) -> None:
    text = "it's \\ a 'test'"
    fc.execute("INSERT INTO ct (v, who) VALUES (%s, %s)", (7, text[:10]))
    new_id = fc.cur.lastrowid
    assert fc.scalar("/*ms=master*/SELECT who FROM ct WHERE id = %s", (new_id,)) == text[:10]
    fc.execute("SELECT v FROM ct WHERE id = %(id)s", {"id": 1})
    assert fc.fetchone() == (100,)


def test_a_server_error_passes_through_and_nothing_is_retried(fc: Facade) -> None:
    with pytest.raises(pymysql.err.ProgrammingError) as info:
        fc.execute("SELECT * FROM no_such_table_here")
    assert info.value.args[0] == 1146
    with pytest.raises(pymysql.err.IntegrityError):
        fc.execute("INSERT INTO ct (id, v) VALUES (1, 0)")
    assert fc.conn.stats()["read_retries"] == 0
    assert fc.scalar("SELECT 1") == 1  # the connection still works


def test_autocommit_off_keeps_the_transaction_on_the_master(fc: Facade, sandbox: Sandbox) -> None:
    fc.autocommit(False)
    fc.execute("SELECT v FROM ct WHERE id = 1")
    assert fc.role == "master"
    fc.execute("UPDATE ct SET v = v + 1 WHERE id = 2")
    fc.rollback()
    fc.execute("UPDATE ct SET v = v + 1 WHERE id = 1")
    fc.commit()
    sandbox.wait_replicated()
    fc.autocommit(True)
    assert fc.scalar("SELECT v FROM ct WHERE id = 2") == 200
    assert fc.role == "slave"
    fc.execute("UPDATE ct SET v = 100 WHERE id = 1")


def test_begin_opens_a_transaction_that_commit_ends(fc: Facade, sandbox: Sandbox) -> None:
    fc.begin()
    fc.execute("INSERT INTO ct (v, who) VALUES (5, 'trx')")
    new_id = fc.cur.lastrowid
    assert fc.scalar("SELECT COUNT(*) FROM ct WHERE id = %s", (new_id,)) == 1
    assert fc.role == "master"  # the open transaction holds reads
    fc.rollback()
    assert fc.scalar("/*ms=master*/SELECT COUNT(*) FROM ct WHERE id = %s", (new_id,)) == 0


def test_session_consistency_reads_the_connections_own_write(
    open_facade: Callable[..., Facade], make_config: Callable[..., str], sandbox: Sandbox
) -> None:
    fc = open_facade(make_config(filters={"quality_of_service": {"session_consistency": 1}}))
    for i in range(20):
        fc.execute("UPDATE ct SET v = %s WHERE id = 2", (1000 + i,))
        assert fc.scalar("SELECT v FROM ct WHERE id = 2") == 1000 + i
    assert fc.conn.last_gtid() is not None
    fc.execute("UPDATE ct SET v = 200 WHERE id = 2")
    sandbox.wait_replicated()


def test_a_required_gtid_is_honoured_by_a_new_connection(
    open_facade: Callable[..., Facade], sandbox: Sandbox
) -> None:
    writer = open_facade()
    writer.set_qos("session")
    writer.execute("UPDATE ct SET v = 300 WHERE id = 2")
    gtid = writer.conn.last_gtid()
    assert gtid is not None
    reader = open_facade()
    reader.set_qos("session", gtid=gtid)
    assert reader.scalar("SELECT v FROM ct WHERE id = 2") == 300
    writer.execute("UPDATE ct SET v = 200 WHERE id = 2")
    sandbox.wait_replicated()


def test_session_state_sync_replays_settings_where_a_read_goes(
    open_facade: Callable[..., Facade], make_config: Callable[..., str]
) -> None:
    fc = open_facade(make_config(session_state="sync"))
    fc.execute("SET SESSION sql_mode = 'ANSI_QUOTES'")
    assert fc.role == "master"
    assert "ANSI_QUOTES" in fc.scalar("SELECT @@SESSION.sql_mode")
    assert fc.role == "slave"
    assert fc.conn.stats()["state_replayed"] >= 1
    assert any(entry for entry in fc.conn.session_state().values())


def test_session_state_warn_warns_about_a_user_variable_read_elsewhere(
    open_facade: Callable[..., Facade], make_config: Callable[..., str]
) -> None:
    fc = open_facade(make_config(session_state="warn"))
    fc.execute("SET @x = 5")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fc.execute("SELECT @x")
    ours = [w for w in seen if issubclass(w.category, msplugin.StateDivergenceWarning)]
    assert ours and "@x" in str(ours[0].message)
    # It points at the caller, outside msplugin, however deep the flows nest.
    assert not ours[0].filename.startswith(os.path.dirname(msplugin.__file__))


def test_optimistic_read_only_unit_runs_on_a_replica(
    open_facade: Callable[..., Facade], make_config: Callable[..., str]
) -> None:
    fc = open_facade(make_config(trx_stickiness="optimistic"), autocommit=False)
    for _ in range(3):
        assert fc.scalar("SELECT v FROM ct WHERE id = 1") == 100
        assert fc.role == "slave"
        fc.commit()
    assert fc.conn.stats()["optimistic_completed_on_replica"] == 3


def test_optimistic_write_moves_the_transaction_to_the_master(
    open_facade: Callable[..., Facade], make_config: Callable[..., str], sandbox: Sandbox
) -> None:
    fc = open_facade(make_config(trx_stickiness="optimistic"), autocommit=False)
    assert fc.scalar("SELECT v FROM ct WHERE id = 1") == 100
    fc.execute("UPDATE ct SET v = 101 WHERE id = 1")
    assert fc.role == "master"
    fc.commit()
    assert fc.conn.stats()["optimistic_replayed"] == 1
    sandbox.wait_replicated()
    fc.execute("UPDATE ct SET v = 100 WHERE id = 1")
    fc.commit()
    sandbox.wait_replicated()


def test_optimistic_conflict_is_raised_and_nothing_written(
    open_facade: Callable[..., Facade], make_config: Callable[..., str], sandbox: Sandbox
) -> None:
    fc = open_facade(make_config(trx_stickiness="optimistic"), autocommit=False)
    other = open_facade()
    assert fc.scalar("SELECT v FROM ct WHERE id = 2") == 200
    other.execute("UPDATE ct SET v = 201 WHERE id = 2")  # committed between read and write
    with pytest.raises(msplugin.OptimisticConflict):
        fc.execute("UPDATE ct SET who = 'lost' WHERE id = 2")
    assert other.scalar("/*ms=master*/SELECT who FROM ct WHERE id = 2") == "seed"
    other.execute("UPDATE ct SET v = 200 WHERE id = 2")
    sandbox.wait_replicated()


def test_a_held_back_begin_sends_nothing_until_its_first_statement(
    open_facade: Callable[..., Facade], make_config: Callable[..., str]
) -> None:
    fc = open_facade(make_config(trx_stickiness="optimistic"))
    fc.execute("BEGIN")
    assert fc.conn.explain("BEGIN").role == "none"
    assert fc.scalar("SELECT v FROM ct WHERE id = 1") == 100
    assert fc.role == "slave"
    fc.execute("COMMIT")
    assert fc.conn.stats()["optimistic_started"] == 1


def test_explain_decides_without_running(fc: Facade) -> None:
    e = fc.conn.explain("SELECT 1")
    assert e.role == "slave"
    assert fc.conn.explain("UPDATE ct SET v = 1").role == "master"
    assert fc.conn.last_used is None  # nothing ran, nothing connected


def test_multi_statements_stay_refused_on_gtid_checked_replicas(
    open_facade: Callable[..., Facade], make_config: Callable[..., str]
) -> None:
    # msplugin enables multi-statements on these replicas for its GTID checks; the
    # application did not, so its own multi-statement strings are refused, unsent.
    fc = open_facade(make_config(filters={"quality_of_service": {"session_consistency": 1}}))
    with pytest.raises(pymysql.err.ProgrammingError, match="multi-statement strings need"):
        fc.execute("/*ms=slave*/SELECT 1; SELECT 2")
    assert fc.scalar("SELECT @@server_id") in REPLICAS


def test_executemany_runs_on_the_master(fc: Facade) -> None:
    assert fc.executemany("INSERT INTO ct (v, who) VALUES (%s, %s)", [(1, "m"), (2, "m")]) == 2
    assert fc.role == "master"


def test_a_read_runs_again_when_its_connection_was_killed(fc: Facade, sandbox: Sandbox) -> None:
    assert fc.scalar("SELECT @@server_id") in REPLICAS
    replica = fc.server
    thread = fc.scalar("/*ms=last_used*/SELECT CONNECTION_ID()")
    admin = pymysql.connect(**_server_params(sandbox, replica))
    admin.cursor().execute(f"KILL CONNECTION {int(thread)}")
    admin.close()
    assert fc.scalar("SELECT 1") == 1
    assert fc.conn.stats()["read_retries"] + fc.conn.stats()["unsent_retries"] == 1


def test_a_write_whose_connection_was_killed_is_not_retried(fc: Facade, sandbox: Sandbox) -> None:
    thread = fc.scalar("/*ms=master*/SELECT CONNECTION_ID()")
    admin = pymysql.connect(**_server_params(sandbox, "master_0"))
    try:
        admin.cursor().execute(f"KILL CONNECTION {int(thread)}")
        with pytest.raises(pymysql.err.OperationalError, match="not retried"):
            fc.execute("INSERT INTO ct (v, who) VALUES (9, 'killed')")
        cur = admin.cursor()
        cur.execute("SELECT COUNT(*) FROM test.ct WHERE who = 'killed'")
        assert cur.fetchone() == (0,)  # the server never ran it: the session was gone
    finally:
        admin.close()
        msplugin.health.reset()  # the lost connection quarantined the primary


def test_a_closed_connection_refuses_statements(fc: Facade) -> None:
    fc.scalar("SELECT 1")
    if fc.loop is None:
        fc.conn.close()
    else:
        fc.run(fc.conn.ensure_closed())
    with pytest.raises(pymysql.err.InterfaceError):
        fc.execute("SELECT 1")


def test_a_pooled_session_is_reset_before_the_next_borrower(fc: Facade) -> None:
    fc.execute("/*ms=master*/SET @secret = 42")
    thread = fc.scalar("/*ms=master*/SELECT CONNECTION_ID()")
    second = fc.another()  # on the same event loop: aiomysql connections belong to theirs
    fc.close_connection()  # gives the session back to the pool, reset
    try:
        assert second.scalar("/*ms=master*/SELECT CONNECTION_ID()") == thread  # reused
        assert second.scalar("/*ms=master*/SELECT @secret") is None
        assert msplugin.get_stats()["pool_resets"] >= 1
    finally:
        second.close_connection()


def _server_params(sandbox: Sandbox, name: str | None) -> dict[str, Any]:
    """Connect keywords for the sandbox server *name* (as the config names it)."""
    group = msplugin.load_config(str(sandbox.config_path)).group("sandbox")
    server = next(s for s in (*group.masters, *group.slaves) if s.name == name)
    return {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "password": server.password,
    }
