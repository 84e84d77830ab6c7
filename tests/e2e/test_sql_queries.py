"""The business queries in sql/*.sql give the same answer in carthouse and in DuckDB.

Every file in sql/ is one commented SELECT over table `events`. Each is run
  * through psycopg 3 against the running carthouse server (fixture `pg_dsn`), and
  * in-process in DuckDB over the same hive-partitioned Parquet files (fixture `events_dir`),
and the two results must match exactly: same column names, same row count, same values in
the same order (every query has a total ORDER BY). Floats are compared with
math.isclose(rel_tol=1e-9, abs_tol=1e-9) (the queries round() them), Decimal is compared as
a number, timestamps as UTC instants. Every query must return at least one row, so an empty
table or a broken filter cannot pass by accident.

A second, server-less test checks the shape of each file (header comment, one statement
ending with `;`, a total ORDER BY, no use of the partition column `date`, no approximate
functions), so new queries keep to the rules that make the comparison meaningful.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from pathlib import Path

import pytest

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
SQL_FILES = sorted(SQL_DIR.glob("*.sql"))

REL_TOL = 1e-9
ABS_TOL = 1e-9


def _file_id(path: Path) -> str:
    return path.stem


def test_sql_dir_has_queries():
    assert SQL_FILES, f"no *.sql files in {SQL_DIR}"


# --------------------------------------------------------------------------- normalisation

def _norm(v):
    """Bring a value from either engine to a comparable Python value."""
    if isinstance(v, decimal.Decimal):
        # HUGEINT sums in DuckDB and NUMERIC over the wire come back as Decimal.
        if v == v.to_integral_value() and abs(v) < 2**63:
            return int(v)
        return float(v)
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.timezone.utc)
        return v.astimezone(dt.timezone.utc)
    return v


def _equal(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(a) or math.isinf(b):
            return a == b
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return a == b


# --------------------------------------------------------------------------- engines

def _run_carthouse(pg_dsn: str, sql: str):
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.execute(sql)
            assert cur.description is not None, "carthouse returned no result set"
            columns = [d.name for d in cur.description]
            rows = [tuple(_norm(v) for v in r) for r in cur.fetchall()]
    return columns, rows


def _run_duckdb(events_dir: Path, sql: str):
    duckdb = pytest.importorskip("duckdb")
    pytest.importorskip("pyarrow")
    con = duckdb.connect()
    try:
        # Timestamps are TIMESTAMPTZ; render and truncate them in UTC like carthouse does.
        con.execute("SET TimeZone = 'UTC'")
        files = str(Path(events_dir) / "*" / "*.parquet")
        con.execute(
            "CREATE VIEW events AS SELECT * "
            f"FROM read_parquet('{files}', hive_partitioning = true)"
        )
        rel = con.sql(sql)
        # Fetch through Arrow: DuckDB's fetchall() needs pytz for TIMESTAMPTZ values.
        table = rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()
        if hasattr(table, "read_all"):  # DuckDB versions where .arrow() returns a reader
            table = table.read_all()
        columns = list(table.column_names)
        rows = [tuple(_norm(r[c]) for c in columns) for r in table.to_pylist()]
    finally:
        con.close()
    return columns, rows


def _show(rows, n=5) -> str:
    return "\n".join(f"    {r!r}" for r in rows[:n]) or "    (none)"


# --------------------------------------------------------------------------- tests

@pytest.mark.parametrize("sql_file", SQL_FILES, ids=_file_id)
def test_query_matches_duckdb(sql_file: Path, pg_dsn: str, events_dir):
    sql = sql_file.read_text()
    name = sql_file.name

    expected_cols, expected = _run_duckdb(events_dir, sql)
    actual_cols, actual = _run_carthouse(pg_dsn, sql)

    assert expected, f"{name}: DuckDB returned no rows, the query checks nothing"
    assert actual, f"{name}: carthouse returned no rows (DuckDB returned {len(expected)})"
    assert actual_cols == expected_cols, (
        f"{name}: column names differ\n  carthouse: {actual_cols}\n  duckdb:    {expected_cols}"
    )
    assert len(actual) == len(expected), (
        f"{name}: row count {len(actual)} (carthouse) != {len(expected)} (duckdb)\n"
        f"  carthouse first rows:\n{_show(actual)}\n  duckdb first rows:\n{_show(expected)}"
    )
    for i, (ra, re_) in enumerate(zip(actual, expected)):
        assert len(ra) == len(re_), f"{name}: row {i} has {len(ra)} columns, expected {len(re_)}"
        for col, a, b in zip(expected_cols, ra, re_):
            assert _equal(a, b), (
                f"{name}: row {i} column {col!r}: carthouse {a!r} != duckdb {b!r}\n"
                f"  carthouse row: {ra!r}\n  duckdb row:    {re_!r}"
            )


_APPROX = re.compile(r"\b(approx_\w+|reservoir_quantile)\s*\(", re.I)


def _strip_comments_and_strings(sql: str) -> str:
    # One left-to-right pass, so an apostrophe inside a comment does not open a string.
    return re.sub(r"--[^\n]*|'(?:[^']|'')*'",
                  lambda m: "" if m.group().startswith("--") else "''", sql)


@pytest.mark.parametrize("sql_file", SQL_FILES, ids=_file_id)
def test_query_file_shape(sql_file: Path):
    text = sql_file.read_text()
    assert re.match(r"\d\d_[a-z0-9_]+\.sql$", sql_file.name), "name like 01_some_question.sql"
    assert text.lstrip().startswith("--"), "file must start with a header comment"
    code = _strip_comments_and_strings(text).strip()
    assert code.endswith(";"), "the statement must end with ';'"
    assert code.count(";") == 1, "exactly one statement per file"
    assert re.match(r"(?is)^(with|select)\b", code), "the statement must be a SELECT (CTEs allowed)"
    top = code
    while re.search(r"\([^()]*\)", top):  # drop CTE bodies, subqueries, call arguments
        top = re.sub(r"\([^()]*\)", "", top)
    assert re.search(r"(?i)\border\s+by\b", top), "the outermost SELECT needs an ORDER BY"
    assert not re.search(r"(?i)(?<!\w)(?<!as\s)date(?![\w(])", code), \
        "do not use the hive partition column `date` (TEXT in carthouse, DATE in DuckDB)"
    assert not _APPROX.search(code), "approximate functions cannot be compared exactly"
    assert not re.search(r"(?i)\bqualify\b", code), "QUALIFY does not exist in DataFusion"
