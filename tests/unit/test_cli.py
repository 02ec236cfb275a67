"""CLI commands that need no server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from msplugin import cli


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            {"g": {"master": [{"host": "m", "password": "pw-123"}], "slave": [{"host": "s"}]}}
        )
    )
    assert cli.main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "group 'g'" in out and "master_0" in out and "slave_0" in out and "pw-123" not in out


def test_check_config_lists_every_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps({"g": {"master": [{"host": "m", "port": "x"}], "slave": [], "classifier": "x"}})
    )
    assert cli.main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "2 problem(s)" in err and "g.master[0].port" in err and "g.classifier" in err


def test_explain_without_config_uses_the_classifier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MSPLUGIN_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["explain", "SELECT 1; DELETE FROM t"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "MASTER: multi-statement: DELETE is not a read"
    assert "SLAVE" in out and "MASTER    DELETE FROM t" in out
    assert cli.main(["explain", "--classifier", "mysqlnd_ms", "(SELECT 1)"]) == 0
    assert capsys.readouterr().out.startswith("MASTER: first keyword is not SELECT")
