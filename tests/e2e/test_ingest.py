"""Live tables and durable ingest, end to end.

Ingest paths: HTTP POST /v1/ingest/{table} with the real `curl` (NDJSON, CSV) and http.client
(Arrow IPC stream); Postgres (psycopg 3) INSERT ... VALUES, INSERT ... SELECT from the file
table `events`, COPY FROM STDIN (text and CSV with header); Flight SQL (ADBC) adbc_ingest in
append and create mode. Also: POST /v1/sql in JSON / CSV / Arrow, a join of a live table with
`events`, persistence across restarts, flushing to date= Parquet partitions (late events),
strict config, and bad input (400/404/413/415, all-or-nothing).

Every acknowledged row must be visible to the very next query, through any protocol. All
expected values are computed here in Python or by DuckDB from the rows the test sent, never
taken from an earlier answer of the server.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import math
import random
import re
import subprocess
import threading
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flight_sql
import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import e2e_util as u

COLS = "ts TIMESTAMP NOT NULL, id BIGINT NOT NULL, name TEXT, price DOUBLE"
COL_NAMES = ["ts", "id", "name", "price"]
# What a notebook user naturally builds with pyarrow for such a table.
NATURAL_SCHEMA = pa.schema([("ts", pa.timestamp("us")), ("id", pa.int64()),
                            ("name", pa.string()), ("price", pa.float64())])
NAMES = ["alpha", "beta", "gämma ✓", 'say "hi"', "a,b", "back\\slash", "🚀 rocket", "it's"]
DAY = dt.datetime(2026, 10, 3)
FLUSH_WAIT_S = 30

_table_ids = itertools.count(1)


# ====================================================================== helpers

def make_rows(n: int, id_start: int, seed: int, day: dt.datetime = DAY, nulls: bool = True,
              names: list[str] = NAMES) -> list[tuple]:
    """n rows (ts, id, name, price) with ids id_start.., timestamps inside `day` (UTC, naive),
    including the first and last microsecond of the day."""
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        if i == 0:
            ts = day
        elif i == 1:
            ts = day + dt.timedelta(days=1, microseconds=-1)
        else:
            ts = day + dt.timedelta(seconds=rnd.randrange(86400),
                                    microseconds=rnd.choice([0, 0, rnd.randrange(1_000_000)]))
        name = None if nulls and rnd.random() < 0.12 else rnd.choice(names)
        price = None if nulls and rnd.random() < 0.12 else round(rnd.uniform(-50, 5000), rnd.choice([0, 2, 6]))
        rows.append((ts, id_start + i, name, price))
    return rows


def _frac(ts: dt.datetime) -> str:
    return f".{ts.microsecond:06d}" if ts.microsecond else ""


def rfc3339(ts: dt.datetime, style: int) -> str:
    """`ts` (naive UTC) as text: 0 = ...Z, 1 = 'YYYY-MM-DD HH:MM:SS', 2 = +02:00, 3 = -05:30."""
    base = ts.replace(microsecond=0)
    if style == 0:
        return base.strftime("%Y-%m-%dT%H:%M:%S") + _frac(ts) + "Z"
    if style == 1:
        return base.strftime("%Y-%m-%d %H:%M:%S") + _frac(ts)
    if style == 2:
        return (base + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S") + _frac(ts) + "+02:00"
    return (base - dt.timedelta(hours=5, minutes=30)).strftime("%Y-%m-%dT%H:%M:%S") + _frac(ts) + "-05:30"


def json_number(x: float):
    return int(x) if x is not None and float(x).is_integer() else x


def ndjson_line(row: tuple, k: int, styles=(0, 1), int_doubles: bool = False) -> str:
    ts, rid, name, price = row
    obj = {"ts": rfc3339(ts, styles[k % len(styles)]), "id": rid}
    # NULL both ways: key absent, or explicit null.
    if name is not None or k % 2 == 0:
        obj["name"] = name
    if price is not None or k % 2 == 1:
        obj["price"] = json_number(price) if int_doubles else price
    items = list(obj.items())
    if k % 5 == 0:
        items.reverse()  # key order must not matter
    return json.dumps(dict(items), ensure_ascii=(k % 3 == 0))


def ndjson(rows: list[tuple], styles=(0, 1), int_doubles: bool = False) -> bytes:
    """NDJSON for rows; timestamps in the given rfc3339() styles (default: the two forms the
    spec names, ...Z and 'YYYY-MM-DD HH:MM:SS')."""
    return ("\n".join(ndjson_line(r, k, styles, int_doubles) for k, r in enumerate(rows)) + "\n").encode("utf-8")


def csv_text(rows: list[tuple], columns: list[str]) -> bytes:
    """CSV with a header naming `columns` (any subset/order of COL_NAMES); no NULLs in rows
    for the columns written."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for k, r in enumerate(rows):
        d = dict(zip(COL_NAMES, r))
        out = []
        for c in columns:
            v = d[c]
            assert v is not None, "csv_text rows must not hold NULLs"
            out.append(rfc3339(v, k % 2) if c == "ts" else repr(v) if isinstance(v, float) else str(v))
        w.writerow(out)
    return buf.getvalue().encode("utf-8")


def arrow_table(rows: list[tuple], schema: pa.Schema = NATURAL_SCHEMA) -> pa.Table:
    cols = list(zip(*rows)) if rows else [[], [], [], []]
    return pa.table({name: pa.array(list(cols[i]), type=schema.field(name).type)
                     for i, name in enumerate(COL_NAMES)}, schema=schema)


def arrow_ipc(table: pa.Table, batch_rows: int = 100) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        for b in table.to_batches(max_chunksize=batch_rows):
            w.write_batch(b)
    return sink.getvalue()


def sql_lit(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if isinstance(v, dt.datetime):
        return "'" + v.strftime("%Y-%m-%d %H:%M:%S") + _frac(v) + "'"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def values_sql(rows: list[tuple]) -> str:
    return ", ".join("(" + ", ".join(sql_lit(v) for v in r) + ")" for r in rows)


def new_table(srv: u.CarthouseServer, prefix: str, cols: str = COLS) -> str:
    name = f"{prefix}_{next(_table_ids)}"
    with srv.connect() as c:
        c.execute(f"CREATE TABLE {name} ({cols})")
    return name


def adbc(srv: u.CarthouseServer):
    return flight_sql.connect(srv.flight_uri, autocommit=True)


def norm_row(r) -> tuple:
    ts, rid, name, price = r
    return (u.utc_naive(ts), rid, name, price)


def pg_table_rows(srv_or_conn, table: str, where: str = "") -> list[tuple]:
    sql = f"select ts, id, name, price from {table} {where} order by id"
    if isinstance(srv_or_conn, u.CarthouseServer):
        with srv_or_conn.connect() as c:
            rows = c.execute(sql).fetchall()
    else:
        rows = srv_or_conn.execute(sql).fetchall()
    return [norm_row(r) for r in rows]


def flight_table_rows(srv: u.CarthouseServer, table: str) -> list[tuple]:
    with adbc(srv) as conn, conn.cursor() as cur:
        cur.execute(f"select ts, id, name, price from {table} order by id")
        t = cur.fetch_arrow_table()
    return [norm_row((d["ts"], d["id"], d["name"], d["price"])) for d in t.to_pylist()]


def http_table_rows(srv: u.CarthouseServer, table: str) -> list[tuple]:
    rows = u.http_sql_ok(srv, f"select ts, id, name, price from {table} order by id")
    return [norm_row((d.get("ts"), d.get("id"), d.get("name"), d.get("price"))) for d in rows]


def assert_table(got: list[tuple], want: list[tuple], context: str) -> None:
    want = sorted(want, key=lambda r: r[1])
    ids = [r[1] for r in got]
    dup = len(ids) - len(set(ids))
    assert dup == 0, f"{context}: {dup} duplicated ids in the table"
    u.assert_rows_equal(got, want, rel=1e-12, context=context)


def ingest_ok(srv: u.CarthouseServer, table: str, body: bytes, ctype: str, n: int, **kw) -> None:
    r = u.http_ingest(srv, table, body, ctype, **kw)
    assert r.status == 200, f"ingest of {n} rows failed\n{r.describe()}"
    doc = r.json()
    assert isinstance(doc, dict) and doc.get("rows") == n, f"expected {{\"rows\": {n}}}\n{r.describe()}"


def curl_post(url: str, body_file: Path, ctype: str, timeout: int = 120,
              extra_headers: list[str] | None = None) -> tuple[int, bytes]:
    """POST a file with the real curl; (HTTP status, response body). Fails the test when curl
    gets no HTTP answer at all."""
    out = body_file.with_suffix(".response")
    cmd = ["curl", "-sS", "--max-time", str(timeout), "-X", "POST", "-H", f"Content-Type: {ctype}"]
    for h in extra_headers or []:
        cmd += ["-H", h]
    cmd += ["--data-binary", f"@{body_file}", "-o", str(out), "-w", "%{http_code}", url]
    try:
        cp = subprocess.run(cmd, capture_output=True, timeout=timeout + 15, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"curl did not finish within {timeout + 15} s: {' '.join(cmd)}", pytrace=False)
    status = int(cp.stdout.decode().strip() or 0)
    # curl may exit non-zero after an early answer (e.g. 413 before the whole body was sent).
    assert status != 0, (f"curl got no HTTP answer ({cp.returncode}): {' '.join(cmd)}\n"
                         f"stderr: {cp.stderr.decode('utf-8', 'replace')}")
    return status, out.read_bytes() if out.exists() else b""


def wait_until(pred, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = pred()
        if ok:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}; last state: {last}", pytrace=False)


def assert_server_answers(srv: u.CarthouseServer) -> None:
    r = u.http_request(srv.http_url, "GET", "/health")
    assert r.status == 200 and r.json() == {"status": "ok"}, r.describe()
    with srv.connect() as c:
        assert c.execute("select 41 + 1").fetchone()[0] == 42
    srv.assert_alive()


# ====================================================================== fixtures

@pytest.fixture(scope="module")
def live_srv(server_factory):
    """A private server (with `events`) shared by the tests in this module that do not restart."""
    srv = server_factory.start(register_events=True, name="ingest")
    yield srv
    srv.stop()


# ====================================================================== basics

def test_health(live_srv):
    r = u.http_request(live_srv.http_url, "GET", "/health")
    assert r.status == 200, r.describe()
    assert "json" in r.content_type, r.describe()
    assert r.json() == {"status": "ok"}, r.describe()
    r = u.http_request(live_srv.http_url, "GET", "/no/such/route")
    assert r.status == 404, r.describe()


def test_live_table_needs_a_timestamp_column(live_srv):
    with live_srv.connect() as c:
        with pytest.raises(psycopg.Error) as ei:
            c.execute("CREATE TABLE lt_no_ts (id BIGINT NOT NULL, name TEXT)")
        assert "timestamp" in str(ei.value).lower(), f"error does not say why: {ei.value}"
        with pytest.raises(psycopg.Error) as ei:
            c.execute("select * from lt_no_ts")
        assert ei.value.sqlstate == "42P01", f"table was created anyway: {ei.value.sqlstate} {ei.value}"
    r = u.http_sql(live_srv, "CREATE TABLE lt_no_ts_http (id BIGINT, price DOUBLE)")
    assert r.status == 400, r.describe()
    assert r.error_message()
    assert_server_answers(live_srv)


# ====================================================================== HTTP ingest

def test_curl_ndjson(live_srv, tmp_path):
    t = new_table(live_srv, "curl_nd")
    first = make_rows(300, 1, seed=1)
    f = tmp_path / "first.ndjson"
    f.write_bytes(ndjson(first))
    status, body = curl_post(f"{live_srv.http_url}/v1/ingest/{t}", f, u.NDJSON)
    assert status == 200, f"curl NDJSON -> {status}: {body[:500]!r}"
    assert json.loads(body) == {"rows": 300}, body
    # the very next query, over Postgres, sees exactly what was sent
    assert_table(pg_table_rows(live_srv, t), first, "after first curl NDJSON (psycopg)")

    # A second, larger body (curl sends `Expect: 100-continue` for it), no trailing newline.
    second = make_rows(20_000, 10_000, seed=2)
    f2 = tmp_path / "second.ndjson"
    f2.write_bytes(ndjson(second).rstrip(b"\n"))
    status, body = curl_post(f"{live_srv.http_url}/v1/ingest/{t}", f2, u.NDJSON)
    assert status == 200, f"curl NDJSON -> {status}: {body[:500]!r}"
    assert json.loads(body) == {"rows": len(second)}, body
    assert_table(flight_table_rows(live_srv, t), first + second, "after second curl NDJSON (Flight)")

    with live_srv.connect() as c:
        n, s, nn = c.execute(f"select count(*), sum(price), count(name) from {t}").fetchone()
    allrows = first + second
    assert n == len(allrows)
    assert math.isclose(s, math.fsum(r[3] for r in allrows if r[3] is not None), rel_tol=1e-9)
    assert nn == sum(1 for r in allrows if r[2] is not None)


def test_curl_csv(live_srv, tmp_path):
    t = new_table(live_srv, "curl_csv")
    full = make_rows(250, 1, seed=3, nulls=False)
    f = tmp_path / "full.csv"
    # header names every column, in another order than the table
    f.write_bytes(csv_text(full, ["price", "name", "id", "ts"]))
    status, body = curl_post(f"{live_srv.http_url}/v1/ingest/{t}", f, u.CSV)
    assert status == 200, f"curl CSV -> {status}: {body[:500]!r}"
    assert json.loads(body) == {"rows": 250}, body
    assert_table(http_table_rows(live_srv, t), full, "after CSV with all columns (/v1/sql)")

    # nullable columns left out of the header are NULL
    partial = make_rows(120, 1000, seed=4, nulls=False)
    f2 = tmp_path / "partial.csv"
    f2.write_bytes(csv_text(partial, ["id", "ts", "price"]))
    status, body = curl_post(f"{live_srv.http_url}/v1/ingest/{t}", f2, u.CSV)
    assert status == 200, f"curl CSV -> {status}: {body[:500]!r}"
    assert json.loads(body) == {"rows": 120}, body
    want = full + [(ts, i, None, p) for ts, i, _n, p in partial]
    assert_table(pg_table_rows(live_srv, t), want, "after CSV without `name` (psycopg)")


def test_ndjson_rfc3339_offsets_and_integer_doubles(live_srv):
    """RFC3339 with numeric offsets (+02:00, -05:30) is converted to UTC; an integral JSON
    number (5) is accepted for a DOUBLE column."""
    t = new_table(live_srv, "rfc3339")
    rows = make_rows(200, 1, seed=8)
    ingest_ok(live_srv, t, ndjson(rows, styles=(2, 3)), u.NDJSON, 200)
    assert_table(pg_table_rows(live_srv, t), rows, "timestamps with UTC offsets")
    t2 = new_table(live_srv, "intdouble")
    rows2 = [(ts, i, n, None if p is None else float(round(p))) for ts, i, n, p in make_rows(50, 1, seed=9)]
    body = ndjson(rows2, int_doubles=True)
    assert re.search(rb'"price": -?\d+[,}]', body), "no integral JSON number in the body"
    ingest_ok(live_srv, t2, body, u.NDJSON, 50)
    assert_table(pg_table_rows(live_srv, t2), rows2, "integral JSON numbers for DOUBLE")


def test_content_type_with_charset(live_srv):
    t = new_table(live_srv, "charset")
    rows = make_rows(5, 1, seed=5)
    ingest_ok(live_srv, t, ndjson(rows), "application/x-ndjson; charset=utf-8", 5)
    rows2 = make_rows(4, 100, seed=6, nulls=False)
    ingest_ok(live_srv, t, csv_text(rows2, COL_NAMES), "text/csv; charset=utf-8", 4)
    assert_table(pg_table_rows(live_srv, t), rows + rows2, "content types with charset")


@pytest.mark.parametrize("schema_kind", ["server-schema", "natural-pyarrow"])
def test_arrow_ipc_ingest(live_srv, schema_kind):
    t = new_table(live_srv, "arrow_ipc")
    if schema_kind == "server-schema":
        with adbc(live_srv) as conn, conn.cursor() as cur:
            cur.execute(f"select ts, id, name, price from {t} limit 0")
            schema = cur.fetch_arrow_table().schema
    else:
        schema = NATURAL_SCHEMA
    rows = make_rows(1000, 1, seed=7)
    r = u.http_ingest(live_srv, t, arrow_ipc(arrow_table(rows, schema), batch_rows=333), u.ARROW_STREAM)
    assert r.status == 200, f"Arrow IPC with schema {schema}\n{r.describe()}"
    assert r.json() == {"rows": 1000}, r.describe()
    assert_table(pg_table_rows(live_srv, t), rows, f"after Arrow IPC ({schema_kind})")


def test_concurrent_ingest_read_your_writes(live_srv):
    """Writers on HTTP, Postgres and Flight at once; after each acknowledged write the writer's
    next query (rotating protocols) must see exactly its rows."""
    t = new_table(live_srv, "concurrent")
    sent: dict[int, list[tuple]] = {}
    failures: list[str] = []

    def worker(w: int):
        rnd = random.Random(100 + w)
        try:
            with live_srv.connect() as pg, adbc(live_srv) as fconn:
                for k in range(12):
                    lo = (w * 100 + k) * 1000
                    rows = make_rows(rnd.randint(1, 200), lo, seed=w * 1000 + k)
                    proto = ("http", "pg", "flight")[(w + k) % 3]
                    if proto == "http":
                        ingest_ok(live_srv, t, ndjson(rows), u.NDJSON, len(rows))
                    elif proto == "pg":
                        pg.execute(f"INSERT INTO {t} VALUES {values_sql(rows)}")
                    else:
                        with fconn.cursor() as cur:
                            cur.adbc_ingest(t, arrow_table(rows), mode="append")
                    sent[lo] = rows
                    want = (len(rows), sum(r[1] for r in rows))
                    q = f"select count(*) as n, sum(id) as s from {t} where id between {lo} and {lo + 999}"
                    reader = ("pg", "http", "flight")[k % 3]
                    if reader == "pg":
                        got = tuple(pg.execute(q).fetchone())
                    elif reader == "http":
                        d = u.http_sql_ok(live_srv, q)[0]
                        got = (d["n"], d["s"])
                    else:
                        with fconn.cursor() as cur:
                            cur.execute(q)
                            got = tuple(cur.fetchone())
                    if got != want:
                        failures.append(f"writer {w} batch {k}: wrote via {proto}, read via {reader}: "
                                        f"(count, sum(id)) = {got}, expected {want}")
                        return
        except BaseException as e:  # noqa: BLE001 - reported below
            failures.append(f"writer {w}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=180)
    assert not any(th.is_alive() for th in threads), "writers hung"
    assert not failures, "\n".join(failures)
    want = [r for rows in sent.values() for r in rows]
    assert_table(pg_table_rows(live_srv, t), want, "after concurrent ingest")


# ====================================================================== Postgres ingest

def test_psycopg_insert_values(live_srv):
    t = new_table(live_srv, "pg_values")
    rows = make_rows(150, 1, seed=11)
    with live_srv.connect() as c:
        cur = c.execute(f"INSERT INTO {t} VALUES {values_sql(rows)}")
        rowcount = cur.rowcount
        # the very next query, over HTTP, sees them
        assert_table(http_table_rows(live_srv, t), rows, "after INSERT VALUES (/v1/sql)")
        more = make_rows(3, 1000, seed=12)
        c.execute(f"INSERT INTO {t} (id, ts, price) VALUES "
                  + ", ".join(f"({r[1]}, {sql_lit(r[0])}, {sql_lit(r[3])})" for r in more))
        assert_table(pg_table_rows(c, t), rows + [(a, b, None, d) for a, b, _c, d in more],
                     "after INSERT with a column list")
    assert rowcount == len(rows), f"INSERT command tag gave rowcount {rowcount}, expected {len(rows)}"


def test_psycopg_insert_parameters(live_srv):
    """INSERT with bound parameters (extended protocol), as drivers and ORMs send it."""
    t = new_table(live_srv, "pg_params")
    rows = make_rows(40, 1, seed=13)
    with live_srv.connect() as c:
        with c.cursor() as cur:
            cur.executemany(f"INSERT INTO {t} (ts, id, name, price) VALUES (%s, %s, %s, %s)", rows)
        assert_table(flight_table_rows(live_srv, t), rows, "after executemany INSERT (Flight)")


def _sort_key(r):
    return tuple((v is None, v if v is not None else 0) for v in r)


def test_psycopg_insert_select_from_events(live_srv, duck):
    t = new_table(live_srv, "from_events")
    where = "date = '2026-10-03' and event_type in ('purchase', 'cart')"
    with live_srv.connect() as c:
        cur = c.execute(f"INSERT INTO {t} (ts, id, name, price) "
                        f"SELECT event_time, user_id, event_type, price FROM events WHERE {where}")
        rowcount = cur.rowcount
        got = [norm_row(r) for r in c.execute(f"select ts, id, name, price from {t}").fetchall()]
    want = [norm_row(r) for r in duck.execute(
        f"select event_time, user_id, event_type, price from events where {where}").fetchall()]
    assert len(want) > 1000, "test data too small"
    u.assert_rows_equal(sorted(got, key=_sort_key), sorted(want, key=_sort_key), rel=1e-12,
                        context="INSERT ... SELECT from events vs DuckDB")

    expected_n = len(want)

    q = (f"select name, count(*) as n, sum(price) as s, count(distinct id) as users "
         f"from {t} group by name order by name")
    got = [(d["name"], d["n"], d["s"], d["users"]) for d in u.http_sql_ok(live_srv, q)]
    want = duck.execute(
        "select event_type, count(*), sum(price), count(distinct user_id) from events "
        f"where {where} group by event_type order by event_type").fetchall()
    u.assert_rows_equal(got, want, rel=1e-9, context="aggregate over the live table vs DuckDB")
    assert rowcount == expected_n, f"INSERT ... SELECT rowcount {rowcount}, expected {expected_n}"


def copy_text_field(v) -> str:
    if v is None:
        return "\\N"
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S") + _frac(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return (v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r"))
    return str(v)


def copy_text(rows) -> bytes:
    return "".join("\t".join(copy_text_field(v) for v in r) + "\n" for r in rows).encode("utf-8")


def _write_in_chunks(copy, data: bytes, size: int) -> None:
    # rows split across CopyData messages, as clients streaming a file do
    for i in range(0, len(data), size):
        copy.write(data[i:i + size])


def test_psycopg_copy_text(live_srv):
    t = new_table(live_srv, "copy_text")
    rows = make_rows(2000, 1, seed=21, names=NAMES + ["tab\there", "new\nline", "cr\rhere"])
    with live_srv.connect() as c:
        with c.cursor() as cur:
            with cur.copy(f"COPY {t} FROM STDIN") as copy:
                _write_in_chunks(copy, copy_text(rows), 37)
            rowcount = cur.rowcount
        assert_table(flight_table_rows(live_srv, t), rows, "after COPY text (Flight)")
    assert rowcount == len(rows), f"COPY command tag gave rowcount {rowcount}, expected {len(rows)}"


def test_psycopg_copy_csv_header(live_srv):
    t = new_table(live_srv, "copy_csv")
    rows = make_rows(1500, 1, seed=22, names=NAMES + ["new\nline in quotes"])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COL_NAMES)
    for r in rows:
        w.writerow([copy_text_field(r[0]) if r[0] is not None else "", r[1],
                    "" if r[2] is None else r[2], "" if r[3] is None else repr(r[3])])
    data = buf.getvalue().encode("utf-8")
    # Postgres CSV: an unquoted empty field is NULL. Make sure non-NULL names are never empty.
    assert all(r[2] != "" for r in rows)
    with live_srv.connect() as c:
        with c.cursor() as cur:
            with cur.copy(f"COPY {t} FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
                _write_in_chunks(copy, data, 4096)
            rowcount = cur.rowcount
        assert_table(http_table_rows(live_srv, t), rows, "after COPY csv (/v1/sql)")
    assert rowcount == len(rows), f"COPY command tag gave rowcount {rowcount}, expected {len(rows)}"


PG_BAD = [
    ("insert-string-into-bigint",
     lambda t: f"INSERT INTO {t} VALUES ('2026-10-03 01:00:00', 900001, 'ok', 1.5), "
               f"('2026-10-03 01:00:01', 'abc', 'bad', 2.5)"),
    ("insert-bad-timestamp",
     lambda t: f"INSERT INTO {t} VALUES ('2026-10-03 01:00:00', 900001, 'ok', 1.5), "
               f"('yesterday-ish', 900002, 'bad', 2.5)"),
    ("insert-null-into-not-null",
     lambda t: f"INSERT INTO {t} VALUES ('2026-10-03 01:00:00', 900001, 'ok', 1.5), "
               f"('2026-10-03 01:00:01', NULL, 'bad', 2.5)"),
    ("insert-missing-not-null-column",
     lambda t: f"INSERT INTO {t} (ts, name) VALUES ('2026-10-03 01:00:00', 'no id')"),
    ("insert-select-bad-cast",
     lambda t: f"INSERT INTO {t} (ts, id, name, price) SELECT event_time, user_id, event_type, "
               f"cast(brand as double) FROM events WHERE brand IS NOT NULL LIMIT 10"),
]


@pytest.mark.parametrize("name,sql", PG_BAD, ids=[c[0] for c in PG_BAD])
def test_psycopg_bad_insert_applies_nothing(live_srv, name, sql):
    t = new_table(live_srv, "pg_bad")
    seed = make_rows(20, 1, seed=31)
    ingest_ok(live_srv, t, ndjson(seed), u.NDJSON, 20)
    with live_srv.connect() as c:
        with pytest.raises(psycopg.Error) as ei:
            c.execute(sql(t))
        assert_table(pg_table_rows(c, t), seed, f"{name}: table changed by a failed INSERT")
    assert_server_answers(live_srv)
    # Bad user input is not an internal error (XX000): Postgres says 22P02/23502/42804...
    assert ei.value.sqlstate and not ei.value.sqlstate.startswith("XX"), \
        f"internal error for bad input: {ei.value.sqlstate} {ei.value}"


@pytest.mark.parametrize("fmt", ["text", "csv"])
def test_psycopg_bad_copy_applies_nothing(live_srv, fmt):
    t = new_table(live_srv, "copy_bad")
    seed = make_rows(20, 1, seed=32)
    ingest_ok(live_srv, t, ndjson(seed), u.NDJSON, 20)
    good = make_rows(3000, 1000, seed=33, nulls=False)
    if fmt == "text":
        lines = copy_text(good).decode().splitlines(keepends=True)
        lines.insert(2500, "2026-10-03 10:00:00\tnot-a-number\tx\t1.0\n")
        stmt = f"COPY {t} FROM STDIN"
    else:
        lines = [f"{copy_text_field(r[0])},{r[1]},x,{r[3]!r}\n" for r in good]
        lines.insert(2500, "2026-10-03 10:00:00,77,x,cheap\n")
        stmt = f"COPY {t} FROM STDIN WITH (FORMAT csv)"
    with live_srv.connect() as c:
        with pytest.raises(psycopg.Error) as ei:
            with c.cursor() as cur:
                with cur.copy(stmt) as copy:
                    copy.write("".join(lines).encode())
        assert_table(pg_table_rows(c, t), seed, f"COPY {fmt}: table changed by a failed COPY")
    assert_server_answers(live_srv)
    assert ei.value.sqlstate and not ei.value.sqlstate.startswith("XX"), \
        f"internal error for bad COPY data: {ei.value.sqlstate} {ei.value}"


# ====================================================================== Flight SQL ingest

def test_adbc_ingest_append(live_srv):
    t = new_table(live_srv, "adbc_append")
    rows = make_rows(5000, 1, seed=41)
    with adbc(live_srv) as conn, conn.cursor() as cur:
        n = cur.adbc_ingest(t, arrow_table(rows), mode="append")
        assert n in (len(rows), -1), f"adbc_ingest reported {n} rows, sent {len(rows)}"
    assert_table(pg_table_rows(live_srv, t), rows, "after adbc_ingest append (psycopg)")

    bad = pa.table({"ts": pa.array([DAY, DAY], pa.timestamp("us")), "id": ["1", "abc"],
                    "name": ["x", "y"], "price": [1.0, 2.0]})
    with adbc(live_srv) as conn, conn.cursor() as cur:
        with pytest.raises(Exception) as ei:
            cur.adbc_ingest(t, bad, mode="append")
        assert "id" in str(ei.value), f"error does not name the column: {ei.value}"
        with pytest.raises(Exception) as ei:
            cur.adbc_ingest("no_such_live_table_adbc", arrow_table(rows[:3]), mode="append")
        assert "no_such_live_table_adbc" in str(ei.value), str(ei.value)
    assert_table(pg_table_rows(live_srv, t), rows, "after failed adbc_ingest calls")
    with live_srv.connect() as c, pytest.raises(psycopg.Error) as ei:
        c.execute("select * from no_such_live_table_adbc")
    assert ei.value.sqlstate == "42P01", f"append to an unknown table created it: {ei.value}"
    assert_server_answers(live_srv)


def test_adbc_ingest_create(live_srv):
    t = f"adbc_created_{next(_table_ids)}"
    rnd = random.Random(42)
    n = 700
    data = pa.table({
        "event_at": pa.array([DAY + dt.timedelta(seconds=rnd.randrange(86400)) for _ in range(n)],
                             pa.timestamp("us")),
        "sku": pa.array([rnd.randrange(10**12) for _ in range(n)], pa.int64()),
        "qty": pa.array([rnd.randrange(1, 10) for _ in range(n)], pa.int32()),
        "note": pa.array([None if i % 9 == 0 else f"n{i}" for i in range(n)], pa.string()),
    })
    with adbc(live_srv) as conn, conn.cursor() as cur:
        cur.adbc_ingest(t, data, mode="create")
    with live_srv.connect() as c:
        got = c.execute(f"select event_at, sku, qty, note from {t} order by sku, event_at").fetchall()
    want = sorted(zip(*(data.column(i).to_pylist() for i in range(4))), key=lambda r: (r[1], r[0]))
    u.assert_rows_equal([(u.utc_naive(a), b, c, d) for a, b, c, d in got], want,
                        context="table created by adbc_ingest(mode='create')")
    # It is a live table: HTTP ingest appends to it.
    body = b'{"event_at": "2026-10-04T00:00:01Z", "sku": -1, "qty": 3}\n'
    ingest_ok(live_srv, t, body, u.NDJSON, 1)
    with live_srv.connect() as c:
        assert c.execute(f"select count(*), sum(qty) from {t}").fetchone() == (n + 1, sum(data.column("qty").to_pylist()) + 3)
    # Creating it again fails; a schema without a timestamp column is refused.
    with adbc(live_srv) as conn, conn.cursor() as cur:
        with pytest.raises(Exception):
            cur.adbc_ingest(t, data, mode="create")
        with pytest.raises(Exception) as ei:
            cur.adbc_ingest(f"{t}_nots", pa.table({"a": [1, 2]}), mode="create")
        assert "timestamp" in str(ei.value).lower(), str(ei.value)
    with live_srv.connect() as c:
        assert c.execute(f"select count(*) from {t}").fetchone()[0] == n + 1
        with pytest.raises(psycopg.Error) as ei:
            c.execute(f"select * from {t}_nots")
        assert ei.value.sqlstate == "42P01", ei.value
    assert_server_answers(live_srv)


# ====================================================================== /v1/sql

@pytest.fixture(scope="module")
def sql_data(live_srv):
    """A live table with known rows, and a DuckDB table `t` holding the same rows."""
    t = new_table(live_srv, "sqlfmt")
    rows = make_rows(3000, 1, seed=51) + make_rows(500, 10_000, seed=52, day=DAY + dt.timedelta(days=1))
    ingest_ok(live_srv, t, ndjson(rows), u.NDJSON, len(rows))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("src", arrow_table(rows))
    con.execute("CREATE TABLE t AS SELECT * FROM src")
    con.unregister("src")
    yield t, con
    con.close()


AGG_SQL = ("select name, count(*) as n, sum(price) as total, min(id) as min_id, max(ts) as last_ts "
           "from {t} where name is not null group by name order by name")
AGG_COLS = ["name", "n", "total", "min_id", "last_ts"]


def _agg_norm(rows):
    return [(a, b, c, d, u.utc_naive(e)) for a, b, c, d, e in rows]


def test_sql_json_default(live_srv, sql_data, duck):
    t, con = sql_data
    want = _agg_norm(con.execute(AGG_SQL.format(t="t")).fetchall())
    # no Accept header at all: JSON
    r = u.http_request(live_srv.http_url, "POST", "/v1/sql", AGG_SQL.format(t=t), content_type="text/plain")
    assert r.status == 200, r.describe()
    assert "json" in r.content_type, r.describe()
    doc = r.json()
    assert isinstance(doc, list) and all(isinstance(d, dict) for d in doc), r.describe()
    assert all(set(d) <= set(AGG_COLS) for d in doc) and set().union(*doc) == set(AGG_COLS), r.describe()
    got = _agg_norm([tuple(d.get(c) for c in AGG_COLS) for d in doc])
    u.assert_rows_equal(got, want, rel=1e-9, context="/v1/sql JSON vs DuckDB")

    # single rows, exact timestamps and NULLs
    pick = con.execute("select id, ts, name, price from t where name is null or price is null "
                       "order by id limit 5").fetchall()
    ids = ", ".join(str(p[0]) for p in pick)
    got = http_table_rows(live_srv, f"{t} where id in ({ids})")
    u.assert_rows_equal(got, [(ts, i, n, p) for i, ts, n, p in pick], context="/v1/sql JSON rows with NULLs")

    # the file table too
    q = "select event_type, count(*) as n, sum(price) as s from events group by event_type order by event_type"
    got = [(d["event_type"], d["n"], d["s"]) for d in u.http_sql_ok(live_srv, q)]
    u.assert_rows_equal(got, duck.execute(q).fetchall(), rel=1e-9, context="/v1/sql JSON on events vs DuckDB")


def test_sql_csv(live_srv, sql_data):
    t, con = sql_data
    r = u.http_sql(live_srv, AGG_SQL.format(t=t), accept="text/csv")
    assert r.status == 200, r.describe()
    assert r.content_type.startswith("text/csv"), r.describe()
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows and rows[0] == AGG_COLS, f"CSV header {rows[:1]}\n{r.describe()}"
    got = _agg_norm([(a, int(b), float(c), int(d), e) for a, b, c, d, e in rows[1:]])
    want = _agg_norm(con.execute(AGG_SQL.format(t="t")).fetchall())
    u.assert_rows_equal(got, want, rel=1e-9, context="/v1/sql CSV vs DuckDB")


def test_sql_arrow(live_srv, sql_data):
    t, con = sql_data
    r = u.http_sql(live_srv, AGG_SQL.format(t=t), accept=u.ARROW_STREAM)
    assert r.status == 200, r.describe()
    assert r.content_type.startswith(u.ARROW_STREAM), r.describe()
    got_t = pa.ipc.open_stream(r.body).read_all()
    assert got_t.column_names == AGG_COLS
    assert pa.types.is_integer(got_t.schema.field("n").type)
    assert pa.types.is_floating(got_t.schema.field("total").type)
    assert pa.types.is_timestamp(got_t.schema.field("last_ts").type)
    got = _agg_norm([tuple(d[c] for c in AGG_COLS) for d in got_t.to_pylist()])
    want = _agg_norm(con.execute(AGG_SQL.format(t="t")).fetchall())
    u.assert_rows_equal(got, want, rel=1e-9, context="/v1/sql Arrow vs DuckDB")

    # every row, exact
    r = u.http_sql(live_srv, f"select ts, id, name, price from {t} order by id", accept=u.ARROW_STREAM)
    assert r.status == 200, r.describe()
    got = [norm_row((d["ts"], d["id"], d["name"], d["price"]))
           for d in pa.ipc.open_stream(r.body).read_all().to_pylist()]
    want = [norm_row(x) for x in con.execute("select ts, id, name, price from t order by id").fetchall()]
    u.assert_rows_equal(got, want, rel=1e-12, context="/v1/sql Arrow rows")


def test_sql_ddl_insert_and_errors(live_srv):
    t = f"http_ddl_{next(_table_ids)}"
    r = u.http_sql(live_srv, f"CREATE TABLE {t} ({COLS})")
    assert r.status == 200, r.describe()
    rows = make_rows(25, 1, seed=61)
    r = u.http_sql(live_srv, f"INSERT INTO {t} VALUES {values_sql(rows)}")
    assert r.status == 200, r.describe()
    assert_table(pg_table_rows(live_srv, t), rows, "after CREATE + INSERT over /v1/sql")

    wrong = []
    for sql, fragment in [("selec 1", None), ("select * from no_such_table_http", "no_such_table_http"),
                          (f"select nope_col from {t}", "nope_col"),
                          (f"INSERT INTO {t} VALUES ('2026-10-03 00:00:00', 'abc', 'x', 1.0)", None)]:
        r = u.http_sql(live_srv, sql)
        msg = r.error_message() if 400 <= r.status < 500 else ""
        if r.status != 400:  # the API's contract: SQL errors are 400 {"error": ...}
            wrong.append(f"{sql!r}: expected 400\n{r.describe()}")
        if fragment and fragment not in msg:
            wrong.append(f"{sql!r}: error does not name {fragment!r}: {msg!r}")
    assert_table(pg_table_rows(live_srv, t), rows, "after failed statements over /v1/sql")
    assert_server_answers(live_srv)
    assert not wrong, "\n".join(wrong)



def test_sql_drop_table(live_srv):
    t = new_table(live_srv, "http_drop")
    rows = make_rows(5, 1, seed=62)
    ingest_ok(live_srv, t, ndjson(rows), u.NDJSON, 5)
    r = u.http_sql(live_srv, f"DROP TABLE {t}")
    assert r.status == 200, r.describe()
    with live_srv.connect() as c, pytest.raises(psycopg.Error) as ei:
        c.execute(f"select * from {t}")
    assert ei.value.sqlstate == "42P01", ei.value
    r = u.http_ingest(live_srv, t, ndjson(rows[:1]), u.NDJSON)
    assert r.status == 404, f"ingest into a dropped table\n{r.describe()}"


# ====================================================================== join with a file table

def test_join_live_with_events(live_srv, events_dir):
    ref = u.duckdb_events(events_dir)
    users = [r[0] for r in ref.execute(
        "select user_id from events group by user_id order by count(*) desc, user_id limit 60").fetchall()]
    t = new_table(live_srv, "user_flags", "ts TIMESTAMP NOT NULL, user_id BIGINT NOT NULL, flag TEXT")
    rnd = random.Random(71)
    flags = [(DAY + dt.timedelta(minutes=i), uid, rnd.choice(["vip", "churn", "new"]))
             for i, uid in enumerate(users + [-1, -2, -3])]  # three users with no events
    body = "".join(json.dumps({"ts": rfc3339(ts, 0), "user_id": uid, "flag": f}) + "\n" for ts, uid, f in flags)
    ingest_ok(live_srv, t, body.encode(), u.NDJSON, len(flags))
    ref.execute("create table flags (ts timestamp, user_id bigint, flag varchar)")
    ref.executemany("insert into flags values (?, ?, ?)", flags)
    q = ("select f.flag, count(*) as n, count(distinct e.user_id) as users, sum(e.price) as gmv "
         "from {t} f join events e on e.user_id = f.user_id where e.event_type = 'purchase' "
         "group by f.flag order by f.flag")
    with live_srv.connect() as c:
        got = c.execute(q.format(t=t)).fetchall()
    want = ref.execute(q.format(t="flags")).fetchall()
    assert want, "reference join is empty"
    u.assert_rows_equal(got, want, rel=1e-9, context="live table JOIN events vs DuckDB")
    q2 = ("select f.user_id, count(e.user_id) as n from {t} f left join events e on e.user_id = f.user_id "
          "group by f.user_id order by f.user_id")
    got = [(d["user_id"], d["n"]) for d in u.http_sql_ok(live_srv, q2.format(t=t))]
    u.assert_rows_equal(got, ref.execute(q2.format(t="flags")).fetchall(), context="LEFT JOIN over /v1/sql")
    ref.close()


# ====================================================================== persistence

CLICKS_COLS = "ts TIMESTAMP NOT NULL, user_id BIGINT NOT NULL, page TEXT, amount DOUBLE"


def _clicks_ndjson(rows) -> bytes:
    return "".join(json.dumps({"ts": rfc3339(ts, k % 2), "user_id": i, "page": n, "amount": p}) + "\n"
                   for k, (ts, i, n, p) in enumerate(rows)).encode()


def _clicks_rows(srv) -> list[tuple]:
    with srv.connect() as c:
        return [norm_row(r) for r in
                c.execute("select ts, user_id, page, amount from clicks order by user_id").fetchall()]


def test_restart_persistence(server_factory):
    cfg = server_factory.write_config(
        "[live]\nflush_interval_ms = 10000\n\n"
        f'[[live_table]]\nname = "clicks"\ncolumns = "{CLICKS_COLS}"\ntime_column = "ts"\n'
        "retention_days = 36500\n")
    srv = server_factory.start(config=cfg, name="persist")

    clicks = make_rows(400, 1, seed=81)
    ingest_ok(srv, "clicks", _clicks_ndjson(clicks), u.NDJSON, len(clicks))
    a = new_table(srv, "persist_a")
    a_rows = make_rows(300, 1, seed=82)
    ingest_ok(srv, a, ndjson(a_rows), u.NDJSON, 300)
    more = make_rows(50, 1000, seed=83)
    with srv.connect() as c:
        c.execute(f"INSERT INTO {a} VALUES {values_sql(more)}")
    a_rows += more
    b = f"persist_adbc_{next(_table_ids)}"
    b_rows = make_rows(200, 1, seed=84)
    with adbc(srv) as conn, conn.cursor() as cur:
        cur.adbc_ingest(b, arrow_table(b_rows), mode="create")
    d = new_table(srv, "persist_drop")
    d_rows = make_rows(77, 1, seed=85)
    ingest_ok(srv, d, ndjson(d_rows), u.NDJSON, 77)

    def check(label):
        assert_table(_clicks_rows(srv), clicks, f"{label}: config table clicks")
        assert_table(pg_table_rows(srv, a), a_rows, f"{label}: SQL-created table")
        assert_table(flight_table_rows(srv, b), b_rows, f"{label}: ADBC-created table")

    check("before restart")
    srv.restart()
    check("after graceful restart")
    assert_table(pg_table_rows(srv, d), d_rows, "after restart: table to drop")

    with srv.connect() as c:
        c.execute(f"DROP TABLE {d}")
    srv.restart()
    check("after second restart")
    with srv.connect() as c, pytest.raises(psycopg.Error) as ei:
        c.execute(f"select * from {d}")
    assert ei.value.sqlstate == "42P01", f"dropped table is back after restart: {ei.value}"
    r = u.http_ingest(srv, d, ndjson(d_rows[:1]), u.NDJSON)
    assert r.status == 404 and d in r.error_message(), r.describe()

    # Same name again: a new, empty table; the old rows must not come back (WAL replay).
    new_table_name = d
    with srv.connect() as c:
        c.execute(f"CREATE TABLE {new_table_name} ({COLS})")
        assert c.execute(f"select count(*) from {new_table_name}").fetchone()[0] == 0
    # Writes after a restart persist as well.
    late = make_rows(30, 5000, seed=86)
    ingest_ok(srv, a, ndjson(late), u.NDJSON, 30)
    a_rows += late
    srv.restart()
    check("after third restart")
    with srv.connect() as c:
        assert c.execute(f"select count(*) from {new_table_name}").fetchone()[0] == 0, \
            "rows of a dropped table reappeared in a new table of the same name"
    srv.stop()


# ====================================================================== flush to Parquet, late events

def _parquet_state(data_dir: Path, table: str):
    """{partition dir name: [(id, ts), ...]} from the table's Parquet files, or None while a
    file cannot be read (being written)."""
    root = data_dir / "live" / table
    out: dict[str, list] = {}
    for f in sorted(root.glob("*/*.parquet")):
        try:
            tbl = pq.read_table(f, columns=["id", "ts"])
        except Exception as e:  # noqa: BLE001 - file being written or renamed
            return None, f"{f}: {type(e).__name__}: {e}"
        out.setdefault(f.parent.name, []).extend(
            (i, u.utc_naive(ts)) for i, ts in zip(tbl.column("id").to_pylist(), tbl.column("ts").to_pylist()))
    return out, None


def wait_flushed(data_dir: Path, table: str, want_ids: set[int]) -> dict[str, list]:
    def pred():
        state, err = _parquet_state(data_dir, table)
        if state is None:
            return False, err
        ids = sorted(i for rows in state.values() for i, _ in rows)
        summary = {k: len(v) for k, v in state.items()}
        return ids == sorted(want_ids), f"partitions {summary}, {len(ids)} ids in Parquet, want {len(want_ids)}"
    wait_until(pred, FLUSH_WAIT_S, f"all rows of {table} in Parquet under {data_dir / 'live' / table}",
               interval=0.2)
    return _parquet_state(data_dir, table)[0]


def _assert_partitions(state: dict[str, list], want_dirs: set[str], table: str) -> None:
    assert set(state) == want_dirs, f"{table}: partition dirs {sorted(state)}, expected {sorted(want_dirs)}"
    for part, rows in state.items():
        for i, ts in rows:
            assert part == f"date={ts.date().isoformat()}", f"{table}: id {i} with ts {ts} is in {part}"


def test_flush_to_parquet_and_late_events(server_factory):
    cfg = server_factory.write_config(
        "[live]\nflush_interval_ms = 200\n\n"
        '[[live_table]]\nname = "two_ts"\n'
        'columns = "created TIMESTAMP, ts TIMESTAMP NOT NULL, id BIGINT NOT NULL"\ntime_column = "ts"\n')
    srv = server_factory.start(config=cfg, name="flush")
    t = new_table(srv, "flush")
    day = dt.datetime(2026, 10, 5)
    late_day = day - dt.timedelta(days=3)
    current = make_rows(400, 1, seed=91, day=day)
    late = make_rows(60, 100_000, seed=92, day=late_day)
    mixed = current + late[:40]
    random.Random(93).shuffle(mixed)
    ingest_ok(srv, t, ndjson(mixed), u.NDJSON, len(mixed))
    ingest_ok(srv, t, ndjson(late[40:]), u.NDJSON, 20)
    allrows = current + late
    between = "where ts between '2026-10-02 00:00:00' and '2026-10-02 23:59:59.999999'"
    assert_table(pg_table_rows(srv, t, between), late, "late events, right after ingest")

    state = wait_flushed(srv.data_dir, t, {r[1] for r in allrows})
    _assert_partitions(state, {"date=2026-10-02", "date=2026-10-05"}, t)
    assert len(state["date=2026-10-02"]) == len(late)

    assert_table(pg_table_rows(srv, t), allrows, "after flush")
    assert_table(pg_table_rows(srv, t, between), late, "late events, after flush")

    # config table: partitions follow time_column `ts`, not the first TIMESTAMP column
    rnd = random.Random(94)
    two = [(dt.datetime(2026, 10, 4 + 2 * (i % 2), rnd.randrange(24), rnd.randrange(60)), i) for i in range(50)]
    body = "".join(json.dumps({"created": rfc3339(ts - dt.timedelta(days=10), 0), "ts": rfc3339(ts, 1), "id": i}) + "\n"
                   for ts, i in two)
    ingest_ok(srv, "two_ts", body.encode(), u.NDJSON, 50)
    state2 = wait_flushed(srv.data_dir, "two_ts", {i for _, i in two})
    _assert_partitions(state2, {"date=2026-10-04", "date=2026-10-06"}, "two_ts")

    # More rows after a flush; then restarts (graceful, then a crash): no row lost or doubled.
    after = make_rows(100, 200_000, seed=95, day=day)
    ingest_ok(srv, t, ndjson(after), u.NDJSON, 100)
    allrows += after
    assert_table(pg_table_rows(srv, t), allrows, "after ingest following a flush")
    srv.restart()
    assert_table(pg_table_rows(srv, t), allrows, "after graceful restart")
    wait_flushed(srv.data_dir, t, {r[1] for r in allrows})
    crash = make_rows(10, 300_000, seed=96, day=late_day)
    ingest_ok(srv, t, ndjson(crash), u.NDJSON, 10)
    allrows += crash
    srv.kill()
    srv.start()
    assert_table(pg_table_rows(srv, t), allrows, "after SIGKILL and restart")
    assert_table(pg_table_rows(srv, t, between), late + crash, "late events after SIGKILL and restart")
    state = wait_flushed(srv.data_dir, t, {r[1] for r in allrows})
    _assert_partitions(state, {"date=2026-10-02", "date=2026-10-05"}, t)
    with srv.connect() as c:
        assert c.execute("select count(*) from two_ts").fetchone()[0] == 50
    srv.stop()


# ====================================================================== bad input over HTTP

def _nd(rows, bad_line: int, bad: str) -> bytes:
    lines = ndjson(rows).decode().splitlines()
    lines.insert(bad_line - 1, bad)
    return ("\n".join(lines) + "\n").encode()


def _csv(rows, bad_line: int | None = None, bad: str | None = None, header: str | None = None) -> bytes:
    lines = csv_text(rows, COL_NAMES).decode().splitlines()
    if header is not None:
        lines[0] = header
    if bad is not None:
        lines.insert(bad_line - 1, bad)
    return ("\n".join(lines) + "\n").encode()


def _arrow_bad_id() -> bytes:
    return arrow_ipc(pa.table({"ts": pa.array([DAY], pa.timestamp("us")), "id": ["abc"],
                              "name": ["x"], "price": [1.0]}))


def _arrow_null_id() -> bytes:
    return arrow_ipc(pa.table({"ts": pa.array([DAY, DAY], pa.timestamp("us")),
                              "id": pa.array([1, None], pa.int64()),
                              "name": ["x", "y"], "price": [1.0, 2.0]}))


GOOD = make_rows(6, 500, seed=101, nulls=False)
MANY = make_rows(5000, 10_000, seed=102, nulls=False)
TS = '"2026-10-03T10:00:00Z"'

# (id, content type, body, status, line number or None, column or None)
HTTP_BAD = [
    ("ndjson-malformed-line-3", u.NDJSON, _nd(GOOD, 3, '{"ts": ' + TS + ', "id": 7,'), 400, 3, None),
    ("ndjson-not-an-object", u.NDJSON, _nd(GOOD, 1, "[1, 2, 3]"), 400, 1, None),
    ("ndjson-wrong-type", u.NDJSON, _nd(GOOD, 2, '{"ts": ' + TS + ', "id": "abc"}'), 400, 2, "id"),
    ("ndjson-float-for-bigint", u.NDJSON, _nd(GOOD, 4, '{"ts": ' + TS + ', "id": 1.5}'), 400, 4, "id"),
    ("ndjson-string-for-double", u.NDJSON,
     _nd(GOOD, 5, '{"ts": ' + TS + ', "id": 9, "price": "cheap"}'), 400, 5, "price"),
    ("ndjson-bad-timestamp", u.NDJSON, _nd(GOOD, 4, '{"ts": "not a time", "id": 9}'), 400, 4, "ts"),
    ("ndjson-missing-not-null", u.NDJSON, _nd(GOOD, 2, '{"ts": ' + TS + ', "name": "no id"}'), 400, 2, "id"),
    ("ndjson-null-not-null", u.NDJSON, _nd(GOOD, 3, '{"ts": null, "id": 8}'), 400, 3, "ts"),
    ("ndjson-unknown-column", u.NDJSON, _nd(GOOD, 2, '{"ts": ' + TS + ', "id": 8, "bogus": 1}'), 400, 2, "bogus"),
    ("ndjson-bad-after-5000-good", u.NDJSON,
     _nd(MANY, 5001, '{"ts": ' + TS + ', "id": "five thousand"}'), 400, 5001, "id"),
    ("csv-bad-header", u.CSV, _csv(GOOD, header="ts,id,bogus,price"), 400, 1, "bogus"),
    # the header lacks a NOT NULL column: reported at the header (line 1) or at the first row
    # that has no value for it (line 2)
    ("csv-header-missing-not-null", u.CSV, csv_text(GOOD, ["ts", "name", "price"]), 400, (1, 2), "id"),
    ("csv-wrong-type", u.CSV, _csv(GOOD, 3, "2026-10-03 10:00:00,7,x,cheap"), 400, 3, "price"),
    ("csv-bad-timestamp", u.CSV, _csv(GOOD, 6, "yesterday,7,x,1.0"), 400, 6, "ts"),
    ("csv-empty-not-null", u.CSV, _csv(GOOD, 2, "2026-10-03 10:00:00,,x,1.0"), 400, 2, "id"),
    ("arrow-garbage", u.ARROW_STREAM, b"\xff\xff\xff\xff garbage, not an Arrow stream" * 10, 400, None, None),
    ("arrow-wrong-type", u.ARROW_STREAM, _arrow_bad_id(), 400, None, "id"),
    ("arrow-null-in-not-null", u.ARROW_STREAM, _arrow_null_id(), 400, None, "id"),
    ("unsupported-content-type", "application/xml", b"<rows><row id='1'/></rows>", 415, None, None),
]


@pytest.mark.parametrize("name,ctype,body,status,line,col", HTTP_BAD, ids=[c[0] for c in HTTP_BAD])
def test_http_bad_input(live_srv, name, ctype, body, status, line, col):
    t = new_table(live_srv, "bad_http")
    seed = make_rows(20, 1, seed=103)
    ingest_ok(live_srv, t, ndjson(seed), u.NDJSON, 20)
    r = u.http_ingest(live_srv, t, body, ctype)
    assert r.status == status, f"{name}: expected {status}\n{r.describe()}"
    msg = r.error_message()
    if line is not None:
        lines = line if isinstance(line, tuple) else (line,)
        assert any(re.search(rf"\bline {n}\b", msg) for n in lines), \
            f"{name}: error does not name line {' or '.join(map(str, lines))}: {msg!r}"
    if col is not None:
        assert f"'{col}'" in msg, f"{name}: error does not name column '{col}': {msg!r}"
    assert_table(pg_table_rows(live_srv, t), seed, f"{name}: table changed by a rejected request")
    assert_server_answers(live_srv)


def test_http_unknown_table_and_missing_content_type(live_srv):
    r = u.http_ingest(live_srv, "no_such_live_table", ndjson(GOOD), u.NDJSON)
    assert r.status == 404, r.describe()
    assert "no_such_live_table" in r.error_message(), r.describe()
    # ingest into a file (non-live) table is not possible either
    r = u.http_ingest(live_srv, "events", ndjson(GOOD), u.NDJSON)
    assert r.status in (400, 404), r.describe()
    assert r.error_message()
    with live_srv.connect() as c:
        assert c.execute("select count(*) from events").fetchone()[0] == u.EVENTS
    t = new_table(live_srv, "no_ctype")
    r = u.http_request(live_srv.http_url, "POST", f"/v1/ingest/{t}", ndjson(GOOD))
    assert r.status in (400, 415), r.describe()
    assert pg_table_rows(live_srv, t) == []
    assert_server_answers(live_srv)


def body_of_size(size: int, id_start: int) -> tuple[bytes, int]:
    """A valid NDJSON body of exactly `size` bytes (the last row padded through `name`), and
    its number of rows."""
    def line(i, name=""):
        return json.dumps({"ts": "2026-10-03T00:00:00Z", "id": i, "name": name})
    lines: list[str] = []
    used = 0
    while used + len(line(id_start + len(lines))) + 1 + 60 <= size:
        lines.append(line(id_start + len(lines)))
        used += len(lines[-1]) + 1
    last = id_start + len(lines)
    lines.append(line(last, "p" * (size - used - len(line(last)) - 1)))
    data = ("\n".join(lines) + "\n").encode()
    assert len(data) == size, (len(data), size)
    return data, len(lines)


def test_oversized_body_413(server_factory, tmp_path):
    limit = 4096
    cfg = server_factory.write_config(f"[live]\nmax_request_bytes = {limit}\n")
    srv = server_factory.start(config=cfg, name="limit413")
    t = new_table(srv, "limit")

    at_limit, n_ok = body_of_size(limit, 1)
    ingest_ok(srv, t, at_limit, u.NDJSON, n_ok)

    over, _ = body_of_size(limit + 1, 10_000)
    r = u.http_ingest(srv, t, over, u.NDJSON)
    assert r.status == 413, f"body of {limit + 1} bytes with max_request_bytes={limit}\n{r.describe()}"
    assert r.error_message()
    # Larger bodies with curl, which reads an early answer while it is still sending (a server
    # may answer 413 before reading the whole body and close the connection).
    big, _ = body_of_size(200 * limit, 20_000)
    f = tmp_path / "big.ndjson"
    f.write_bytes(big)
    status, text = curl_post(f"{srv.http_url}/v1/ingest/{t}", f, u.NDJSON)
    assert status == 413, f"body of {len(big)} bytes -> {status}: {text[:300]!r}"
    # chunked transfer encoding (no Content-Length): the limit still applies
    status, text = curl_post(f"{srv.http_url}/v1/ingest/{t}", f, u.NDJSON,
                             extra_headers=["Transfer-Encoding: chunked"])
    assert status == 413, f"chunked body of {len(big)} bytes -> {status}: {text[:300]!r}"

    r = u.http_sql(srv, "select 1 as x" + " " * (2 * limit))
    assert r.status == 413, f"/v1/sql body over the limit\n{r.describe()}"

    with srv.connect() as c:
        assert c.execute(f"select count(*), min(id), max(id) from {t}").fetchone() == (n_ok, 1, n_ok), \
            "rejected bodies changed the table"
    assert_server_answers(srv)
    srv.stop()


# ====================================================================== strict config

BAD_LIVE_CONFIGS = [
    ("unknown-live-key", "[live]\nflush_interval_ms = 200\nflush_intervall_ms = 5\n", ["flush_intervall_ms"]),
    ("unknown-live-table-key",
     '[[live_table]]\nname = "c1"\ncolumns = "ts TIMESTAMP NOT NULL"\nretention_dayz = 3\n', ["retention_dayz"]),
    ("flush-interval-wrong-type", '[live]\nflush_interval_ms = "fast"\n', ["flush_interval_ms"]),
]


@pytest.mark.parametrize("name,text,fragments", BAD_LIVE_CONFIGS, ids=[c[0] for c in BAD_LIVE_CONFIGS])
def test_bad_live_config_refused(carthouse_bin, tmp_path, name, text, fragments):
    cfg = tmp_path / f"bad-{name}.toml"
    cfg.write_text(text)
    rc, out, err = u.run_serve_expect_exit(
        carthouse_bin, ["--pg-addr", "127.0.0.1:0", "--flight-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
                        "--data-dir", str(tmp_path / "data"), "--config", str(cfg)])
    assert rc != 0, f"server accepted a bad config\nstdout: {out}\nstderr: {err}"
    assert "carthouse ready" not in out
    assert "panicked" not in err, err
    for f in fragments:
        assert f in err, f"stderr does not name {f!r}:\n{err}"


# A [[live_table]] whose definition can never work. carthouse keeps serving when a configured
# table cannot be registered (as for [[table]]), so both are accepted here: refusing to start
# with a message naming the problem, or starting, logging it, and not having the table.
INVALID_LIVE_TABLES = [
    ("live-table-without-timestamp", "no_ts_cfg", 'columns = "id BIGINT NOT NULL, name TEXT"', ["TIMESTAMP"]),
    ("time-column-not-a-column", "bad_tc_cfg", 'columns = "ts TIMESTAMP NOT NULL, id BIGINT"\ntime_column = "nope_col"',
     ["nope_col"]),
    ("time-column-not-a-timestamp", "bad_tc2_cfg", 'columns = "ts TIMESTAMP NOT NULL, id BIGINT"\ntime_column = "id"',
     ["id"]),
]


@pytest.mark.parametrize("name,table,decl,fragments", INVALID_LIVE_TABLES, ids=[c[0] for c in INVALID_LIVE_TABLES])
def test_invalid_live_table_in_config(server_factory, carthouse_bin, tmp_path, name, table, decl, fragments):
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(f'[[live_table]]\nname = "{table}"\n{decl}\n')
    srv = u.CarthouseServer(carthouse_bin, tmp_path / "data", tmp_path / "logs", config=cfg, name=name)
    proc = subprocess.Popen(srv.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=u.clean_env())
    ready = threading.Event()
    out_lines: list[str] = []

    def read_stdout():
        for raw in proc.stdout:
            out_lines.append(raw.decode("utf-8", "replace"))
            m = u.READY_RE.search(out_lines[-1])
            if m:
                srv.port = int(m.group(2))
                ready.set()
        ready.set()

    threading.Thread(target=read_stdout, daemon=True).start()
    try:
        assert ready.wait(u.READY_TIMEOUT_S), "server neither started nor exited"
        if srv.port is None:  # refused to start
            proc.wait(timeout=10)
            err = proc.stderr.read().decode("utf-8", "replace")
            assert proc.returncode != 0, err
        else:  # started: the problem is logged and the table is not there
            with srv.connect() as c, pytest.raises(psycopg.Error) as ei:
                c.execute(f"select * from {table}")
            assert ei.value.sqlstate == "42P01", f"invalid live table {table} was created: {ei.value}"
            proc.terminate()
            proc.wait(timeout=u.STOP_TIMEOUT_S)
            err = proc.stderr.read().decode("utf-8", "replace")
        assert "panicked" not in err, err
        assert table in err, f"stderr does not name the table {table!r}:\n{err}"
        for f in fragments:
            assert f in err, f"stderr does not name {f!r}:\n{err}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
