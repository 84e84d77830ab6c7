#!/usr/bin/env bash
# Streaming a large result to Python: Arrow Flight SQL (ADBC driver) versus the Postgres
# protocol (psycopg 3, streaming with cursor.stream), same server, same query, same run.
# Reports rows/s, MB/s (Arrow bytes of the result) and the server's peak RSS.
#
#   cargo build --release && bash benches/stream.sh            # 10M rows
#   ROWS=2000000 bash benches/stream.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROWS="${ROWS:-10000000}"
BIN="${CARTHOUSE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/carthouse}"
source "$ROOT/tests/e2e/install-deps.sh" >/dev/null
TMP="$(mktemp -d)"
cleanup() { [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

"$BIN" generate --out "$TMP/events" --events "$ROWS" --days 30 2>/dev/null
"$BIN" serve --pg-addr 127.0.0.1:0 --flight-addr 127.0.0.1:0 --data-dir "$TMP/data" \
    > "$TMP/out" 2> "$TMP/err" &
PID=$!
for _ in $(seq 1 100); do grep -q ready "$TMP/out" && break; sleep 0.1; done
READY=$(grep ready "$TMP/out")
"$E2E_PYTHON" "$ROOT/benches/stream.py" "$READY" "$PID" "$TMP/events" "$ROWS"
