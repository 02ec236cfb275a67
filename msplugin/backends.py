"""One server of a group: a lazily opened PyMySQL connection, its identity and its parameters."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pymysql
from pymysql.constants import SERVER_STATUS

from msplugin.config import ServerConfig

__all__ = ["Backend", "ServerInfo"]

logger = logging.getLogger("msplugin.backends")

_IN_TRANS = SERVER_STATUS.SERVER_STATUS_IN_TRANS


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Which server ran a statement: what ``Connection.last_used`` returns."""

    role: str
    name: str
    host: str
    port: int | None

    def __str__(self) -> str:
        return f"{self.name} ({self.role}, {self.host}:{self.port or 3306})"


class Backend:
    """A server and, once used, the one PyMySQL connection the facade holds to it."""

    __slots__ = ("conn", "dirty", "info", "name", "role", "server")

    def __init__(self, server: ServerConfig) -> None:
        self.server = server
        self.name = server.name
        self.role = server.role
        self.info = ServerInfo(server.role, server.name, server.host, server.port)
        self.conn: pymysql.connections.Connection[Any] | None = None
        # Ran a statement since the last commit/rollback (matters with autocommit off).
        self.dirty = False

    def __repr__(self) -> str:
        state = "open" if self.conn is not None else "not connected"
        return (
            f"<Backend {self.name} {self.role} {self.info.host}:{self.info.port or 3306} {state}>"
        )

    def connect(
        self, defaults: Mapping[str, Any], overrides: Mapping[str, Any]
    ) -> pymysql.connections.Connection[Any]:
        """Open the connection.

        *defaults* are connect() arguments that per-server keys override; *overrides* is the
        API-level state (autocommit, select_db, character set) that overrides them in turn.
        """
        s = self.server
        params: dict[str, Any] = dict(defaults)
        params["host"] = s.host
        if s.port is not None:
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
        self.conn = pymysql.connect(**params)
        logger.info("connected to %s", self.info)
        return self.conn

    @property
    def in_transaction(self) -> bool:
        """The server said a transaction is open (status flag of the last reply)."""
        conn = self.conn
        # server_status is set by PyMySQL from every OK/EOF packet; the stubs omit it.
        return conn is not None and bool(conn.server_status & _IN_TRANS)  # type: ignore[attr-defined]

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None and conn.open:
            try:
                conn.close()
            except pymysql.err.Error:
                # The socket is gone either way; a failed COM_QUIT must not hide other work.
                logger.debug("error while closing %s", self.info, exc_info=True)
