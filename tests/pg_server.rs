//! The Postgres front end end to end in-process: a real server on port 0, tokio-postgres as
//! the client, a generated dataset on disk.

mod common;

use common::{TestServer, create_events_sql};
use tokio_postgres::error::SqlState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_and_extended_queries() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path()).await;
    let client = server.connect().await;
    client
        .batch_execute(&create_events_sql("events"))
        .await
        .unwrap();

    // Simple protocol.
    let rows = client
        .simple_query("select count(*) from events")
        .await
        .unwrap();
    let count: i64 = match &rows[1] {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).unwrap().parse().unwrap(),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(count, 30_000);

    // Extended protocol with bound parameters, binary results.
    let row = client
        .query_one(
            "select count(*) as n, min(price) as p from events where event_type = $1 and price > $2",
            &[&"purchase", &1.0f64],
        )
        .await
        .unwrap();
    let n: i64 = row.get("n");
    let p: f64 = row.get("p");
    assert!(n > 0 && p > 1.0, "n={n} p={p}");

    // Partition pruning gives the same answer as a scan filter.
    let by_partition: i64 = client
        .query_one("select count(*) from events where date = '2026-10-02'", &[])
        .await
        .unwrap()
        .get(0);
    let by_time: i64 = client
        .query_one(
            "select count(*) from events where event_time >= '2026-10-02T00:00:00Z' and event_time < '2026-10-03T00:00:00Z'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(by_partition, by_time);
    assert!(by_partition > 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_sqlstate_and_connection_survives() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path()).await;
    let client = server.connect().await;
    let cases: [(&str, SqlState); 4] = [
        ("selec 1", SqlState::SYNTAX_ERROR),
        ("select * from no_such_table", SqlState::UNDEFINED_TABLE),
        (
            "select no_such_column from (select 1 as a) t",
            SqlState::UNDEFINED_COLUMN,
        ),
        (
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/no/such/dir/'",
            SqlState::UNDEFINED_FILE,
        ),
    ];
    for (sql, state) in cases {
        let err = client.simple_query(sql).await.unwrap_err();
        assert_eq!(err.code(), Some(&state), "{sql}: {err:?}");
        let err = client.query(sql, &[]).await.unwrap_err();
        assert_eq!(err.code(), Some(&state), "extended {sql}: {err:?}");
        // The connection is still usable.
        let one: i64 = client
            .query_one("select 1::bigint", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(one, 1);
    }
    let err = client
        .simple_query("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/no/such/dir/'")
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("/no/such/dir/"), "{err:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_survives_restart_and_drop_is_persisted() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path()).await;
    let client = server.connect().await;
    // Through the extended protocol, as psycopg and JDBC send DDL.
    client
        .execute(&create_events_sql("kept"), &[])
        .await
        .unwrap();
    client
        .batch_execute(&create_events_sql("dropped"))
        .await
        .unwrap();
    client.batch_execute("DROP TABLE dropped").await.unwrap();
    let err = client
        .batch_execute("DROP TABLE dropped")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
    client
        .batch_execute("DROP TABLE IF EXISTS dropped")
        .await
        .unwrap();
    server.stop().await;

    let server = TestServer::start(data.path()).await;
    let client = server.connect().await;
    let n: i64 = client
        .query_one("select count(*) from kept", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 30_000);
    let err = client
        .query("select * from dropped", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
    server.stop().await;
}
