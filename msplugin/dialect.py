"""SQLAlchemy dialects ``mysql+msplugin`` and ``mariadb+msplugin``: engines whose connections
are msplugin facades.

``create_engine("mysql+msplugin://user:password@GROUP/db?config=PATH")`` routes every statement
of an engine (Core and ORM) by msplugin's rules. SQLAlchemy finds these classes through the
``sqlalchemy.dialects`` entry points ``mysql.msplugin`` and ``mariadb.msplugin`` (the name
SQLAlchemy gives a MariaDB server's URL, as for ``mariadb+pymysql``); SQLAlchemy itself is an
optional extra (``pip install msplugin[sqlalchemy]``). Everything MySQL-specific (SQL
compilation, reflection, types) is the PyMySQL dialect's: msplugin runs PyMySQL underneath.
SQLAlchemy's test harness finds the provisioning in msplugin.provision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, cast

import pymysql
from pymysql.constants import CLIENT
from sqlalchemy import util
from sqlalchemy.dialects.mysql.mariadb import MariaDBDialect
from sqlalchemy.dialects.mysql.pymysql import MySQLDialect_pymysql
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.engine.interfaces import ConnectArgsType, DBAPIConnection, DBAPIModule
from sqlalchemy.exc import ArgumentError

import msplugin


class MSPluginDialect(MySQLDialect_pymysql):
    """PyMySQL's dialect with msplugin.connect() as the DB-API module's connect()."""

    driver = "msplugin"
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> DBAPIModule:
        return cast(DBAPIModule, msplugin)

    def retrieve_dbapi_version(self, dbapi: DBAPIModule) -> util.VersionInfo:
        # Version-dependent behaviour in the PyMySQL dialect is about PyMySQL, which runs here.
        return util.parse_version_string(pymysql.VERSION_STRING)

    @util.memoized_property
    def _send_false_to_ping(self) -> bool:
        return True  # msplugin's ping(reconnect) is PyMySQL's; SQLAlchemy wants False

    def on_connect(self) -> Callable[[DBAPIConnection], None]:
        # MySQLdb's dialect sends "SET NAMES" on connect: through msplugin that would run on
        # the master only. The character set is a connect() argument, set on every backend.
        def on_connect(conn: DBAPIConnection) -> None:
            pass

        return on_connect

    def set_isolation_level(self, dbapi_connection: DBAPIConnection, level: str) -> None:
        # Every backend session gets the level: SQLAlchemy would send a SET, which runs on the
        # master only.
        if level == "AUTOCOMMIT":
            dbapi_connection.autocommit(True)
        else:
            dbapi_connection.autocommit(False)
            dbapi_connection.set_isolation_level(level)

    def create_connect_args(
        self, url: URL, _translate_args: dict[str, Any] | None = None
    ) -> ConnectArgsType:
        """``mysql+msplugin://user:password@GROUP/database?config=PATH&charset=...``.

        The URL's host is the group name; servers come from the configuration, so a port is
        refused. Query keys are PyMySQL connect() options, plus ``config`` and ``pick_server``.
        Connections start with autocommit off, as PEP 249 and SQLAlchemy expect.
        """
        _args, opts = super().create_connect_args(url, _translate_args)
        return group_args(url, opts)


def group_args(url: URL, opts: MutableMapping[str, Any]) -> ConnectArgsType:
    """connect() arguments for *url*, whose host names the group (see create_connect_args)."""
    group = url.host
    scheme = url.drivername
    if not group:
        raise ArgumentError(
            f"{scheme}:// URLs name the group as the host: "
            f"{scheme}://user:password@GROUP/database?config=PATH"
        )
    if url.port is not None:
        raise ArgumentError(
            f"{scheme}://...@{group}:{url.port}: a port has no meaning here; "
            "the group's servers and their ports come from the configuration"
        )
    opts.pop("host", None)
    opts.setdefault("autocommit", False)
    opts["client_flag"] = int(opts.get("client_flag", 0)) | CLIENT.FOUND_ROWS
    return [group], opts


class MSPluginMariaDBDialect(MariaDBDialect, MSPluginDialect):
    """``mariadb+msplugin``: the same, with SQLAlchemy's MariaDB behaviour (as
    ``mariadb+pymysql`` is to ``mysql+pymysql``)."""

    supports_statement_cache = True


dialect = MSPluginDialect
mariadb_dialect = MSPluginMariaDBDialect


@contextmanager
def read_only(engine: Engine) -> Iterator[Connection]:
    """A connection of *engine* in a read-only transaction; with ``trx_stickiness: "on"`` the
    whole transaction runs on one slave.

    Commits on success, rolls back on error, then returns the connection to the engine's pool.
    The connection runs in autocommit mode meanwhile: SQLAlchemy's own transaction would
    start on the master.
    """
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        facade = conn.connection.dbapi_connection
        if not isinstance(facade, msplugin.Connection):
            raise TypeError("read_only() needs a mysql+msplugin:// engine")
        facade.begin(read_only=True)
        try:
            yield conn
        except BaseException:
            facade.rollback()
            raise
        facade.commit()
