"""A local replicated topology (1 primary + N replicas) from the server binaries on the machine.

For demos, tests and benchmarks. Every server gets its own data directory under DIR, listens on
a free loopback port only (127.0.0.1), and replicates with GTIDs; replicas are read_only. The
state (pids, ports, generated passwords) is kept in DIR/sandbox.json, mode 0600, and
``down`` stops exactly the processes recorded there.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson
import pymysql

__all__ = ["Node", "Sandbox", "SandboxError", "find_server_binary"]

DEFAULT_DIR: Final = ".msplugin-sandbox"
GROUP: Final = "sandbox"
APP_USER: Final = "msplugin"
DATABASE: Final = "test"
START_TIMEOUT: Final = 30.0

INSTALL_HINT: Final = (
    "install a MariaDB server (Debian/Ubuntu: 'apt-get install mariadb-server'), "
    "or point MSPLUGIN_MYSQLD at a mariadbd or mysqld binary"
)


class SandboxError(RuntimeError):
    """The sandbox could not be started, inspected or stopped; the message says why."""

    __module__ = "msplugin"


@dataclass
class Node:
    name: str
    role: str  # "primary" | "replica"
    port: int
    server_id: int
    datadir: str
    pid: int | None = None
    ports: dict[str, int] = field(default_factory=dict)  # a Galera node's cluster ports

    @property
    def socket(self) -> str:
        return str(Path(self.datadir) / "mysqld.sock")

    @property
    def tmpdir(self) -> str:
        return f"{self.datadir}.tmp"


def find_server_binary() -> tuple[str, str]:
    """Return (path, flavor) of a MariaDB or MySQL server binary; flavor is mariadb or mysql."""
    candidates = [os.environ.get("MSPLUGIN_MYSQLD", "")]
    for name in ("mariadbd", "mysqld"):
        candidates += [shutil.which(name) or "", f"/usr/sbin/{name}", f"/usr/libexec/{name}"]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
            text = out.stdout + out.stderr
            if "MariaDB" in text:
                return path, "mariadb"
            if "MySQL" in text or "mysqld" in text:
                return path, "mysql"
    raise SandboxError(f"no MariaDB or MySQL server binary found; {INSTALL_HINT}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pid_alive(pid: int | None, datadir: str) -> bool:
    """True if *pid* runs and is the server of *datadir* (guards against pid reuse)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return datadir.encode() in cmdline


class Sandbox:
    """A topology recorded in DIR/sandbox.json."""

    kind = "replication"

    def __init__(self, directory: str | os.PathLike[str], state: dict[str, Any]) -> None:
        self.dir = Path(directory)
        self.binary: str = state["binary"]
        self.flavor: str = state["flavor"]
        self._root_password: str = state["root_password"]
        # The replication account's (sandboxes made before switchover existed lack it).
        self.repl_password: str | None = state.get("repl_password")
        self.nodes = [Node(**n) for n in state["nodes"]]

    def __repr__(self) -> str:
        ports = ", ".join(f"{n.name}:{n.port}" for n in self.nodes)
        return f"<Sandbox {self.dir} {self.flavor} {ports}>"

    @property
    def config_path(self) -> Path:
        return self.dir / "msplugin.json"

    @property
    def primary(self) -> Node:
        """The node that takes writes (the first one, until a switchover or failover)."""
        return next(n for n in self.nodes if n.role == "primary")

    @property
    def replicas(self) -> list[Node]:
        return [n for n in self.nodes if n.role != "primary"]

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Sandbox:
        path = Path(directory) / "sandbox.json"
        try:
            state = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            raise SandboxError(f"no sandbox in {directory} ({path} not found)") from None
        if state.get("kind") == "galera":
            from msplugin.sandbox_galera import GaleraSandbox

            return GaleraSandbox(directory, state)
        return cls(directory, state)

    @classmethod
    def up(cls, directory: str | os.PathLike[str] = DEFAULT_DIR, replicas: int = 2) -> Sandbox:
        """Start 1 primary and *replicas* replicas under *directory*; wait until they replicate."""
        base = Path(directory).resolve()
        cls._refuse_running(base)
        if replicas < 0:
            raise SandboxError("--replicas must be >= 0")
        binary, flavor = find_server_binary()
        base.mkdir(parents=True, exist_ok=True)
        base.chmod(0o700)  # logs, sockets and the config with passwords: the owner's only
        nodes = [
            Node(
                name="primary" if i == 0 else f"replica{i}",
                role="primary" if i == 0 else "replica",
                port=_free_port(),
                server_id=i + 1,
                datadir=str(base / ("primary" if i == 0 else f"replica{i}")),
            )
            for i in range(replicas + 1)
        ]
        state = {
            "binary": binary,
            "flavor": flavor,
            "root_password": secrets.token_urlsafe(18),
            "nodes": [asdict(n) for n in nodes],
        }
        sandbox = cls(base, state)
        try:
            sandbox._start(fresh=True)
            sandbox._replicate()
        except BaseException:
            sandbox.down()
            raise
        return sandbox

    @staticmethod
    def _refuse_running(base: Path) -> None:
        if (base / "sandbox.json").exists():
            existing = Sandbox.load(base)
            if any(_pid_alive(n.pid, n.datadir) for n in existing.nodes):
                raise SandboxError(
                    f"a sandbox is already running in {base}; run 'sandbox down' first"
                )

    def _run_as(self) -> list[str]:
        """mariadbd/mysqld refuse to run as root unless told to."""
        return ["--user=root"] if os.geteuid() == 0 else []

    def _write_state(self) -> None:
        state = {
            "kind": self.kind,
            "binary": self.binary,
            "flavor": self.flavor,
            "root_password": self._root_password,
            "nodes": [asdict(n) for n in self.nodes],
        }
        if self.repl_password is not None:
            state["repl_password"] = self.repl_password
        _write_private(self.dir / "sandbox.json", orjson.dumps(state, option=orjson.OPT_INDENT_2))

    def _start(self, *, fresh: bool) -> None:
        if fresh:
            # Concurrent bootstraps sharing one tmpdir crash mariadbd 10.11 (signal 11 in an
            # Aria temporary-table drop: 5 of 32 here); each node has its own tmpdir, and the
            # bootstraps also run one after another (~0.5 s each) so no two ever overlap here.
            for node in self.nodes:
                proc = self._initialize(node)
                if proc.wait() != 0:
                    log = Path(node.datadir).with_suffix(".install.log")
                    raise SandboxError(
                        f"initializing {node.datadir} failed (exit {proc.returncode}): {_tail(log)}"
                    )
        procs = [self._launch(node) for node in self.nodes]
        for node, proc in zip(self.nodes, procs, strict=True):
            node.pid = proc.pid
        self._write_state()
        for node, proc in zip(self.nodes, procs, strict=True):
            self._wait_ready(node, proc, password="" if fresh else self._root_password)

    def _initialize(self, node: Node) -> subprocess.Popen[bytes]:
        datadir = Path(node.datadir)
        if datadir.exists():
            shutil.rmtree(datadir)
        Path(node.tmpdir).mkdir(mode=0o700, parents=True, exist_ok=True)
        log = datadir.with_suffix(".install.log").open("wb")
        if self.flavor == "mariadb":
            install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
            if install is None:
                raise SandboxError(
                    f"mariadb-install-db not found next to {self.binary}; {INSTALL_HINT}"
                )
            cmd = [
                install,
                "--no-defaults",
                f"--datadir={datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                f"--tmpdir={node.tmpdir}",  # passed on to mariadbd --bootstrap
                *self._run_as(),
            ]
        else:
            cmd = [
                self.binary,
                "--no-defaults",
                "--initialize-insecure",
                f"--datadir={datadir}",
                *self._run_as(),
            ]
        with log:
            return subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def _launch(self, node: Node) -> subprocess.Popen[bytes]:
        cmd = self._server_args(node)
        if self.flavor == "mariadb":
            cmd += ["--log-slave-updates", "--gtid-strict-mode=1"]
        else:
            cmd += ["--gtid-mode=ON", "--enforce-gtid-consistency=ON", "--mysqlx=OFF"]
        if node.role == "replica":
            cmd.append("--read-only=1")
        return self._spawn(node, cmd)

    def _server_args(self, node: Node) -> list[str]:
        """What every server of a sandbox is started with: its own files, loopback only."""
        d = Path(node.datadir)
        return [
            self.binary,
            "--no-defaults",
            f"--datadir={d}",
            f"--port={node.port}",
            "--bind-address=127.0.0.1",
            f"--socket={node.socket}",
            f"--tmpdir={node.tmpdir}",
            f"--pid-file={d / 'mysqld.pid'}",
            f"--log-error={d / 'error.log'}",
            f"--server-id={node.server_id}",
            "--log-bin=binlog",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=32M",
            *self._run_as(),
        ]

    def _spawn(self, node: Node, cmd: list[str]) -> subprocess.Popen[bytes]:
        out = (Path(node.datadir).parent / f"{node.name}.stdout.log").open("ab")
        with out:
            return subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def _wait_ready(self, node: Node, proc: subprocess.Popen[bytes], password: str) -> None:
        # Whether the server exited is asked of its Popen, not of /proc: a CI run once saw
        # the /proc check say "exited" of a server that was running and had its replicas
        # connected (stop 20); waitpid on our own child cannot be wrong that way.
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise SandboxError(
                    f"{node.name} (port {node.port}) exited during start with status "
                    f"{proc.returncode}: {_tail(Path(node.datadir) / 'error.log')}"
                )
            try:
                self.admin(node, password=password).close()
                return
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline:
                    raise SandboxError(
                        f"{node.name} did not accept connections within {START_TIMEOUT:.0f} s"
                    ) from None
                time.sleep(0.05)

    def admin(self, node: Node, password: str | None = None) -> pymysql.connections.Connection[Any]:
        """A root connection to *node* over its unix socket (for setup, tests and status)."""
        return pymysql.connect(
            unix_socket=node.socket,
            user="root",
            password=self._root_password if password is None else password,
            autocommit=True,
            connect_timeout=5,
        )

    def _replicate(self) -> None:
        repl_password = self.repl_password = secrets.token_urlsafe(18)
        app_password = secrets.token_urlsafe(18)
        self._write_state()
        mariadb = self.flavor == "mariadb"
        for node in self.nodes:
            self._lock_accounts(node)
        with self.admin(self.primary) as c, c.cursor() as cur:
            cur.execute("CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY %s", (repl_password,))
            cur.execute("GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'")
            cur.execute(f"CREATE USER '{APP_USER}'@'127.0.0.1' IDENTIFIED BY %s", (app_password,))
            cur.execute(f"CREATE DATABASE {DATABASE}")
            cur.execute(f"GRANT ALL PRIVILEGES ON {DATABASE}.* TO '{APP_USER}'@'127.0.0.1'")
            monitor = "REPLICATION CLIENT, SLAVE MONITOR" if mariadb else "REPLICATION CLIENT"
            cur.execute(f"GRANT {monitor} ON *.* TO '{APP_USER}'@'127.0.0.1'")
            cur.execute("SELECT @@gtid_binlog_pos" if mariadb else "SELECT @@gtid_executed")
            row = cur.fetchone()
            position = str(row[0]) if row else ""
        for node in self.replicas:
            self.replicate_from(node, self.primary)
        self.wait_replicated(position)
        self._write_config(app_password)

    def _lock_accounts(self, node: Node) -> None:
        """No account without a password: root@localhost (the unix socket) gets the generated
        root password, system accounts (mariadb.sys, mysql.*) a random one, and every other
        account the installer made (root at 127.0.0.1, ::1 and the host name, anonymous
        users) is dropped."""
        with self.admin(node, password="") as c, c.cursor() as cur:
            cur.execute("SET sql_log_bin = 0")
            cur.execute("SELECT User, Host FROM mysql.user")
            accounts = [(str(u), str(h)) for u, h in cur.fetchall()]
            for user, host in accounts:
                if (user, host) == ("root", "localhost"):
                    cur.execute(
                        "ALTER USER 'root'@'localhost' IDENTIFIED BY %s", (self._root_password,)
                    )
                elif user == "mariadb.sys" or user.startswith("mysql."):
                    cur.execute(
                        "ALTER USER %s@%s IDENTIFIED BY %s ACCOUNT LOCK",
                        (user, host, secrets.token_urlsafe(18)),
                    )
                else:
                    cur.execute("DROP USER %s@%s", (user, host))

    def wait_replicated(self, position: str | None = None, timeout: float = 20.0) -> None:
        """Wait until every replica has applied the primary's GTID *position* (default: now)."""
        if position is None:
            with self.admin(self.primary) as c, c.cursor() as cur:
                position = self.position(cur)
        for node in self.replicas:
            if not _pid_alive(node.pid, node.datadir):
                continue  # a dead old primary (after a failover) replicates from nobody
            if not self.reached(node, position, timeout):
                raise SandboxError(
                    f"{node.name} did not replicate GTID position {position!r} "
                    f"within {timeout:.0f} s: {self._replica_state(node)}"
                )

    def replicate_from(self, node: Node, source: Node, *, demoted: bool = False) -> None:
        """Make *node* a read-only replica of *source*. A demoted primary's own writes are in
        its binlog, not in its replication position: it starts from its binlog position."""
        if self.repl_password is None:
            raise SandboxError(
                "this sandbox was made before switchover existed (no replication password "
                "recorded): run 'sandbox down --purge' and 'sandbox up'"
            )
        mariadb = self.flavor == "mariadb"
        with self.admin(node) as c, c.cursor() as cur:
            cur.execute("SET GLOBAL read_only = 1")
            cur.execute("STOP SLAVE" if mariadb else "STOP REPLICA")
            if mariadb:
                if demoted:
                    cur.execute("SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos")
                cur.execute(
                    "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, "
                    "MASTER_USER='repl', MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, "
                    "MASTER_CONNECT_RETRY=1",
                    (source.port, self.repl_password),
                )
                cur.execute("START SLAVE")
            else:
                cur.execute(
                    "CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT=%s, "
                    "SOURCE_USER='repl', SOURCE_PASSWORD=%s, SOURCE_AUTO_POSITION=1, "
                    "GET_SOURCE_PUBLIC_KEY=1, SOURCE_CONNECT_RETRY=1",
                    (source.port, self.repl_password),
                )
                cur.execute("START REPLICA")

    def running(self, node: Node) -> bool:
        """True if *node*'s server process is alive."""
        return _pid_alive(node.pid, node.datadir)

    def position(self, cur: Any) -> str:
        """The GTID position of the server *cur* is connected to (its binlog's)."""
        cur.execute(
            "SELECT @@gtid_binlog_pos" if self.flavor == "mariadb" else "SELECT @@gtid_executed"
        )
        row = cur.fetchone()
        return str(row[0]) if row else ""

    def reached(self, node: Node, position: str, timeout: float) -> bool:
        """Wait until *node* has applied GTID *position*; False after *timeout* seconds."""
        wait = (
            "SELECT MASTER_GTID_WAIT(%s, %s)"
            if self.flavor == "mariadb"
            else "SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s)"
        )
        with self.admin(node) as c, c.cursor() as cur:
            cur.execute(wait, (position, timeout))
            row = cur.fetchone()
        return bool(row) and row[0] == 0

    def _replica_state(self, node: Node) -> str:
        with self.admin(node) as c, c.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute("SHOW SLAVE STATUS" if self.flavor == "mariadb" else "SHOW REPLICA STATUS")
            row = cur.fetchone() or {}
        keys = (
            "Slave_IO_Running",
            "Slave_SQL_Running",
            "Replica_IO_Running",
            "Replica_SQL_Running",
            "Last_IO_Error",
            "Last_SQL_Error",
            "Seconds_Behind_Master",
            "Seconds_Behind_Source",
        )
        return ", ".join(f"{k}={row[k]}" for k in keys if k in row)

    def _write_config(self, app_password: str) -> None:
        def server(node: Node) -> dict[str, Any]:
            return server_entry(node, app_password)

        config = {
            GROUP: {
                "master": {"master_0": server(self.primary)},
                "slave": {f"slave_{i}": server(n) for i, n in enumerate(self.replicas)},
            }
        }
        _write_private(self.config_path, orjson.dumps(config, option=orjson.OPT_INDENT_2))

    # ------------------------------------------------------------------ inspection, shutdown

    def status(self) -> list[dict[str, Any]]:
        """One row per server: name, role, port, pid, running, and replication state and lag."""
        rows = []
        for node in self.nodes:
            row: dict[str, Any] = {
                "name": node.name,
                "role": node.role,
                "port": node.port,
                "pid": node.pid,
                "running": _pid_alive(node.pid, node.datadir),
            }
            if row["running"] and node.role != "primary":
                try:
                    row["replication"] = self._replica_state(node)
                except (pymysql.err.Error, KeyError) as exc:
                    row["replication"] = f"unknown ({exc})"
            rows.append(row)
        return rows

    def down(self, *, purge: bool = False) -> list[str]:
        """Stop exactly the recorded server processes; with *purge*, delete DIR too."""
        stopped = []
        for node in self.nodes:
            if _pid_alive(node.pid, node.datadir):
                assert node.pid is not None
                os.kill(node.pid, signal.SIGTERM)
                stopped.append(node)
        deadline = time.monotonic() + 30
        for node in stopped:
            while _pid_alive(node.pid, node.datadir) and time.monotonic() < deadline:
                time.sleep(0.05)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(node.pid or 0, os.WNOHANG)
            if _pid_alive(node.pid, node.datadir):
                os.kill(node.pid or 0, signal.SIGKILL)
        for node in self.nodes:
            node.pid = None
        if purge:
            shutil.rmtree(self.dir, ignore_errors=True)
        elif self.dir.exists():
            self._write_state()
        return [n.name for n in stopped]

    # ------------------------------------------------------------------ faults (for tests)

    def node(self, name: str) -> Node:
        """The node called *name* (primary, replica1, ...), or whose alias in the written
        config is *name* (master_0, slave_1, ...), or that listens on port *name*."""
        for node in self.nodes:
            if name in (node.name, str(node.port)):
                return node
        aliases = self.aliases()
        if name in aliases:
            return next(n for n in self.nodes if n.port == aliases[name])
        known = ", ".join(f"{n.name} ({n.port})" for n in self.nodes)
        raise SandboxError(f"no node {name!r} in this sandbox; nodes: {known}")

    def aliases(self) -> dict[str, int]:
        """The written config's server aliases, with their ports."""
        try:
            group = orjson.loads(self.config_path.read_bytes())[GROUP]
        except (OSError, orjson.JSONDecodeError, KeyError):
            return {}
        servers = {**group.get("master", {}), **group.get("slave", {})}
        return {alias: int(s["port"]) for alias, s in servers.items()}

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send *sig* to node *name*'s server (SIGKILL: dies at once, as in a crash; SIGSTOP:
        hangs with its sockets open; SIGCONT resumes it). Returns once a killed server is gone."""
        node = self.node(name)
        if not _pid_alive(node.pid, node.datadir):
            raise SandboxError(f"{name} is not running")
        assert node.pid is not None
        os.kill(node.pid, sig)
        if sig in (signal.SIGSTOP, signal.SIGCONT):
            # The signal reaches each thread on its own: return once every one has it.
            want_stopped = sig == signal.SIGSTOP
            deadline = time.monotonic() + 10
            while _threads_stopped(node.pid) != want_stopped and time.monotonic() < deadline:
                time.sleep(0.005)
        elif sig in (signal.SIGKILL, signal.SIGTERM):
            # Until the process has exited, its sockets closed (a zombie or reaped): what a
            # client sees right after kill() is the server gone, not going.
            deadline = time.monotonic() + 30
            while not _exited(node.pid) and time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(node.pid, os.WNOHANG)
                time.sleep(0.02)
            node.pid = None
            self._write_state()

    def start(self, name: str) -> None:
        """Start node *name*'s server again on its data (a replica resumes replicating)."""
        node = self.node(name)
        if _pid_alive(node.pid, node.datadir):
            raise SandboxError(f"{name} is already running (pid {node.pid})")
        for attempt in (1, 2):
            proc = self._launch(node)
            node.pid = proc.pid
            self._write_state()
            try:
                self._wait_ready(node, proc, password=self._root_password)
                return
            except SandboxError as exc:
                code = proc.poll()
                stdout = _tail(Path(node.datadir).parent / f"{node.name}.stdout.log")
                if code is None or attempt == 2:
                    raise SandboxError(f"{exc} (output: {stdout})") from None
                # Seen once in many restarts right after a SIGKILL: the new server exited at
                # once. Say so on stderr and launch it once more.
                print(
                    f"sandbox: {name} exited at once (status {code}; {stdout}); starting it again",
                    file=sys.stderr,
                )

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()


def server_entry(node: Node, app_password: str) -> dict[str, Any]:
    """*node* as a server of the written config: the application user, on loopback."""
    return {
        "host": "127.0.0.1",
        "port": node.port,
        "user": APP_USER,
        "password": app_password,
        "db": DATABASE,
    }


def _exited(pid: int) -> bool:
    """True once *pid* has exited with all its threads: gone from /proc, or a zombie (state
    Z) whose other threads are gone too. The last thread to exit closes the files, so only
    then are the server's sockets closed."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return not Path(f"/proc/{pid}").exists()
    states = []
    for task in tasks:
        try:
            states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
        except OSError:
            continue  # this thread is gone; the others decide
    return bool(states) and all(st in ("Z", "X") for st in states)


def _threads_stopped(pid: int) -> bool:
    """True if every thread of *pid* is stopped (state T in /proc)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        states = [(t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in tasks]
    except OSError:
        return False
    return bool(states) and all(st == "T" for st in states)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return f"(no {path.name})"
    return " | ".join(text[-lines:])


def format_status(rows: Sequence[dict[str, Any]]) -> Iterator[str]:
    yield f"{'server':<10} {'role':<8} {'port':>6} {'pid':>8}  state"
    for r in rows:
        state = "running" if r["running"] else "stopped"
        if "replication" in r:
            state += f"; {r['replication']}"
        yield f"{r['name']:<10} {r['role']:<8} {r['port']:>6} {r['pid'] or '-':>8}  {state}"
