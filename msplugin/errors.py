"""msplugin's exceptions: PyMySQL's PEP 249 tree, plus msplugin's own subclasses.

msplugin's errors subclass the fitting DB-API class, so ``except pymysql.err.OperationalError``
keeps catching them. Errors raised by a server while running a statement are PyMySQL's own and
pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Final

from pymysql.err import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    MySQLError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
)

__all__ = [
    "ConfigError",
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "MySQLError",
    "NoBackendAvailable",
    "NotSupportedError",
    "OperationalError",
    "OptimisticConflict",
    "PoolTimeout",
    "ProgrammingError",
    "RoutingError",
    "StateDivergenceWarning",
    "TransactionError",
    "Warning",
]


# PyMySQL's client error code for "cannot connect to the server"; 0 is PyMySQL's code for an
# error raised by the client with no server error behind it.
CR_CONN_HOST_ERROR: Final = 2003
# The server's deadlock code: an optimistic conflict is retried as a deadlock is.
ER_LOCK_DEADLOCK: Final = 1213


class _Coded:
    """PyMySQL's ``(errno, message)`` args for msplugin's own errors, given a message alone;
    ``str()`` is the message. Pickles as PyMySQL's errors do: the class and its args."""

    errno: ClassVar[int] = 0
    args: tuple[Any, ...]

    def __init__(self, *args: Any) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (self.errno, args[0])
        super().__init__(*args)

    def __str__(self) -> str:
        return str(self.args[-1]) if self.args else ""


class ConfigError(_Coded, InterfaceError):
    """The plugin configuration cannot be used.

    Raised at load time, before any socket is opened. Each line of the message names the file,
    the JSON path and the offending value; ``problems`` holds the lines without the file name.
    """

    __module__ = "msplugin"

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{source}: {p}" for p in self.problems))

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.source, self.problems)


class RoutingError(_Coded, ProgrammingError):
    """A statement cannot be routed; nothing was sent to any server."""

    __module__ = "msplugin"


class TransactionError(_Coded, ProgrammingError):
    """The call is not allowed while a transaction is open (e.g. set_qos()); nothing changed."""

    __module__ = "msplugin"


class NoBackendAvailable(_Coded, OperationalError):
    """No server of the group could be connected for a statement; nothing was executed.

    ``args[0]`` is 2003, the client's code for "cannot connect to the server"."""

    __module__ = "msplugin"
    errno = CR_CONN_HOST_ERROR


class PoolTimeout(_Coded, OperationalError):
    """No pooled connection came free within the pool's ``queue_timeout``; nothing was sent."""

    __module__ = "msplugin"


class OptimisticConflict(_Coded, OperationalError):
    """An optimistic transaction moved from a replica to the master, and a read it had made
    answered differently there: the transaction was rolled back; run it again.

    ``args[0]`` is 1213 (ER_LOCK_DEADLOCK) and ``sqlstate`` is "40001", so code that retries
    deadlocks retries this too. The connection stays usable."""

    __module__ = "msplugin"
    errno = ER_LOCK_DEADLOCK

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.sqlstate = "40001"  # what the server gives a deadlock: serialization failure


class StateDivergenceWarning(UserWarning):
    """A statement runs on a backend whose session lacks state it depends on.

    Emitted with ``warnings.warn`` (and logged at warning level) under ``session_state: warn``,
    and under ``sync`` when the statement cannot move (a transaction or a hint holds it). The
    message names the state item, the backend that holds it and the backend chosen.
    """

    __module__ = "msplugin"
