"""Helpers shared by the live tests: which server answered."""

from __future__ import annotations

import time
from collections.abc import Callable

import msplugin
from msplugin.sandbox import Sandbox

PRIMARY = 1  # @@server_id of the sandbox primary
REPLICAS = {2, 3}


def setup(sandbox: Sandbox, *statements: str) -> None:
    """Run *statements* on the primary through msplugin and wait until the replicas have them."""
    with msplugin.connect("sandbox", config=str(sandbox.config_path)) as c:
        cur = c.cursor()
        for sql in statements:
            cur.execute(sql)
    sandbox.wait_replicated()


def scalar(conn: msplugin.Connection, sql: str) -> int:
    """Run *sql* and return the first column of its first row as an int."""
    cur = conn.cursor()
    cur.execute(sql)
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


def server_id(conn: msplugin.Connection, sql: str = "SELECT @@server_id") -> int:
    """Run *sql* (which selects @@server_id first) and return the id of the server that ran it."""
    return scalar(conn, sql)


# Callbacks for the user and user_multi filters, named in JSON as "live:..." (this directory
# is on sys.path under pytest).
CALLS: list[tuple[str, str, list[str], list[str], str | None, bool]] = []


def pick_last_slave(
    group: str, query: str, masters: list[str], slaves: list[str], last: str | None, trx: bool
) -> str:
    CALLS.append((group, query, masters, slaves, last, trx))
    return slaves[-1] if slaves else masters[0]


def only_slave_0(
    group: str, query: str, masters: list[str], slaves: list[str], last: str | None, trx: bool
) -> tuple[list[str], list[str]]:
    return masters, [s for s in slaves if s == "slave_0"]


def ids(conn: msplugin.Connection, n: int) -> list[int]:
    """Run ``SELECT @@server_id`` *n* times; the server ids that answered."""
    cur = conn.cursor()
    out = []
    for _ in range(n):
        cur.execute("SELECT @@server_id")
        row = cur.fetchone()
        assert row is not None
        out.append(int(row[0]))
    return out


def wait_until(cond: Callable[[], bool], timeout: float) -> float:
    """Wait until *cond()* holds; the seconds it took. AssertionError after *timeout*."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.02)
    return time.monotonic() - start
