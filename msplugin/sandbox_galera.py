"""A local MariaDB Galera Cluster (3 nodes by default) from the machine's mariadbd and
Debian's galera-4 provider, for tests and demos: ``msplugin sandbox up --galera``.

Every node listens on loopback only (its SQL port, and the group communication, IST and
SST ports), state transfer is by rsync, and GTIDs are on (``wsrep_gtid_mode``), so that
``WSREP_LAST_WRITTEN_GTID()`` and ``WSREP_SYNC_WAIT_UPTO_GTID()`` work. Run as root, the
servers run as the ``mysql`` system user and their directories belong to it: the rsync
daemon of a state transfer drops root's privileges and could not write the joiner's data
otherwise. The first node bootstraps the cluster and gets the accounts; the others join it
and receive everything by state transfer.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any, Final

import orjson
import pymysql
import pymysql.cursors

from msplugin.sandbox import (
    APP_USER,
    DATABASE,
    GROUP,
    Node,
    Sandbox,
    SandboxError,
    _free_port,
    _pid_alive,
    _write_private,
    find_server_binary,
    server_entry,
)

__all__ = ["GALERA_PROVIDER", "GaleraSandbox", "wsrep_state"]

DEFAULT_GALERA_DIR: Final = ".msplugin-galera"
GALERA_PROVIDER: Final = "/usr/lib/galera/libgalera_smm.so"
CLUSTER_NAME: Final = "msplugin"
SYNC_TIMEOUT: Final = 90.0  # a joiner's state transfer, on a loaded 2-core machine
SYNCED: Final = 4  # wsrep_local_state
INSTALL_HINT: Final = (
    "install Debian's galera-4 and rsync ('apt-get install galera-4 rsync'; make test does it)"
)
# A dead node is evicted from the cluster after about 1 s instead of Galera's 5 s default
# (evs.suspect_timeout): until then the others' commits wait. Loopback has no lost packets.
FAST_EVICTION: Final = (
    "evs.keepalive_period=PT0.2S;evs.inactive_check_period=PT0.2S;"
    "evs.suspect_timeout=PT1S;evs.inactive_timeout=PT2S;evs.install_timeout=PT2S"
)
_STATUS: Final = (
    "wsrep_local_state",
    "wsrep_local_state_comment",
    "wsrep_cluster_status",
    "wsrep_ready",
    "wsrep_local_index",
    "wsrep_cluster_size",
)


class GaleraSandbox(Sandbox):
    """A Galera cluster recorded in DIR/sandbox.json (see the module)."""

    kind = "galera"

    @classmethod
    def up_galera(
        cls, directory: str | os.PathLike[str] = DEFAULT_GALERA_DIR, nodes: int = 3
    ) -> GaleraSandbox:
        """Start a cluster of *nodes* nodes under *directory*; wait until every one is Synced."""
        if nodes < 1:
            raise SandboxError("--nodes must be >= 1")
        if not Path(GALERA_PROVIDER).exists() or shutil.which("rsync") is None:
            raise SandboxError(
                f"no Galera provider at {GALERA_PROVIDER} or no rsync: {INSTALL_HINT}"
            )
        binary, flavor = find_server_binary()
        if flavor != "mariadb":
            raise SandboxError(f"Galera needs MariaDB; {binary} is MySQL")
        base = Path(directory).resolve()
        cls._refuse_running(base)
        base.mkdir(parents=True, exist_ok=True)
        # Root runs the servers as mysql, which must reach its directories inside: others
        # may pass through DIR, not list it.
        base.chmod(0o711 if os.geteuid() == 0 else 0o700)
        _check_reachable(base)
        state = {
            "kind": cls.kind,
            "binary": binary,
            "flavor": flavor,
            "root_password": secrets.token_urlsafe(18),
            "nodes": [
                {
                    "name": f"node{i}",
                    "role": "node",
                    "port": _free_port(),
                    "server_id": i,
                    "datadir": str(base / f"node{i}"),
                    "ports": {"gcomm": _free_port(), "ist": _free_port(), "sst": _free_port()},
                }
                for i in range(1, nodes + 1)
            ],
        }
        sandbox = cls(base, state)
        try:
            sandbox._form()
        except BaseException:
            sandbox.down()
            raise
        return sandbox

    # ------------------------------------------------------------------ forming the cluster

    def _form(self) -> None:
        for node in self.nodes:
            proc = self._initialize(node)
            if proc.wait() != 0:
                raise SandboxError(f"initializing {node.datadir} failed (exit {proc.returncode})")
        first, joiners = self.nodes[0], self.nodes[1:]
        proc = self._launch(first, bootstrap=True)
        first.pid = proc.pid
        self._write_state()
        self._wait_ready(first, proc, password="")
        self._lock_accounts(first)  # the others get the accounts from it by state transfer
        app_password = self._accounts(first)
        procs = [self._launch(node) for node in joiners]
        for node, p in zip(joiners, procs, strict=True):
            node.pid = p.pid
        self._write_state()
        for node, p in zip(joiners, procs, strict=True):
            self._wait_ready(node, p, password=self._root_password)
        for node in self.nodes:
            self.wait_synced(node)
        self._write_config(app_password)

    def _accounts(self, node: Node) -> str:
        """The application user and database (replicated to every node); its password."""
        password = secrets.token_urlsafe(18)
        with self.admin(node) as c, c.cursor() as cur:
            cur.execute(f"CREATE USER '{APP_USER}'@'127.0.0.1' IDENTIFIED BY %s", (password,))
            cur.execute(f"CREATE DATABASE {DATABASE}")
            cur.execute(f"GRANT ALL PRIVILEGES ON {DATABASE}.* TO '{APP_USER}'@'127.0.0.1'")
            # wsrep status and variables are readable by any account; the replication
            # monitor's SHOW SLAVE STATUS needs this.
            cur.execute(
                f"GRANT REPLICATION CLIENT, SLAVE MONITOR ON *.* TO '{APP_USER}'@'127.0.0.1'"
            )
        return password

    def _initialize(self, node: Node) -> subprocess.Popen[bytes]:
        # The data and temporary directories belong to the user the servers run as.
        datadir = Path(node.datadir)
        if datadir.exists():
            shutil.rmtree(datadir)
        Path(node.tmpdir).mkdir(mode=0o700, parents=True, exist_ok=True)
        datadir.mkdir(mode=0o700)
        _give_to_server_user(Path(node.tmpdir), datadir)
        return super()._initialize(node)

    def _run_as(self) -> list[str]:
        return ["--user=mysql"] if os.geteuid() == 0 else []

    def _launch(self, node: Node, *, bootstrap: bool = False) -> subprocess.Popen[bytes]:
        p = node.ports
        peers = ",".join(f"127.0.0.1:{n.ports['gcomm']}" for n in self.nodes)
        cmd = [
            *self._server_args(node),
            "--log-slave-updates",
            "--binlog-format=ROW",
            "--innodb-autoinc-lock-mode=2",
            "--wsrep-on=ON",
            f"--wsrep-provider={GALERA_PROVIDER}",
            f"--wsrep-cluster-name={CLUSTER_NAME}",
            f"--wsrep-node-name={node.name}",
            f"--wsrep-node-address=127.0.0.1:{p['gcomm']}",
            f"--wsrep-provider-options=base_host=127.0.0.1;base_port={p['gcomm']};"
            f"ist.recv_addr=127.0.0.1:{p['ist']};gcache.size=32M;{FAST_EVICTION}",
            "--wsrep-sst-method=rsync",
            f"--wsrep-sst-receive-address=127.0.0.1:{p['sst']}",
            "--wsrep-gtid-mode=ON",
            "--wsrep-gtid-domain-id=1",
            f"--gtid-domain-id={10 + node.server_id}",  # local, non-replicated writes
            "--wsrep-cluster-address=gcomm://" + ("" if bootstrap else peers),
        ]
        if bootstrap:
            cmd.append("--wsrep-new-cluster")
        return self._spawn(node, cmd)

    def _write_config(self, app_password: str) -> None:
        first, others = self.nodes[0], self.nodes[1:]
        config = {
            GROUP: {
                "master": {"galera_1": server_entry(first, app_password)},
                "slave": {f"galera_{n.server_id}": server_entry(n, app_password) for n in others},
                "cluster": "galera",
            }
        }
        _write_private(self.config_path, orjson.dumps(config, option=orjson.OPT_INDENT_2))

    # ------------------------------------------------------------------ inspection, faults

    def wait_synced(self, node: Node, timeout: float = SYNC_TIMEOUT) -> None:
        """Wait until *node* is Synced with the cluster (wsrep_local_state 4)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                state = wsrep_state(self.admin(node))
                if int(state.get("wsrep_local_state", 0)) == SYNCED:
                    return
            except pymysql.err.Error as exc:
                state = {"error": str(exc.args[-1])}
            if time.monotonic() > deadline:
                raise SandboxError(f"{node.name} is not Synced after {timeout:.0f} s: {state}")
            time.sleep(0.1)

    def _replica_state(self, node: Node) -> str:
        """What ``sandbox status`` shows of a node: its wsrep state."""
        st = wsrep_state(self.admin(node))
        return (
            f"{st['wsrep_local_state_comment']}, {st['wsrep_cluster_status']}, ready "
            f"{st['wsrep_ready']}, desync {st['wsrep_desync']}, index "
            f"{st['wsrep_local_index']}, cluster size {st['wsrep_cluster_size']}"
        )

    def desync(self, name: str, on: bool = True) -> None:
        """``SET GLOBAL wsrep_desync`` on node *name* (ON: it may fall behind, and routers
        take it out of rotation)."""
        with self.admin(self.node(name)) as c, c.cursor() as cur:
            cur.execute(f"SET GLOBAL wsrep_desync = {'ON' if on else 'OFF'}")

    def start(self, name: str) -> None:
        """Start node *name* again: it joins the running nodes (IST or SST), or, when none
        runs, bootstraps the cluster from its own data."""
        node = self.node(name)
        if _pid_alive(node.pid, node.datadir):
            raise SandboxError(f"{node.name} is already running (pid {node.pid})")
        alone = not any(_pid_alive(n.pid, n.datadir) for n in self.nodes if n is not node)
        if alone:
            _safe_to_bootstrap(Path(node.datadir))
        proc = self._launch(node, bootstrap=alone)
        node.pid = proc.pid
        self._write_state()
        self._wait_ready(node, proc, password=self._root_password)
        self.wait_synced(node)


def wsrep_state(conn: pymysql.connections.Connection[Any]) -> dict[str, str]:
    """A node's wsrep status and the variables routers read, by name (closes *conn*)."""
    with conn, conn.cursor() as cur:
        names = ", ".join(f"'{n}'" for n in _STATUS)
        cur.execute(
            "SELECT LOWER(VARIABLE_NAME), VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS"
            f" WHERE VARIABLE_NAME IN ({names})"
        )
        out = {str(k): str(v) for k, v in cur.fetchall()}
        cur.execute("SELECT @@global.wsrep_desync, @@global.wsrep_reject_queries")
        row = cur.fetchone() or ("", "")
    out["wsrep_desync"] = "ON" if str(row[0]) in ("1", "ON") else "OFF"
    out["wsrep_reject_queries"] = str(row[1])
    return out


def _give_to_server_user(*paths: Path) -> None:
    if os.geteuid() != 0:
        return
    user = pwd.getpwnam("mysql")
    for path in paths:
        os.chown(path, user.pw_uid, user.pw_gid)


def _check_reachable(base: Path) -> None:
    """Root runs the servers as mysql: every directory above *base* must let it pass."""
    if os.geteuid() != 0:
        return
    for parent in [base, *base.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            raise SandboxError(
                f"{parent} (mode {stat.filemode(mode)}) does not let the mysql user pass, "
                "which the Galera servers run as: choose a directory below one that does"
            )


def _safe_to_bootstrap(datadir: Path) -> None:
    """A node that died with the others is not marked safe to bootstrap; it is the only
    one left here, so it is."""
    grastate = datadir / "grastate.dat"
    if grastate.exists():
        text = grastate.read_text().replace("safe_to_bootstrap: 0", "safe_to_bootstrap: 1")
        grastate.write_text(text)
