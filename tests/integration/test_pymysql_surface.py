"""msplugin.connect() stands in for pymysql.connect(): PyMySQL's public surface, compared with
plain PyMySQL on the same server in the same run."""

from __future__ import annotations

import datetime
import decimal
import inspect
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors
import pytest
from live import PRIMARY, REPLICAS, scalar, server_id, setup

import msplugin
from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def table(sandbox: Sandbox) -> None:
    setup(sandbox, "CREATE TABLE IF NOT EXISTS surf (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")


def master_params(sandbox: Sandbox) -> dict[str, Any]:
    server = json.loads(sandbox.config_path.read_text())["sandbox"]["master"]["master_0"]
    return {
        "host": server["host"],
        "port": server["port"],
        "user": server["user"],
        "password": server["password"],
        "database": server["db"],
        "autocommit": True,
    }


@pytest.fixture
def pair(sandbox: Sandbox) -> Iterator[tuple[msplugin.Connection, Any]]:
    """(a facade, a plain PyMySQL connection to the facade's master)."""
    with msplugin.connect("sandbox", config=str(sandbox.config_path)) as facade:
        raw = pymysql.connect(**master_params(sandbox))
        try:
            yield facade, raw
        finally:
            raw.close()


VALUES = [
    'it\'s \\ a "test"',
    b"\x00\x01bytes",
    42,
    3.5,
    None,
    True,
    decimal.Decimal("1.10"),
    datetime.date(2026, 12, 3),
    datetime.datetime(2026, 12, 3, 4, 5, 6),
    (1, "a"),
    ["x", None],
]


def test_escaping_is_pymysqls(pair: tuple[msplugin.Connection, Any]) -> None:
    facade, raw = pair
    for value in VALUES:
        assert facade.escape(value) == raw.escape(value), value
    assert facade.escape_string("a'b\\c") == raw._escape_string("a'b\\c")
    with pytest.warns(DeprecationWarning):
        assert facade.literal("x'y") == raw.escape("x'y")
    assert facade.encoding == raw.encoding
    assert facade.encoders.keys() == raw.encoders.keys()
    fc, rc = facade.cursor(), raw.cursor()
    for args in ((1, "two", None), {"a": 1, "b": "b'"}):
        query = "SELECT %s, %s, %s" if isinstance(args, tuple) else "SELECT %(a)s, %(b)s"
        assert fc.mogrify(query, args) == rc.mogrify(query, args)
    assert fc.mogrify("SELECT 1") == rc.mogrify("SELECT 1")


def test_server_information_is_the_masters(pair: tuple[msplugin.Connection, Any]) -> None:
    facade, raw = pair
    assert facade.get_server_info() == raw.get_server_info()
    assert facade.server_version == raw.server_version
    assert facade.get_proto_info() == raw.get_proto_info()
    assert facade.character_set_name() == raw.character_set_name()


def test_thread_id_affected_rows_and_host_info_are_the_last_used_servers(
    pair: tuple[msplugin.Connection, Any],
) -> None:
    facade, raw = pair
    cur = facade.cursor()
    assert server_id(facade) in REPLICAS
    assert facade.thread_id() == scalar(facade, "/*ms=last_used*/ SELECT CONNECTION_ID()")
    assert facade.get_host_info() == facade.host_info
    assert facade.get_host_info().startswith("socket 127.0.0.1:")
    cur.execute("INSERT INTO surf (v) VALUES (1), (1), (1)")
    assert facade.affected_rows() == 3
    rc = raw.cursor()
    rc.execute("UPDATE surf SET v = 2 WHERE v = 1")
    cur.execute("UPDATE surf SET v = 1 WHERE v = 2")
    assert facade.affected_rows() == raw.affected_rows()
    assert facade.thread_id() == scalar(facade, "/*ms=master*/ SELECT CONNECTION_ID()")


def test_cursor_attributes_are_pymysqls(pair: tuple[msplugin.Connection, Any]) -> None:
    facade, raw = pair
    fc, rc = facade.cursor(), raw.cursor()
    assert fc._executed is rc._executed is None
    assert fc.warning_count == rc.warning_count == 0
    for cur in (fc, rc):
        cur.execute("SELECT 1/0, %s", ("x",))
    assert fc.warning_count == rc.warning_count == 1
    assert fc._executed == rc._executed == "SELECT 1/0, 'x'"
    assert iter(fc) is fc and iter(rc) is rc
    for cur in (fc, rc):
        cur.execute("SELECT 1 UNION SELECT 2 UNION SELECT 3")
    assert list(fc) == list(rc) == [(1,), (2,), (3,)]


@pytest.mark.parametrize(
    "cursorclass",
    [pymysql.cursors.Cursor, pymysql.cursors.DictCursor, pymysql.cursors.SSCursor],
    ids=lambda c: c.__name__,
)
def test_fetching_after_close_behaves_as_pymysql(
    pair: tuple[msplugin.Connection, Any], cursorclass: type[pymysql.cursors.Cursor]
) -> None:
    facade, raw = pair
    outcomes = []
    for conn in (facade, raw):
        cur = conn.cursor(cursorclass)
        cur.execute("/*ms=master*/ SELECT 1 UNION SELECT 2")
        cur.close()
        try:
            outcomes.append(("row", cur.fetchone()))
        except pymysql.err.Error as exc:
            outcomes.append(("error", type(exc).__name__))
        try:
            cur.execute("SELECT 3")
            outcomes.append(("ran", None))
        except pymysql.err.Error as exc:
            outcomes.append(("error", type(exc).__name__))
    assert outcomes[:2] == outcomes[2:], outcomes


def test_fetchall_unbuffered_on_a_server_side_cursor(sandbox: Sandbox) -> None:
    with msplugin.connect(
        "sandbox", config=str(sandbox.config_path), cursorclass=pymysql.cursors.SSCursor
    ) as facade:
        cur = facade.cursor()
        cur.execute("SELECT 1 UNION SELECT 2 UNION SELECT 3")
        rows = cur.fetchall_unbuffered()
        assert not isinstance(rows, list)
        assert list(rows) == [(1,), (2,), (3,)]
        with pytest.raises(msplugin.NotSupportedError, match="SSCursor"):
            facade.cursor(pymysql.cursors.Cursor).fetchall_unbuffered()


def test_get_autocommit_follows_sql_too(sandbox: Sandbox) -> None:
    with msplugin.connect("sandbox", config=str(sandbox.config_path)) as facade:
        assert facade.get_autocommit() is True
        facade.cursor().execute("SET autocommit = 0")
        assert facade.get_autocommit() is False
        facade.cursor().execute("SET autocommit = 1")
        assert facade.get_autocommit() is True
        facade.autocommit(False)
        assert facade.get_autocommit() is False


def test_close_then_ping_reconnect_or_connect_reopens(sandbox: Sandbox) -> None:
    facade = msplugin.connect("sandbox", config=str(sandbox.config_path))
    assert server_id(facade) in REPLICAS
    facade.close()
    with pytest.raises(msplugin.Error, match="Already closed"):
        facade.ping(False)
    facade.ping(True)
    assert facade.open and server_id(facade, "/*ms=master*/ SELECT @@server_id") == PRIMARY
    facade.close()
    facade.connect()
    assert server_id(facade) in REPLICAS
    facade.ping()
    facade.close()


def test_set_charset_is_the_deprecated_name_of_set_character_set(sandbox: Sandbox) -> None:
    with msplugin.connect("sandbox", config=str(sandbox.config_path)) as facade:
        scalar(facade, "SELECT 1")
        with pytest.warns(DeprecationWarning):
            facade.set_charset("latin1")
        assert facade.character_set_name() == "latin1"
        assert scalar(facade, "SELECT @@character_set_client = 'latin1'") == 1


def test_every_pymysql_connect_keyword_is_accepted(sandbox: Sandbox) -> None:
    """Each keyword pymysql.connect() takes, with a harmless value: accepted, and the
    connection works; host, port and unix_socket name one server and are refused."""
    params = inspect.signature(pymysql.connections.Connection.__init__).parameters
    harmless: dict[str, Any] = {
        "charset": "utf8mb4",
        "collation": "utf8mb4_general_ci",
        "sql_mode": "TRADITIONAL",
        "read_default_file": "/nonexistent/my.cnf",
        "conv": pymysql.converters.conversions,
        "use_unicode": True,
        "client_flag": 0,
        "cursorclass": pymysql.cursors.Cursor,
        "init_command": "SET @init = 1",
        "connect_timeout": 5,
        "read_default_group": "client",
        "autocommit": True,
        "local_infile": False,
        "max_allowed_packet": 1 << 24,
        "defer_connect": True,
        "auth_plugin_map": {},
        "read_timeout": 30,
        "write_timeout": 30,
        "bind_address": "127.0.0.1",
        "binary_prefix": False,
        "program_name": "surface-test",
        "server_public_key": None,
        "ssl": None,
        "ssl_ca": None,
        "ssl_cert": None,
        "ssl_disabled": True,
        "ssl_key": None,
        "ssl_key_password": None,
        "ssl_verify_cert": None,
        "ssl_verify_identity": None,
        "compress": None,
        "named_pipe": None,
        "user": None,
        "password": None,
        "database": None,
    }
    cfg = str(sandbox.config_path)
    for name in params:
        if name == "self":
            continue
        if name in ("host", "port", "unix_socket"):
            with pytest.raises(TypeError, match="servers come from the group's configuration"):
                msplugin.connect("sandbox", config=cfg, **{name: "x"})
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # db=, passwd=
            value = harmless.get(name, "test" if name == "db" else None)
            with msplugin.connect("sandbox", config=cfg, **{name: value}) as facade:
                assert scalar(facade, "SELECT 5") == 5, name
    with pytest.raises(msplugin.NotSupportedError, match="compress"):
        msplugin.connect("sandbox", config=cfg, compress=True)


def test_an_option_file_gives_credentials_but_never_a_server(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    data = json.loads(sandbox.config_path.read_text())
    group = data["sandbox"]
    server = group["master"]["master_0"]
    user, password = server["user"], server["password"]
    for servers in (group["master"], group["slave"]):
        for entry in servers.values():
            for key in ("user", "password", "db"):
                entry.pop(key)
    config = tmp_path / "nocreds.json"
    config.write_text(json.dumps(data))
    cnf = tmp_path / "my.cnf"
    cnf.write_text(
        f"[client]\nuser={user}\npassword={password}\ndatabase=test\n"
        "host=192.0.2.1\nport=1\nsocket=/nonexistent.sock\n"
        "[other]\nuser=nobody\n"
    )
    with msplugin.connect("sandbox", config=str(config), read_default_file=str(cnf)) as facade:
        assert server_id(facade) in REPLICAS
        assert server_id(facade, "/*ms=master*/ SELECT @@server_id") == PRIMARY
        assert scalar(facade, "SELECT DATABASE() = 'test'") == 1
    with (
        pytest.raises(pymysql.err.OperationalError, match=r"Access denied|nobody"),
        msplugin.connect(
            "sandbox", config=str(config), read_default_file=str(cnf), read_default_group="other"
        ) as facade,
    ):
        scalar(facade, "SELECT 1")


def test_defer_connect_leaves_a_non_lazy_group_unconnected(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    data = json.loads(sandbox.config_path.read_text())
    data["sandbox"]["lazy_connections"] = False
    config = tmp_path / "eager.json"
    config.write_text(json.dumps(data))
    with msplugin.connect("sandbox", config=str(config)) as eager:
        assert "connected=['master_0', 'slave_0', 'slave_1']" in repr(eager)
    with msplugin.connect("sandbox", config=str(config), defer_connect=True) as deferred:
        assert "connected=[]" in repr(deferred)
        deferred.connect()
        assert "connected=['master_0', 'slave_0', 'slave_1']" in repr(deferred)
