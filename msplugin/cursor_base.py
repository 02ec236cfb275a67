"""What the sync and the async facade cursors share: their state (a driver cursor per
backend, and the one whose result they show), the result attributes PEP 249 names, and
mogrify(). The statement flows (msplugin.statement) use this state through
msplugin.port.FacadeCursor; each facade adds execute() and fetch*() in its own I/O."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from pymysql import err

from msplugin.driver import warnings_of

if TYPE_CHECKING:
    from msplugin.backends import Backend
    from msplugin.facade import FacadeBase

__all__ = ["CursorBase"]


class CursorBase:
    """A facade cursor's state and result attributes (see the module)."""

    def __init__(self, connection: FacadeBase, cursorclass: Any, unbuffered: bool) -> None:
        self.connection = connection
        self._router = connection._router
        self._core = connection._router.core
        self._port = connection._router.port
        self._cursorclass = cursorclass
        self._cursors: dict[str, Any] = {}  # the driver cursor per backend
        self._current: Any = None  # the driver cursor whose result this cursor shows
        self._closed = False
        # Rows of an unbuffered cursor are read from the socket by fetch*(): they take the
        # connection's token like execute().
        self._unbuffered = unbuffered
        self.arraysize = 1

    def __repr__(self) -> str:
        name = type(self).__module__.replace(".cursor", "").replace(".connection", "")
        return f"<{name}.Cursor {self._cursorclass.__name__} on {self.connection!r}>"

    def _cursor_for(self, backend: Backend) -> Any:
        """The driver cursor that runs this cursor's statements on *backend*."""
        if self._closed:
            raise err.ProgrammingError("Cursor closed")
        cur = self._cursors.get(backend.name)
        if cur is None or cur.connection is not backend.conn:
            assert backend.conn is not None
            cur = self._port.cursor(backend.conn, self._cursorclass)
            cur.arraysize = self.arraysize
            self._cursors[backend.name] = cur
        return cur

    def mogrify(self, query: str, args: Any = None) -> str:
        """Return *query* with *args* interpolated, as execute() would send it (PyMySQL's
        extension of PEP 249). Escaping follows the master's session, or PyMySQL's defaults
        before any server is connected."""
        if args is None:
            return query
        escape = self.connection.escape
        if isinstance(args, dict):
            escaped: Any = {key: escape(item) for key, item in args.items()}
        elif isinstance(args, list | tuple):
            escaped = tuple(map(escape, args))
        else:
            warnings.warn(
                "single argument is deprecated and will be removed in the next version.",
                DeprecationWarning,
                stacklevel=2,
            )
            escaped = escape(args)
        try:
            return str(query % escaped)
        except TypeError as exc:
            raise err.ProgrammingError(str(exc)) from exc

    def _result(self) -> Any:
        cur = self._current
        if cur is None:
            raise err.ProgrammingError("execute() first")
        return cur

    @property
    def description(self) -> Any:
        """Column descriptions of the last result, None without one (PEP 249 .description:
        https://peps.python.org/pep-0249/#cursor-objects)."""
        return self._current.description if self._current is not None else None

    @property
    def rowcount(self) -> int:
        """Rows the last statement returned or changed; -1 before any (PEP 249 .rowcount:
        https://peps.python.org/pep-0249/#cursor-objects)."""
        return self._current.rowcount if self._current is not None else -1

    @property
    def lastrowid(self) -> int | None:
        """The AUTO_INCREMENT id of the last inserted row (PEP 249 extension .lastrowid:
        https://peps.python.org/pep-0249/#optional-db-api-extensions)."""
        return self._current.lastrowid if self._current is not None else None

    @property
    def rownumber(self) -> int:
        """Index of the next row in the result set (PEP 249 extension .rownumber:
        https://peps.python.org/pep-0249/#optional-db-api-extensions)."""
        return self._current.rownumber if self._current is not None else 0

    @property
    def warning_count(self) -> int:
        """Warnings of the last statement (PyMySQL's cursor attribute); 0 before any."""
        return warnings_of(self._current) if self._current is not None else 0

    @property
    def _executed(self) -> str | None:
        """The last statement as sent, arguments interpolated (PyMySQL's attribute; Django's
        ``last_executed_query`` reads it)."""
        return self._current._executed if self._current is not None else None

    def setinputsizes(self, *args: Any) -> None:
        """Does nothing, as PEP 249 allows (.setinputsizes():
        https://peps.python.org/pep-0249/#cursor-objects)."""

    def setoutputsize(self, *args: Any) -> None:
        """Does nothing, as PEP 249 allows (.setoutputsize():
        https://peps.python.org/pep-0249/#cursor-objects)."""
