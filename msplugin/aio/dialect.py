"""SQLAlchemy's async dialect ``mysql+msplugin_aio`` (and ``mariadb+msplugin_aio``): async
engines whose connections are msplugin.aio facades.

``create_async_engine("mysql+msplugin_aio://user:password@GROUP/db?config=PATH")`` works
with ``AsyncSession`` and ``AsyncConnection``. It is SQLAlchemy's aiomysql dialect, with
msplugin.aio.connect() in place of aiomysql.connect(): SQLAlchemy's asyncio adaptation
calls the facade's aiomysql surface. URL rules, autocommit and session set-up are those of
``mysql+msplugin`` (msplugin.dialect).
"""

from __future__ import annotations

import types
from typing import Any

import aiomysql
import pymysql
from sqlalchemy.dialects.mysql.aiomysql import AsyncAdapt_aiomysql_dbapi, MySQLDialect_aiomysql
from sqlalchemy.dialects.mysql.mariadb import MariaDBDialect
from sqlalchemy.engine import URL
from sqlalchemy.engine.interfaces import ConnectArgsType, DBAPIConnection
from sqlalchemy.util.concurrency import await_

import msplugin.aio
from msplugin.dialect import group_args

__all__ = ["MSPluginAioDialect", "MSPluginAioMariaDBDialect"]

_ERRORS = (
    "Warning",
    "Error",
    "InterfaceError",
    "DataError",
    "DatabaseError",
    "OperationalError",
    "IntegrityError",
    "ProgrammingError",
    "InternalError",
    "NotSupportedError",
)


def _module() -> types.SimpleNamespace:
    """aiomysql's module surface as SQLAlchemy's adaptation uses it, connect() excepted."""
    names = {name: getattr(aiomysql, name) for name in _ERRORS}
    return types.SimpleNamespace(
        connect=msplugin.aio.connect,
        Cursor=aiomysql.Cursor,
        SSCursor=aiomysql.SSCursor,
        cursors=aiomysql.cursors,
        **names,
    )


class MSPluginAioDialect(MySQLDialect_aiomysql):
    """SQLAlchemy's aiomysql dialect over msplugin.aio facades."""

    driver = "msplugin_aio"
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> AsyncAdapt_aiomysql_dbapi:
        return AsyncAdapt_aiomysql_dbapi(_module(), pymysql)  # type: ignore[arg-type]

    def on_connect(self) -> Any:
        # As mysql+msplugin: a "SET NAMES" would run on the master only; the character set
        # is a connect() argument, set on every backend.
        def on_connect(conn: DBAPIConnection) -> None:
            pass

        return on_connect

    def set_isolation_level(self, dbapi_connection: DBAPIConnection, level: str) -> None:
        # Every backend session gets the level (a SET would run on the master only).
        facade = dbapi_connection._connection
        if level == "AUTOCOMMIT":
            await_(facade.autocommit(True))
        else:
            await_(facade.autocommit(False))
            await_(facade.set_isolation_level(level))

    def create_connect_args(
        self, url: URL, _translate_args: dict[str, Any] | None = None
    ) -> ConnectArgsType:
        """``mysql+msplugin_aio://user:password@GROUP/database?config=PATH``: as
        ``mysql+msplugin`` (msplugin.dialect)."""
        _args, opts = super().create_connect_args(url, _translate_args)
        return group_args(url, opts)


class MSPluginAioMariaDBDialect(MariaDBDialect, MSPluginAioDialect):
    """``mariadb+msplugin_aio``: the same, with SQLAlchemy's MariaDB behaviour."""

    supports_statement_cache = True


dialect = MSPluginAioDialect
mariadb_dialect = MSPluginAioMariaDBDialect
