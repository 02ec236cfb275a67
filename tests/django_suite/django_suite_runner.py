"""Django's DiscoverRunner, recording each test's outcome in the JSON file named by
$MSPLUGIN_DJANGO_RESULTS ({test id: "passed" | "failed" | "skipped"}), and, when msplugin
ran the statements, its statistics under the key "msplugin"."""

import json
import os
import sys
import unittest
from typing import Any

from django.test.runner import DiscoverRunner

OUTCOMES: dict[str, str] = {}


class RecordingResult(unittest.TextTestResult):
    def addSuccess(self, test: Any) -> None:
        super().addSuccess(test)
        OUTCOMES.setdefault(test.id(), "passed")

    def addFailure(self, test: Any, err: Any) -> None:
        super().addFailure(test, err)
        OUTCOMES[test.id()] = "failed"

    def addError(self, test: Any, err: Any) -> None:
        super().addError(test, err)
        OUTCOMES[test.id()] = "failed"  # a class's set-up error is named after the class

    def addSkip(self, test: Any, reason: str) -> None:
        super().addSkip(test, reason)
        OUTCOMES[test.id()] = "skipped"

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        super().addExpectedFailure(test, err)
        OUTCOMES[test.id()] = "passed"  # Django's own expectation held

    def addUnexpectedSuccess(self, test: Any) -> None:
        super().addUnexpectedSuccess(test)
        OUTCOMES[test.id()] = "failed"

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            OUTCOMES[test.id()] = "failed"


class RecordingRunner(DiscoverRunner):
    def get_resultclass(self) -> Any:
        return RecordingResult

    def run_suite(self, suite: Any, **kwargs: Any) -> Any:
        try:
            return super().run_suite(suite, **kwargs)
        finally:
            out: dict[str, Any] = dict(OUTCOMES)
            msplugin = sys.modules.get("msplugin")
            if msplugin is not None:
                out["msplugin"] = msplugin.get_stats()
            with open(os.environ["MSPLUGIN_DJANGO_RESULTS"], "w") as f:
                json.dump(out, f, indent=0, sort_keys=True)
