"""PyMySQL's Connection API beyond PEP 249, for code written for PyMySQL: which server
answers for "the" connection, and escaping for the master's session."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from pymysql.charset import charset_by_name
from pymysql.constants import SERVER_STATUS
from pymysql.converters import escape_item, escape_string

if TYPE_CHECKING:
    from msplugin.backends import Backends
    from msplugin.router import Router

__all__ = ["PyMySQLSurface"]

_NO_BACKSLASH_ESCAPES: Final = SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES


class PyMySQLSurface:
    """PyMySQL's extras, mixed into msplugin.Connection. The server that ran the last
    statement answers for the session (insert_id, thread_id, ...); the master for the
    server (version, protocol) and for escaping."""

    _router: Router
    _backends: Backends
    _encoders: dict[Any, Any]

    def _check_open(self) -> None:
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
        return self._backends.master().conn

    def _master_conn(self) -> Any:
        self._check_open()
        return self._backends.master().conn

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
        return self.get_host_info()

    def get_server_info(self) -> str:
        """The master's server version string (the master is connected if need be)."""
        return str(self._master_conn().get_server_info())

    @property
    def server_version(self) -> str:
        return self.get_server_info()

    def get_proto_info(self) -> int:
        """The protocol version of the master's connection."""
        return int(self._master_conn().get_proto_info())

    @property
    def encoding(self) -> str:
        """The Python codec of the connection character set."""
        return str(charset_by_name(self.character_set_name()).encoding)

    @property
    def encoders(self) -> dict[Any, Any]:
        """PyMySQL's escaping table (type -> function) used by escape() and mogrify()."""
        return self._encoders

    def escape(self, obj: Any, mapping: Mapping[Any, Any] | None = None) -> str:
        """Escape *obj* as an SQL literal, as PyMySQL's Connection.escape() does, for the
        master's session (its NO_BACKSLASH_ESCAPES mode) once it is connected."""
        if isinstance(obj, str):
            return f"'{self.escape_string(obj)}'"
        if isinstance(obj, bytes | bytearray):
            return f"X'{obj.hex()}'"
        if type(obj) in (tuple, list, set, frozenset):
            return "(" + ",".join([self.escape(item, mapping) for item in obj]) + ")"
        return str(escape_item(obj, self.encoding, mapping=mapping or self._encoders))

    def escape_string(self, s: str) -> str:
        """Escape the text of a string literal (without its quotes)."""
        master = self._backends.master_backend
        if master is not None and master.status & _NO_BACKSLASH_ESCAPES:
            return s.replace("'", "''")
        return str(escape_string(s))

    def literal(self, obj: Any) -> str:
        """Deprecated PyMySQL alias of escape()."""
        warnings.warn(
            "literal() is deprecated and will be removed in the next version.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.escape(obj)
