"""The classifier: a table of every rule in both modes, hints in every position, any text."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msplugin import Route, query_is_select
from msplugin.classify import classify

M, S, L = Route.MASTER, Route.SLAVE, Route.LAST_USED

# (statement, default classifier, mysqlnd_ms classifier)
TABLE = [
    ("SELECT 1", S, S),
    ("select * from t", S, S),
    ("  \n\tSELECT 1", S, S),
    ("/* c */ SELECT 1", S, S),
    ("-- c\nSELECT 1", S, S),
    ("# c\nSELECT 1", S, S),
    ("(SELECT 1) UNION (SELECT 2)", S, M),
    ("WITH c AS (SELECT 1) SELECT * FROM c", S, M),
    ("WITH RECURSIVE c AS (SELECT 1) SELECT REPLACE(x, 'a', 'b') FROM c", S, M),
    ("WITH c AS (SELECT 1) UPDATE t SET a = 1", M, M),
    ("WITH c AS (SELECT 1) DELETE FROM t", M, M),
    ("SELECT * FROM t FOR UPDATE", M, S),
    ("SELECT * FROM t FOR   SHARE", M, S),
    ("SELECT * FROM t LOCK IN SHARE MODE", M, S),
    ("SELECT a INTO @x FROM t", M, S),
    ("SELECT a FROM t INTO OUTFILE '/tmp/x'", M, S),
    ("SELECT a FROM t INTO DUMPFILE '/tmp/x'", M, S),
    ("SELECT @x := 1", M, S),
    ("SELECT GET_LOCK('a', 1)", M, S),
    ("SELECT release_lock('a')", M, S),
    ("SELECT RELEASE_ALL_LOCKS()", M, S),
    ("SELECT IS_FREE_LOCK('a')", M, S),
    ("SELECT IS_USED_LOCK('a')", M, S),
    ("SELECT LAST_INSERT_ID()", M, S),
    ("SELECT NEXTVAL(s)", M, S),
    ("SELECT SETVAL(s, 10)", M, S),
    ("SELECT NEXT VALUE FOR s", M, S),
    ("SELECT @@last_insert_id", M, S),
    ("SELECT @@identity", M, S),
    ("SELECT @@session.identity", M, S),
    ("SELECT FOUND_ROWS()", L, S),
    ("SELECT ROW_COUNT()", L, S),
    ("SELECT 1; SELECT 2", S, S),
    ("SELECT 1; DELETE FROM t", M, S),
    ("DELETE FROM t; SELECT 1", M, M),
    ("SELECT 1;", S, S),
    ("SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1; SELECT FOUND_ROWS()", S, S),
    ("SELECT 'FOR UPDATE'", S, S),
    ('SELECT "FOR UPDATE"', S, S),
    ("SELECT `for update` FROM t", S, S),
    ("SELECT 1 /* FOR UPDATE */", S, S),
    ("SELECT 1 -- FOR UPDATE", S, S),
    ("SELECT 'it''s ; DELETE'", S, S),
    ("SELECT 'a\\' FOR UPDATE'", S, S),
    ("SELECT my_last_insert_id() FROM t", S, S),
    ("SELECT a_into FROM t", S, S),
    ("SELECT 1 /*!40001 FOR UPDATE */", M, S),
    ("/*!40001 SELECT 1 */", M, M),
    ("INSERT INTO t VALUES (1)", M, M),
    ("UPDATE t SET a = 1", M, M),
    ("SHOW TABLES", M, M),
    ("EXPLAIN SELECT 1", M, M),
    ("SET @a = 1", M, M),
    ("USE test", M, M),
    ("CALL p()", M, M),
    ("DO SLEEP(1)", M, M),
    ("PREPARE s FROM 'SELECT 1'", M, M),
    ("EXECUTE s", M, M),
    ("BEGIN", M, M),
    ("", M, M),
    ("   ", M, M),
    ("/* unclosed", M, M),
    ("SELECT\x001", M, M),
    ("garbage", M, M),
    ("@x", M, M),
]


@pytest.mark.parametrize(("sql", "default", "mysqlnd_ms"), TABLE)
def test_classification_table(sql: str, default: Route, mysqlnd_ms: Route) -> None:
    assert query_is_select(sql) is default
    assert query_is_select(sql, classifier="mysqlnd_ms") is mysqlnd_ms


HINTS = [
    ("/*ms=master*/SELECT 1", M),
    ("/*ms=slave*/INSERT INTO t VALUES (1)", S),
    ("/*ms=last_used*/SELECT 1", L),
    ("/* ms=master */ SELECT 1", M),
    ("/*  ms = slave  */SELECT 1", S),
    ("/*MS=MASTER*/SELECT 1", M),
    ("  \n/*ms=master*/SELECT 1", M),
    ("/* other */ /*ms=master*/ SELECT 1", M),
    ("/*ms=master*/ /* other */ SELECT 1", M),
    ("-- c\n/*ms=master*/SELECT 1", M),
    ("/*ms=slave*/ /*ms=master*/ SELECT 1", M),  # the last hint wins
    ("/*ms=master*/ /*ms=slave*/ SELECT 1", S),
    ("SELECT /*ms=master*/ 1", S),  # after the first token: ignored
    ("SELECT 1 /*ms=master*/", S),
    ("/**/SELECT 1", S),  # no hint
    ("/*ms=nowhere*/SELECT 1", S),  # unknown hint value: no hint
    ("/*ms=master FOR UPDATE*/SELECT 1", S),  # not a hint: more than the hint in the comment
    ("/*ms=master*/", M),
]


@pytest.mark.parametrize(("sql", "route"), HINTS)
@pytest.mark.parametrize("mode", ["default", "mysqlnd_ms"])
def test_hints(sql: str, route: Route, mode: str) -> None:
    assert query_is_select(sql, classifier=mode) is route  # type: ignore[arg-type]


def test_hint_decision_is_marked_and_explained() -> None:
    c = classify("/*ms=slave*/SELECT 1")
    assert c.hinted and c.reason == "hint ms=slave"
    assert not classify("SELECT 1").hinted


def test_reasons_name_the_rule() -> None:
    assert (
        classify("SELECT * FROM t FOR UPDATE").reason
        == "locking read (FOR UPDATE) runs on the master"
    )
    assert classify("INSERT INTO t VALUES (1)").reason == "INSERT is not a read"
    assert classify("SELECT FOUND_ROWS()").reason == "FOUND_ROWS() refers to the previous statement"
    assert classify("SELECT 1; DELETE FROM t").reason == "multi-statement: DELETE is not a read"


def test_route_values_match_mysqlnd_ms() -> None:
    assert (Route.MASTER, Route.SLAVE, Route.LAST_USED) == (0, 1, 2)


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_any_text_gives_a_route(sql: str) -> None:
    for mode in ("default", "mysqlnd_ms"):
        assert isinstance(query_is_select(sql, classifier=mode), Route)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "SELECT",
                "'",
                '"',
                "`",
                "/*",
                "*/",
                "--",
                " ",
                "\n",
                "#",
                ";",
                "(",
                "FOR",
                "UPDATE",
                "@",
                ":=",
                "\\",
                "/*!",
                "WITH",
                "ms=master",
            ]
        ),
        max_size=40,
    )
)
def test_sql_like_fragments_give_a_route(parts: list[str]) -> None:
    assert isinstance(query_is_select("".join(parts)), Route)


ADVERSARIAL = {
    "a megabyte of spaces": " " * 1_000_000,
    "an unclosed comment": "/*" + " " * 1_000_000,
    "an unclosed string": "SELECT '" + "\\'" * 300_000,
    "100,000 select items": "SELECT " + ", ".join(f"c{i}" for i in range(100_000)) + " FROM t",
    "100,000 literals": "SELECT " + "'a'," * 100_000 + "1",
    "100,000 near-keywords": "SELECT " + ", ".join(f"for_{i}" for i in range(100_000)) + " FROM t",
    "100,000 statements": "SELECT 1;" * 100_000,
    "100,000 parentheses": "SELECT " + "(" * 100_000 + "1" + ")" * 100_000,
    "many dashes": "-- " * 300_000,
}


@pytest.mark.parametrize("sql", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_adversarial_input_is_linear(sql: str) -> None:
    # The classifier measures 1-35 ms on each of these here; a super-linear scan would take
    # seconds to hours. The bound is loose so a busy CI machine does not fail it.
    start = time.perf_counter()
    classify(sql)
    assert time.perf_counter() - start < 1.0
