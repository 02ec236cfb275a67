"""Helpers shared by the live tests: which server answered."""

from __future__ import annotations

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
