"""A large result streams through the extended protocol (psycopg) without the server holding it:
server peak memory stays far below the size of the result."""

from __future__ import annotations


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_extended_protocol_streams_large_result(server_factory):
    srv = server_factory.start(register_events=True, name="streaming")
    pid = srv.proc.pid
    # 2M rows of ~60 bytes of text each: about 120 MB on the wire, more as server-side rows.
    sql = ("select a.user_session, a.category_code, a.price from events a "
           "cross join (select 1 from events limit 10) b")
    with srv.connect() as c:
        c.execute("select 1").fetchall()
        before = _peak_rss_mb(pid)
        rows = sum(1 for _ in c.cursor().stream(sql))
    grown = _peak_rss_mb(pid) - before
    assert rows == 2_000_000
    assert grown < 100, f"server peak RSS grew {grown:.0f} MB while streaming: rows are being buffered"
