//! The Postgres wire protocol front end (pgwire, through datafusion-postgres).
//!
//! A thin adapter: datafusion-postgres does the protocol work (simple and extended query,
//! type encoding, `SET`/`SHOW`, transactions, cursors, pg_catalog); this file adds the three
//! things carthouse needs on top: catalog DDL (`CREATE EXTERNAL TABLE`, `DROP TABLE`) routed
//! to [`crate::catalog`] so it is persisted, the connect-time parameters BI tools expect, and
//! the mapping of every error to a SQLSTATE, in one place ([`sqlstate`]).

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion_postgres::hooks::QueryHook;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::{DfSessionService, Parser as DfParser};
use futures::{Sink, SinkExt};
use pgwire::api::auth::StartupHandler;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, ErrorHandler, PgWireServerHandlers, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::startup::ParameterStatus;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::catalog::{
    self, Catalog, CatalogOutcome, CatalogStatement, QueryPiece, split_catalog_statements,
};
use crate::shutdown::Shutdown;

/// The statement type datafusion-postgres stores per prepared statement. `None` as the plan
/// marks a catalog statement carthouse runs itself.
type DfStatement = (
    String,
    Option<(
        datafusion::sql::sqlparser::ast::Statement,
        datafusion::logical_expr::LogicalPlan,
    )>,
);

/// All pgwire handlers of one server.
pub struct PgHandlers {
    service: Arc<PgService>,
    startup: Arc<PgStartup>,
    cancel: Arc<DefaultCancelHandler>,
}

impl PgHandlers {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(CursorStatementHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
        ];
        let ctx = Arc::new(catalog.session_context().clone());
        let inner = Arc::new(DfSessionService::new_with_hooks(ctx, hooks));
        let parser = Arc::new(PgParser {
            inner: inner.query_parser(),
        });
        let connections = Arc::new(ConnectionManager::new());
        Self {
            service: Arc::new(PgService {
                inner,
                parser,
                catalog,
            }),
            startup: Arc::new(PgStartup {
                connections: connections.clone(),
            }),
            cancel: Arc::new(DefaultCancelHandler::new(connections)),
        }
    }
}

impl PgWireServerHandlers for PgHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.service.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.service.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(SqlStateMapper)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
}

/// Accepts connections until shutdown; each connection runs on its own task, so a client
/// sending garbage or disconnecting mid-query affects only itself.
pub async fn serve(listener: TcpListener, handlers: Arc<PgHandlers>, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, addr)) => {
                    let _ = socket.set_nodelay(true);
                    let handlers = handlers.clone();
                    tokio::spawn(async move {
                        if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                            debug!(%addr, error = %e, "postgres connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    warn!(error = %e, "accepting a postgres connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
    info!("postgres listener stopped");
}

/// Query handling: catalog DDL here, everything else to datafusion-postgres.
pub struct PgService {
    inner: Arc<DfSessionService>,
    parser: Arc<PgParser>,
    catalog: Arc<Catalog>,
}

impl PgService {
    async fn run_catalog(&self, statement: &CatalogStatement) -> PgWireResult<Response> {
        let outcome = self
            .catalog
            .execute(statement)
            .await
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let tag = match outcome {
            CatalogOutcome::Created => "CREATE EXTERNAL TABLE",
            CatalogOutcome::Dropped => "DROP TABLE",
        };
        Ok(Response::Execution(Tag::new(tag)))
    }
}

#[async_trait]
impl SimpleQueryHandler for PgService {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(pieces) = split_catalog_statements(query) else {
            return SimpleQueryHandler::do_query(self.inner.as_ref(), client, query).await;
        };
        let mut responses = Vec::with_capacity(pieces.len());
        for piece in pieces {
            match piece {
                QueryPiece::Catalog(statement) => {
                    responses.push(self.run_catalog(&statement).await?)
                }
                QueryPiece::Sql(sql) => responses.extend(
                    SimpleQueryHandler::do_query(self.inner.as_ref(), client, &sql).await?,
                ),
            }
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for PgService {
    type Statement = DfStatement;
    type QueryParser = PgParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (sql, plan) = &portal.statement.statement;
        if plan.is_none()
            && let Some(pieces) = split_catalog_statements(sql)
        {
            return match pieces.as_slice() {
                [QueryPiece::Catalog(statement)] => self.run_catalog(statement).await,
                _ => Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                    "ERROR".into(),
                    "42601".into(),
                    "cannot insert multiple commands into a prepared statement".into(),
                )))),
            };
        }
        ExtendedQueryHandler::do_query(self.inner.as_ref(), client, portal, max_rows).await
    }
}

/// Parses extended-protocol statements: catalog DDL is kept as text (no plan) for
/// [`PgService`] to run; the rest is planned by datafusion-postgres.
pub struct PgParser {
    inner: Arc<DfParser>,
}

#[async_trait]
impl QueryParser for PgParser {
    type Statement = DfStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        if split_catalog_statements(sql).is_some() {
            return Ok(Some((sql.to_string(), None)));
        }
        self.inner.parse_sql(client, sql, types).await
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.inner.get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.inner.get_result_schema(stmt, column_format)
    }
}

/// Startup without authentication (auth is on the roadmap), registering each connection for
/// query cancel, and announcing the parameters that drivers and BI tools read at connect.
pub struct PgStartup {
    connections: Arc<ConnectionManager>,
}

#[async_trait]
impl NoopStartupHandler for PgStartup {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.connections.clone())
    }

    async fn post_startup<C>(
        &self,
        client: &mut C,
        _message: pgwire::messages::PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // Tableau and pgjdbc read these; pgwire's defaults do not include them.
        for (name, value) in [("client_min_messages", "notice"), ("extra_float_digits", "1")] {
            client
                .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                    name.to_string(),
                    value.to_string(),
                )))
                .await?;
        }
        Ok(())
    }
}

/// Rewrites every error into an `ErrorResponse` with a proper SQLSTATE before it is sent.
struct SqlStateMapper;

impl ErrorHandler for SqlStateMapper {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        if let PgWireError::ApiError(source) = error {
            let (code, message) = sqlstate(source.as_ref());
            debug!(code, %message, "query error");
            *error = PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".to_string(),
                code.to_string(),
                message,
            )));
        }
    }
}

/// The SQLSTATE and message for an error raised while handling a query: the one place where
/// engine and catalog errors become Postgres errors.
pub fn sqlstate(error: &(dyn std::error::Error + 'static)) -> (&'static str, String) {
    if let Some(e) = error.downcast_ref::<catalog::Error>() {
        return match e {
            catalog::Error::LocationNotFound { .. } => ("58P01", e.to_string()),
            catalog::Error::LocationUnreadable { .. } => ("58030", e.to_string()),
            catalog::Error::S3Config { .. } => ("22023", e.to_string()),
            catalog::Error::TableNotFound { .. } => ("42P01", e.to_string()),
            catalog::Error::Store(_) => ("58030", e.to_string()),
            catalog::Error::Query(inner) => datafusion_sqlstate(inner),
        };
    }
    if let Some(e) = error.downcast_ref::<DataFusionError>() {
        return datafusion_sqlstate(e);
    }
    if let Some(e) = error.downcast_ref::<ParserError>() {
        return ("42601", e.to_string());
    }
    ("XX000", error.to_string())
}

fn datafusion_sqlstate(error: &DataFusionError) -> (&'static str, String) {
    let root = error.find_root();
    let message = root.strip_backtrace();
    let lower = message.to_ascii_lowercase();
    let code = match root {
        DataFusionError::SQL(..) => "42601",
        DataFusionError::SchemaError(e, _) => match e.as_ref() {
            datafusion::common::SchemaError::FieldNotFound { .. } => "42703",
            datafusion::common::SchemaError::AmbiguousReference { .. } => "42702",
            _ => "42P16",
        },
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::ResourcesExhausted(_) => "53200",
        DataFusionError::ObjectStore(e) if matches!(e.as_ref(), object_store::Error::NotFound { .. }) => {
            "58P01"
        }
        DataFusionError::ObjectStore(_) | DataFusionError::IoError(_) => "58030",
        DataFusionError::ArrowError(e, _) => arrow_sqlstate(e),
        DataFusionError::External(e) => {
            if let Some(a) = e.downcast_ref::<datafusion::arrow::error::ArrowError>() {
                arrow_sqlstate(a)
            } else {
                "XX000"
            }
        }
        DataFusionError::Plan(_) | DataFusionError::Execution(_) => {
            if lower.contains("not found") && lower.contains("table") {
                "42P01"
            } else if lower.contains("already exists") {
                "42P07"
            } else if lower.contains("invalid function") || lower.contains("no function matches") {
                "42883"
            } else if lower.contains("cannot cast")
                || lower.contains("cannot be cast")
                || lower.contains("cannot parse")
                || lower.contains("invalid input syntax")
            {
                "22P02"
            } else if lower.contains("divide by zero") || lower.contains("division by zero") {
                "22012"
            } else if lower.contains("coerc")
                || lower.contains("type")
                || lower.contains("does not support")
                || lower.contains("unsupported")
            {
                "42804"
            } else if lower.contains("parameter") || lower.contains("placeholder") {
                "08P01"
            } else if matches!(root, DataFusionError::Plan(_)) {
                "42P10"
            } else {
                "XX000"
            }
        }
        DataFusionError::Configuration(_) => "22023",
        _ => "XX000",
    };
    (code, message)
}

fn arrow_sqlstate(e: &datafusion::arrow::error::ArrowError) -> &'static str {
    use datafusion::arrow::error::ArrowError as A;
    match e {
        A::DivideByZero => "22012",
        A::CastError(_) | A::ParseError(_) => "22P02",
        A::ArithmeticOverflow(_) => "22003",
        A::MemoryError(_) => "53200",
        A::NotYetImplemented(_) => "0A000",
        _ => "XX000",
    }
}

/// Binds the Postgres listener (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn maps_engine_errors_to_sqlstate() {
        let ctx = datafusion::prelude::SessionContext::new();
        let code = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let e = match ctx.sql(sql).await {
                    Ok(df) => df.collect().await.unwrap_err(),
                    Err(e) => e,
                };
                datafusion_sqlstate(&e).0
            }
        };
        assert_eq!(code("selec 1").await, "42601");
        assert_eq!(code("select * from nope").await, "42P01");
        assert_eq!(code("select nope from (select 1 as a)").await, "42703");
        assert_eq!(code("select cast('abc' as int)").await, "22P02");
        assert_eq!(code("select 1/0").await, "22012");
    }

    #[test]
    fn maps_catalog_errors() {
        let e = catalog::Error::LocationNotFound {
            location: "/nope".into(),
        };
        let (code, msg) = sqlstate(&e);
        assert_eq!(code, "58P01");
        assert!(msg.contains("/nope"));
    }
}
