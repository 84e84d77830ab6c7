"""Helpers shared by the carthouse end-to-end tests (imported by conftest.py and tests).

Everything here drives the REAL `carthouse` binary (path in env CARTHOUSE_BIN) and talks to it
only over loopback. Every wait is bounded.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

# Data set used by the whole suite (`carthouse generate ... --events 200000 --days 7 --seed 7`).
EVENTS = 200_000
DAYS = 7
SEED = 7
START = dt.date(2026, 10, 1)
DATES = [(START + dt.timedelta(days=i)).isoformat() for i in range(DAYS)]

# Columns of the generated events table (data columns, then the hive partition column).
EVENT_COLUMNS = [
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
]
PARTITION_COLUMN = "date"
# Postgres type names (format_type / information_schema style) expected for each column.
EVENT_PG_TYPES = {
    "event_time": "timestamp with time zone",
    "event_type": "text",
    "product_id": "bigint",
    "category_id": "bigint",
    "category_code": "text",
    "brand": "text",
    "price": "double precision",
    "user_id": "bigint",
    "user_session": "text",
    "date": "text",
}

READY_RE = re.compile(
    r"carthouse ready: postgres=(\S+):(\d+) flight=(\S+):(\d+) http=(\S+):(\d+)\s*$")
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20

# Exit statuses accepted after we send SIGTERM ourselves.
_TERM_OK = {0, -signal.SIGTERM, 128 + signal.SIGTERM}


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGKILL this child when the test runner dies (e.g. a hard pytest-timeout), so no
    server is ever left running."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass


def carthouse_bin_from_env() -> str:
    path = os.environ.get("CARTHOUSE_BIN")
    if not path:
        pytest.fail(
            "CARTHOUSE_BIN is not set: build carthouse first and point CARTHOUSE_BIN at the binary "
            "(e.g. CARTHOUSE_BIN=/work/target/debug/carthouse)",
            pytrace=False,
        )
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"CARTHOUSE_BIN={path!r} is not an executable file", pytrace=False)
    return os.path.abspath(path)


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (for helper servers such as moto)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {host}:{port} opened")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{host}:{port} did not accept connections within {timeout} s")


def tail_file(path: Path | str | None, n_lines: int = 60, max_chars: int = 8000) -> str:
    if path is None:
        return "<no file>"
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    text = data.decode("utf-8", "replace")
    lines = text.splitlines()[-n_lines:]
    out = "\n".join(lines)
    return out[-max_chars:]


def clean_env(extra: dict[str, str] | None = None, keep_aws: bool = False) -> dict[str, str]:
    """Environment for child servers: no inherited CARTHOUSE_* (they would override CLI
    defaults) and, unless asked, no AWS_* (so tests control S3 settings exactly)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CARTHOUSE_") and (keep_aws or not k.startswith("AWS_"))
    }
    env.setdefault("RUST_BACKTRACE", "1")
    if extra:
        env.update(extra)
    return env


def run_carthouse(bin_path: str, args: list[str], timeout: float = 600, env=None) -> subprocess.CompletedProcess:
    """Run a carthouse subcommand to completion; fail the test with its output on error."""
    cmd = [bin_path, *args]
    try:
        cp = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env=env if env is not None else clean_env(),
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            f"`{' '.join(cmd)}` did not finish within {timeout} s\n"
            f"stderr tail:\n{(e.stderr or b'').decode('utf-8', 'replace')[-4000:]}",
            pytrace=False,
        )
    if cp.returncode != 0:
        pytest.fail(
            f"`{' '.join(cmd)}` exited {cp.returncode}\n"
            f"stdout:\n{cp.stdout.decode('utf-8', 'replace')[-2000:]}\n"
            f"stderr:\n{cp.stderr.decode('utf-8', 'replace')[-4000:]}",
            pytrace=False,
        )
    return cp


def generate(bin_path: str, out: Path, events: int, days: int, seed: int, fmt: str = "parquet",
             start: str | None = None, timeout: float = 600) -> Path:
    args = ["generate", "--out", str(out), "--events", str(events), "--days", str(days),
            "--seed", str(seed)]
    if fmt != "parquet":
        args += ["--format", fmt]
    if start:
        args += ["--start", start]
    run_carthouse(bin_path, args, timeout=timeout)
    if not out.is_dir():
        pytest.fail(f"carthouse generate exited 0 but {out} is not a directory", pytrace=False)
    return out


# Every server started in this session (checked for new panics after each test by conftest).
ALL_SERVERS: list["CarthouseServer"] = []


class CarthouseServer:
    """One `carthouse serve` process on 127.0.0.1:<port 0> (Postgres, Flight SQL and HTTP).

    Attributes: host, port, flight_port, http_host, http_port, data_dir, config, dsn,
    flight_uri, http_url, proc, stderr_path. Ports are 0 on the command line, so every
    start() (also after kill()) gets new ones, read back from the ready line.
    """

    _counter = 0

    def __init__(self, bin_path: str, data_dir: Path, log_dir: Path, config: Path | None = None,
                 env: dict[str, str] | None = None, extra_args: list[str] | None = None,
                 name: str = "server"):
        self.bin_path = bin_path
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir)
        self.config = Path(config) if config else None
        self.env = env if env is not None else clean_env()
        self.extra_args = list(extra_args or [])
        self.name = name
        ALL_SERVERS.append(self)
        self.host: str | None = None
        self.port: int | None = None
        self.flight_port: int | None = None
        self.http_host: str | None = None
        self.http_port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.stderr_path: Path | None = None
        self.stdout_lines: list[str] = []
        self.generation = 0
        self.stopped = False
        self._panic_offset = 0
        self._reader: threading.Thread | None = None
        self._stderr_file = None

    # ----------------------------------------------------------------- lifecycle
    def argv(self) -> list[str]:
        args = [self.bin_path, "serve", "--pg-addr", "127.0.0.1:0", "--flight-addr", "127.0.0.1:0",
                "--http-addr", "127.0.0.1:0", "--data-dir", str(self.data_dir)]
        if self.config is not None:
            args += ["--config", str(self.config)]
        return args + self.extra_args

    def start(self, timeout: float = READY_TIMEOUT_S) -> "CarthouseServer":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        CarthouseServer._counter += 1
        self.generation += 1
        self.stopped = False
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = self.log_dir / f"{self.name}-{CarthouseServer._counter}.stderr.log"
        self._stderr_file = open(self.stderr_path, "wb")
        self._panic_offset = 0
        self.stdout_lines = []
        self.host = self.port = self.flight_port = self.http_host = self.http_port = None
        ready = threading.Event()
        found: dict[str, object] = {}

        self.proc = subprocess.Popen(
            self.argv(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr_file,
            env=self.env,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        proc = self.proc

        def reader():
            # Keeps draining stdout for the life of the process so it can never block on a full pipe.
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self.stdout_lines.append(line)
                m = READY_RE.search(line)
                if m and not ready.is_set():
                    found["host"], found["port"] = m.group(1), int(m.group(2))
                    found["flight_port"] = int(m.group(4))
                    found["http_host"], found["http_port"] = m.group(5), int(m.group(6))
                    ready.set()
            ready.set()  # EOF: wake the waiter

        self._reader = threading.Thread(target=reader, name=f"{self.name}-stdout", daemon=True)
        self._reader.start()

        deadline = time.monotonic() + timeout
        while not ready.wait(0.2):
            if time.monotonic() > deadline:
                self._kill()
                pytest.fail(
                    f"carthouse serve did not print 'carthouse ready: postgres=HOST:PORT "
                    f"flight=HOST:PORT http=HOST:PORT' within "
                    f"{timeout} s\n{self.describe()}",
                    pytrace=False,
                )
        if "port" not in found:
            # stdout closed without the ready line: the process exited (or closed stdout).
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill()
            pytest.fail(
                f"carthouse serve exited (status {proc.returncode}) before printing the ready line\n"
                f"{self.describe()}",
                pytrace=False,
            )
        self.host, self.port = str(found["host"]), int(found["port"])
        self.flight_port = int(found["flight_port"])
        self.http_host, self.http_port = str(found["http_host"]), int(found["http_port"])
        if self.host not in ("127.0.0.1", "localhost") or self.http_host not in ("127.0.0.1", "localhost"):
            self._kill()
            pytest.fail(f"server bound to {self.host} (http {self.http_host}), expected 127.0.0.1\n"
                        f"{self.describe()}", pytrace=False)
        if 0 in (self.port, self.flight_port, self.http_port):
            self._kill()
            pytest.fail(f"ready line reports port 0 (must be the real bound ports)\n{self.describe()}",
                        pytrace=False)
        return self

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._close_files()

    def _close_files(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.proc is not None and self.proc.stdout is not None:
            try:
                self.proc.stdout.close()
            except OSError:
                pass
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None

    def new_panics(self) -> list[str]:
        """Rust panic messages written to stderr since the last call (each panic reported once).

        Two forms: the default report of an uncaught panic ("panicked at"), and carthouse's
        one-line report of a panic caught inside a Postgres connection task (that connection is
        closed, the server goes on), which is still a bug to surface."""
        log = self.stderr_text()
        fresh, self._panic_offset = log[self._panic_offset:], len(log)
        out = []
        lines = fresh.splitlines()
        for i, line in enumerate(lines):
            if "panicked at" in line:
                out.append(" / ".join(x.strip() for x in lines[i:i + 2]))
            elif CAUGHT_PANIC_MARK in line:
                out.append(line.strip())
        return out

    def problems(self) -> list[str]:
        """Signs of a crash since the last check: process gone, new panic in the log."""
        out = []
        if self.proc is not None and self.proc.poll() is not None:
            out.append(f"process exited on its own with status {self.proc.returncode}")
        out += [f"Rust panic: {p}" for p in self.new_panics()]
        return out

    def assert_alive(self) -> None:
        probs = self.problems()
        if probs:
            pytest.fail("carthouse server crashed or panicked: " + "; ".join(probs) + "\n" + self.describe(),
                        pytrace=False)

    def stop(self, check: bool = True) -> None:
        """SIGTERM, bounded wait; with check=True fail if it had crashed before, did not stop,
        or exited with an unexpected status."""
        if self.proc is None or self.stopped:
            return
        self.stopped = True
        probs = []
        if self.proc.poll() is not None:
            probs.append(f"process had already exited with status {self.proc.returncode} (crash)")
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
                if self.proc.returncode not in _TERM_OK:
                    probs.append(f"exit status {self.proc.returncode} after SIGTERM")
            except subprocess.TimeoutExpired:
                probs.append(f"did not exit within {STOP_TIMEOUT_S} s of SIGTERM (killed)")
                self._kill()
        self._close_files()
        probs += [f"Rust panic: {p}" for p in self.new_panics()]
        if check and probs:
            pytest.fail("carthouse server problem: " + "; ".join(probs) + "\n" + self.describe(),
                        pytrace=False)

    def kill(self) -> int | None:
        """SIGKILL (a simulated crash: no shutdown code runs), bounded wait. The data dir is
        kept; start() brings the server back on it (new ports). Returns the exit status."""
        if self.proc is None:
            return None
        self.stopped = True  # the per-test crash check must not report our own kill
        self._kill()
        return self.proc.returncode

    def restart(self, timeout: float = READY_TIMEOUT_S) -> "CarthouseServer":
        """SIGTERM, wait, start again (same data dir and config) on a new port 0."""
        self.stop(check=True)
        return self.start(timeout=timeout)

    # ----------------------------------------------------------------- info
    @property
    def dsn(self) -> str:
        return (f"host=127.0.0.1 port={self.port} user=carthouse dbname=carthouse "
                f"sslmode=disable connect_timeout=10")

    @property
    def flight_uri(self) -> str:
        return f"grpc://127.0.0.1:{self.flight_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def url(self) -> str:
        return f"postgresql://carthouse@127.0.0.1:{self.port}/carthouse"

    def stderr_text(self) -> str:
        if self.stderr_path is None:
            return ""
        try:
            return self.stderr_path.read_text("utf-8", "replace")
        except OSError:
            return ""

    def stderr_tail(self, n: int = 60) -> str:
        return tail_file(self.stderr_path, n)

    def describe(self) -> str:
        rc = None if self.proc is None else self.proc.poll()
        return (
            f"  argv: {' '.join(self.argv())}\n"
            f"  status: {'running' if rc is None else f'exited {rc}'}; port={self.port} "
            f"flight={self.flight_port} http={self.http_port}\n"
            f"  stdout: {self.stdout_lines[-10:]!r}\n"
            f"{self._panic_summary()}"
            f"  stderr tail ({self.stderr_path}):\n{self.stderr_tail()}"
        )

    def _panic_summary(self) -> str:
        lines = self.stderr_text().splitlines()
        found = [" / ".join(x.strip() for x in lines[i:i + 2])
                 for i, ln in enumerate(lines) if "panicked at" in ln]
        if not found:
            return ""
        return "  panics in stderr:\n" + "\n".join(f"    {p}" for p in found[-5:]) + "\n"

    def connect(self, **kwargs):
        return pg_connect(self.dsn, **kwargs)


# Logged by carthouse when a connection task panics and is contained.
CAUGHT_PANIC_MARK = "internal error in a postgres connection"
# pgwire 0.41's Parse/Bind decoders read past a truncated message (bytes' get_u16/get_u32
# panic). carthouse contains it to that connection; it is a library bug, reported upstream-worthy.
KNOWN_PGWIRE_DECODER_PANIC = "advance out of bounds"


def pg_connect(dsn: str, autocommit: bool = True, **kwargs):
    import psycopg

    return psycopg.connect(dsn, autocommit=autocommit, **kwargs)


def pg_rows(dsn_or_conn, sql: str, params=None, **kw):
    """All rows of one query (opens a short-lived autocommit connection when given a dsn)."""
    if isinstance(dsn_or_conn, str):
        with pg_connect(dsn_or_conn) as conn:
            return conn.execute(sql, params, **kw).fetchall()
    return dsn_or_conn.execute(sql, params, **kw).fetchall()


def pg_scalar(dsn_or_conn, sql: str, params=None):
    rows = pg_rows(dsn_or_conn, sql, params)
    assert len(rows) == 1 and len(rows[0]) == 1, f"expected one value from {sql!r}, got {rows!r}"
    return rows[0][0]


def run_serve_expect_exit(bin_path: str, args: list[str], timeout: float = 30, env=None):
    """Run `carthouse serve ...` that is expected to exit by itself (e.g. bad config).
    Returns (returncode, stdout, stderr); fails if it is still running after `timeout`."""
    cmd = [bin_path, "serve", *args]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env if env is not None else clean_env(),
                         preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=10)
        pytest.fail(
            f"`{' '.join(cmd)}` was expected to exit but still ran after {timeout} s\n"
            f"stdout: {out.decode('utf-8', 'replace')[-2000:]}\nstderr: {err.decode('utf-8', 'replace')[-4000:]}",
            pytrace=False,
        )
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


# --------------------------------------------------------------------------- HTTP API

NDJSON = "application/x-ndjson"
CSV = "text/csv"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
HTTP_TIMEOUT_S = 60


class HttpResponse:
    """status, headers (lower-case names), body (bytes); .text, .json(), and a short
    description for failure messages."""

    def __init__(self, method: str, url: str, status: int, headers: dict[str, str], body: bytes):
        self.method, self.url, self.status, self.headers, self.body = method, url, status, headers, body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self):
        import json

        try:
            return json.loads(self.body)
        except ValueError as e:
            raise AssertionError(f"{self.describe()}\nbody is not JSON: {e}") from None

    def error_message(self) -> str:
        """The "error" string of a JSON error body (fails when the body is not that shape)."""
        doc = self.json()
        assert isinstance(doc, dict) and isinstance(doc.get("error"), str) and doc["error"], \
            f"error body is not {{\"error\": \"...\"}}\n{self.describe()}"
        return doc["error"]

    def describe(self, limit: int = 1500) -> str:
        return (f"{self.method} {self.url} -> {self.status} ({self.content_type or 'no content-type'})\n"
                f"body: {self.text[:limit]!r}")


def http_request(base_url: str, method: str, path: str, body: bytes | str | None = None,
                 content_type: str | None = None, accept: str | None = None,
                 headers: dict[str, str] | None = None, timeout: float = HTTP_TIMEOUT_S) -> HttpResponse:
    """One request on a fresh connection (http.client, no retries, bounded by `timeout`)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    if isinstance(body, str):
        body = body.encode("utf-8")
    hdrs = dict(headers or {})
    if content_type is not None:
        hdrs["Content-Type"] = content_type
    if accept is not None:
        hdrs["Accept"] = accept
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return HttpResponse(method, base_url + path, resp.status,
                            {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def http_ingest(srv: "CarthouseServer", table: str, body: bytes | str, content_type: str,
                **kw) -> HttpResponse:
    return http_request(srv.http_url, "POST", f"/v1/ingest/{table}", body, content_type=content_type, **kw)


def http_sql(srv: "CarthouseServer", sql: str, accept: str | None = None, **kw) -> HttpResponse:
    return http_request(srv.http_url, "POST", "/v1/sql", sql, content_type="text/plain", accept=accept, **kw)


def http_sql_ok(srv: "CarthouseServer", sql: str) -> list[dict]:
    """Rows of a /v1/sql query as JSON objects; fails the test on any non-200 answer."""
    r = http_sql(srv, sql, accept="application/json")
    if r.status != 200:
        pytest.fail(f"/v1/sql failed for {sql!r}\n{r.describe()}", pytrace=False)
    rows = r.json()
    assert isinstance(rows, list), f"/v1/sql JSON is not an array\n{r.describe()}"
    return rows


def utc_naive(v):
    """A timestamp from any client (aware/naive datetime, ISO string, Arrow scalar) as a naive
    UTC datetime; naive inputs are taken to be UTC already."""
    if v is None:
        return None
    if isinstance(v, str):
        t = v.strip().replace(" ", "T", 1)
        if t.endswith("Z") or t.endswith("z"):
            t = t[:-1] + "+00:00"
        # fromisoformat in 3.11 handles up to 6 fractional digits; trim nanoseconds.
        m = re.match(r"^(.*T\d\d:\d\d:\d\d)\.(\d+)(.*)$", t)
        if m and len(m.group(2)) > 6:
            t = f"{m.group(1)}.{m.group(2)[:6]}{m.group(3)}"
        v = dt.datetime.fromisoformat(t)
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return v
    raise TypeError(f"not a timestamp: {v!r} ({type(v).__name__})")


# --------------------------------------------------------------------------- DuckDB reference

def duckdb_events(events_dir: Path, view: str = "events"):
    """A DuckDB connection with `view` over the same hive-partitioned Parquet files. The
    partition column `date` is cast to VARCHAR to match carthouse (TEXT)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
    except Exception:  # pragma: no cover - ICU missing; timestamps are compared as instants anyway
        pass
    glob = str(Path(events_dir) / "*" / "*.parquet")
    con.execute(
        f"CREATE VIEW {view} AS SELECT * EXCLUDE (date), CAST(date AS VARCHAR) AS date "
        f"FROM read_parquet('{glob}', hive_partitioning = true)"
    )
    return con


# --------------------------------------------------------------------------- comparisons

def _norm(v):
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, dt.datetime) and v.tzinfo is not None:
        return v.astimezone(dt.timezone.utc)
    return v


def values_equal(a, b, rel: float = 1e-9) -> bool:
    a, b = _norm(a), _norm(b)
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            return False
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(values_equal(x, y, rel) for x, y in zip(a, b))
    return a == b


def assert_rows_equal(actual, expected, rel: float = 1e-9, context: str = "") -> None:
    actual = [tuple(r) for r in actual]
    expected = [tuple(r) for r in expected]
    msg = f"{context}\ncarthouse: {actual[:20]!r}\nexpected:  {expected[:20]!r}"
    assert len(actual) == len(expected), f"row count {len(actual)} != {len(expected)}{msg}"
    for i, (ra, rb) in enumerate(zip(actual, expected)):
        assert len(ra) == len(rb), f"row {i}: {len(ra)} columns != {len(rb)}{msg}"
        for j, (x, y) in enumerate(zip(ra, rb)):
            assert values_equal(x, y, rel), f"row {i} col {j}: {x!r} != {y!r}{msg}"


def java_available() -> bool:
    return (subprocess.run(["sh", "-c", "command -v javac && command -v java"],
                           capture_output=True).returncode == 0)


def python_bin_dir() -> Path:
    """bin/ of the running interpreter's environment (the e2e venv: moto_server lives there)."""
    return Path(sys.executable).parent
