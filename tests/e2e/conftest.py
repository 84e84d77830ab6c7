"""pytest fixtures for the carthouse end-to-end suite.

These drive the REAL binary (env CARTHOUSE_BIN) with real clients over 127.0.0.1.

Session fixtures:
  carthouse_bin   absolute path of the binary (fails clearly when CARTHOUSE_BIN is unset/bad)
  e2e_tmp         session temp dir (data, logs, generated files)
  events_dir      pathlib.Path of `carthouse generate --events 200000 --days 7 --seed 7` output
                  (hive partitions date=2026-10-01 .. date=2026-10-07, part-0.parquet each)
  server          shared CarthouseServer with table `events` registered via CREATE EXTERNAL TABLE;
                  .host .port .data_dir .dsn .restart() .stderr_tail() .assert_alive()
                  Do not restart it from a test: use server_factory for a private server.
  pg_dsn          libpq dsn of `server`
  server_factory  .start(config=..., env=..., data_dir=..., register_events=...) -> CarthouseServer;
                  every server it started is stopped (and checked for crashes) at session end,
                  or earlier with srv.stop().
  duck            DuckDB connection with view `events` over events_dir (date cast to VARCHAR)
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

import e2e_util as u


@pytest.fixture(scope="session")
def carthouse_bin() -> str:
    return u.carthouse_bin_from_env()


@pytest.fixture(scope="session")
def e2e_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("carthouse-e2e")


@pytest.fixture(scope="session")
def events_dir(carthouse_bin, e2e_tmp) -> Path:
    out = e2e_tmp / "events"
    u.generate(carthouse_bin, out, events=u.EVENTS, days=u.DAYS, seed=u.SEED)
    parts = sorted(p.name for p in out.iterdir() if p.is_dir())
    expected = [f"date={d}" for d in u.DATES]
    if parts != expected:
        pytest.fail(f"generate wrote partitions {parts}, expected {expected}", pytrace=False)
    for d in expected:
        if not (out / d / "part-0.parquet").is_file():
            pytest.fail(f"missing {out / d / 'part-0.parquet'}", pytrace=False)
    return out


def register_events(srv: u.CarthouseServer, events_dir: Path, name: str = "events") -> None:
    try:
        with srv.connect() as conn:
            conn.execute(
                f"CREATE EXTERNAL TABLE {name} STORED AS PARQUET PARTITIONED BY (date) "
                f"LOCATION '{events_dir}/'"
            )
    except Exception as e:  # noqa: BLE001 - report with server context
        pytest.fail(f"registering table {name} failed: {type(e).__name__}: {e}\n{srv.describe()}",
                    pytrace=False)


class ServerFactory:
    def __init__(self, bin_path: str, root: Path, events_dir_getter):
        self.bin_path = bin_path
        self.root = root
        self._events_dir_getter = events_dir_getter
        self.servers: list[u.CarthouseServer] = []
        self._ids = itertools.count(1)

    def start(self, config: Path | str | None = None, env: dict[str, str] | None = None,
              data_dir: Path | None = None, register_events: bool = False,
              extra_args: list[str] | None = None, name: str | None = None,
              timeout: float = u.READY_TIMEOUT_S) -> u.CarthouseServer:
        """Start another `carthouse serve --pg-addr 127.0.0.1:0 --data-dir DIR [--config FILE]`.
        `env` is merged into a clean environment (no inherited CARTHOUSE_*/AWS_*)."""
        n = next(self._ids)
        name = name or f"extra{n}"
        if data_dir is None:
            data_dir = self.root / f"data-{name}-{n}"
        data_dir.mkdir(parents=True, exist_ok=True)
        srv = u.CarthouseServer(
            self.bin_path, data_dir, self.root / "logs", config=config,
            env=u.clean_env(env), extra_args=extra_args, name=name,
        )
        self.servers.append(srv)
        srv.start(timeout=timeout)
        if register_events:
            register_events_fn(srv, self._events_dir_getter())
        return srv

    def write_config(self, text: str, name: str = "carthouse.toml") -> Path:
        d = self.root / f"cfg-{next(self._ids)}"
        d.mkdir(parents=True, exist_ok=True)
        p = d / name
        p.write_text(text)
        return p

    def stop_all(self) -> list[str]:
        failures = []
        for srv in self.servers:
            try:
                srv.stop(check=True)
            except BaseException as e:  # pytest.fail raises Failed (BaseException subclass)
                failures.append(f"{srv.name}: {e}")
        self.servers.clear()
        return failures


register_events_fn = register_events


@pytest.fixture(scope="session")
def server_factory(request, carthouse_bin, e2e_tmp):
    def events_dir_getter():
        return request.getfixturevalue("events_dir")

    factory = ServerFactory(carthouse_bin, e2e_tmp / "servers", events_dir_getter)
    yield factory
    failures = factory.stop_all()
    if failures:
        pytest.fail("extra carthouse servers had problems at shutdown:\n" + "\n".join(failures),
                    pytrace=False)


@pytest.fixture(scope="session")
def server(carthouse_bin, events_dir, e2e_tmp):
    data_dir = e2e_tmp / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    srv = u.CarthouseServer(carthouse_bin, data_dir, e2e_tmp / "logs", name="main")
    srv.start()
    register_events(srv, events_dir)
    yield srv
    srv.stop(check=True)


@pytest.fixture(scope="session")
def pg_dsn(server) -> str:
    return (f"host=127.0.0.1 port={server.port} user=carthouse dbname=carthouse "
            f"sslmode=disable connect_timeout=10")


@pytest.fixture(scope="session")
def duck(events_dir):
    con = u.duckdb_events(events_dir)
    yield con
    con.close()


@pytest.fixture
def conn(pg_dsn):
    """A fresh autocommit psycopg connection to the shared server."""
    c = u.pg_connect(pg_dsn)
    yield c
    c.close()


@pytest.fixture(autouse=True)
def _servers_did_not_crash():
    """After every test: any running carthouse server that died or logged a new Rust panic
    fails THIS test (as a teardown error), so the culprit is named."""
    yield
    probs = []
    for srv in u.ALL_SERVERS:
        if srv.proc is None or srv.stopped:
            continue
        p = srv.problems()
        if p:
            probs.append(f"{srv.name}: " + "; ".join(p) + "\n" + srv.describe())
    if probs:
        pytest.fail("carthouse server crashed or panicked during this test:\n" + "\n".join(probs),
                    pytrace=False)
