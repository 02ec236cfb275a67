"""The configuration as values: frozen dataclasses, every default applied once, at load.

Friendly literals from the file ("1", "off", "roundrobin") are Python values here; the
checks and defaults come from the tables of msplugin.config.fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from msplugin._types import Role
from msplugin.config.check import did_you_mean
from msplugin.errors import ConfigError

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_FILE",
    "DEFAULT_FILTERS",
    "FILTER_NAMES",
    "LOAD_BALANCERS",
    "MULTI_FILTERS",
    "UNSUPPORTED_FILTERS",
    "UNSUPPORTED_GROUP_KEYS",
    "Config",
    "FailoverConfig",
    "FilterConfig",
    "GaleraConfig",
    "GroupConfig",
    "GtidInjectionConfig",
    "OptimisticConfig",
    "PoolingConfig",
    "QuarantineConfig",
    "ServerConfig",
    "TopologyConfig",
    "TransientErrorConfig",
]

CONFIG_ENV: Final = "MSPLUGIN_CONFIG"
DEFAULT_CONFIG_FILE: Final = "msplugin.json"

TrxStickiness = Literal["disabled", "master", "on", "optimistic"]
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
    port: int = 3306  # 0 or absent in the file: 3306, applied at load
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
class OptimisticConfig:
    max_statements: int = 100  # statements kept for the replay; past it: move or conflict
    max_rows: int = 10_000  # result rows kept; past it: move or conflict


@dataclass(frozen=True, slots=True)
class PoolingConfig:
    enabled: bool = True
    max_size: int = 25
    min_size: int = 0
    max_idle_time: float = 0.0
    max_lifetime: float = 0.0
    queue_timeout: float = 0.0
    pre_ping: bool = False


@dataclass(frozen=True, slots=True)
class TopologyConfig:
    discover: bool = False  # roles from the servers' read_only and replication, not the file
    interval: float = 1.0  # seconds between checks of every server of the group
    wait: float = 5.0  # seconds a write waits for a writable master (a switchover in progress)


@dataclass(frozen=True, slots=True)
class GaleraConfig:
    writers: Literal["one", "all"] = "one"  # one writer at a time, or every eligible node
    priority: tuple[str, ...] = ()  # the writer: the first eligible of these aliases
    donor_reads: bool = False  # a node serving a state transfer (Donor) still gets reads


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
    optimistic: OptimisticConfig = OptimisticConfig()
    topology: TopologyConfig = TopologyConfig()
    cluster: Literal["replication", "galera"] = "replication"
    galera: GaleraConfig = GaleraConfig()
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
            hint = did_you_mean(name, self.groups)
            raise ConfigError(
                self.source, [f"no group {name!r}{hint}; groups in this file: {known}"]
            ) from None
