"""psycopg 3 against carthouse: simple + extended protocol, types, params, errors, sessions,
concurrency and cancel. Results are checked against DuckDB reading the same Parquet files."""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import threading
import time
from decimal import Decimal

import psycopg
import psycopg.errors
import pytest
from psycopg.pq import TransactionStatus

import e2e_util as u

UTC = dt.timezone.utc

# ------------------------------------------------------------------ query results vs DuckDB

# (carthouse sql, duckdb sql) - same text unless DuckDB needs a different spelling.
COMPARE_QUERIES = [
    ("select count(*), count(distinct user_id), sum(price), min(price), max(price) from events", None),
    ("select event_type, count(*), avg(price) from events group by event_type order by event_type", None),
    ("select brand, count(*) as n from events where brand is not null "
     "group by brand order by n desc, brand limit 10", None),
    ("select date, count(*), count(distinct user_session) from events group by date order by date", None),
    ("select min(event_time), max(event_time) from events", None),
    ("select count(*) from events where category_code is null", None),
    ("select category_id, count(*) as n, sum(price) from events "
     "where event_type = 'purchase' group by category_id order by n desc, category_id limit 5", None),
    ("select * from events where date = '2026-10-02' "
     "order by event_time, user_session, product_id, event_type limit 2000", None),
]


@pytest.fixture(scope="module")
def top_products(duck):
    return [r[0] for r in duck.execute(
        "select product_id from events group by 1 order by count(*) desc, 1 limit 8").fetchall()]


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared", "binary"])
@pytest.mark.parametrize("i", range(len(COMPARE_QUERIES)))
def test_results_match_duckdb(conn, duck, i, mode):
    sql, duck_sql = COMPARE_QUERIES[i]
    expected = duck.execute(duck_sql or sql).fetchall()
    if mode == "simple":
        got = conn.execute(sql).fetchall()
    elif mode == "extended":
        # psycopg sends a parameter-less text query with the simple protocol; in pipeline
        # mode it always uses Parse/Bind/Describe/Execute (unnamed statement) instead.
        cur = conn.cursor()
        with conn.pipeline():
            cur.execute(sql, prepare=False)
        got = cur.fetchall()
    elif mode == "prepared":
        cur = conn.cursor()
        cur.execute(sql, prepare=True)
        cur.execute(sql, prepare=True)  # second run reuses the named server-side statement
        got = cur.fetchall()
    else:
        cur = conn.cursor(binary=True)
        cur.execute(sql)
        got = cur.fetchall()
    assert expected, "reference query returned nothing: data set problem"
    u.assert_rows_equal(got, expected, context=f"{mode}: {sql}")


def test_extended_protocol_with_bound_parameters(conn, duck, top_products):
    pid = top_products[0]
    sql = "select count(*), sum(price) from events where product_id = %s and price > %s"
    got = conn.execute(sql, (pid, 10.0)).fetchall()
    want = duck.execute(sql.replace("%s", "?"), [pid, 10.0]).fetchall()
    assert want[0][0] > 0
    u.assert_rows_equal(got, want)

    # prepare=True: named server-side statement, executed several times with new parameters.
    cur = conn.cursor()
    for pid in top_products[:4]:
        cur.execute(sql, (pid, 1.0), prepare=True)
        u.assert_rows_equal(cur.fetchall(), duck.execute(sql.replace("%s", "?"), [pid, 1.0]).fetchall(),
                            context=f"prepared pid={pid}")

    # psycopg prepares automatically after prepare_threshold (5) executions of the same query.
    for n in range(8):
        pid = top_products[n % len(top_products)]
        got = conn.execute(sql, (pid, 0.0)).fetchall()
        u.assert_rows_equal(got, duck.execute(sql.replace("%s", "?"), [pid, 0.0]).fetchall(),
                            context=f"auto-prepared run {n}")


def test_binary_results_with_parameters(conn, duck, top_products):
    sql = ("select product_id, event_type, count(*), min(event_time), max(price) from events "
           "where product_id = %s group by product_id, event_type order by event_type")
    cur = conn.cursor(binary=True)
    for pid in top_products[:3]:
        cur.execute(sql, (pid,))
        u.assert_rows_equal(cur.fetchall(), duck.execute(sql.replace("%s", "?"), [pid]).fetchall())


# ------------------------------------------------------------------ type round trip

# (expression, expected python value, accepted type OIDs)
TEXT_OIDS = {25, 1043}
TYPE_CASES = [
    ("CAST(12 AS SMALLINT)", 12, {21}),
    ("CAST(-123456 AS INT)", -123456, {23}),
    ("CAST(9007199254740993 AS BIGINT)", 9007199254740993, {20}),
    ("CAST(1.5 AS REAL)", 1.5, {700}),
    ("CAST(0.1 AS DOUBLE PRECISION)", 0.1, {701}),
    ("CAST(-2.5e300 AS DOUBLE PRECISION)", -2.5e300, {701}),
    ("CAST(12.34 AS DECIMAL(10,2))", Decimal("12.34"), {1700}),
    ("CAST(-98765.4321 AS DECIMAL(20,4))", Decimal("-98765.4321"), {1700}),
    ("CAST('12345678901234567890.12' AS DECIMAL(38,2))", Decimal("12345678901234567890.12"), {1700}),
    ("CAST(0 AS DECIMAL(5,0))", Decimal("0"), {1700}),
    ("true", True, {16}),
    ("false", False, {16}),
    ("CAST(NULL AS BOOLEAN)", None, {16}),
    ("'héllo wörld ✓'", "héllo wörld ✓", TEXT_OIDS),
    ("''", "", TEXT_OIDS),
    ("CAST(NULL AS BIGINT)", None, {20}),
    ("DATE '2026-10-01'", dt.date(2026, 10, 1), {1082}),
    ("DATE '1999-12-31'", dt.date(1999, 12, 31), {1082}),
    ("TIMESTAMP '2026-10-01 12:34:56.123456'", dt.datetime(2026, 10, 1, 12, 34, 56, 123456), {1114}),
    ("CAST('2026-10-01T12:34:56.123456Z' AS TIMESTAMP WITH TIME ZONE)",
     dt.datetime(2026, 10, 1, 12, 34, 56, 123456, tzinfo=UTC), {1184}),
    ("INTERVAL '1 day 2 hours 3 minutes 4.5 seconds'",
     dt.timedelta(days=1, hours=2, minutes=3, seconds=4.5), {1186}),
    ("INTERVAL '90 minutes'", dt.timedelta(minutes=90), {1186}),
    ("ARRAY[CAST(1 AS BIGINT), 2, 3]", [1, 2, 3], {1016}),
    ("ARRAY[CAST(1 AS INT), CAST(-2 AS INT)]", [1, -2], {1007}),
    ("ARRAY['a', 'b c', 'd\"e', 'f,g']", ["a", "b c", 'd"e', "f,g"], {1009, 1015}),
    ("ARRAY[CAST(1.5 AS DOUBLE PRECISION), 2.25]", [1.5, 2.25], {1022}),
]


def _type_ok(value, expected):
    if expected is None:
        return value is None
    if isinstance(expected, bool):
        return value is expected
    if isinstance(expected, dt.datetime):
        return (isinstance(value, dt.datetime)
                and (value.tzinfo is None) == (expected.tzinfo is None)
                and value == expected)
    if isinstance(expected, float):
        return isinstance(value, float) and value == expected
    if isinstance(expected, list):
        return isinstance(value, list) and value == expected and all(
            type(a) is type(b) for a, b in zip(value, expected))
    return type(value) is type(expected) and value == expected


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
@pytest.mark.parametrize("expr,expected,oids", TYPE_CASES, ids=[c[0][:40] for c in TYPE_CASES])
def test_type_round_trip(conn, expr, expected, oids, binary):
    cur = conn.cursor(binary=binary)
    cur.execute(f"SELECT {expr} AS v")
    row = cur.fetchone()
    oid = cur.description[0].type_code
    assert oid in oids, f"{expr}: type oid {oid}, expected one of {oids}"
    assert _type_ok(row[0], expected), f"{expr}: got {row[0]!r} ({type(row[0]).__name__}), expected {expected!r}"


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_column_types_of_events(conn, binary):
    cur = conn.cursor(binary=binary)
    cur.execute("select * from events limit 3")
    names = [d.name for d in cur.description]
    assert names == u.EVENT_COLUMNS + [u.PARTITION_COLUMN]
    oids = dict(zip(names, [d.type_code for d in cur.description]))
    assert oids["event_time"] == 1184
    assert oids["product_id"] == 20 and oids["category_id"] == 20 and oids["user_id"] == 20
    assert oids["price"] == 701
    for c in ("event_type", "category_code", "brand", "user_session", "date"):
        assert oids[c] in TEXT_OIDS, (c, oids[c])
    rows = cur.fetchall()
    assert len(rows) == 3
    for r in rows:
        assert isinstance(r[0], dt.datetime) and r[0].tzinfo is not None
        assert isinstance(r[2], int) and isinstance(r[6], float)


# ------------------------------------------------------------------ parameter binding

PARAM_CASES = [
    ("int-small", 42),
    ("int-large", 2**40 + 3),
    ("int-neg", -7),
    ("float", 1.25),
    ("str", "héllo"),
    ("bool-true", True),
    ("bool-false", False),
    ("date", dt.date(2026, 10, 3)),
    ("datetime-naive", dt.datetime(2026, 10, 3, 4, 5, 6, 789000)),
    ("datetime-aware", dt.datetime(2026, 10, 3, 4, 5, 6, 789000, tzinfo=UTC)),
    ("decimal", Decimal("12.34")),
]


@pytest.mark.parametrize("name,value", PARAM_CASES, ids=[c[0] for c in PARAM_CASES])
def test_parameter_echo(conn, name, value):
    """`SELECT $1` returns the parameter with the type the client declared in Parse (as
    PostgreSQL does), for text (%t), binary (%b) and psycopg's automatic (%s) formats."""
    problems = []
    for placeholder in ("%s", "%t", "%b"):
        sql = f"select cast({placeholder} as text)" if isinstance(value, str) else f"select {placeholder}"
        try:
            cur = conn.execute(sql, (value,))
            got, oid = cur.fetchone()[0], cur.description[0].type_code
        except psycopg.Error as e:
            problems.append(f"{sql}: {e.sqlstate} {e}")
            continue
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            ok = isinstance(got, dt.datetime) and got.tzinfo is not None and got == value
        else:
            ok = type(got) is type(value) and got == value
        if not ok:
            problems.append(f"{sql} with {value!r} -> {got!r} (result type oid {oid})")
    assert not problems, "\n".join(problems)


def test_parameters_in_filters(conn, duck, top_products):
    d = duck
    checks = [
        ("select count(*) from events where event_type = %s", ("purchase",)),
        ("select count(*) from events where brand = %s or brand is null",
         (duck.execute("select brand from events where brand is not null limit 1").fetchone()[0],)),
        ("select count(*) from events where (price > 100) = %s", (True,)),
        ("select count(*) from events where cast(date as date) = %s", (dt.date(2026, 10, 3),)),
        ("select count(*) from events where event_time >= %s and event_time < %s",
         (dt.datetime(2026, 10, 2, 6, tzinfo=UTC), dt.datetime(2026, 10, 4, 18, tzinfo=UTC))),
        ("select count(*) from events where price > %s", (Decimal("100.50"),)),
        ("select count(*) from events where product_id in (%s, %s, %s)", tuple(top_products[:3])),
        ("select count(*) from events where price between %s and %s", (5, 50.5)),
        ("select count(*) from events where user_session like %s", ("a%",)),
    ]
    for sql, params in checks:
        want = d.execute(sql.replace("%s", "?"), list(params)).fetchone()[0]
        got = conn.execute(sql, params).fetchone()[0]
        assert got == want, f"{sql} {params!r}: carthouse {got} != duckdb {want}"
    assert conn.execute(checks[0][0], checks[0][1]).fetchone()[0] > 0


# ------------------------------------------------------------------ errors

ERROR_CASES = [
    ("syntax", "selec 1 frm events", "42601"),
    ("unknown-table", "select * from no_such_table_e2e", "42P01"),
    ("unknown-column", "select no_such_column_e2e from events", "42703"),
]


@pytest.mark.parametrize("name,sql,sqlstate", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_error_sqlstate_and_connection_survives(conn, name, sql, sqlstate):
    for attempt in range(2):  # twice: the error path must not leave state behind
        with pytest.raises(psycopg.Error) as ei:
            conn.execute(sql)
        assert ei.value.sqlstate == sqlstate, f"{sql}: sqlstate {ei.value.sqlstate!r}: {ei.value}"
        assert not conn.closed
        assert conn.execute("select 1 + %s", (1,)).fetchone()[0] == 2
        assert conn.execute("select 3").fetchone()[0] == 3
    # The same through the extended protocol with a parameter.
    with pytest.raises(psycopg.Error) as ei:
        conn.execute(sql + (" where 1 = %s" if name != "syntax" else " %s"), (1,))
    assert ei.value.sqlstate == sqlstate
    assert conn.execute("select count(*) from events").fetchone()[0] == u.EVENTS


def test_error_inside_transaction_then_rollback(pg_dsn):
    with psycopg.connect(pg_dsn, autocommit=False) as c:
        assert c.execute("select 1").fetchone()[0] == 1
        with pytest.raises(psycopg.Error) as ei:
            c.execute("select * from no_such_table_e2e")
        assert ei.value.sqlstate == "42P01"
        c.rollback()
        assert c.execute("select count(*) from events").fetchone()[0] == u.EVENTS
        c.commit()


def test_begin_commit(pg_dsn):
    with psycopg.connect(pg_dsn, autocommit=False) as c:
        assert c.execute("select 1").fetchone()[0] == 1
        assert c.info.transaction_status == TransactionStatus.INTRANS
        c.commit()
        assert c.info.transaction_status == TransactionStatus.IDLE
        with c.transaction():
            assert c.execute("select 2").fetchone()[0] == 2
        c.rollback()
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute("BEGIN")
        assert c.info.transaction_status == TransactionStatus.INTRANS
        assert c.execute("select 3").fetchone()[0] == 3
        c.execute("COMMIT")
        assert c.info.transaction_status == TransactionStatus.IDLE
        c.execute("START TRANSACTION")
        c.execute("ROLLBACK")
        assert c.info.transaction_status == TransactionStatus.IDLE
        assert c.execute("select 4").fetchone()[0] == 4


# ------------------------------------------------------------------ what BI tools send

def test_startup_parameter_status(conn):
    """ParameterStatus values that drivers rely on (pgjdbc refuses non-UTF8 client_encoding and
    non-ISO DateStyle; psycopg parses text intervals only with IntervalStyle=postgres)."""
    ps = conn.info.parameter_status
    assert ps("server_version"), "server_version not reported"
    assert ps("client_encoding") == "UTF8"
    assert ps("server_encoding") == "UTF8"
    assert (ps("DateStyle") or "").startswith("ISO")
    assert ps("IntervalStyle") == "postgres"
    assert ps("integer_datetimes") == "on"
    assert ps("standard_conforming_strings") == "on"
    assert conn.info.backend_pid != 0, "no BackendKeyData (needed for cancel)"


def _one_of(*allowed):
    return lambda rows: len(rows) == 1 and str(rows[0][0]).lower() in allowed


# (statement as BI tools / drivers send it, check on the fetched rows or None = just no error)
SESSION_STATEMENTS = [
    ("SET extra_float_digits = 3", None),
    ("SET application_name = 'x'", None),
    ("SET DateStyle = 'ISO'", None),
    ("SET datestyle TO 'ISO, MDY'", None),
    ("SET client_encoding = 'UTF8'", None),
    ("SET TIME ZONE 'UTC'", None),
    ("SET search_path = public", None),
    ("SHOW transaction_isolation",
     _one_of("read committed", "read uncommitted", "repeatable read", "serializable")),
    ("SHOW TRANSACTION ISOLATION LEVEL",
     _one_of("read committed", "read uncommitted", "repeatable read", "serializable")),
    ("SHOW standard_conforming_strings", _one_of("on")),
    ("select current_setting('server_version_num')",
     lambda rows: str(rows[0][0]).isdigit() and int(rows[0][0]) >= 90000),
    ("select pg_catalog.version()",
     # SQLAlchemy, Metabase, ... parse 'PostgreSQL X.Y' out of it
     lambda rows: __import__("re").match(r".*PostgreSQL \d+(\.\d+)?", rows[0][0]) is not None),
    ("select current_schema()", lambda rows: rows == [("public",)]),
    ("select current_catalog", lambda rows: rows == [("carthouse",)]),
    ("select current_database()", lambda rows: rows == [("carthouse",)]),
    ("select current_user", lambda rows: len(rows) == 1 and isinstance(rows[0][0], str)),
    ("select typarray from pg_type where typname = 'int4'", lambda rows: rows == [(1007,)]),
    ("select oid, typbasetype from pg_type where typname = 'lo'", lambda rows: len(rows) <= 1),
    ("select * from pg_stat_user_tables", None),
    ("select has_any_column_privilege('events', 'SELECT')", lambda rows: rows == [(True,)]),
    ("select has_table_privilege('events', 'SELECT')", lambda rows: rows == [(True,)]),
]


@pytest.mark.parametrize("sql,check", SESSION_STATEMENTS, ids=[c[0][:50] for c in SESSION_STATEMENTS])
def test_session_statements_bi_tools_send(conn, sql, check):
    try:
        cur = conn.execute(sql)
        rows = cur.fetchall() if cur.description else None
    except psycopg.Error as e:
        pytest.fail(f"{sql!r} failed: {e.sqlstate} {e}", pytrace=False)
    if check is not None:
        assert rows is not None and check(rows), f"{sql!r} returned {rows!r}"
    # The session still answers real queries afterwards.
    assert conn.execute("select count(*) from events").fetchone()[0] == u.EVENTS


def test_pg_catalog_knows_events(conn):
    rows = conn.execute(
        "select c.relname from pg_catalog.pg_class c join pg_catalog.pg_namespace n "
        "on n.oid = c.relnamespace where c.relname = 'events'").fetchall()
    assert rows == [("events",)]
    cols = conn.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_name = 'events' order by ordinal_position").fetchall()
    assert [c for c, _ in cols] == u.EVENT_COLUMNS + [u.PARTITION_COLUMN]


# ------------------------------------------------------------------ concurrency

def test_many_concurrent_connections(pg_dsn, duck, top_products):
    n_threads = 32
    types = [r[0] for r in duck.execute("select distinct event_type from events order by 1").fetchall()]
    exp_pid = {p: duck.execute("select count(*) from events where product_id = ?", [p]).fetchone()[0]
               for p in top_products}
    exp_type = {t: duck.execute("select count(*) from events where event_type = ?", [t]).fetchone()[0]
                for t in types}
    barrier = threading.Barrier(n_threads, timeout=60)

    def worker(i):
        with psycopg.connect(pg_dsn, autocommit=True) as c:
            barrier.wait()  # all 32 connections open at the same time
            p = top_products[i % len(top_products)]
            t = types[i % len(types)]
            a = c.execute("select count(*) from events where product_id = %s", (p,)).fetchone()[0]
            b = c.execute("select count(*) from events where event_type = %s", (t,)).fetchone()[0]
            one = c.execute("select 1").fetchone()[0]
            return (p, a, t, b, one)

    with cf.ThreadPoolExecutor(n_threads) as ex:
        futs = [ex.submit(worker, i) for i in range(n_threads)]
        results = [f.result(timeout=240) for f in futs]
    for p, a, t, b, one in results:
        assert a == exp_pid[p] and b == exp_type[t] and one == 1


# ------------------------------------------------------------------ cancel

LONG_QUERY = "select sum(a.price * b.price) from events a cross join events b"


def test_query_cancel(server_factory):
    # Own server: if cancel does not work the runaway cross join must not slow the other tests.
    srv = server_factory.start(register_events=True, name="cancel")
    try:
        conn = psycopg.connect(srv.dsn, autocommit=True)
        outcome: dict[str, object] = {}

        def run():
            t0 = time.monotonic()
            try:
                outcome["rows"] = conn.execute(LONG_QUERY).fetchall()
            except BaseException as e:  # noqa: BLE001
                outcome["error"] = e
            outcome["elapsed"] = time.monotonic() - t0

        th = threading.Thread(target=run, daemon=True)
        th.start()
        time.sleep(2.0)
        assert th.is_alive(), f"the long query finished before cancel: {outcome!r}"
        t_cancel = time.monotonic()
        cancel_problem = None
        try:
            if hasattr(conn, "cancel_safe"):
                conn.cancel_safe(timeout=10)
            else:
                conn.cancel()
        except psycopg.errors.CancellationTimeout:
            cancel_problem = ("the CancelRequest exchange did not finish within 10 s: libpq waits for "
                              "the server to close the cancel connection (psql's Ctrl-C would hang)")
        th.join(timeout=20)
        stopped_after = time.monotonic() - t_cancel
        if th.is_alive():
            srv.stop(check=False)  # unblock the client thread
            th.join(timeout=10)
            pytest.fail(f"query still running 20 s after cancel ({cancel_problem or 'cancel request sent'})"
                        f"\n{srv.describe()}")
        assert cancel_problem is None, cancel_problem
        assert "rows" not in outcome, f"query ran to completion despite cancel: {outcome['rows']!r}"
        err = outcome["error"]
        assert isinstance(err, psycopg.Error), repr(err)
        assert stopped_after < 15
        assert err.sqlstate == "57014" or isinstance(err, psycopg.errors.QueryCanceled), (
            f"expected QueryCanceled (57014), got {err.sqlstate}: {err}")
        # The connection is usable afterwards.
        assert conn.execute("select 1").fetchone()[0] == 1
        assert conn.execute("select count(*) from events").fetchone()[0] == u.EVENTS
        conn.close()
        srv.assert_alive()
    finally:
        srv.stop(check=False)
