"""connect()'s keywords: PyMySQL's, sorted into what every backend gets and what msplugin does.

msplugin.connect() takes every keyword pymysql.connect() takes, except those that name one
server (``host``, ``port``, ``unix_socket``: a group's servers come from its configuration).
Most are passed to every backend connection as they are. A few are msplugin's to handle:
``db``/``passwd`` (PyMySQL's deprecated aliases), ``defer_connect``, ``compress`` and
``named_pipe`` (not supported, as in PyMySQL), and ``read_default_file``/``read_default_group``:
the option file is read once here, and only the keys that may apply to every server are taken
from it, so that its ``host``, ``port`` or ``socket`` can never point a backend at another
server.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from typing import Any, Final

from pymysql import err
from pymysql.optionfile import Parser

__all__ = ["PASSTHROUGH_KWARGS", "Options", "sort_options"]

# connect() keywords passed on to every PyMySQL connection (per-server keys override them).
PASSTHROUGH_KWARGS: Final = frozenset(
    {
        "charset",
        "collation",
        "connect_timeout",
        "read_timeout",
        "write_timeout",
        "init_command",
        "sql_mode",
        "ssl",
        "ssl_ca",
        "ssl_cert",
        "ssl_key",
        "ssl_key_password",
        "ssl_disabled",
        "ssl_verify_cert",
        "ssl_verify_identity",
        "local_infile",
        "client_flag",
        "max_allowed_packet",
        "bind_address",
        "program_name",
        "conv",
        "use_unicode",
        "binary_prefix",
        "auth_plugin_map",
        "server_public_key",
    }
)
_NOT_HERE: Final = {
    "host": "servers come from the group's configuration",
    "port": "servers come from the group's configuration",
    "unix_socket": "servers come from the group's configuration (key 'socket')",
}
_ALIASES: Final = {"db": "database", "passwd": "password"}
_HANDLED: Final = frozenset(
    {"read_default_file", "read_default_group", "defer_connect", "compress", "named_pipe"}
)
# Option file keys that apply to every server, and the connect() keyword each becomes.
_FROM_FILE: Final = {
    "user": "user",
    "password": "password",
    "database": "database",
    "default-character-set": "charset",
    "bind-address": "bind_address",
    "ssl-ca": "ssl_ca",
    "ssl-cert": "ssl_cert",
    "ssl-key": "ssl_key",
}


class Options:
    """connect()'s keywords, sorted: *identity* (user, password, database), *backend*
    (for every PyMySQL connection), and msplugin's own *defer_connect*."""

    def __init__(
        self, identity: dict[str, Any], backend: dict[str, Any], defer_connect: bool
    ) -> None:
        self.identity = identity
        self.backend = backend
        self.defer_connect = defer_connect


def sort_options(identity: Mapping[str, Any], kwargs: Mapping[str, Any]) -> Options:
    """Check and sort connect()'s keywords; TypeError for one pymysql.connect() does not take
    (or that names one server), NotSupportedError for what PyMySQL does not support either.

    *identity*: connect()'s user, password and database (None when not given).
    """
    ident = {k: v for k, v in identity.items() if v is not None}
    backend: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in _NOT_HERE:
            raise TypeError(f"connect() does not take {key}=: {_NOT_HERE[key]}")
        if key in _ALIASES:
            name = _ALIASES[key]
            warnings.warn(f"'{key}' is deprecated, use '{name}'", DeprecationWarning, 3)
            if value is not None:
                ident.setdefault(name, value)
        elif key in ("compress", "named_pipe"):
            if value:
                raise err.NotSupportedError(f"connect({key}=...) is not supported (nor by PyMySQL)")
        elif key in PASSTHROUGH_KWARGS:
            backend[key] = value
        elif key not in _HANDLED:
            raise TypeError(f"connect() got an unexpected keyword argument {key!r}")
    path, group = kwargs.get("read_default_file"), kwargs.get("read_default_group")
    if path or group:
        for name, value in _option_file(path, group).items():
            target = ident if name in ("user", "password", "database") else backend
            target.setdefault(name, value)  # connect()'s own arguments win, as in PyMySQL
    return Options(ident, backend, bool(kwargs.get("defer_connect")))


def _option_file(path: str | None, group: str | None) -> dict[str, str]:
    """The keys of a MySQL option file's *group* (default ``client``) that apply to every
    server. A file that cannot be read gives nothing, as in PyMySQL."""
    if not path:
        path = "c:\\my.ini" if sys.platform.startswith("win") else "/etc/my.cnf"
    parser = Parser()
    parser.read(os.path.expanduser(path))
    section = group or "client"
    out: dict[str, str] = {}
    for key, name in _FROM_FILE.items():
        if parser.has_option(section, key):
            value = parser.get(section, key)
            if value:
                out[name] = value
    return out
