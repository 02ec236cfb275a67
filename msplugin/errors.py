"""msplugin's exceptions: PyMySQL's PEP 249 tree, plus msplugin's own subclasses.

msplugin's errors subclass the fitting DB-API class, so ``except pymysql.err.OperationalError``
keeps catching them. Errors raised by a server while running a statement are PyMySQL's own and
pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    "PoolTimeout",
    "ProgrammingError",
    "RoutingError",
    "StateDivergenceWarning",
    "TransactionError",
    "Warning",
]


class ConfigError(InterfaceError):
    """The plugin configuration cannot be used.

    Raised at load time, before any socket is opened. Each line of the message names the file,
    the JSON path and the offending value; ``problems`` holds the lines without the file name.
    """

    __module__ = "msplugin"

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{source}: {p}" for p in self.problems))


class RoutingError(ProgrammingError):
    """A statement cannot be routed; nothing was sent to any server."""

    __module__ = "msplugin"


class TransactionError(ProgrammingError):
    """The call is not allowed while a transaction is open (e.g. set_qos()); nothing changed."""

    __module__ = "msplugin"


class NoBackendAvailable(OperationalError):
    """No server of the group could be connected for a statement; nothing was executed."""

    __module__ = "msplugin"


class PoolTimeout(OperationalError):
    """No pooled connection came free within the pool's ``queue_timeout``; nothing was sent."""

    __module__ = "msplugin"


class StateDivergenceWarning(UserWarning):
    """A statement runs on a backend whose session lacks state it depends on.

    Emitted with ``warnings.warn`` (and logged at warning level) under ``session_state: warn``,
    and under ``sync`` when the statement cannot move (a transaction or a hint holds it). The
    message names the state item, the backend that holds it and the backend chosen.
    """

    __module__ = "msplugin"
