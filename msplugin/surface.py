"""PyMySQL's Connection API beyond PEP 249, for code written for PyMySQL: which server
answers for "the" connection, escaping for the master's session, ping() and connect()."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pymysql import err

from msplugin import sessions
from msplugin.port import run_sync

if TYPE_CHECKING:
    from msplugin.backends import Backends
    from msplugin.config import GroupConfig
    from msplugin.core import ConnectionCore
    from msplugin.router import Router

__all__ = ["PyMySQLSurface"]

logger = logging.getLogger("msplugin.connection")


class PyMySQLSurface:
    """PyMySQL's extras, mixed into msplugin.Connection. The server that ran the last
    statement answers for the session (insert_id, thread_id, ...); the master for the
    server (version, protocol) and for escaping."""

    _router: Router
    _backends: Backends
    _encoders: dict[Any, Any]

    group: GroupConfig
    _core: ConnectionCore

    def _check_open(self) -> None:
        raise NotImplementedError

    def _enter(self) -> None:
        raise NotImplementedError

    def _leave(self) -> None:
        raise NotImplementedError

    async def _connect_all(self) -> None:
        raise NotImplementedError

    def character_set_name(self) -> str:
        raise NotImplementedError

    def insert_id(self) -> int:
        """The last insert id of the backend that ran the previous statement (0 before any)."""
        last = self._router.last_used
        return int(last.conn.insert_id()) if last is not None and last.conn is not None else 0  # type: ignore[no-untyped-call]

    def _answering(self) -> Any:
        """The PyMySQL connection that answers for "the" server: the one that ran the last
        statement, else the master (connected if need be)."""
        self._check_open()
        last = self._router.last_used
        if last is not None and last.conn is not None:
            return last.conn
        return run_sync(self._backends.master()).conn

    def _master_conn(self) -> Any:
        self._check_open()
        return run_sync(self._backends.master()).conn

    def affected_rows(self) -> int:
        """Rows the last statement changed, on the server that ran it (0 before any)."""
        last = self._router.last_used
        return int(last.conn.affected_rows()) if last is not None and last.conn is not None else 0  # type: ignore[no-untyped-call]

    def thread_id(self) -> int:
        """The server thread id of the session that ran the last statement (else the
        master's)."""
        return int(self._answering().thread_id())

    def get_host_info(self) -> str:
        """How the server that ran the last statement (else the master) is reached."""
        return str(self._answering().get_host_info())

    @property
    def host_info(self) -> str:
        """PyMySQL's attribute: get_host_info()."""
        return self.get_host_info()

    def get_server_info(self) -> str:
        """The master's server version string (the master is connected if need be)."""
        return str(self._master_conn().get_server_info())

    @property
    def server_version(self) -> str:
        """PyMySQL's attribute: get_server_info()."""
        return self.get_server_info()

    def get_proto_info(self) -> int:
        """The protocol version of the master's connection."""
        return int(self._master_conn().get_proto_info())

    def ping(self, reconnect: bool = False) -> None:
        """Check that the servers answer (PyMySQL's ping()).

        Every open backend is pinged; one that does not answer is dropped (reconnected when a
        statement needs it). With none open, the master is connected. *reconnect*: a closed
        connection is opened again, and a lost backend is not an error; without it a closed
        connection raises Error("Already closed") and a lost backend OperationalError.
        """
        if self._core.closed:
            if not reconnect:
                raise err.Error("Already closed")
            self.connect()
            return
        self._enter()
        try:
            self._ping(reconnect)
        finally:
            self._leave()

    def _ping(self, reconnect: bool) -> None:
        run_sync(sessions.ping(self._router, reconnect))

    def connect(self) -> None:
        """Open the connection again after close(), or connect now (PyMySQL's connect()).

        The master is connected, and with lazy_connections false every slave as well.
        """
        if self._core.closed:
            self._core.reopened()  # new sessions: nothing of the old ones is left
            logger.info("facade connection for group %r opened again", self.group.name)
        self._enter()
        try:
            if self.group.lazy_connections:
                run_sync(self._backends.master())
            else:
                run_sync(self._connect_all())
        finally:
            self._leave()
