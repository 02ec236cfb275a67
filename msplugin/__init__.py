"""msplugin: open a MySQL/MariaDB connection by group name; each statement goes to the right server.

The Python heir of PHP's mysqlnd_ms: a PEP 249 facade connection over a replicated group
(masters and slaves from a JSON file in mysqlnd_ms's format). Reads go to a slave, everything
else to the master; SQL hints ``/*ms=master*/``, ``/*ms=slave*/``, ``/*ms=last_used*/``
override. See MANUAL.md.
"""

from __future__ import annotations

import logging

# PEP 249 type objects and constructors: rows come from PyMySQL, so its objects describe them.
from pymysql import (
    BINARY,
    DATE,
    DATETIME,
    NUMBER,
    ROWID,
    STRING,
    TIME,
    TIMESTAMP,
    Binary,
    Date,
    DateFromTicks,
    Time,
    TimeFromTicks,
    Timestamp,
    TimestampFromTicks,
)

from msplugin.backends import ServerInfo
from msplugin.classify import Route, query_is_select
from msplugin.config import Config, GroupConfig, ServerConfig, load_config
from msplugin.connection import Connection, connect
from msplugin.cursor import Cursor
from msplugin.errors import (
    ConfigError,
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    MySQLError,
    NoBackendAvailable,
    NotSupportedError,
    OperationalError,
    OptimisticConflict,
    PoolTimeout,
    ProgrammingError,
    RoutingError,
    StateDivergenceWarning,
    TransactionError,
    Warning,
)
from msplugin.pool import close_pools
from msplugin.routing import Explanation
from msplugin.stats import get_stats

__all__ = [
    "BINARY",
    "DATE",
    "DATETIME",
    "NUMBER",
    "ROWID",
    "STRING",
    "TIME",
    "TIMESTAMP",
    "Binary",
    "Config",
    "ConfigError",
    "Connection",
    "Cursor",
    "DataError",
    "DatabaseError",
    "Date",
    "DateFromTicks",
    "Error",
    "Explanation",
    "GroupConfig",
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
    "Route",
    "RoutingError",
    "ServerConfig",
    "ServerInfo",
    "StateDivergenceWarning",
    "Time",
    "TimeFromTicks",
    "Timestamp",
    "TimestampFromTicks",
    "TransactionError",
    "Warning",
    "apilevel",
    "close_pools",
    "connect",
    "get_stats",
    "load_config",
    "paramstyle",
    "query_is_select",
    "threadsafety",
]

__version__ = "0.1.0"

# A library leaves output to the application: without logging configured, msplugin's warnings
# reach the application through warnings.warn (state divergence) or exceptions, not stderr.
logging.getLogger("msplugin").addHandler(logging.NullHandler())

apilevel = "2.0"
threadsafety = 1
paramstyle = "pyformat"
