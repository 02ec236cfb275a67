"""Django's own test suite against msplugin.django on the sandbox, and against Django's MySQL
backend over PyMySQL on the primary, in the same run.

The suite is Django's (tests/ of its source distribution, the release pyproject.toml pins),
downloaded from the package index into .cache/ at test time and checked against its SHA-256;
never committed. tests/django_suite holds only what Django's runner needs from us: settings
(as Django's tests/test_sqlite.py has them) and a runner that records each test's outcome.

msplugin runs with session consistency, so a test's reads see its writes on whichever server
they run; with trx_stickiness "optimistic", so transactions that only read start on replicas.
Every test that passes on the primary with Django's backend must pass with msplugin's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import django
import pytest

from msplugin.sandbox import Sandbox

pytestmark = pytest.mark.integration

VERSION = "5.2.19"
SDIST = f"django-{VERSION}.tar.gz"
SDIST_SHA256 = "ad03d8abc51dbff95ebf34b27123cf0c26a3b62db7ba0cd520783686362533d1"
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "django"
HARNESS = ROOT / "tests" / "django_suite"
APPS = ("basic", "transactions", "select_for_update", "get_or_create", "update", "delete")


def _suite() -> Path:
    """Django's tests/ directory for VERSION, fetched once; any failure fails loudly."""
    assert django.__version__ == VERSION, (
        f"Django {django.__version__} is installed, the suite is {VERSION}'s: "
        "pyproject.toml pins the release whose checksum is here"
    )
    tests = CACHE / f"django-{VERSION}" / "tests"
    if (tests / "runtests.py").exists():
        return tests
    CACHE.mkdir(parents=True, exist_ok=True)
    sdist = CACHE / SDIST
    if not sdist.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
             ":all:", f"Django=={VERSION}", "--dest", str(CACHE)],
            check=True,
        )  # fmt: skip
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise RuntimeError(f"{sdist}: SHA-256 {digest}, expected {SDIST_SHA256}")
    prefix = f"django-{VERSION}/tests/"
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        tar.extractall(CACHE, members=members, filter="data")
    return tests


def _databases(engine: str, names: str, **where: object) -> dict[str, dict[str, object]]:
    # The test databases in utf8mb4, as the connections are (the sandbox's default is latin1).
    test = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
    return {
        alias: {"ENGINE": engine, "NAME": f"{names}_{alias}", "TEST": test, **where}
        for alias in ("default", "other")
    }


def _run(
    tests: Path, databases: dict[str, dict[str, object]], out: Path
) -> tuple[dict[str, str], str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HARNESS), str(tests)]),
        "MSPLUGIN_DJANGO_DATABASES": json.dumps(databases),
        "MSPLUGIN_DJANGO_RESULTS": str(out),
    }
    proc = subprocess.run(
        [sys.executable, "runtests.py", "--settings=django_suite_settings", "--parallel=1",
         "--noinput", "-v", "1", *APPS],
        cwd=tests, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert out.exists(), f"Django's runner recorded nothing:\n{log[-5000:]}"
    outcomes = json.loads(out.read_text())
    stats = outcomes.pop("msplugin", None)
    if stats is not None:
        outcomes["msplugin"] = stats  # read by the caller
    return outcomes, log


def _counts(outcomes: dict[str, str]) -> dict[str, int]:
    return {k: sum(1 for v in outcomes.values() if v == k) for k in ("passed", "failed", "skipped")}


def test_djangos_suite_passes_wherever_it_passes_with_djangos_mysql_backend(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    tests = _suite()
    data = json.loads(sandbox.config_path.read_text())
    group = data["sandbox"]
    master = group["master"]["master_0"]
    user, password = master["user"], master["password"]
    with sandbox.admin(sandbox.primary) as admin, admin.cursor() as cur:
        # Django's runner creates test_<NAME> for each alias, and drops it at the end.
        cur.execute(f"GRANT ALL PRIVILEGES ON `test\\_dj%`.* TO '{user}'@'127.0.0.1'")
    group.update(
        trx_stickiness="optimistic",
        filters={"quality_of_service": {"session_consistency": 1}, "random": []},
    )
    for servers in (group["master"], group["slave"]):
        for server in servers.values():
            del server["db"]  # NAME chooses the database (a server's db would override it)
    config = tmp_path / "django.json"
    config.write_text(json.dumps(data))
    config.chmod(0o600)
    raw, _ = _run(
        tests,
        _databases(
            "django.db.backends.mysql", "djraw", HOST=master["host"], PORT=master["port"],
            USER=user, PASSWORD=password,
        ),
        tmp_path / "mysql.json",
    )  # fmt: skip
    ours, log = _run(
        tests,
        _databases(
            "msplugin.django", "djms", HOST="sandbox", USER=user, PASSWORD=password,
            OPTIONS={"config": str(config)},
        ),
        tmp_path / "msplugin.json",
    )  # fmt: skip
    stats = ours.pop("msplugin")
    routed = {k: stats[k] for k in ("use_slave", "use_master", "optimistic_started",
                                    "optimistic_completed_on_replica", "optimistic_replayed",
                                    "optimistic_conflicts", "gtid_checks")}  # fmt: skip
    print(f"\nDjango's suite ({', '.join(APPS)}): django.db.backends.mysql {_counts(raw)}; "
          f"msplugin.django {_counts(ours)}; msplugin's statistics: {routed}")  # fmt: skip
    failed = sorted(n for n, o in raw.items() if o == "failed")
    print(f"failing with Django's own backend too: {failed}")
    assert _counts(raw)["passed"] > 200, "the suite ran"
    assert set(ours) == set(raw), "both runs ran the same tests"
    worse = sorted(n for n, o in raw.items() if o == "passed" and ours[n] != "passed")
    assert not worse, f"pass with Django's backend, not with msplugin's: {worse}\n{log[-20000:]}"
    assert not re.search(r"StateDivergenceWarning", log), log[-20000:]
    assert routed["use_slave"] > 0, "reads ran on replicas"
