//! A Flight SQL client that goes away stops its query: the server's CPU use falls back to
//! idle once the DoGet stream is dropped. Its own test binary, so no other test shares the
//! process whose CPU time is measured.

mod common;

use std::time::Duration;

use arrow_flight::sql::client::FlightSqlServiceClient;
use common::{TestServer, create_events_sql};
use futures::StreamExt;

/// CPU seconds (user + system) this process has used, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stream_stops_the_query() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path()).await;
    let channel = server.flight_channel().await;
    let mut c = FlightSqlServiceClient::new(channel);
    c.execute_update(create_events_sql("events"), None)
        .await
        .unwrap();

    // A trillion rows: hours of work if nothing stops it. (A cross join of events with itself
    // was used first; DataFusion's nested-loop join does not yield between output batches, so
    // on some machines it ran on for more than 10 s after the stream was dropped whatever the
    // front end did. A scan of generated rows yields between batches like a real scan does.)
    let info = c
        .execute(
            "select sum(value % 7) from generate_series(1, 1000000000000)".into(),
            None,
        )
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut stream = c.do_get(ticket).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(2), stream.next()).await;
    assert!(
        first.is_err(),
        "the query finished too soon to test cancellation"
    );
    let busy_start = cpu_seconds();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(cpu_seconds() - busy_start > 0.2, "the query is not running");

    drop(stream);
    drop(c);
    let mut trace = Vec::new();
    for _ in 0..10 {
        let start = cpu_seconds();
        tokio::time::sleep(Duration::from_secs(1)).await;
        trace.push(cpu_seconds() - start);
    }
    eprintln!("CPU seconds per second after the client left: {trace:?}");
    let used = trace[8] + trace[9];
    assert!(
        used < 0.5,
        "the query kept running after the client left: {trace:?}"
    );
    server.stop().await;
}
