"""Load and validate the plugin configuration (mysqlnd_ms's JSON format) into frozen dataclasses.

Everything is checked here, once, before any socket is opened. Friendly literals from the file
("1", "off", "roundrobin") become Python values and enums; every problem is collected with its
JSON path so one run of ``msplugin check-config`` shows all of them.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import orjson
from pymysql.charset import charset_by_name

from msplugin.errors import ConfigError

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_FILE",
    "Config",
    "FailoverConfig",
    "FilterConfig",
    "GroupConfig",
    "GtidInjectionConfig",
    "PoolingConfig",
    "QuarantineConfig",
    "ServerConfig",
    "TransientErrorConfig",
    "load_config",
    "parse_config",
    "resolve_config_path",
]

CONFIG_ENV: Final = "MSPLUGIN_CONFIG"
DEFAULT_CONFIG_FILE: Final = "msplugin.json"

Role = Literal["master", "slave"]
TrxStickiness = Literal["disabled", "master", "on"]
FailoverStrategy = Literal["disabled", "master", "loop_before_master"]
Classifier = Literal["default", "mysqlnd_ms"]
SessionStateMode = Literal["off", "warn", "sync"]
QosLevel = Literal["strong", "session", "eventual"]

# Filters that pick exactly one server ("non-multi" in mysqlnd_ms): at most one, and last.
LOAD_BALANCERS: Final = frozenset(
    {"random", "roundrobin", "user", "least_connections", "fastest_response"}
)
# Filters that narrow the candidate list and hand it on.
MULTI_FILTERS: Final = frozenset({"user_multi", "quality_of_service", "node_groups"})
FILTER_NAMES: Final = LOAD_BALANCERS | MULTI_FILTERS

# mysqlnd_ms keys that msplugin deliberately does not implement: refused with a reason.
UNSUPPORTED_GROUP_KEYS: Final = {
    "fabric": "MySQL Fabric support was removed from MySQL; msplugin does not implement it",
    "xa": "mysqlnd_ms's distributed XA state store is not implemented by msplugin",
}
UNSUPPORTED_FILTERS: Final = {
    "table": "mysqlnd_ms's table (partitioning) filter is not implemented by msplugin",
}


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """One server of a group, as configured (credentials not yet merged with connect())."""

    name: str
    role: Role
    host: str
    port: int | None = None
    socket: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    db: str | None = None
    connect_timeout: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FilterConfig:
    """One entry of a group's filter chain, with its arguments normalised."""

    name: str
    sticky: bool = False
    weights: Mapping[str, int] | None = None
    callback: str | None = None
    qos_level: QosLevel | None = None
    qos_age: int | None = None
    node_groups: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] | None = None

    @property
    def is_load_balancer(self) -> bool:
        return self.name in LOAD_BALANCERS


@dataclass(frozen=True, slots=True)
class FailoverConfig:
    strategy: FailoverStrategy = "loop_before_master"
    remember_failed: bool = False
    max_retries: int = 0


@dataclass(frozen=True, slots=True)
class TransientErrorConfig:
    mysql_error_codes: tuple[int, ...] = ()
    max_retries: int = 1
    usleep_retry: int = 100


@dataclass(frozen=True, slots=True)
class GtidInjectionConfig:
    on_commit: str | None = None
    fetch_last_gtid: str | None = None
    check_for_gtid: str | None = None
    report_error: bool = True
    wait_for_gtid_timeout: int = 0


@dataclass(frozen=True, slots=True)
class QuarantineConfig:
    interval: float = 2.0  # seconds between probes of a quarantined server
    failure_threshold: int = 1
    check_interval: float = 1.0  # seconds between health checks of a server in use; 0: none
    check_timeout: float = 1.0  # a health check unanswered this long finds the server hung


@dataclass(frozen=True, slots=True)
class PoolingConfig:
    enabled: bool = True
    max_size: int = 25
    min_size: int = 0
    max_idle_time: float = 0.0
    max_lifetime: float = 0.0
    queue_timeout: float = 0.0
    pre_ping: bool = False


DEFAULT_FILTERS: Final[tuple[FilterConfig, ...]] = (FilterConfig(name="random", sticky=True),)


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """A named group: its servers and the policies that route statements over them."""

    name: str
    masters: tuple[ServerConfig, ...]
    slaves: tuple[ServerConfig, ...]
    filters: tuple[FilterConfig, ...] = DEFAULT_FILTERS
    lazy_connections: bool = True
    master_on_write: bool = False
    trx_stickiness: TrxStickiness = "master"
    multi_master: bool = False
    failover: FailoverConfig = FailoverConfig()
    server_charset: str | None = None
    classifier: Classifier = "default"
    session_state: SessionStateMode = "warn"
    transient_error: TransientErrorConfig | None = None
    global_transaction_id_injection: GtidInjectionConfig | None = None
    quarantine: QuarantineConfig = QuarantineConfig()
    pooling: PoolingConfig = PoolingConfig()
    replica_status_interval: float = 1.0
    # Seconds a replica may go without both replication threads running before reads avoid
    # it; None: reads never avoid it for that.
    replica_stopped_limit: float | None = 5.0

    @property
    def servers(self) -> tuple[ServerConfig, ...]:
        return self.masters + self.slaves

    @property
    def load_balancer(self) -> FilterConfig:
        """The last filter of the chain, which picks one server."""
        return self.filters[-1]


@dataclass(frozen=True, slots=True)
class Config:
    """A loaded configuration file: its groups by name."""

    source: str
    groups: Mapping[str, GroupConfig]

    def group(self, name: str) -> GroupConfig:
        """Return the group called *name*, or raise ConfigError listing the groups there are."""
        try:
            return self.groups[name]
        except KeyError:
            known = ", ".join(repr(g) for g in self.groups) or "none"
            hint = _did_you_mean(name, self.groups)
            raise ConfigError(
                self.source, [f"no group {name!r}{hint}; groups in this file: {known}"]
            ) from None


# --------------------------------------------------------------------------------------------
# Loading


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
    chk = _Checker(source)
    groups: dict[str, GroupConfig] = {}
    if not isinstance(data, dict):
        chk.problem("", f"expected an object of groups, got {_show(data)}")
    elif not data:
        chk.problem("", "no groups defined")
    else:
        for name, body in data.items():
            group = _parse_group(chk, name, body)
            if group is not None:
                groups[name] = group
    chk.raise_if_any()
    return Config(source=source, groups=groups)


# --------------------------------------------------------------------------------------------
# Validation helpers

T = TypeVar("T")


def _show(value: object) -> str:
    """Render a bad value for a message: JSON-like, cut short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        text = orjson.dumps(value).decode()
        return f"a list {text[:60]}{'...' if len(text) > 60 else ''}"
    if value is None:
        return "null"
    text = orjson.dumps(value).decode() if isinstance(value, str | int | float) else repr(value)
    return text[:80] + ("..." if len(text) > 80 else "")


def _kind(value: object) -> str:
    """Describe a value's type only (used where the value is secret)."""
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), "null")


def _did_you_mean(
    word: str, choices: Mapping[str, object] | frozenset[str] | tuple[str, ...]
) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


_TRUE: Final = frozenset({"1", "true", "on", "yes"})
_FALSE: Final = frozenset({"0", "false", "off", "no", ""})
_INT_RE: Final = re.compile(r"[+-]?[0-9]+")
_CALLBACK_RE: Final = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


class _Checker:
    """Collects problems; the ``get_*`` helpers return a value or ``None`` after a problem."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}" if path else message)

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigError(self.source, self.problems)

    def mapping(self, path: str, value: object) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.problem(path, f"expected an object, got {_show(value)}")
        return None

    def unknown_keys(self, path: str, obj: Mapping[str, object], known: frozenset[str]) -> None:
        for key in obj:
            if key not in known:
                self.problem(
                    f"{path}.{key}",
                    f"unknown key{_did_you_mean(key, known)}; allowed: {', '.join(sorted(known))}",
                )

    def string(self, path: str, value: object, *, secret: bool = False) -> str | None:
        """A string; a number is taken as its text (mysqlnd_ms configs give numbers where
        strings belong), except for a *secret*, which is never shown, only its type."""
        if isinstance(value, str):
            return value
        if not secret and isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        shown = _kind(value) if secret else _show(value)
        self.problem(path, f"expected a string, got {shown}")
        return None

    def nonempty(self, path: str, value: object, *, secret: bool = False) -> str | None:
        s = self.string(path, value, secret=secret)
        if s is not None and not s.strip():
            self.problem(path, "expected a non-empty string")
            return None
        return s

    def boolean(self, path: str, value: object) -> bool | None:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            low = value.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
        self.problem(path, f'expected a boolean (true/false, 1/0, "on"/"off"), got {_show(value)}')
        return None

    def integer(self, path: str, value: object, lo: int, hi: int | None = None) -> int | None:
        n: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            n = value
        elif isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
            n = int(value)
        if n is not None and n >= lo and (hi is None or n <= hi):
            return n
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        self.problem(path, f"expected an integer {rng}, got {_show(value)}")
        return None

    def number(self, path: str, value: object, *, positive: bool) -> float | None:
        x: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            x = float(value)
        elif isinstance(value, str):
            try:
                x = float(value)
            except ValueError:
                x = None
        if x is not None and x == x and x != float("inf") and (x > 0 if positive else x >= 0):
            return x
        what = "a number > 0" if positive else "a number >= 0"
        self.problem(path, f"expected {what} (seconds), got {_show(value)}")
        return None

    def choice(self, path: str, value: object, allowed: tuple[str, ...]) -> Any:
        if isinstance(value, str) and value in allowed:
            return value
        hint = _did_you_mean(value, allowed) if isinstance(value, str) else ""
        self.problem(
            path, f"expected one of {', '.join(repr(a) for a in allowed)}, got {_show(value)}{hint}"
        )
        return None

    def field(
        self,
        obj: Mapping[str, object],
        path: str,
        key: str,
        convert: Callable[[str, object], T | None],
        default: T,
    ) -> T:
        """Read optional key *key* of *obj* with *convert*; the default on absence or error."""
        if key not in obj:
            return default
        value = convert(f"{path}.{key}", obj[key])
        return default if value is None else value


# --------------------------------------------------------------------------------------------
# Servers

SERVER_KEYS: Final = frozenset(
    {"host", "port", "socket", "user", "password", "db", "connect_timeout"}
)
# PyMySQL connect() options a server entry may carry, with how each is checked.
SERVER_OPTION_KEYS: Final = frozenset(
    {
        "charset",
        "read_timeout",
        "write_timeout",
        "init_command",
        "sql_mode",
        "ssl_ca",
        "ssl_cert",
        "ssl_key",
        "ssl_verify_cert",
        "ssl_verify_identity",
        "local_infile",
        "connect_flags",
        "max_allowed_packet",
        "bind_address",
    }
)
ALL_SERVER_KEYS: Final = SERVER_KEYS | SERVER_OPTION_KEYS


def _server_option(chk: _Checker, path: str, key: str, value: object) -> tuple[str, Any] | None:
    """Check one PyMySQL option; return (pymysql keyword, value)."""
    if key in {"read_timeout", "write_timeout"}:
        x = chk.number(path, value, positive=True)
        return None if x is None else (key, x)
    if key in {"ssl_verify_cert", "ssl_verify_identity", "local_infile"}:
        b = chk.boolean(path, value)
        return None if b is None else (key, b)
    if key == "connect_flags":
        n = chk.integer(path, value, 0, 2**32 - 1)
        return None if n is None else ("client_flag", n)
    if key == "max_allowed_packet":
        n = chk.integer(path, value, 1024, 1024**3)
        return None if n is None else (key, n)
    if key == "charset":
        return None if (cs := _charset(chk, path, value)) is None else (key, cs)
    s = chk.string(path, value)
    return None if s is None else (key, s)


def _charset(chk: _Checker, path: str, value: object) -> str | None:
    s = chk.nonempty(path, value)
    if s is None:
        return None
    # PyMySQL's table of character sets: a name it does not know cannot be negotiated.
    if charset_by_name(s.lower()) is None:
        chk.problem(path, f"unknown character set {_show(s)}")
        return None
    return s.lower()


_URI_RE: Final = re.compile(r"(?P<host>[^:]*)(?::(?P<rest>.*))?")


def _parse_server(
    chk: _Checker, path: str, name: str, role: Role, body: object
) -> ServerConfig | None:
    # mysqlnd_ms 1.0 style "host[:port|:/socket]" strings are accepted as a shorthand.
    if isinstance(body, str):
        m = _URI_RE.fullmatch(body)
        assert m is not None
        rest = m.group("rest")
        if not m.group("host"):
            chk.problem(path, f"expected host[:port|:/path/to/socket], got {_show(body)}")
            return None
        if rest is None:
            return ServerConfig(name=name, role=role, host=m.group("host"))
        if rest.startswith("/"):
            return ServerConfig(name=name, role=role, host=m.group("host"), socket=rest)
        port = chk.integer(path, rest, 0, 65535)
        return None if port is None else ServerConfig(name, role, m.group("host"), port=port)
    obj = chk.mapping(path, body)
    if obj is None:
        return None
    before = len(chk.problems)
    chk.unknown_keys(path, obj, ALL_SERVER_KEYS)
    host: str | None = None
    if "host" not in obj:
        chk.problem(path, "missing required key 'host'")
    else:
        # host and user are never echoed: a misplaced list may hold a password.
        host = chk.nonempty(f"{path}.host", obj["host"], secret=True)
    port = chk.field(obj, path, "port", lambda p, v: chk.integer(p, v, 0, 65535), None)
    socket = chk.field(obj, path, "socket", chk.nonempty, None)
    user = chk.field(obj, path, "user", lambda p, v: chk.string(p, v, secret=True), None)
    password = chk.field(obj, path, "password", lambda p, v: chk.string(p, v, secret=True), None)
    db = chk.field(obj, path, "db", chk.string, None)
    timeout = chk.field(
        obj, path, "connect_timeout", lambda p, v: chk.number(p, v, positive=True), None
    )
    if timeout is not None and timeout > 31536000:
        chk.problem(f"{path}.connect_timeout", "expected at most 31536000 seconds")
    options: dict[str, Any] = {}
    for key in sorted(SERVER_OPTION_KEYS & obj.keys()):
        opt = _server_option(chk, f"{path}.{key}", key, obj[key])
        if opt is not None:
            options[opt[0]] = opt[1]
    if host is None or len(chk.problems) > before:
        return None
    return ServerConfig(
        name=name,
        role=role,
        host=host,
        port=port or None,
        socket=socket,
        user=user,
        password=password,
        db=db,
        connect_timeout=timeout,
        options=options,
    )


def _parse_servers(chk: _Checker, path: str, role: Role, value: object) -> tuple[ServerConfig, ...]:
    items: list[tuple[str, object]]
    if isinstance(value, list):
        items = [(f"{role}_{i}", v) for i, v in enumerate(value)]
        paths = [f"{path}[{i}]" for i in range(len(value))]
    elif isinstance(value, dict):
        items = list(value.items())
        paths = [f"{path}.{k}" for k in value]
    else:
        chk.problem(path, f"expected a list or an object of servers, got {_show(value)}")
        return ()
    servers = []
    for (name, body), p in zip(items, paths, strict=True):
        server = _parse_server(chk, p, name, role, body)
        if server is not None:
            servers.append(server)
    return tuple(servers)


# --------------------------------------------------------------------------------------------
# Filters


def _parse_filters(
    chk: _Checker, path: str, value: object, servers: tuple[str, ...]
) -> tuple[FilterConfig, ...]:
    entries: list[tuple[str, str, object]]  # (name, path, args)
    if isinstance(value, list):
        entries = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                entries.append((item, f"{path}[{i}]", {}))
            else:
                chk.problem(f"{path}[{i}]", f"expected a filter name, got {_show(item)}")
    elif isinstance(value, dict):
        entries = [(k, f"{path}.{k}", v) for k, v in value.items()]
    else:
        chk.problem(path, f"expected an object or a list of filter names, got {_show(value)}")
        return DEFAULT_FILTERS
    chain: list[FilterConfig] = []
    for name, fpath, args in entries:
        if name in UNSUPPORTED_FILTERS:
            chk.problem(fpath, UNSUPPORTED_FILTERS[name])
            continue
        if name not in FILTER_NAMES:
            chk.problem(
                fpath,
                f"unknown filter {name!r}{_did_you_mean(name, FILTER_NAMES)}; "
                f"known: {', '.join(sorted(FILTER_NAMES))}",
            )
            continue
        f = _parse_filter(chk, fpath, name, args, servers)
        if f is not None:
            chain.append(f)
    names = [f.name for f in chain]
    lb = [n for n in names if n in LOAD_BALANCERS]
    if len(lb) > 1:
        chk.problem(
            path,
            f"at most one load-balancing filter is allowed, got {', '.join(lb)} "
            "(random, roundrobin, user, least_connections and fastest_response each pick "
            "one server)",
        )
    elif lb and names[-1] != lb[0]:
        chk.problem(path, f"the load-balancing filter {lb[0]!r} must be the last of the chain")
    if not lb:
        chain.append(FilterConfig(name="random", sticky=True))
    return tuple(chain)


_FILTER_ARGS: Final = {
    "random": frozenset({"sticky", "weights"}),
    "roundrobin": frozenset({"weights"}),
    "user": frozenset({"callback"}),
    "user_multi": frozenset({"callback"}),
    "least_connections": frozenset(),
    "fastest_response": frozenset(),
    "quality_of_service": frozenset(
        {"strong_consistency", "session_consistency", "eventual_consistency"}
    ),
}


def _parse_filter(
    chk: _Checker, path: str, name: str, args: object, servers: tuple[str, ...]
) -> FilterConfig | None:
    if isinstance(args, list) and not args:
        args = {}  # PHP's json_encode writes an empty array for "no arguments"
    obj = chk.mapping(path, args)
    if obj is None:
        return None
    if name == "node_groups":
        return _parse_node_groups(chk, path, obj, servers)
    chk.unknown_keys(path, obj, _FILTER_ARGS[name])
    if name == "quality_of_service":
        return _parse_qos(chk, path, obj)
    weights = None
    if "weights" in obj:
        weights = _parse_weights(chk, f"{path}.weights", obj["weights"], servers)
    callback = chk.field(obj, path, "callback", chk.nonempty, None)
    if callback is not None and not _CALLBACK_RE.fullmatch(callback):
        chk.problem(f"{path}.callback", f'expected "module:function", got {_show(callback)}')
    sticky = chk.field(obj, path, "sticky", chk.boolean, False)
    return FilterConfig(name=name, sticky=sticky, weights=weights, callback=callback)


def _parse_weights(
    chk: _Checker, path: str, value: object, servers: tuple[str, ...]
) -> Mapping[str, int] | None:
    obj = chk.mapping(path, value)
    if obj is None:
        return None
    weights: dict[str, int] = {}
    for alias, w in obj.items():
        if alias not in servers:
            chk.problem(
                f"{path}.{alias}",
                f"no server {alias!r} in this group{_did_you_mean(alias, tuple(servers))}; "
                f"servers: {', '.join(servers)}",
            )
            continue
        n = chk.integer(f"{path}.{alias}", w, 1, 65535)
        if n is not None:
            weights[alias] = n
    missing = [s for s in servers if s not in obj]
    if missing:
        chk.problem(
            path, f"weights must cover every server of the group; missing: {', '.join(missing)}"
        )
    return weights


def _parse_qos(chk: _Checker, path: str, obj: Mapping[str, object]) -> FilterConfig | None:
    if len(obj) != 1:
        chk.problem(
            path,
            "expected exactly one of strong_consistency, session_consistency, eventual_consistency",
        )
        return None
    key, value = next(iter(obj.items()))
    level: QosLevel = key.split("_")[0]  # type: ignore[assignment]
    age: int | None = None
    if key == "eventual_consistency" and isinstance(value, dict):
        chk.unknown_keys(f"{path}.{key}", value, frozenset({"age"}))
        age = chk.field(value, f"{path}.{key}", "age", lambda p, v: chk.integer(p, v, 0), None)
    elif (enabled := chk.boolean(f"{path}.{key}", value)) is not True:
        if enabled is False:
            chk.problem(f"{path}.{key}", "expected 1 to enable this service level")
        return None
    return FilterConfig(name="quality_of_service", qos_level=level, qos_age=age)


def _parse_node_groups(
    chk: _Checker, path: str, obj: Mapping[str, object], servers: tuple[str, ...]
) -> FilterConfig | None:
    groups: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    if not obj:
        chk.problem(path, "expected at least one node group")
    for gname, body in obj.items():
        gpath = f"{path}.{gname}"
        gobj = chk.mapping(gpath, body)
        if gobj is None:
            continue
        chk.unknown_keys(gpath, gobj, frozenset({"master", "slave"}))
        members: list[tuple[str, ...]] = []
        for role in ("master", "slave"):
            names = gobj.get(role, [])
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                chk.problem(
                    f"{gpath}.{role}", f"expected a list of server names, got {_show(names)}"
                )
                members.append(())
                continue
            for n in names:
                if n not in servers:
                    chk.problem(
                        f"{gpath}.{role}",
                        f"no server {n!r} in this group{_did_you_mean(n, servers)}",
                    )
            members.append(tuple(names))
        groups[gname] = (members[0], members[1])
    return FilterConfig(name="node_groups", node_groups=groups)


# --------------------------------------------------------------------------------------------
# Groups

GROUP_KEYS: Final = frozenset(
    {
        "master",
        "slave",
        "filters",
        "lazy_connections",
        "master_on_write",
        "trx_stickiness",
        "multi_master",
        "failover",
        "server_charset",
        "classifier",
        "session_state",
        "transient_error",
        "global_transaction_id_injection",
        "quarantine",
        "pooling",
        "replica_status_interval",
        "replica_stopped_limit",
    }
)


def _parse_failover(chk: _Checker, path: str, value: object) -> FailoverConfig | None:
    strategies: tuple[str, ...] = ("disabled", "master", "loop_before_master")
    if isinstance(value, str):  # mysqlnd_ms 1.0-1.2 style: "failover": "master"
        s = chk.choice(path, value, strategies)
        return None if s is None else FailoverConfig(strategy=s)
    obj = chk.mapping(path, value)
    if obj is None:
        return None
    chk.unknown_keys(path, obj, frozenset({"strategy", "remember_failed", "max_retries"}))
    d = FailoverConfig()
    return FailoverConfig(
        strategy=chk.field(
            obj, path, "strategy", lambda p, v: chk.choice(p, v, strategies), d.strategy
        ),
        remember_failed=chk.field(obj, path, "remember_failed", chk.boolean, d.remember_failed),
        max_retries=chk.field(
            obj, path, "max_retries", lambda p, v: chk.integer(p, v, 0, 1000), d.max_retries
        ),
    )


def _parse_transient(chk: _Checker, path: str, value: object) -> TransientErrorConfig | None:
    obj = chk.mapping(path, value)
    if obj is None:
        return None
    chk.unknown_keys(path, obj, frozenset({"mysql_error_codes", "max_retries", "usleep_retry"}))
    codes: list[int] = []
    raw = obj.get("mysql_error_codes", [])
    if not isinstance(raw, list):
        chk.problem(
            f"{path}.mysql_error_codes", f"expected a list of error codes, got {_show(raw)}"
        )
    else:
        for i, c in enumerate(raw):
            n = chk.integer(f"{path}.mysql_error_codes[{i}]", c, 1, 65535)
            if n is not None:
                codes.append(n)
    d = TransientErrorConfig()
    return TransientErrorConfig(
        mysql_error_codes=tuple(codes),
        max_retries=chk.field(
            obj, path, "max_retries", lambda p, v: chk.integer(p, v, 0, 1000), d.max_retries
        ),
        usleep_retry=chk.field(
            obj, path, "usleep_retry", lambda p, v: chk.integer(p, v, 0, 60_000_000), d.usleep_retry
        ),
    )


def _parse_gtid(chk: _Checker, path: str, value: object) -> GtidInjectionConfig | None:
    obj = chk.mapping(path, value)
    if obj is None:
        return None
    chk.unknown_keys(
        path,
        obj,
        frozenset(
            {
                "on_commit",
                "fetch_last_gtid",
                "check_for_gtid",
                "report_error",
                "wait_for_gtid_timeout",
            }
        ),
    )
    check = chk.field(obj, path, "check_for_gtid", chk.nonempty, None)
    if check is not None and "#GTID" not in check:
        chk.problem(f"{path}.check_for_gtid", "must contain the placeholder #GTID")
    d = GtidInjectionConfig()
    return GtidInjectionConfig(
        on_commit=chk.field(obj, path, "on_commit", chk.nonempty, None),
        fetch_last_gtid=chk.field(obj, path, "fetch_last_gtid", chk.nonempty, None),
        check_for_gtid=check,
        report_error=chk.field(obj, path, "report_error", chk.boolean, d.report_error),
        wait_for_gtid_timeout=chk.field(
            obj, path, "wait_for_gtid_timeout", lambda p, v: chk.integer(p, v, 0, 86400), 0
        ),
    )


def _parse_quarantine(chk: _Checker, path: str, value: object) -> QuarantineConfig | None:
    obj = chk.mapping(path, value)
    if obj is None:
        return None
    chk.unknown_keys(
        path,
        obj,
        frozenset({"interval", "failure_threshold", "check_interval", "check_timeout"}),
    )
    d = QuarantineConfig()
    return QuarantineConfig(
        interval=chk.field(
            obj, path, "interval", lambda p, v: chk.number(p, v, positive=True), d.interval
        ),
        failure_threshold=chk.field(
            obj,
            path,
            "failure_threshold",
            lambda p, v: chk.integer(p, v, 1, 1000),
            d.failure_threshold,
        ),
        check_interval=chk.field(
            obj,
            path,
            "check_interval",
            lambda p, v: chk.number(p, v, positive=False),
            d.check_interval,
        ),
        check_timeout=chk.field(
            obj,
            path,
            "check_timeout",
            lambda p, v: chk.number(p, v, positive=True),
            d.check_timeout,
        ),
    )


def _parse_pooling(chk: _Checker, path: str, value: object) -> PoolingConfig | None:
    obj = chk.mapping(path, value)
    if obj is None:
        return None
    chk.unknown_keys(
        path,
        obj,
        frozenset(
            {
                "enabled",
                "max_size",
                "min_size",
                "max_idle_time",
                "max_lifetime",
                "queue_timeout",
                "pre_ping",
            }
        ),
    )
    d = PoolingConfig()

    def seconds(p: str, v: object) -> float | None:
        return chk.number(p, v, positive=False)

    pooling = PoolingConfig(
        enabled=chk.field(obj, path, "enabled", chk.boolean, d.enabled),
        max_size=chk.field(
            obj, path, "max_size", lambda p, v: chk.integer(p, v, 1, 100_000), d.max_size
        ),
        min_size=chk.field(
            obj, path, "min_size", lambda p, v: chk.integer(p, v, 0, 100_000), d.min_size
        ),
        max_idle_time=chk.field(obj, path, "max_idle_time", seconds, d.max_idle_time),
        max_lifetime=chk.field(obj, path, "max_lifetime", seconds, d.max_lifetime),
        queue_timeout=chk.field(obj, path, "queue_timeout", seconds, d.queue_timeout),
        pre_ping=chk.field(obj, path, "pre_ping", chk.boolean, d.pre_ping),
    )
    if pooling.min_size > pooling.max_size:
        chk.problem(
            f"{path}.min_size",
            f"must not exceed max_size ({pooling.max_size}), got {pooling.min_size}",
        )
    return pooling


def _parse_group(chk: _Checker, name: str, body: object) -> GroupConfig | None:
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
    for required in ("master", "slave"):
        if required not in obj:
            chk.problem(name, f"missing required key {required!r}{_missing_hint(required, obj)}")
    masters = (
        _parse_servers(chk, f"{name}.master", "master", obj["master"]) if "master" in obj else ()
    )
    slaves = _parse_servers(chk, f"{name}.slave", "slave", obj["slave"]) if "slave" in obj else ()
    if "master" in obj and not masters and len(chk.problems) == before:
        chk.problem(f"{name}.master", "expected at least one master server")
    aliases = [s.name for s in masters + slaves]
    dupes = sorted({a for a in aliases if aliases.count(a) > 1})
    if dupes:
        chk.problem(
            name, f"server aliases must be unique across master and slave: {', '.join(dupes)}"
        )
    multi_master = chk.field(obj, name, "multi_master", chk.boolean, False)
    if len(masters) > 1 and not multi_master:
        chk.problem(
            f"{name}.master",
            f'{len(masters)} masters configured: set "multi_master": true to use several '
            "(writes then go to the first master that answers and stay there)",
        )
    filters = DEFAULT_FILTERS
    if "filters" in obj:
        filters = _parse_filters(chk, f"{name}.filters", obj["filters"], tuple(aliases))
    d = GroupConfig(name=name, masters=(), slaves=())
    group = GroupConfig(
        name=name,
        masters=masters,
        slaves=slaves,
        filters=filters,
        lazy_connections=chk.field(obj, name, "lazy_connections", chk.boolean, d.lazy_connections),
        master_on_write=chk.field(obj, name, "master_on_write", chk.boolean, d.master_on_write),
        trx_stickiness=chk.field(
            obj,
            name,
            "trx_stickiness",
            lambda p, v: chk.choice(p, v, ("disabled", "master", "on")),
            d.trx_stickiness,
        ),
        multi_master=multi_master,
        failover=chk.field(
            obj, name, "failover", lambda p, v: _parse_failover(chk, p, v), d.failover
        ),
        server_charset=chk.field(
            obj, name, "server_charset", lambda p, v: _charset(chk, p, v), None
        ),
        classifier=chk.field(
            obj,
            name,
            "classifier",
            lambda p, v: chk.choice(p, v, ("default", "mysqlnd_ms")),
            d.classifier,
        ),
        session_state=chk.field(
            obj,
            name,
            "session_state",
            lambda p, v: chk.choice(p, v, ("off", "warn", "sync")),
            d.session_state,
        ),
        transient_error=chk.field(
            obj, name, "transient_error", lambda p, v: _parse_transient(chk, p, v), None
        ),
        global_transaction_id_injection=chk.field(
            obj, name, "global_transaction_id_injection", lambda p, v: _parse_gtid(chk, p, v), None
        ),
        quarantine=chk.field(
            obj, name, "quarantine", lambda p, v: _parse_quarantine(chk, p, v), d.quarantine
        ),
        pooling=chk.field(obj, name, "pooling", lambda p, v: _parse_pooling(chk, p, v), d.pooling),
        replica_status_interval=chk.field(
            obj,
            name,
            "replica_status_interval",
            lambda p, v: chk.number(p, v, positive=True),
            d.replica_status_interval,
        ),
        replica_stopped_limit=_stopped_limit(chk, obj, name, d.replica_stopped_limit),
    )
    return group if len(chk.problems) == before else None


def _stopped_limit(
    chk: _Checker, obj: Mapping[str, object], path: str, default: float | None
) -> float | None:
    """``replica_stopped_limit``: seconds >= 0, or false to never avoid a replica for it."""
    if "replica_stopped_limit" not in obj:
        return default
    value = obj["replica_stopped_limit"]
    if value is False or (isinstance(value, str) and value.strip().lower() in ("off", "false")):
        return None
    limit = chk.number(f"{path}.replica_stopped_limit", value, positive=False)
    return default if limit is None else limit


def _missing_hint(required: str, obj: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(
        required, [k for k in obj if k not in GROUP_KEYS], n=1, cutoff=0.6
    )
    return f" (found {close[0]!r}: did you mean {required!r}?)" if close else ""
