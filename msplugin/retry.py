"""Whether a failed statement may run again, and what a lost connection did to a transaction.

Pure rules, no I/O.

The backend died under the statement (a broken connection). If the command never reached the
server (*sent* false: PyMySQL failed before the whole command was written), it did not run, so
it runs again on a new connection, outside a transaction and with no session state to lose. If
it may have reached the server, only a read that changes nothing, outside any transaction and
needing no session state, runs again, once, on another server: it cannot have done anything the
application would see twice. A transaction never survives its connection: the server rolls it
back, unless the statement that broke was the one that commits it.

A server error listed in ``transient_error.mysql_error_codes``: the server refused the
statement, so it ran nowhere and may be sent again to the same server, outside a transaction
only (an error such as a deadlock rolls the whole transaction back, not only the statement).
"""

from __future__ import annotations

from typing import Final

from msplugin._types import Role, TrxKind
from msplugin.classify import Classification
from msplugin.routing import NO_TRANSACTION
from msplugin.state import NOTHING, Effects

__all__ = [
    "IMPLICIT_COMMIT",
    "after_disconnect",
    "after_server_error",
    "lost_commit",
    "lost_transaction",
]

# First keywords of statements that commit the open transaction before they run (MariaDB's
# "statements that cause an implicit commit"): when one breaks, the transaction's earlier
# statements may have been committed.
IMPLICIT_COMMIT: Final = frozenset(
    {
        "ALTER",
        "CREATE",
        "DROP",
        "RENAME",
        "TRUNCATE",
        "GRANT",
        "REVOKE",
        "LOCK",
        "UNLOCK",
        "ANALYZE",
        "CHECK",
        "OPTIMIZE",
        "REPAIR",
        "FLUSH",
        "RESET",
        "CACHE",
        "LOAD",
        "BEGIN",
        "START",
    }
)


def after_disconnect(
    c: Classification,
    role: str,
    trx_context: str,
    eff: Effects,
    held_state: bool,
    other_servers: bool,
    sent: bool = True,
) -> str | None:
    """Why a statement whose connection broke must not be retried; None if it may be, once.

    *role* is the dead backend's, *eff* what the statement touches of the session,
    *held_state* whether the application had left session state on the dead backend, and
    *sent* whether the command may have reached the server.
    """
    if trx_context != NO_TRANSACTION:
        return "it ran inside a transaction, which ended when the connection broke"
    if eff is not NOTHING:
        return "it depends on or changes session state, which was lost with the connection"
    if held_state:
        return "the session on that server held state the application had set"
    if not sent:
        return None  # it never reached the server: nothing ran, so nothing runs twice
    if c.trx in (TrxKind.BEGIN, TrxKind.BEGIN_RO):
        return None  # nothing a BEGIN did outlives its session
    if not c.read:
        return "it is not a read, and it may have run before the connection broke"
    if c.statements > 1:
        return "it is a multi-statement string"
    if role != Role.SLAVE:
        return "it was sent to the master, and no other server may serve it"
    if not other_servers:
        return "no other server is available"
    return None


def lost_transaction(trx: str, first_keyword: str, sent: bool) -> str:
    """What is known of the open transaction when a statement of it lost its connection.

    *trx* is the statement's transaction kind (classify), *first_keyword* its first keyword
    (upper case), *sent* whether the command may have reached the server.
    """
    if trx in ("end", "xa_end") and first_keyword in ("COMMIT", "XA"):
        return lost_commit(sent)
    if sent and first_keyword in IMPLICIT_COMMIT:
        return (
            f"{first_keyword} commits the open transaction before it runs: the transaction's "
            "earlier statements may have been committed, and whether this one ran is unknown"
        )
    return (
        "the transaction did not commit: the server rolls it back when its connection breaks; "
        "roll back, then run the whole transaction again"
    )


def lost_commit(sent: bool) -> str:
    """What is known of a transaction whose COMMIT lost its connection."""
    if not sent:
        return "the connection broke before COMMIT was sent: the transaction did not commit"
    return (
        "COMMIT was sent and no reply came: whether the transaction committed is unknown; "
        "check before running it again"
    )


def after_server_error(code: int, codes: tuple[int, ...], trx_context: str) -> bool:
    """True if a statement the server refused with *code* may be sent again."""
    return code in codes and trx_context == NO_TRANSACTION


ER_LOCK_DEADLOCK: Final = 1213  # also a Galera certification failure or brute-force abort
ER_OPTION_PREVENTS_STATEMENT: Final = 1290  # "running with the --read-only option"


def read_only_refusal(code: int, message: object) -> bool:
    """The server refused a statement because it is read-only (not another 1290, such as
    --secure-file-priv)."""
    return code == ER_OPTION_PREVENTS_STATEMENT and "read-only" in str(message).lower()


def read_only_retry(role: str, trx_context: str, attempt: int) -> bool:
    """True if a statement the master refused as read-only (topology.discover: it was
    demoted and the monitor has not seen it yet) may run again, once, on the new master:
    outside a transaction it did not run. In a transaction it fails as the server said."""
    return role == Role.MASTER and trx_context == NO_TRANSACTION and attempt == 0


def after_certification_failure(code: int, cluster: str, trx_context: str, attempt: int) -> bool:
    """True if a statement a Galera node aborted (1213: it lost certification to another
    node's transaction, or was aborted by one) may run again, once, on the same node: in
    autocommit mode it was rolled back, so nothing of it committed. In a transaction the
    whole transaction was rolled back: the application must run it again."""
    return (
        cluster == "galera"
        and code == ER_LOCK_DEADLOCK
        and trx_context == NO_TRANSACTION
        and attempt == 0
    )
