"""Crash safety of live-table ingest.

Three writer threads POST NDJSON batches (1..500 rows, unique ids) to /v1/ingest while the
server is SIGKILLed at a random moment (0.5-2.5 s into the cycle). After a restart on the same
data dir:
  - every acknowledged (200) row is present exactly once;
  - no id appears twice;
  - every request that was in flight at the kill is all-or-nothing;
  - requests that were refused or rejected left nothing;
  - nothing else is present, and every row holds exactly the values that were sent.
Repeated CRASH_CYCLES times (default 8) on the same table, accumulating what must be there.
[live] flush_interval_ms = 300, so flushes to Parquet and WAL truncation happen during the run
(the test checks that Parquet files did appear).
"""

from __future__ import annotations

import collections
import datetime as dt
import http.client
import itertools
import json
import os
import random
import threading
import time

import pytest

import e2e_util as u

CYCLES = int(os.environ.get("CRASH_CYCLES", "8"))
WRITERS = 3
TABLE = "crash_t"
BASE = dt.datetime(2026, 10, 2)
REQUEST_TIMEOUT_S = 30


def row_values(i: int, writer: int) -> tuple:
    """(ts, writer, payload) of id i; ts spread over 2026-10-02 .. 2026-10-05 (4 partitions)."""
    ts = BASE + dt.timedelta(seconds=(i * 7919) % (4 * 86400), microseconds=i % 1_000_000)
    return ts, writer, f"w{writer}-{i}-" + "x" * (i % 37)


def body_for(ids: list[int], writer: int) -> bytes:
    lines = []
    for i in ids:
        ts, w, payload = row_values(i, writer)
        lines.append(json.dumps({"ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "id": i, "writer": w,
                                 "payload": payload}))
    return ("\n".join(lines) + "\n").encode()


class Req:
    __slots__ = ("writer", "ids", "state", "detail")

    def __init__(self, writer: int, ids: list[int]):
        self.writer, self.ids = writer, ids
        # pending -> acked | inflight (outcome unknown) | refused (never sent) | rejected (non-200)
        self.state, self.detail = "pending", ""


def writer_loop(w: int, base_url: str, stop: threading.Event, ids: itertools.count, rnd: random.Random,
                log: list[Req]) -> None:
    while not stop.is_set():
        req = Req(w, [next(ids) for _ in range(rnd.randint(1, 500))])
        log.append(req)
        try:
            r = u.http_request(base_url, "POST", f"/v1/ingest/{TABLE}", body_for(req.ids, w),
                               content_type=u.NDJSON, timeout=REQUEST_TIMEOUT_S)
        except ConnectionRefusedError as e:
            req.state, req.detail = "refused", repr(e)
            time.sleep(0.02)
            continue
        except (OSError, http.client.HTTPException) as e:
            req.state, req.detail = "inflight", repr(e)
            time.sleep(0.02)
            continue
        try:
            ok = r.status == 200 and r.json().get("rows") == len(req.ids)
        except (AssertionError, AttributeError):  # not JSON / not an object
            ok = False
        req.state = "acked" if ok else "rejected"
        if not ok:
            req.detail = r.describe(300)


def read_table(srv: u.CarthouseServer) -> list[tuple]:
    with srv.connect() as c:
        return c.execute(f"select id, ts, writer, payload from {TABLE}").fetchall()


def test_sigkill_during_ingest(server_factory):
    cfg = server_factory.write_config("[live]\nflush_interval_ms = 300\n")
    srv = server_factory.start(config=cfg, name="crash")
    with srv.connect() as c:
        c.execute(f"CREATE TABLE {TABLE} (ts TIMESTAMP NOT NULL, id BIGINT NOT NULL, writer INT, payload TEXT)")

    rnd = random.Random(int(os.environ.get("CRASH_SEED", "20261123")))
    id_counter = itertools.count(1)
    writer_of: dict[int, int] = {}       # every id ever sent -> its writer
    must_have: set[int] = set()          # acknowledged, or in flight and found present
    must_not: set[int] = set()           # refused, rejected, or in flight and found absent
    problems: list[str] = []             # non-fatal oddities reported at the end
    stats = []
    t_start = time.monotonic()

    for cycle in range(1, CYCLES + 1):
        stop = threading.Event()
        logs: list[list[Req]] = [[] for _ in range(WRITERS)]
        threads = [threading.Thread(target=writer_loop, name=f"crash-writer-{w}", daemon=True,
                                    args=(w, srv.http_url, stop, id_counter, random.Random(rnd.random()), logs[w]))
                   for w in range(WRITERS)]
        for th in threads:
            th.start()
        time.sleep(rnd.uniform(0.5, 2.5))
        if srv.proc.poll() is not None:
            pytest.fail(f"cycle {cycle}: server exited on its own (status {srv.proc.returncode}) "
                        f"before the kill\n{srv.describe()}", pytrace=False)
        srv.kill()
        stop.set()
        for th in threads:
            th.join(timeout=REQUEST_TIMEOUT_S + 10)
        assert not any(th.is_alive() for th in threads), f"cycle {cycle}: a writer thread hung after the kill"
        panics = srv.new_panics()
        assert not panics, f"cycle {cycle}: panics before the kill: {panics}\n{srv.describe()}"

        reqs = [r for log in logs for r in log]
        for r in reqs:
            for i in r.ids:
                writer_of[i] = r.writer
        by_state = collections.Counter(r.state for r in reqs)
        assert by_state["pending"] == 0, f"cycle {cycle}: writer left requests pending: {by_state}"
        acked = [r for r in reqs if r.state == "acked"]
        assert acked, f"cycle {cycle}: no request was acknowledged before the kill: {by_state}"
        for r in reqs:
            if r.state == "acked":
                must_have.update(r.ids)
            elif r.state in ("refused", "rejected"):
                must_not.update(r.ids)
            if r.state == "rejected":
                problems.append(f"cycle {cycle}: request of {len(r.ids)} rows rejected while the server "
                                f"was up: {r.detail}")

        srv.start()
        rows = read_table(srv)
        counts = collections.Counter(r[0] for r in rows)
        dups = {i: n for i, n in counts.items() if n > 1}
        assert not dups, (f"cycle {cycle}: {len(dups)} ids present more than once after restart, e.g. "
                          f"{sorted(dups.items())[:10]}")
        present = set(counts)

        missing = must_have - present
        assert not missing, (f"cycle {cycle}: {len(missing)} acknowledged rows lost after SIGKILL + restart, "
                             f"e.g. ids {sorted(missing)[:10]} ({len(must_have)} acknowledged so far)")
        resurrected = must_not & present
        assert not resurrected, (f"cycle {cycle}: {len(resurrected)} rows present that were never applied "
                                 f"(refused/rejected or found absent earlier), e.g. {sorted(resurrected)[:10]}")
        partial = []
        outcome = collections.Counter()
        for r in reqs:
            if r.state != "inflight":
                continue
            n_here = sum(1 for i in r.ids if i in present)
            if n_here == len(r.ids):
                must_have.update(r.ids)
                outcome["applied"] += 1
            elif n_here == 0:
                must_not.update(r.ids)
                outcome["not applied"] += 1
            else:
                partial.append(f"{n_here}/{len(r.ids)} rows ({r.detail})")
        assert not partial, f"cycle {cycle}: in-flight requests applied partially: {partial}"
        unknown = present - must_have
        assert not unknown, f"cycle {cycle}: {len(unknown)} rows nobody sent, e.g. {sorted(unknown)[:10]}"

        wrong = []
        for i, ts, w, payload in rows:
            want = row_values(i, writer_of[i])
            if (u.utc_naive(ts), w, payload) != want:
                wrong.append(f"id {i}: {(ts, w, payload)!r} != {want!r}")
        assert not wrong, f"cycle {cycle}: {len(wrong)} rows with wrong values, e.g. {wrong[:5]}"
        stats.append(f"cycle {cycle}: {dict(by_state)}, in flight: {dict(outcome)}, {len(present)} rows present")

    # A graceful restart after all the crashes changes nothing.
    srv.restart()
    rows = read_table(srv)
    assert len(rows) == len(must_have) and {r[0] for r in rows} == must_have, \
        f"after a final graceful restart: {len(rows)} rows, expected {len(must_have)}"
    parquet = list((srv.data_dir / "live" / TABLE).glob("date=*/*.parquet"))
    assert parquet, (f"no Parquet file under {srv.data_dir / 'live' / TABLE} after the run: flushing "
                     f"(flush_interval_ms = 300) never happened")
    srv.stop()
    elapsed = time.monotonic() - t_start
    print(f"{CYCLES} crash cycles in {elapsed:.1f} s, {len(must_have)} rows, "
          f"{len(parquet)} Parquet files\n" + "\n".join(stats))
    assert not problems, "requests rejected during normal operation:\n" + "\n".join(problems[:10])
