"""The plugin configuration (mysqlnd_ms's JSON format): the model, the key tables, the loader.

model.py    frozen dataclasses, every default applied once, at load
fields.py   one declarative table of keys per section (kind, range, default, meaning)
check.py    the value checks, collecting every problem with its JSON path
load.py     reading, caching and checking a file; servers and groups
chain.py    the filter chain
schema.py   configs/schema.json, generated from the tables
"""

from __future__ import annotations

from msplugin.config import load, model
from msplugin.config.load import *  # noqa: F403 (the package's names are its modules')
from msplugin.config.model import *  # noqa: F403

__all__ = [*load.__all__, *model.__all__]
