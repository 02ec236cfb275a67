"""SQLAlchemy's default suite requirements: both drivers run under the same ones, and the
comparison is of outcomes (a test that passes with mysql+pymysql must pass with msplugin)."""

from sqlalchemy.testing.requirements import SuiteRequirements


class Requirements(SuiteRequirements):
    pass
