"""Whether a failed statement may run again: pure rules, no I/O.

Two cases. The backend died under the statement (a broken connection): only a read that
changes nothing, outside any transaction and needing no session state, runs again, once, on
another server, because it cannot have done anything the application would see twice. A
server error listed in ``transient_error.mysql_error_codes``: the server refused the statement,
so it ran nowhere and may be sent again to the same server, outside a transaction only (an
error such as a deadlock rolls the whole transaction back, not only the statement).
"""

from __future__ import annotations

from msplugin.classify import Classification
from msplugin.routing import NO_TRANSACTION
from msplugin.state import NOTHING, Effects

__all__ = ["after_disconnect", "after_server_error"]


def after_disconnect(
    c: Classification,
    role: str,
    trx_context: str,
    eff: Effects,
    held_state: bool,
    other_servers: bool,
) -> str | None:
    """Why a statement whose connection broke must not be retried; None if it may be, once.

    *role* is the dead backend's, *eff* what the statement touches of the session, and
    *held_state* whether the application had left session state on the dead backend.
    """
    if not c.read:
        return "it is not a read, and it may have run before the connection broke"
    if trx_context != NO_TRANSACTION:
        return "it ran inside a transaction, which ended when the connection broke"
    if eff is not NOTHING:
        return "it depends on or changes session state, which was lost with the connection"
    if held_state:
        return "the session on that server held state the application had set"
    if c.statements > 1:
        return "it is a multi-statement string"
    if role != "slave":
        return "it was sent to the master, and no other server may serve it"
    if not other_servers:
        return "no other server is available"
    return None


def after_server_error(code: int, codes: tuple[int, ...], trx_context: str) -> bool:
    """True if a statement the server refused with *code* may be sent again."""
    return code in codes and trx_context == NO_TRANSACTION
