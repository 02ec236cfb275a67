"""The checks behind every configuration value: each returns the value, or None after
recording a problem with its JSON path. Collected, not raised one by one, so that one run of
``msplugin check-config`` names every problem of a file."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import orjson
from pymysql.charset import charset_by_name

from msplugin.errors import ConfigError

__all__ = ["FALSE_WORDS", "TRUE_WORDS", "Checker", "did_you_mean", "show"]

T = TypeVar("T")

TRUE_WORDS: Final = frozenset({"1", "true", "on", "yes"})
FALSE_WORDS: Final = frozenset({"0", "false", "off", "no", ""})
INT_PATTERN: Final = r"[+-]?[0-9]+"
_INT_RE: Final = re.compile(INT_PATTERN)


def show(value: object) -> str:
    """Render a bad value for a message: JSON-like, cut short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        text = orjson.dumps(value).decode()
        return f"a list {text[:60]}{'...' if len(text) > 60 else ''}"
    if value is None:
        return "null"
    text = orjson.dumps(value).decode() if isinstance(value, str | int | float) else repr(value)
    return text[:80] + ("..." if len(text) > 80 else "")


def _kind(value: object) -> str:
    """Describe a value's type only (used where the value is secret)."""
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), "null")


def did_you_mean(
    word: str, choices: Mapping[str, object] | frozenset[str] | tuple[str, ...]
) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Checker:
    """Collects problems; each check returns a value or ``None`` after a problem."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}" if path else message)

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigError(self.source, self.problems)

    def mapping(self, path: str, value: object) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.problem(path, f"expected an object, got {show(value)}")
        return None

    def unknown_keys(self, path: str, obj: Mapping[str, object], known: frozenset[str]) -> None:
        for key in obj:
            if key not in known:
                self.problem(
                    f"{path}.{key}",
                    f"unknown key{did_you_mean(key, known)}; allowed: {', '.join(sorted(known))}",
                )

    def string(self, path: str, value: object, *, secret: bool = False) -> str | None:
        """A string; a number is taken as its text (mysqlnd_ms configs give numbers where
        strings belong), except for a *secret*, which is never shown, only its type."""
        if isinstance(value, str):
            return value
        if not secret and isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        shown = _kind(value) if secret else show(value)
        self.problem(path, f"expected a string, got {shown}")
        return None

    def nonempty(self, path: str, value: object, *, secret: bool = False) -> str | None:
        s = self.string(path, value, secret=secret)
        if s is not None and not s.strip():
            self.problem(path, "expected a non-empty string")
            return None
        return s

    def boolean(self, path: str, value: object) -> bool | None:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            low = value.strip().lower()
            if low in TRUE_WORDS:
                return True
            if low in FALSE_WORDS:
                return False
        self.problem(path, f'expected a boolean (true/false, 1/0, "on"/"off"), got {show(value)}')
        return None

    def integer(self, path: str, value: object, lo: int, hi: int | None = None) -> int | None:
        n: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            n = value
        elif isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
            n = int(value)
        if n is not None and n >= lo and (hi is None or n <= hi):
            return n
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        self.problem(path, f"expected an integer {rng}, got {show(value)}")
        return None

    def number(
        self, path: str, value: object, *, positive: bool, most: float | None = None
    ) -> float | None:
        """Seconds: a number (or numeric string) > 0 (*positive*) or >= 0, at most *most*."""
        x: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            x = float(value)
        elif isinstance(value, str):
            try:
                x = float(value)
            except ValueError:
                x = None
        if x is not None and x == x and x != float("inf") and (x > 0 if positive else x >= 0):
            if most is None or x <= most:
                return x
            self.problem(path, f"expected at most {most:g} seconds")
            return None
        what = "a number > 0" if positive else "a number >= 0"
        self.problem(path, f"expected {what} (seconds), got {show(value)}")
        return None

    def choice(self, path: str, value: object, allowed: tuple[str, ...]) -> Any:
        if isinstance(value, str) and value in allowed:
            return value
        hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
        self.problem(
            path, f"expected one of {', '.join(repr(a) for a in allowed)}, got {show(value)}{hint}"
        )
        return None

    def charset(self, path: str, value: object) -> str | None:
        s = self.nonempty(path, value)
        if s is None:
            return None
        # PyMySQL's table of character sets: a name it does not know cannot be negotiated.
        if charset_by_name(s.lower()) is None:
            self.problem(path, f"unknown character set {show(s)}")
            return None
        return s.lower()

    def field(
        self,
        obj: Mapping[str, object],
        path: str,
        key: str,
        convert: Callable[[str, object], T | None],
        default: T,
    ) -> T:
        """Read optional key *key* of *obj* with *convert*; the default on absence or error."""
        if key not in obj:
            return default
        value = convert(f"{path}.{key}", obj[key])
        return default if value is None else value
