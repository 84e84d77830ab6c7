//! Query: the one DataFusion `SessionContext` every front end runs SQL on.
//!
//! It is set up here once: the `carthouse` catalog with its `public` schema (file tables from
//! [`crate::catalog`]), `information_schema`, the Postgres `pg_catalog` schema and functions that
//! BI tools ask for at connect time, and engine options for this workload. [`guard`] holds the
//! checks every front end runs on a statement before it is planned.

pub mod errors;
pub mod guard;

use std::sync::Arc;

use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_postgres::auth::AuthManager;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;

use crate::config::Config;

/// The catalog (Postgres "database") name clients connect to.
pub const CATALOG_NAME: &str = "carthouse";
pub const SCHEMA_NAME: &str = "public";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot set up the query engine: {0}")]
    Setup(#[from] DataFusionError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Builds the session context for a server with `config`.
pub fn build_session_context(config: &Config) -> Result<SessionContext> {
    let mut session_config = SessionConfig::new()
        .with_information_schema(true)
        .with_default_catalog_and_schema(CATALOG_NAME, SCHEMA_NAME)
        .with_create_default_catalog_and_schema(true);
    if config.server.target_partitions > 0 {
        session_config = session_config.with_target_partitions(config.server.target_partitions);
    }
    let options = session_config.options_mut();
    // Hive partition values and row-group statistics prune files before they are opened.
    options.execution.parquet.pruning = true;
    options.execution.listing_table_ignore_subdirectory = false;
    options.execution.collect_statistics = true;
    // Strings read from Parquet as plain Utf8, not Utf8View: Flight SQL clients get the same
    // Arrow types DuckDB and pyarrow give for the same files. (Issue 6 measures the cost.)
    options.execution.parquet.schema_force_view_types = false;
    // `TIMESTAMP WITH TIME ZONE` casts and `now()` are in UTC, like the event data.
    options.execution.time_zone = Some("UTC".into());
    let runtime = RuntimeEnvBuilder::new().build_arc()?;
    let state = SessionStateBuilder::new()
        .with_config(session_config)
        .with_runtime_env(runtime)
        .with_default_features()
        .build();
    let ctx = SessionContext::new_with_state(state);
    setup_pg_catalog(&ctx, CATALOG_NAME, Arc::new(AuthManager::default())).map_err(|e| *e)?;
    crate::functions::register_all(&ctx);
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn context_has_pg_catalog_and_information_schema() {
        let ctx = build_session_context(&Config::default()).unwrap();
        let batches = ctx
            .sql("select current_database(), count(*) from pg_catalog.pg_namespace")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(batches[0].num_rows(), 1);
        ctx.sql("show tables")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
    }
}
