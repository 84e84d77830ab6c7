"""Driver of benches/ingest.sh: the same rows through every ingest path of a live table, then
through PostgreSQL COPY, in one run. Each carthouse path gets a fresh server (and data dir), so
the peak RSS reported is that path's. See the header of ingest.sh for what is measured."""

import http.client
import json
import math
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from datetime import datetime, timedelta, timezone

import adbc_driver_flightsql.dbapi as flight_sql
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
import pyarrow.parquet as pq

BIN = os.environ["BENCH_BIN"]
TMP = os.environ["BENCH_TMP"]
EVENTS_DIR = os.environ["BENCH_EVENTS_DIR"]
EVENTS = int(os.environ["EVENTS"])
BATCH = int(os.environ["BATCH"])
CLIENTS = int(os.environ["CLIENTS"])
LATENCY_SECONDS = float(os.environ["LATENCY_SECONDS"])
PROBE_INTERVAL = float(os.environ["PROBE_INTERVAL_MS"]) / 1000
PHASE_TIMEOUT = float(os.environ["PHASE_TIMEOUT"])
CONFIG = os.environ["BENCH_CONFIG"]
PIDS_FILE = os.environ["BENCH_PIDS"]
PG_PORT = os.environ.get("BENCH_PG_PORT", "")
PHASES = os.environ.get("PHASES", "adbc,doput,http-ndjson,http-arrow,latency,postgres").split(",")

TABLE = "live_events"
CREATE = (
    f"CREATE TABLE {TABLE} (event_time TIMESTAMP NOT NULL, event_type TEXT NOT NULL, "
    "product_id BIGINT NOT NULL, category_id BIGINT NOT NULL, category_code TEXT, brand TEXT, "
    "price DOUBLE NOT NULL, user_id BIGINT NOT NULL, user_session TEXT NOT NULL)"
)
PG_CREATE = CREATE.replace("DOUBLE", "DOUBLE PRECISION")
COLUMNS = ["event_time", "event_type", "product_id", "category_id", "category_code", "brand",
           "price", "user_id", "user_session"]
NDJSON = "application/x-ndjson"
ARROW_STREAM = "application/vnd.apache.arrow.stream"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- servers

class Server:
    """A fresh `carthouse serve` with its own data dir, bounded start, killed on stop."""

    def __init__(self, phase: str):
        self.dir = os.path.join(TMP, phase)
        os.makedirs(self.dir)
        self.out_path = os.path.join(self.dir, "stdout")
        self.err_path = os.path.join(self.dir, "stderr")
        cmd = [BIN, "serve", "--http-addr", "127.0.0.1:0", "--flight-addr", "127.0.0.1:0",
               "--pg-addr", "127.0.0.1:0", "--data-dir", os.path.join(self.dir, "data"),
               "--config", CONFIG]
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        with open(PIDS_FILE, "a") as f:
            f.write(f"{self.proc.pid}\n")
        deadline = time.monotonic() + 60
        while True:
            with open(self.out_path) as f:
                m = re.search(r"carthouse ready: postgres=(\S+):(\d+) flight=(\S+):(\d+) http=(\S+):(\d+)",
                              f.read())
            if m:
                break
            if self.proc.poll() is not None:
                raise BenchError(f"server exited with {self.proc.returncode} before ready:\n{self.stderr_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise BenchError(f"server not ready after 60 s:\n{self.stderr_tail()}")
            time.sleep(0.05)
        self.pg_port, self.flight_port, self.http_port = int(m.group(2)), int(m.group(4)), int(m.group(6))
        self.flight_uri = f"grpc://127.0.0.1:{self.flight_port}"

    def stderr_tail(self, n: int = 3000) -> str:
        try:
            with open(self.err_path, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def status_kb(self, key: str) -> float:
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return int(line.split()[1])
        except OSError:
            pass
        return float("nan")

    def peak_rss_mb(self) -> float:
        return self.status_kb("VmHWM") / 1024

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    # --- helpers over the three front ends

    def http(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=120)

    def adbc(self):
        return flight_sql.connect(self.flight_uri, autocommit=True)

    def create_table(self) -> str:
        """POST /v1/sql; psycopg if that fails. Returns how it was created."""
        conn = self.http()
        try:
            conn.request("POST", "/v1/sql", body=CREATE.encode(),
                         headers={"Content-Type": "text/plain; charset=utf-8"})
            r = conn.getresponse()
            body = r.read()
        finally:
            conn.close()
        if 200 <= r.status < 300:
            return "POST /v1/sql"
        log(f"POST /v1/sql {CREATE!r} -> {r.status} {body[:500]!r}; trying psycopg")
        with psycopg.connect(f"host=127.0.0.1 port={self.pg_port} user=carthouse dbname=carthouse",
                             autocommit=True, connect_timeout=10) as c:
            c.execute(CREATE)
        return "psycopg"

    def table_schema(self) -> pa.Schema:
        with self.adbc() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT {', '.join(COLUMNS)} FROM {TABLE} LIMIT 0")
            return cur.fetch_arrow_table().schema

    def count(self, where: str = "") -> int:
        with self.adbc() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {TABLE} {where}")
            return int(cur.fetchone()[0])


# ---------------------------------------------------------------- data

def load_events() -> pa.Table:
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(EVENTS_DIR) for f in fs if f.endswith(".parquet"))
    if not files:
        raise BenchError(f"no Parquet files under {EVENTS_DIR}")
    t = pa.concat_tables(pq.read_table(f, columns=COLUMNS) for f in files).combine_chunks()
    if t.num_rows != EVENTS:
        raise BenchError(f"generated {t.num_rows} rows, expected {EVENTS}")
    return t


def conform(t: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast the generated columns to the live table's schema (as the server reports it)."""
    cols = []
    for field in schema:
        a = t.column(field.name)
        src = a.type
        if pa.types.is_timestamp(src) and pa.types.is_timestamp(field.type) and (src.tz is None) != (field.type.tz is None):
            # Same instant, UTC wall clock: reinterpret rather than shift.
            a = pc.cast(pc.cast(a, pa.int64()), pa.timestamp(src.unit, field.type.tz))
        cols.append(pc.cast(a, field.type))
    return pa.Table.from_arrays(cols, schema=schema).combine_chunks()


def batches_of(t: pa.Table) -> list:
    return [t.slice(i, BATCH) for i in range(0, t.num_rows, BATCH)]


def _quote_json(a):
    s = pc.replace_substring(pc.replace_substring(a, "\\", "\\\\"), '"', '\\"')
    q = pc.binary_join_element_wise('"', s, '"', "")
    return pc.if_else(pc.is_valid(a), q, "null")


def ndjson_body(b: pa.Table) -> bytes:
    """One NDJSON body, built column-wise by Arrow compute (the generated strings carry no
    control characters; checked by check_encoding)."""
    parts = []
    for i, name in enumerate(COLUMNS):
        col = b.column(name)
        parts.append(("{" if i == 0 else ",") + f'"{name}":')
        if name == "event_time":
            parts.append(pc.binary_join_element_wise('"', pc.strftime(col, format="%Y-%m-%dT%H:%M:%SZ"), '"', ""))
        elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            parts.append(_quote_json(col))
        else:
            parts.append(pc.cast(col, pa.string()))
    parts.append("}\n")
    return concat_strings(pc.binary_join_element_wise(*parts, ""))


def _quote_csv(a):
    q = pc.binary_join_element_wise('"', pc.replace_substring(a, '"', '""'), '"', "")
    return pc.if_else(pc.is_valid(a), q, "")


def csv_body(b: pa.Table) -> bytes:
    parts = []
    for i, name in enumerate(COLUMNS):
        col = b.column(name)
        if i:
            parts.append(",")
        if name == "event_time":
            parts.append(pc.strftime(col, format="%Y-%m-%d %H:%M:%S"))
        elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            parts.append(_quote_csv(col))
        else:
            parts.append(pc.cast(col, pa.string()))
    parts.append("\n")
    return concat_strings(pc.binary_join_element_wise(*parts, ""))


def concat_strings(lines) -> bytes:
    """All values of a string array back to back: its data buffer between the first and last offset."""
    if isinstance(lines, pa.ChunkedArray):
        return b"".join(concat_strings(c) for c in lines.chunks)
    if len(lines) == 0:
        return b""
    _, offsets, data = lines.buffers()
    offsets = memoryview(offsets).cast("i")  # int32 offsets of a (not large) string array
    first, last = offsets[lines.offset], offsets[lines.offset + len(lines)]
    return data.slice(first, last - first).to_pybytes()


def ipc_body(b: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, b.schema) as w:
        w.write_table(b)
    return sink.getvalue().to_pybytes()


def check_encoding(raw: pa.Table) -> None:
    """The vectorised encoders against json/csv parsers on the first rows."""
    import csv
    import io
    for name in COLUMNS:
        col = raw.column(name)
        if pa.types.is_string(col.type) and pc.any(pc.match_substring_regex(col, r"[\x00-\x1f]")).as_py():
            raise BenchError(f"column {name} holds control characters; the NDJSON encoder does not escape them")
    sample = raw.slice(0, 1000)
    rows = sample.to_pylist()
    for line, row in zip(ndjson_body(sample).decode().splitlines(), rows):
        got = json.loads(line)
        want = dict(row, event_time=row["event_time"].strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        if got != want:
            raise BenchError(f"NDJSON encoder: {got} != {want}")
    price = COLUMNS.index("price")
    for rec, row in zip(csv.reader(io.StringIO(csv_body(sample).decode())), rows):
        want = [row["event_time"].strftime("%Y-%m-%d %H:%M:%S.%f")] + \
               ["" if row[c] is None else str(row[c]) for c in COLUMNS[1:]]
        if float(rec[price]) != row["price"]:
            raise BenchError(f"CSV encoder: price {rec[price]} != {row['price']}")
        rec[price] = want[price]
        if rec != want:
            raise BenchError(f"CSV encoder: {rec} != {want}")


# ---------------------------------------------------------------- load driver

def drive(clients: int, items: list, connect, send, close, stop_event=None, cycle=False) -> dict:
    """CLIENTS threads, each with its own connection, take item indices from one shared queue
    (or cycle over them until stop_event). Connections are made before the clock starts.
    Returns rows, wall seconds, errors."""
    work: "queue.Queue[int]" = queue.Queue()
    for i in range(len(items)):
        work.put(i)
    barrier = threading.Barrier(clients + 1)
    rows = [0] * clients
    nbytes = [0] * clients
    errors: list = []
    abort = threading.Event()

    def worker(k: int) -> None:
        conn = None
        try:
            conn = connect()
        except Exception as e:
            errors.append(f"client {k} connect: {e!r}")
            abort.set()
        try:
            barrier.wait(60)
        except threading.BrokenBarrierError:
            return
        try:
            j = k
            while not abort.is_set():
                if cycle:
                    if stop_event.is_set():
                        break
                    i = j % len(items)
                    j += clients
                else:
                    try:
                        i = work.get_nowait()
                    except queue.Empty:
                        break
                rows[k] += send(conn, i)
                nbytes[k] += item_bytes(items[i])
        except Exception as e:
            errors.append(f"client {k}: {e}")
            abort.set()
        finally:
            if conn is not None:
                try:
                    close(conn)
                except Exception:
                    pass

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    try:
        barrier.wait(60)
    except threading.BrokenBarrierError:
        raise BenchError("clients did not connect: " + "; ".join(errors))
    if errors:
        barrier.abort()
        raise BenchError("; ".join(errors))
    t0 = time.perf_counter()
    deadline = time.monotonic() + PHASE_TIMEOUT
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    dt = time.perf_counter() - t0
    if any(t.is_alive() for t in threads):
        abort.set()
        raise BenchError(f"phase still running after PHASE_TIMEOUT={PHASE_TIMEOUT:.0f} s")
    if errors:
        raise BenchError("; ".join(errors[:3]))
    return {"rows": sum(rows), "bytes": sum(nbytes), "seconds": dt}


def item_bytes(item) -> int:
    if isinstance(item, (bytes, bytearray)):
        return len(item)
    return 0


def http_sender(path: str, ctype: str, expected_rows: list):
    def send(conn: http.client.HTTPConnection, i: int) -> int:
        conn.request("POST", path, body=BODIES[i], headers={"Content-Type": ctype})
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise BenchError(f"POST {path} ({ctype}, {len(BODIES[i])} bytes) -> {r.status} {data[:500]!r}")
        try:
            n = json.loads(data)["rows"]
        except Exception:
            raise BenchError(f"POST {path} -> 200 but body is not {{\"rows\": n}}: {data[:500]!r}")
        if n != expected_rows[i]:
            raise BenchError(f"POST {path} -> rows {n}, sent {expected_rows[i]}")
        return n
    return send


BODIES: list = []


# ---------------------------------------------------------------- phases

RESULTS: list = []   # dicts: path, eps, mbps, payload, rss, note / error
LATENCY: dict = {}
SERVER_INFO: dict = {}


def record(path: str, payload: str, **kw) -> None:
    RESULTS.append(dict(path=path, payload=payload, **kw))


def with_server(phase: str, label: str, payload: str, body) -> None:
    if phase not in PHASES:
        return
    log(f"{label}: starting a fresh server")
    srv = None
    try:
        srv = Server(phase)
        how = srv.create_table()
        SERVER_INFO.setdefault("create", how)
        schema = srv.table_schema()
        SERVER_INFO.setdefault("schema", schema)
        res = body(srv, schema)
        if not srv.alive():
            raise BenchError(f"server died during the phase:\n{srv.stderr_tail()}")
        res["rss"] = srv.peak_rss_mb()
        record(label, payload, **res)
        log(f"{label}: {res['rows']:,} rows in {res['seconds']:.2f} s = {res['rows'] / res['seconds']:,.0f} events/s, "
            f"server peak RSS {res['rss']:.0f} MB")
    except Exception as e:
        msg = str(e) if isinstance(e, BenchError) else f"{e!r}\n{traceback.format_exc()}"
        if srv is not None and not srv.alive():
            msg += f"\nserver exited ({srv.proc.returncode}):\n{srv.stderr_tail()}"
        log(f"{label}: FAILED: {msg}")
        record(label, payload, error=summary(msg) or repr(e))
    finally:
        if srv is not None:
            srv.stop()


def summary(msg: str) -> str:
    """One line for the table: the first line, and if it only introduces what follows (the
    server's stderr), the first line there that says error, else the last one."""
    lines = [line.strip() for line in msg.splitlines() if line.strip()]
    if not lines:
        return ""
    first = lines[0]
    if first.endswith(":") and len(lines) > 1:
        rest = lines[1:]
        first += " " + next((line for line in rest if "error" in line.lower()), rest[-1])
    return first.replace("|", "/")[:300]


def verify_count(srv: Server, want: int) -> None:
    got = srv.count()
    if got != want:
        raise BenchError(f"count(*) after ingest is {got}, expected {want}")


def phase_adbc(srv: Server, schema: pa.Schema) -> dict:
    batches = batches_of(conform(RAW, schema))

    def send(conn, i):
        with conn.cursor() as cur:
            n = cur.adbc_ingest(TABLE, batches[i], mode="append")
        if n not in (-1, None) and n != batches[i].num_rows:
            raise BenchError(f"adbc_ingest returned {n}, sent {batches[i].num_rows}")
        return batches[i].num_rows

    res = drive(CLIENTS, batches, srv.adbc, send, lambda c: c.close())
    res["bytes"] = IPC_BYTES
    verify_count(srv, EVENTS)
    return res


def phase_doput(srv: Server, schema: pa.Schema) -> dict:
    batches = batches_of(conform(RAW, schema))
    desc = flight.FlightDescriptor.for_path(TABLE)
    opts = flight.FlightCallOptions(timeout=120)

    def send(client, i):
        b = batches[i]
        writer, reader = client.do_put(desc, b.schema, options=opts)
        writer.write_table(b)
        writer.done_writing()
        reader.read()  # PutResult if the server sends one; None at end of stream
        writer.close()  # raises the server's error status, if any
        return b.num_rows

    res = drive(CLIENTS, batches, lambda: flight.FlightClient(srv.flight_uri), send, lambda c: c.close())
    res["bytes"] = IPC_BYTES
    verify_count(srv, EVENTS)
    return res


def phase_http(ctype: str):
    def run(srv: Server, schema: pa.Schema) -> dict:
        send = http_sender(f"/v1/ingest/{TABLE}", ctype, BATCH_ROWS)
        res = drive(CLIENTS, BODIES, srv.http, send, lambda c: c.close())
        verify_count(srv, EVENTS)
        return res
    return run


def probe_row(n: int) -> tuple:
    now = datetime.now(timezone.utc)
    body = (json.dumps({"event_time": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "event_type": "view", "product_id": 1, "category_id": 1,
                        "category_code": None, "brand": None, "price": 1.0, "user_id": 1,
                        "user_session": f"probe-{n}"}) + "\n").encode()
    return body, now


def pct(xs: list, q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def phase_latency(srv: Server, schema: pa.Schema) -> dict:
    stop = threading.Event()
    acks, visible, first_try, queries, lost = [], [], [], [], []
    probe_errors: list = []
    probes_acked = [0]

    def prober() -> None:
        hc = srv.http()
        try:
            with srv.adbc() as conn, conn.cursor() as cur:
                n = 0
                next_at = time.monotonic()
                while not stop.is_set():
                    n += 1
                    body, probe_time = probe_row(n)
                    t0 = time.perf_counter()
                    hc.request("POST", f"/v1/ingest/{TABLE}", body=body, headers={"Content-Type": NDJSON})
                    r = hc.getresponse()
                    data = r.read()
                    t_ack = time.perf_counter()
                    if r.status != 200:
                        raise BenchError(f"probe POST {body!r} -> {r.status} {data[:300]!r}")
                    probes_acked[0] += 1
                    acks.append(t_ack - t0)
                    # What a live dashboard asks: the last seconds. The time predicate lets the
                    # server skip buffered batches and files outside the range.
                    since = (probe_time - timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
                    sql = (f"SELECT count(*) FROM {TABLE} WHERE event_time >= TIMESTAMP '{since}' "
                           f"AND user_session = 'probe-{n}'")
                    tries = 0
                    while True:
                        q0 = time.perf_counter()
                        cur.execute(sql)
                        c = int(cur.fetchone()[0])
                        t_vis = time.perf_counter()
                        queries.append(t_vis - q0)
                        tries += 1
                        if c == 1:
                            visible.append(t_vis - t_ack)
                            first_try.append(tries == 1)
                            break
                        if c > 1:
                            raise BenchError(f"probe-{n} counted {c} times")
                        if t_vis - t_ack > 10:
                            lost.append(n)
                            first_try.append(False)
                            break
                        time.sleep(0.001)
                    next_at += PROBE_INTERVAL
                    time.sleep(max(0.0, next_at - time.monotonic()))
                    next_at = max(next_at, time.monotonic())
        except Exception as e:
            probe_errors.append(str(e))
        finally:
            hc.close()

    send = http_sender(f"/v1/ingest/{TABLE}", NDJSON, BATCH_ROWS)
    timer = threading.Timer(LATENCY_SECONDS, stop.set)
    probe_thread = threading.Thread(target=prober, daemon=True)
    probe_thread.start()
    timer.start()
    try:
        res = drive(CLIENTS, BODIES, srv.http, send, lambda c: c.close(), stop_event=stop, cycle=True)
    finally:
        stop.set()
        timer.cancel()
        probe_thread.join(30)
    if probe_errors:
        raise BenchError("probe: " + probe_errors[0])
    if not acks:
        raise BenchError("no probe was acknowledged")
    verify_count(srv, res["rows"] + probes_acked[0])
    ms = lambda xs, q: pct(xs, q) * 1000
    LATENCY.update(
        probes=len(acks), lost=len(lost), first_try=sum(first_try) / len(first_try),
        ack=(ms(acks, .5), ms(acks, .99), max(acks) * 1000),
        vis=(ms(visible, .5), ms(visible, .99), max(visible) * 1000 if visible else float("nan")),
        query=(ms(queries, .5), ms(queries, .99), max(queries) * 1000),
        load_eps=res["rows"] / res["seconds"], seconds=res["seconds"],
    )
    return res


def phase_postgres() -> None:
    if "postgres" not in PHASES:
        return
    label = "PostgreSQL 15 COPY (CSV)"
    if not PG_PORT:
        record(label, "CSV bytes", error="PostgreSQL not started (see ingest.sh output)")
        return
    log(f"{label}: encoding CSV")
    global BODIES
    BODIES = [csv_body(b) for b in batches_of(RAW)]
    dsn = f"host=127.0.0.1 port={PG_PORT} user=postgres dbname=postgres"
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as c:
            c.execute(f"DROP TABLE IF EXISTS {TABLE}")
            c.execute(PG_CREATE)
            SERVER_INFO["pg"] = {k: c.execute(f"SHOW {k}").fetchone()[0] for k in
                                 ("server_version", "fsync", "synchronous_commit", "wal_sync_method",
                                  "full_page_writes", "shared_buffers", "max_wal_size")}

        def send(conn, i):
            # autocommit: each COPY is its own transaction, committed (WAL flushed) before it returns
            with conn.cursor() as cur, cur.copy(f"COPY {TABLE} FROM STDIN (FORMAT csv)") as cp:
                cp.write(BODIES[i])
            return BATCH_ROWS[i]

        log(f"{label}: loading")
        res = drive(CLIENTS, BODIES, lambda: psycopg.connect(dsn, autocommit=True, connect_timeout=10),
                    send, lambda c: c.close())
        with psycopg.connect(dsn, autocommit=True) as c:
            got = c.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
        if got != EVENTS:
            raise BenchError(f"count(*) after COPY is {got}, expected {EVENTS}")
        res["rss"] = float("nan")
        record(label, "CSV bytes", **res)
        log(f"{label}: {res['rows']:,} rows in {res['seconds']:.2f} s = {res['rows'] / res['seconds']:,.0f} events/s")
    except Exception as e:
        log(f"{label}: FAILED: {e!r}")
        record(label, "CSV bytes", error=summary(str(e)) or repr(e))
    finally:
        BODIES = []


# ---------------------------------------------------------------- main

def fmt_rate(x: float) -> str:
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.0f} k"


def main() -> int:
    global RAW, BODIES, BATCH_ROWS, IPC_BYTES
    log(f"loading {EVENTS:,} generated events")
    RAW = load_events()
    check_encoding(RAW)
    BATCH_ROWS = [b.num_rows for b in batches_of(RAW)]
    IPC_BYTES = 0

    # Flight paths: the Arrow bytes are those of the HTTP Arrow bodies (same batches, same schema).
    schema_probe = None
    if {"adbc", "doput", "http-arrow"} & set(PHASES):
        srv = Server("schema")
        try:
            SERVER_INFO["create"] = srv.create_table()
            schema_probe = srv.table_schema()
            SERVER_INFO["schema"] = schema_probe
        finally:
            srv.stop()
        log("encoding Arrow IPC bodies")
        ipc_bodies = [ipc_body(b) for b in batches_of(conform(RAW, schema_probe))]
        IPC_BYTES = sum(len(b) for b in ipc_bodies)
    with_server("adbc", "Flight SQL bulk ingest (ADBC adbc_ingest)", "Arrow IPC bytes", phase_adbc)
    with_server("doput", "Flight DoPut (pyarrow.flight)", "Arrow IPC bytes", phase_doput)
    if "http-arrow" in PHASES:
        BODIES = ipc_bodies
        with_server("http-arrow", "HTTP POST Arrow IPC stream", "Arrow IPC bytes", phase_http(ARROW_STREAM))
    if schema_probe is not None:
        del ipc_bodies
    BODIES = []

    if {"http-ndjson", "latency"} & set(PHASES):
        log("encoding NDJSON bodies")
        t = time.perf_counter()
        BODIES = [ndjson_body(b) for b in batches_of(RAW)]
        log(f"NDJSON: {sum(map(len, BODIES)) / 1e6:.0f} MB in {time.perf_counter() - t:.1f} s")
    with_server("http-ndjson", "HTTP POST NDJSON", "NDJSON bytes", phase_http(NDJSON))
    with_server("latency", f"HTTP NDJSON under probe ({LATENCY_SECONDS:.0f} s sustained)", "NDJSON bytes", phase_latency)
    BODIES = []

    phase_postgres()

    # ---------------------------------------------------------------- report
    pg = next((r for r in RESULTS if r["path"].startswith("PostgreSQL") and "error" not in r), None)
    pg_eps = pg["rows"] / pg["seconds"] if pg else None
    print()
    print(f"events: {EVENTS:,} (carthouse generate, 1 day), batch: {BATCH:,} rows, clients: {CLIENTS}, "
          f"cores: {os.cpu_count()}, binary: {BIN}")
    with open(CONFIG) as f:
        print("server config (" + CONFIG + "; [live] keys not set here are at the server's defaults):\n" +
              "".join("    " + line for line in f))
    if "schema" in SERVER_INFO:
        print("live table created via " + SERVER_INFO["create"] + "; schema as the server reports it: " +
              ", ".join(f"{f.name} {f.type}{'' if f.nullable else ' not null'}" for f in SERVER_INFO["schema"]))
    if "pg" in SERVER_INFO:
        print("PostgreSQL: " + ", ".join(f"{k}={v}" for k, v in SERVER_INFO["pg"].items()))
    print()
    print("| path | rows | time | events/s | MB/s (payload) | vs PostgreSQL COPY (events/s) | server peak RSS |")
    print("|---|---|---|---|---|---|---|")
    failed = 0
    for r in RESULTS:
        if "error" in r:
            failed += 1
            print(f"| {r['path']} | FAILED: {r['error']} | | | | | |")
            continue
        eps = r["rows"] / r["seconds"]
        mbps = r["bytes"] / r["seconds"] / 1e6
        ratio = f"{eps / pg_eps:.2f}x" if pg_eps else "n/a"
        rss = "n/a" if math.isnan(r["rss"]) else f"{r['rss']:.0f} MB"
        print(f"| {r['path']} | {r['rows']:,} | {r['seconds']:.2f} s | {fmt_rate(eps)} | "
              f"{mbps:.1f} ({r['payload']}) | {ratio} | {rss} |")
    if LATENCY:
        L = LATENCY
        print()
        print(f"Ack-to-visible while ingesting NDJSON ({CLIENTS} clients, {L['load_eps']:,.0f} events/s sustained "
              f"over {L['seconds']:.1f} s): {L['probes']} probes every {PROBE_INTERVAL * 1000:.0f} ms, "
              f"one row each by POST; then SELECT count(*) ... WHERE event_time >= <probe time - 1 s> AND user_session = 'probe-n' over one ADBC "
              f"connection until it returns 1.")
        print()
        print("| measure | p50 | p99 | max |")
        print("|---|---|---|---|")
        print("| ack (POST -> 200) | %.1f ms | %.1f ms | %.1f ms |" % L["ack"])
        print("| visible after ack (ack -> query returning 1) | %.1f ms | %.1f ms | %.1f ms |" % L["vis"])
        print("| one probe query | %.1f ms | %.1f ms | %.1f ms |" % L["query"])
        print()
        print(f"seen by the first query after the ack: {L['first_try'] * 100:.1f}% of probes; "
              f"not visible after 10 s: {L['lost']}")
        if L["first_try"] < 1 or L["lost"]:
            failed += 1
            print("FAIL: a 200 must mean visible to the next query")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
