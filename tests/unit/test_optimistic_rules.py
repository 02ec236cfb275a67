"""The pure rules of optimistic transactions (msplugin.optimistic): no driver, no server."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msplugin.optimistic import (
    Caps,
    Kept,
    Transaction,
    Verdict,
    admit,
    differs_by_server,
    digest,
    error_digest,
    first_difference,
    keep,
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


def test_over_the_cap_a_transaction_moves_if_it_read_nothing_else_conflicts() -> None:
    caps = Caps(statements=2, bytes=1 << 20)
    trx = Transaction("slave_0")
    assert admit(trx, "SELECT 1", Caps(statements=0))[0] is Verdict.MOVE
    for _ in range(2):
        assert admit(trx, "SELECT 1", caps)[0] is Verdict.STAY
        keep(trx, "SELECT 1", None, digest(COLS, ((1, "a"),), 1, 0, 0))
    verdict, why = admit(trx, "SELECT 1", caps)
    assert (verdict, why) == (Verdict.CONFLICT, "2 statements kept (cap 2)")
    assert trx.reason(verdict, why).startswith("optimistic transaction on slave_0 ends in a")
    # The byte cap counts the digested results.
    small = Transaction("slave_0")
    keep(small, "SELECT v FROM t", None, digest(COLS, ((1, "x" * 100),), 1, 0, 0))
    verdict, why = admit(small, "SELECT 1", Caps(statements=100, bytes=100))
    assert verdict is Verdict.CONFLICT and "result bytes kept (cap 100)" in why
    # The write itself is no read: it moves whatever was kept (the replay decides then).
    assert admit(trx, "UPDATE t SET v = 1", caps)[0] is Verdict.MOVE


def _d(rows: Any, cols: Any = COLS, affected: int = 1, insert_id: int = 0, warn: int = 0) -> bytes:
    return digest(cols, rows, affected, insert_id, warn)[0]


def test_digests_tell_apart_what_a_replay_must_find_equal() -> None:
    base = _d(((1, "a"), (2, "b")))
    assert _d(((1, "a"), (2, "b"))) == base
    different = [
        _d(((2, "b"), (1, "a"))),  # row order
        _d(((1, "a"),)),  # a row fewer
        _d(((1, "a"), (2, "c"))),  # a value
        _d(((1, "a"), (2, b"b"))),  # a type: str vs bytes
        _d(((1.0, "a"), (2, "b"))),  # int vs float (equal in Python)
        _d(((Decimal(1), "a"), (2, "b"))),
        _d(((True, "a"), (2, "b"))),
        _d(((1, None), (2, "b"))),
        _d(((1, "None"), (2, "b"))),
        _d(((1, "a"), (2, "b")), cols=(("id", 3), ("w", 253))),  # a column's name
        _d(((1, "a"), (2, "b")), cols=(("id", 8), ("v", 253))),  # a column's type
        _d(((1, "a"), (2, "b")), affected=2),
        _d(((1, "a"), (2, "b")), insert_id=7),
        _d(((1, "a"), (2, "b")), warn=1),
        error_digest(1146, "Table 't' doesn't exist")[0],
    ]
    assert base not in different
    assert len(set(different)) == len(different)
    # Python's hash() would call these equal (hash(-1) == hash(-2)); the digest does not.
    assert _d(((-1,),)) != _d(((-2,),))
    # Column sizes and flags are not compared: they may differ between servers' configs.
    assert _d(((1, "a"),), cols=(("id", 3, None, 20, 20, 0, True), ("v", 253))) == _d(
        ((1, "a"),), cols=(("id", 3), ("v", 253))
    )
    # A statement without a result set (an OK packet).
    assert digest(None, None, 3, 0, 0) != digest(None, None, 4, 0, 0)


def test_error_digests_compare_code_and_message() -> None:
    a = error_digest(1146, "Table 'shop.t' doesn't exist")
    assert a == error_digest(1146, "Table 'shop.t' doesn't exist")
    assert a != error_digest(1146, "Table 'shop.u' doesn't exist")
    assert a != error_digest(1054, "Table 'shop.t' doesn't exist")


_VALUES = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False),
    st.dates(),
    st.datetimes(),
)
_ROWS = st.lists(st.lists(_VALUES, min_size=1, max_size=3).map(tuple), max_size=4).map(tuple)


def _typed(rows: tuple[tuple[Any, ...], ...]) -> list[list[tuple[type, str]]]:
    return [[(type(v), repr(v)) for v in row] for row in rows]


@given(_ROWS, _ROWS)
def test_digests_are_equal_exactly_when_the_rows_are(a: Any, b: Any) -> None:
    assert (_d(a) == _d(b)) == (_typed(a) == _typed(b))


def test_a_replay_is_compared_statement_by_statement() -> None:
    kept = [Kept("SELECT 1", None, b"a"), Kept("SELECT 2", None, b"b")]
    assert first_difference(kept, [b"a", b"b"]) is None
    assert first_difference(kept, [b"a", b"x"]) == 1
    assert first_difference(kept, [b"x", b"b"]) == 0
    assert first_difference(kept, [b"a"]) == 1  # a replay cut short
    assert first_difference([], []) is None


def test_dates_digest_by_value() -> None:
    day = datetime.date(2026, 12, 3)
    assert _d(((day,),)) == _d(((datetime.date(2026, 12, 3),),))
    assert _d(((day,),)) != _d(((datetime.datetime(2026, 12, 3),),))
