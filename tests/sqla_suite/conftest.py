"""SQLAlchemy's pytest plugin, as README.dialects.rst sets it up. The dialects come from
msplugin's entry points (mysql.msplugin, mariadb.msplugin); the provisioning from
msplugin.provision, which SQLAlchemy's harness imports by itself."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # sqla_requirements, named in setup.cfg

pytest.register_assert_rewrite("sqlalchemy.testing.assertions")

from sqlalchemy.testing.plugin.pytestplugin import *  # noqa: E402, F403
