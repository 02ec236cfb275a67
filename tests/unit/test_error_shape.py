"""msplugin's own errors: PyMySQL's ``(errno, message)`` args, a readable str(), and pickle."""

from __future__ import annotations

import pickle

import pymysql
import pytest

import msplugin
from msplugin.errors import NoBackendAvailable, PoolTimeout, RoutingError, TransactionError

MESSAGE = "group 'app': no master could be connected; nothing was executed"


@pytest.mark.parametrize(
    ("cls", "errno", "base"),
    [
        (RoutingError, 0, pymysql.err.ProgrammingError),
        (TransactionError, 0, pymysql.err.ProgrammingError),
        (NoBackendAvailable, 2003, pymysql.err.OperationalError),
        (PoolTimeout, 0, pymysql.err.OperationalError),
    ],
)
def test_errors_carry_errno_and_message_and_survive_pickle(
    cls: type[pymysql.err.MySQLError], errno: int, base: type[Exception]
) -> None:
    exc = cls(MESSAGE)
    assert isinstance(exc, base)
    assert exc.args == (errno, MESSAGE)
    assert str(exc) == MESSAGE
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is cls
    assert again.args == exc.args
    assert str(again) == MESSAGE
    assert cls(1045, MESSAGE).args == (1045, MESSAGE)  # PyMySQL's two-argument form


def test_a_config_error_keeps_its_file_and_problems_through_pickle() -> None:
    exc = msplugin.ConfigError("/etc/app.json", ["app.master: missing", "app.slave: empty"])
    assert exc.args == (0, "/etc/app.json: app.master: missing\n/etc/app.json: app.slave: empty")
    assert str(exc) == exc.args[1]
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is msplugin.ConfigError
    assert (again.source, again.problems, again.args) == (exc.source, exc.problems, exc.args)
