"""psqlODBC (Debian odbc-postgresql) through unixODBC's `isql` against carthouse.

On connect psqlODBC sends e.g. SET DateStyle = 'ISO', SET extra_float_digits = 2,
show transaction_isolation, select oid, typbasetype from pg_type where typname = 'lo';
statements go through Parse/Bind/Execute (UseServerSidePrepare=1) and are DEALLOCATEd."""

from __future__ import annotations

import datetime as dt
import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import e2e_util as u

ISQL = shutil.which("isql")
_DRIVERS = sorted(glob.glob("/usr/lib/*/odbc/psqlodbcw.so") + glob.glob("/usr/lib/odbc/psqlodbcw.so")
                  + glob.glob("/usr/lib64/psqlodbcw.so") + glob.glob("/usr/local/lib/psqlodbcw.so"))
DRIVER = _DRIVERS[0] if _DRIVERS else None

pytestmark = pytest.mark.skipif(ISQL is None or DRIVER is None,
                                reason="unixODBC isql / psqlodbcw.so missing (run tests/e2e/install-deps.sh)")

ERR_RE = re.compile(r"^\[([0-9A-Z]{5})\]")


@pytest.fixture(scope="module")
def odbc_env(server, tmp_path_factory):
    d: Path = tmp_path_factory.mktemp("odbc")
    (d / "odbcinst.ini").write_text(
        "[PostgreSQL Unicode]\n"
        "Description=psqlODBC Unicode\n"
        f"Driver={DRIVER}\n"
    )
    (d / "odbc.ini").write_text(
        "[carthouse]\n"
        "Driver=PostgreSQL Unicode\n"
        "Servername=127.0.0.1\n"
        f"Port={server.port}\n"
        "Database=carthouse\n"
        "Username=carthouse\n"
        "Password=\n"
        "SSLmode=disable\n"
        "UseServerSidePrepare=1\n"
        "ConnSettings=\n"
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "ODBCSYSINI": str(d),
           "ODBCINI": str(d / "odbc.ini"), "HOME": str(d), "LC_ALL": "C.UTF-8"}
    return env


def isql(odbc_env, server, *statements: str, timeout: float = 120):
    """Run statements (one per line) in ONE isql session. Returns (raw stdout+stderr, blocks)
    where blocks are result tables as lists of rows (header first) and error sqlstates are in
    raw output as [SQLSTATE]... lines."""
    script = "\n".join(statements) + "\n"
    try:
        cp = subprocess.run([ISQL, "-b", "-v", "-d|", "-c", "carthouse"], input=script,
                            capture_output=True, text=True, timeout=timeout, env=odbc_env)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"isql hung\nstdout: {e.stdout}\nstderr: {e.stderr}\n{server.describe()}")
    raw = cp.stdout + cp.stderr
    assert "Could not SQLConnect" not in raw, (
        f"isql could not connect:\n{raw}\nserver stderr tail:\n{server.stderr_tail(30)}")
    return raw, cp.returncode


def rows_of(raw: str) -> list[list[str]]:
    return [ln.split("|") for ln in raw.splitlines() if "|" in ln and not ERR_RE.match(ln)]


def errors_of(raw: str) -> list[str]:
    return [m.group(1) for ln in raw.splitlines() if (m := ERR_RE.match(ln))]


def test_connect_and_count(odbc_env, server):
    raw, rc = isql(odbc_env, server, "select count(*) as n from events")
    assert rc == 0 and not errors_of(raw), raw
    lines = [ln for ln in raw.splitlines() if ln.strip()]
    assert "n" in lines and str(u.EVENTS) in lines, raw


def test_group_by_matches_duckdb(odbc_env, server, duck):
    raw, rc = isql(odbc_env, server,
                   "select brand, count(*) as n from events where brand is not null "
                   "group by brand order by n desc, brand limit 5")
    assert not errors_of(raw), raw
    rows = rows_of(raw)
    assert rows[0] == ["brand", "n"], raw
    want = duck.execute("select brand, count(*) as n from events where brand is not null "
                        "group by brand order by n desc, brand limit 5").fetchall()
    assert [(b, int(n)) for b, n in rows[1:]] == want, raw


def test_types(odbc_env, server):
    raw, rc = isql(odbc_env, server,
                   "select cast(12.34 as decimal(10,2)) as d, cast(7 as bigint) as i, "
                   "cast(0.5 as double precision) as f, true as b, 'tëxt' as t, "
                   "date '2026-10-01' as dd, timestamp '2026-10-01 12:34:56' as ts")
    assert not errors_of(raw), raw
    rows = rows_of(raw)
    assert rows[0] == ["d", "i", "f", "b", "t", "dd", "ts"], raw
    d, i, f, b, t, dd, ts = rows[1]
    assert d == "12.34" and i == "7" and float(f) == 0.5, raw
    assert b in ("1", "t", "true", "True"), raw
    assert t == "tëxt" and dd == "2026-10-01" and ts.startswith("2026-10-01 12:34:56"), raw


def test_min_timestamp(odbc_env, server, duck):
    raw, rc = isql(odbc_env, server, "select min(event_time) as t from events")
    assert not errors_of(raw), raw
    lines = [ln for ln in raw.splitlines() if ln.strip()]
    want = duck.execute("select min(event_time) from events").fetchone()[0]
    want_s = want.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    assert any(ln.startswith(want_s) for ln in lines), f"{want_s} not in\n{raw}"


def test_error_then_same_session_continues(odbc_env, server):
    raw, rc = isql(odbc_env, server,
                   "select * from no_such_table_e2e",
                   "selec broken",
                   "select 40 + 2 as answer")
    assert errors_of(raw)[:2] == ["42P01", "42601"], raw
    lines = [ln for ln in raw.splitlines() if ln.strip()]
    assert "answer" in lines and "42" in lines, raw


def test_catalog_functions(odbc_env, server):
    """isql `help` = SQLTables, `help TABLE` = SQLColumns: psqlODBC's pg_catalog queries."""
    raw, rc = isql(odbc_env, server, "help", "help events")
    assert not errors_of(raw), raw
    rows = rows_of(raw)
    tables_hdr = next(r for r in rows if "TABLE_NAME" in r and "COLUMN_NAME" not in r)
    ti = tables_hdr.index("TABLE_NAME")
    table_names = [r[ti] for r in rows if len(r) == len(tables_hdr) and r is not tables_hdr]
    assert "events" in table_names, raw
    cols_hdr = next(r for r in rows if "COLUMN_NAME" in r)
    ci, ti2 = cols_hdr.index("COLUMN_NAME"), cols_hdr.index("TYPE_NAME")
    cols = {r[ci]: r[ti2] for r in rows if len(r) == len(cols_hdr) and r is not cols_hdr}
    assert list(cols) == u.EVENT_COLUMNS + [u.PARTITION_COLUMN], raw
    assert cols["event_time"] == "timestamptz" and cols["product_id"] == "int8", raw
    assert cols["price"] == "float8" and cols["brand"] in ("text", "varchar"), raw
