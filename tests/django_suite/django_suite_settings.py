"""Settings for Django's own test runner (tests/runtests.py of Django's source distribution),
as Django's tests/test_sqlite.py sets them, with DATABASES from the environment: msplugin's
backend on the sandbox, or Django's MySQL backend over PyMySQL on the primary.
tests/integration/test_django_suite.py runs it."""

import json
import os

import pymysql

DATABASES = json.loads(os.environ["MSPLUGIN_DJANGO_DATABASES"])
if DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    pymysql.install_as_MySQLdb()  # the baseline: Django's MySQL backend over PyMySQL
SECRET_KEY = "django_tests_secret_key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = False
TEST_RUNNER = "django_suite_runner.RecordingRunner"
