#!/usr/bin/env bash
# Generator throughput, side by side with DuckDB writing the same number of rows of the same
# schema to ZSTD Parquet, one partition per day, in the same run on the same machine.
#
#   cargo build --release && bash benches/generate.sh            # 20M events
#   EVENTS=5000000 bash benches/generate.sh
#
# DuckDB's rows are simpler (uniform random values, no sessions, no sorting), so the ratio
# flatters DuckDB; it is the nearest peer doing the same I/O and encoding work.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EVENTS="${EVENTS:-20000000}"
BIN="${CARTHOUSE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/carthouse}"
source "$ROOT/tests/e2e/install-deps.sh" >/dev/null
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

start=$(date +%s.%N)
"$BIN" generate --out "$TMP/carthouse" --events "$EVENTS" --days 30 2>/dev/null
end=$(date +%s.%N)
ch=$(echo "$end - $start" | bc -l)

"$E2E_PYTHON" - "$TMP" "$EVENTS" "$ch" <<'PY'
import sys, time, duckdb, os
tmp, events, ch = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
con = duckdb.connect()
con.execute("SET threads = %d" % os.cpu_count())
t = time.time()
con.execute(f"""
COPY (
  SELECT TIMESTAMPTZ '2026-10-01 00:00:00+00' + to_microseconds((i % (30 * 86400000000))::BIGINT) AS event_time,
         (['view','view','view','cart','purchase','remove_from_cart'])[1 + (i % 6)] AS event_type,
         1000000 + (random() * 25000)::BIGINT AS product_id,
         2053013552226107603 + (random() * 40)::BIGINT AS category_id,
         CASE WHEN random() < 0.28 THEN NULL ELSE 'electronics.smartphone' END AS category_code,
         CASE WHEN random() < 0.13 THEN NULL ELSE 'samsung' END AS brand,
         round(random() * 500, 2) AS price,
         512000000 + (random() * 1000000)::BIGINT AS user_id,
         uuid()::VARCHAR AS user_session,
         strftime(TIMESTAMPTZ '2026-10-01 00:00:00+00' + to_microseconds((i % (30 * 86400000000))::BIGINT), '%Y-%m-%d') AS date
  FROM range({events}) t(i)
) TO '{tmp}/duckdb' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date))
""")
dk = time.time() - t
print(f"events: {events}")
print(f"carthouse generate: {ch:.2f} s, {events / ch / 1e6:.2f} M events/s")
print(f"duckdb COPY TO parquet: {dk:.2f} s, {events / dk / 1e6:.2f} M events/s")
print(f"ratio carthouse/duckdb time: {ch / dk:.2f}")
PY
