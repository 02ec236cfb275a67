"""The state-pitfall demo and the CLI against the real sandbox."""

from __future__ import annotations

import pytest

from msplugin import cli, demo
from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration


def test_demo_shows_the_pitfall_under_each_mode(sandbox: Sandbox) -> None:
    lines: list[str] = []
    demo.run(demo._connector(str(sandbox.config_path), "sandbox"), lines.append)
    text = "\n".join(lines)
    off, warn, sync, hints, tmp_warn, tmp_sync = text.split("\n== ")[1:]
    assert "-> master_0 (master): SET is not a read" in off
    assert "(slave): SELECT is a read" in off and "@myrole = ''" in off
    assert "Warning" not in off
    assert "@myrole = ''" in warn
    assert "StateDivergenceWarning: SELECT @myrole AS _role: @myrole was set on master_0" in warn
    assert (
        "-> master_0 (master): SELECT is a read; pinned to master_0: @myrole was set there" in sync
    )
    assert "@myrole = 'master'" in sync and "Warning" not in sync
    assert "-> master_0 (master): hint ms=last_used" in hints
    assert "-> master_0 (master): hint ms=master" in hints and "@myrole = ''" not in hints
    assert "temporary table demo_tmp exists on master_0" in tmp_warn
    assert "error from slave_" in tmp_warn and "doesn't exist" in tmp_warn
    assert "pinned to master_0: temporary table demo_tmp exists there" in tmp_sync
    assert "result = 42" in tmp_sync


def test_cli_sandbox_status(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sandbox", "status", "--dir", str(sandbox.dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("running") == 3
    assert out.count("Slave_IO_Running=Yes, Slave_SQL_Running=Yes") == 2
    assert str(sandbox.primary.port) in out


def test_cli_explain_with_the_sandbox_config(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["explain", "--config", str(sandbox.config_path), "SELECT 1 FOR UPDATE"]) == 0
    assert capsys.readouterr().out.startswith("MASTER -> master_0: locking read (FOR UPDATE)")
