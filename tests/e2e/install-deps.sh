#!/usr/bin/env bash
# Installs what the end-to-end suite (tests/e2e) needs: real Postgres clients
# (psql, pgjdbc, psqlODBC + unixODBC) and curl (HTTP ingest) from Debian, and a Python venv with
# pytest, psycopg 3, SQLAlchemy, DuckDB, pyarrow, moto (S3 server) and boto3.
#
# Idempotent and non-interactive (CI=true, no stdin, runs as root). Safe to
# source (it exports E2E_VENV and E2E_PYTHON) or to execute.
#
#   E2E_VENV   venv location (default /tmp/carthouse-e2e-venv)

_carthouse_install_deps() {
    set -euo pipefail
    export DEBIAN_FRONTEND=noninteractive

    local apt_pkgs=(postgresql-client libpostgresql-jdbc-java odbc-postgresql unixodbc curl)
    local have_all=1
    command -v psql >/dev/null 2>&1 || have_all=0
    command -v isql >/dev/null 2>&1 || have_all=0
    command -v curl >/dev/null 2>&1 || have_all=0
    command -v javac >/dev/null 2>&1 || have_all=0
    [ -e /usr/share/java/postgresql.jar ] || have_all=0
    if ! find /usr/lib -name psqlodbcw.so -print -quit 2>/dev/null | grep -q .; then
        have_all=0
    fi
    if [ "$have_all" = 0 ]; then
        local sudo=""
        if [ "$(id -u)" != 0 ]; then sudo="sudo -n"; fi
        local extra=()
        command -v javac >/dev/null 2>&1 || extra+=(openjdk-17-jdk-headless)
        echo "install-deps: apt-get install ${apt_pkgs[*]} ${extra[*]:-}" >&2
        $sudo apt-get update -qq </dev/null >/dev/null
        $sudo apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" "${extra[@]}" \
            </dev/null >/dev/null
    fi

    E2E_VENV="${E2E_VENV:-/tmp/carthouse-e2e-venv}"
    export E2E_VENV
    if [ ! -x "$E2E_VENV/bin/python" ]; then
        echo "install-deps: creating venv $E2E_VENV" >&2
        python3 -m venv "$E2E_VENV"
    fi
    export E2E_PYTHON="$E2E_VENV/bin/python"
    if ! "$E2E_PYTHON" -c 'import pytest, pytest_timeout, psycopg, sqlalchemy, duckdb, pyarrow, pytz, moto, boto3, flask_cors, adbc_driver_flightsql' \
            >/dev/null 2>&1 || [ ! -x "$E2E_VENV/bin/moto_server" ]; then
        echo "install-deps: pip install into $E2E_VENV" >&2
        "$E2E_PYTHON" -m pip install -q --disable-pip-version-check \
            pytest pytest-timeout 'psycopg[binary]' sqlalchemy duckdb pyarrow pytz 'moto[server]' boto3 adbc-driver-flightsql adbc-driver-manager \
            </dev/null
    fi
    echo "install-deps: ok (venv $E2E_VENV)" >&2
}

# The work runs in a subshell so that `set -e` and friends never leak into a
# shell that sources this file; the exports are set again here afterwards.
if ( _carthouse_install_deps ); then
    export E2E_VENV="${E2E_VENV:-/tmp/carthouse-e2e-venv}"
    export E2E_PYTHON="$E2E_VENV/bin/python"
    unset -f _carthouse_install_deps
else
    _carthouse_rc=$?
    echo "install-deps: FAILED (exit $_carthouse_rc)" >&2
    unset -f _carthouse_install_deps
    # `return` when sourced, `exit` when executed.
    return "$_carthouse_rc" 2>/dev/null || exit "$_carthouse_rc"
fi
