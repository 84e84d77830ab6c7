//! Catalog: which tables exist, where their files are, and keeping that across restarts.
//!
//! File tables are DataFusion listing tables over Parquet or CSV, on local disk or S3; they
//! come from the config file (registered at every start) or from `CREATE EXTERNAL TABLE`
//! (persisted in the data directory by [`store`] and restored at start). The query engine
//! ([`crate::query`]) reads them; every front end sends catalog DDL here so that a table made
//! over psql is the same table a later Flight SQL or HTTP client sees.

pub mod object_stores;
pub mod store;

use std::path::Path;
use std::sync::Arc;

use datafusion::common::TableReference;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{ObjectType, Statement as SqlStatement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use tokio::sync::Mutex;

use crate::config::{Config, S3Config};
use store::{CatalogStore, TableEntry};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("location '{location}' does not exist")]
    LocationNotFound { location: String },
    #[error("cannot read location '{location}': {source}")]
    LocationUnreadable {
        location: String,
        source: object_store::Error,
    },
    #[error("invalid S3 configuration for '{location}': {source}")]
    S3Config {
        location: String,
        source: object_store::Error,
    },
    #[error("table '{name}' does not exist")]
    TableNotFound { name: String },
    #[error(transparent)]
    Query(#[from] DataFusionError),
    #[error(transparent)]
    Store(#[from] store::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A catalog statement recognised in client SQL.
#[derive(Debug, Clone)]
pub enum CatalogStatement {
    /// `CREATE EXTERNAL TABLE ...`, with its normalised name and original text.
    CreateExternal {
        name: String,
        sql: String,
        locations: Vec<String>,
        temporary: bool,
    },
    /// `DROP TABLE [IF EXISTS] a, b`.
    DropTables { names: Vec<String>, if_exists: bool },
}

/// One piece of a client query: a catalog statement or SQL for the query engine.
#[derive(Debug, Clone)]
pub enum QueryPiece {
    Catalog(CatalogStatement),
    Sql(String),
}

/// What a catalog statement did, for the command tag a front end replies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogOutcome {
    Created,
    Dropped,
}

/// Splits a client query into catalog statements and plain SQL. Returns `None` when the query
/// holds no catalog statement (the common case: the caller hands the text on untouched), or
/// when it does not parse (the query engine then reports the syntax error itself).
pub fn split_catalog_statements(query: &str) -> Option<Vec<QueryPiece>> {
    // Cheap pre-check so ordinary queries are not parsed twice.
    let lower = query.to_ascii_lowercase();
    if !(lower.contains("external") || lower.contains("drop")) {
        return None;
    }
    let statements = DFParser::parse_sql_with_dialect(query, &PostgreSqlDialect {}).ok()?;
    let single = statements.len() == 1;
    let mut any = false;
    let mut pieces = Vec::with_capacity(statements.len());
    for st in statements {
        match st {
            DFStatement::CreateExternalTable(cmd) => {
                any = true;
                let name = normalize_name(&cmd.name.to_string());
                let sql = if single {
                    query.trim().trim_end_matches(';').to_string()
                } else {
                    cmd.to_string()
                };
                pieces.push(QueryPiece::Catalog(CatalogStatement::CreateExternal {
                    name,
                    sql,
                    locations: cmd.locations.clone(),
                    temporary: cmd.temporary,
                }));
            }
            DFStatement::Statement(s)
                if matches!(
                    s.as_ref(),
                    SqlStatement::Drop {
                        object_type: ObjectType::Table,
                        ..
                    }
                ) =>
            {
                any = true;
                if let SqlStatement::Drop {
                    names, if_exists, ..
                } = *s
                {
                    pieces.push(QueryPiece::Catalog(CatalogStatement::DropTables {
                        names: names
                            .iter()
                            .map(|n| normalize_name(&n.to_string()))
                            .collect(),
                        if_exists,
                    }));
                }
            }
            other => pieces.push(QueryPiece::Sql(other.to_string())),
        }
    }
    any.then_some(pieces)
}

/// `Events` → `events`, `"Events"` → `Events`, as DataFusion resolves names.
fn normalize_name(name: &str) -> String {
    TableReference::parse_str(name).to_string()
}

/// The table registry of one server.
pub struct Catalog {
    ctx: SessionContext,
    store: CatalogStore,
    s3: S3Config,
    /// Persisted definitions; the lock also serialises DDL so file writes never interleave.
    persisted: Mutex<Vec<TableEntry>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Catalog {
    /// Opens the catalog of `config.server.data_dir` for `ctx` without registering anything.
    pub fn open(ctx: SessionContext, config: &Config) -> Result<Self> {
        let store = CatalogStore::new(&config.server.data_dir);
        let persisted = store.load()?;
        Ok(Self {
            ctx,
            store,
            s3: config.s3.clone(),
            persisted: Mutex::new(persisted),
        })
    }

    pub fn session_context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Registers the config file's tables and the persisted ones. A table that cannot be
    /// registered (its files are gone, S3 is unreachable) is reported and skipped; its
    /// definition is kept, so it comes back once the location is reachable again.
    pub async fn restore(&self, config: &Config) -> Vec<(String, Error)> {
        let mut failures = Vec::new();
        for t in &config.tables {
            if let Err(e) = self.register_unpersisted(&t.to_create_sql()).await {
                failures.push((t.name.clone(), e));
            }
        }
        let entries = self.persisted.lock().await.clone();
        for entry in entries {
            if let Err(e) = self.register_unpersisted(&entry.sql).await {
                failures.push((entry.name.clone(), e));
            }
        }
        failures
    }

    /// Registers a table from a `CREATE EXTERNAL TABLE` statement without persisting it
    /// (config tables, the demo dataset, restored entries).
    pub async fn register_unpersisted(&self, sql: &str) -> Result<()> {
        let pieces = split_catalog_statements(sql).unwrap_or_default();
        match pieces.as_slice() {
            [QueryPiece::Catalog(CatalogStatement::CreateExternal { locations, .. })] => {
                self.check_locations(locations).await?;
                self.ctx.sql(sql).await?.collect().await?;
                Ok(())
            }
            _ => Err(Error::Query(DataFusionError::Plan(format!(
                "not a CREATE EXTERNAL TABLE statement: {sql}"
            )))),
        }
    }

    /// Runs a catalog statement for a client.
    pub async fn execute(&self, statement: &CatalogStatement) -> Result<CatalogOutcome> {
        match statement {
            CatalogStatement::CreateExternal {
                name,
                sql,
                locations,
                temporary,
            } => {
                let mut persisted = self.persisted.lock().await;
                let existed = self.ctx.table_exist(name.as_str())?;
                self.check_locations(locations).await?;
                self.ctx.sql(sql).await?.collect().await?;
                // `IF NOT EXISTS` on an existing table changed nothing: keep the old entry.
                if *temporary || existed && !is_or_replace(sql) {
                    return Ok(CatalogOutcome::Created);
                }
                let mut next = persisted.clone();
                next.retain(|e| &e.name != name);
                next.push(TableEntry {
                    name: name.clone(),
                    sql: sql.clone(),
                });
                if let Err(e) = self.store.save(&next) {
                    // Not durable, so not created: undo the registration.
                    let _ = self.ctx.deregister_table(name.as_str());
                    return Err(e.into());
                }
                *persisted = next;
                Ok(CatalogOutcome::Created)
            }
            CatalogStatement::DropTables { names, if_exists } => {
                let mut persisted = self.persisted.lock().await;
                for name in names {
                    if !self.ctx.table_exist(name.as_str())? && !*if_exists {
                        return Err(Error::TableNotFound { name: name.clone() });
                    }
                }
                let mut next = persisted.clone();
                next.retain(|e| !names.contains(&e.name));
                if next.len() != persisted.len() {
                    self.store.save(&next)?;
                    *persisted = next;
                }
                for name in names {
                    self.ctx.deregister_table(name.as_str())?;
                }
                Ok(CatalogOutcome::Dropped)
            }
        }
    }

    /// Fails early, with the location in the message, when a table's files are not there;
    /// DataFusion would otherwise infer an empty schema or report a less direct error.
    async fn check_locations(&self, locations: &[String]) -> Result<()> {
        for location in locations {
            if let Some(url) = object_stores::s3_url(location) {
                let store = object_stores::register_s3(&self.ctx, &self.s3, &url, location)?;
                object_stores::check_prefix_exists(store.as_ref(), &url, location).await?;
            } else if !location.contains("://") || location.starts_with("file://") {
                let path = location.strip_prefix("file://").unwrap_or(location);
                let has_glob = path.contains(['*', '?', '[']);
                if !has_glob && !Path::new(path).exists() {
                    return Err(Error::LocationNotFound {
                        location: location.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

fn is_or_replace(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    lower.split_whitespace().take(4).any(|w| w == "replace")
}

/// Convenience for callers holding an `Arc<Catalog>`.
pub type SharedCatalog = Arc<Catalog>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_queries_are_not_parsed() {
        assert!(split_catalog_statements("select 1").is_none());
        assert!(split_catalog_statements("select * from drops").is_none());
    }

    #[test]
    fn recognises_create_and_drop() {
        let p = split_catalog_statements(
            "CREATE EXTERNAL TABLE Events STORED AS PARQUET PARTITIONED BY (date) LOCATION '/x/'",
        )
        .unwrap();
        match &p[..] {
            [
                QueryPiece::Catalog(CatalogStatement::CreateExternal {
                    name, locations, ..
                }),
            ] => {
                assert_eq!(name, "events");
                assert_eq!(locations, &vec!["/x/".to_string()]);
            }
            other => panic!("unexpected {other:?}"),
        }
        let p = split_catalog_statements("drop table if exists a, \"B\"; select 1").unwrap();
        match &p[..] {
            [
                QueryPiece::Catalog(CatalogStatement::DropTables { names, if_exists }),
                QueryPiece::Sql(s),
            ] => {
                assert_eq!(names, &vec!["a".to_string(), "B".to_string()]);
                assert!(*if_exists);
                assert_eq!(s.to_lowercase(), "select 1");
            }
            other => panic!("unexpected {other:?}"),
        }
        // DROP VIEW is the engine's business.
        assert!(split_catalog_statements("drop view v").is_none());
    }
}
