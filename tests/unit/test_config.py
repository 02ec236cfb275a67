"""Config loading: every ConfigError branch names the file, the JSON path and the bad value."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pymysql
import pytest

import msplugin
from msplugin.config import load_config

SECRET = "s3cr3t-Pa55"
BASE: dict[str, Any] = {
    "myapp": {
        "master": {"master_0": {"host": "db1", "port": 3306, "password": SECRET}},
        "slave": {"slave_0": {"host": "db2", "port": "3306"}, "slave_1": {"host": "db3"}},
    }
}


def write(tmp_path: Path, data: Any, name: str = "myapp.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def with_group(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is None:
            del data["myapp"][key]
        else:
            data["myapp"][key] = value
    return data


def test_config_error_is_a_pymysql_interface_error() -> None:
    assert issubclass(msplugin.ConfigError, pymysql.err.InterfaceError)


def test_loads_a_mysqlnd_ms_config_unchanged(tmp_path: Path) -> None:
    data = {
        "myapp": {
            "master": [{"host": "localhost", "socket": "/tmp/mysql.sock"}],
            "slave": ["192.168.2.27:3306", {"host": "192.168.2.28", "port": "3307"}],
            "filters": ["roundrobin"],
            "lazy_connections": "1",
            "master_on_write": "off",
            "failover": "master",
            "trx_stickiness": "disabled",
            "server_charset": "utf8",
        }
    }
    g = load_config(write(tmp_path, data)).group("myapp")
    assert [s.name for s in g.masters] == ["master_0"]
    assert g.masters[0].socket == "/tmp/mysql.sock"
    assert [(s.name, s.host, s.port) for s in g.slaves] == [
        ("slave_0", "192.168.2.27", 3306),
        ("slave_1", "192.168.2.28", 3307),
    ]
    assert [f.name for f in g.filters] == ["roundrobin"]
    assert g.lazy_connections is True and g.master_on_write is False
    assert g.failover.strategy == "master"
    assert g.trx_stickiness == "disabled"
    assert g.server_charset == "utf8"


def test_defaults(tmp_path: Path) -> None:
    g = load_config(write(tmp_path, BASE)).group("myapp")
    assert g.lazy_connections is True
    assert g.trx_stickiness == "master"
    assert g.classifier == "default"
    assert g.failover.strategy == "loop_before_master"
    assert [(f.name, f.sticky) for f in g.filters] == [("random", True)]
    assert g.session_state == "warn"
    assert g.pooling.max_size == 25


def test_filters_object_form_with_weights_and_multi_filter(tmp_path: Path) -> None:
    weights = {"master_0": 1, "slave_0": 8, "slave_1": "2"}
    data = with_group(
        filters={
            "quality_of_service": {"eventual_consistency": {"age": 4}},
            "random": {"sticky": "1", "weights": weights},
        }
    )
    g = load_config(write(tmp_path, data)).group("myapp")
    assert [f.name for f in g.filters] == ["quality_of_service", "random"]
    assert g.filters[0].qos_level == "eventual" and g.filters[0].qos_age == 4
    assert g.load_balancer.sticky is True
    assert dict(g.load_balancer.weights or {}) == {"master_0": 1, "slave_0": 8, "slave_1": 2}


def test_chain_without_load_balancer_gets_random_once(tmp_path: Path) -> None:
    data = with_group(filters={"quality_of_service": {"strong_consistency": 1}})
    g = load_config(write(tmp_path, data)).group("myapp")
    assert [(f.name, f.sticky) for f in g.filters] == [
        ("quality_of_service", False),
        ("random", True),
    ]


BAD_CASES = [
    # (changes to the group, expected fragment of the message)
    (
        {"slave": {"slave_0": {"host": "db2", "port": "33o6"}}},
        'myapp.slave.slave_0.port: expected an integer 0..65535, got "33o6"',
    ),
    (
        {"slave": {"slave_0": {"host": "db2", "port": 70000}}},
        "myapp.slave.slave_0.port: expected an integer 0..65535, got 70000",
    ),
    ({"slave": {"slave_0": {"port": 3306}}}, "myapp.slave.slave_0: missing required key 'host'"),
    (
        {"slave": {"slave_0": {"host": ["db2"]}}},
        "myapp.slave.slave_0.host: expected a string, got a list",
    ),
    (
        {"slave": {"slave_0": {"host": "db2", "prot": 1}}},
        "myapp.slave.slave_0.prot: unknown key (did you mean 'port'?)",
    ),
    ({"master": None}, "myapp: missing required key 'master'"),
    ({"slave": None}, "myapp: missing required key 'slave'"),
    (
        {"slave": None, "slaves": []},
        "missing required key 'slave' (found 'slaves': did you mean 'slave'?)",
    ),
    (
        {"lazy_conections": 1},
        "myapp.lazy_conections: unknown key (did you mean 'lazy_connections'?)",
    ),
    (
        {"trx_stickiness": "sometimes"},
        "myapp.trx_stickiness: expected one of 'disabled', 'master', 'on', 'optimistic', got \"sometimes\"",
    ),
    ({"classifier": "smart"}, "myapp.classifier: expected one of 'default', 'mysqlnd_ms'"),
    ({"lazy_connections": "maybe"}, "myapp.lazy_connections: expected a boolean"),
    ({"filters": ["randon"]}, "myapp.filters[0]: unknown filter 'randon' (did you mean 'random'?)"),
    ({"filters": ["random", "roundrobin"]}, "at most one load-balancing filter is allowed"),
    (
        {"filters": ["roundrobin", "quality_of_service"]},
        "myapp.filters[1]: expected exactly one of",
    ),
    (
        {"filters": {"roundrobin": [], "quality_of_service": {"strong_consistency": 1}}},
        "the load-balancing filter 'roundrobin' must be the last of the chain",
    ),
    (
        {
            "filters": {
                "random": {"weights": {"slave_9": 1, "master_0": 1, "slave_0": 1, "slave_1": 1}}
            }
        },
        "myapp.filters.random.weights.slave_9: no server 'slave_9' in this group",
    ),
    (
        {"filters": {"random": {"weights": {"master_0": 1, "slave_0": 0, "slave_1": 1}}}},
        "myapp.filters.random.weights.slave_0: expected an integer 1..65535, got 0",
    ),
    (
        {"filters": {"roundrobin": {"weights": {"master_0": 1, "slave_0": 70000, "slave_1": 1}}}},
        "myapp.filters.roundrobin.weights.slave_0: expected an integer 1..65535, got 70000",
    ),
    (
        {"filters": {"random": {"weights": {"slave_0": 2}}}},
        "myapp.filters.random.weights: weights must cover every server of the group; missing: master_0, slave_1",
    ),
    (
        {"filters": {"random": {"stiky": 1}}},
        "myapp.filters.random.stiky: unknown key (did you mean 'sticky'?)",
    ),
    ({"filters": {"table": {}}}, "table (partitioning) filter is not implemented"),
    (
        {"failover": "sometimes"},
        "myapp.failover: expected one of 'disabled', 'master', 'loop_before_master'",
    ),
    (
        {"failover": {"strategy": "loop_before_master", "max_retries": -1}},
        "myapp.failover.max_retries: expected an integer 0..1000, got -1",
    ),
    ({"server_charset": "klingon"}, 'myapp.server_charset: unknown character set "klingon"'),
    (
        {"pooling": {"max_size": 2, "min_size": 5}},
        "myapp.pooling.min_size: must not exceed max_size (2)",
    ),
    ({"session_state": "always"}, "myapp.session_state: expected one of 'off', 'warn', 'sync'"),
    (
        {"global_transaction_id_injection": {"check_for_gtid": "SELECT 1"}},
        "check_for_gtid: must contain the placeholder #GTID",
    ),
    (
        {"transient_error": {"mysql_error_codes": [1205, "x"]}},
        "myapp.transient_error.mysql_error_codes[1]: expected an integer",
    ),
    (
        {"master": {"master_0": {"host": "a"}, "master_1": {"host": "b"}}},
        'set "multi_master": true to use several',
    ),
    (
        {"slave": {"master_0": {"host": "x"}}},
        "server aliases must be unique across master and slave: master_0",
    ),
    ({"fabric": {}}, "myapp.fabric: MySQL Fabric support was removed"),
    ({"replica_status_interval": 0}, "myapp.replica_status_interval: expected a number > 0"),
]


@pytest.mark.parametrize(("changes", "fragment"), BAD_CASES)
def test_bad_config_names_file_path_and_value(
    tmp_path: Path, changes: dict[str, Any], fragment: str
) -> None:
    path = write(tmp_path, with_group(**changes))
    with pytest.raises(msplugin.ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert fragment in message
    assert all(line.startswith(f"{path}: ") for line in message.splitlines())
    assert SECRET not in message


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    data = with_group(trx_stickiness="sometimes", classifier="smart", lazy_connections="maybe")
    with pytest.raises(msplugin.ConfigError) as info:
        load_config(write(tmp_path, data))
    assert len(info.value.problems) == 3


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(msplugin.ConfigError, match=rf"{missing}: configuration file not found"):
        load_config(missing)


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(msplugin.ConfigError, match=rf"{tmp_path}: cannot read configuration file"):
        load_config(tmp_path)  # a directory


def test_malformed_json_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "myapp": {\n    "master": [,]\n  }\n}')
    with pytest.raises(msplugin.ConfigError, match=r"invalid JSON at line 3 column \d+"):
        load_config(path)


def test_top_level_must_be_an_object_of_groups(tmp_path: Path) -> None:
    with pytest.raises(msplugin.ConfigError, match="expected an object of groups"):
        load_config(write(tmp_path, "[1]"))
    with pytest.raises(msplugin.ConfigError, match="no groups defined"):
        load_config(write(tmp_path, "{}", name="empty.json"))


def test_password_type_error_does_not_echo_the_value(tmp_path: Path) -> None:
    data = with_group(master={"master_0": {"host": "db1", "password": [SECRET]}})
    with pytest.raises(msplugin.ConfigError) as info:
        load_config(write(tmp_path, data))
    assert "myapp.master.master_0.password: expected a string, got a list" in str(info.value)
    assert SECRET not in str(info.value)


def test_password_is_not_in_repr(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))
    assert SECRET not in repr(config)
    assert SECRET not in repr(config.group("myapp").masters[0])


def test_unknown_group_lists_the_groups(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    with pytest.raises(
        msplugin.ConfigError,
        match=r"no group 'myap' \(did you mean 'myapp'\?\); groups in this file: 'myapp'",
    ):
        msplugin.connect("myap", config=path)


def test_config_from_environment_then_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, BASE, name="env.json")
    monkeypatch.setenv("MSPLUGIN_CONFIG", str(path))
    assert load_config().source == str(path)
    monkeypatch.delenv("MSPLUGIN_CONFIG")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        msplugin.ConfigError,
        match=r"msplugin.json: configuration file not found .*\./msplugin.json was tried",
    ):
        load_config()
    write(tmp_path, BASE, name="msplugin.json")
    assert "myapp" in load_config().groups


def test_reload_after_change(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    assert load_config(path).group("myapp").lazy_connections is True
    path.write_text(json.dumps(with_group(lazy_connections=0)) + "\n")
    assert load_config(path).group("myapp").lazy_connections is False


def test_shipped_example_config_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "configs" / "example.json")
    assert config.groups


def test_schema_knows_exactly_the_keys_the_loader_knows() -> None:
    from msplugin.config import ALL_SERVER_KEYS, GROUP_KEYS

    root = Path(__file__).resolve().parents[2]
    schema = json.loads((root / "configs" / "schema.json").read_text())
    group = schema["$defs"]["group"]["properties"]
    server = schema["$defs"]["server"]["properties"]
    assert set(group) == set(GROUP_KEYS)
    assert set(server) == set(ALL_SERVER_KEYS)


def test_connect_rejects_unknown_keywords(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        msplugin.connect("myapp", config=path, colour="red")
    with pytest.raises(TypeError, match="servers come from the group's configuration"):
        msplugin.connect("myapp", config=path, host="db9")


def test_user_filter_callbacks_are_checked_at_connect(tmp_path: Path) -> None:
    path = write(tmp_path, with_group(filters=["user"]), name="user.json")
    with pytest.raises(msplugin.ProgrammingError, match=r"filters\.user: no callback"):
        msplugin.connect("myapp", config=path)
    path = write(
        tmp_path, with_group(filters={"user": {"callback": "no_such_mod:f"}}), name="u2.json"
    )
    with pytest.raises(msplugin.ProgrammingError, match="cannot import module 'no_such_mod'"):
        msplugin.connect("myapp", config=path)
    path = write(
        tmp_path, with_group(filters={"user": {"callback": "os.path:nope"}}), name="u3.json"
    )
    with pytest.raises(msplugin.ProgrammingError, match="no callable 'nope'"):
        msplugin.connect("myapp", config=path)
    path = write(tmp_path, with_group(filters=["user_multi", "random"]), name="um.json")
    with pytest.raises(msplugin.ProgrammingError, match="user_multi: needs"):
        msplugin.connect("myapp", config=path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '{"myapp": {"master": {"master_0": {"host": "db1", "port": 1111, "port": 2222}},'
            ' "slave": {}}}',
            "myapp.master.master_0: duplicate key 'port'",
        ),
        (
            '{"myapp": {"master": ["db1"], "slave": ["db2"], "slave": []}}',
            "myapp: duplicate key 'slave'",
        ),
        (
            '{"myapp": {"master": ["db1"], "slave": []}, "myapp": {"master": ["db9"], "slave": []}}',
            "(top level): duplicate key 'myapp'",
        ),
        (
            '{"g": {"master": [{"host": "a", "user": "u", "user": "v"}], "slave": []}}',
            "g.master[0]: duplicate key 'user'",
        ),
    ],
)
def test_duplicate_keys_are_an_error_with_their_path(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "dupes.json"
    path.write_text(text)
    with pytest.raises(msplugin.ConfigError) as info:
        load_config(path)
    assert f"{path}: {problem} (JSON keeps only the last one)" in str(info.value)


@pytest.mark.parametrize("key", ["user", "password", "host"])
@pytest.mark.parametrize("value", [["app", SECRET], {"p": SECRET}, 12345, True])
def test_credentials_of_the_wrong_type_are_never_echoed(
    tmp_path: Path, key: str, value: object
) -> None:
    server = {"host": "db1", key: value}
    data = with_group(master={"master_0": server})
    with pytest.raises(msplugin.ConfigError) as info:
        load_config(write(tmp_path, data))
    message = str(info.value)
    assert f"myapp.master.master_0.{key}: expected a " in message
    for shown in (SECRET, "12345", "true", "app"):
        assert shown not in message.split(f".{key}:", 1)[1], message


def test_a_number_is_still_a_port_or_a_db_name_but_never_a_password(tmp_path: Path) -> None:
    ok = with_group(master={"master_0": {"host": "db1", "port": "3307", "db": 7}})
    server = load_config(write(tmp_path, ok)).group("myapp").masters[0]
    assert (server.port, server.db) == (3307, "7")


def test_health_check_and_replica_rule_defaults_and_validation(tmp_path: Path) -> None:
    group = load_config(write(tmp_path, BASE)).group("myapp")
    assert (group.quarantine.check_interval, group.quarantine.check_timeout) == (1.0, 1.0)
    assert group.replica_stopped_limit == 5.0
    changed = with_group(
        quarantine={"check_interval": 0, "check_timeout": "0.5"}, replica_stopped_limit=False
    )
    group = load_config(write(tmp_path, changed, name="c.json")).group("myapp")
    assert (group.quarantine.check_interval, group.quarantine.check_timeout) == (0.0, 0.5)
    assert group.replica_stopped_limit is None
    bad = with_group(quarantine={"check_timeout": 0}, replica_stopped_limit=-1)
    with pytest.raises(msplugin.ConfigError) as info:
        load_config(write(tmp_path, bad, name="bad.json"))
    message = str(info.value)
    assert "myapp.quarantine.check_timeout: expected a number > 0 (seconds), got 0" in message
    assert "myapp.replica_stopped_limit: expected a number >= 0 (seconds), got -1" in message
