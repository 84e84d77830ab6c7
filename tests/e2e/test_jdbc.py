"""pgjdbc (Debian's libpostgresql-jdbc-java) against carthouse via tests/e2e/jdbc/JdbcCheck.java."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import e2e_util as u

HERE = Path(__file__).resolve().parent
JDBC_JAR = Path(os.environ.get("PGJDBC_JAR", "/usr/share/java/postgresql.jar"))

pytestmark = pytest.mark.skipif(
    shutil.which("javac") is None or shutil.which("java") is None or not JDBC_JAR.is_file(),
    reason="javac/java or pgjdbc jar missing (run tests/e2e/install-deps.sh)",
)


@pytest.fixture(scope="module")
def jdbc_classes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("jdbc-classes")
    cp = subprocess.run(
        ["javac", "-d", str(out), "-cp", str(JDBC_JAR), str(HERE / "jdbc" / "JdbcCheck.java")],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )
    assert cp.returncode == 0, f"javac failed:\n{cp.stdout}\n{cp.stderr}"
    return out


@pytest.fixture(scope="module")
def jdbc_run(server, jdbc_classes, duck):
    pids = [r[0] for r in duck.execute(
        "select product_id from events group by 1 order by count(*) desc, 1 limit 3").fetchall()]
    cmd = ["java", "-Duser.timezone=UTC", "-cp", f"{JDBC_JAR}{os.pathsep}{jdbc_classes}", "JdbcCheck",
           str(server.port), *map(str, pids)]
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"JdbcCheck hung\nstdout:\n{e.stdout}\nstderr:\n{e.stderr}\n{server.describe()}")
    lines = cp.stdout.splitlines()
    info = (f"exit {cp.returncode}\nstdout:\n{cp.stdout}\nstderr:\n{cp.stderr[-6000:]}\n"
            f"server stderr tail:\n{server.stderr_tail(40)}")
    return cp.returncode, lines, info


def _lines(lines, tag):
    return [ln.split(" ", 1)[1] if " " in ln else "" for ln in lines if ln.split(" ", 1)[0] == tag]


def test_program_completes(jdbc_run):
    rc, lines, info = jdbc_run
    assert rc == 0 and lines and lines[-1] == "DONE", info


def test_metadata_tables(jdbc_run):
    rc, lines, info = jdbc_run
    assert "events" in _lines(lines, "TABLE"), info


def test_metadata_columns(jdbc_run):
    rc, lines, info = jdbc_run
    cols = {}
    for rest in _lines(lines, "COLUMN"):
        name, type_name, code = rest.split(" ")
        cols[name] = (type_name, int(code))
    assert list(cols) == u.EVENT_COLUMNS + [u.PARTITION_COLUMN], info
    # java.sql.Types: BIGINT=-5, DOUBLE=8, VARCHAR=12, TIMESTAMP=93, TIMESTAMP_WITH_TIMEZONE=2014
    assert cols["product_id"] == ("int8", -5), info
    assert cols["user_id"] == ("int8", -5), info
    assert cols["price"] == ("float8", 8), info
    assert cols["brand"] == ("text", 12), info
    assert cols["event_time"][0] == "timestamptz" and cols["event_time"][1] in (93, 2014), info


def test_plain_statements(jdbc_run, duck):
    rc, lines, info = jdbc_run
    assert _lines(lines, "COUNT") == [str(u.EVENTS)], info
    want = duck.execute("select min(event_time) from events").fetchone()[0]
    got = _lines(lines, "MINTS")
    assert len(got) == 1, info
    # java Instant.toString(), e.g. 2026-10-01T00:00:03.123456Z
    assert dt.datetime.fromisoformat(got[0].replace("Z", "+00:00")) == want, f"{got[0]} != {want}\n{info}"


def test_prepared_statement_seven_runs(jdbc_run, duck):
    rc, lines, info = jdbc_run
    runs = _lines(lines, "PS")
    assert len(runs) == 7, info
    for rest in runs:
        run, pid, n, total = rest.split(" ")
        want = duck.execute(
            "select count(*), sum(price) from events where product_id = ? and price > ? and event_type <> ?",
            [int(pid), 1.0, "remove_from_cart"]).fetchone()
        assert int(n) == want[0] and int(n) > 0, f"run {run}: {rest} vs {want}\n{info}"
        assert u.values_equal(float(total), want[1]), f"run {run}: {rest} vs {want}\n{info}"


def test_types_text_and_binary(jdbc_run):
    rc, lines, info = jdbc_run
    types = _lines(lines, "TYPES")
    # first run: text results; 7th run: server-prepared, pgjdbc asks for binary where it can.
    assert len(types) == 2, info
    expected = "7 9007199254740993 0.5 12.34 true tëxt 2026-10-01 2026-10-01 12:34:56.123456"
    assert types[0] == expected, info
    assert types[1] == expected, info


def test_error_sqlstate_and_recovery(jdbc_run, duck):
    rc, lines, info = jdbc_run
    assert _lines(lines, "ERROR") == ["42P01"], info
    want = duck.execute("select count(*) from events where event_type = 'purchase'").fetchone()[0]
    assert _lines(lines, "AFTER_ERROR") == [str(want)], info
