"""Helpers shared by the live tests: which server answered."""

from __future__ import annotations

import msplugin

PRIMARY = 1  # @@server_id of the sandbox primary
REPLICAS = {2, 3}


def server_id(conn: msplugin.Connection, sql: str = "SELECT @@server_id") -> int:
    """Run *sql* (which selects @@server_id first) and return the id of the server that ran it."""
    cur = conn.cursor()
    cur.execute(sql)
    row = cur.fetchone()
    assert row is not None
    return int(row[0])
