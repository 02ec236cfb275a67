"""msplugin.django's import: PyMySQL registered as MySQLdb without a second copy of its
modules (which would make ``except pymysql.err.OperationalError`` miss PyMySQL's errors).
Each case runs in a fresh interpreter: the import changes sys.modules for good."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = """
import pymysql, pymysql.err
original = sys.modules["pymysql.err"]
{before}
import msplugin.django.base
from MySQLdb.constants import CLIENT
import MySQLdb.err
from msplugin import health
assert pymysql.err is original and MySQLdb.err is original, "pymysql.err was replaced"
assert CLIENT is sys.modules["pymysql.constants.CLIENT"]
assert health.is_disconnect(original.OperationalError(2013, "Lost connection"))
"""


@pytest.mark.parametrize(
    "before",
    [
        "",
        # An application that registered PyMySQL itself and imported Django's backend first:
        # the copies it loaded are replaced by the originals.
        "pymysql.install_as_MySQLdb(); import django.db.backends.mysql.base",
    ],
)
def test_importing_the_backend_keeps_one_copy_of_pymysql(before: str) -> None:
    code = "import sys\n" + CHECK.format(before=before)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
