"""Errors that are not a dead server: an oversized statement, two threads on one connection,
a parameter that cannot be encoded. Each gets a clear error; nothing is re-sent, nothing is
quarantined, and the connection goes on working."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pymysql
import pytest
from live import REPLICAS, scalar, setup

import msplugin
from msplugin import health
from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration

BIG = 17 * 1024 * 1024  # more than MariaDB's default max_allowed_packet (16 MiB)


@pytest.fixture(scope="module", autouse=True)
def table(sandbox: Sandbox) -> None:
    setup(sandbox, "CREATE TABLE IF NOT EXISTS err_t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")


@pytest.fixture
def conn(sandbox: Sandbox) -> Iterator[msplugin.Connection]:
    health.reset()
    with msplugin.connect("sandbox", config=str(sandbox.config_path)) as c:
        yield c
    assert not health.down  # no test here may quarantine a healthy server
    health.reset()


@pytest.mark.parametrize(
    ("sql", "role"),
    [
        ("SELECT LENGTH(%s)", "slave_"),
        ("INSERT INTO err_t (v) VALUES (LENGTH(%s))", "master_0"),
    ],
)
def test_a_statement_over_max_allowed_packet_is_named_as_such(
    conn: msplugin.Connection, sql: str, role: str
) -> None:
    cur = conn.cursor()
    cur.execute("SELECT 1")  # a replica connected
    with pytest.raises(pymysql.err.OperationalError) as info:
        cur.execute(sql, ("x" * BIG,))
    message = str(info.value)
    assert info.value.args[0] == 1153
    assert "max_allowed_packet (16,777,216 bytes)" in message, message
    # The COM_QUERY packet: a command byte, the text with the quoted value in place of %s.
    assert f"the statement ({1 + len(sql) - 2 + BIG + 2:,} bytes)" in message, message
    assert role in message and "not sent again" in message
    stats = conn.stats()
    assert stats["read_retries"] == 0 and stats["unsent_retries"] == 0
    assert not health.down
    assert scalar(conn, "SELECT 7") == 7  # the connection works on
    cur.execute("INSERT INTO err_t (v) VALUES (1)")


def test_a_second_thread_is_refused_at_once_and_never_gets_the_first_ones_rows(
    conn: msplugin.Connection,
) -> None:
    first = conn.cursor()
    answers: list[object] = []

    def slow() -> None:
        first.execute("SELECT 'mine', SLEEP(1)")
        answers.append(first.fetchone())

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.3)  # the first thread is waiting for its reply
    second = conn.cursor()
    start = time.monotonic()
    with pytest.raises(msplugin.ProgrammingError, match="in use by another thread"):
        second.execute("SELECT 'yours'")
    assert time.monotonic() - start < 0.1
    for call in (conn.commit, conn.rollback, conn.begin):
        with pytest.raises(msplugin.ProgrammingError, match="in use by another thread"):
            call()
    thread.join()
    assert answers == [("mine", 0)]
    second.execute("SELECT 'yours'")  # the first thread is done: it works again
    assert second.fetchone() == ("yours",)


def test_threads_sharing_a_connection_never_get_each_others_rows(
    conn: msplugin.Connection,
) -> None:
    wrong: list[object] = []
    refused = [0]
    served = [0]
    lock = threading.Lock()

    def work(tid: int) -> None:
        cur = conn.cursor()
        for i in range(200):
            mine = f"{tid}-{i}"
            try:
                cur.execute("SELECT %s, @@server_id", (mine,))
                row = cur.fetchone()
            except msplugin.ProgrammingError:
                with lock:
                    refused[0] += 1
                continue
            with lock:
                served[0] += 1
                if row is None or row[0] != mine:
                    wrong.append((mine, row))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
    assert served[0] > 0 and refused[0] > 0  # they really overlapped
    assert conn.stats()["connections_lost"] == 0


def test_a_parameter_that_cannot_be_encoded_is_a_pep_249_error(
    conn: msplugin.Connection,
) -> None:
    cur = conn.cursor()
    for sql in ("SELECT %s", "INSERT INTO err_t (v) VALUES (LENGTH(%s))"):
        with pytest.raises(msplugin.DataError, match=r"surrogates not allowed.*nothing was sent"):
            cur.execute(sql, ("a\ud800b",))
    with pytest.raises(msplugin.DataError):
        cur.executemany("INSERT INTO err_t (v) VALUES (LENGTH(%s))", [("\udfff",)])
    assert scalar(conn, "SELECT 8") == 8
    assert conn.last_used is not None and conn.last_used.name.startswith("slave")
    assert scalar(conn, "SELECT @@server_id") in REPLICAS
