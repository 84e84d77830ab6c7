"""The persisted catalog: CREATE EXTERNAL TABLE / DROP TABLE survive restarts of the same data
dir; SHOW TABLES; hive partition pruning."""

from __future__ import annotations

import psycopg
import pytest

import e2e_util as u

CSV_EVENTS = 30_000
CSV_DAYS = 3


@pytest.fixture(scope="module")
def csv_dir(carthouse_bin, e2e_tmp):
    out = e2e_tmp / "events-csv"
    u.generate(carthouse_bin, out, events=CSV_EVENTS, days=CSV_DAYS, seed=11, fmt="csv")
    files = sorted(out.glob("date=*/part-0.csv"))
    assert len(files) == CSV_DAYS, list(out.rglob("*"))
    header = files[0].read_text().splitlines()[0]
    assert [h.strip().strip('"') for h in header.split(",")] == u.EVENT_COLUMNS, header
    return out


@pytest.fixture(scope="module")
def duck_csv(csv_dir):
    import duckdb

    con = duckdb.connect()
    con.execute(
        f"CREATE VIEW ev_csv AS SELECT * EXCLUDE (date), CAST(date AS VARCHAR) AS date "
        f"FROM read_csv('{csv_dir}/*/*.csv', header = true, hive_partitioning = true, "
        f"columns = {{'event_time': 'TIMESTAMPTZ', 'event_type': 'VARCHAR', 'product_id': 'BIGINT', "
        f"'category_id': 'BIGINT', 'category_code': 'VARCHAR', 'brand': 'VARCHAR', 'price': 'DOUBLE', "
        f"'user_id': 'BIGINT', 'user_session': 'VARCHAR'}})")
    yield con
    con.close()


def show_tables(conn) -> set[str]:
    cur = conn.execute("SHOW TABLES")
    names = [d.name for d in cur.description]
    rows = cur.fetchall()
    idx = names.index("table_name") if "table_name" in names else len(names) - 1
    return {r[idx] for r in rows}


def _count(conn, table):
    return conn.execute(f"select count(*) from {table}").fetchone()[0]


def test_tables_persist_across_restart_and_drop(server_factory, events_dir, csv_dir, duck_csv, duck):
    srv = server_factory.start(name="catalog")
    try:
        with srv.connect() as conn:
            before = show_tables(conn)
            assert "ev" not in before and "ev_csv" not in before
            conn.execute(f"CREATE EXTERNAL TABLE ev STORED AS PARQUET PARTITIONED BY (date) "
                         f"LOCATION '{events_dir}/'")
            conn.execute(f"CREATE EXTERNAL TABLE ev_csv STORED AS CSV PARTITIONED BY (date) "
                         f"LOCATION '{csv_dir}/' OPTIONS ('format.has_header' 'true')")
            assert {"ev", "ev_csv"} <= show_tables(conn)
            assert _count(conn, "ev") == u.EVENTS
            assert _count(conn, "ev_csv") == CSV_EVENTS

            # Same columns as the Parquet table (types are whatever CSV inference gives).
            cur = conn.execute("select * from ev_csv limit 1")
            assert [d.name for d in cur.description] == u.EVENT_COLUMNS + [u.PARTITION_COLUMN]
            q = ("select date, event_type, count(*), sum(price), count(distinct user_id), max(product_id) "
                 "from {t} group by date, event_type order by date, event_type")
            u.assert_rows_equal(conn.execute(q.format(t="ev_csv")).fetchall(),
                                duck_csv.execute(q.format(t="ev_csv")).fetchall(), context="csv vs duckdb")

            # duplicate name -> 42P07; IF NOT EXISTS -> no error
            with pytest.raises(psycopg.Error) as ei:
                conn.execute(f"CREATE EXTERNAL TABLE ev STORED AS PARQUET PARTITIONED BY (date) "
                             f"LOCATION '{events_dir}/'")
            assert ei.value.sqlstate == "42P07", f"{ei.value.sqlstate}: {ei.value}"
            conn.execute(f"CREATE EXTERNAL TABLE IF NOT EXISTS ev STORED AS PARQUET PARTITIONED BY (date) "
                         f"LOCATION '{events_dir}/'")
            assert _count(conn, "ev") == u.EVENTS

        srv.restart()
        with srv.connect() as conn:
            assert {"ev", "ev_csv"} <= show_tables(conn), "tables lost on restart"
            assert _count(conn, "ev") == u.EVENTS
            assert _count(conn, "ev_csv") == CSV_EVENTS
            q = "select event_type, count(*), sum(price) from ev group by 1 order by 1"
            u.assert_rows_equal(conn.execute(q).fetchall(),
                                duck.execute(q.replace(" ev ", " events ")).fetchall())
            conn.execute("DROP TABLE ev_csv")
            assert "ev_csv" not in show_tables(conn)
            with pytest.raises(psycopg.Error) as ei:
                conn.execute("select count(*) from ev_csv")
            assert ei.value.sqlstate == "42P01"
            conn.execute("DROP TABLE IF EXISTS ev_csv")  # no error
            with pytest.raises(psycopg.Error) as ei:
                conn.execute("DROP TABLE ev_csv")
            assert ei.value.sqlstate == "42P01", f"{ei.value.sqlstate}: {ei.value}"

        srv.restart()
        with srv.connect() as conn:
            tables = show_tables(conn)
            assert "ev_csv" not in tables, "dropped table came back after restart"
            assert "ev" in tables
            assert _count(conn, "ev") == u.EVENTS
            with pytest.raises(psycopg.Error) as ei:
                conn.execute("select count(*) from ev_csv")
            assert ei.value.sqlstate == "42P01"
            # the name can be reused
            conn.execute(f"CREATE EXTERNAL TABLE ev_csv STORED AS CSV PARTITIONED BY (date) "
                         f"LOCATION '{csv_dir}/' OPTIONS ('format.has_header' 'true')")
            assert _count(conn, "ev_csv") == CSV_EVENTS
        srv.assert_alive()
    finally:
        srv.stop()


def test_catalog_is_per_data_dir(server_factory, events_dir):
    a = server_factory.start(name="catalog-a")
    b = server_factory.start(name="catalog-b")
    try:
        with a.connect() as conn:
            conn.execute(f"CREATE EXTERNAL TABLE only_in_a STORED AS PARQUET PARTITIONED BY (date) "
                         f"LOCATION '{events_dir}/'")
        with b.connect() as conn:
            assert "only_in_a" not in show_tables(conn)
            with pytest.raises(psycopg.Error) as ei:
                conn.execute("select * from only_in_a")
            assert ei.value.sqlstate == "42P01"
    finally:
        a.stop()
        b.stop()


@pytest.mark.parametrize("day", ["2026-10-01", "2026-10-04", "2026-10-07"])
def test_partition_filter_counts(conn, duck, day):
    q = "select count(*), sum(price), count(distinct product_id) from events where date = %s"
    got = conn.execute(q, (day,)).fetchall()
    want = duck.execute(q.replace("%s", "?"), [day]).fetchall()
    assert want[0][0] > 0
    u.assert_rows_equal(got, want)
    got = conn.execute(f"select count(*) from events where date = '{day}'").fetchone()[0]
    assert got == want[0][0]


def test_partition_range_and_in(conn, duck):
    for where in ["date >= '2026-10-03' and date < '2026-10-05'",
                  "date in ('2026-10-02', '2026-10-06')",
                  "date > '2026-10-07'"]:
        q = f"select count(*) from events where {where}"
        assert conn.execute(q).fetchone()[0] == duck.execute(q).fetchone()[0], where


def test_partition_pruning_in_plan(conn):
    rows = conn.execute(
        "EXPLAIN select count(*), sum(price) from events where date = '2026-10-03'").fetchall()
    plan = "\n".join(str(c) for r in rows for c in r)
    assert "date=2026-10-03" in plan, plan
    for other in u.DATES:
        if other != "2026-10-03":
            assert f"date={other}" not in plan, f"partition {other} not pruned:\n{plan}"

    rows = conn.execute(
        "EXPLAIN ANALYZE select count(*), sum(price) from events where date = '2026-10-03'").fetchall()
    text = "\n".join(str(c) for r in rows for c in r)
    assert "date=2026-10-05" not in text, text
