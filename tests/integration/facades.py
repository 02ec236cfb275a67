"""One test body for both facades: msplugin.connect() and msplugin.aio.connect().

``Facade`` opens a facade connection of either kind and gives the tests one blocking
surface over it: for the async facade every call is awaited on an event loop the wrapper
owns (as psycopg's pool tests run one suite over two pool classes). The wrapper adds no
behaviour: each method is one call of the facade's own API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import aiomysql
import pymysql

import msplugin
import msplugin.aio

_T = TypeVar("_T")

KINDS = ("sync", "async")


class Facade:
    """A facade connection of *kind* ("sync" or "async"), driven with blocking calls."""

    def __init__(
        self,
        kind: str,
        group: str = "sandbox",
        loop: asyncio.AbstractEventLoop | None = None,
        **kwargs: Any,
    ) -> None:
        self.kind = kind
        self._args = (group, kwargs)
        self._own_loop = loop is None
        self.loop = loop or asyncio.new_event_loop() if kind == "async" else None
        if self.loop is None:
            self.conn: Any = msplugin.connect(group, **kwargs)
        else:
            self.conn = self.run(msplugin.aio.connect(group, **kwargs))
        self.cur = self.cursor()

    def run(self, result: Awaitable[_T] | _T) -> _T:
        """The value of one facade call: awaited on the wrapper's loop for the async kind."""
        if self.loop is None:
            return result  # type: ignore[return-value]
        return self.loop.run_until_complete(result)  # type: ignore[arg-type]

    def cursor(self, dict_rows: bool = False) -> Any:
        if self.loop is None:
            return self.conn.cursor(pymysql.cursors.DictCursor if dict_rows else None)
        return self.conn.cursor(aiomysql.DictCursor if dict_rows else None)

    # The cursor: execute and fetch on self.cur (or a cursor of self.cursor()).
    def execute(self, sql: str, args: Any = None, cur: Any = None) -> int:
        return int(self.run((cur or self.cur).execute(sql, args)))

    def executemany(self, sql: str, args: Any) -> int | None:
        return self.run(self.cur.executemany(sql, args))

    def fetchone(self, cur: Any = None) -> Any:
        return self.run((cur or self.cur).fetchone())

    def fetchmany(self, n: int) -> Any:
        return self.run(self.cur.fetchmany(n))

    def fetchall(self, cur: Any = None) -> Any:
        return self.run((cur or self.cur).fetchall())

    def nextset(self) -> Any:
        return self.run(self.cur.nextset())

    def scalar(self, sql: str, args: Any = None) -> Any:
        self.execute(sql, args)
        row = self.fetchone()
        assert row is not None, sql
        return row[0]

    # The connection's API.
    def commit(self) -> None:
        self.run(self.conn.commit())

    def rollback(self) -> None:
        self.run(self.conn.rollback())

    def begin(self, read_only: bool = False) -> None:
        self.run(self.conn.begin(read_only))

    def autocommit(self, value: bool) -> None:
        self.run(self.conn.autocommit(value))

    def select_db(self, db: str) -> None:
        self.run(self.conn.select_db(db))

    def set_qos(self, level: str, **kwargs: Any) -> None:
        self.run(self.conn.set_qos(level, **kwargs))

    def set_session_state(self, mode: str) -> None:
        self.run(self.conn.set_session_state(mode))

    def ping(self) -> None:
        self.run(self.conn.ping())

    @property
    def role(self) -> str | None:
        last = self.conn.last_used
        return None if last is None else str(last.role)

    @property
    def server(self) -> str | None:
        last = self.conn.last_used
        return None if last is None else str(last.name)

    def another(self) -> Facade:
        """A second facade connection of the same kind and options, on the same loop."""
        group, kwargs = self._args
        return Facade(self.kind, group, loop=self.loop, **kwargs)

    def close_connection(self) -> None:
        """Close the facade connection (its pooled sessions go back, reset)."""
        if self.loop is None:
            if self.conn.open:
                self.conn.close()
        elif not self.conn.closed:
            self.run(self.conn.ensure_closed())

    def close(self) -> None:
        self.close_connection()
        if self.loop is not None and self._own_loop and not self.loop.is_closed():
            # This loop's pools go with it (aiomysql connections belong to their loop).
            self.run(msplugin.aio.close_pools())
            self.loop.close()

    def __enter__(self) -> Facade:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
