#!/usr/bin/env bash
# The test command of the README: builds carthouse, runs the Rust tests (unit, integration,
# sqllogictest), then the end-to-end suite with real clients (psql, psycopg, SQLAlchemy, pgjdbc,
# psqlODBC; DuckDB as the reference; moto as the S3 server). Installs what the end-to-end suite
# needs (Debian packages, a Python venv) on first run.
#
#   bash scripts/test.sh              everything
#   bash scripts/test.sh --rust-only  skip the end-to-end suite
#   E2E_ARGS="-k psql" bash scripts/test.sh   pass arguments to pytest
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

echo "==> cargo build"
cargo build --locked
echo "==> cargo test"
cargo test --locked

if [ "${1:-}" = "--rust-only" ]; then
    exit 0
fi
echo "==> end-to-end suite (real binary, real clients)"
# shellcheck disable=SC2086
CARTHOUSE_BIN="$TARGET/debug/carthouse" bash tests/e2e/run.sh ${E2E_ARGS:-}
