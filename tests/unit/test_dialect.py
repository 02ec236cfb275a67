"""The mysql+msplugin SQLAlchemy dialect: URL parsing and registration (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pymysql.constants import CLIENT
from sqlalchemy import create_engine
from sqlalchemy.dialects import registry
from sqlalchemy.exc import ArgumentError

import msplugin
from msplugin.dialect import MSPluginDialect


def test_the_entry_point_registers_the_dialect() -> None:
    assert registry.load("mysql.msplugin") is MSPluginDialect


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
