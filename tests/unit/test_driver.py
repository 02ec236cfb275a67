"""msplugin's own rules about PyMySQL connections, against silent local sockets (no server)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pymysql
import pytest

from msplugin import driver


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port whose kernel completes the handshake and then nothing ever answers, as for
    a stopped (SIGSTOP) server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


def test_connect_timeout_bounds_the_greeting_too(silent_port: int) -> None:
    start = time.monotonic()
    with pytest.raises(pymysql.err.OperationalError) as info:
        driver.connect(host="127.0.0.1", port=silent_port, user="u", connect_timeout=0.5)
    took = time.monotonic() - start
    assert 0.45 <= took < 1.5, took
    assert info.value.args[0] == 2013
    assert "no answer within connect_timeout 0.5 s" in info.value.args[1]


def test_plain_pymysql_would_wait_for_the_greeting(silent_port: int) -> None:
    """Why: PyMySQL applies connect_timeout to the TCP connect only (read_timeout bounds the
    greeting here, else it would wait forever)."""
    start = time.monotonic()
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(
            host="127.0.0.1", port=silent_port, user="u", connect_timeout=0.3, read_timeout=1.5
        )
    assert time.monotonic() - start >= 1.4


@pytest.mark.parametrize(
    ("exc", "unsent"),
    [
        (pymysql.err.InterfaceError(0, ""), True),
        (pymysql.err.OperationalError(2006, "MySQL server has gone away (BrokenPipeError)"), True),
        (pymysql.err.OperationalError(2013, "Lost connection to MySQL server"), False),
        (pymysql.err.OperationalError(1205, "Lock wait timeout"), False),
        (pymysql.err.ProgrammingError(1064, "syntax"), False),
    ],
)
def test_not_sent(exc: BaseException, unsent: bool) -> None:
    assert driver.not_sent(exc) is unsent


def test_peer_closed_sees_a_closed_or_talking_peer() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        conn = SimpleNamespace(_sock=ours)
        assert not driver.peer_closed(conn)
        theirs.sendall(b"x")  # a server speaks unasked only before it closes
        assert driver.peer_closed(conn)
    a, b = socket.socketpair()
    with a:
        b.close()
        assert driver.peer_closed(SimpleNamespace(_sock=a))
    assert driver.peer_closed(SimpleNamespace(_sock=None))


def test_result_facts_are_the_same_whatever_the_cursor_class() -> None:
    """An optimistic transaction may read through a DictCursor and replay through a plain
    one: the rows are compared as tuples either way."""
    description = (("id", 3, None, 11, 11, 0, False), ("v", 253, None, 4, 4, 0, True))

    def cursor(rows: object) -> SimpleNamespace:
        return SimpleNamespace(
            description=description, _rows=rows, rowcount=1, lastrowid=0, warning_count=0
        )

    plain = driver.result_facts(cursor(((1, "a"),)))
    assert driver.result_facts(cursor([{"id": 1, "v": "a"}])) == plain
    assert driver.result_facts(cursor([(1, "a")])) == plain
    assert driver.result_facts(cursor([{"id": 1, "v": "b"}])) != plain
    assert driver.result_facts(cursor(None))[1] is None
