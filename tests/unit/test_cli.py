"""CLI commands that need no server."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import msplugin
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


def write_config(path: Path, **group: object) -> Path:
    path.write_text(
        json.dumps({"g": {"master": [{"host": "m"}], "slave": [{"host": "s"}], **group}})
    )
    return path


def test_check_config_without_a_file_uses_the_lookup_of_connect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MSPLUGIN_CONFIG", raising=False)
    assert cli.main(["check-config"]) == 1
    assert "./msplugin.json was tried" in capsys.readouterr().err
    write_config(tmp_path / "msplugin.json")
    assert cli.main(["check-config"]) == 0
    assert "msplugin.json: OK" in capsys.readouterr().out
    env = write_config(tmp_path / "env.json", trx_stickiness="on")
    monkeypatch.setenv("MSPLUGIN_CONFIG", str(env))
    assert cli.main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert f"{env}: OK" in out and "trx_stickiness on" in out


def test_check_config_prints_each_groups_effective_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        tmp_path / "c.json",
        filters={"quality_of_service": {"session_consistency": 1}},
        session_state="sync",
        failover={"strategy": "master"},
        pooling={"max_size": 7},
        replica_stopped_limit=False,
    )
    assert cli.main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    for shown in (
        "service level session",
        "trx_stickiness master",
        "session_state sync",
        "failover master",
        "health check every 1 s (timeout 1 s)",
        "not used for reads never (off)",
        "pooling on: max_size 7",
    ):
        assert shown in out, (shown, out)


def test_check_config_imports_user_callbacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_config(tmp_path / "good.json", filters={"user": {"callback": "os.path:join"}})
    assert cli.main(["check-config", str(good)]) == 0
    bad = write_config(tmp_path / "bad.json", filters={"user": {"callback": "no_such_mod:f"}})
    assert cli.main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "g.filters.user.callback: cannot import module 'no_such_mod'" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"msplugin {msplugin.__version__}"


def test_every_option_has_help_and_says_its_default() -> None:
    def walk(parser: argparse.ArgumentParser, name: str) -> Iterator[tuple[str, argparse.Action]]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, subparser in action.choices.items():
                    yield from walk(subparser, f"{name} {sub}")
            elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
                yield name, action

    seen = 0
    for where, action in walk(cli._parser(), "msplugin"):
        seen += 1
        assert action.help, (where, action.dest)
        if action.default not in (None, False, argparse.SUPPRESS):
            assert "%(default)s" in action.help or "(default" in cli_help(where), (where, action)
    assert seen > 15


def cli_help(where: str) -> str:
    parser = cli._parser()
    words = where.split()[1:]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parser = action.choices[words[0]]
            break
    if len(words) > 1:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parser = action.choices[words[1]]
    return parser.format_help()


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({}, "roles: as listed below (topology.discover off)"),
        ({"topology": {"discover": True}}, "roles: discovered every 1 s, writes wait 5 s"),
        (
            {"cluster": "galera", "galera": {"priority": ["slave_0"]}},
            "roles: a Galera cluster checked every 1 s; writers one, priority slave_0",
        ),
    ],
)
def test_check_config_says_where_roles_come_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: dict[str, object], expected: str
) -> None:
    path = tmp_path / "c.json"
    group = {"master": [{"host": "m"}], "slave": [{"host": "s"}], **keys}
    path.write_text(json.dumps({"g": group}))
    assert cli.main(["check-config", str(path)]) == 0
    assert expected in capsys.readouterr().out
