"""Arrow Flight SQL with the clients notebooks use: the ADBC Flight SQL driver
(adbc_driver_flightsql.dbapi) and pyarrow.flight. Results and Arrow types are compared with
DuckDB's on the same Parquet files."""

from __future__ import annotations

import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow as pa
import pyarrow.flight as pf
import pytest

import e2e_util as u

COLUMNS = ", ".join(u.EVENT_COLUMNS)


@pytest.fixture
def adbc(server):
    conn = flight_sql.connect(server.flight_uri)
    yield conn
    conn.close()


def _duck_table(duck, sql: str) -> pa.Table:
    return duck.execute(sql).to_arrow_table()


def test_query_equals_duckdb_with_types(adbc, duck):
    sql = (f"select {COLUMNS} from events where event_type = 'purchase' "
           f"order by event_time, user_session, product_id limit 500")
    with adbc.cursor() as cur:
        cur.execute(sql)
        got = cur.fetch_arrow_table()
    want = _duck_table(duck, sql)
    assert got.num_rows == want.num_rows == 500
    for name in u.EVENT_COLUMNS:
        g, w = got.schema.field(name).type, want.schema.field(name).type
        assert g == w, f"{name}: carthouse {g}, duckdb {w}"
    assert got.schema.field("event_time").type == pa.timestamp("us", tz="UTC")
    assert got.to_pylist() == want.to_pylist()


def test_aggregate_and_decimal_scale(adbc, duck):
    sql = ("select brand, count(*) as n, cast(sum(price) as decimal(18, 2)) as gmv from events "
           "where event_type = 'purchase' and brand is not null group by brand order by n desc, brand limit 10")
    with adbc.cursor() as cur:
        cur.execute(sql)
        got = cur.fetch_arrow_table()
    want = _duck_table(duck, sql)
    assert got.schema.field("gmv").type == pa.decimal128(18, 2)
    assert got.column("brand").to_pylist() == want.column("brand").to_pylist()
    assert got.column("n").to_pylist() == want.column("n").to_pylist()
    assert got.column("gmv").to_pylist() == want.column("gmv").to_pylist()


def test_parameterised_query(adbc, duck):
    with adbc.cursor() as cur:
        cur.execute("select count(*) as n from events where event_type = $1 and price > $2",
                    parameters=("cart", 100.0))
        got = cur.fetchone()[0]
    want = duck.execute("select count(*) from events where event_type = 'cart' and price > 100").fetchone()[0]
    assert got == want and got > 0


def test_metadata(adbc):
    objects = adbc.adbc_get_objects(depth="tables").read_all().to_pylist()
    tables = {(c["catalog_name"], s["db_schema_name"], t["table_name"])
              for c in objects for s in c["catalog_db_schemas"] for t in s["db_schema_tables"]}
    assert ("carthouse", "public", "events") in tables
    schema = adbc.adbc_get_table_schema("events")
    assert schema.names[: len(u.EVENT_COLUMNS)] == u.EVENT_COLUMNS
    assert schema.field("price").type == pa.float64()
    assert "TABLE" in adbc.adbc_get_table_types()


@pytest.mark.parametrize("sql,params,fragment", [
    ("selec 1", None, "INVALID_ARGUMENT"),
    ("select * from no_such_table_flight", None, "NOT_FOUND"),
    ("select count(*) from events where price > $1 and product_id = $2", (1.0,), "INVALID_ARGUMENT"),
])
def test_errors_are_clear_and_server_stays_up(adbc, server, sql, params, fragment):
    with adbc.cursor() as cur:
        with pytest.raises(Exception) as ei:
            cur.execute(sql, parameters=params)
            cur.fetchall()
        assert fragment in str(ei.value), str(ei.value)
        cur.execute("select 1 as one")
        assert cur.fetchone()[0] == 1
    server.assert_alive()


def test_pyarrow_flight_direct(server, duck):
    client = pf.FlightClient(server.flight_uri)
    # A garbage ticket is an error, not a crash.
    with pytest.raises((pf.FlightError, pa.ArrowInvalid)):
        client.do_get(pf.Ticket(b"\x00garbage")).read_all()
    # The ADBC-created table is readable through the generic Flight API too, via a statement
    # executed with the ADBC driver and fetched as a stream of batches.
    with flight_sql.connect(server.flight_uri) as conn, conn.cursor() as cur:
        cur.execute("select product_id, price from events order by event_time, user_session, product_id limit 1000")
        reader = cur.fetch_record_batch()
        rows = sum(b.num_rows for b in reader)
    assert rows == 1000
    # carthouse's custom actions are listed and answer (the body is a protobuf message from
    # proto/carthouse/v1/flight_actions.proto; the Rust tests decode its fields).
    types = {a.type for a in client.list_actions()}
    assert {"carthouse.ServerStatistics", "carthouse.TableStatistics"} <= types
    request = b"\x0a" + bytes([len(b"events")]) + b"events"  # TableStatisticsRequest{table}
    results = list(client.do_action(pf.Action("carthouse.TableStatistics", request)))
    assert len(results) == 1 and b"event_time" in results[0].body.to_pybytes()
    server.assert_alive()


def test_ddl_through_adbc_is_shared_and_persisted(server_factory, events_dir):
    srv = server_factory.start(name="flight-ddl")
    with flight_sql.connect(srv.flight_uri) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE EXTERNAL TABLE ev_flight STORED AS PARQUET PARTITIONED BY (date) "
                    f"LOCATION '{events_dir}/'")
        cur.fetchall()
    # Visible to Postgres clients at once, and after a restart.
    with srv.connect() as c:
        assert c.execute("select count(*) from ev_flight").fetchone()[0] == u.EVENTS
    srv.restart()
    with flight_sql.connect(srv.flight_uri) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from ev_flight")
        assert cur.fetchone()[0] == u.EVENTS
        with pytest.raises(Exception) as ei:
            cur.execute("CREATE EXTERNAL TABLE nowhere STORED AS PARQUET LOCATION '/no/such/dir/'")
            cur.fetchall()
        assert "NOT_FOUND" in str(ei.value) and "/no/such/dir/" in str(ei.value)
