"""PEP 249 compliance: Stuart Bishop's dbapi20.py suite against msplugin.connect on the sandbox.

The suite is not ours and is never committed: it is taken from PyMySQL 0.9.3's source
distribution, downloaded from the package index into .cache/ at test time and checked against
its SHA-256. It runs on the replicated group with session consistency, so its reads go to the
replicas (test_suite_reads_run_on_replicas proves that) and still see its own writes.

Overridden, as the suite asks drivers to: help_nextset_setUp/tearDown (a procedure), the
driver-dependent test_setoutputsize and test_nextset, lower_func (MySQL's LOWER is a function,
not a procedure). Overridden for MySQL semantics, as PyMySQL's own run does: test_fetchone,
test_fetchall and test_rowcount. PyMySQL (and so msplugin) returns None / [] when fetching after
a statement without a result set instead of raising, and DDL reports 0 affected rows instead
of -1. Those overrides assert the MySQL behaviour at exactly those points; every other
assertion is the suite's own.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

import msplugin
from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration

SDIST = "PyMySQL-0.9.3.tar.gz"
SDIST_SHA256 = "d8c059dcd81dedb85a9f034d5e22dcb4442c0b201908bede99e306d65ea7c8e7"
MEMBER = "PyMySQL-0.9.3/pymysql/tests/thirdparty/test_MySQLdb/dbapi20.py"
CACHE = Path(__file__).resolve().parents[2] / ".cache" / "dbapi20"


def _load_suite() -> ModuleType:
    """Download (once) and import dbapi20.py; any failure fails the collection, loudly."""
    CACHE.mkdir(parents=True, exist_ok=True)
    sdist = CACHE / SDIST
    if not sdist.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
             ":all:", "PyMySQL==0.9.3", "--dest", str(CACHE)],
            check=True,
        )  # fmt: skip
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise RuntimeError(f"{sdist}: SHA-256 {digest}, expected {SDIST_SHA256}")
    path = CACHE / "dbapi20.py"
    if not path.exists():
        with tarfile.open(sdist) as tar:
            member = tar.extractfile(MEMBER)
            assert member is not None, MEMBER
            path.write_bytes(member.read())
    spec = importlib.util.spec_from_file_location("dbapi20", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dbapi20 = _load_suite()

LOWER = "dbapi20test_lower"


class TestMsplugin(dbapi20.DatabaseAPI20Test):  # type: ignore[misc, name-defined]
    driver = msplugin
    connect_args = ("sandbox",)
    connect_kw_args: ClassVar[dict[str, Any]] = {}  # set per test by _topology
    lower_func = LOWER

    @pytest.fixture(autouse=True)
    def _topology(self, sandbox: Sandbox, make_config: Callable[..., str]) -> None:
        config = make_config(filters={"quality_of_service": {"session_consistency": 1}})
        self.connect_kw_args = {"config": config}
        with msplugin.connect("sandbox", config=config) as con:
            cur = con.cursor()
            cur.execute(f"DROP PROCEDURE IF EXISTS {LOWER}")
            cur.execute(f"CREATE PROCEDURE {LOWER}(IN s VARCHAR(20)) SELECT LOWER(s)")

    def help_nextset_setUp(self, cur: msplugin.Cursor) -> None:
        cur.execute(
            f"CREATE PROCEDURE deleteme() BEGIN SELECT COUNT(*) FROM {self.table_prefix}booze;"
            f" SELECT name FROM {self.table_prefix}booze; END"
        )

    def help_nextset_tearDown(self, cur: msplugin.Cursor) -> None:
        cur.execute("DROP PROCEDURE deleteme")

    def test_setoutputsize(self) -> None:
        # PEP 249 lets drivers ignore it: it must be callable and change nothing.
        con = self._connect()
        try:
            cur = con.cursor()
            cur.setoutputsize(1000, 0)
            self._paraminsert(cur)
        finally:
            con.close()

    def test_nextset(self) -> None:
        con = self._connect()
        try:
            cur = con.cursor()
            self.executeDDL1(cur)
            for sql in self._populate():
                cur.execute(sql)
            self.help_nextset_setUp(cur)
            try:
                cur.callproc("deleteme")
                assert cur.fetchone()[0] == len(self.samples)
                assert cur.nextset()
                assert len(cur.fetchall()) == len(self.samples)
                # MySQL ends a CALL with the CALL's own (empty) result: one more set, then None.
                assert cur.nextset()
                assert len(cur.fetchall()) == 0
                assert cur.nextset() is None
            finally:
                self.help_nextset_tearDown(cur)
        finally:
            con.close()

    def test_fetchone(self) -> None:
        con = self._connect()
        try:
            cur = con.cursor()
            self.assertRaises(self.driver.Error, cur.fetchone)
            self.executeDDL1(cur)
            self.assertIsNone(cur.fetchone())  # MySQL: no result set reads as no rows
            cur.execute(f"select name from {self.table_prefix}booze")
            self.assertIsNone(cur.fetchone())
            self.assertIn(cur.rowcount, (-1, 0))
            cur.execute(f"insert into {self.table_prefix}booze values ('Victoria Bitter')")
            self.assertIsNone(cur.fetchone())
            cur.execute(f"select name from {self.table_prefix}booze")
            self.assertEqual(cur.fetchone(), ("Victoria Bitter",))
            self.assertIsNone(cur.fetchone())
            self.assertIn(cur.rowcount, (-1, 1))
        finally:
            con.close()

    def test_fetchall(self) -> None:
        con = self._connect()
        try:
            cur = con.cursor()
            self.assertRaises(self.driver.Error, cur.fetchall)
            self.executeDDL1(cur)
            for sql in self._populate():
                cur.execute(sql)
            self.assertEqual(len(cur.fetchall()), 0)  # MySQL: no result set reads as no rows
            cur.execute(f"select name from {self.table_prefix}booze")
            self.assertEqual(sorted(r[0] for r in cur.fetchall()), self.samples)
            self.assertIn(cur.rowcount, (-1, len(self.samples)))
            self.assertEqual(len(cur.fetchall()), 0)
            self.executeDDL2(cur)
            cur.execute(f"select name from {self.table_prefix}barflys")
            self.assertEqual(len(cur.fetchall()), 0)
            self.assertIn(cur.rowcount, (-1, 0))
        finally:
            con.close()

    def test_rowcount(self) -> None:
        con = self._connect()
        try:
            cur = con.cursor()
            self.executeDDL1(cur)
            self.assertEqual(cur.rowcount, 0)  # MySQL: DDL affects 0 rows, not "unknown"
            cur.execute(f"insert into {self.table_prefix}booze values ('Victoria Bitter')")
            self.assertEqual(cur.rowcount, 1)
            cur.execute(f"select name from {self.table_prefix}booze")
            self.assertEqual(cur.rowcount, 1)
            self.executeDDL2(cur)
            self.assertEqual(cur.rowcount, 0)
        finally:
            con.close()


def test_arraysize_set_after_first_use_applies(make_config: Callable[..., str]) -> None:
    with msplugin.connect("sandbox", config=make_config()) as con:
        cur = con.cursor()
        cur.execute("SELECT seq FROM seq_1_to_20")
        assert len(cur.fetchmany()) == 1
        cur.arraysize = 7
        cur.execute("SELECT seq FROM seq_1_to_20")
        assert len(cur.fetchmany()) == 7


def test_suite_reads_run_on_replicas(sandbox: Sandbox, make_config: Callable[..., str]) -> None:
    """The suite's configuration reads its own writes, and from a replica once it has them."""
    config = make_config(filters={"quality_of_service": {"session_consistency": 1}})
    with msplugin.connect("sandbox", config=config) as con:
        cur = con.cursor()
        cur.execute("CREATE TABLE dbapi20_probe (name VARCHAR(20))")
        try:
            for i in range(1, 6):
                cur.execute("INSERT INTO dbapi20_probe VALUES ('x')")
                cur.execute("SELECT COUNT(*) FROM dbapi20_probe")
                assert cur.fetchone() == (i,)
            sandbox.wait_replicated()
            cur.execute("SELECT COUNT(*) FROM dbapi20_probe")
            assert cur.fetchone() == (5,)
            assert con.last_used is not None and con.last_used.role == "slave"
        finally:
            cur.execute("DROP TABLE dbapi20_probe")
