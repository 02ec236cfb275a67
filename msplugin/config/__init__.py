"""The plugin configuration (mysqlnd_ms's JSON format): the model, the key tables, the loader.

model.py    frozen dataclasses, every default applied once, at load
fields.py   one declarative table of keys per section (kind, range, default, meaning)
check.py    the value checks, collecting every problem with its JSON path
load.py     reading, caching and checking a file; servers and groups
chain.py    the filter chain
schema.py   configs/schema.json, generated from the tables
"""

from __future__ import annotations

from msplugin.config.load import (
    ALL_SERVER_KEYS,
    GROUP_KEYS,
    duplicate_keys,
    load_config,
    parse_config,
    resolve_config_path,
)
from msplugin.config.model import (
    CONFIG_ENV,
    DEFAULT_CONFIG_FILE,
    DEFAULT_FILTERS,
    FILTER_NAMES,
    LOAD_BALANCERS,
    MULTI_FILTERS,
    Config,
    FailoverConfig,
    FilterConfig,
    GroupConfig,
    GtidInjectionConfig,
    PoolingConfig,
    QuarantineConfig,
    ServerConfig,
    TransientErrorConfig,
)

__all__ = [
    "ALL_SERVER_KEYS",
    "CONFIG_ENV",
    "DEFAULT_CONFIG_FILE",
    "DEFAULT_FILTERS",
    "FILTER_NAMES",
    "GROUP_KEYS",
    "LOAD_BALANCERS",
    "MULTI_FILTERS",
    "Config",
    "FailoverConfig",
    "FilterConfig",
    "GroupConfig",
    "GtidInjectionConfig",
    "PoolingConfig",
    "QuarantineConfig",
    "ServerConfig",
    "TransientErrorConfig",
    "duplicate_keys",
    "load_config",
    "parse_config",
    "resolve_config_path",
]
