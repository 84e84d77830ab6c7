"""Driver of benches/stream.sh: times one full-result stream per protocol."""

import re
import sys
import time

import adbc_driver_flightsql.dbapi as flight_sql
import psycopg

ready, pid, events, rows = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
m = re.search(r"postgres=(\S+):(\d+) flight=(\S+):(\d+)", ready)
pg_port, flight_port = int(m.group(2)), int(m.group(4))
SQL = "select event_time, event_type, product_id, category_id, category_code, brand, price, user_id, user_session from events"


def peak_rss_mb() -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


with psycopg.connect(f"host=127.0.0.1 port={pg_port} user=carthouse dbname=carthouse", autocommit=True) as c:
    c.execute(f"CREATE EXTERNAL TABLE events STORED AS PARQUET PARTITIONED BY (date) LOCATION '{events}/'")

results = {}

# Arrow Flight SQL through ADBC: iterate record batches as they arrive (never the whole table).
with flight_sql.connect(f"grpc://127.0.0.1:{flight_port}") as conn, conn.cursor() as cur:
    t = time.perf_counter()
    cur.execute(SQL)
    n = nbytes = 0
    for batch in cur.fetch_record_batch():
        n += batch.num_rows
        nbytes += batch.nbytes
    dt = time.perf_counter() - t
    results["flight"] = (n, nbytes, dt, peak_rss_mb(), rss_mb())

# Postgres wire protocol through psycopg 3, streaming rows (no client-side buffering).
with psycopg.connect(f"host=127.0.0.1 port={pg_port} user=carthouse dbname=carthouse", autocommit=True) as c:
    t = time.perf_counter()
    n = 0
    for _ in c.cursor().stream(SQL):
        n += 1
    dt = time.perf_counter() - t
    results["postgres"] = (n, results["flight"][1], dt, peak_rss_mb(), rss_mb())

print(f"rows: {rows}, result: {results['flight'][1] / 1e6:.0f} MB as Arrow")
for name, (n, nbytes, dt, peak, now) in results.items():
    assert n == rows, f"{name} returned {n} rows, expected {rows}"
    print(f"{name:9s}: {dt:7.2f} s  {n / dt / 1e6:6.2f} M rows/s  {nbytes / dt / 1e6:8.1f} MB/s  "
          f"server peak RSS so far {peak:.0f} MB (now {now:.0f} MB)")
print(f"flight / postgres rows/s: {results['postgres'][2] / results['flight'][2]:.1f}x")
