"""The real `psql` client against carthouse: queries and the backslash commands people type."""

from __future__ import annotations

import shutil
import subprocess

import pytest

import e2e_util as u

PSQL = shutil.which("psql")
pytestmark = pytest.mark.skipif(PSQL is None, reason="psql not installed (run tests/e2e/install-deps.sh)")


def psql(server, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    cmd = [PSQL, "-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(server.port),
           "-U", "carthouse", "-d", "carthouse", *args]
    env = {"PATH": "/usr/bin:/bin", "PGCONNECT_TIMEOUT": "10", "PGSSLMODE": "disable",
           "PAGER": "cat", "PSQL_PAGER": "cat", "LC_ALL": "C.UTF-8", "PGTZ": "UTC"}
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"psql {' '.join(args)} hung for {timeout} s\nstdout: {e.stdout}\nstderr: {e.stderr}\n"
                    f"{server.describe()}", pytrace=False)


def ok(server, *args: str) -> str:
    cp = psql(server, *args)
    assert cp.returncode == 0, (
        f"psql {' '.join(args)} exited {cp.returncode}\nstdout:\n{cp.stdout}\nstderr:\n{cp.stderr}\n"
        f"server stderr tail:\n{server.stderr_tail(30)}"
    )
    return cp.stdout


def table_cells(output: str) -> list[list[str]]:
    """Rows of an aligned psql table as lists of stripped cells (header included)."""
    rows = []
    for line in output.splitlines():
        if "|" in line:
            rows.append([c.strip() for c in line.split("|")])
    return rows


def test_query(server, duck):
    out = ok(server, "-At", "-c", "select count(*) from events")
    assert out.strip() == str(u.EVENTS)

    out = ok(server, "-At", "-F", ",", "-c",
             "select event_type, count(*) from events group by event_type order by event_type")
    got = [tuple(line.split(",")) for line in out.strip().splitlines()]
    want = duck.execute(
        "select event_type, count(*) from events group by event_type order by event_type").fetchall()
    assert got == [(t, str(c)) for t, c in want]


def test_aligned_output_and_nulls(server):
    out = ok(server, "-c", "select 1 as one, 'x' as letter, cast(null as bigint) as nothing")
    cells = table_cells(out)
    assert cells[0] == ["one", "letter", "nothing"], out
    assert cells[1] == ["1", "x", ""], out
    assert "(1 row)" in out


def test_dt_lists_events(server):
    out = ok(server, "-c", r"\dt")
    names = [row[1] for row in table_cells(out) if len(row) >= 3]
    assert "events" in names, out


def test_d_events_shows_columns_and_types(server):
    out = ok(server, "-c", r"\d events")
    assert out.strip() and "events" in out.splitlines()[0], out
    cols = {}
    for row in table_cells(out):
        if len(row) >= 2 and row[0] and row[0] != "Column":
            cols[row[0]] = row[1]
    for name, typ in u.EVENT_PG_TYPES.items():
        assert name in cols, f"column {name} missing from \\d events:\n{out}"
        assert cols[name] == typ, f"column {name}: type {cols[name]!r}, expected {typ!r}\n{out}"


def test_list_databases(server):
    out = ok(server, "-c", r"\l")
    cells = table_cells(out)
    assert cells and cells[0][0] == "Name", out
    assert "carthouse" in [row[0] for row in cells[1:]], out


def test_error_exits_nonzero_and_server_keeps_serving(server):
    cp = psql(server, "-c", "selec 1 frm nowhere")
    assert cp.returncode != 0, f"bad SQL should fail: {cp.stdout}{cp.stderr}"
    assert "ERROR" in cp.stderr, cp.stderr

    cp = psql(server, "-c", "select * from no_such_table_xyz")
    assert cp.returncode != 0
    assert "ERROR" in cp.stderr and "no_such_table_xyz" in cp.stderr, cp.stderr

    # ON_ERROR_STOP: the statement after the failing one must not run.
    cp = psql(server, "-At", "-c", "select 41+1 as a", "-c", "selec oops", "-c", "select 'after' as b")
    assert cp.returncode != 0
    assert "42" in cp.stdout and "after" not in cp.stdout, cp.stdout

    out = ok(server, "-At", "-c", "select 1 + 1")
    assert out.strip() == "2"
    server.assert_alive()


def test_multiple_statements_in_one_command(server):
    # psql -c with several statements sends them in ONE simple-protocol Query message.
    out = ok(server, "-At", "-c", "select 1; select 2")
    assert out.split() == ["2"] or out.split() == ["1", "2"], out


def test_script_from_stdin(server):
    cmd = [PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-h", "127.0.0.1", "-p", str(server.port),
           "-U", "carthouse", "-d", "carthouse"]
    script = (
        "\\set pid 1\n"
        "select count(*) > 0 from events;\n"
        "select min(price) >= 0 from events;\n"
        "\\echo done\n"
    )
    cp = subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=60,
                        env={"PATH": "/usr/bin:/bin", "PGCONNECT_TIMEOUT": "10", "PGSSLMODE": "disable"})
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.split() == ["t", "t", "done"], cp.stdout
