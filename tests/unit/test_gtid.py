"""GTID helpers: session-state parsing, comparison, the check statement. No server."""

from __future__ import annotations

import pytest

from msplugin.consistency import (
    GtidState,
    covers,
    gtid_from_session_state,
    gtid_only,
    parse_mariadb_gtid,
    wait_sql,
)


def lenenc(data: bytes) -> bytes:
    assert len(data) < 251
    return bytes([len(data)]) + data


def sysvar(name: bytes, value: bytes) -> bytes:
    return b"\x00" + lenenc(lenenc(name) + lenenc(value))


def test_last_gtid_from_a_real_mariadb_ok_packet() -> None:
    # Captured from MariaDB 10.11 after an INSERT with last_gtid tracked.
    assert gtid_from_session_state(b"\x00\x12\x00\x10\tlast_gtid\x050-1-7") == "0-1-7"


def test_other_tracked_variables_and_info_text_are_skipped() -> None:
    block = sysvar(b"autocommit", b"OFF") + sysvar(b"last_gtid", b"0-1-42")
    assert gtid_from_session_state(lenenc(b"Rows matched: 1") + lenenc(block)) == "0-1-42"
    assert gtid_from_session_state(lenenc(b"") + lenenc(sysvar(b"autocommit", b"ON"))) is None


def test_mysql_gtid_tracker() -> None:
    gtids = b"3E11FA47-71CA-11E1-9E33-C80AA9429562:23"
    block = b"\x03" + lenenc(b"\x00" + lenenc(gtids))
    assert gtid_from_session_state(lenenc(b"") + lenenc(block)) == gtids.decode()


@pytest.mark.parametrize(
    "junk", [b"", b"\x00", b"\x00\x09\x00\xff", b"\xfb\xfb", b"\x00\x05\x00\x10abc"]
)
def test_malformed_session_state_gives_none(junk: bytes) -> None:
    assert gtid_from_session_state(junk) is None


def test_gtid_only_reads_a_block_that_reports_nothing_but_the_gtid() -> None:
    # Captured from MariaDB 10.11: an INSERT, and a multi-row INSERT (with its info text).
    assert gtid_only(b"\x00\x16\x00\x14\tlast_gtid\t0-1-30814") == "0-1-30814"
    info = b"&Records: 2  Duplicates: 0  Warnings: 0"
    assert gtid_only(info + b"\x16\x00\x14\tlast_gtid\t0-1-30815") == "0-1-30815"
    gtids = b"3E11FA47-71CA-11E1-9E33-C80AA9429562:23"  # MySQL's item: parsed, not matched
    assert gtid_only(lenenc(b"") + lenenc(b"\x03" + lenenc(b"\x00" + lenenc(gtids)))) == (
        gtids.decode()
    )


@pytest.mark.parametrize(
    "block",
    [
        sysvar(b"autocommit", b"OFF") + sysvar(b"last_gtid", b"0-1-42"),  # more than the GTID
        sysvar(b"last_gtid", b"0-1-42") + b"\x01" + lenenc(lenenc(b"otherdb")),
        sysvar(b"autocommit", b"OFF"),  # no GTID
        sysvar(b"last_gtid", b""),
        sysvar(b"last_gtix", b"0-1-42"),
    ],
)
def test_gtid_only_refuses_a_block_that_reports_more_or_no_gtid(block: bytes) -> None:
    assert gtid_only(lenenc(b"") + lenenc(block)) is None


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        b"\x00",
        b"\x00\x16\x00\x14\tlast_gtid\t0-1-3081",  # one byte short
        b"\xfc\x16\x00\x14\tlast_gtid\t0-1-30814",
        b"\x00\x16\x00\x14\tlast_gtid\t0-1-\xff\xfe814",
    ],
)
def test_gtid_only_gives_none_for_malformed_blocks(junk: bytes) -> None:
    assert gtid_only(junk) is None


def test_mariadb_positions_compare_per_domain() -> None:
    assert parse_mariadb_gtid("0-1-5,1-2-9") == {0: 5, 1: 9}
    assert covers("0-1-5", "0-1-5")
    assert covers("0-2-9", "0-1-5")  # a later sequence number in the same domain
    assert not covers("0-1-4", "0-1-5")
    assert not covers("1-1-9", "0-1-5")  # another domain says nothing
    assert covers("0-1-5,1-1-3", "1-1-3")
    assert not covers(None, "0-1-5") and not covers("", "0-1-5")


def test_wait_statement_inlines_only_a_valid_gtid() -> None:
    assert wait_sql("mariadb", "0-1-5", 0) == "SELECT MASTER_GTID_WAIT('0-1-5', 0)"
    assert wait_sql("mariadb", "0-1-5", 0.5) == "SELECT MASTER_GTID_WAIT('0-1-5', 0.5)"
    assert wait_sql("mysql", "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5", 1).startswith(
        "SELECT WAIT_FOR_EXECUTED_GTID_SET('3E11FA47"
    )
    for bad in ("0-1-5'); DROP TABLE t; --", "%s", "0-1"):
        with pytest.raises(ValueError):
            wait_sql("mariadb", bad, 0)
    with pytest.raises(ValueError):
        wait_sql("mysql", "x'; DROP", 0)


def test_known_replicas_follow_the_required_gtid() -> None:
    gs = GtidState()
    gs.require("0-1-5", 1.0)
    assert gs.need == {0: 5} and gs.known == set()
    gs.confirm("slave_0")
    assert gs.known == {"slave_0"}
    gs.require("0-1-4", 0.0)  # an older GTID (given to set_qos): slave_0 has it
    assert gs.known == {"slave_0"}
    gs.require("0-1-6", 2.0)  # a newer write: nobody is known to have it
    assert gs.known == set()
    gs.confirm("slave_1")
    gs.require("0-1-6,1-1-1", 3.0)  # another domain too: slave_1 only saw domain 0
    assert gs.known == set()
    gs.require("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5", 4.0)  # MySQL: exact match only
    gs.confirm("slave_0")
    gs.require("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5", 5.0)
    assert gs.known == {"slave_0"}


def test_apply_delay_adapts() -> None:
    gs = GtidState()
    gs.check_failed(0.002)
    assert gs.apply_delay == pytest.approx(0.004)
    gs.check_failed(0.0001)
    assert gs.apply_delay == pytest.approx(0.008)
    gs.check_passed()
    assert gs.apply_delay == pytest.approx(0.0064)
    for _ in range(100):
        gs.skipped_check()
    assert gs.apply_delay < 0.001
    for _ in range(50):
        gs.check_failed(10)
    assert gs.apply_delay == 1.0
