"""Session state on a real topology: every tracked kind under off, warn and sync."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from live import PRIMARY, REPLICAS

import msplugin
from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration

MODES = ("off", "warn", "sync")


@pytest.fixture(scope="module", autouse=True)
def schema(sandbox: Sandbox) -> None:
    with msplugin.connect("sandbox", config=str(sandbox.config_path)) as c:
        cur = c.cursor()
        cur.execute("CREATE TABLE IF NOT EXISTS st (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
        cur.execute("DELETE FROM st")
        cur.execute("INSERT INTO st (v) VALUES (1), (2), (3)")
        cur.execute("DROP PROCEDURE IF EXISTS set_role")
        cur.execute("CREATE PROCEDURE set_role() BEGIN SET @proc_role = 'from procedure'; END")
        cur.execute("DROP PROCEDURE IF EXISTS set_zone")
        cur.execute("CREATE PROCEDURE set_zone() BEGIN SET time_zone = '+04:00'; END")
    sandbox.wait_replicated()


@pytest.fixture
def connect(make_config: Callable[..., str]) -> Iterator[Callable[..., msplugin.Connection]]:
    """connect(mode, **group_keys): a facade connection with that session_state mode."""
    opened: list[msplugin.Connection] = []

    def make(mode: str, **group_keys: Any) -> msplugin.Connection:
        conn = msplugin.connect("sandbox", config=make_config(session_state=mode, **group_keys))
        opened.append(conn)
        return conn

    yield make
    for c in opened:
        if c.open:
            c.close()


def run(conn: msplugin.Connection, sql: str, args: Any = None) -> tuple[Any, int]:
    """Execute *sql* (whose last column is @@server_id); return (first column, server id)."""
    cur = conn.cursor()
    cur.execute(sql, args)
    row = cur.fetchone()
    assert row is not None
    return row[0], int(row[-1])


def exec_(conn: msplugin.Connection, sql: str, args: Any = None) -> None:
    conn.cursor().execute(sql, args)


@contextlib.contextmanager
def divergences() -> Iterator[list[str]]:
    """Collect the StateDivergenceWarning messages raised in the block (filled at its end)."""
    found: list[str] = []
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        yield found
    found.extend(
        str(w.message) for w in record if issubclass(w.category, msplugin.StateDivergenceWarning)
    )


def decoded(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


# ---------------------------------------------------------------- user variables


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "setter",
    ["SET @myrole = 'master'", "SELECT 'master' INTO @myrole", "SELECT @myrole := 'master'"],
)
def test_user_variable(
    connect: Callable[..., msplugin.Connection],
    mode: str,
    setter: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = connect(mode)
    exec_(conn, setter)
    with divergences() as found, caplog.at_level(logging.WARNING):
        value, sid = run(conn, "SELECT @myrole, @@server_id")
    if mode == "off":
        assert (value, found) == (None, []) and sid in REPLICAS
    elif mode == "warn":
        assert value is None and sid in REPLICAS
        assert len(found) == 1 and "@myrole was set on master_0" in found[0]
        assert f"runs on {conn.last_used.name}" in found[0]  # type: ignore[union-attr]
        assert "@myrole was set on master_0" in caplog.text
        assert conn.stats()["state_warnings"] == 1
    else:
        assert (decoded(value), sid, found) == ("master", PRIMARY, [])
        assert conn.stats()["state_moved"] == 1
        assert "pinned to master_0: @myrole was set there" in conn.explain("SELECT @myrole").reason


def test_sync_keeps_plain_reads_on_replicas(connect: Callable[..., msplugin.Connection]) -> None:
    conn = connect("sync")
    exec_(conn, "SET @myrole = 'master'")
    assert run(conn, "SELECT @myrole, @@server_id")[1] == PRIMARY
    assert {run(conn, "SELECT v, @@server_id FROM st LIMIT 1")[1] for _ in range(20)} <= REPLICAS


def test_sync_refuses_a_write_that_needs_a_variable_only_a_slave_has(
    connect: Callable[..., msplugin.Connection],
) -> None:
    conn = connect("sync")
    exec_(conn, "/*ms=slave*/SELECT @onslave := 41")  # a hint keeps it there
    before = run(conn, "/*ms=master*/SELECT COUNT(*), @@server_id FROM st")[0]
    with pytest.raises(msplugin.RoutingError, match=r"@onslave was set there.*nothing was sent"):
        exec_(conn, "INSERT INTO st (v) VALUES (@onslave)")
    assert run(conn, "/*ms=master*/SELECT COUNT(*), @@server_id FROM st")[0] == before


def test_sync_does_not_move_a_transaction_but_warns(
    connect: Callable[..., msplugin.Connection],
) -> None:
    conn = connect("sync")
    exec_(conn, "/*ms=slave*/SELECT @onslave := 41")
    exec_(conn, "BEGIN")
    with pytest.warns(msplugin.StateDivergenceWarning, match="not moved: a transaction is open"):
        value, sid = run(conn, "SELECT @onslave, @@server_id")
    assert (value, sid) == (None, PRIMARY)
    exec_(conn, "COMMIT")


# ---------------------------------------------------------------- server-reported changes


@pytest.mark.parametrize("mode", MODES)
def test_variable_set_inside_a_procedure_is_seen_through_session_tracking(
    connect: Callable[..., msplugin.Connection], mode: str
) -> None:
    conn = connect(mode)
    exec_(conn, "CALL set_role()")
    with divergences() as found:
        value, sid = run(conn, "SELECT @proc_role, @@server_id")
    if mode == "off":
        assert (value, found) == (None, []) and sid in REPLICAS
    elif mode == "warn":
        assert value is None and sid in REPLICAS
        assert (
            len(found) == 1
            and "@proc_role may have been set by a procedure on master_0" in found[0]
        )
    else:
        assert (decoded(value), sid, found) == ("from procedure", PRIMARY, [])
    if mode != "off":
        assert conn.session_state()["master_0"]["server_reported_changes"] is True
        assert conn.stats()["state_server_changes"] == 1


def test_setting_changed_inside_a_procedure_is_replayed_in_sync(
    connect: Callable[..., msplugin.Connection],
) -> None:
    conn = connect("sync")
    exec_(conn, "CALL set_zone()")
    value, sid = run(conn, "SELECT @@session.time_zone, @@server_id")
    assert (decoded(value), sid in REPLICAS) == ("+04:00", True)


# ---------------------------------------------------------------- session settings


SETTINGS = [
    ("SET time_zone = '+03:00'", "SELECT @@session.time_zone, @@server_id", "+03:00"),
    ("SET NAMES latin1", "SELECT @@character_set_client, @@server_id", "latin1"),
    (
        "SET SESSION sql_mode = 'ANSI_QUOTES'",
        "SELECT @@session.sql_mode, @@server_id",
        "ANSI_QUOTES",
    ),
    (
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "SELECT @@session.tx_isolation, @@server_id",
        "READ-COMMITTED",
    ),
    ("USE information_schema", "SELECT DATABASE(), @@server_id", "information_schema"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("setter", "query", "expected"), SETTINGS)
def test_session_setting(
    connect: Callable[..., msplugin.Connection], mode: str, setter: str, query: str, expected: str
) -> None:
    conn = connect(mode)
    run(conn, "SELECT 1, @@server_id")  # a replica is connected before the setting
    exec_(conn, setter)
    with divergences() as found:
        values = {run(conn, query) for _ in range(4)}  # both replicas, at random
    assert {sid for _, sid in values} <= REPLICAS
    seen = {decoded(v) for v, _ in values}
    if mode == "sync":
        assert (seen, found) == ({expected}, [])
        assert conn.stats()["state_replayed"] >= 1
    else:
        assert expected not in seen
        assert len(found) == (4 if mode == "warn" else 0)
        if mode == "warn":
            assert "was set on master_0" in found[0]


def test_replay_happens_once_per_backend(connect: Callable[..., msplugin.Connection]) -> None:
    conn = connect("sync", filters={"roundrobin": []})
    exec_(conn, "SET time_zone = '+03:00'")
    for _ in range(10):
        run(conn, "SELECT @@session.time_zone, @@server_id")
    assert conn.stats()["state_replayed"] == 2  # once on each replica


def test_select_db_is_not_undone_by_an_older_use(
    connect: Callable[..., msplugin.Connection],
) -> None:
    conn = connect("sync")
    exec_(conn, "USE information_schema")
    conn.select_db("test")
    assert {decoded(run(conn, "SELECT DATABASE(), @@server_id")[0]) for _ in range(4)} == {"test"}


# ---------------------------------------------------------------- temporary tables


@pytest.mark.parametrize("mode", MODES)
def test_temporary_table(connect: Callable[..., msplugin.Connection], mode: str) -> None:
    conn = connect(mode)
    exec_(conn, "CREATE TEMPORARY TABLE tmp_st (v INT)")
    exec_(conn, "INSERT INTO tmp_st VALUES (42)")
    with divergences() as found:
        if mode == "sync":
            assert run(conn, "SELECT v, @@server_id FROM tmp_st") == (42, PRIMARY)
        else:
            with pytest.raises(msplugin.ProgrammingError, match="tmp_st' doesn't exist"):
                run(conn, "SELECT v, @@server_id FROM tmp_st")
    assert len(found) == (1 if mode == "warn" else 0)
    if mode == "warn":
        assert "temporary table tmp_st exists on master_0" in found[0]
    if mode != "off":
        assert conn.session_state()["master_0"]["temporary_tables"] == ["tmp_st"]
        exec_(conn, "DROP TEMPORARY TABLE tmp_st")
        assert conn.session_state()["master_0"]["temporary_tables"] == []


# ---------------------------------------------------------------- prepared statements


@pytest.mark.parametrize("mode", MODES)
def test_prepared_statement(connect: Callable[..., msplugin.Connection], mode: str) -> None:
    conn = connect(mode)
    exec_(conn, "/*ms=slave*/PREPARE ps FROM 'SELECT @@server_id, @@server_id'")
    prepared_on = conn.last_used
    assert prepared_on is not None and prepared_on.role == "slave"
    with divergences() as found:
        if mode == "sync":
            assert run(conn, "EXECUTE ps")[1] in REPLICAS
            assert conn.last_used == prepared_on
        else:
            with pytest.raises(msplugin.MySQLError, match="Unknown prepared statement"):
                run(conn, "EXECUTE ps")
    assert len(found) == (1 if mode == "warn" else 0)
    if mode == "warn":
        assert f"prepared statement ps was prepared on {prepared_on.name}" in found[0]


def test_prepared_on_the_master_stays_quiet(connect: Callable[..., msplugin.Connection]) -> None:
    conn = connect("warn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec_(conn, "PREPARE ps FROM 'SELECT v FROM st WHERE id = ?'")
        exec_(conn, "SET @id = 1")
        exec_(conn, "EXECUTE ps USING @id")
        exec_(conn, "DEALLOCATE PREPARE ps")
    assert conn.session_state()["master_0"]["prepared_statements"] == []


# ---------------------------------------------------------------- LAST_INSERT_ID / FOUND_ROWS


@pytest.mark.parametrize("mode", MODES)
def test_last_insert_id_under_the_mysqlnd_ms_classifier(
    connect: Callable[..., msplugin.Connection], mode: str
) -> None:
    # mysqlnd_ms's own classifier sends every SELECT to a slave, LAST_INSERT_ID() included.
    conn = connect(mode, classifier="mysqlnd_ms")
    exec_(conn, "INSERT INTO st (v) VALUES (7)")
    with divergences() as found:
        value, sid = run(conn, "SELECT LAST_INSERT_ID(), @@server_id")
    if mode == "sync":
        assert sid == PRIMARY and value > 0 and found == []
    else:
        assert sid in REPLICAS and value == 0
        assert len(found) == (1 if mode == "warn" else 0)


@pytest.mark.parametrize("mode", MODES)
def test_found_rows_follows_the_read(
    connect: Callable[..., msplugin.Connection], mode: str
) -> None:
    conn = connect(mode, classifier="mysqlnd_ms", filters={"roundrobin": []})
    exec_(conn, "SELECT SQL_CALC_FOUND_ROWS v FROM st LIMIT 1")
    first = conn.last_used
    with divergences() as found:
        value, _ = run(conn, "SELECT FOUND_ROWS(), @@server_id")
    if mode == "sync":
        assert conn.last_used == first and value >= 3 and found == []
    else:
        assert conn.last_used != first  # round robin moved on
        assert len(found) == (1 if mode == "warn" else 0)


# ---------------------------------------------------------------- locks


@pytest.mark.parametrize("mode", MODES)
def test_lock_tables(connect: Callable[..., msplugin.Connection], mode: str) -> None:
    conn = connect(mode)
    exec_(conn, "LOCK TABLES st READ")
    with divergences() as found:
        held = run(conn, "SELECT v, @@server_id FROM st LIMIT 1")[1]
    exec_(conn, "UNLOCK TABLES")
    after = run(conn, "SELECT v, @@server_id FROM st LIMIT 1")[1]
    assert after in REPLICAS
    if mode == "sync":
        assert (held, found) == (PRIMARY, [])
    else:
        assert held in REPLICAS
        assert len(found) == (1 if mode == "warn" else 0)
        if mode == "warn":
            assert "LOCK TABLES is held on master_0" in found[0]


@pytest.mark.parametrize("mode", MODES)
def test_named_lock(connect: Callable[..., msplugin.Connection], mode: str) -> None:
    conn = connect(mode, classifier="mysqlnd_ms")  # its classifier sends RELEASE_LOCK to a slave
    exec_(conn, "/*ms=master*/SELECT GET_LOCK('msplugin_nl', 5)")
    with divergences() as found:
        held = run(conn, "SELECT v, @@server_id FROM st LIMIT 1")[1]
        released, sid = run(conn, "SELECT RELEASE_LOCK('msplugin_nl'), @@server_id")
    after = run(conn, "SELECT v, @@server_id FROM st LIMIT 1")[1]
    assert after in REPLICAS
    if mode == "sync":
        assert (held, released, sid, found) == (PRIMARY, 1, PRIMARY, [])
    else:
        assert held in REPLICAS and sid in REPLICAS and released is None  # not held there
        assert len(found) == (1 if mode == "warn" else 0)
        exec_(conn, "/*ms=master*/SELECT RELEASE_LOCK('msplugin_nl')")


def test_named_lock_pins_in_sync_until_released(
    connect: Callable[..., msplugin.Connection],
) -> None:
    conn = connect("sync")
    assert run(conn, "SELECT GET_LOCK('msplugin_test', 5), @@server_id") == (1, PRIMARY)
    assert {run(conn, "SELECT v, @@server_id FROM st LIMIT 1")[1] for _ in range(5)} == {PRIMARY}
    assert conn.session_state()["master_0"]["named_locks"] == 1
    exec_(conn, "SELECT RELEASE_LOCK('msplugin_test')")
    assert run(conn, "SELECT v, @@server_id FROM st LIMIT 1")[1] in REPLICAS


def test_named_lock_release_elsewhere_warns(connect: Callable[..., msplugin.Connection]) -> None:
    conn = connect("warn", classifier="mysqlnd_ms")  # its classifier sends RELEASE_LOCK to a slave
    exec_(conn, "/*ms=master*/SELECT GET_LOCK('msplugin_test2', 5)")
    with pytest.warns(msplugin.StateDivergenceWarning, match="named lock .* is held on master_0"):
        exec_(conn, "SELECT RELEASE_LOCK('msplugin_test2')")
    exec_(conn, "/*ms=master*/SELECT RELEASE_LOCK('msplugin_test2')")


# ---------------------------------------------------------------- quiet when nothing is set


def test_read_only_workload_gives_no_warning(connect: Callable[..., msplugin.Connection]) -> None:
    conn = connect("warn")
    queries = [
        ("SELECT v FROM st WHERE id = %s", (1,)),
        ("SELECT COUNT(*) FROM st", None),
        ("SELECT @@session.time_zone, @@version", None),
        ("SELECT a.v, b.v FROM st a JOIN st b ON a.id = b.id", None),
        ("SELECT 1", None),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        for i in range(1000):
            sql, args = queries[i % len(queries)]
            cur = conn.cursor()
            cur.execute(sql, args)
            cur.fetchall()
    stats = conn.stats()
    assert stats["state_warnings"] == 0 and stats["use_slave"] == 1000


# ---------------------------------------------------------------- API


def test_snapshot_names_state_but_never_values(connect: Callable[..., msplugin.Connection]) -> None:
    conn = connect("warn")
    exec_(conn, "SET @secret_var = 'hunter2'")
    exec_(conn, "SET time_zone = '+05:00'")
    snap = conn.session_state()
    assert snap["master_0"]["user_variables"] == ["secret_var"]
    assert snap["master_0"]["settings"] == {"time_zone": "SET time_zone = '+05:00'"}
    assert "hunter2" not in repr(snap)
    assert snap["slave_0"]["user_variables"] == []


def test_set_session_state_switches_modes(connect: Callable[..., msplugin.Connection]) -> None:
    conn = connect("off")
    assert conn.session_state() == {"master_0": {}, "slave_0": {}, "slave_1": {}}
    conn.set_session_state("sync")
    exec_(conn, "SET @myrole = 'master'")
    assert run(conn, "SELECT @myrole, @@server_id")[1] == PRIMARY
    conn.set_session_state("warn")
    with pytest.warns(msplugin.StateDivergenceWarning):
        run(conn, "SELECT @myrole, @@server_id")
    with pytest.raises(msplugin.ProgrammingError, match="mode must be 'off', 'warn' or 'sync'"):
        conn.set_session_state("always")
