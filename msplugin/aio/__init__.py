"""msplugin for asyncio: ``await msplugin.aio.connect("group")`` opens an async facade
connection over aiomysql (extra ``msplugin[asyncio]``), routed by the same core and the same
flows as msplugin.connect() (MANUAL 23).

    conn = await msplugin.aio.connect("myapp", config="msplugin.json")
    async with conn.cursor() as cur:
        await cur.execute("SELECT id FROM t WHERE id = %s", (1,))   # a replica
        row = await cur.fetchone()
"""

from __future__ import annotations

from msplugin.aio.connection import Connection, connect
from msplugin.aio.cursor import Cursor
from msplugin.aio.pool import close_pools

__all__ = ["Connection", "Cursor", "close_pools", "connect"]
