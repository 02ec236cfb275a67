"""SQLAlchemy's test provisioning for ``mysql+msplugin`` and ``mariadb+msplugin``.

SQLAlchemy's test harness (``sqlalchemy.testing``, which runs its dialect compliance suite)
imports ``<the dialect's package>.provision`` to learn how to create and drop the test
databases, name a follower's database, and so on. msplugin's dialects are MySQL dialects
running PyMySQL, so SQLAlchemy's own MySQL/MariaDB provisioning applies unchanged: importing it
registers it for the ``mysql`` and ``mariadb`` backends. Statements it sends (``CREATE
DATABASE``, ...) are routed as any other: to the master.
"""

from __future__ import annotations

from sqlalchemy.dialects.mysql import provision

__all__ = ["provision"]
