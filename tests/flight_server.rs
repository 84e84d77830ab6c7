//! The Flight SQL front end in-process: a real server on port 0, arrow-flight's
//! FlightSqlServiceClient as the client, a generated dataset on disk.

mod common;

use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetTables, SqlInfo};
use common::{TestServer, create_events_sql};
use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use futures::TryStreamExt;
use std::sync::Arc;
use tonic::Code;
use tonic::transport::Channel;

async fn client(server: &TestServer) -> FlightSqlServiceClient<Channel> {
    let channel = server.flight_channel().await;
    FlightSqlServiceClient::new(channel)
}

async fn fetch(
    client: &mut FlightSqlServiceClient<Channel>,
    info: arrow_flight::FlightInfo,
) -> Result<Vec<RecordBatch>, arrow_flight::error::FlightError> {
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    client.do_get(ticket).await?.try_collect().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_prepared_statements_and_metadata() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path()).await;
    let mut c = client(&server).await;

    // DDL through CommandStatementUpdate goes to the persisted catalog.
    c.execute_update(create_events_sql("events"), None)
        .await
        .unwrap();
    assert!(data.path().join("catalog.json").is_file());

    // A query streams typed batches.
    let info = c
        .execute(
            "select count(*) as n, min(event_time) as t from events".into(),
            None,
        )
        .await
        .unwrap();
    let batches = fetch(&mut c, info).await.unwrap();
    let n = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(n.value(0), 30_000);
    assert_eq!(
        batches[0].schema().field(1).data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );

    // A prepared statement with a bound parameter.
    let mut ps = c
        .prepare(
            "select count(*) from events where event_type = $1".into(),
            None,
        )
        .await
        .unwrap();
    let params = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("$1", DataType::Utf8, false)])),
        vec![Arc::new(StringArray::from(vec!["purchase"]))],
    )
    .unwrap();
    ps.set_parameters(params).unwrap();
    let info = ps.execute().await.unwrap();
    let batches = fetch(&mut c, info).await.unwrap();
    let purchases = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0);
    assert!(purchases > 0 && purchases < 30_000);
    ps.close().await.unwrap();

    // Metadata: tables with their schema, SQL info.
    let info = c
        .get_tables(CommandGetTables {
            catalog: Some("carthouse".into()),
            db_schema_filter_pattern: Some("public".into()),
            table_name_filter_pattern: None,
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let batches = fetch(&mut c, info).await.unwrap();
    let names = batches[0].column_by_name("table_name").unwrap();
    let names = names.as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(names.len(), 1);
    assert_eq!(names.value(0), "events");
    let info = c
        .get_sql_info(vec![SqlInfo::FlightSqlServerName])
        .await
        .unwrap();
    assert_eq!(fetch(&mut c, info).await.unwrap()[0].num_rows(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_grpc_codes() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path()).await;
    let mut c = client(&server).await;
    let code = |e: arrow_flight::error::FlightError| match e {
        arrow_flight::error::FlightError::Tonic(s) => s.code(),
        other => panic!("not a gRPC status: {other:?}"),
    };
    assert_eq!(
        code(c.execute("selec 1".into(), None).await.unwrap_err()),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            c.execute("select * from nope".into(), None)
                .await
                .unwrap_err()
        ),
        Code::NotFound
    );
    let e = c
        .execute_update(
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/no/such/'".into(),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(code(e), Code::NotFound);
    // A closed prepared statement handle is a clear error, and the server keeps serving.
    let ps = c.prepare("select 1".into(), None).await.unwrap();
    let mut again = ps.clone();
    ps.close().await.unwrap();
    assert_eq!(code(again.execute().await.unwrap_err()), Code::NotFound);
    let info = c.execute("select 1 as one".into(), None).await.unwrap();
    assert_eq!(fetch(&mut c, info).await.unwrap()[0].num_rows(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_statistics_actions() {
    use arrow_flight::Action;
    use arrow_flight::flight_service_client::FlightServiceClient;
    use carthouse::server::flight::actions::{SERVER_STATISTICS, TABLE_STATISTICS, proto};
    use prost::Message;

    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path()).await;
    let mut sql = client(&server).await;
    sql.execute_update(create_events_sql("events"), None)
        .await
        .unwrap();

    let channel = server.flight_channel().await;
    let mut c = FlightServiceClient::new(channel);
    let listed: Vec<String> = c
        .list_actions(arrow_flight::Empty {})
        .await
        .unwrap()
        .into_inner()
        .map_ok(|a| a.r#type)
        .try_collect()
        .await
        .unwrap();
    assert!(listed.contains(&TABLE_STATISTICS.to_string()), "{listed:?}");

    let action = |r#type: &str, body: Vec<u8>| Action {
        r#type: r#type.into(),
        body: body.into(),
    };
    let mut results = c
        .do_action(action(
            TABLE_STATISTICS,
            proto::TableStatisticsRequest {
                table: "events".into(),
            }
            .encode_to_vec(),
        ))
        .await
        .unwrap()
        .into_inner();
    let result = results.message().await.unwrap().unwrap();
    let stats = proto::TableStatistics::decode(result.body).unwrap();
    assert_eq!(stats.num_rows, Some(30_000));
    assert!(stats.exact);
    let price = stats.columns.iter().find(|c| c.name == "price").unwrap();
    assert_eq!(price.null_count, Some(0));
    let (min, max): (f64, f64) = (
        price.min.as_ref().unwrap().parse().unwrap(),
        price.max.as_ref().unwrap().parse().unwrap(),
    );
    assert!(0.0 < min && min < max, "price min {min} max {max}");

    let mut results = c
        .do_action(action(
            SERVER_STATISTICS,
            proto::ServerStatisticsRequest {}.encode_to_vec(),
        ))
        .await
        .unwrap()
        .into_inner();
    let server_stats =
        proto::ServerStatistics::decode(results.message().await.unwrap().unwrap().body).unwrap();
    assert_eq!(server_stats.tables, 1);
    assert_eq!(server_stats.version, env!("CARGO_PKG_VERSION"));

    // An unknown table and an unknown action are clear errors.
    let e = c
        .do_action(action(
            TABLE_STATISTICS,
            proto::TableStatisticsRequest {
                table: "nope".into(),
            }
            .encode_to_vec(),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c
        .do_action(action("no.such.action", vec![]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    server.stop().await;
}
