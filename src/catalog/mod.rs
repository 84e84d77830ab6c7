//! Catalog: which tables exist, where their files are, and keeping that across restarts.
//!
//! File tables are DataFusion listing tables over Parquet or CSV, on local disk or S3; they
//! come from the config file (registered at every start) or from `CREATE EXTERNAL TABLE`
//! (persisted in the data directory by [`store`] and restored at start). The query engine
//! ([`crate::query`]) reads them; every front end sends catalog DDL here so that a table made
//! over psql is the same table a later Flight SQL or HTTP client sees.

pub mod live;
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

use crate::buffer::{LiveTableDef, TableData};
use crate::config::{Config, LiveTableConfig, S3Config};
use crate::ingest;
use live::{LiveRuntime, LiveTableProvider};
use store::{CatalogStore, LiveEntry, TableEntry};

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
    #[error("table '{name}' already exists")]
    TableExists { name: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot remove the data of live table '{name}': {source}")]
    Persist {
        name: String,
        source: crate::persist::Error,
    },
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
    /// `CREATE [OR REPLACE] TABLE [IF NOT EXISTS] t (columns...)`: a live table.
    CreateLive {
        name: String,
        sql: String,
        if_not_exists: bool,
        or_replace: bool,
        /// `CREATE TABLE ... AS SELECT` (not supported yet: rejected with a hint).
        has_query: bool,
    },
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
    if !(lower.contains("external")
        || lower.contains("drop")
        || (lower.contains("create") && lower.contains("table")))
    {
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
            DFStatement::Statement(s) if matches!(s.as_ref(), SqlStatement::CreateTable(_)) => {
                any = true;
                if let SqlStatement::CreateTable(ct) = s.as_ref() {
                    pieces.push(QueryPiece::Catalog(CatalogStatement::CreateLive {
                        name: normalize_name(&ct.name.to_string()),
                        sql: s.to_string(),
                        if_not_exists: ct.if_not_exists,
                        or_replace: ct.or_replace,
                        has_query: ct.query.is_some(),
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
    live: LiveRuntime,
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
    pub fn open(ctx: SessionContext, config: &Config, live: LiveRuntime) -> Result<Self> {
        let store = CatalogStore::new(&config.server.data_dir);
        let persisted = store.load()?;
        Ok(Self {
            ctx,
            store,
            s3: config.s3.clone(),
            persisted: Mutex::new(persisted),
            live,
        })
    }

    pub fn live(&self) -> &LiveRuntime {
        &self.live
    }

    /// The live table `name`, for the ingest front ends.
    pub async fn live_table(&self, name: &str) -> Result<Arc<TableData>, ingest::Error> {
        let name = normalize_name(name);
        let provider = self
            .ctx
            .table_provider(name.as_str())
            .await
            .map_err(|_| ingest::Error::TableNotFound { name: name.clone() })?;
        match provider.downcast_ref::<LiveTableProvider>() {
            Some(p) => Ok(p.data().clone()),
            None => Err(ingest::Error::NotLive { name }),
        }
    }

    async fn live_def_of(&self, name: &str) -> Option<Arc<LiveTableDef>> {
        let provider = self.ctx.table_provider(name).await.ok()?;
        provider
            .downcast_ref::<LiveTableProvider>()
            .map(|p| p.data().def.clone())
    }

    /// Plans a `CREATE TABLE` statement into a live table definition (nothing registered).
    async fn plan_live(
        &self,
        sql: &str,
        id: String,
        time_column: Option<&str>,
        retention_days: Option<u32>,
    ) -> Result<LiveTableDef> {
        use datafusion::logical_expr::{DdlStatement, LogicalPlan};
        let state = self.ctx.state();
        let statement = state.sql_to_statement(sql, &datafusion::config::Dialect::PostgreSQL)?;
        let plan = state.statement_to_plan(statement).await?;
        let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) = plan else {
            return Err(Error::Unsupported(format!(
                "not a CREATE TABLE statement: {sql}"
            )));
        };
        let name = create.name.table().to_string();
        let declared = create.input.schema().as_arrow().clone();
        Ok(live::def_from_schema(
            id,
            &name,
            &declared,
            time_column,
            retention_days,
        )?)
    }

    /// Registers a live table: its data in the live-table registry, its provider in the engine,
    /// its persisted files from the manifest.
    async fn register_live(&self, def: LiveTableDef) -> Result<()> {
        let def = Arc::new(def);
        let data = self.live.ingester.tables().insert(def.clone());
        data.set_files(self.live.persister.files_of(&def.id).await);
        let provider = LiveTableProvider::new(data, self.live.clone());
        if let Err(e) = self
            .ctx
            .register_table(def.name.as_str(), Arc::new(provider))
        {
            self.live.ingester.tables().remove(&def.id);
            return Err(e.into());
        }
        Ok(())
    }

    async fn restore_live(&self, sql: &str, entry: &LiveEntry) -> Result<()> {
        let def = self
            .plan_live(
                sql,
                entry.id.clone(),
                Some(&entry.time_column),
                entry.retention_days,
            )
            .await?;
        self.register_live(def).await
    }

    async fn register_config_live(&self, t: &LiveTableConfig) -> Result<()> {
        let def = self
            .plan_live(
                &t.to_create_sql(),
                t.id(),
                t.time_column.as_deref(),
                t.retention_days,
            )
            .await?;
        self.register_live(def).await
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
        for t in &config.live_tables {
            if let Err(e) = self.register_config_live(t).await {
                failures.push((t.name.clone(), e));
            }
        }
        let entries = self.persisted.lock().await.clone();
        for entry in entries {
            let result = match &entry.live {
                Some(live) => self.restore_live(&entry.sql, live).await,
                None => self.register_unpersisted(&entry.sql).await,
            };
            if let Err(e) = result {
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
                    live: None,
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
                    let def = self.live_def_of(name).await;
                    self.ctx.deregister_table(name.as_str())?;
                    if let Some(def) = def {
                        self.drop_live_data(&def).await?;
                    }
                }
                Ok(CatalogOutcome::Dropped)
            }
            CatalogStatement::CreateLive {
                name,
                sql,
                if_not_exists,
                or_replace,
                has_query,
            } => {
                if *has_query {
                    return Err(Error::Unsupported(format!(
                        "CREATE TABLE ... AS SELECT is not supported for live tables yet: create \
                         '{name}' with its columns, then INSERT INTO {name} SELECT ..."
                    )));
                }
                let mut persisted = self.persisted.lock().await;
                if self.ctx.table_exist(name.as_str())? {
                    if *if_not_exists {
                        return Ok(CatalogOutcome::Created);
                    }
                    if !*or_replace {
                        return Err(Error::TableExists { name: name.clone() });
                    }
                }
                let id = uuid::Uuid::new_v4().simple().to_string();
                let def = self.plan_live(sql, id.clone(), None, None).await?;
                let entry = TableEntry {
                    name: name.clone(),
                    sql: sql.clone(),
                    live: Some(LiveEntry {
                        id,
                        time_column: def.time_column_name().to_string(),
                        retention_days: None,
                    }),
                };
                let mut next = persisted.clone();
                next.retain(|e| &e.name != name);
                next.push(entry);
                self.store.save(&next)?;
                *persisted = next;
                // OR REPLACE: the old table's data goes with it.
                if let Some(old) = self.live_def_of(name).await {
                    self.ctx.deregister_table(name.as_str())?;
                    self.drop_live_data(&old).await?;
                } else if self.ctx.table_exist(name.as_str())? {
                    self.ctx.deregister_table(name.as_str())?;
                }
                self.register_live(def).await?;
                Ok(CatalogOutcome::Created)
            }
        }
    }

    async fn drop_live_data(&self, def: &LiveTableDef) -> Result<()> {
        self.live.ingester.tables().remove(&def.id);
        self.live
            .persister
            .drop_table(def)
            .await
            .map_err(|source| Error::Persist {
                name: def.name.clone(),
                source,
            })
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
