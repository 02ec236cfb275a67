"""GTIDs for read-your-writes: read them from OK packets, compare them, build the replica check.

Pure functions plus one small per-connection state object; the facade does the I/O.

MariaDB: the master reports ``last_gtid`` through session state tracking
(``session_track_system_variables``); a replica has applied GTID ``D-S-N`` when its
``gtid_slave_pos`` holds sequence number >= N for domain D; ``MASTER_GTID_WAIT(gtid, timeout)``
returns 0 once applied, -1 on timeout.
MySQL: ``session_track_gtids=OWN_GTID`` reports the transaction's GTID set;
``WAIT_FOR_EXECUTED_GTID_SET(set, timeout)`` returns 0 once applied, 1 on timeout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "SESSION_STATE_CHANGED",
    "TRACK_SCHEMA",
    "TRACK_STATE_CHANGE",
    "TRACK_SYSTEM_VARIABLES",
    "GtidState",
    "covers",
    "gtid_from_session_state",
    "gtid_only",
    "gtid_tracking",
    "is_valid_gtid",
    "parse_mariadb_gtid",
    "schema_name",
    "session_state_items",
    "system_variable",
    "wait_sql",
]

SESSION_STATE_CHANGED: Final = 0x4000  # server status flag: the OK packet carries session state
# Session-state item types (MySQL/MariaDB protocol, enum_session_state_type).
TRACK_SYSTEM_VARIABLES: Final = 0
TRACK_SCHEMA: Final = 1
TRACK_STATE_CHANGE: Final = 2
TRACK_GTIDS: Final = 3
_MARIADB_GTID: Final = re.compile(r"\d+-\d+-\d+(?:,\d+-\d+-\d+)*")
_MYSQL_GTID: Final = re.compile(r"[0-9A-Fa-f:,\-\s]+")


def _lenenc_int(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    if first < 0xFB:
        return first, pos + 1
    size = {0xFC: 2, 0xFD: 3, 0xFE: 8}.get(first)
    if size is None:
        raise ValueError("bad length-encoded integer")
    return int.from_bytes(data[pos + 1 : pos + 1 + size], "little"), pos + 1 + size


def _lenenc_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = _lenenc_int(data, pos)
    if pos + length > len(data):
        raise ValueError("truncated length-encoded string")
    return data[pos : pos + length], pos + length


def session_state_items(message: bytes) -> list[tuple[int, bytes]]:
    """The (type, data) items of an OK packet's session-state block; [] if it has none.

    *message* is what PyMySQL keeps after the OK packet's warning count: with
    CLIENT.SESSION_TRACK, a length-encoded info string, then the length-encoded state block.
    Malformed data gives []: a missed item costs a warning or a replay, never a wrong answer
    from the GTID check.
    """
    try:
        _info, pos = _lenenc_bytes(message, 0)
        if pos >= len(message):
            return []
        block, _ = _lenenc_bytes(message, pos)
        items = []
        i = 0
        while i < len(block):
            kind = block[i]
            data, i = _lenenc_bytes(block, i + 1)
            items.append((kind, data))
        return items
    except (ValueError, IndexError):
        return []


def system_variable(data: bytes) -> tuple[str, str]:
    """Decode a SESSION_TRACK_SYSTEM_VARIABLES item: (name, value)."""
    name, j = _lenenc_bytes(data, 0)
    value, _ = _lenenc_bytes(data, j)
    return name.decode("utf-8", "replace"), value.decode("utf-8", "replace")


def schema_name(data: bytes) -> str:
    """Decode a SESSION_TRACK_SCHEMA item: the new current database."""
    name, _ = _lenenc_bytes(data, 0)
    return name.decode("utf-8", "replace")


def gtid_from_session_state(message: bytes) -> str | None:
    """Return the GTID reported in an OK packet's session-state block, if there is one."""
    found: str | None = None
    try:
        for kind, data in session_state_items(message):
            if kind == TRACK_SYSTEM_VARIABLES:
                name, value = system_variable(data)
                if name == "last_gtid":
                    found = value or found
            elif kind == TRACK_GTIDS and len(data) > 1:
                gtids, _ = _lenenc_bytes(data, 1)  # byte 0: encoding specification
                found = gtids.decode("ascii") or found
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
    return found


_LAST_GTID: Final = b"\tlast_gtid"


def gtid_only(message: bytes) -> str | None:
    """The GTID an OK packet's session-state block reports, if the block reports nothing
    else; None if it reports more, or no GTID (the caller then learns the full way).

    The reply to every write under session consistency: MariaDB's block is one item,
    ``last_gtid``, after the info string; it is matched byte by byte, lengths included,
    because this runs on every write. Other layouts (MySQL's GTID item) are parsed.
    """
    end = len(message)
    pos = message[0] + 1 if end else 0
    if (
        pos < 0xFB
        and end > pos + 14
        and message[pos] == end - pos - 1
        and message[pos + 1] == TRACK_SYSTEM_VARIABLES
        and message[pos + 2] == end - pos - 3
        and message[pos + 3 : pos + 13] == _LAST_GTID
        and message[pos + 13] == end - pos - 14
    ):
        try:
            return message[pos + 14 :].decode("ascii")
        except UnicodeDecodeError:
            return None
    if len(session_state_items(message)) != 1:
        return None
    return gtid_from_session_state(message)


def parse_mariadb_gtid(text: str) -> dict[int, int]:
    """``"0-1-5,1-2-9"`` -> {domain: sequence number}; empty for text that is not a position."""
    positions: dict[int, int] = {}
    # No replace() unless needed, no max(), three tests rather than all() over a generator:
    # this runs on every write's GTID.
    for part in (text.replace(" ", "") if " " in text else text).split(","):
        pieces = part.split("-")
        if len(pieces) == 3 and pieces[0].isdigit() and pieces[1].isdigit() and pieces[2].isdigit():
            domain, seq = int(pieces[0]), int(pieces[2])
            if seq > positions.get(domain, -1):
                positions[domain] = seq
    return positions


def covers(position: str | None, gtid: str) -> bool:
    """True if a replica at *position* has applied MariaDB GTID *gtid* (MySQL: exact match only)."""
    if not position:
        return False
    return _covers(position, parse_mariadb_gtid(position), gtid, parse_mariadb_gtid(gtid))


def _covers(position: str, have: dict[int, int], gtid: str, need: dict[int, int]) -> bool:
    if not need:
        return position == gtid
    for domain, seq in need.items():  # noqa: SIM110 (no generator: runs on every write)
        if have.get(domain, -1) < seq:
            return False
    return True


# A session read on a Galera node: it waits there until the node has applied every write
# set the cluster committed before it (this connection's write among them). Chosen over
# WSREP_SYNC_WAIT_UPTO_GTID(), which let 1 read in 500-2,000 miss the write it had waited
# for on MariaDB 10.11 (MANUAL 25).
CAUSAL_READ: Final = "SET STATEMENT wsrep_sync_wait = 1 FOR "


def is_valid_gtid(gtid: str, flavor: str) -> bool:
    pattern = _MARIADB_GTID if flavor == "mariadb" else _MYSQL_GTID
    return pattern.fullmatch(gtid.strip()) is not None


def wait_sql(flavor: str, gtid: str, timeout: float) -> str:
    """The statement that returns 0 once the replica (or Galera node) has applied *gtid*
    (validated, inlined).

    Inlined rather than a parameter because it is prepended to the application's statement,
    whose own %s placeholders PyMySQL interpolates; the GTID's characters are checked first.

    A SELECT, although a result set costs the client more to parse than an OK packet: on
    MariaDB 10.11 the alternatives measured slower on the server (bench notes in MANUAL.md),
    and ``DO`` turns most errors into warnings, so a ``DO`` that fails loudly is fragile.
    """
    pattern = _MARIADB_GTID if flavor == "mariadb" else _MYSQL_GTID  # is_valid_gtid()
    if pattern.fullmatch(gtid.strip()) is None:
        raise ValueError(f"not a {flavor} GTID: {gtid!r}")
    if flavor == "mariadb":
        return f"SELECT MASTER_GTID_WAIT('{gtid.strip()}', {timeout:g})"
    return f"SELECT WAIT_FOR_EXECUTED_GTID_SET('{gtid.strip()}', {timeout:g})"


def gtid_tracking(flavor: str) -> str:
    """The SET assignment that makes the master report this session's GTID in every OK packet."""
    if flavor == "mariadb":
        return (
            "session_track_system_variables = "
            "CONCAT(@@session.session_track_system_variables, ',last_gtid')"
        )
    return "session_track_gtids = OWN_GTID"


@dataclass(slots=True)
class GtidState:
    """Per facade connection: the GTID its reads must see, and what replicas are known to have.

    The GTID is parsed once, when it is set (after a write, or by set_qos()), and the replicas
    known to have it are worked out then, so that a read compares nothing but a name.
    """

    gtid: str | None = None  # what reads must see: the last write, or one given to set_qos()
    need: dict[int, int] = field(default_factory=dict)  # gtid parsed (MariaDB); {}: MySQL
    known: set[str] = field(default_factory=set)  # replica aliases known to have gtid
    last_write: str | None = None  # the GTID of this connection's last write
    written_at: float = 0.0  # monotonic time of that write (0: given, not written here)
    untracked_write: bool = False  # wrote without learning the GTID: session reads -> master
    # replica alias -> (GTID it was confirmed to have, that GTID parsed)
    confirmed: dict[str, tuple[str, dict[int, int]]] = field(default_factory=dict)
    # Adaptive guess of how long replicas take to apply a write: a session read sooner than
    # this after the write goes straight to the master instead of paying a failed check.
    apply_delay: float = 0.0
    check_key: tuple[str, str] | None = None  # (gtid, flavor) that check_sql was built for
    check_sql: str = ""
    check_is_wait: bool = True  # native wait (0 = applied), or check_for_gtid (a row = applied)

    def require(self, gtid: str, written_at: float) -> None:
        """From now on reads must see *gtid* (written at *written_at*, 0 if given)."""
        need = parse_mariadb_gtid(gtid)
        self.gtid, self.need, self.written_at = gtid, need, written_at
        known: set[str] = set()
        for name, (position, have) in self.confirmed.items():  # no comprehension: every write
            if _covers(position, have, gtid, need):
                known.add(name)
        self.known = known

    def untracked(self) -> None:
        """This connection wrote and the GTID is unknown: session reads go to the master."""
        self.gtid, self.need, self.known, self.last_write = None, {}, set(), None
        self.untracked_write = True

    def confirm(self, name: str) -> None:
        """Replica *name* was checked to have the current GTID."""
        assert self.gtid is not None
        self.confirmed[name] = (self.gtid, self.need)
        self.known.add(name)

    def check_failed(self, elapsed: float) -> None:
        self.apply_delay = min(1.0, max(self.apply_delay * 2, elapsed * 2, 0.0005))

    def check_passed(self) -> None:
        self.apply_delay *= 0.8

    def skipped_check(self) -> None:
        # Shrink a little each time, so that a read now and then checks again: replicas that
        # became faster win their reads back.
        self.apply_delay *= 0.98
