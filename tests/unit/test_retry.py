"""The retry rules: which failed statements may run again."""

from __future__ import annotations

import pytest

from msplugin.classify import classify
from msplugin.retry import after_disconnect, after_server_error, lost_commit, lost_transaction
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


def unsent(sql: str, **kwargs: object) -> str | None:
    args: dict[str, object] = {
        "role": "master",
        "trx": NO_TRANSACTION,
        "held": False,
        "others": True,
    }
    args.update(kwargs)
    return after_disconnect(
        classify(sql),
        args["role"],  # type: ignore[arg-type]
        args["trx"],  # type: ignore[arg-type]
        effects(sql),
        args["held"],  # type: ignore[arg-type]
        args["others"],  # type: ignore[arg-type]
        sent=False,
    )


def test_a_statement_that_never_reached_the_server_runs_again_even_a_write() -> None:
    assert unsent("INSERT INTO t VALUES (1)") is None
    assert unsent("UPDATE t SET v = 1; DELETE FROM u") is None  # it ran nowhere at all
    assert unsent("SELECT 1", role="slave", others=False) is None


@pytest.mark.parametrize(
    ("sql", "kwargs", "why"),
    [
        ("INSERT INTO t VALUES (1)", {"trx": OPEN}, "inside a transaction"),
        ("SELECT @v", {}, "session state"),
        ("INSERT INTO t VALUES (1)", {"held": True}, "held state the application"),
    ],
)
def test_unsent_statements_that_still_may_not_run_again(
    sql: str, kwargs: dict[str, object], why: str
) -> None:
    reason = unsent(sql, **kwargs)
    assert reason is not None and why in reason


def test_a_lost_begin_runs_again_but_not_inside_a_transaction() -> None:
    assert refusal("BEGIN", role="master") is None
    assert refusal("START TRANSACTION READ ONLY", role="slave") is None
    assert refusal("BEGIN", role="master", trx=OPEN) is not None  # it would commit the open one


@pytest.mark.parametrize(
    ("sql", "sent", "says"),
    [
        ("INSERT INTO t VALUES (1)", True, "the transaction did not commit"),
        ("INSERT INTO t VALUES (1)", False, "the transaction did not commit"),
        ("COMMIT", True, "whether the transaction committed is unknown"),
        ("/* app */ commit work", True, "whether the transaction committed is unknown"),
        ("COMMIT", False, "before COMMIT was sent: the transaction did not commit"),
        ("XA COMMIT 'x'", True, "unknown"),
        ("ROLLBACK", True, "the transaction did not commit"),
        ("CREATE TABLE x (a INT)", True, "earlier statements may have been committed"),
        ("CREATE TABLE x (a INT)", False, "the transaction did not commit"),
    ],
)
def test_what_a_lost_transaction_message_says(sql: str, sent: bool, says: str) -> None:
    from msplugin.classify import first_keyword

    assert says in lost_transaction(classify(sql).trx, first_keyword(sql), sent)


def test_a_lost_commit() -> None:
    assert "did not commit" in lost_commit(False)
    assert "unknown" in lost_commit(True)


def test_a_read_only_refusal_is_retried_once_outside_a_transaction_only() -> None:
    from msplugin.retry import read_only_refusal, read_only_retry

    assert read_only_refusal(1290, "The MariaDB server is running with the --read-only option")
    assert read_only_refusal(1290, "... with the --super-read-only option so it cannot ...")
    assert not read_only_refusal(1290, "running with the --secure-file-priv option")
    assert not read_only_refusal(1062, "read-only")
    assert read_only_retry("master", "", 0)
    assert not read_only_retry("master", "open", 0)  # in a transaction
    assert not read_only_retry("master", "", 1)  # once
    assert not read_only_retry("slave", "", 0)


def test_galera_is_detected_when_every_answering_server_has_wsrep_on() -> None:
    from msplugin.galera import detected
    from msplugin.topology import Observation

    on = Observation(reachable=True, wsrep_on=True)
    off = Observation(reachable=True, wsrep_on=False)
    gone = Observation(reachable=False)
    assert detected({"a": on, "b": on, "c": gone})
    assert not detected({"a": on, "b": off})
    assert not detected({"a": gone})
