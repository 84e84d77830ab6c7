"""`carthouse serve --demo`: the README's run command. First start generates the dataset into
the data directory and registers it as `events`; a restart reuses it; the sql/ questions run
on it through psql exactly as the README says."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import duckdb

DEMO_EVENTS = 60_000
ROOT = Path(__file__).resolve().parents[2]


def test_demo_generates_then_reuses(server_factory, tmp_path):
    data = tmp_path / "demo-data"
    srv = server_factory.start(data_dir=data, extra_args=["--demo", "--demo-events", str(DEMO_EVENTS)],
                               name="demo")
    demo_dir = data / "demo" / "events"
    parts = sorted(p.name for p in demo_dir.iterdir())
    assert len(parts) == 30 and parts[0] == "date=2026-10-01", parts
    manifest = json.loads((data / "demo" / "events.manifest.json").read_text())
    assert manifest["events"] == DEMO_EVENTS and len(manifest["planted_groups"]) == 3

    with srv.connect() as c:
        assert c.execute("select count(*) from events").fetchone()[0] == DEMO_EVENTS
        by_type = dict(c.execute("select event_type, count(*) from events group by 1").fetchall())
    ref = duckdb.connect()
    want = dict(ref.execute(
        f"select event_type, count(*) from read_parquet('{demo_dir}/*/*.parquet') group by 1").fetchall())
    assert by_type == want

    mtimes = {p: p.stat().st_mtime_ns for p in demo_dir.rglob("*.parquet")}
    srv.restart()
    with srv.connect() as c:
        assert c.execute("select count(*) from events").fetchone()[0] == DEMO_EVENTS
    assert {p: p.stat().st_mtime_ns for p in demo_dir.rglob("*.parquet")} == mtimes, "demo regenerated"

    # Every sql/ question runs unchanged through psql against the demo server.
    for f in sorted((ROOT / "sql").glob("*.sql")):
        r = subprocess.run(
            ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(srv.port),
             "-U", "carthouse", "-d", "carthouse", "-f", str(f)],
            capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"{f.name}: {r.stderr}"
        assert "(0 rows)" not in r.stdout, f"{f.name} returned no rows on the demo data"
