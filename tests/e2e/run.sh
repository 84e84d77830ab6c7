#!/usr/bin/env bash
# End-to-end suite: drives the real carthouse binary with real clients (psql, psycopg,
# SQLAlchemy, pgjdbc, psqlODBC, DuckDB as reference, moto as S3).
#
#   CARTHOUSE_BIN=/path/to/carthouse tests/e2e/run.sh [extra pytest args]
#
# Builds nothing: build carthouse first (cargo build) and point CARTHOUSE_BIN at it.
# Exit status is pytest's.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

if [ -z "${CARTHOUSE_BIN:-}" ]; then
    echo "run.sh: CARTHOUSE_BIN is not set (e.g. CARTHOUSE_BIN=\${CARGO_TARGET_DIR:-target}/debug/carthouse)" >&2
    exit 2
fi
if [ ! -x "$CARTHOUSE_BIN" ]; then
    echo "run.sh: CARTHOUSE_BIN=$CARTHOUSE_BIN is not an executable file" >&2
    exit 2
fi
CARTHOUSE_BIN="$(cd "$(dirname "$CARTHOUSE_BIN")" && pwd)/$(basename "$CARTHOUSE_BIN")"
export CARTHOUSE_BIN

# shellcheck source=install-deps.sh
source "$HERE/install-deps.sh" || { echo "run.sh: installing test dependencies failed" >&2; exit 2; }

cd "$ROOT" || exit 2
export PYTHONDONTWRITEBYTECODE=1
# Default target is the whole suite; pass test files / node ids to run a part of it.
targets=(tests/e2e)
for arg in "$@"; do
    case "$arg" in
        tests/*|./tests/*) targets=(); break ;;
    esac
done
# Per-test limit; the session fixtures (generate, server start) count against the first test.
"$E2E_PYTHON" -m pytest "${targets[@]}" -v -p no:cacheprovider \
    --timeout="${E2E_TEST_TIMEOUT:-300}" --timeout-method=signal \
    -o faulthandler_timeout=600 "$@"
rc=$?
exit "$rc"
