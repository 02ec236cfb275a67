"""The ``msplugin`` command: sandbox up|down|status, demo, check-config, explain."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

import sqlparse

import msplugin
from msplugin.classify import CLASSIFIERS, classify
from msplugin.config import CONFIG_ENV, DEFAULT_CONFIG_FILE, Config, load_config
from msplugin.errors import ConfigError
from msplugin.sandbox import DEFAULT_DIR, Sandbox, SandboxError, format_status

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="msplugin", description=msplugin.__doc__.splitlines()[0] if msplugin.__doc__ else None
    )
    sub = p.add_subparsers(dest="command", required=True)

    sb = sub.add_parser("sandbox", help="a local replicated MariaDB/MySQL topology")
    sbs = sb.add_subparsers(dest="action", required=True)
    up = sbs.add_parser("up", help="start 1 primary and N replicas")
    up.add_argument("--replicas", type=int, default=2)
    up.add_argument("--dir", default=DEFAULT_DIR)
    down = sbs.add_parser("down", help="stop the servers this sandbox started")
    down.add_argument("--dir", default=DEFAULT_DIR)
    down.add_argument("--purge", action="store_true", help="also delete the directory")
    st = sbs.add_parser("status", help="role, port, replication state and lag of each server")
    st.add_argument("--dir", default=DEFAULT_DIR)
    kill = sbs.add_parser("kill", help="signal one server (default SIGKILL), to test failover")
    kill.add_argument("node", help="primary, replica1, ...")
    kill.add_argument("--signal", default="KILL", choices=("KILL", "TERM", "STOP", "CONT"))
    kill.add_argument("--dir", default=DEFAULT_DIR)
    start = sbs.add_parser("start", help="start one stopped server again")
    start.add_argument("node")
    start.add_argument("--dir", default=DEFAULT_DIR)

    demo = sub.add_parser("demo", help="the state-pitfall demo (starts a sandbox if no --config)")
    demo.add_argument("--config")
    demo.add_argument("--group")

    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file")

    ex = sub.add_parser("explain", help="where a statement would be routed, and why")
    ex.add_argument(
        "--config", help=f"default: ${CONFIG_ENV}, else ./{DEFAULT_CONFIG_FILE} if present"
    )
    ex.add_argument("--group", help="default: the file's only group")
    ex.add_argument("--classifier", choices=CLASSIFIERS, help="without a config: default 'default'")
    ex.add_argument("sql")
    return p


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
        return _explain(args)
    except (ConfigError, SandboxError, msplugin.Error) as exc:
        print(f"msplugin: {exc}", file=sys.stderr)
        return 1


def _sandbox(args: argparse.Namespace) -> int:
    if args.action == "up":
        sandbox = Sandbox.up(args.dir, replicas=args.replicas)
        print("\n".join(format_status(sandbox.status())))
        print(f"\nconfig: {sandbox.config_path} (group 'sandbox')")
        print(f"use it: export {CONFIG_ENV}={sandbox.config_path}")
        return 0
    sandbox = Sandbox.load(args.dir)
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
    stopped = sandbox.down(purge=args.purge)
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return 0


def _check_config(path: str) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"{len(exc.problems)} problem(s):", file=sys.stderr)
        print(str(exc), file=sys.stderr)
        return 1
    for group in config.groups.values():
        lb = group.load_balancer
        print(
            f"group {group.name!r}: filters {' -> '.join(f.name for f in group.filters)}"
            f"{' (sticky)' if lb.sticky else ''}, classifier {group.classifier}"
        )
        for s in group.servers:
            where = s.socket or f"{s.host}:{s.port or 3306}"
            print(f"  {s.role:<6} {s.name:<12} {where}")
    print(f"{path}: OK")
    return 0


def _explain(args: argparse.Namespace) -> int:
    path = args.config or os.environ.get(CONFIG_ENV)
    if path is None and os.path.exists(DEFAULT_CONFIG_FILE):
        path = DEFAULT_CONFIG_FILE
    if path is None:
        c = classify(args.sql, args.classifier or "default")
        print(f"{c.route.name}: {c.reason}")
        _explain_parts(args.sql, args.classifier or "default")
        return 0
    config: Config = load_config(path)
    group = args.group
    if group is None:
        if len(config.groups) != 1:
            raise ConfigError(
                path, [f"several groups ({', '.join(config.groups)}): choose one with --group"]
            )
        group = next(iter(config.groups))
    conn = msplugin.connect(group, config=config)
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
