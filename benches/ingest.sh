#!/usr/bin/env bash
# Ingest into a live table, every path on the same rows in one run, with PostgreSQL COPY as the
# reference. Builds nothing: it uses an existing binary.
#
#   cargo build --release && bash benches/ingest.sh                  # 2M events
#   EVENTS=200000 CLIENTS=4 bash benches/ingest.sh
#
# The rows come from `carthouse generate` (1 day) and are loaded with pyarrow; every body is
# encoded before its clock starts. Each carthouse path gets a fresh server and data dir:
#   1. Flight SQL bulk ingest: ADBC `adbc_ingest(mode="append")`, one call per BATCH rows, from
#      CLIENTS connections; then plain Flight DoPut (pyarrow.flight), one DoPut per BATCH rows.
#   2. HTTP POST /v1/ingest/live_events: NDJSON bodies (RFC 3339 timestamps with Z) and Arrow IPC
#      stream bodies of BATCH rows, CLIENTS threads, each on a keep-alive http.client connection.
#   3. Ack-to-visible: NDJSON ingest sustained for LATENCY_SECONDS while a probe posts one marked
#      row every PROBE_INTERVAL_MS and then queries for it (one ADBC connection) until it is seen.
#   4. PostgreSQL 15 (initdb into a temp dir, default durability: fsync and synchronous_commit on):
#      COPY ... FROM STDIN (FORMAT csv) of the same rows, BATCH rows per COPY (each its own
#      transaction), CLIENTS connections.
# events/s is rows / wall time (first request to last acknowledgement); peak RSS is the
# server's VmHWM at the end of its phase. Client and server share the machine's cores.
#
# Knobs: EVENTS (2000000), BATCH (100000), CLIENTS (2), LATENCY_SECONDS (10),
#   PROBE_INTERVAL_MS (50), FLUSH_INTERVAL_MS (10000, written as [live] flush_interval_ms),
#   LIVE_CONFIG (extra lines for the [live] table of the config), PHASE_TIMEOUT (600 s per phase),
#   PHASES (adbc,doput,http-ndjson,http-arrow,latency,postgres),
#   CARTHOUSE_BIN (default: $CARGO_TARGET_DIR or ./target, release, else debug with a warning).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export EVENTS="${EVENTS:-2000000}" BATCH="${BATCH:-100000}" CLIENTS="${CLIENTS:-2}"
export LATENCY_SECONDS="${LATENCY_SECONDS:-10}" PROBE_INTERVAL_MS="${PROBE_INTERVAL_MS:-50}"
export PHASE_TIMEOUT="${PHASE_TIMEOUT:-600}"
export PHASES="${PHASES:-adbc,doput,http-ndjson,http-arrow,latency,postgres}"
FLUSH_INTERVAL_MS="${FLUSH_INTERVAL_MS:-10000}"

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ -n "${CARTHOUSE_BIN:-}" ]; then
    BIN="$CARTHOUSE_BIN"
elif [ -x "$TARGET/release/carthouse" ]; then
    BIN="$TARGET/release/carthouse"
elif [ -x "$TARGET/debug/carthouse" ]; then
    BIN="$TARGET/debug/carthouse"
    echo "ingest bench: WARNING: no release binary in $TARGET/release; using the DEBUG build," \
         "figures are not comparable" >&2
else
    echo "ingest bench: no carthouse binary in $TARGET/{release,debug}; build one or set CARTHOUSE_BIN" >&2
    exit 2
fi
if ! "$BIN" serve --help 2>/dev/null | grep -q -- '--http-addr'; then
    echo "ingest bench: $BIN has no 'serve --http-addr' (live tables); rebuild it" >&2
    exit 2
fi

source "$ROOT/tests/e2e/install-deps.sh" >/dev/null

TMP="$(mktemp -d)"
PGROOT=""
PG_BIN=""
AS_PG=()
cleanup() {
    local rc=$?
    set +e
    if [ -n "${PY_PID:-}" ] && kill -0 "$PY_PID" 2>/dev/null; then
        kill "$PY_PID" 2>/dev/null
        wait "$PY_PID" 2>/dev/null
    fi
    if [ -s "$TMP/pids" ]; then
        while read -r pid; do kill "$pid" 2>/dev/null; done < "$TMP/pids"
    fi
    if [ -n "$PGROOT" ] && [ -f "$PGROOT/data/postmaster.pid" ]; then
        (cd / && "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PGROOT/data" -m fast -w -t 30 stop >/dev/null 2>&1)
    fi
    rm -rf "$TMP" ${PGROOT:+"$PGROOT"}
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
: > "$TMP/pids"

# ---- PostgreSQL: the reference, in its own temp cluster on a free loopback port.
start_postgres() {
    PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/postgres" ]; then
        echo "ingest bench: apt-get install postgresql" >&2
        local sudo=""
        [ "$(id -u)" != 0 ] && sudo="sudo -n"
        DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq </dev/null >/dev/null
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql \
            </dev/null >/dev/null
        PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    fi
    [ -x "$PG_BIN/postgres" ] || { echo "ingest bench: no postgres binary after install" >&2; return 1; }
    PGROOT="$(mktemp -d)"
    if [ "$(id -u)" = 0 ]; then
        # postgres refuses to run as root: run it as the package's postgres user.
        id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$PGROOT"
        AS_PG=(runuser -u postgres --)
    fi
    (cd / && "${AS_PG[@]}" "$PG_BIN/initdb" -D "$PGROOT/data" -U postgres --auth=trust -E UTF8 \
        --locale=C >"$PGROOT/initdb.log" 2>&1) || { cat "$PGROOT/initdb.log" >&2; return 1; }
    PG_PORT="$("$E2E_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    (cd / && "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/log" -w -t 60 \
        -o "-p $PG_PORT -k $PGROOT -c listen_addresses=127.0.0.1" start >/dev/null) \
        || { cat "$PGROOT/log" >&2; return 1; }
    export BENCH_PG_PORT="$PG_PORT"
}
if [[ ",$PHASES," == *",postgres,"* ]]; then
    start_postgres || echo "ingest bench: PostgreSQL did not start; its row will say so" >&2
fi

# ---- The rows, and the server config every phase uses.
"$BIN" generate --out "$TMP/events" --events "$EVENTS" --days 1 >/dev/null 2>"$TMP/generate.err" \
    || { cat "$TMP/generate.err" >&2; exit 1; }
{
    echo "[live]"
    echo "flush_interval_ms = $FLUSH_INTERVAL_MS"
    if [ -n "${LIVE_CONFIG:-}" ]; then printf '%s\n' "$LIVE_CONFIG"; fi
} > "$TMP/carthouse.toml"

# In the background and waited for, so that a TERM or INT runs the cleanup at once.
BENCH_BIN="$BIN" BENCH_TMP="$TMP" BENCH_EVENTS_DIR="$TMP/events" BENCH_CONFIG="$TMP/carthouse.toml" \
    BENCH_PIDS="$TMP/pids" "$E2E_PYTHON" "$ROOT/benches/ingest.py" &
PY_PID=$!
wait "$PY_PID"
