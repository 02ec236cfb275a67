"""The retry rules: which failed statements may run again."""

from __future__ import annotations

import pytest

from msplugin.classify import classify
from msplugin.retry import after_disconnect, after_server_error
from msplugin.routing import AUTOCOMMIT_OFF, NO_TRANSACTION, OPEN
from msplugin.state import effects


def refusal(
    sql: str,
    role: str = "slave",
    trx: str = NO_TRANSACTION,
    held: bool = False,
    others: bool = True,
) -> str | None:
    return after_disconnect(classify(sql), role, trx, effects(sql), held, others)


def test_a_plain_read_on_a_slave_may_run_again() -> None:
    assert refusal("SELECT * FROM t WHERE id = %s") is None


@pytest.mark.parametrize(
    ("sql", "kwargs", "why"),
    [
        ("INSERT INTO t VALUES (1)", {}, "not a read"),
        ("/*ms=slave*/ UPDATE t SET v = 1", {}, "not a read"),
        ("SELECT 1", {"trx": OPEN}, "inside a transaction"),
        ("SELECT 1", {"trx": AUTOCOMMIT_OFF}, "inside a transaction"),
        ("SELECT @v", {}, "session state"),
        ("SELECT * FROM tmp_only_here WHERE @a = 1", {}, "session state"),
        ("SELECT 1", {"held": True}, "held state the application"),
        ("SELECT 1", {"role": "master"}, "master"),
        ("SELECT 1", {"others": False}, "no other server"),
    ],
)
def test_refused(sql: str, kwargs: dict[str, object], why: str) -> None:
    reason = refusal(sql, **kwargs)  # type: ignore[arg-type]
    assert reason is not None and why in reason


def test_server_errors() -> None:
    assert after_server_error(1205, (1205, 1213), NO_TRANSACTION)
    assert not after_server_error(1062, (1205,), NO_TRANSACTION)
    assert not after_server_error(1205, (1205,), OPEN)
    assert not after_server_error(1205, (1205,), AUTOCOMMIT_OFF)
