//! Custom Flight actions (proto/carthouse/v1/flight_actions.proto): server and table
//! statistics, which Flight SQL has no command for.

use arrow_flight::{ActionType, Result as FlightResult};
use datafusion::common::stats::Precision;
use datafusion::physical_plan::{StatisticsArgs, StatisticsContext};
use prost::Message;
use tonic::Status;

use super::{FlightSqlFrontEnd, status};

/// The messages generated from proto/ at build time.
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/carthouse.v1.rs"));
}

pub const SERVER_STATISTICS: &str = "carthouse.ServerStatistics";
pub const TABLE_STATISTICS: &str = "carthouse.TableStatistics";

/// The custom actions, as ListActions reports them.
pub fn action_types() -> Vec<ActionType> {
    vec![
        ActionType {
            r#type: SERVER_STATISTICS.into(),
            description: "Server version, uptime, table and open prepared statement counts. \
                          Body: carthouse.v1.ServerStatisticsRequest; result: ServerStatistics."
                .into(),
        },
        ActionType {
            r#type: TABLE_STATISTICS.into(),
            description: "Row count, size and per-column null count, min and max of a table, \
                          from file metadata. Body: carthouse.v1.TableStatisticsRequest; \
                          result: TableStatistics."
                .into(),
        },
    ]
}

impl FlightSqlFrontEnd {
    /// Runs a custom action; `None` when `action_type` is not one of ours.
    pub(super) async fn custom_action(
        &self,
        action_type: &str,
        body: &[u8],
    ) -> Option<Result<FlightResult, Status>> {
        let result = match action_type {
            SERVER_STATISTICS => self.server_statistics(body).map(|m| m.encode_to_vec()),
            TABLE_STATISTICS => self.table_statistics(body).await.map(|m| m.encode_to_vec()),
            _ => return None,
        };
        Some(result.map(|body| FlightResult { body: body.into() }))
    }

    fn server_statistics(&self, body: &[u8]) -> Result<proto::ServerStatistics, Status> {
        proto::ServerStatisticsRequest::decode(body)
            .map_err(|e| Status::invalid_argument(format!("bad ServerStatisticsRequest: {e}")))?;
        let tables = self
            .ctx()
            .catalog(crate::query::CATALOG_NAME)
            .and_then(|c| c.schema(crate::query::SCHEMA_NAME))
            .map(|s| s.table_names().len())
            .unwrap_or(0);
        Ok(proto::ServerStatistics {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.started.elapsed().as_secs(),
            tables: tables as u32,
            open_prepared_statements: self.open_prepared() as u64,
            datafusion_version: datafusion::DATAFUSION_VERSION.into(),
        })
    }

    async fn table_statistics(&self, body: &[u8]) -> Result<proto::TableStatistics, Status> {
        let request = proto::TableStatisticsRequest::decode(body)
            .map_err(|e| Status::invalid_argument(format!("bad TableStatisticsRequest: {e}")))?;
        let df = self
            .ctx()
            .table(request.table.as_str())
            .await
            .map_err(|e| status(&e))?;
        let schema = df.schema().as_arrow().clone();
        let plan = df.create_physical_plan().await.map_err(|e| status(&e))?;
        // Metadata only: the scan's statistics come from Parquet footers, no data is read.
        let stats = {
            let statistics = StatisticsContext::new();
            statistics
                .compute(plan.as_ref(), &StatisticsArgs::new())
                .map_err(|e| status(&e))?
        };
        let value = |p: &Precision<usize>| p.get_value().map(|v| *v as u64);
        let columns = schema
            .fields()
            .iter()
            .zip(stats.column_statistics.iter())
            .map(|(field, c)| proto::ColumnStatistics {
                name: field.name().clone(),
                data_type: field.data_type().to_string(),
                null_count: value(&c.null_count),
                min: c
                    .min_value
                    .get_value()
                    .filter(|v| !v.is_null())
                    .map(|v| v.to_string()),
                max: c
                    .max_value
                    .get_value()
                    .filter(|v| !v.is_null())
                    .map(|v| v.to_string()),
            })
            .collect();
        Ok(proto::TableStatistics {
            table: request.table,
            num_rows: value(&stats.num_rows),
            total_byte_size: value(&stats.total_byte_size),
            exact: matches!(stats.num_rows, Precision::Exact(_)),
            columns,
        })
    }
}
