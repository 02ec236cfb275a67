"""Statement text -> Route and a reason: SQL hints, the first keyword, locking and side effects.

Pure and cheap: this runs for every statement, on the statement *template* (before PyMySQL
interpolates arguments), so results are cached per template. A cache miss is a handful of
linear regex scans in C; there is no SQL parser here. Every regex is free of nested
quantifiers, and the ones that can meet unterminated input use possessive quantifiers, so a
megabyte of spaces or an unclosed comment costs linear time.
"""

from __future__ import annotations

import enum
import re
from functools import lru_cache
from typing import Final, Literal, NamedTuple

from msplugin._types import TrxKind

__all__ = [
    "CLASSIFIERS",
    "Classification",
    "Route",
    "blank",
    "classify",
    "first_keyword",
    "query_is_select",
]

ClassifierName = Literal["default", "mysqlnd_ms"]
CLASSIFIERS: Final = ("default", "mysqlnd_ms")


class Route(enum.IntEnum):
    """Where a statement should run; the values of mysqlnd_ms_query_is_select()."""

    MASTER = 0
    SLAVE = 1
    LAST_USED = 2


class Classification(NamedTuple):
    """The classifier's verdict for one statement."""

    route: Route
    reason: str
    hinted: bool  # True when an SQL hint decided the route
    qos: str = ""  # a service-level hint: "strong", "session", "eventual" or ""
    trx: str = TrxKind.NONE  # what a transaction statement does (a TrxKind)
    statements: int = 1  # statements in the text (outside literals and comments)
    read: bool = False  # the statement itself, hints aside, is a read (safe to run again)


# Leading whitespace and comments. Each alternative consumes at least one character and has no
# nested quantifier; an unclosed /* comment runs to the end of the text ("(?:\*/|\Z)").
_LEADING: Final = re.compile(
    r"""
      [ \t\r\n\f\v]++
    | /\*(?P<body>(?:[^*]++|\*(?!/))*+)(?:\*/|\Z)
    | --(?=\s|\Z)[^\n]*+
    | \#[^\n]*+
    """,
    re.VERBOSE,
)
_HINT: Final = re.compile(r"\s*ms\s*=\s*(\w+)\s*", re.IGNORECASE)
_HINT_ROUTES: Final = {"master": Route.MASTER, "slave": Route.SLAVE, "last_used": Route.LAST_USED}
_HINT_QOS: Final = frozenset({"strong", "session", "eventual"})
# Statements that begin or end a transaction, matched at the first token. BEGIN alone (MariaDB's
# BEGIN NOT ATOMIC starts a compound statement instead); ROLLBACK TO SAVEPOINT and
# COMMIT/ROLLBACK AND CHAIN do not end the transaction.
_TRX: Final = re.compile(
    r"""
      (?P<begin>BEGIN(?:\s++WORK)?\s*+(?:;|\Z))
    | START\s++TRANSACTION\b(?P<chars>[^;]*+)
    | (?P<end>COMMIT|ROLLBACK)\b(?P<rest>[^;]*+)
    | XA\s++(?P<xa>START|BEGIN|COMMIT|ROLLBACK)\b
    """,
    re.VERBOSE | re.IGNORECASE,
)
_READ_ONLY: Final = re.compile(r"\bREAD\s++ONLY\b", re.IGNORECASE)
_NOT_END: Final = re.compile(r"\bTO\b|\bAND\s++CHAIN\b", re.IGNORECASE)
_SELECT_WORD: Final = re.compile(r"select\b", re.IGNORECASE)
_SELECT_ANYWHERE: Final = re.compile(r"\bselect\b", re.IGNORECASE)

# Things whose words never count: comments, string literals, quoted identifiers. Unterminated
# ones run to the end. Each becomes a space (a constant replacement keeps re.sub in C);
# executable comments (/*! ... */, /*M! ... */) are left in place to be detected afterwards.
_OPAQUE: Final = re.compile(
    r"""
      /\*(?!M?!)(?:[^*]++|\*(?!/))*+(?:\*/|\Z)
    | --(?=\s|\Z)[^\n]*+
    | \#[^\n]*+
    | '(?:[^'\\]++|\\.?|'')*+(?:'|\Z)
    | "(?:[^"\\]++|\\.?|"")*+(?:"|\Z)
    | `(?:[^`]++|``)*+(?:`|\Z)
    """,
    re.VERBOSE | re.DOTALL,
)
# The first token of each statement of a (multi-)statement text, after "(" and whitespace:
# a keyword, one other character (garbage), or nothing (an empty statement).
_STATEMENT_STARTS: Final = re.compile(r"(?:\A|;)[\s(]*+([A-Z_]\w*+|[^\s;(]?)")

# Effects that belong to the master, searched in the upper-cased, blanked text:
# (kind, substring that must be present, pattern, must start at a word boundary).
# Patterns start with a literal rather than \b so the regex engine can scan for the literal
# in C; the word boundary is checked on each hit instead (10-50x faster on large statements).
_MASTER_ONLY: Final = tuple(
    (kind, marker, re.compile(pattern), boundary)
    for kind, marker, pattern, boundary in (
        ("lock", "FOR", r"FOR\s++(?:UPDATE|SHARE)\b", True),
        ("lock", "LOCK", r"LOCK\s++IN\s++SHARE\s++MODE\b", True),
        ("into", "INTO", r"INTO\b", True),
        ("assign", ":=", r":=", False),
        (
            "func",
            "(",
            r"(?:GET_LOCK|RELEASE_LOCK|RELEASE_ALL_LOCKS|IS_FREE_LOCK|IS_USED_LOCK"
            r"|LAST_INSERT_ID|NEXTVAL|SETVAL|LASTVAL)\s*+\(",
            True,
        ),
        ("seq", "VALUE", r"(?:NEXT|PREVIOUS)\s++VALUE\s++FOR\b", True),
        ("sysvar", "@@", r"@@(?:SESSION\.|LOCAL\.)?(?:LAST_INSERT_ID|IDENTITY)\b", False),
        ("nul", "\x00", r"\x00", False),
    )
)
_LAST_USED_FUNC: Final = re.compile(r"(FOUND_ROWS|ROW_COUNT)\s*+\(")
_WITH_WRITE: Final = re.compile(r"(INSERT|UPDATE|DELETE|REPLACE)\b(?!\s*+\()")

_MASTER_REASONS: Final = {
    "lock": "locking read ({}) runs on the master",
    "into": "SELECT ... INTO writes a variable or file",
    "assign": "assigns a user variable (:=)",
    "func": "{}) needs the master's session",
    "seq": "{} changes a sequence",
    "sysvar": "{} refers to the master's last insert",
    "nul": "contains a NUL byte",
}
_EXECUTABLE: Final = Classification(
    Route.MASTER, "executable comment /*!...*/ runs on the master", False
)

# Statements longer than this are classified but not cached, to bound the cache's memory.
CACHE_MAX_LEN: Final = 4096


def query_is_select(sql: str, *, classifier: ClassifierName = "default") -> Route:
    """Return where *sql* should run: Route.MASTER, Route.SLAVE or Route.LAST_USED.

    The Python form of mysqlnd_ms_query_is_select(). *classifier* is ``"default"`` (msplugin's
    rules, which keep locking reads and side effects on the master) or ``"mysqlnd_ms"`` (exactly
    mysqlnd_ms's rule: a read iff the first keyword is SELECT). Never raises for any text.
    """
    return classify(sql, classifier).route


def classify(sql: str, classifier: ClassifierName = "default") -> Classification:
    """Classify *sql*; return the route, a short reason and whether a hint decided it."""
    if len(sql) <= CACHE_MAX_LEN:
        return _classify_cached(sql, classifier)
    return _classify(sql, classifier)


@lru_cache(maxsize=4096)
def _classify_cached(sql: str, classifier: str) -> Classification:
    return _classify(sql, classifier)


def _classify(sql: str, classifier: str) -> Classification:
    pos, hint, qos, executable = _skip_leading(sql)
    if hint is not None:
        c = Classification(_HINT_ROUTES[hint], f"hint ms={hint}", True)
        if classifier == "default" and not executable:
            c = c._replace(read=_classify_body(sql[pos:]).route is Route.SLAVE)
    elif classifier == "mysqlnd_ms":
        if "\x00" not in sql and _SELECT_WORD.match(sql, pos):
            c = Classification(Route.SLAVE, "first keyword is SELECT", False)
        else:
            c = Classification(Route.MASTER, "first keyword is not SELECT", False)
    elif executable:
        c = _EXECUTABLE
    else:
        c = _classify_body(sql[pos:])
    if ";" in sql and (hint is not None or classifier == "mysqlnd_ms" or executable):
        c = c._replace(statements=_count_statements(sql[pos:]))
    if not c.hinted and c.route is Route.SLAVE:
        c = c._replace(read=True)
    if qos:
        c = c._replace(qos=qos)
    if (m := _TRX.match(sql, pos)) is not None:
        c = c._replace(trx=_trx_kind(m))
    return c


_WORD: Final = re.compile(r"[\s(]*+([A-Za-z_]\w*+)")


def cut_sql(sql: str) -> str:
    """*sql* for a message or a log line: its first 200 characters."""
    return sql if len(sql) <= 200 else sql[:200] + "..."


def first_keyword(sql: str) -> str:
    """The first keyword of *sql* after leading comments, upper case ("" if none).

    Not cached: for failure paths, which need it once.
    """
    m = _WORD.match(sql, _skip_leading(sql)[0])
    return m.group(1).upper() if m is not None else ""


def _trx_kind(m: re.Match[str]) -> TrxKind:
    if m.group("begin") is not None:
        return TrxKind.BEGIN
    if m.group("chars") is not None:
        return TrxKind.BEGIN_RO if _READ_ONLY.search(m.group("chars")) else TrxKind.BEGIN
    if m.group("end") is not None:
        return TrxKind.NONE if _NOT_END.search(m.group("rest")) else TrxKind.END
    return TrxKind.XA_BEGIN if m.group("xa").upper() in ("START", "BEGIN") else TrxKind.XA_END


def _count_statements(body: str) -> int:
    return sum(1 for w in _STATEMENT_STARTS.findall(blank(body).upper()) if w) or 1


def blank(body: str) -> str:
    """*body* with literals, quoted identifiers and comments replaced by spaces."""
    if "'" in body or '"' in body or "`" in body or "/*" in body or "--" in body or "#" in body:
        return _OPAQUE.sub(" ", body)
    return body


def _skip_leading(sql: str) -> tuple[int, str | None, str, bool]:
    """Skip leading whitespace and comments.

    Return (offset of the first token, the last routing hint, the last service-level hint,
    whether an executable comment led).
    """
    pos = 0
    hint: str | None = None
    qos = ""
    executable = False
    match = _LEADING.match
    while (m := match(sql, pos)) is not None:
        body = m.group("body")
        if body is not None:
            if body.startswith(("!", "M!")):
                executable = True
            elif (h := _HINT.fullmatch(body)) is not None:
                word = h.group(1).lower()
                if word in _HINT_ROUTES:
                    hint = word
                elif word in _HINT_QOS:
                    qos = word
        pos = m.end()
    return pos, hint, qos, executable


def _classify_body(body: str) -> Classification:
    body = blank(body)
    if "/*" in body:  # only executable comments survive the blanking
        return _EXECUTABLE
    text = body.upper()
    starts = _STATEMENT_STARTS.findall(text)
    statements = [w for w in starts if w]
    if not statements:
        return Classification(Route.MASTER, "no statement keyword", False)
    n = len(statements)
    multi = "multi-statement: " if n > 1 else ""
    for word in statements:
        if word not in ("SELECT", "WITH"):
            what = word if word[0].isalpha() or word[0] == "_" else repr(word)
            return Classification(Route.MASTER, f"{multi}{what} is not a read", False, statements=n)
    for kind, marker, regex, boundary in _MASTER_ONLY:
        if marker in text and (effect := _find(regex, text, boundary)) is not None:
            shown = " ".join(effect.group().replace("(", " (").split())
            if kind == "func":
                shown = shown.split()[0] + "("
            reason = multi + _MASTER_REASONS[kind].format(shown)
            return Classification(Route.MASTER, reason, False, statements=n)
    if "WITH" in statements and (w := _find(_WITH_WRITE, text, True)) is not None:
        return Classification(
            Route.MASTER, f"{multi}WITH ... {w.group(1)} writes", False, statements=n
        )
    # FOUND_ROWS()/ROW_COUNT() in a later statement of the same text refer to the statement
    # before it, which ran in the same place; only the first statement's refer to last_used.
    first = text.split(";", 1)[0] if multi else text
    if ("FOUND_ROWS" in first or "ROW_COUNT" in first) and (
        lu := _find(_LAST_USED_FUNC, first, True)
    ) is not None:
        reason = f"{multi}{lu.group(1)}() refers to the previous statement"
        return Classification(Route.LAST_USED, reason, False, statements=n)
    if multi:
        return Classification(
            Route.SLAVE, f"multi-statement: all {n} are reads", False, statements=n
        )
    return Classification(Route.SLAVE, f"{statements[0]} is a read", False)


def _find(regex: re.Pattern[str], text: str, boundary: bool) -> re.Match[str] | None:
    """Return the first match of *regex* in *text*, starting at a word boundary if asked."""
    for m in regex.finditer(text):
        start = m.start()
        if not boundary or start == 0 or not (text[start - 1].isalnum() or text[start - 1] in "_$"):
            return m
    return None
