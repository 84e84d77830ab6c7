"""Bad input of every kind: the server answers with a proper error (right SQLSTATE, useful
message) or refuses to start with a clear message, and never crashes."""

from __future__ import annotations

import random
import socket
import time
import struct

import psycopg
import pytest

import e2e_util as u


@pytest.fixture(scope="module")
def bad_srv(server_factory):
    # A private server: if garbage kills it, the rest of the suite is unaffected.
    srv = server_factory.start(register_events=True, name="badinput")
    yield srv
    srv.stop()


@pytest.fixture
def bconn(bad_srv):
    c = bad_srv.connect()
    yield c
    c.close()


SQL_ERRORS = [
    ("syntax", "select count(* from events", {"42601"}),
    ("syntax-trailing", "select 1 +", {"42601"}),
    ("unknown-table", "select * from does_not_exist_e2e", {"42P01"}),
    ("unknown-column", "select nope_col from events", {"42703"}),
    ("type-string-plus-int", "select 'abc' + 1", {"42804", "42883", "22P02"}),
    ("type-bad-cast", "select cast('abc' as int)", {"22P02"}),
    ("division-by-zero", "select 1 / 0", {"22012"}),
    ("unknown-function", "select no_such_function_e2e(1)", {"42883"}),
]


@pytest.mark.parametrize("name,sql,states", SQL_ERRORS, ids=[c[0] for c in SQL_ERRORS])
def test_sql_errors(bconn, name, sql, states):
    with pytest.raises(psycopg.Error) as ei:
        bconn.execute(sql).fetchall()
    e = ei.value
    assert e.sqlstate in states, f"{sql!r}: sqlstate {e.sqlstate!r} not in {states}: {e}"
    assert e.diag.message_primary, "error without a message"
    assert e.diag.severity == "ERROR", e.diag.severity
    assert bconn.execute("select 1").fetchone()[0] == 1


def test_missing_location(bconn, tmp_path):
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(psycopg.Error) as ei:
        bconn.execute(f"CREATE EXTERNAL TABLE ghost STORED AS PARQUET PARTITIONED BY (date) "
                      f"LOCATION '{missing}/'")
    e = ei.value
    assert e.sqlstate == "58P01", f"{e.sqlstate}: {e}"
    assert str(missing) in str(e), f"error does not name the path: {e}"
    # nothing registered
    with pytest.raises(psycopg.Error) as ei:
        bconn.execute("select * from ghost")
    assert ei.value.sqlstate == "42P01"


def test_bad_options(bconn, events_dir):
    with pytest.raises(psycopg.Error) as ei:
        bconn.execute(f"CREATE EXTERNAL TABLE bad_fmt STORED AS NOSUCHFORMAT LOCATION '{events_dir}/'")
    assert ei.value.sqlstate and not ei.value.sqlstate.startswith("XX"), ei.value
    assert bconn.execute("select 2").fetchone()[0] == 2


def test_long_and_weird_sql(bconn):
    big = "select " + " + ".join(["1"] * 500)
    assert bconn.execute(big).fetchone()[0] == 500
    deep = "select " + "(" * 200 + "1" + ")" * 200
    try:
        assert bconn.execute(deep).fetchone()[0] == 1
    except psycopg.Error as e:  # a recursion limit error is acceptable, a crash is not
        assert e.sqlstate and not e.sqlstate.startswith("XX") or "recursion" in str(e).lower(), e
    assert bconn.execute("select 'ünïcødé ✓ 🚀'").fetchone()[0] == "ünïcødé ✓ 🚀"
    assert bconn.execute("select 3").fetchone()[0] == 3


# ------------------------------------------------------------------ config errors

BAD_CONFIGS = [
    ("unknown-server-key", '[server]\npg_adr = "127.0.0.1:0"\n', "pg_adr", 2),
    ("unknown-s3-key", '[s3]\nregion = "us-east-1"\nsecret = "x"\n', "secret", 3),
    ("unknown-table-key", '[[table]]\nname = "t"\nformat = "parquet"\nlocaton = "/tmp"\n', "locaton", 4),
    ("unknown-section", '[serverr]\npg_addr = "127.0.0.1:0"\n', "serverr", 1),
]


@pytest.mark.parametrize("name,text,key,line", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_malformed_config_key(carthouse_bin, tmp_path, name, text, key, line):
    cfg = tmp_path / f"bad-{name}.toml"
    cfg.write_text(text)
    rc, out, err = u.run_serve_expect_exit(
        carthouse_bin, ["--pg-addr", "127.0.0.1:0", "--flight-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir", str(tmp_path / "data"), "--config", str(cfg)])
    assert rc != 0, f"server accepted a bad config\nstdout: {out}\nstderr: {err}"
    assert "carthouse ready" not in out
    assert key in err, f"stderr does not name the bad key {key!r}:\n{err}"
    assert cfg.name in err, f"stderr does not name the config file:\n{err}"
    assert "panicked" not in err, err
    assert f"line {line}" in err or f":{line}:" in err, f"stderr does not give line {line}:\n{err}"


def test_config_syntax_error_and_missing_file(carthouse_bin, tmp_path):
    cfg = tmp_path / "broken.toml"
    cfg.write_text('[server]\npg_addr = "127.0.0.1:0\n')  # unterminated string
    rc, out, err = u.run_serve_expect_exit(carthouse_bin, ["--pg-addr", "127.0.0.1:0", "--flight-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--config", str(cfg),
                                                           "--data-dir", str(tmp_path / "d")])
    assert rc != 0 and "broken.toml" in err and "panicked" not in err, err

    missing = tmp_path / "missing.toml"
    rc, out, err = u.run_serve_expect_exit(carthouse_bin, ["--pg-addr", "127.0.0.1:0", "--flight-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--config", str(missing),
                                                           "--data-dir", str(tmp_path / "d")])
    assert rc != 0 and "missing.toml" in err and "panicked" not in err, err


def test_wrong_value_type_in_config(carthouse_bin, tmp_path):
    cfg = tmp_path / "types.toml"
    cfg.write_text('[s3]\nallow_http = "yes please"\n')
    rc, out, err = u.run_serve_expect_exit(carthouse_bin, ["--pg-addr", "127.0.0.1:0", "--flight-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--config", str(cfg),
                                                           "--data-dir", str(tmp_path / "d")])
    assert rc != 0 and "allow_http" in err and "types.toml" in err, err


def test_port_in_use(carthouse_bin, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        rc, out, err = u.run_serve_expect_exit(
            carthouse_bin, ["--pg-addr", f"127.0.0.1:{port}", "--flight-addr", "127.0.0.1:0",
                            "--http-addr", "127.0.0.1:0", "--data-dir", str(tmp_path / "d")])
    assert rc != 0 and "carthouse ready" not in out, (out, err)
    assert str(port) in err and "panicked" not in err, err


# ------------------------------------------------------------------ protocol garbage

def _raw(srv, payload: bytes, read: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.settimeout(3)
        try:
            s.sendall(payload)
        except OSError:
            return b""
        if not read:
            return b""
        got = b""
        try:
            while len(got) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except (socket.timeout, OSError):
            pass
        return got


def _startup(user=b"carthouse", db=b"carthouse") -> bytes:
    body = struct.pack("!I", 196608) + b"user\0" + user + b"\0database\0" + db + b"\0\0"
    return struct.pack("!I", len(body) + 4) + body


GARBAGE = {
    "random-bytes": bytes(random.Random(1).getrandbits(8) for _ in range(4096)),
    "http-request": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "huge-length": struct.pack("!I", 0x7FFFFFF0) + b"\x00\x03\x00\x00",
    "zero-length": struct.pack("!I", 0),
    "tiny-length": struct.pack("!I", 3) + b"abc",
    "bad-protocol-version": struct.pack("!II", 8, 0x00090009),
    "ssl-then-garbage": struct.pack("!II", 8, 80877103) + b"\x16\x03\x01garbage-not-tls" * 10,
    "gss-request": struct.pack("!II", 8, 80877104),
    "cancel-unknown-key": struct.pack("!IIII", 16, 80877102, 12345, 67890),
    "startup-no-terminator": struct.pack("!I", 20) + struct.pack("!I", 196608) + b"user\0carth",
    "startup-then-garbage": _startup() + b"\xff" * 64,
    "startup-then-bad-msg-len": _startup() + b"Q" + struct.pack("!I", 2),
    "startup-then-huge-query": _startup() + b"Q" + struct.pack("!I", 0x7FFFFFF0) + b"select",
    "startup-then-parse-garbage": _startup() + b"P" + struct.pack("!I", 12) + b"\x00\x00\x01\x02\x03\x04\x05\x06",
    "startup-then-bind-unknown": _startup() + b"B" + struct.pack("!I", 14) + b"\x00nope\x00\x00\x00\x00\x00\x00\x00"
                                 + b"S" + struct.pack("!I", 4),
    "startup-then-execute-unknown-portal": _startup() + b"E" + struct.pack("!I", 10) + b"nope\x00\x00\x00\x00\x00"
                                           + b"S" + struct.pack("!I", 4),
    "half-startup": struct.pack("!I", 100) + b"\x00\x03",
    "empty": b"",
}


@pytest.mark.parametrize("name", list(GARBAGE))
def test_protocol_garbage(bad_srv, name):
    _raw(bad_srv, GARBAGE[name], read=name not in ("half-startup", "huge-length"))
    with bad_srv.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1
    if name == "startup-then-parse-garbage":
        # Known pgwire 0.41 decoder bug: contained to this connection and logged as one line.
        # Anything else panicking here is a new bug and fails below.
        time.sleep(0.2)
        caught = bad_srv.new_panics()
        assert all(u.CAUGHT_PANIC_MARK in p and u.KNOWN_PGWIRE_DECODER_PANIC in p for p in caught), caught
    bad_srv.assert_alive()


def test_garbage_after_real_session(bad_srv):
    # A proper session that then dies mid-message must not take others down.
    other = bad_srv.connect()
    _raw(bad_srv, _startup() + b"Q" + struct.pack("!I", 100) + b"select 1", read=False)
    assert other.execute("select count(*) from events").fetchone()[0] == u.EVENTS
    other.close()


def test_many_abrupt_disconnects(bad_srv):
    for i in range(50):
        with socket.create_connection(("127.0.0.1", bad_srv.port), timeout=5) as s:
            s.sendall(_startup()[: (i % 20) + 1])
    with bad_srv.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_client_disconnect_during_query(bad_srv):
    """Close the socket while a heavy query runs: the server must carry on serving."""
    conn = bad_srv.connect()
    conn.pgconn.send_query(b"select count(*), sum(a.price) from events a join events b "
                           b"on a.user_id = b.user_id and a.product_id <> b.product_id")
    conn.pgconn.flush()
    conn.close()
    with bad_srv.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_server_survived_everything(bad_srv):
    bad_srv.assert_alive()
    with bad_srv.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1
        assert c.execute("select count(*) from events").fetchone()[0] == u.EVENTS
