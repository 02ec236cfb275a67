"""One server of a group: a lazily opened PyMySQL connection, its identity and its parameters."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pymysql
from pymysql.constants import CLIENT, SERVER_STATUS

from msplugin import driver
from msplugin.config import PoolingConfig, ServerConfig
from msplugin.pool import Pool, get_pool

__all__ = ["Backend", "ServerInfo", "connections_in_use"]

logger = logging.getLogger("msplugin.backends")

_IN_TRANS = SERVER_STATUS.SERVER_STATUS_IN_TRANS

Address = driver.Address
# Backend connections held by facade connections of this process, per server (pooled or not):
# what the least_connections filter compares.
_in_use: dict[Address, int] = {}
_in_use_lock = threading.Lock()


def connections_in_use(address: Address) -> int:
    """Backend connections to *address* that facade connections of this process hold now."""
    return _in_use.get(address, 0)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Which server ran a statement: what ``Connection.last_used`` returns."""

    role: str
    name: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.name} ({self.role}, {self.host}:{self.port})"


class Backend:
    """A server and, once used, the one PyMySQL connection the facade holds to it."""

    __slots__ = (
        "address",
        "conn",
        "dirty",
        "flavor",
        "info",
        "multi_statements",
        "name",
        "pool",
        "role",
        "server",
    )

    def __init__(self, server: ServerConfig) -> None:
        self.server = server
        self.name = server.name
        self.role = server.role
        self.info = ServerInfo(server.role, server.name, server.host, server.port)
        # The quarantine's key: the server, whoever connects to it.
        self.address: Address = (server.host, server.port, server.socket or "")
        self.pool: Pool | None = None  # the pool the connection was borrowed from
        self.conn: pymysql.connections.Connection[Any] | None = None
        # Ran a statement since the last commit/rollback (matters with autocommit off).
        self.dirty = False
        self.flavor = "mariadb"  # or "mysql": decides the GTID functions; known once connected
        self.multi_statements = False  # opened with CLIENT.MULTI_STATEMENTS by msplugin

    def __repr__(self) -> str:
        state = "open" if self.conn is not None else "not connected"
        return f"<Backend {self.name} {self.role} {self.info.host}:{self.info.port} {state}>"

    def params(self, defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
        """PyMySQL connect() keywords: *defaults*, then this server's keys, then *overrides*.

        *defaults* are connect()'s arguments; *overrides* is the API-level state (autocommit,
        select_db, character set) that wins over per-server keys.
        """
        s = self.server
        params: dict[str, Any] = dict(defaults)
        params["host"] = s.host
        # Always given, so that nothing (an option file's [client] port) can point it elsewhere.
        params["port"] = s.port
        if s.socket is not None:
            params["unix_socket"] = s.socket
        for key, value in (("user", s.user), ("password", s.password), ("database", s.db)):
            if value is not None:
                params[key] = value
        if s.connect_timeout is not None:
            params["connect_timeout"] = s.connect_timeout
        params.update(s.options)
        params.update(overrides)
        return params

    def connect(
        self,
        defaults: Mapping[str, Any],
        overrides: Mapping[str, Any],
        *,
        flags: int = 0,
        pooling: PoolingConfig | None = None,
        before_wait: Callable[[], None] | None = None,
    ) -> pymysql.connections.Connection[Any]:
        """Open the connection, adding client capability *flags* to the configured ones, or
        borrow one from the process's pool for these options when *pooling* is enabled."""
        params = self.params(defaults, overrides)
        if flags:
            params["client_flag"] = params.get("client_flag", 0) | flags
        if pooling is not None and pooling.enabled:
            pool = get_pool(params, pooling, str(self.info))
            conn = pool.checkout(before_wait)
            self.pool = pool
        else:
            conn = driver.connect(**params)
            self.pool = None
        self.conn = conn
        with _in_use_lock:
            _in_use[self.address] = _in_use.get(self.address, 0) + 1
        version = str(conn.get_server_info())  # type: ignore[no-untyped-call]
        self.flavor = "mariadb" if "MariaDB" in version else "mysql"
        self.multi_statements = bool(flags & CLIENT.MULTI_STATEMENTS)
        logger.debug("connected to %s%s", self.info, " (pooled)" if self.pool else "")
        return conn

    @property
    def opened_at(self) -> float:
        """When the server connection was opened (monotonic; 0 when not connected)."""
        conn = self.conn
        return getattr(conn, "opened_at", 0.0) if conn is not None else 0.0

    @property
    def status(self) -> int:
        """The server status flags of the last reply (0 when not connected)."""
        conn = self.conn
        # server_status is set by PyMySQL from every OK/EOF packet; the stubs omit it.
        return conn.server_status if conn is not None else 0  # type: ignore[attr-defined]

    @property
    def in_transaction(self) -> bool:
        """The server said a transaction is open (status flag of the last reply)."""
        return bool(self.status & _IN_TRANS)

    def close(self, *, broken: bool = False) -> None:
        """Close the connection, or give it back to its pool (which resets it or, if
        *broken*, discards it)."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        with _in_use_lock:
            _in_use[self.address] -= 1
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.checkin(conn, broken=broken)
            return
        if conn.open:
            try:
                conn.close()
            except pymysql.err.Error:
                # The socket is gone either way; a failed COM_QUIT must not hide other work.
                logger.debug("error while closing %s", self.info, exc_info=True)
