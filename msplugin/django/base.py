"""``ENGINE: "msplugin.django"``: Django's MySQL backend, over msplugin.connect().

Django's own MySQL backend (django.db.backends.mysql) does everything Django needs of MySQL
and MariaDB; this subclass changes only where the connection comes from and how its session
is set up:

- ``HOST`` is the msplugin group name and ``OPTIONS["config"]`` the configuration file (else
  $MSPLUGIN_CONFIG, else ./msplugin.json); the servers and their ports come from the group.
  Every other OPTIONS key is a connect() keyword for every server (``init_command``,
  ``sql_mode``, ``ssl``, ...), as NAME, USER, PASSWORD and the character set are.
- What Django sets when it opens a connection applies to every backend session, not only the
  master's: the isolation level (Connection.set_isolation_level()) and SQL_AUTO_IS_NULL
  (Connection.init_sessions()). Django's backend sends them as one SET, which would reach the
  master only.
- It runs on PyMySQL, registered as MySQLdb before Django's backend is imported, as PyMySQL
  documents for Django, with its submodules (see _pymysql_as_mysqldb()).
"""

from __future__ import annotations

import sys
from typing import Any

import pymysql
import pymysql.constants.CLIENT
import pymysql.constants.ER
import pymysql.constants.FIELD_TYPE
import pymysql.converters
import pymysql.err
from django.core.exceptions import ImproperlyConfigured


def _pymysql_as_mysqldb() -> None:
    """PyMySQL as MySQLdb, its submodules included. pymysql.install_as_MySQLdb() registers
    the package alone: Django's ``from MySQLdb.constants import ...`` then loads pymysql's
    submodules a second time under the MySQLdb name, and the copy of ``err`` replaces
    ``pymysql.err``, whose exception classes are then not the ones PyMySQL raises (an
    ``except pymysql.err.OperationalError`` stops catching). Copies loaded earlier (an
    application that called install_as_MySQLdb() and imported Django's backend first) are
    replaced by the originals."""
    if sys.modules.get("MySQLdb", pymysql) is not pymysql:
        raise ImproperlyConfigured(
            "msplugin.django runs on PyMySQL, but mysqlclient's MySQLdb was imported first; "
            "use msplugin.django before anything imports MySQLdb"
        )
    sys.modules["MySQLdb"] = pymysql
    for name, module in sorted(sys.modules.items()):
        if name.startswith("pymysql."):
            sys.modules["MySQLdb" + name[len("pymysql") :]] = module
            parent, _, leaf = name.rpartition(".")
            setattr(sys.modules[parent], leaf, module)


_pymysql_as_mysqldb()

from django.db.backends.base.base import BaseDatabaseWrapper  # noqa: E402
from django.db.backends.mysql import base as mysql_base  # noqa: E402
from django.db.backends.mysql.client import DatabaseClient as MySQLClient  # noqa: E402

import msplugin  # noqa: E402

__all__ = ["DatabaseClient", "DatabaseWrapper"]


def _group(settings_dict: dict[str, Any]) -> str:
    """The msplugin group named by HOST, or a clear ImproperlyConfigured."""
    host = settings_dict.get("HOST") or ""
    if not host or host.startswith("/"):
        raise ImproperlyConfigured(
            f"msplugin.django: HOST must name the msplugin group (got {host!r}); the servers "
            "come from the group's configuration"
        )
    if settings_dict.get("PORT"):
        raise ImproperlyConfigured(
            "msplugin.django: PORT must be empty: the servers and their ports come from the "
            f"configuration of group {host!r}"
        )
    return str(host)


class DatabaseClient(MySQLClient):  # type: ignore[misc]
    """``manage.py dbshell``: the mysql client on the group's master."""

    @classmethod
    def settings_to_cmd_args_env(
        cls, settings_dict: dict[str, Any], parameters: list[str]
    ) -> tuple[list[str], dict[str, str] | None]:
        options = dict(settings_dict["OPTIONS"])
        group = msplugin.load_config(options.pop("config", None)).group(_group(settings_dict))
        master = group.masters[0]
        here = {**settings_dict, "HOST": master.host, "PORT": master.port, "OPTIONS": options}
        if master.socket:
            here["HOST"], here["PORT"] = master.socket, ""
        result: tuple[list[str], dict[str, str] | None]
        result = super().settings_to_cmd_args_env(here, parameters)
        return result


class DatabaseWrapper(mysql_base.DatabaseWrapper):  # type: ignore[misc]
    """Django's MySQL DatabaseWrapper whose connection is an msplugin facade (see the module)."""

    client_class = DatabaseClient

    def get_connection_params(self) -> dict[str, Any]:
        group = _group(self.settings_dict)
        kwargs: dict[str, Any] = super().get_connection_params()
        kwargs.pop("host", None)
        kwargs["group"] = group
        return kwargs

    def get_new_connection(self, conn_params: dict[str, Any]) -> msplugin.Connection:
        params = dict(conn_params)
        group = params.pop("group")
        config = params.pop("config", None)
        return msplugin.connect(group, config=config, **params)

    def init_connection_state(self) -> None:
        BaseDatabaseWrapper.init_connection_state(self)
        conn: msplugin.Connection = self.connection
        if self.features.is_sql_auto_is_null_enabled:
            conn.init_sessions("SET SQL_AUTO_IS_NULL = 0")
        if self.isolation_level:
            conn.set_isolation_level(self.isolation_level)
