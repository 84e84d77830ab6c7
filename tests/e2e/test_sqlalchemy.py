"""SQLAlchemy 2 (psycopg dialect) against carthouse: what an ORM / BI tool does on connect."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

import e2e_util as u


@pytest.fixture(scope="module")
def engine(server):
    eng = sa.create_engine(
        f"postgresql+psycopg://carthouse@127.0.0.1:{server.port}/carthouse",
        connect_args={"connect_timeout": 10, "sslmode": "disable"},
        pool_pre_ping=True,
    )
    yield eng
    eng.dispose()


def test_connect_and_query(engine, duck):
    with engine.connect() as c:
        assert c.execute(sa.text("select count(*) from events")).scalar_one() == u.EVENTS
        rows = c.execute(sa.text(
            "select event_type, count(*) as n from events group by event_type order by event_type"
        )).all()
    want = duck.execute(
        "select event_type, count(*) as n from events group by event_type order by event_type").fetchall()
    assert [tuple(r) for r in rows] == want


def test_text_query_with_bound_params(engine, duck):
    pid = duck.execute("select product_id from events group by 1 order by count(*) desc, 1 limit 1").fetchone()[0]
    sql = ("select count(*) as n, sum(price) as total from events "
           "where product_id = :pid and price > :min_price and event_type = :etype "
           "and event_time >= :since")
    params = {"pid": pid, "min_price": 1.0, "etype": "view",
              "since": dt.datetime(2026, 10, 2, tzinfo=dt.timezone.utc)}
    with engine.connect() as c:
        row = c.execute(sa.text(sql), params).one()
    want = duck.execute(
        sql.replace(":pid", "?").replace(":min_price", "?").replace(":etype", "?").replace(":since", "?"),
        [params["pid"], params["min_price"], params["etype"], params["since"]],
    ).fetchone()
    assert row.n == want[0] and row.n > 0
    assert u.values_equal(row.total, want[1])


def test_inspector_tables(engine):
    insp = sa.inspect(engine)
    names = insp.get_table_names()
    assert "events" in names, names
    assert insp.has_table("events")
    assert not insp.has_table("no_such_table_e2e")


# SQLAlchemy's column reflection query puts correlated scalar subqueries inside CASE branches;
# DataFusion 55 cannot plan those ("Physical plan does not support logical expression
# ScalarSubquery"). strict=True: this test starts failing the day it works, so the marker goes.
@pytest.mark.xfail(strict=True, reason="DataFusion 55: scalar subquery inside CASE (SQLAlchemy get_columns)")
def test_inspector_columns(engine):
    insp = sa.inspect(engine)
    cols = insp.get_columns("events")
    by_name = {c["name"]: c for c in cols}
    assert [c["name"] for c in cols] == u.EVENT_COLUMNS + [u.PARTITION_COLUMN], cols
    assert isinstance(by_name["product_id"]["type"], sa.BigInteger)
    assert isinstance(by_name["user_id"]["type"], sa.BigInteger)
    assert isinstance(by_name["price"]["type"], sa.Float)
    assert isinstance(by_name["brand"]["type"], sa.Text)
    ts = by_name["event_time"]["type"]
    assert isinstance(ts, sa.DateTime) and ts.timezone is True, repr(ts)


def test_core_select_on_declared_table(engine, duck):
    meta = sa.MetaData()
    events = sa.Table(
        "events", meta,
        sa.Column("brand", sa.Text), sa.Column("price", sa.Float), sa.Column("product_id", sa.BigInteger),
    )
    q = (sa.select(events.c.brand, sa.func.count().label("n"))
         .where(events.c.brand.is_not(None), events.c.price > 50)
         .group_by(events.c.brand)
         .order_by(sa.desc("n"), events.c.brand)
         .limit(5))
    with engine.connect() as c:
        got = [tuple(r) for r in c.execute(q).all()]
    want = duck.execute(
        "select brand, count(*) as n from events where brand is not null and price > 50 "
        "group by brand order by n desc, brand limit 5").fetchall()
    assert got == want and got


def test_error_then_pool_reuse(engine):
    with engine.connect() as c:
        with pytest.raises(sa.exc.ProgrammingError) as ei:
            c.execute(sa.text("select * from no_such_table_e2e"))
        assert getattr(ei.value.orig, "sqlstate", None) == "42P01"
        c.rollback()
        assert c.execute(sa.text("select 1")).scalar_one() == 1
    for _ in range(3):
        with engine.connect() as c:
            assert c.execute(sa.text("select 2")).scalar_one() == 2
