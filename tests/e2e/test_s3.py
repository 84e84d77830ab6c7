"""S3 tables: carthouse reads hive-partitioned Parquet from an S3 API (moto_server on loopback),
configured through the config file's [s3] section, through AWS_* env vars, and via SQL."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

import e2e_util as u

BUCKET = "carthouse-test"
PREFIX = "events/"

# Aggregates that must be identical on the local table, the S3 table and DuckDB.
AGG_QUERIES = [
    "select count(*), count(distinct user_id), sum(price), min(price), max(price) from {t}",
    "select event_type, count(*), sum(price) from {t} group by event_type order by event_type",
    "select date, count(*) from {t} group by date order by date",
    "select count(*) from {t} where date = '2026-10-04' and event_type = 'purchase'",
    "select min(event_time), max(event_time) from {t}",
    "select brand, count(*) as n from {t} where brand is not null group by brand order by n desc, brand limit 5",
]


def _moto_bin() -> str:
    cand = u.python_bin_dir() / "moto_server"
    if cand.exists():
        return str(cand)
    from shutil import which

    found = which("moto_server")
    if not found:
        pytest.skip("moto_server not installed (run tests/e2e/install-deps.sh)")
    return found


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    port = u.free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    logf = open(log, "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen([_moto_bin(), "-H", "127.0.0.1", "-p", str(port)],
                            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, env=env,
                            preexec_fn=u._die_with_parent)
    try:
        u.wait_port("127.0.0.1", port, timeout=60, proc=proc)
    except Exception as e:  # noqa: BLE001
        proc.kill()
        logf.close()
        pytest.fail(f"moto_server did not start: {e}\n{u.tail_file(log)}")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    logf.close()


@pytest.fixture(scope="module")
def s3_bucket(moto, events_dir):
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=moto, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing",
                      config=Config(connect_timeout=10, read_timeout=60, retries={"max_attempts": 2}))
    s3.create_bucket(Bucket=BUCKET)
    keys = []
    for f in sorted(Path(events_dir).glob("date=*/part-0.parquet")):
        key = f"{PREFIX}{f.parent.name}/{f.name}"
        s3.upload_file(str(f), BUCKET, key)
        keys.append(key)
    assert len(keys) == u.DAYS
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)["Contents"]
    assert sorted(o["Key"] for o in listed) == keys
    return s3


def _s3_config(moto: str) -> str:
    return (
        "[s3]\n"
        f'endpoint = "{moto}"\n'
        'region = "us-east-1"\n'
        'access_key_id = "testing"\n'
        'secret_access_key = "testing"\n'
        "allow_http = true\n"
    )


TABLE_EVENTS_S3 = (
    "\n[[table]]\n"
    'name = "events_s3"\n'
    'format = "parquet"\n'
    f'location = "s3://{BUCKET}/{PREFIX}"\n'
    'partition_by = ["date"]\n'
)


def _compare_all(srv, duck, table: str):
    with srv.connect() as conn:
        for q in AGG_QUERIES:
            on_s3 = conn.execute(q.format(t=table)).fetchall()
            local = conn.execute(q.format(t="events")).fetchall()
            ref = duck.execute(q.format(t="events")).fetchall()
            assert ref, q
            u.assert_rows_equal(on_s3, local, context=f"{table} vs local events: {q}")
            u.assert_rows_equal(on_s3, ref, context=f"{table} vs duckdb: {q}")


def test_config_file_s3_table(server_factory, s3_bucket, moto, duck):
    cfg = server_factory.write_config(_s3_config(moto) + TABLE_EVENTS_S3)
    srv = server_factory.start(config=cfg, register_events=True, name="s3cfg")
    try:
        _compare_all(srv, duck, "events_s3")

        # CREATE EXTERNAL TABLE over S3 through SQL on the same server (uses the [s3] settings).
        with srv.connect() as conn:
            conn.execute(f"CREATE EXTERNAL TABLE events_s3_sql STORED AS PARQUET PARTITIONED BY (date) "
                         f"LOCATION 's3://{BUCKET}/{PREFIX}'")
            assert conn.execute("select count(*) from events_s3_sql").fetchone()[0] == u.EVENTS
            # a single-partition table (no PARTITIONED BY) straight on one prefix
            conn.execute(f"CREATE EXTERNAL TABLE events_s3_day STORED AS PARQUET "
                         f"LOCATION 's3://{BUCKET}/{PREFIX}date=2026-10-02/'")
            n = conn.execute("select count(*) from events_s3_day").fetchone()[0]
            assert n == duck.execute("select count(*) from events where date = '2026-10-02'").fetchone()[0]
            # A prefix with no objects / a missing bucket is an error, not an empty table or a hang.
            t0 = time.monotonic()
            with pytest.raises(Exception) as ei:
                conn.execute("CREATE EXTERNAL TABLE nope_s3 STORED AS PARQUET "
                             "LOCATION 's3://no-such-bucket-e2e/x/'")
                conn.execute("select count(*) from nope_s3").fetchall()
            assert time.monotonic() - t0 < 60
            assert getattr(ei.value, "sqlstate", None) not in (None, "XX000") or "no-such-bucket-e2e" in str(ei.value)
            assert conn.execute("select 1").fetchone()[0] == 1
        _compare_all(srv, duck, "events_s3_sql")
        srv.assert_alive()
    finally:
        srv.stop()


def test_s3_table_survives_restart(server_factory, s3_bucket, moto, duck):
    cfg = server_factory.write_config(_s3_config(moto))
    srv = server_factory.start(config=cfg, name="s3restart")
    try:
        with srv.connect() as conn:
            conn.execute(f"CREATE EXTERNAL TABLE ev_s3 STORED AS PARQUET PARTITIONED BY (date) "
                         f"LOCATION 's3://{BUCKET}/{PREFIX}'")
            assert conn.execute("select count(*) from ev_s3").fetchone()[0] == u.EVENTS
        srv.restart()
        with srv.connect() as conn:
            assert conn.execute("select count(*) from ev_s3").fetchone()[0] == u.EVENTS
    finally:
        srv.stop()


def test_aws_env_vars_only(server_factory, s3_bucket, moto, duck):
    env = {
        "AWS_ENDPOINT_URL": moto,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }
    # Config has the table but no [s3] section: every S3 setting comes from the environment.
    cfg = server_factory.write_config(TABLE_EVENTS_S3.lstrip("\n"))
    srv = server_factory.start(config=cfg, env=env, register_events=True, name="s3env")
    try:
        _compare_all(srv, duck, "events_s3")
        with srv.connect() as conn:
            conn.execute(f"CREATE EXTERNAL TABLE events_s3_env STORED AS PARQUET PARTITIONED BY (date) "
                         f"LOCATION 's3://{BUCKET}/{PREFIX}'")
            assert conn.execute("select count(*) from events_s3_env").fetchone()[0] == u.EVENTS
    finally:
        srv.stop()

