"""Session state: what each backend's session holds, and what a statement depends on.

A facade connection is several server sessions. This module keeps, per backend, what the
application's statements left there (user variables, session settings, the current database,
temporary tables, prepared statements, locks) and answers, before a statement is sent, whether
the chosen backend lacks state the statement depends on. Pure: the facade does the I/O, calls
``plan()`` before sending and ``record()`` after a statement succeeded.

Statements are scanned with regexes on the template (comments and string literals blanked),
cached like the classifier's verdicts; there is no SQL parser on this path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final, NamedTuple

__all__ = [
    "MODES",
    "NOTHING",
    "SETTINGS_LIMIT",
    "BackendState",
    "Effects",
    "Plan",
    "Tracker",
    "effects",
]

MODES: Final = ("off", "warn", "sync")
# The settings history is a map (latest statement per setting), so repeating a SET does not grow
# it; this bounds the number of distinct settings. Past it, sync sends everything to the master.
SETTINGS_LIMIT: Final = 64
_CACHE_MAX_LEN: Final = 4096

# Comments and string literals: their words never count. Backquoted identifiers stay, because
# temporary table and user variable names can be quoted.
_OPAQUE: Final = re.compile(
    r"""
      /\*(?:[^*]++|\*(?!/))*+(?:\*/|\Z)
    | --(?=\s|\Z)[^\n]*+
    | \#[^\n]*+
    | '(?:[^'\\]++|\\.?|'')*+(?:'|\Z)
    | "(?:[^"\\]++|\\.?|"")*+(?:"|\Z)
    """,
    re.VERBOSE | re.DOTALL,
)
_NAME: Final = r"(?:`(?:[^`]|``)++`|[\w$]++)"
_QUALIFIED: Final = rf"{_NAME}(?:\s*+\.\s*+{_NAME})?"
_USER_VAR: Final = re.compile(r"(?<![@\w$.`])@(`(?:[^`]|``)++`|[\w$.]++)")
_ASSIGN_AFTER: Final = re.compile(r"\s*+:=")
_SET_ASSIGN_AFTER: Final = re.compile(r"\s*+:?=")
_INTO_VARS: Final = re.compile(r"\bINTO\s++(@[^;]*+)", re.IGNORECASE)
_FIRST_WORD: Final = re.compile(r"[\s(]*+([A-Za-z_]++)")
_PAREN: Final = re.compile(r"[()]")
_SET_SPECIAL: Final = re.compile(
    r"SET\s++(?:(?P<scope>SESSION|LOCAL|GLOBAL)\s++)?"
    r"(?:(?P<trx>TRANSACTION)|(?P<names>NAMES|CHARACTER\s++SET|CHARSET)"
    r"|(?P<other>PASSWORD|ROLE|DEFAULT\s++ROLE|STATEMENT)"
    r")\b",
    re.IGNORECASE,
)
_SET_ITEM: Final = re.compile(
    r"(?:\ASET|,)\s*+(?:(?P<scope>SESSION|LOCAL|GLOBAL)\s++)?"
    r"(?:@@(?:(?P<at_scope>SESSION|LOCAL|GLOBAL)\.)?)?(?P<name>[A-Za-z_]\w*+)\s*+:?=",
    re.IGNORECASE,
)
_USE: Final = re.compile(rf"USE\s++({_NAME})\s*+;?\s*+\Z", re.IGNORECASE)
_CREATE_TEMP: Final = re.compile(
    rf"CREATE\s++(?:OR\s++REPLACE\s++)?TEMPORARY\s++TABLE\s++(?:IF\s++NOT\s++EXISTS\s++)?"
    rf"({_QUALIFIED})",
    re.IGNORECASE,
)
_DROP_TABLES: Final = re.compile(
    r"DROP\s++(?:TEMPORARY\s++)?TABLES?\s++(?:IF\s++EXISTS\s++)?([^;]*+)", re.IGNORECASE
)
_PREPARED: Final = re.compile(
    rf"(?P<verb>PREPARE|EXECUTE|DEALLOCATE\s++PREPARE|DROP\s++PREPARE)\s++(?P<name>{_NAME})",
    re.IGNORECASE,
)
_TABLE_LOCK: Final = re.compile(r"(?P<unlock>UN)?LOCK\s++TABLES?\b", re.IGNORECASE)
_FUNCS: Final = re.compile(
    r"\b(GET_LOCK|RELEASE_LOCK|RELEASE_ALL_LOCKS|LAST_INSERT_ID|FOUND_ROWS)\s*+\(",
    re.IGNORECASE,
)
_WORDS: Final = re.compile(r"`((?:[^`]|``)++)`|([A-Za-z_$][\w$]*+)")
# Settings the transaction machinery owns (routing.py), not replayed.
_NOT_REPLAYED: Final = frozenset({"autocommit"})


class Effects(NamedTuple):
    """What one statement does to, and needs from, the session that runs it."""

    sets_vars: frozenset[str] = frozenset()  # user variables assigned (lower case, no @)
    reads_vars: frozenset[str] = frozenset()  # user variables read
    setting: str = ""  # the session setting(s) a SET or USE changes, as a key; "" if none
    creates_temp: frozenset[str] = frozenset()
    drops_tables: frozenset[str] = frozenset()
    prepares: str = ""  # PREPARE name
    uses_prepared: str = ""  # EXECUTE / DEALLOCATE name
    deallocates: str = ""
    table_lock: int = 0  # 1: LOCK TABLES, -1: UNLOCK TABLES
    get_lock: bool = False
    release_lock: bool = False
    release_all_locks: bool = False
    last_insert_id: bool = False
    found_rows: bool = False
    session_statement: bool = False  # SET or USE: explains what the server reports


NOTHING: Final = Effects()  # the one instance for statements that touch no session state


def effects(sql: str) -> Effects:
    """Scan *sql* (a statement template) for the session state it sets or depends on."""
    if len(sql) <= _CACHE_MAX_LEN:
        return _effects_cached(sql)
    return _effects(sql)


@lru_cache(maxsize=4096)
def _effects_cached(sql: str) -> Effects:
    return _effects(sql)


def _unquote(name: str) -> str:
    if name.startswith("`"):
        name = name[1:-1].replace("``", "`")
    return name.lower()


def _last_part(qualified: str) -> str:
    parts = re.findall(_NAME, qualified)
    return _unquote(parts[-1]) if parts else ""


def _effects(sql: str) -> Effects:
    text = _OPAQUE.sub(" ", sql) if any(ch in sql for ch in "'\"/-#") else sql
    first_m = _FIRST_WORD.match(text)
    first = first_m.group(1).upper() if first_m else ""
    body = text[first_m.start(1) :] if first_m else text
    found: dict[str, object] = {}
    if "@" in text:
        _scan_user_vars(text, first, found)
    if first == "SET":
        found["setting"] = _setting_key(body)
        found["session_statement"] = True
    elif first == "USE" and _USE.match(body):
        found["setting"] = "database"
        found["session_statement"] = True
    elif first == "CREATE" and (m := _CREATE_TEMP.match(body)):
        found["creates_temp"] = frozenset({_last_part(m.group(1))})
    elif first == "DROP" and (m := _DROP_TABLES.match(body)):
        names = (_last_part(part) for part in m.group(1).split(","))
        found["drops_tables"] = frozenset(n for n in names if n)
    if first in ("PREPARE", "EXECUTE", "DEALLOCATE", "DROP") and (m := _PREPARED.match(body)):
        verb, name = m.group("verb").upper(), _unquote(m.group("name"))
        if verb == "PREPARE":
            found["prepares"] = name
        else:
            found["uses_prepared"] = name
            if verb != "EXECUTE":
                found["deallocates"] = name
    if first in ("LOCK", "UNLOCK") and (m := _TABLE_LOCK.match(body)):
        found["table_lock"] = -1 if m.group("unlock") else 1
    if "(" in text:
        for fm in _FUNCS.finditer(text):
            found[fm.group(1).lower()] = True
    if not found:
        return NOTHING
    return Effects(**found)  # type: ignore[arg-type]


def _scan_user_vars(text: str, first: str, found: dict[str, object]) -> None:
    sets: set[str] = set()
    reads: set[str] = set()
    into_start = -1
    if (into := _INTO_VARS.search(text)) is not None:
        into_start = into.start(1)
    after = _SET_ASSIGN_AFTER if first == "SET" else _ASSIGN_AFTER
    for m in _USER_VAR.finditer(text):
        name = _unquote(m.group(1))
        if after.match(text, m.end()) or (into_start >= 0 and m.start() >= into_start):
            sets.add(name)
        else:
            reads.add(name)
    if sets:
        found["sets_vars"] = frozenset(sets)
    if reads:
        found["reads_vars"] = frozenset(reads)


def _setting_key(body: str) -> str:
    """The key of the session settings a SET statement changes ("" for none).

    One key per statement, naming what it sets, so that a later SET of the same settings
    replaces the earlier one in the history instead of adding to it.
    """
    if (m := _SET_SPECIAL.match(body)) is not None:
        scope = (m.group("scope") or "").upper()
        if m.group("trx"):
            # Without SESSION, SET TRANSACTION applies to the next transaction only.
            return "transaction" if scope in ("SESSION", "LOCAL") else ""
        if m.group("names"):
            return "charset"
        return ""
    flat = _top_level(body)  # commas inside calls are not separators between assignments
    names = []
    scope = "SESSION"
    for item in _SET_ITEM.finditer(flat):
        scope = (item.group("at_scope") or item.group("scope") or scope).upper()
        name = item.group("name").lower()
        if scope != "GLOBAL" and name not in _NOT_REPLAYED:
            names.append(name)
        if item.group("at_scope"):
            scope = "SESSION"  # @@global.x scopes only x
    return ",".join(sorted(set(names)))


def _top_level(text: str) -> str:
    """*text* without what stands inside parentheses, in one linear pass (nesting any depth)."""
    if "(" not in text:
        return text
    parts = []
    depth = 0
    start = 0
    for m in _PAREN.finditer(text):
        if m.group() == "(":
            if depth == 0:
                parts.append(text[start : m.start()])
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                start = m.end()
    if depth == 0:
        parts.append(text[start:])
    return " ".join(parts)


def words(sql: str) -> frozenset[str]:
    """The identifiers in *sql* (lower case), to tell whether it names a temporary table."""
    if len(sql) <= _CACHE_MAX_LEN:
        return _words_cached(sql)
    return _words(sql)


@lru_cache(maxsize=1024)
def _words_cached(sql: str) -> frozenset[str]:
    return _words(sql)


def _words(sql: str) -> frozenset[str]:
    text = _OPAQUE.sub(" ", sql)
    return frozenset(q.replace("``", "`").lower() or w.lower() for q, w in _WORDS.findall(text))


@dataclass(slots=True)
class BackendState:
    """What one backend's session holds, as far as msplugin saw."""

    vars: set[str] = field(default_factory=set)
    temps: set[str] = field(default_factory=set)
    prepared: set[str] = field(default_factory=set)
    settings: dict[str, str] = field(default_factory=dict)  # key -> the statement applied here
    settings_version: int = 0  # Tracker.settings_version this session has caught up with
    table_locks: bool = False
    named_locks: int = 0
    server_changed: bool = False  # the server reported state that no statement text explains

    def snapshot(self) -> dict[str, object]:
        return {
            "settings": dict(self.settings),
            "user_variables": sorted(self.vars),
            "temporary_tables": sorted(self.temps),
            "prepared_statements": sorted(self.prepared),
            "table_locks": self.table_locks,
            "named_locks": self.named_locks,
            "server_reported_changes": self.server_changed,
        }


class Plan(NamedTuple):
    """What session state says about one statement on the backend routing chose."""

    move_to: str  # sync: the backend that holds the state ("" = stay)
    reason: str  # why, for explain() and the routing log
    warnings: tuple[str, ...]  # what to warn about (warn mode, or sync when it cannot move)
    replay: tuple[str, ...]  # sync: settings to replay on the final backend first
    error: str = ""  # sync: the statement cannot run anywhere that has its state


_STAY: Final = Plan("", "", (), ())


class Tracker:
    """Session state of one facade connection's backends, and the policy of one mode."""

    def __init__(self, mode: str, names: tuple[str, ...]) -> None:
        self.mode = mode
        self.states = {n: BackendState() for n in names}
        self.settings: dict[str, str] = {}  # the application's view: key -> statement
        self.settings_home: dict[str, str] = {}  # key -> backend the application set it on
        self.settings_version = 0
        self.overflow = False  # more distinct settings than SETTINGS_LIMIT
        self.var_home: dict[str, str] = {}  # user variable -> backend of its latest value
        self.temp_home: dict[str, str] = {}
        self.prepared_home: dict[str, str] = {}
        self.lock_holder = ""  # backend holding LOCK TABLES or named locks
        self.last_insert_home = ""
        self.found_rows_home = ""
        self.server_home = ""  # latest backend whose state changed as only the server saw

    # ------------------------------------------------------------------ before a statement

    def plan(
        self, sql: str, eff: Effects, chosen: str, *, read: bool, fixed: str, master: str
    ) -> Plan:
        """Say whether *chosen* lacks state *sql* depends on, and in sync where to go instead.

        *fixed* names why the statement cannot move ("" if it can): an open transaction or a
        hint. *master* is the backend that takes writes.
        """
        if eff is NOTHING and self.idle(chosen, sql):
            return _STAY
        sync = self.mode == "sync"
        needs = self._needs(sql, eff, chosen)
        if sync and not needs and eff.sets_vars and chosen != master and not fixed:
            # Variables set by a read would live on a slave, where writes that use them cannot
            # follow: set them where the writes run.
            needs = [(f"@{min(eff.sets_vars)}", master, "is kept with the writes")]
        if not sync:
            warnings = tuple(_warning(item, holder, chosen, why) for item, holder, why in needs)
            return Plan("", "", warnings + self._setting_warnings(chosen), ())
        if self.overflow and chosen != master and not fixed:
            why = f"more than {SETTINGS_LIMIT} distinct session settings were set"
            return Plan(master, f"pinned to {master}: {why}", (), self.pending(master))
        if not needs:
            return Plan("", "", (), self.pending(chosen))
        item, holder, why = needs[0]
        if fixed:
            warnings = tuple(
                f"{_warning(i, h, chosen, w)} (not moved: {fixed})" for i, h, w in needs
            )
            return Plan("", "", warnings, self.pending(chosen))
        warnings = tuple(_warning(i, h, holder, w) for i, h, w in needs[1:] if h != holder)
        reason = f"pinned to {holder}: {item} {why} there"
        if not read and holder != master and not eff.uses_prepared:
            error = f"{reason}, but the statement is not a read and {holder} is a slave"
            return Plan("", reason, warnings, (), error)
        return Plan(holder, reason, warnings, self.pending(holder))

    def idle(self, chosen: str, sql: str) -> bool:
        """True if *sql*, a statement that touches no state, needs nothing on *chosen*: no
        lock is held, *chosen* has every setting, no temporary table is named. The common
        case, kept to a few tests."""
        if (
            self.lock_holder
            or self.overflow
            or self.states[chosen].settings_version != self.settings_version
        ):
            return False
        return not self.temp_home or self.temp_home.keys().isdisjoint(words(sql))

    def quiet(self) -> bool:
        """True if ``idle`` holds for every backend and every statement: the fast lane of
        msplugin.connection may skip it until the next statement that changes state."""
        if self.lock_holder or self.overflow or self.temp_home:
            return False
        version = self.settings_version
        for st in self.states.values():  # noqa: SIM110 (a loop, not all(): runs per transaction)
            if st.settings_version != version:
                return False
        return True

    def _needs(self, sql: str, eff: Effects, chosen: str) -> list[tuple[str, str, str]]:
        """(state item, backend holding it, what it is there) for each dependency that
        *chosen* lacks."""
        needs: list[tuple[str, str, str]] = []
        holder = self.lock_holder
        if holder and holder != chosen:
            if self.states[holder].table_locks:
                needs.append(("LOCK TABLES", holder, "is held"))
            elif self.mode == "sync" or eff.release_lock or eff.release_all_locks:
                needs.append(("a named lock (GET_LOCK)", holder, "is held"))
        for var in sorted(eff.reads_vars):
            home = self.var_home.get(var)
            if home is None and var not in eff.sets_vars:
                home = self.server_home  # the server saw a change no statement explains
                if home and home != chosen:
                    needs.append((f"@{var}", home, "may have been set by a procedure"))
            elif home is not None and home != chosen:
                needs.append((f"@{var}", home, "was set"))
        if self.temp_home:
            for name in sorted(words(sql) & self.temp_home.keys()):
                if self.temp_home[name] != chosen and name not in eff.creates_temp:
                    needs.append((f"temporary table {name}", self.temp_home[name], "exists"))
        if eff.uses_prepared:
            home = self.prepared_home.get(eff.uses_prepared)
            if home is not None and home != chosen:
                needs.append((f"prepared statement {eff.uses_prepared}", home, "was prepared"))
        if eff.last_insert_id and self.last_insert_home and self.last_insert_home != chosen:
            needs.append(
                ("LAST_INSERT_ID()", self.last_insert_home, "belongs to the last write, run")
            )
        if eff.found_rows and self.found_rows_home and self.found_rows_home != chosen:
            needs.append(("FOUND_ROWS()", self.found_rows_home, "belongs to the last read, run"))
        return needs

    def _setting_warnings(self, chosen: str) -> tuple[str, ...]:
        st = self.states[chosen]
        if st.settings_version == self.settings_version:
            return ()
        out = []
        for key, stmt in self.settings.items():
            if st.settings.get(key) != stmt:
                home = self.settings_home.get(key, "?")
                out.append(
                    f"session setting {key} ({_cut(stmt)}) was set on {home}, but this "
                    f"statement runs on {chosen}, whose session does not have it"
                )
        return tuple(out)

    def pending(self, name: str) -> tuple[str, ...]:
        """Sync: the settings statements *name* has not had yet, in the order they were set."""
        st = self.states[name]
        if st.settings_version == self.settings_version:
            return ()
        missing = tuple(s for k, s in self.settings.items() if st.settings.get(k) != s)
        if not missing:
            st.settings_version = self.settings_version  # caught up (a setting was forgotten)
        return missing

    def replayed(self, name: str) -> None:
        st = self.states[name]
        st.settings.update(self.settings)
        st.settings_version = self.settings_version

    # ------------------------------------------------------------------ after a statement

    def record(self, eff: Effects, name: str, *, read: bool, executed: str) -> None:
        """The statement with *eff* succeeded on backend *name*; *executed* is its final text."""
        st = self.states[name]
        if read:
            self.found_rows_home = name
        else:
            self.last_insert_home = name
        if eff is NOTHING:
            return
        for var in eff.sets_vars:
            st.vars.add(var)
            self.var_home[var] = name
        if eff.setting and executed:
            self._set(eff.setting, executed, name)
        for t in eff.creates_temp:
            st.temps.add(t)
            self.temp_home[t] = name
        for t in eff.drops_tables:
            st.temps.discard(t)
            if self.temp_home.get(t) == name:
                del self.temp_home[t]
        if eff.prepares:
            st.prepared.add(eff.prepares)
            self.prepared_home[eff.prepares] = name
        if eff.deallocates:
            st.prepared.discard(eff.deallocates)
            if self.prepared_home.get(eff.deallocates) == name:
                del self.prepared_home[eff.deallocates]
        if eff.table_lock:
            st.table_locks = eff.table_lock > 0
        if eff.get_lock:
            st.named_locks += 1
        if eff.release_lock:
            st.named_locks = max(0, st.named_locks - 1)
        if eff.release_all_locks:
            st.named_locks = 0
        self._update_lock_holder()

    def transaction_began(self, name: str) -> None:
        """Starting a transaction releases LOCK TABLES on that session."""
        st = self.states[name]
        if st.table_locks:
            st.table_locks = False
            self._update_lock_holder()

    def _update_lock_holder(self) -> None:
        self.lock_holder = next(
            (n for n, s in self.states.items() if s.table_locks or s.named_locks), ""
        )

    def _set(self, key: str, statement: str, name: str) -> None:
        if key not in self.settings and len(self.settings) >= SETTINGS_LIMIT:
            self.overflow = True
            return
        self.settings.pop(key, None)  # keep the order in which settings were last set
        self.settings[key] = statement
        self.settings_home[key] = name
        self.settings_version += 1
        st = self.states[name]
        st.settings.pop(key, None)
        st.settings[key] = statement
        if all(st.settings.get(k) == s for k, s in self.settings.items()):
            st.settings_version = self.settings_version

    def forget(self, key: str) -> None:
        """The API changed setting *key* on every backend (select_db(), set_character_set()):
        no statement of the application's needs replaying for it any more."""
        if self.settings.pop(key, None) is not None:
            self.settings_home.pop(key, None)
            for st in self.states.values():
                st.settings.pop(key, None)
            self.settings_version += 1

    def server_reported(self, name: str, *, schema: str | None, variables: dict[str, str]) -> None:
        """The server said the session on *name* changed in ways no statement text explains
        (a procedure, a trigger): a new database, system variables, or just "changed"."""
        if schema is not None:
            self._set("database", f"USE `{schema.replace('`', '``')}`", name)
        for var, value in variables.items():
            # A backslash means different things with and without NO_BACKSLASH_ESCAPES: such a
            # value is not replayed (the backend is still marked as changed).
            if var in _NOT_REPLAYED or not var.replace("_", "").isalnum() or "\\" in value:
                continue
            quoted = value.replace("'", "''")
            self._set(var, f"SET SESSION {var} = '{quoted}'", name)
        self.states[name].server_changed = True
        self.server_home = name

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {n: s.snapshot() for n, s in self.states.items()}

    def holds_state(self, name: str) -> bool:
        """True if the application left state on backend *name* that msplugin saw."""
        st = self.states[name]
        return bool(
            st.vars
            or st.temps
            or st.prepared
            or st.settings
            or st.table_locks
            or st.named_locks
            or st.server_changed
        )

    def unrecoverable(self, name: str) -> list[str]:
        """What backend *name*'s session holds that a new session there will not get back
        (settings are replayed under sync; nothing else is, in any mode)."""
        st = self.states[name]
        items = [f"user variable @{v}" for v in sorted(st.vars)]
        items += [f"temporary table {t}" for t in sorted(st.temps)]
        items += [f"prepared statement {p}" for p in sorted(st.prepared)]
        if st.table_locks:
            items.append("table locks")
        if st.named_locks:
            items.append(f"{st.named_locks} named lock(s)")
        if self.mode != "sync":
            items += [f"setting {k}" for k in sorted(st.settings)]
        return items

    def lost(self, name: str) -> None:
        """Backend *name*'s session is gone (the server died): what it held is gone too.

        Settings the application made are replayed on the next session there (sync); the
        variables, temporary tables, prepared statements and locks it held are not.
        """
        self.states[name] = BackendState()
        for homes in (self.var_home, self.temp_home, self.prepared_home):
            for key in [k for k, home in homes.items() if home == name]:
                del homes[key]
        if self.lock_holder == name:
            self.lock_holder = ""
        for attr in ("last_insert_home", "found_rows_home", "server_home"):
            if getattr(self, attr) == name:
                setattr(self, attr, "")


def _warning(item: str, holder: str, chosen: str, what: str) -> str:
    return f"{item} {what} on {holder}, but this statement runs on {chosen}"


def _cut(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."
