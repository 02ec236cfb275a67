"""The key tables (msplugin/config/fields.py) against what is built from them or beside them:
the generated JSON Schema, the model's defaults, and the manual's reference chapter."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from test_config import BAD_CASES, BASE, with_group

from msplugin import config as cfg
from msplugin.config.fields import GROUP_FIELDS, SECTIONS, SERVER_FIELDS, SERVER_OPTION_FIELDS
from msplugin.config.schema import render

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "configs" / "schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

# Rules that span several keys or need PyMySQL's tables: the loader's alone.
LOADER_ONLY = (
    "the load-balancing filter 'roundrobin' must be the last",
    "no server 'slave_9' in this group",
    "weights must cover every server",
    "unknown character set",
    "must not exceed max_size",
    'set "multi_master": true',
    "server aliases must be unique",
)

VALID = [
    BASE,
    with_group(filters={"roundrobin": {"weights": {"master_0": 1, "slave_0": 8, "slave_1": "2"}}}),
    with_group(filters={"quality_of_service": {"eventual_consistency": {"age": 4}}, "random": []}),
    with_group(filters=["user_multi", "roundrobin"], lazy_connections="off", failover="master"),
    with_group(
        slave=["192.168.2.27:3306", "db9:/tmp/mysql.sock", {"host": "db8", "port": "3307"}],
        master=[{"host": "localhost", "socket": "/tmp/mysql.sock", "connect_flags": 65536}],
        quarantine={"check_interval": 0, "interval": "0.5"},
        pooling={"enabled": "yes", "max_size": 5, "queue_timeout": 2},
        replica_stopped_limit=False,
        transient_error={"mysql_error_codes": [1205, "1213"], "usleep_retry": 0},
        global_transaction_id_injection={"check_for_gtid": "SELECT #GTID", "report_error": "0"},
        session_state="sync",
        master_on_write=" TRUE ",
    ),
]


def test_the_schema_file_is_generated_from_the_tables() -> None:
    assert (ROOT / "configs" / "schema.json").read_text() == render(), (
        "configs/schema.json is stale: python -m msplugin.config.schema > configs/schema.json"
    )


def test_the_schema_is_a_valid_2020_12_schema_with_valid_patterns() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)  # patterns checked as ECMA-262 regexes
    text = json.dumps(SCHEMA)
    assert "(?" not in text  # no inline flags: ECMA-262 has none


def test_the_example_config_is_valid() -> None:
    VALIDATOR.validate(json.loads((ROOT / "configs" / "example.json").read_text()))


@pytest.mark.parametrize("data", VALID, ids=range(len(VALID)))
def test_configs_the_loader_accepts_are_valid(data: dict[str, Any], tmp_path: Path) -> None:
    from msplugin.config import load_config

    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    load_config(path)  # the loader accepts it ...
    VALIDATOR.validate(data)  # ... and so does the schema


def _loader_only(fragment: str) -> bool:
    return any(rule in fragment for rule in LOADER_ONLY)


def test_every_rule_left_to_the_loader_is_one_of_its_tested_refusals() -> None:
    for rule in LOADER_ONLY:
        assert any(rule in fragment for _, fragment in BAD_CASES), rule


@pytest.mark.parametrize(
    ("changes", "fragment"), [case for case in BAD_CASES if not _loader_only(case[1])]
)
def test_configs_the_loader_refuses_are_invalid(changes: dict[str, Any], fragment: str) -> None:
    data = with_group(**changes)
    assert list(VALIDATOR.iter_errors(data)), (
        f"the schema accepts what the loader refuses: {fragment}"
    )


@pytest.mark.parametrize(
    ("cls", "fields"),
    [
        (cfg.FailoverConfig, SECTIONS["failover"]),
        (cfg.TransientErrorConfig, SECTIONS["transient_error"]),
        (cfg.GtidInjectionConfig, SECTIONS["global_transaction_id_injection"]),
        (cfg.QuarantineConfig, SECTIONS["quarantine"]),
        (cfg.PoolingConfig, SECTIONS["pooling"]),
    ],
)
def test_the_model_has_the_tables_defaults(cls: Any, fields: Any) -> None:
    model = cls()
    assert [f.name for f in dataclasses.fields(model)] == [f.name for f in fields]
    for f in fields:
        assert getattr(model, f.name) == f.default, f.key


def test_group_and_server_defaults_match_the_tables() -> None:
    group = cfg.GroupConfig(name="g", masters=(), slaves=())
    for f in GROUP_FIELDS:
        assert getattr(group, f.name) == f.default, f.key
    server = cfg.ServerConfig(name="s", role="slave", host="h")
    for f in SERVER_FIELDS[1:]:
        assert getattr(server, f.name) == f.default, f.key


def _reference() -> str:
    text = (ROOT / "MANUAL.md").read_text()
    return text[text.index("## 3. Configuration reference") : text.index("## 4. ")]


def test_the_manual_reference_names_every_key() -> None:
    reference = _reference()
    every = [f.key for f in GROUP_FIELDS + SERVER_FIELDS + SERVER_OPTION_FIELDS]
    every += [f.key for fields in SECTIONS.values() for f in fields] + list(SECTIONS)
    missing = [key for key in every if f"`{key}`" not in reference and f".{key}`" not in reference]
    assert not missing, f"MANUAL.md chapter 3 does not describe: {missing}"


def test_the_manual_reference_gives_the_group_defaults() -> None:
    reference = _reference()
    for f in GROUP_FIELDS + SECTIONS["failover"]:
        if f.default is None:
            continue
        row = re.search(rf"^\| `(failover\.)?{f.key}` \|[^|]*\| ([^|]*) \|", reference, re.M)
        assert row is not None, f.key
        assert f"`{json.dumps(f.default)}`" in row.group(2), (f.key, row.group(2))
