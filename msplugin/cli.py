"""The ``msplugin`` command: sandbox up|down|status|kill|start|switchover|failover, demo,
check-config, explain, topology."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import sqlparse

import msplugin
from msplugin.backends import Backend
from msplugin.classify import CLASSIFIERS, classify
from msplugin.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG_FILE,
    Config,
    GroupConfig,
    load_config,
    resolve_config_path,
)
from msplugin.errors import ConfigError, ProgrammingError
from msplugin.filters import load_callback
from msplugin.sandbox import DEFAULT_DIR, Sandbox, SandboxError, format_status
from msplugin.sandbox_galera import DEFAULT_GALERA_DIR, GaleraSandbox
from msplugin.sync_port import SYNC_PORT
from msplugin.topology_monitor import Watch

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="msplugin",
        description=msplugin.__doc__.splitlines()[0] if msplugin.__doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"msplugin {msplugin.__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    where = f"default: ${CONFIG_ENV}, else ./{DEFAULT_CONFIG_FILE}"

    _sandbox_parser(sub, fmt)

    demo = sub.add_parser(
        "demo", help="the state-pitfall demo (starts a sandbox if no --config)", formatter_class=fmt
    )
    demo.add_argument("--config", help="a configuration file; default: a new sandbox's")
    demo.add_argument("--group", help="default: the file's only group")

    check = sub.add_parser(
        "check-config",
        help="validate a configuration file and show each group's effective settings",
        formatter_class=fmt,
    )
    check.add_argument("file", nargs="?", help=f"the configuration file; {where}")

    ex = sub.add_parser("explain", help="where a statement would be routed, and why")
    ex.add_argument("--config", help=f"{where} if present, else the classifier alone")
    ex.add_argument("--group", help="default: the file's only group")
    ex.add_argument(
        "--classifier", choices=CLASSIFIERS, help="without a config; default: 'default'"
    )
    ex.add_argument("sql", help="the statement")

    topo = sub.add_parser(
        "topology",
        help="ask each server of a group its role (read_only, replication source) now",
        formatter_class=fmt,
    )
    topo.add_argument("--config", help=where)
    topo.add_argument("--group", help="default: the file's only group")
    return p


def _sandbox_parser(sub: Any, fmt: Any) -> None:
    """The ``sandbox`` command and its actions."""
    sb = sub.add_parser("sandbox", help="a local replicated MariaDB/MySQL topology")
    sbs = sb.add_subparsers(dest="action", required=True)
    up = sbs.add_parser(
        "up", help="start 1 primary and N replicas, or a Galera cluster", formatter_class=fmt
    )
    up.add_argument("--replicas", type=int, default=2, help="how many replicas")
    up.add_argument(
        "--galera", action="store_true", help="a MariaDB Galera Cluster instead (galera-4)"
    )
    up.add_argument("--nodes", type=int, default=3, help="with --galera: how many nodes")
    up.add_argument(
        "--dir", help=f"the sandbox's directory (default: {DEFAULT_DIR}, with --galera "
        f"{DEFAULT_GALERA_DIR})",
    )  # fmt: skip
    down = sbs.add_parser("down", help="stop the servers this sandbox started", formatter_class=fmt)
    down.add_argument("--dir", default=DEFAULT_DIR, help="the sandbox's directory")
    down.add_argument("--purge", action="store_true", help="also delete the directory")
    st = sbs.add_parser(
        "status", help="role, port, replication state and lag of each server", formatter_class=fmt
    )
    st.add_argument("--dir", default=DEFAULT_DIR, help="the sandbox's directory")
    kill = sbs.add_parser("kill", help="signal one server, to test failover", formatter_class=fmt)
    kill.add_argument("node", help="its name (primary, replica1, node1, ...), alias or port")
    kill.add_argument(
        "--signal",
        default="KILL",
        choices=("KILL", "TERM", "STOP", "CONT"),
        help="KILL crashes it, STOP hangs it with its sockets open, CONT resumes it",
    )
    kill.add_argument("--dir", default=DEFAULT_DIR, help="the sandbox's directory")
    start = sbs.add_parser("start", help="start one stopped server again", formatter_class=fmt)
    start.add_argument("node", help="its name (primary, replica1, node1, ...), alias or port")
    start.add_argument("--dir", default=DEFAULT_DIR, help="the sandbox's directory")
    for action, text in (
        ("desync", "Galera: SET GLOBAL wsrep_desync = ON on one node"),
        ("sync", "Galera: SET GLOBAL wsrep_desync = OFF on one node"),
    ):
        node = sbs.add_parser(action, help=text, formatter_class=fmt)
        node.add_argument("node", help="its name (node1, ...), config alias or port")
        node.add_argument("--dir", default=DEFAULT_GALERA_DIR, help="the sandbox's directory")
    for action, text in (
        ("switchover", "planned: make NODE the primary, losing nothing"),
        ("failover", "after the primary died: promote the replica that received the most"),
    ):
        change = sbs.add_parser(action, help=text, formatter_class=fmt)
        change.add_argument("--to", help="the replica to promote; default: " + (
            "the first running one" if action == "switchover" else "the most advanced"
        ))  # fmt: skip
        change.add_argument("--dir", default=DEFAULT_DIR, help="the sandbox's directory")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "sandbox":
            return _sandbox(args)
        if args.command == "demo":
            from msplugin.demo import main as demo_main

            return demo_main(args.config, args.group)
        if args.command == "check-config":
            return _check_config(args.file)
        if args.command == "topology":
            return _topology(args)
        return _explain(args)
    except (ConfigError, SandboxError, msplugin.Error) as exc:
        print(f"msplugin: {exc}", file=sys.stderr)
        return 1


def _sandbox(args: argparse.Namespace) -> int:
    if args.action == "up":
        sandbox: Sandbox = (
            GaleraSandbox.up_galera(args.dir or DEFAULT_GALERA_DIR, nodes=args.nodes)
            if args.galera
            else Sandbox.up(args.dir or DEFAULT_DIR, replicas=args.replicas)
        )
        print("\n".join(format_status(sandbox.status())))
        print(f"\nconfig: {sandbox.config_path} (group 'sandbox')")
        print(f"use it: export {CONFIG_ENV}={sandbox.config_path}")
        return 0
    sandbox = Sandbox.load(args.dir)
    if args.action in ("desync", "sync"):
        if not isinstance(sandbox, GaleraSandbox):
            raise SandboxError(f"'sandbox {args.action}' needs a Galera sandbox (up --galera)")
        sandbox.desync(args.node, on=args.action == "desync")
        print(f"{args.node}: wsrep_desync {'ON' if args.action == 'desync' else 'OFF'}")
        return 0
    if args.action == "status":
        print("\n".join(format_status(sandbox.status())))
        return 0
    if args.action == "kill":
        sandbox.kill(args.node, getattr(signal, f"SIG{args.signal}"))
        print(f"sent SIG{args.signal} to {args.node}")
        return 0
    if args.action == "start":
        sandbox.start(args.node)
        print(f"started {args.node}")
        return 0
    if args.action in ("switchover", "failover"):
        from msplugin import sandbox_roles

        change = getattr(sandbox_roles, args.action)(sandbox, args.to)
        print("\n".join(change.report()))
        return 0
    stopped = sandbox.down(purge=args.purge)
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return 0


def _check_config(path: str | None) -> int:
    """Validate the file connect() would load, import its callbacks, and print each group's
    effective settings; exit 1 on any problem."""
    where = resolve_config_path(path)
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"{len(exc.problems)} problem(s):", file=sys.stderr)
        print(str(exc), file=sys.stderr)
        return 1
    problems = []
    for group in config.groups.values():
        for line in _effective(group):
            print(line)
        for f in group.filters:
            if f.callback is not None:
                try:
                    load_callback(f.callback, f"{where}: {group.name}.filters.{f.name}.callback")
                except ProgrammingError as exc:
                    problems.append(str(exc))
    if problems:
        print(f"{len(problems)} problem(s):", file=sys.stderr)
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(f"{where}: OK")
    return 0


def _effective(group: GroupConfig) -> list[str]:
    """Lines describing *group* as msplugin will run it, defaults included."""
    lb = group.load_balancer
    qos = next((f for f in group.filters if f.name == "quality_of_service"), None)
    level = "eventual (default)"
    if qos is not None:
        level = f"{qos.qos_level}" + (f", age {qos.qos_age} s" if qos.qos_age is not None else "")
    elif group.global_transaction_id_injection is not None:
        level = "session (global_transaction_id_injection)"
    fo, q, pool = group.failover, group.quarantine, group.pooling
    stopped = group.replica_stopped_limit
    lines = [
        f"group {group.name!r}: filters {' -> '.join(f.name for f in group.filters)}"
        f"{' (sticky)' if lb.sticky else ''}, classifier {group.classifier}",
        f"  service level {level}; trx_stickiness {group.trx_stickiness}; "
        f"master_on_write {group.master_on_write}; session_state {group.session_state}; "
        f"lazy_connections {group.lazy_connections}",
        f"  failover {fo.strategy} (remember_failed {fo.remember_failed}, max_retries "
        f"{fo.max_retries}); quarantine: probe every {q.interval:g} s after "
        f"{q.failure_threshold} failure(s), health check every {q.check_interval:g} s "
        f"(timeout {q.check_timeout:g} s)",
        f"  replicas: status every {group.replica_status_interval:g} s, not used for reads "
        + (f"after {stopped:g} s not replicating" if stopped is not None else "never (off)"),
        f"  pooling {'on' if pool.enabled else 'off'}: max_size {pool.max_size}, min_size "
        f"{pool.min_size}, queue_timeout {pool.queue_timeout:g} s, pre_ping {pool.pre_ping}",
        _roles_line(group),
    ]
    for s in group.servers:
        place = s.socket or f"{s.host}:{s.port}"
        lines.append(f"  {s.role:<6} {s.name:<12} {place}")
    return lines


def _topology(args: argparse.Namespace) -> int:
    """One check of every server of the group: what each said, and the roles that follow."""
    path = _config_path(args) or DEFAULT_CONFIG_FILE
    config = load_config(path)
    print("\n".join(_describe(config.group(_group_name(config, path, args.group)))))
    return 0


def _describe(group: GroupConfig) -> list[str]:
    """One check of *group*'s servers, with the file's credentials: what each server
    said and the roles msplugin decides from it."""
    params = {s.name: Backend(s, SYNC_PORT).params({}, {}) for s in group.servers}
    w = Watch(group, params)
    try:
        view = w.check(log=False)
    finally:
        w.stop()
    lines = []
    for s in group.servers:
        seen = w.seen[s.name]
        if not seen.reachable:
            said = f"no answer ({seen.error})"
        else:
            said = "read-only" if seen.read_only else "writable"
            if seen.wsrep is not None:
                ws = seen.wsrep
                said += (
                    f", wsrep_local_state {ws.state}, "
                    f"{'Primary' if ws.primary else 'non-Primary'}, ready {ws.ready}, "
                    f"desync {ws.desync}, index {ws.index}"
                )
            if seen.source is not None:
                source = next((n for n, a in w.addresses.items() if a == seen.source), None)
                said += f", replicates from {source or '{}:{}'.format(*seen.source)}"
                said += "" if seen.replicating else " (threads stopped)"
        lines.append(f"  {s.name:<12} {s.host}:{s.port:<6} listed as {s.role:<6} {said}")
    lines.append(f"group {group.name!r}: {view.describe()}: {view.reason}")
    return lines


def _config_path(args: argparse.Namespace) -> str | None:
    path: str | None = args.config or os.environ.get(CONFIG_ENV)
    if path is None and os.path.exists(DEFAULT_CONFIG_FILE):
        path = DEFAULT_CONFIG_FILE
    return path


def _group_name(config: Config, path: str, group: str | None) -> str:
    if group is not None:
        return group
    if len(config.groups) != 1:
        raise ConfigError(
            path, [f"several groups ({', '.join(config.groups)}): choose one with --group"]
        )
    return next(iter(config.groups))


def _roles_line(group: GroupConfig) -> str:
    topo, g = group.topology, group.galera
    if group.cluster == "galera":
        order = f", priority {', '.join(g.priority)}" if g.priority else ""
        return (
            f"  roles: a Galera cluster checked every {topo.interval:g} s; writers {g.writers}"
            f"{order}, donor_reads {g.donor_reads} ('msplugin topology' shows the nodes)"
        )
    if topo.discover:
        return (
            f"  roles: discovered every {topo.interval:g} s, writes wait {topo.wait:g} s for a"
            " master (the servers below form the pool; 'msplugin topology' shows them live)"
        )
    return "  roles: as listed below (topology.discover off)"


def _explain(args: argparse.Namespace) -> int:
    path = _config_path(args)
    if path is None:
        c = classify(args.sql, args.classifier or "default")
        print(f"{c.route.name}: {c.reason}")
        _explain_parts(args.sql, args.classifier or "default")
        return 0
    config: Config = load_config(path)
    conn = msplugin.connect(_group_name(config, path, args.group), config=config)
    try:
        e = conn.explain(args.sql)
        print(f"{e.route.name} -> {e.server or 'a ' + e.role + ' picked at execution'}: {e.reason}")
        _explain_parts(args.sql, conn.group.classifier)
    finally:
        conn.close()
    return 0


def _explain_parts(sql: str, classifier: str) -> None:
    # Off the statement path: sqlparse splits a multi-statement string for display only.
    parts = [p for p in sqlparse.split(sql) if p.strip()]
    if len(parts) > 1:
        for part in parts:
            c = classify(part, classifier)  # type: ignore[arg-type]
            print(f"  {c.route.name:<9} {part[:60]}: {c.reason}")


if __name__ == "__main__":
    sys.exit(main())
