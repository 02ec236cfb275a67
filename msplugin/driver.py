"""PyMySQL connections as msplugin opens them: the one module that reads PyMySQL's internals.

Three things PyMySQL does not do, done here for every connection msplugin opens (backends,
pools, probes, monitors):

- ``connect_timeout`` bounds the **whole** connect: TCP, the server's greeting, authentication
  and PyMySQL's set-up statements. PyMySQL applies it to the TCP connect only, and the kernel
  completes the TCP handshake of a stopped (SIGSTOP) server, whose greeting then never comes.
- Every connection is registered under its server, so that once a server is found hung or dead
  every connection of the process to it can be interrupted at once (``interrupt``): a
  statement blocked on it fails now instead of when the server resumes.
- What a failure says about the statement: ``not_sent`` is true only when PyMySQL failed
  before the whole command reached the socket, so the server cannot have run it.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

import pymysql
from pymysql import err

__all__ = [
    "Address",
    "Connection",
    "address_of",
    "application_connections",
    "connect",
    "connections_in_use",
    "held",
    "interrupt",
    "max_allowed_packet",
    "not_sent",
    "peer_closed",
    "register_driver",
    "result_facts",
    "warnings_of",
]

Address = tuple[str, int, str]  # host, port, socket: a server, whoever connects to it

CR_SERVER_GONE_ERROR: Final = 2006  # PyMySQL raises it only when writing to the socket failed
CR_SERVER_LOST: Final = 2013

if TYPE_CHECKING:
    _Base = pymysql.connections.Connection[Any]
else:
    _Base = pymysql.connections.Connection
_PLAIN: Any = pymysql.connections.Connection  # PyMySQL's own methods, beneath the overrides

# max_allowed_packet per server, learnt on failure paths only, kept this many seconds.
PACKET_LIMIT_TTL: Final = 60.0
_packet_limits: dict[Address, tuple[float, int]] = {}

# Backend connections held by facade connections of this process, per server (pooled or not):
# what the least_connections filter compares.
_held: dict[Address, int] = {}
_held_lock = threading.Lock()

_registry_lock = threading.Lock()

_registry: dict[Address, weakref.WeakSet[Connection]] = {}


class Connection(_Base):
    """A PyMySQL connection whose connect is bounded by ``connect_timeout`` as a whole."""

    opened_at = 0.0  # monotonic time the last connect() succeeded
    internal = False  # opened by msplugin's own monitors and probes, not for the application
    poller: tuple[Any, select.poll] | None = None  # peer_closed()'s, for the current socket
    _deadline: float | None = None
    # What PyMySQL has and its stubs leave out: the status bits of the last OK or EOF packet
    # (what learning reads), the last result (its OK packet's tail holds the session-state
    # block), and the private parts this module and the pool use.
    server_status: int
    _result: Any
    _execute_command: Callable[[int, bytes], None]
    _read_ok_packet: Callable[[], Any]
    _sock: Any
    _read_timeout: float | None
    _write_timeout: float | None
    _current_timeout: float | None

    def connect(self, sock: Any = None) -> None:
        limit = self.connect_timeout
        saved = self._read_timeout, self._write_timeout
        if limit:
            # Instance attributes shadow the methods during the connect only: the statement
            # path afterwards runs PyMySQL's own methods, at no cost.
            self._deadline = time.monotonic() + limit
            self._read_bytes = self._read_bytes_by_deadline
            self._write_bytes = self._write_bytes_by_deadline
        try:
            super().connect(sock)
        except err.OperationalError as exc:
            if self._deadline is not None and time.monotonic() >= self._deadline:
                raise err.OperationalError(
                    CR_SERVER_LOST,
                    f"Can't connect to MySQL server on {self.host!r}: no answer within "
                    f"connect_timeout {limit:g} s (the server accepts TCP connections but does "
                    "not complete the handshake: hung or overloaded)",
                ) from exc
            raise
        finally:
            self._deadline = None
            self.__dict__.pop("_read_bytes", None)
            self.__dict__.pop("_write_bytes", None)
            self._read_timeout, self._write_timeout = saved
        self.opened_at = time.monotonic()
        key = address_of(self)
        with _registry_lock:
            _registry.setdefault(key, weakref.WeakSet()).add(self)

    def _arm(self) -> None:
        assert self._deadline is not None
        left = max(self._deadline - time.monotonic(), 0.001)
        self._read_timeout = self._write_timeout = left
        if self._sock is not None:
            self._sock.settimeout(left)
        self._current_timeout = left

    def _read_bytes_by_deadline(self, num_bytes: int) -> bytes:
        self._arm()
        data: bytes = _PLAIN._read_bytes(self, num_bytes)
        return data

    def _write_bytes_by_deadline(self, data: bytes) -> None:
        self._arm()
        _PLAIN._write_bytes(self, data)


def connect(
    *,
    internal: bool = False,
    connect_factory: Callable[..., Any] | None = None,
    **params: Any,
) -> Connection:
    """Open a connection with PyMySQL's ``connect()`` keywords (see ``Connection``).

    *internal*: msplugin's own monitoring connection, not counted as the application's.
    *connect_factory*: what opens it instead (``msplugin.connect(connect_factory=)``): it
    takes the same keywords and returns a PyMySQL-compatible connection, which msplugin uses
    as it is (no whole-connect deadline, not interrupted when its server is quarantined).
    """
    if connect_factory is not None:
        # Duck-typed: a PyMySQL connection, or a test's fake driver (tests/fakes.py).
        return cast(Connection, connect_factory(**params))
    conn = Connection(defer_connect=True, **params)
    conn.internal = internal
    conn.connect()
    return conn


def held(address: Address, change: int) -> None:
    """A facade connection took (+1) or gave back (-1) a connection to *address*."""
    with _held_lock:
        _held[address] = _held.get(address, 0) + change


def connections_in_use(address: Address) -> int:
    """Backend connections to *address* that facade connections of this process hold now."""
    return _held.get(address, 0)


def address_of(conn: Any) -> Address:
    """The server *conn* is connected to, as the quarantine names it."""
    return (conn.host, conn.port, conn.unix_socket or "")


def interrupt(address: Address) -> int:
    """Shut down the socket of every connection of the process to *address*; return how many.

    A statement blocked on one of them fails at once (PyMySQL: error 2013); the next command
    on an idle one fails before anything is sent (error 2006). Either way the connection is
    then closed by its owner.
    """
    with _registry_lock:
        conns = list(_registry.get(address, ()))
    n = 0
    for conn in conns:
        sock = conn._sock
        if sock is None:
            continue
        with contextlib.suppress(OSError):
            # The plain socket's shutdown, also for TLS: no TLS alert to a hung server.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
            n += 1
    return n + sum(other.interrupt(address) for other in _other_drivers)


def application_connections(address: Address) -> int:
    """Open connections to *address* that this process holds for the application."""
    with _registry_lock:
        conns = list(_registry.get(address, ()))
    return sum(1 for c in conns if c._sock is not None and not c.internal) + sum(
        other.count(address) for other in _other_drivers
    )


class OtherDriver(Protocol):
    """Another driver's connections of the process (msplugin.aio's), for the quarantine."""

    def count(self, address: Address) -> int:
        """Its open application connections to *address*."""
        ...

    def interrupt(self, address: Address) -> int:
        """Break its connections to *address* (from any thread); how many."""
        ...


_other_drivers: list[OtherDriver] = []


def register_driver(other: OtherDriver) -> None:
    """Have interrupt() and application_connections() cover *other*'s connections too."""
    _other_drivers.append(other)


def not_sent(exc: BaseException) -> bool:
    """True if *exc* shows the command never fully reached the server, so it did not run.

    PyMySQL raises InterfaceError(0, '') for a socket it had already closed, and 2006 ("MySQL
    server has gone away") only when writing to the socket failed; a server executes a
    command only once the whole of it has arrived. Every other failure (2013, a timeout while
    waiting for the reply) may come after the server ran it.
    """
    if isinstance(exc, err.InterfaceError):
        return True
    return (
        isinstance(exc, err.OperationalError)
        and bool(exc.args)
        and exc.args[0] == CR_SERVER_GONE_ERROR
    )


def peer_closed(conn: Any) -> bool:
    """True if the server already closed *conn* (or spoke unasked, which it does only before
    closing it): sending it a command would be lost. One poll() call, no read."""
    sock = conn._sock
    if sock is None:
        return True
    try:
        # One poll object per socket, made at the first check: commit() asks on every call.
        cached = conn.poller if type(conn) is Connection else None
        if cached is None or cached[0] is not sock:
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
            cached = (sock, poller)
            if type(conn) is Connection:
                conn.poller = cached
        return bool(cached[1].poll(0))
    except (OSError, ValueError):
        return True


def result_facts(cur: Any) -> tuple[Any, Any, int, int | None, int]:
    """What a buffered cursor's last result is made of: description, rows (PyMySQL's own
    buffer, read before the application fetches any), affected rows, insert id, warnings;
    in msplugin.optimistic.outcome()'s order, so it is one (optimistic transactions keep it).

    Rows come as a tuple of tuples whatever the cursor class (DictCursor keeps a list of
    dicts), so one result read through two cursor classes gives the same facts."""
    rows = cur._rows
    if rows and type(rows[0]) is not tuple:
        rows = tuple(tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in rows)
    elif type(rows) is list:
        rows = tuple(rows)
    count = getattr(cur, "warning_count", None)  # warnings_of(), inlined
    if count is None:
        count = warnings_of(cur)
    return cur.description, rows, cur.rowcount, cur.lastrowid, count


def warnings_of(cur: Any) -> int:
    """The warning count of *cur*'s last result (aiomysql keeps it on the result only)."""
    count = getattr(cur, "warning_count", None)
    if count is None:
        result = cur._result
        count = result.warning_count if result is not None else 0
    return int(count)


def max_allowed_packet(params: dict[str, Any]) -> int | None:
    """The server's max_allowed_packet, asked on a connection of its own (None if it cannot
    be asked). For failure paths: a statement the server dropped the connection for."""
    key: Address = (
        params.get("host") or "localhost",
        int(params.get("port") or 3306),
        params.get("unix_socket") or "",
    )
    hit = _packet_limits.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < PACKET_LIMIT_TTL:
        return hit[1]
    own = dict(params)
    timeout = min(float(own.get("connect_timeout") or 10), 5.0)
    own.update(connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout)
    try:
        conn = connect(internal=True, **own)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@global.max_allowed_packet")
                row = cur.fetchone()
        finally:
            conn.close()
    except err.MySQLError:
        return None
    if not row:
        return None
    _packet_limits[key] = (now, int(row[0]))
    return int(row[0])
