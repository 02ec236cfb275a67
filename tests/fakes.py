"""A fake driver for unit tests of msplugin's own rules: scripted servers, no MySQL.

``FakeServers`` holds one ``FakeServer`` per configured server and is the ``connect_factory``
of the facade connection under test (``msplugin.connect(..., connect_factory=servers.connect)``).
A fake connection answers as PyMySQL's does on the surface msplugin uses: the server status
bits (autocommit, a transaction open, session state changed), OK packets whose tail carries a
session-tracking block with the GTID of a write, result sets, multi-statement replies, errors,
and connections lost before or after a statement was sent. A test scripts what a server does
next (``fail_next``, ``lose_next``, ``down``) and reads what each server received (``log``).

It checks msplugin's decisions, never server behaviour: what MariaDB does is tested against
real servers in tests/integration.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pymysql import err
from pymysql.converters import escape_item

if TYPE_CHECKING:
    import msplugin

Connect = Callable[..., "msplugin.Connection"]  # the unit tests' connect fixture

IN_TRANS = 1
AUTOCOMMIT = 2
SESSION_STATE_CHANGED = 0x4000
_FIRST = re.compile(r"\s*(?:/\*.*?\*/\s*)*([A-Za-z_]+)", re.DOTALL)
_WAIT = re.compile(r"MASTER_GTID_WAIT\('(\d+)-(\d+)-(\d+)'")


def _lenenc(data: bytes) -> bytes:
    assert len(data) < 251
    return bytes([len(data)]) + data


def gtid_block(gtid: str) -> bytes:
    """The tail of an OK packet reporting ``last_gtid`` (MariaDB's session tracking)."""
    item = _lenenc(b"last_gtid") + _lenenc(gtid.encode())
    block = bytes([0]) + _lenenc(item)  # SESSION_TRACK_SYSTEM_VARIABLES
    return _lenenc(b"") + _lenenc(block)


@dataclass
class Result:
    """One reply: rows (a result set) or an OK packet (*message*: its tail)."""

    rows: tuple[tuple[Any, ...], ...] | None = None
    message: bytes = b""
    affected: int = 0
    insert_id: int = 0
    has_next: bool = False


@dataclass
class FakeServer:
    """A server: what it answers, what it received, and what it does next."""

    name: str
    role: str
    server_id: int
    host: str
    port: int
    down: str = ""  # connect() is refused with this message
    gtid_seq: int = 0  # master: the last GTID's sequence number (domain 0, server 1)
    applied: int = 0  # replica: the master's sequence number applied here
    log: list[str] = field(default_factory=list)  # statements as received (msplugin's too)
    # A SELECT containing a key is answered with its rows (else the server's id).
    answers: dict[str, tuple[tuple[Any, ...], ...]] = field(default_factory=dict)
    connects: int = 0
    connections: list[FakeConnection] = field(default_factory=list)  # every one opened
    _next: list[tuple[str, int, str]] = field(default_factory=list)  # (how, errno, message)

    def fail_next(self, errno: int, message: str) -> None:
        """The next statement gets this server error (nothing changes on the server)."""
        self._next.append(("error", errno, message))

    def lose_next(self, *, sent: bool = True) -> None:
        """The connection of the next statement breaks: after the statement reached the
        server (2013, it may have run) or before (2006, it did not)."""
        self._next.append(("lost" if sent else "unsent", 0, ""))

    def scripted(self) -> tuple[str, int, str] | None:
        return self._next.pop(0) if self._next else None


class FakeServers:
    """The fake servers of one topology, by address; ``connect`` is the connect_factory."""

    def __init__(self) -> None:
        self.by_address: dict[tuple[str, int], FakeServer] = {}

    def add(self, name: str, role: str, server_id: int, port: int) -> FakeServer:
        server = FakeServer(name, role, server_id, "192.0.2.1", port)
        self.by_address[(server.host, port)] = server
        return server

    def __getitem__(self, name: str) -> FakeServer:
        return next(s for s in self.by_address.values() if s.name == name)

    def connect(self, **params: Any) -> FakeConnection:
        server = self.by_address[(params["host"], params["port"])]
        if server.down:
            raise err.OperationalError(2003, f"Can't connect to MySQL server: {server.down}")
        server.connects += 1
        conn = FakeConnection(server, params)
        server.connections.append(conn)
        return conn


class FakeConnection:
    """A PyMySQL connection's surface, answered by a FakeServer."""

    def __init__(self, server: FakeServer, params: dict[str, Any]) -> None:
        self.server = server
        self.host, self.port = server.host, server.port
        self.unix_socket = None
        self.autocommit_mode = bool(params.get("autocommit", False))
        self.db = params.get("database")
        self.charset = params.get("charset", "utf8mb4")
        self.encoding = "utf8"
        self.in_trans = False
        self.tracks_gtid = False
        self.server_status = AUTOCOMMIT if self.autocommit_mode else 0
        self._result: Any = None
        self._sock, self._peer = socket.socketpair()  # peer_closed() polls a real socket
        self.open = True
        self._insert_id = 0
        self._affected = 0

    def __repr__(self) -> str:
        return f"<FakeConnection to {self.server.name}>"

    # ------------------------------------------------------------- what the server does

    def run(self, sql: str) -> list[Result]:
        """Answer *sql* (a multi-statement string gives one result per statement)."""
        if not self.open:
            raise err.InterfaceError(0, "")
        scripted = self.server.scripted()
        if scripted is not None:
            how, errno, message = scripted
            if how == "error":
                raise err.OperationalError(errno, message)
            self.close()
            if how == "unsent":
                raise err.OperationalError(2006, "MySQL server has gone away")
            raise err.OperationalError(2013, "Lost connection to MySQL server during query")
        self.server.log.append(sql)
        results = [self._one(part) for part in sql.split(";") if part.strip()]
        for r in results[:-1]:
            r.has_next = True
        return results

    def _one(self, sql: str) -> Result:
        m = _FIRST.match(sql)
        word = m.group(1).upper() if m else ""
        upper = sql.upper()
        self.server_status &= ~SESSION_STATE_CHANGED
        if word == "SET" and "LAST_GTID" in upper:
            self.tracks_gtid = True
        elif word == "SET" and "AUTOCOMMIT" in upper:
            self.autocommit_mode = upper.rstrip().endswith(("1", "ON"))
            if self.autocommit_mode:
                self.in_trans = False  # switching autocommit on commits
        elif word in ("BEGIN", "START"):
            self.in_trans = True
        elif word in ("COMMIT", "ROLLBACK"):
            return self._end(word == "COMMIT")
        elif word in ("SELECT", "SHOW"):
            return self._select(sql)
        elif word in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
            return self._write()
        elif word in ("CREATE", "DROP", "ALTER"):
            self.in_trans = False  # an implicit commit
        self._status()
        return Result()

    def _select(self, sql: str) -> Result:
        if not self.autocommit_mode:
            self.in_trans = True
        self._status()
        wait = _WAIT.search(sql)
        if wait is not None:
            return Result(rows=((0 if self.server.applied >= int(wait.group(3)) else -1,),))
        for key, rows in self.server.answers.items():
            if key in sql:
                return Result(rows=rows)
        return Result(rows=((self.server.server_id,),))

    def _write(self) -> Result:
        if self.server.role != "master":
            raise err.OperationalError(1290, "The MariaDB server is running with --read-only")
        if not self.autocommit_mode:
            self.in_trans = True
        self._insert_id += 1
        self._affected = 1
        message = b""
        if not self.in_trans:
            message = self._commit_gtid()
        self._status(changed=bool(message))
        return Result(message=message, affected=1, insert_id=self._insert_id)

    def _end(self, commit: bool) -> Result:
        wrote = self.in_trans and self.server.role == "master"
        self.in_trans = False
        message = self._commit_gtid() if commit and wrote else b""
        self._status(changed=bool(message))
        return Result(message=message)

    def _commit_gtid(self) -> bytes:
        self.server.gtid_seq += 1
        if not self.tracks_gtid:
            return b""
        return gtid_block(f"0-1-{self.server.gtid_seq}")

    def _status(self, *, changed: bool = False) -> None:
        status = (AUTOCOMMIT if self.autocommit_mode else 0) | (IN_TRANS if self.in_trans else 0)
        self.server_status = status | (SESSION_STATE_CHANGED if changed else 0)

    # ------------------------------------------------------------- PyMySQL's surface

    def cursor(self, cursorclass: Any = None) -> FakeCursor:
        return FakeCursor(self)

    def query(self, sql: str) -> int:
        results = self.run(sql)
        self._result = _Reply(results[-1])
        return results[-1].affected

    def commit(self) -> None:
        self.query("COMMIT")

    def rollback(self) -> None:
        self.query("ROLLBACK")

    def autocommit(self, value: bool) -> None:
        self.query(f"SET autocommit={int(bool(value))}")

    def get_autocommit(self) -> bool:
        return self.autocommit_mode

    def select_db(self, db: str) -> None:
        self.run(f"USE {db}")
        self.db = db

    def set_character_set(self, charset: str, collation: str | None = None) -> None:
        self.run(f"SET NAMES {charset}")
        self.charset = charset

    def ping(self, reconnect: bool = True) -> None:
        if not self.open:
            raise err.Error("Already closed")
        scripted = self.server.scripted()
        if scripted is not None:
            self.close()
            raise err.OperationalError(2013, "Lost connection to MySQL server during query")

    def close(self) -> None:
        if self.open:
            self.open = False
            self._sock.close()
            self._peer.close()

    def insert_id(self) -> int:
        return self._insert_id

    def affected_rows(self) -> int:
        return self._affected

    def thread_id(self) -> int:
        return id(self) % 100_000

    def get_server_info(self) -> str:
        return "10.11.6-MariaDB-fake"

    def get_host_info(self) -> str:
        return f"socket {self.host}:{self.port}"

    def get_proto_info(self) -> int:
        return 10

    def character_set_name(self) -> str:
        return str(self.charset)

    def escape(self, obj: Any, mapping: Any = None) -> str:
        return str(escape_item(obj, "utf8", mapping))

    def server_closes(self) -> None:
        """The server closes this connection while it is idle (wait_timeout, a restart)."""
        self._peer.close()


@dataclass
class _Reply:
    """What PyMySQL keeps of the last reply as ``connection._result``."""

    result: Result

    @property
    def message(self) -> bytes | None:
        return None if self.result.rows is not None else self.result.message

    @property
    def has_next(self) -> bool:
        return self.result.has_next


class FakeCursor:
    """A PyMySQL cursor's surface over a FakeConnection."""

    def __init__(self, connection: FakeConnection) -> None:
        self.connection = connection
        self.arraysize = 1
        self._results: list[Result] = []
        self._rows: list[tuple[Any, ...]] = []
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.rownumber = 0
        self.warning_count = 0
        self._executed: str | None = None

    def mogrify(self, query: str, args: Any = None) -> str:
        if args is None:
            return query
        if isinstance(args, dict):
            return query % {k: self.connection.escape(v) for k, v in args.items()}
        return query % tuple(self.connection.escape(a) for a in args)

    def execute(self, query: str, args: Any = None) -> int:
        sql = self.mogrify(query, args)
        self._executed = sql
        self._results = self.connection.run(sql)
        self._take()
        return self.rowcount

    def executemany(self, query: str, args: Any) -> int:
        return sum(self.execute(query, a) for a in args)

    def callproc(self, procname: str, args: Any = ()) -> Any:
        self.execute(f"CALL {procname}()")
        return args

    def _take(self) -> None:
        result = self._results.pop(0)
        self.connection._result = _Reply(result)
        self._rows = list(result.rows or ())
        self.description = (("c", 3, None, None, None, None, True),) if result.rows else None
        self.rowcount = len(self._rows) if result.rows is not None else result.affected
        self.lastrowid = result.insert_id
        self.rownumber = 0

    def nextset(self) -> bool | None:
        if not self._results:
            return None
        self._take()
        return True

    def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        n = size or self.arraysize
        out, self._rows = self._rows[:n], self._rows[n:]
        return out

    def fetchall(self) -> list[Any]:
        out, self._rows = self._rows, []
        return out

    def scroll(self, value: int, mode: str = "relative") -> None:
        raise err.NotSupportedError("scroll")

    def close(self) -> None:
        self._results = []
        self._rows = []

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def where(conn: msplugin.Connection, *statements: str) -> list[str]:
    """Run *statements*; the server each ran on."""
    out = []
    cur = conn.cursor()
    for sql in statements:
        cur.execute(sql)
        cur.fetchall()
        assert conn.last_used is not None
        out.append(conn.last_used.name)
    return out


def received(servers: FakeServers, name: str, word: str) -> list[str]:
    """The statements *servers[name]* received that contain *word*."""
    return [s for s in servers[name].log if word.upper() in s.upper()]


def only_slave_1(
    group: str, query: str, masters: list[str], slaves: list[str], last: str | None, trx: bool
) -> tuple[list[str], list[str]]:
    """A user_multi callback (named "fakes:only_slave_1"): reads may go to slave_1 alone."""
    return masters, [s for s in slaves if s == "slave_1"]
