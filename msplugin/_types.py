"""Names used across msplugin: roles, transaction kinds, service levels, statistics.

String enums: each member equals its text, so the configuration's literals ("master",
"session"), the statistics' keys and the log lines stay as they are, while code compares
members instead of spelling strings in many places.
"""

from __future__ import annotations

import enum

__all__ = ["Level", "Role", "Stat", "TrxKind"]


class Role(enum.StrEnum):
    """A server's role in its group."""

    MASTER = "master"
    SLAVE = "slave"


class TrxKind(enum.StrEnum):
    """What a transaction statement does (classify.Classification.trx)."""

    NONE = ""
    BEGIN = "begin"  # BEGIN, START TRANSACTION
    BEGIN_RO = "begin_ro"  # START TRANSACTION READ ONLY
    END = "end"  # COMMIT, ROLLBACK
    XA_BEGIN = "xa_begin"
    XA_END = "xa_end"


class Level(enum.StrEnum):
    """A service level (mysqlnd_ms's quality of service)."""

    STRONG = "strong"
    SESSION = "session"
    EVENTUAL = "eventual"


class Stat(enum.StrEnum):
    """A statistic of msplugin.get_stats() (mysqlnd_ms's names where the concept is the same)."""

    USE_SLAVE = "use_slave"
    USE_MASTER = "use_master"
    USE_SLAVE_GUESS = "use_slave_guess"
    USE_MASTER_GUESS = "use_master_guess"
    USE_SLAVE_SQL_HINT = "use_slave_sql_hint"
    USE_MASTER_SQL_HINT = "use_master_sql_hint"
    USE_LAST_USED_SQL_HINT = "use_last_used_sql_hint"
    USE_LAST_USED_GUESS = "use_last_used_guess"
    USE_MASTER_ON_WRITE = "use_master_on_write"
    USE_MASTER_QOS_STRONG = "use_master_qos_strong"
    USE_MASTER_NO_SLAVES = "use_master_no_slaves"
    USE_MASTER_FAILOVER = "use_master_failover"
    USE_SLAVE_STALE = "use_slave_stale"
    LAZY_CONNECTIONS_SLAVE_SUCCESS = "lazy_connections_slave_success"
    LAZY_CONNECTIONS_SLAVE_FAILURE = "lazy_connections_slave_failure"
    LAZY_CONNECTIONS_MASTER_SUCCESS = "lazy_connections_master_success"
    LAZY_CONNECTIONS_MASTER_FAILURE = "lazy_connections_master_failure"
    NON_LAZY_CONNECTIONS_SLAVE_SUCCESS = "non_lazy_connections_slave_success"
    NON_LAZY_CONNECTIONS_SLAVE_FAILURE = "non_lazy_connections_slave_failure"
    NON_LAZY_CONNECTIONS_MASTER_SUCCESS = "non_lazy_connections_master_success"
    NON_LAZY_CONNECTIONS_MASTER_FAILURE = "non_lazy_connections_master_failure"
    TRX_AUTOCOMMIT_ON = "trx_autocommit_on"
    TRX_AUTOCOMMIT_OFF = "trx_autocommit_off"
    TRX_MASTER_FORCED = "trx_master_forced"
    TRX_READ_ONLY_SLAVE = "trx_read_only_slave"
    OPTIMISTIC_STARTED = "optimistic_started"
    OPTIMISTIC_COMPLETED_ON_REPLICA = "optimistic_completed_on_replica"
    OPTIMISTIC_REPLAYED = "optimistic_replayed"
    OPTIMISTIC_CONFLICTS = "optimistic_conflicts"
    USE_SLAVE_TRX = "use_slave_trx"
    USE_MASTER_AGE = "use_master_age"
    USE_MASTER_SESSION = "use_master_session"
    GTID_TRACKED = "gtid_tracked"
    GTID_UNTRACKED = "gtid_untracked"
    GTID_REPLICA_KNOWN = "gtid_replica_known"
    GTID_CHECKS = "gtid_checks"
    GTID_CHECK_FAILED = "gtid_check_failed"
    GTID_FETCH = "gtid_fetch"
    GTID_ON_COMMIT = "gtid_on_commit"
    STATE_WARNINGS = "state_warnings"
    STATE_MOVED = "state_moved"
    STATE_REPLAYED = "state_replayed"
    STATE_SERVER_CHANGES = "state_server_changes"
    CONNECTIONS_LOST = "connections_lost"
    READ_RETRIES = "read_retries"
    UNSENT_RETRIES = "unsent_retries"
    TRANSIENT_ERROR_RETRIES = "transient_error_retries"
    READ_ONLY_RETRIES = "read_only_retries"
    CERTIFICATION_RETRIES = "certification_retries"
    ROLE_CHANGES = "role_changes"
