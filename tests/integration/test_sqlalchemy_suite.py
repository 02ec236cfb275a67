"""SQLAlchemy's dialect compliance suite, run as SQLAlchemy documents it for third-party
dialects (README.dialects.rst), against msplugin and against mysql+pymysql in the same run.

The suite is SQLAlchemy's own (``sqlalchemy.testing.suite``, shipped in the installed
package, never copied here); tests/sqla_suite holds only the documented harness: setup.cfg, a
conftest that loads SQLAlchemy's pytest plugin, and a test module that star-imports the suite.
No shim: SQLAlchemy finds msplugin's dialects by their entry points (it names a MariaDB
server's URL mariadb+msplugin itself) and msplugin.provision by its own import.

msplugin runs on the replicated sandbox with session consistency; mysql+pymysql runs on the
sandbox's primary. Every test that passes with mysql+pymysql must pass with msplugin, except the
known harness limits below. The run reports where msplugin sent the suite's statements (from
the routing log): SQLAlchemy runs them in transactions with autocommit off, which the default
trx_stickiness keeps on the master.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "tests" / "sqla_suite"
DATABASE = "sqla_suite"
# The suite's schema tests use these databases by name.
SCHEMAS = ("test_schema", "test_schema_2")

# ServerSideCursorsTest._is_server_side() asks the driver's name: it knows pymysql,
# psycopg2, aiomysql, ... and answers False for any other, msplugin included, whatever the
# cursor is. So these fail with any third-party driver; SQLAlchemy's code says so ("prevents
# these tests from being usable by third party dialects"). msplugin's server-side cursors are
# tested in test_sqlalchemy.py.
HARNESS_LIMITS = {
    "ServerSideCursorsTest::test_conn_option",
    *(
        f"ServerSideCursorsTest::test_ss_cursor_status[{case}]"
        for case in (
            "for_update_expr",
            "for_update_string",
            "global_expr",
            "global_string",
            "global_text",
            "stmt_option",
            "text_ss_option",
        )
    ),
}


def _prepare(sb: Sandbox) -> None:
    """The suite's databases on the primary (replicated), the application user's on them."""
    admin = sb.admin(sb.primary)
    try:
        cur = admin.cursor()
        for db in (DATABASE, *SCHEMAS):
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
            cur.execute(f"CREATE DATABASE {db} CHARACTER SET utf8mb4")
            cur.execute(f"GRANT ALL PRIVILEGES ON {db}.* TO 'msplugin'@'127.0.0.1'")
    finally:
        admin.close()
    sb.wait_replicated()


def _run(url: str, out: Path, *extra: str) -> tuple[dict[str, str], str]:
    """Run the suite against *url*; each test's outcome, by a name without the driver, and
    what the run printed."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(HARNESS / "setup.cfg"),
         "--rootdir", str(HARNESS), str(HARNESS), "-q", "--dburi", url, f"--junitxml={out}",
         *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.exists(), f"the suite did not run against {url.split('@')[-1]}:\n{proc.stdout}"
    outcomes = {}
    for case in ET.parse(out).iter("testcase"):
        # Classes are named per backend: ComponentReflectionTest_mariadb+pymysql_10_11_19.
        cls = re.sub(r"_(mariadb|mysql)\+\w+_[\d_]+$", "", case.get("classname", ""))
        tags = {child.tag for child in case}
        outcome = "skipped" if "skipped" in tags else "passed"
        if tags & {"failure", "error"}:
            outcome = "failed"
        outcomes[f"{cls.split('.')[-1]}::{case.get('name')}"] = outcome
    return outcomes, proc.stdout + proc.stderr


def _counts(outcomes: dict[str, str]) -> dict[str, int]:
    return {k: sum(1 for v in outcomes.values() if v == k) for k in ("passed", "failed", "skipped")}


def test_the_suite_passes_wherever_it_passes_with_pymysql(sandbox: Sandbox, tmp_path: Path) -> None:
    _prepare(sandbox)
    data = json.loads(sandbox.config_path.read_text())
    group = data["sandbox"]
    group["filters"] = {"quality_of_service": {"session_consistency": 1}, "random": []}
    for servers in (group["master"], group["slave"]):
        for server in servers.values():
            del server["db"]  # a server's db would override the URL's database (MANUAL 3)
    config = tmp_path / "session.json"
    config.write_text(json.dumps(data))
    config.chmod(0o600)
    master = group["master"]["master_0"]
    auth = f"{master['user']}:{master['password']}"
    raw, _ = _run(
        f"mysql+pymysql://{auth}@{master['host']}:{master['port']}/{DATABASE}",
        tmp_path / "pymysql.xml",
    )
    ours, log = _run(
        f"mysql+msplugin://{auth}@sandbox/{DATABASE}?config={config}",
        tmp_path / "ms.xml",
        "-s",
        "--log-debug=msplugin.routing",
    )
    print(f"\nSQLAlchemy suite: mysql+pymysql {_counts(raw)}; mysql+msplugin {_counts(ours)}")
    routed = {role: len(re.findall(rf" -> {role}_\d+: ", log)) for role in ("master", "slave")}
    print(f"msplugin's statements by server role (routing log): {routed}")
    assert routed["master"] > 0, "the routing log was read"
    assert set(ours) == set(raw), "both runs collect the same tests"
    assert _counts(raw)["passed"] > 500, "the suite ran"
    worse = {
        name for name, outcome in raw.items() if outcome == "passed" and ours[name] != "passed"
    }
    assert worse - HARNESS_LIMITS == set(), "passes with mysql+pymysql, not with msplugin"
    stale = {name for name in HARNESS_LIMITS if raw.get(name) != "passed"}
    assert not stale, "harness limits that are no longer a difference: drop them from the list"
