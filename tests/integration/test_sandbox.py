"""The sandbox lets no one in without a password, and keeps its files to its owner."""

from __future__ import annotations

import stat
from pathlib import Path

import pymysql
import pytest

from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration


def test_no_account_on_any_server_has_an_empty_password(sandbox: Sandbox) -> None:
    for node in sandbox.nodes:
        with sandbox.admin(node) as admin, admin.cursor() as cur:
            cur.execute(
                "SELECT User, Host, JSON_VALUE(Priv, '$.authentication_string') "
                "FROM mysql.global_priv"
            )
            accounts = cur.fetchall()
        empty = [(u, h) for u, h, auth in accounts if not auth]
        assert empty == [], (node.name, empty)
        names = {(u, h) for u, h, _ in accounts}
        assert ("root", "localhost") in names
        assert not {("root", "127.0.0.1"), ("root", "::1")} & names


@pytest.mark.parametrize("password", ["", "wrong"])
def test_root_over_tcp_is_refused(sandbox: Sandbox, password: str) -> None:
    for node in sandbox.nodes:
        with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
            pymysql.connect(
                host="127.0.0.1", port=node.port, user="root", password=password, connect_timeout=5
            ).close()


def test_the_sandbox_directories_are_the_owners_only(sandbox: Sandbox) -> None:
    dirs = [sandbox.dir, *(Path(n.datadir) for n in sandbox.nodes)]
    dirs += [Path(n.tmpdir) for n in sandbox.nodes]
    for path in dirs:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in (sandbox.config_path, sandbox.dir / "sandbox.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_the_servers_listen_on_loopback_only(sandbox: Sandbox) -> None:
    for node in sandbox.nodes:
        with sandbox.admin(node) as admin, admin.cursor() as cur:
            cur.execute("SELECT @@bind_address")
            assert cur.fetchone() == ("127.0.0.1",)
