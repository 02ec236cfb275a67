"""The pure rules of optimistic transactions (msplugin.optimistic): no driver, no server."""

from __future__ import annotations

from typing import Any

import pytest

from msplugin.optimistic import (
    Caps,
    Transaction,
    Verdict,
    admit,
    differs_by_server,
    error_outcome,
    keep,
    outcome,
)

COLS = (("id", 3, None, 11, 11, 0, False), ("v", 253, None, 40, 40, 0, True))


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("SELECT NOW()", "NOW() differs by server"),
        ("select sysdate ()", "SYSDATE() differs by server"),
        ("SELECT * FROM t WHERE d > CURRENT_TIMESTAMP", "CURRENT_TIMESTAMP differs by server"),
        ("SELECT rand()", "RAND() differs by server"),
        ("SELECT UUID(), 1", "UUID() differs by server"),
        ("SELECT CONNECTION_ID()", "CONNECTION_ID() differs by server"),
        ("SELECT @@server_id", "@@SERVER_ID differs by server"),
        ("SELECT @@global.gtid_current_pos", "@@GLOBAL.GTID_CURRENT_POS differs by server"),
        ("SELECT @@hostname", "@@HOSTNAME differs by server"),
        ("SELECT CURRENT_USER", "CURRENT_USER differs by server"),
        (
            "SELECT table_rows FROM information_schema.tables",
            "INFORMATION_SCHEMA differs by server",
        ),
        ("SELECT MASTER_GTID_WAIT('0-1-5', 1)", "MASTER_GTID_WAIT() differs by server"),
    ],
)
def test_statements_whose_result_depends_on_the_server_are_found(sql: str, why: str) -> None:
    assert differs_by_server(sql) == why


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'NOW()', \"rand()\" FROM t",  # literals
        "SELECT /* uuid() */ v FROM t -- now()\n",  # comments
        "SELECT `now`, now_col, t.now, snow(1) FROM t",  # identifiers and other functions
        "SELECT v FROM t WHERE id = %s",
        "SELECT `@@server_id` FROM t",
        "SELECT current_timestamp_col FROM t",
    ],
)
def test_look_alikes_are_not_taken_for_server_dependent(sql: str) -> None:
    assert differs_by_server(sql) is None


def test_a_long_statement_is_searched_too() -> None:
    assert differs_by_server("SELECT " + "1, " * 3000 + "NOW()") == "NOW() differs by server"


@pytest.mark.parametrize(
    ("sql", "verdict", "why"),
    [
        ("SELECT v FROM t WHERE id = %s", Verdict.STAY, "SELECT is a read"),
        ("/*ms=slave*/SELECT 1", Verdict.STAY, "hint ms=slave"),
        ("SELECT v FROM t FOR UPDATE", Verdict.MOVE, "locking read (FOR UPDATE) runs on the"),
        ("SELECT v FROM t LOCK IN SHARE MODE", Verdict.MOVE, "locking read (LOCK IN SHARE"),
        ("UPDATE t SET v = v + 1", Verdict.MOVE, "UPDATE is not a read"),
        ("SET @a = 1", Verdict.MOVE, "SET is not a read"),
        ("SELECT @a := 1", Verdict.MOVE, "assigns a user variable"),
        ("SELECT GET_LOCK('x', 1)", Verdict.MOVE, "GET_LOCK() needs the master's session"),
        ("SELECT 1 INTO @x", Verdict.MOVE, "SELECT ... INTO"),
        ("CREATE TABLE x (a int)", Verdict.MOVE, "CREATE is not a read"),
        ("/*ms=master*/SELECT 1", Verdict.MOVE, "hint ms=master: not a plain read"),
        ("/*ms=slave*/DELETE FROM t", Verdict.MOVE, "hint ms=slave: not a plain read"),
        ("SAVEPOINT sa", Verdict.MOVE, "SAVEPOINT is not a read"),
        ("ROLLBACK TO SAVEPOINT sa", Verdict.MOVE, "ROLLBACK is not a read"),
        ("BEGIN", Verdict.MOVE, "a transaction statement"),
        ("SELECT 1; SELECT 2", Verdict.MOVE, "a multi-statement text"),
        ("SELECT NOW()", Verdict.MOVE, "NOW() differs by server"),
        ("COMMIT", Verdict.END, "it ends on the replica"),
        ("rollback", Verdict.END, "it ends on the replica"),
    ],
)
def test_only_plain_reads_stay_on_the_replica(sql: str, verdict: Verdict, why: str) -> None:
    got, reason = admit(Transaction("slave_0"), sql, Caps())
    assert got is verdict
    assert reason.startswith(why), reason


def test_over_the_cap_after_reads_the_transaction_conflicts() -> None:
    caps = Caps(statements=2, rows=100)
    trx = Transaction("slave_0")
    assert admit(trx, "SELECT 1", Caps(statements=0))[0] is Verdict.MOVE
    for _ in range(2):
        assert admit(trx, "SELECT 1", caps)[0] is Verdict.STAY
        keep(trx, "SELECT 1", None, outcome(COLS, ((1, "a"),), 1, 0, 0))
    verdict, why = admit(trx, "SELECT 1", caps)
    assert (verdict, why) == (Verdict.CONFLICT, "2 statements kept (cap 2)")
    assert trx.reason(verdict, why).startswith("optimistic transaction on slave_0 ends in a")
    # The row cap counts the kept results' rows.
    big = Transaction("slave_0")
    keep(big, "SELECT v FROM t", None, outcome(COLS, ((1, "x"),) * 100, 100, 0, 0))
    keep(big, "SELECT 1 FROM t WHERE 0", None, outcome(COLS, (), 0, 0, 0))  # no rows: counts 0
    assert big.rows == 100
    verdict, why = admit(big, "SELECT 1", Caps(statements=100, rows=100))
    assert verdict is Verdict.CONFLICT and "100 result rows kept (cap 100)" in why
    # The write itself is no read: it moves whatever was kept (the replay decides then).
    assert admit(trx, "UPDATE t SET v = 1", caps)[0] is Verdict.MOVE


def _o(rows: Any, cols: Any = COLS, affected: int = 1, insert_id: int = 0, warn: int = 0) -> Any:
    return outcome(cols, rows, affected, insert_id, warn)


def test_outcomes_tell_apart_what_a_replay_must_find_equal() -> None:
    base = _o(((1, "a"), (2, "b")))
    assert _o(((1, "a"), (2, "b"))) == base
    different = [
        _o(((2, "b"), (1, "a"))),  # row order
        _o(((1, "a"),)),  # a row fewer
        _o(((1, "a"), (2, "c"))),  # a value
        _o(((1, "a"), (2, b"b"))),  # str vs bytes
        _o(((1, None), (2, "b"))),
        _o(((1, "None"), (2, "b"))),
        _o(((-2, "a"), (2, "b"))),
        _o(((1, "a"), (2, "b")), cols=(("id", 3), ("w", 253))),  # a column's name
        _o(((1, "a"), (2, "b")), cols=(("id", 8), ("v", 253))),  # a column's type
        _o(((1, "a"), (2, "b")), affected=2),
        _o(((1, "a"), (2, "b")), insert_id=7),
        _o(((1, "a"), (2, "b")), warn=1),
        error_outcome(1146, "Table 't' doesn't exist"),
    ]
    assert all(d != base for d in different)
    # A statement without a result set (an OK packet).
    assert outcome(None, None, 3, 0, 0) != outcome(None, None, 4, 0, 0)


def test_error_outcomes_compare_code_and_message() -> None:
    a = error_outcome(1146, "Table 'shop.t' doesn't exist")
    assert a == error_outcome(1146, "Table 'shop.t' doesn't exist")
    assert a != error_outcome(1146, "Table 'shop.u' doesn't exist")
    assert a != error_outcome(1054, "Table 'shop.t' doesn't exist")
    assert a != outcome(None, None, 1146, "Table 'shop.t' doesn't exist", 0)
