"""The state-pitfall demo and the CLI against the real sandbox."""

from __future__ import annotations

import pytest

import msplugin
from msplugin import cli, demo
from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration


def test_demo_shows_the_pitfall_and_the_fixes(sandbox: Sandbox) -> None:
    lines: list[str] = []
    with msplugin.connect("sandbox", config=str(sandbox.config_path)) as conn:
        demo.run(conn, lines.append)
    text = "\n".join(lines)
    pitfall, fix1, fix2, tmp = text.split("\n== ")[1:]
    assert (
        "SET @myrole='master'" in pitfall and "-> master_0 (master): SET is not a read" in pitfall
    )
    assert "(slave): SELECT is a read" in pitfall and "@myrole = ''" in pitfall
    assert "-> master_0 (master): hint ms=last_used" in fix1 and "@myrole = 'master'" in fix1
    assert "-> master_0 (master): hint ms=master" in fix2 and "@myrole = 'master'" in fix2
    assert "result = 42" in tmp


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
