"""The mysql+msplugin and mariadb+msplugin SQLAlchemy dialects: URL parsing, registration and
test provisioning (no server needed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from pymysql.constants import CLIENT
from sqlalchemy import create_engine
from sqlalchemy.dialects import registry
from sqlalchemy.exc import ArgumentError

import msplugin
import msplugin.aio
from msplugin.dialect import MSPluginDialect, MSPluginMariaDBDialect


def test_the_entry_point_registers_the_dialect() -> None:
    assert registry.load("mysql.msplugin") is MSPluginDialect


def test_mariadb_urls_load_the_mariadb_variant() -> None:
    """SQLAlchemy renames a MariaDB server's URL to mariadb+DRIVER (its test harness does, as
    for mariadb+pymysql): that name loads msplugin's dialect with MariaDB's behaviour."""
    assert registry.load("mariadb.msplugin") is MSPluginMariaDBDialect
    engine = create_engine("mariadb+msplugin://app:pw@myapp/shop?config=/etc/ms.json")
    assert isinstance(engine.dialect, MSPluginMariaDBDialect)
    assert engine.dialect.is_mariadb and engine.dialect.name == "mariadb"
    assert engine.dialect.create_connect_args(engine.url)[0] == ["myapp"]
    with pytest.raises(ArgumentError, match=r"mariadb\+msplugin://\.\.\.@myapp:3307"):
        create_engine("mariadb+msplugin://u:p@myapp:3307/shop")


def test_sqlalchemys_test_harness_finds_the_provisioning() -> None:
    """sqlalchemy.testing imports <dialect package>.provision; SQLAlchemy's MySQL provisioning
    (create the test databases, ...) then serves both msplugin URLs."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.testing import provision

    MSPluginDialect.load_provisioning()
    assert "msplugin.provision" in sys.modules
    url = make_url("mariadb+msplugin://app:pw@myapp/shop?config=/etc/ms.json")
    assert provision.drop_db.fns.get("mariadb") is not None
    assert provision.create_db.fns.get("mysql") is not None
    follower = provision.follower_url_from_main(url, "test_1")
    assert str(follower.database) == "test_1" and follower.drivername == "mariadb+msplugin"


def test_url_host_is_the_group_and_query_keys_are_connect_options() -> None:
    engine = create_engine(
        "mysql+msplugin://app:s%40cret@myapp/shop?config=/etc/ms.json&connect_timeout=3"
    )
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    assert args == ["myapp"]
    assert kwargs == {
        "user": "app",
        "password": "s@cret",
        "database": "shop",
        "config": "/etc/ms.json",
        "connect_timeout": 3,
        "autocommit": False,
        "client_flag": CLIENT.FOUND_ROWS,
    }
    assert "s@cret" not in repr(engine)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql+msplugin:///shop", "name the group as the host"),
        ("mysql+msplugin://u:p@myapp:3307/shop", "a port has no meaning"),
    ],
)
def test_urls_that_cannot_name_a_group_are_refused(url: str, message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        create_engine(url)


def test_an_unknown_isolation_level_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    path = tmp_path / "ms.json"
    path.write_text(
        json.dumps({"g": {"master": {"m": {"host": "127.0.0.1", "port": 9}}, "slave": {}}})
    )
    with msplugin.connect("g", config=str(path)) as conn:  # lazy: nothing connected
        with pytest.raises(msplugin.ProgrammingError, match="expected one of"):
            conn.set_isolation_level("SNAPSHOT")
        conn.set_isolation_level("read-committed")  # no backend open: remembered only
        assert conn._backends.isolation == "READ COMMITTED"


def test_the_async_dialect_names_the_group_as_the_sync_one_does() -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from msplugin.aio.dialect import MSPluginAioDialect, MSPluginAioMariaDBDialect

    assert registry.load("mysql.msplugin_aio") is MSPluginAioDialect
    assert registry.load("mariadb.msplugin_aio") is MSPluginAioMariaDBDialect
    engine = create_async_engine("mysql+msplugin_aio://app:pw@myapp/shop?config=/etc/ms.json")
    dialect = engine.sync_engine.dialect
    assert isinstance(dialect, MSPluginAioDialect) and dialect.is_async
    args, kwargs = dialect.create_connect_args(engine.sync_engine.url)
    assert args == ["myapp"]
    assert kwargs["db"] == "shop" and kwargs["user"] == "app" and "host" not in kwargs
    assert kwargs["config"] == "/etc/ms.json" and kwargs["autocommit"] is False
    assert kwargs["client_flag"] & CLIENT.FOUND_ROWS
    assert dialect.loaded_dbapi.aiomysql.connect is msplugin.aio.connect  # type: ignore[attr-defined]
    with pytest.raises(ArgumentError, match="a port has no meaning"):
        create_async_engine("mysql+msplugin_aio://u:p@myapp:3307/shop")
