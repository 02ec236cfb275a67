"""What a flow asks of its edge: the I/O of one facade connection, as one small interface.

The statement's path (route, connect and fail over, replay session state, check a GTID,
run, learn, recover, move an optimistic transaction, commit) is written once, as coroutines
that do every I/O through a ``Port``: msplugin.sync_port does it with PyMySQL's blocking
calls, msplugin.aio with aiomysql's awaits. The sync edge's port never suspends, so
``run_sync`` completes a flow in one step, with no event loop: the same code serves both
facades, as psycopg's generators serve its sync and async connections.

Driver connections and cursors are opaque to the flows (``Any``): they only pass them back
to the port, and read the reply facts both drivers keep alike (msplugin.driver).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from msplugin.backends import Backend
    from msplugin.config import PoolingConfig
    from msplugin.core import ConnectionCore
    from msplugin.router import Router

__all__ = ["FacadeCursor", "Flow", "Port", "run_sync", "run_void"]

_T = TypeVar("_T")
Flow = Coroutine[Any, Any, _T]


class Port(Protocol):
    """The I/O an edge does for the flows (see the module). Every method that may wait on a
    server is a coroutine function; the sync edge's never suspend."""

    async def connect(
        self,
        params: dict[str, Any],
        pooling: PoolingConfig | None,
        info: str,
        before_wait: Callable[[], None] | None,
    ) -> tuple[Any, Any]:
        """Open a driver connection with *params*, or borrow one from the edge's pool for
        them: (connection, the pool it came from or None)."""
        ...

    def release(self, conn: Any, pool: Any, *, broken: bool) -> None:
        """Give *conn* back to *pool*, or close it (no waiting: a COM_QUIT at most)."""
        ...

    def peer_closed(self, conn: Any) -> bool:
        """True if the server already closed *conn*: a command sent now would be lost
        (one check, no read)."""
        ...

    def cursor(self, conn: Any, cursorclass: Any) -> Any:
        """A driver cursor of *cursorclass* on *conn* (no I/O)."""
        ...

    def empty_result(self, cursorclass: Any, sql: str) -> Any:
        """A cursor of *cursorclass* on no connection showing the OK result of *sql*
        (a statement msplugin answered without sending it)."""
        ...

    def execute(self, cur: Any, sql: str, args: Any) -> Awaitable[int]:
        """Run *sql* on driver cursor *cur*: awaitable, the affected rows."""
        ...

    async def executemany(self, cur: Any, sql: str, args: Any) -> int | None: ...

    async def callproc(self, cur: Any, name: str, args: Any) -> Any: ...

    async def fetchone(self, cur: Any) -> Any: ...

    async def fetchall(self, cur: Any) -> Any: ...

    async def nextset(self, cur: Any) -> bool | None: ...

    async def query(self, conn: Any, sql: str) -> Any:
        """Run msplugin's own statement *sql* on *conn*: its first row, None without one."""
        ...

    async def commit(self, conn: Any) -> None: ...

    async def rollback(self, conn: Any) -> None: ...

    async def ping(self, conn: Any) -> None: ...

    async def call(self, conn: Any, method: str, *args: Any) -> None:
        """An API setting on *conn* (autocommit, select_db, set_character_set, query)."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    async def max_allowed_packet(self, params: dict[str, Any]) -> int | None:
        """The server's max_allowed_packet, asked on a connection of its own (failure paths)."""
        ...

    async def blocking(self, call: Callable[[], object]) -> None:
        """Run *call*, which may block (the monitors' first checks, a wait for a master):
        in a worker thread on an event loop."""
        ...


class FacadeCursor(Protocol):
    """What the statement flows use of a facade cursor, sync or async: its connection's
    router and core, its driver cursor per backend, and the one whose result it shows."""

    _router: Router
    _core: ConnectionCore
    _current: Any
    _cursorclass: Any
    _unbuffered: bool

    def _cursor_for(self, backend: Backend) -> Any: ...


def run_void(flow: Flow[None]) -> None:
    """run_sync() for a flow that returns None, iterated to its end: CPython then raises no
    StopIteration to catch, which saves most of run_sync()'s cost (commit() runs this)."""
    for _ in flow.__await__():
        flow.close()
        raise RuntimeError("a flow suspended on the sync edge: its port awaited something")


def run_sync(flow: Flow[_T]) -> _T:
    """Complete *flow* on the sync edge: its port never suspends, so one step finishes it."""
    try:
        flow.send(None)
    except StopIteration as done:
        result: _T = done.value
        return result
    flow.close()
    raise RuntimeError("a flow suspended on the sync edge: its port awaited something")
