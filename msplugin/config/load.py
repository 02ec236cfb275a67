"""Load a configuration file (mysqlnd_ms's JSON format) and check it into msplugin.config.model.

Everything is checked here, once, before any socket is opened; every problem is collected with
its JSON path so one run of ``msplugin check-config`` shows all of them. Scalar keys and the
object-valued sections are checked by the tables of msplugin.config.fields; the server lists
here, the filter chain in msplugin.config.chain.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import orjson

from msplugin._types import Role
from msplugin.config.chain import parse_filters
from msplugin.config.check import Checker, show
from msplugin.config.fields import (
    FAILOVER_FIELDS,
    GROUP_FIELDS,
    SECTIONS,
    SERVER_FIELDS,
    SERVER_OPTION_FIELDS,
    keys,
    parse_section,
)
from msplugin.config.model import (
    CONFIG_ENV,
    DEFAULT_CONFIG_FILE,
    DEFAULT_FILTERS,
    UNSUPPORTED_GROUP_KEYS,
    Config,
    FailoverConfig,
    GaleraConfig,
    GroupConfig,
    GtidInjectionConfig,
    OptimisticConfig,
    PoolingConfig,
    QuarantineConfig,
    ServerConfig,
    TopologyConfig,
    TransientErrorConfig,
)
from msplugin.errors import ConfigError

__all__ = [
    "ALL_SERVER_KEYS",
    "GROUP_KEYS",
    "duplicate_keys",
    "load_config",
    "parse_config",
    "resolve_config_path",
]


def resolve_config_path(config: str | os.PathLike[str] | None) -> Path:
    """Return the file to load: *config*, else $MSPLUGIN_CONFIG, else ./msplugin.json."""
    if config is not None:
        return Path(config)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    return Path(DEFAULT_CONFIG_FILE)


_cache_lock = threading.Lock()
_cache: dict[str, tuple[tuple[int, int], Config]] = {}


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate a configuration file; raise ConfigError naming every problem.

    The result is cached per file and reused while the file's size and mtime are unchanged,
    so connecting does not re-parse an unchanged file.
    """
    p = resolve_config_path(path)
    source = str(p)
    try:
        st = p.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        key = str(p.resolve())
        with _cache_lock:
            hit = _cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        raw = p.read_bytes()
    except FileNotFoundError:
        how = _where_from(path)
        raise ConfigError(source, [f"configuration file not found ({how})"]) from None
    except OSError as exc:
        raise ConfigError(source, [f"cannot read configuration file: {exc.strerror}"]) from exc
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(
            source, [f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"]
        ) from None
    dupes = duplicate_keys(raw)
    if dupes:
        raise ConfigError(
            source,
            [
                f"{path}: duplicate key {key!r} (JSON keeps only the last one)"
                for path, key in dupes
            ],
        )
    config = parse_config(data, source=source)
    with _cache_lock:
        _cache[key] = (stamp, config)
    return config


class _Object(dict[str, Any]):
    """A JSON object that remembers the keys it saw more than once."""

    dupes: list[str]


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    seen: set[str] = set()
    obj.dupes = [k for k, _ in pairs if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
    return obj


def duplicate_keys(raw: bytes) -> list[tuple[str, str]]:
    """(JSON path of the object, key) for every key an object of *raw* repeats.

    orjson, like most parsers, keeps the last of repeated keys silently; one copy-paste slip
    (two "slave" blocks) would then change where statements go. Off the statement path: a
    second parse, with the standard library, at load only.
    """
    found: list[tuple[str, str]] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, _Object):
            found.extend((path or "(top level)", key) for key in value.dupes)
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else key)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]")

    walk(json.loads(raw, object_pairs_hook=_object), "")
    return found


def _where_from(path: str | os.PathLike[str] | None) -> str:
    if path is not None:
        return "given as config="
    if os.environ.get(CONFIG_ENV):
        return f"from ${CONFIG_ENV}"
    return f"no config= given and ${CONFIG_ENV} unset, so ./{DEFAULT_CONFIG_FILE} was tried"


def parse_config(data: object, *, source: str = "<config>") -> Config:
    """Validate already-decoded JSON data; *source* names it in error messages."""
    chk = Checker(source)
    groups: dict[str, GroupConfig] = {}
    if not isinstance(data, dict):
        chk.problem("", f"expected an object of groups, got {show(data)}")
    elif not data:
        chk.problem("", "no groups defined")
    else:
        for name, body in data.items():
            group = _parse_group(chk, name, body)
            if group is not None:
                groups[name] = group
    chk.raise_if_any()
    return Config(source=source, groups=groups)


ALL_SERVER_KEYS: Final = keys(SERVER_FIELDS) | keys(SERVER_OPTION_FIELDS)
_URI_RE: Final = re.compile(r"(?P<host>[^:]*)(?::(?P<rest>.*))?")


def _parse_server(
    chk: Checker, path: str, name: str, role: Role, body: object
) -> ServerConfig | None:
    # mysqlnd_ms 1.0 style "host[:port|:/socket]" strings are accepted as a shorthand.
    if isinstance(body, str):
        return _server_uri(chk, path, name, role, body)
    obj = chk.mapping(path, body)
    if obj is None:
        return None
    before = len(chk.problems)
    if "host" not in obj:
        chk.problem(path, "missing required key 'host'")
    # host and user are never echoed: a misplaced list may hold a password.
    values = parse_section(chk, path, obj, SERVER_FIELDS + SERVER_OPTION_FIELDS)
    options = {
        f.name: values.pop(f.name)
        for f in SERVER_OPTION_FIELDS
        if f.key in obj and values[f.name] is not None
    }
    for f in SERVER_OPTION_FIELDS:
        values.pop(f.name, None)
    if values["host"] is None or len(chk.problems) > before:
        return None
    values["port"] = values["port"] or 3306
    return ServerConfig(name=name, role=role, options=options, **values)


def _server_uri(chk: Checker, path: str, name: str, role: Role, body: str) -> ServerConfig | None:
    m = _URI_RE.fullmatch(body)
    assert m is not None
    host, rest = m.group("host"), m.group("rest")
    if not host:
        chk.problem(path, f"expected host[:port|:/path/to/socket], got {show(body)}")
        return None
    if rest is None:
        return ServerConfig(name=name, role=role, host=host)
    if rest.startswith("/"):
        return ServerConfig(name=name, role=role, host=host, socket=rest)
    port = chk.integer(path, rest, 0, 65535)
    return None if port is None else ServerConfig(name, role, host, port=port or 3306)


def _parse_servers(chk: Checker, path: str, role: Role, value: object) -> tuple[ServerConfig, ...]:
    items: list[tuple[str, object]]
    if isinstance(value, list):
        items = [(f"{role}_{i}", v) for i, v in enumerate(value)]
        paths = [f"{path}[{i}]" for i in range(len(value))]
    elif isinstance(value, dict):
        items = list(value.items())
        paths = [f"{path}.{k}" for k in value]
    else:
        chk.problem(path, f"expected a list or an object of servers, got {show(value)}")
        return ()
    servers = []
    for (name, body), p in zip(items, paths, strict=True):
        server = _parse_server(chk, p, name, role, body)
        if server is not None:
            servers.append(server)
    return tuple(servers)


GROUP_KEYS: Final = frozenset({"master", "slave", "filters"}) | keys(GROUP_FIELDS) | SECTIONS.keys()
_SECTION_CLASSES: Final[dict[str, Any]] = {
    "failover": FailoverConfig,
    "transient_error": TransientErrorConfig,
    "global_transaction_id_injection": GtidInjectionConfig,
    "quarantine": QuarantineConfig,
    "pooling": PoolingConfig,
    "optimistic": OptimisticConfig,
    "topology": TopologyConfig,
    "galera": GaleraConfig,
}


def _section(chk: Checker, path: str, key: str, value: object) -> Any:
    """A group key whose value is an object checked by its table (msplugin.config.fields)."""
    if key == "failover" and isinstance(value, str):  # mysqlnd_ms 1.0-1.2: "failover": "master"
        strategy = chk.choice(path, value, FAILOVER_FIELDS[0].choices)
        return None if strategy is None else FailoverConfig(strategy=strategy)
    obj = chk.mapping(path, value)
    if obj is None:
        return None
    section = _SECTION_CLASSES[key](**parse_section(chk, path, obj, SECTIONS[key]))
    if isinstance(section, GtidInjectionConfig):
        check = section.check_for_gtid
        if check is not None and "#GTID" not in check:
            chk.problem(f"{path}.check_for_gtid", "must contain the placeholder #GTID")
    if isinstance(section, PoolingConfig) and section.min_size > section.max_size:
        chk.problem(
            f"{path}.min_size",
            f"must not exceed max_size ({section.max_size}), got {section.min_size}",
        )
    return section


def _parse_group(chk: Checker, name: str, body: object) -> GroupConfig | None:
    obj = chk.mapping(name, body)
    if obj is None:
        return None
    before = len(chk.problems)
    for key, reason in UNSUPPORTED_GROUP_KEYS.items():
        if key in obj:
            chk.problem(f"{name}.{key}", reason)
    chk.unknown_keys(
        name, {k: v for k, v in obj.items() if k not in UNSUPPORTED_GROUP_KEYS}, GROUP_KEYS
    )
    masters, slaves = _group_servers(chk, name, obj, before)
    aliases = tuple(s.name for s in masters + slaves)
    scalars = {f.key: obj[f.key] for f in GROUP_FIELDS if f.key in obj}
    values = parse_section(chk, name, scalars, GROUP_FIELDS)
    if len(masters) > 1 and not values["multi_master"]:
        chk.problem(
            f"{name}.master",
            f'{len(masters)} masters configured: set "multi_master": true to use several '
            "(writes then go to the first master that answers and stay there)",
        )
    filters = DEFAULT_FILTERS
    if "filters" in obj:
        filters = parse_filters(chk, f"{name}.filters", obj["filters"], aliases)
    for key in SECTIONS:
        if key in obj:
            section = _section(chk, f"{name}.{key}", key, obj[key])
            if section is not None:
                values[key] = section
    _check_galera(chk, name, values, aliases)
    group = GroupConfig(name=name, masters=masters, slaves=slaves, filters=filters, **values)
    return group if len(chk.problems) == before else None


def _check_galera(
    chk: Checker, name: str, values: Mapping[str, Any], aliases: tuple[str, ...]
) -> None:
    """The galera section's aliases exist, and it goes with "cluster": "galera"."""
    galera = values.get("galera")
    if galera is None:
        return
    if values.get("cluster") != "galera":
        chk.problem(f"{name}.galera", 'only with "cluster": "galera"')
    for i, alias in enumerate(galera.priority):
        if alias not in aliases:
            chk.problem(
                f"{name}.galera.priority[{i}]",
                f"no server {alias!r} in this group; servers: {', '.join(aliases)}",
            )


def _group_servers(
    chk: Checker, name: str, obj: Mapping[str, object], before: int
) -> tuple[tuple[ServerConfig, ...], tuple[ServerConfig, ...]]:
    """The group's masters and slaves (required keys; aliases unique across both)."""
    for required in ("master", "slave"):
        if required not in obj:
            chk.problem(name, f"missing required key {required!r}{_missing_hint(required, obj)}")
    masters = (
        _parse_servers(chk, f"{name}.master", Role.MASTER, obj["master"]) if "master" in obj else ()
    )
    slaves = (
        _parse_servers(chk, f"{name}.slave", Role.SLAVE, obj["slave"]) if "slave" in obj else ()
    )
    if "master" in obj and not masters and len(chk.problems) == before:
        chk.problem(f"{name}.master", "expected at least one master server")
    aliases = [s.name for s in masters + slaves]
    dupes = sorted({a for a in aliases if aliases.count(a) > 1})
    if dupes:
        chk.problem(
            name, f"server aliases must be unique across master and slave: {', '.join(dupes)}"
        )
    return masters, slaves


def _missing_hint(required: str, obj: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(
        required, [k for k in obj if k not in GROUP_KEYS], n=1, cutoff=0.6
    )
    return f" (found {close[0]!r}: did you mean {required!r}?)" if close else ""
