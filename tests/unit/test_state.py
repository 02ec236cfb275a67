"""Session state without a server: what statements do to a session, and the warn/sync plans."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msplugin import state
from msplugin.state import Effects, Tracker, effects

NAMES = ("master_0", "slave_0", "slave_1")


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", {}),
        ("SELECT v FROM t WHERE id = %s", {}),
        ("SELECT @@server_id, @@session.time_zone", {}),
        ("SET @myrole = 'master'", {"sets_vars": {"myrole"}, "session_statement": True}),
        ("SET @a := @b + 1", {"sets_vars": {"a"}, "reads_vars": {"b"}, "session_statement": True}),
        ("SELECT @MyRole", {"reads_vars": {"myrole"}}),  # names are case-insensitive
        ("SELECT @`odd name`", {"reads_vars": {"odd name"}}),
        ("SELECT a INTO @x, @y FROM t", {"sets_vars": {"x", "y"}}),
        ("SELECT @c := COUNT(*) FROM t", {"sets_vars": {"c"}}),
        ("SELECT '@not_a_var', `@column` FROM t -- @nor_this", {}),
        ("SELECT user@host", {}),
        ("SET time_zone = %s", {"setting": "time_zone", "session_statement": True}),
        ("set session SQL_MODE = ''", {"setting": "sql_mode", "session_statement": True}),
        (
            "SET @@session.time_zone = '+00:00', @@global.max_connections = 5, x = 3",
            {"setting": "time_zone,x", "session_statement": True},
        ),
        ("SET GLOBAL max_connections = 5", {"session_statement": True}),
        ("SET NAMES latin1", {"setting": "charset", "session_statement": True}),
        ("SET CHARACTER SET utf8mb4", {"setting": "charset", "session_statement": True}),
        (
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            {"setting": "transaction", "session_statement": True},
        ),
        ("SET TRANSACTION READ ONLY", {"session_statement": True}),  # next transaction only
        ("SET autocommit = 0", {"session_statement": True}),  # the transaction machinery's
        (
            "SET @a = IF(x, b = 1, 2), time_zone = 'UTC'",
            {"sets_vars": {"a"}, "setting": "time_zone", "session_statement": True},
        ),
        ("USE `my db`", {"setting": "database", "session_statement": True}),
        ("CREATE TEMPORARY TABLE IF NOT EXISTS db.`Tmp` (a INT)", {"creates_temp": {"tmp"}}),
        ("CREATE TABLE t (a INT)", {}),
        ("DROP TEMPORARY TABLE IF EXISTS a, db.b", {"drops_tables": {"a", "b"}}),
        ("PREPARE ps FROM 'SELECT 1'", {"prepares": "ps"}),
        ("EXECUTE ps USING @id", {"uses_prepared": "ps", "reads_vars": {"id"}}),
        ("DEALLOCATE PREPARE ps", {"uses_prepared": "ps", "deallocates": "ps"}),
        ("DROP PREPARE ps", {"uses_prepared": "ps", "deallocates": "ps"}),
        ("LOCK TABLES t READ, u WRITE", {"table_lock": 1}),
        ("UNLOCK TABLES", {"table_lock": -1}),
        ("SELECT GET_LOCK(%s, 10)", {"get_lock": True}),
        (
            "SELECT RELEASE_LOCK('x'), RELEASE_ALL_LOCKS()",
            {"release_lock": True, "release_all_locks": True},
        ),
        ("SELECT LAST_INSERT_ID()", {"last_insert_id": True}),
        ("SELECT FOUND_ROWS()", {"found_rows": True}),
        ("SELECT 'GET_LOCK(' FROM t", {}),
        ("CALL p()", {}),
    ],
)
def test_effects(sql: str, expected: dict[str, Any]) -> None:
    got = {k: v for k, v in effects(sql)._asdict().items() if v}
    want = {k: frozenset(v) if isinstance(v, set) else v for k, v in expected.items()}
    assert got == want


@given(st.text(max_size=300))
def test_effects_never_raise(sql: str) -> None:
    assert isinstance(effects(sql), Effects)


def record(t: Tracker, sql: str, name: str, *, read: bool = False, executed: str = "") -> None:
    t.record(effects(sql), name, read=read, executed=executed or sql)


def plan(t: Tracker, sql: str, chosen: str, *, read: bool = True, fixed: str = "") -> state.Plan:
    return t.plan(sql, effects(sql), chosen, read=read, fixed=fixed, master="master_0")


def test_nothing_set_means_nothing_to_say() -> None:
    for mode in ("warn", "sync"):
        t = Tracker(mode, NAMES)
        assert plan(t, "SELECT v FROM t", "slave_0") == state.Plan("", "", (), ())
        assert plan(t, "SELECT @never_set", "slave_0") == state.Plan("", "", (), ())


def test_warn_names_the_item_the_holder_and_the_chosen_backend() -> None:
    t = Tracker("warn", NAMES)
    record(t, "SET @myrole = 'master'", "master_0")
    p = plan(t, "SELECT @myrole", "slave_1")
    assert p.move_to == "" and p.warnings == (
        "@myrole was set on master_0, but this statement runs on slave_1",
    )
    assert plan(t, "SELECT @myrole", "master_0").warnings == ()


def test_sync_moves_to_the_holder_and_refuses_writes_to_a_slave() -> None:
    t = Tracker("sync", NAMES)
    record(t, "SET @a = 1", "master_0")
    p = plan(t, "SELECT @a", "slave_0")
    assert (p.move_to, p.reason) == ("master_0", "pinned to master_0: @a was set there")
    record(t, "/*ms=slave*/SELECT @b := 2", "slave_1", read=True)
    p = plan(t, "INSERT INTO t VALUES (@b)", "master_0", read=False)
    assert p.error.endswith("is not a read and slave_1 is a slave")
    p = plan(t, "SELECT @b", "slave_0", fixed="a hint chose the server")
    assert p.move_to == "" and "(not moved: a hint chose the server)" in p.warnings[0]


def test_sync_keeps_variables_set_by_reads_with_the_writes() -> None:
    t = Tracker("sync", NAMES)
    p = plan(t, "SELECT @c := MAX(v) FROM t", "slave_0")
    assert p.move_to == "master_0" and "@c is kept with the writes there" in p.reason


def test_settings_replay_once_per_backend_in_order() -> None:
    t = Tracker("sync", NAMES)
    record(t, "SET time_zone = '+01:00'", "master_0")
    record(t, "SET NAMES latin1", "master_0")
    record(t, "SET time_zone = '+02:00'", "master_0")  # replaces the first, moves to the end
    assert plan(t, "SELECT 1", "slave_0").replay == ("SET NAMES latin1", "SET time_zone = '+02:00'")
    t.replayed("slave_0")
    assert plan(t, "SELECT 1", "slave_0").replay == ()
    assert plan(t, "SELECT 1", "master_0").replay == ()
    assert len(plan(t, "SELECT 1", "slave_1").replay) == 2


def test_warn_reports_diverging_settings() -> None:
    t = Tracker("warn", NAMES)
    record(t, "SET time_zone = '+01:00'", "master_0")
    (w,) = plan(t, "SELECT NOW()", "slave_0").warnings
    assert w.startswith("session setting time_zone (SET time_zone = '+01:00') was set on master_0")


def test_forgetting_a_setting_stops_its_replay() -> None:
    t = Tracker("sync", NAMES)
    record(t, "USE other", "master_0")
    t.forget("database")  # select_db() changed every backend
    assert plan(t, "SELECT 1", "slave_0").replay == ()
    assert plan(t, "SELECT 1", "slave_0") == state.Plan("", "", (), ())


def test_settings_history_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "SETTINGS_LIMIT", 3)
    t = Tracker("sync", NAMES)
    for i in range(3):
        record(t, f"SET v{i} = 1", "master_0")
    record(t, "SET v0 = 2", "master_0")  # an existing setting: still within the bound
    assert not t.overflow and len(t.settings) == 3
    record(t, "SET v3 = 1", "master_0")
    assert t.overflow
    p = plan(t, "SELECT 1", "slave_0")
    assert p.move_to == "master_0" and "more than 3 distinct session settings" in p.reason


def test_locks() -> None:
    t = Tracker("sync", NAMES)
    record(t, "LOCK TABLES t READ", "master_0")
    assert plan(t, "SELECT 1", "slave_0").move_to == "master_0"
    record(t, "START TRANSACTION", "master_0")
    t.transaction_began("master_0")  # beginning a transaction releases table locks
    assert plan(t, "SELECT 1", "slave_0").move_to == ""
    record(t, "SELECT GET_LOCK('a', 1)", "master_0")
    record(t, "SELECT GET_LOCK('b', 1)", "master_0")
    record(t, "SELECT RELEASE_LOCK('a')", "master_0")
    assert plan(t, "SELECT 1", "slave_0").move_to == "master_0"
    record(t, "SELECT RELEASE_ALL_LOCKS()", "master_0")
    assert plan(t, "SELECT 1", "slave_0").move_to == ""
    w = Tracker("warn", NAMES)
    record(w, "SELECT GET_LOCK('a', 1)", "master_0")
    assert plan(w, "SELECT 1", "slave_0").warnings == ()  # warn: only RELEASE_LOCK depends
    assert plan(w, "SELECT RELEASE_LOCK('a')", "slave_0").warnings


def test_server_reported_changes() -> None:
    t = Tracker("sync", NAMES)
    t.server_reported("master_0", schema="other", variables={"time_zone": "+04:00"})
    assert plan(t, "SELECT @from_proc", "slave_0").move_to == "master_0"
    assert plan(t, "SELECT 1", "slave_0").replay == (
        "USE `other`",
        "SET SESSION time_zone = '+04:00'",
    )
    assert t.snapshot()["master_0"]["server_reported_changes"] is True


def test_temporary_tables_are_matched_by_name() -> None:
    t = Tracker("sync", NAMES)
    record(t, "CREATE TEMPORARY TABLE Tmp (a INT)", "master_0")
    assert plan(t, "SELECT * FROM `tmp`", "slave_0").move_to == "master_0"
    assert plan(t, "SELECT 'tmp' FROM other", "slave_0").move_to == ""
    record(t, "DROP TABLE tmp", "master_0")
    assert plan(t, "SELECT * FROM tmp", "slave_0").move_to == ""


def test_quiet_holds_while_idle_holds_for_every_backend_and_statement() -> None:
    t = Tracker("sync", NAMES)
    assert t.quiet()
    record(t, "SET @a = 1", "master_0")  # a variable: only statements naming it depend on it
    assert t.quiet()
    record(t, "SET time_zone = '+01:00'", "master_0")
    assert not t.quiet() and not t.idle("slave_0", "SELECT 1")
    for name in NAMES:
        if name != "master_0":
            t.replayed(name)
    assert t.quiet()
    record(t, "CREATE TEMPORARY TABLE tmp (a INT)", "master_0")
    assert not t.quiet() and not t.idle("slave_0", "SELECT * FROM tmp")
    record(t, "DROP TEMPORARY TABLE tmp", "master_0")
    assert t.quiet()
    record(t, "SELECT GET_LOCK('x', 1)", "master_0", read=True)
    assert not t.quiet()
