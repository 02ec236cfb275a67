"""Every configuration key, once: one declarative table per section.

Each ``Field`` says the key, how its value is checked (its ``Kind`` and range), its default and
what it means. The loader checks a section by its table (``parse_section``), the JSON Schema
in ``configs/schema.json`` is generated from the tables (msplugin.config.schema), and a test
holds the manual's reference (MANUAL.md, chapter 3) to them. The keys whose values are
structures (the server lists, the filter chain) are parsed by hand in msplugin.config.load.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from msplugin.config.check import Checker, show
from msplugin.options import PASSTHROUGH_KWARGS

__all__ = [
    "FAILOVER_FIELDS",
    "GALERA_FIELDS",
    "GROUP_FIELDS",
    "GTID_FIELDS",
    "OPTIMISTIC_FIELDS",
    "POOLING_FIELDS",
    "QUARANTINE_FIELDS",
    "SECTIONS",
    "SERVER_FIELDS",
    "SERVER_OPTION_FIELDS",
    "TOPOLOGY_FIELDS",
    "TRANSIENT_FIELDS",
    "Field",
    "Kind",
    "keys",
    "parse_section",
]


class Kind(enum.Enum):
    """How a value is checked (and described in the schema)."""

    BOOLEAN = "boolean"  # true/false, 1/0, "on"/"off", "yes"/"no"
    INTEGER = "integer"  # lo..hi, or its digits as a string
    SECONDS = "seconds > 0"  # a number, or a numeric string
    SECONDS0 = "seconds >= 0"
    SECONDS_OR_OFF = "seconds >= 0, or false"
    CHOICE = "one of"
    STRING = "string"  # a number is taken as its text
    NONEMPTY = "non-empty string"
    CHARSET = "character set"  # one PyMySQL knows
    ERROR_CODES = "list of error codes"
    ALIASES = "list of server aliases"


@dataclass(frozen=True, slots=True)
class Field:
    """One configuration key."""

    key: str
    kind: Kind
    default: Any
    doc: str
    lo: int = 0
    hi: int | None = None  # INTEGER: the maximum; SECONDS: at most this many seconds
    choices: tuple[str, ...] = ()
    secret: bool = False  # never echoed in a message, only its type
    attr: str = ""  # the model's name for it (or PyMySQL's keyword), when not the key

    @property
    def name(self) -> str:
        return self.attr or self.key


def _seconds(key: str, default: float | None, doc: str, *, zero: bool = False) -> Field:
    return Field(key, Kind.SECONDS0 if zero else Kind.SECONDS, default, doc)


def _choice(key: str, default: str, doc: str, *choices: str) -> Field:
    return Field(key, Kind.CHOICE, default, doc, choices=choices)


def _flag(key: str, default: bool | None, doc: str) -> Field:
    return Field(key, Kind.BOOLEAN, default, doc)


SERVER_FIELDS: Final = (
    Field("host", Kind.NONEMPTY, None, "host name or IP address (required)", secret=True),
    Field("port", Kind.INTEGER, 3306, "TCP port; 0 means the default", hi=65535),
    Field("socket", Kind.NONEMPTY, None, "Unix socket path; when given, it is used"),
    Field("user", Kind.STRING, None, "overrides connect()'s user", secret=True),
    Field("password", Kind.STRING, None, "overrides connect()'s password", secret=True),
    Field("db", Kind.STRING, None, "overrides connect()'s database"),
    Field(
        "connect_timeout",
        Kind.SECONDS,
        None,
        "bounds the whole connect (TCP, greeting, authentication)",
        hi=31536000,
    ),
)

# PyMySQL connect() options a server entry may carry (each is a PyMySQL keyword).
SERVER_OPTION_FIELDS: Final = (
    Field("charset", Kind.CHARSET, None, "this server's connection character set"),
    _seconds("read_timeout", None, "seconds a read from this server may take"),
    _seconds("write_timeout", None, "seconds a write to this server may take"),
    Field("init_command", Kind.STRING, None, "a statement run when a connection opens"),
    Field("sql_mode", Kind.STRING, None, "the session's sql_mode"),
    Field("ssl_ca", Kind.STRING, None, "TLS: the CA file"),
    Field("ssl_cert", Kind.STRING, None, "TLS: the client certificate"),
    Field("ssl_key", Kind.STRING, None, "TLS: the client key"),
    _flag("ssl_verify_cert", None, "TLS: verify the server's certificate"),
    _flag("ssl_verify_identity", None, "TLS: verify the server's host name"),
    _flag("local_infile", None, "allow LOAD DATA LOCAL INFILE"),
    Field(
        "connect_flags",
        Kind.INTEGER,
        None,
        "client capability flags (PyMySQL's client_flag)",
        hi=2**32 - 1,
        attr="client_flag",
    ),
    Field(
        "max_allowed_packet",
        Kind.INTEGER,
        None,
        "the largest packet the client sends",
        lo=1024,
        hi=1024**3,
    ),
    Field("bind_address", Kind.STRING, None, "the local address to connect from"),
)
assert {f.name for f in SERVER_OPTION_FIELDS} <= PASSTHROUGH_KWARGS

GROUP_FIELDS: Final = (
    _flag("lazy_connections", True, "connect a server when a statement first needs it"),
    _flag("master_on_write", False, "after a write, reads go to the master"),
    _choice(
        "trx_stickiness",
        "master",
        "where a transaction's statements run",
        "disabled",
        "master",
        "on",
        "optimistic",
    ),
    _flag("multi_master", False, "allow several masters"),
    Field("server_charset", Kind.CHARSET, None, "character set of every backend connection"),
    _choice("classifier", "default", "how statements are classified", "default", "mysqlnd_ms"),
    _choice(
        "session_state",
        "warn",
        "what a statement lacking session state does",
        "off",
        "warn",
        "sync",
    ),
    _choice(
        "cluster",
        "replication",
        "what the servers are: replication (a master, replicas) or a Galera cluster",
        "replication",
        "galera",
    ),
    _seconds("replica_status_interval", 1.0, "how often the replica monitor refreshes"),
    Field(
        "replica_stopped_limit",
        Kind.SECONDS_OR_OFF,
        5.0,
        "seconds a replica may go without replicating before reads avoid it",
    ),
)

FAILOVER_FIELDS: Final = (
    _choice(
        "strategy",
        "loop_before_master",
        "what to do when a slave cannot be connected",
        "disabled",
        "master",
        "loop_before_master",
    ),
    _flag("remember_failed", False, "skip a failed slave for the rest of the connection"),
    Field("max_retries", Kind.INTEGER, 0, "slaves to try before the master; 0 = all", hi=1000),
)

TRANSIENT_FIELDS: Final = (
    Field("mysql_error_codes", Kind.ERROR_CODES, (), "server error codes sent again"),
    Field("max_retries", Kind.INTEGER, 1, "how many times", hi=1000),
    Field("usleep_retry", Kind.INTEGER, 100, "microseconds between tries", hi=60_000_000),
)

GTID_FIELDS: Final = (
    Field("on_commit", Kind.NONEMPTY, None, "run on the master after each commit"),
    Field("fetch_last_gtid", Kind.NONEMPTY, None, "returns the GTID of the last write"),
    Field("check_for_gtid", Kind.NONEMPTY, None, "returns a row if a replica has #GTID"),
    _flag("report_error", True, "raise when one of these statements fails"),
    Field("wait_for_gtid_timeout", Kind.INTEGER, 0, "seconds a replica check waits", hi=86400),
)

QUARANTINE_FIELDS: Final = (
    _seconds("interval", 2.0, "seconds between probes of a quarantined server"),
    Field(
        "failure_threshold",
        Kind.INTEGER,
        1,
        "consecutive failures before a server is quarantined",
        lo=1,
        hi=1000,
    ),
    _seconds("check_interval", 1.0, "seconds between health checks; 0 = none", zero=True),
    _seconds("check_timeout", 1.0, "seconds a health check may take before hung"),
)

POOLING_FIELDS: Final = (
    _flag("enabled", True, "borrow backend connections from the process's pools"),
    Field("max_size", Kind.INTEGER, 25, "connections per pool", lo=1, hi=100_000),
    Field("min_size", Kind.INTEGER, 0, "idle connections kept (<= max_size)", hi=100_000),
    _seconds("max_idle_time", 0.0, "seconds idle before closed; 0 = no limit", zero=True),
    _seconds("max_lifetime", 0.0, "seconds before replaced; 0 = no limit", zero=True),
    _seconds("queue_timeout", 0.0, "seconds to wait for a free one; 0 = no limit", zero=True),
    _flag("pre_ping", False, "ping a connection before handing it out"),
)

OPTIMISTIC_FIELDS: Final = (
    Field(
        "max_statements",
        Kind.INTEGER,
        100,
        "statements an optimistic transaction keeps for its replay",
        lo=1,
        hi=100_000,
    ),
    Field(
        "max_rows",
        Kind.INTEGER,
        10_000,
        "result rows an optimistic transaction keeps for its replay",
        lo=1,
        hi=10_000_000,
    ),
)

TOPOLOGY_FIELDS: Final = (
    _flag("discover", False, "roles from the servers (read_only, replication), not the file"),
    _seconds("interval", 1.0, "seconds between checks of every server's role"),
    _seconds("wait", 5.0, "seconds a write waits for a writable master during a change"),
)

GALERA_FIELDS: Final = (
    _choice("writers", "one", "how many nodes take writes: one at a time, or all", "one", "all"),
    Field("priority", Kind.ALIASES, (), "the writer, in this order of aliases if eligible"),
    _flag("donor_reads", False, "a node serving a state transfer (Donor) still gets reads"),
)

# The group keys whose value is an object checked by a table, and that table.
SECTIONS: Final[Mapping[str, tuple[Field, ...]]] = {
    "failover": FAILOVER_FIELDS,
    "transient_error": TRANSIENT_FIELDS,
    "global_transaction_id_injection": GTID_FIELDS,
    "quarantine": QUARANTINE_FIELDS,
    "pooling": POOLING_FIELDS,
    "optimistic": OPTIMISTIC_FIELDS,
    "topology": TOPOLOGY_FIELDS,
    "galera": GALERA_FIELDS,
}


def keys(fields: tuple[Field, ...]) -> frozenset[str]:
    return frozenset(f.key for f in fields)


def converter(chk: Checker, f: Field) -> Callable[[str, object], Any]:
    """The check of *f*'s value: the value, or None after a problem."""
    kind = f.kind
    if kind is Kind.BOOLEAN:
        return chk.boolean
    if kind is Kind.INTEGER:
        return lambda p, v: chk.integer(p, v, f.lo, f.hi)
    if kind is Kind.SECONDS or kind is Kind.SECONDS0:
        return lambda p, v: chk.number(p, v, positive=kind is Kind.SECONDS, most=f.hi)
    if kind is Kind.SECONDS_OR_OFF:
        return lambda p, v: _seconds_or_off(chk, p, v)
    if kind is Kind.CHOICE:
        return lambda p, v: chk.choice(p, v, f.choices)
    if kind is Kind.STRING:
        return lambda p, v: chk.string(p, v, secret=f.secret)
    if kind is Kind.NONEMPTY:
        return lambda p, v: chk.nonempty(p, v, secret=f.secret)
    if kind is Kind.CHARSET:
        return chk.charset
    if kind is Kind.ALIASES:
        return lambda p, v: _aliases(chk, p, v)
    return lambda p, v: _error_codes(chk, p, v)


_OFF: Final = object()  # SECONDS_OR_OFF's "off", told apart from a problem (None)


def _seconds_or_off(chk: Checker, path: str, value: object) -> Any:
    if value is False or (isinstance(value, str) and value.strip().lower() in ("off", "false")):
        return _OFF
    return chk.number(path, value, positive=False)


def _error_codes(chk: Checker, path: str, value: object) -> tuple[int, ...] | None:
    if not isinstance(value, list):
        chk.problem(path, f"expected a list of error codes, got {show(value)}")
        return None
    codes = (chk.integer(f"{path}[{i}]", c, 1, 65535) for i, c in enumerate(value))
    return tuple(c for c in codes if c is not None)


def _aliases(chk: Checker, path: str, value: object) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not all(isinstance(a, str) and a for a in value):
        chk.problem(path, f"expected a list of server aliases, got {show(value)}")
        return None
    return tuple(value)


def parse_section(
    chk: Checker, path: str, obj: Mapping[str, object], fields: tuple[Field, ...]
) -> dict[str, Any]:
    """Check *obj* against *fields*: unknown keys are problems, absent keys take their
    default; returns the values by model name."""
    chk.unknown_keys(path, obj, keys(fields))
    out: dict[str, Any] = {}
    for f in fields:
        value = chk.field(obj, path, f.key, converter(chk, f), f.default)
        out[f.name] = None if value is _OFF else value
    return out
