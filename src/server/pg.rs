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
use datafusion_postgres::hooks::QueryHook;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::{DfSessionService, Parser as DfParser};
use futures::{Sink, SinkExt};
use pgwire::api::auth::StartupHandler;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::PortalExecutionState;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler, send_query_response};
use pgwire::api::results::{CopyResponse, FieldInfo, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::Entry;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, DEFAULT_NAME, ErrorHandler,
    PgWireConnectionState, PgWireServerHandlers, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::extendedquery::Execute;
use pgwire::messages::startup::ParameterStatus;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::buffer::TableData;
use crate::catalog::{
    Catalog, CatalogOutcome, CatalogStatement, QueryPiece, split_catalog_statements,
};
use crate::ingest::copy::{CopyDecoder, CopyOptions};
use crate::query::errors::{ErrorKind, classify};
use crate::query::guard::check_statement_complexity;
use crate::server::cancel::{PgCancel, QueryCancels};
use crate::server::pg_compat::PgCompatHook;
use crate::shutdown::Shutdown;

/// The statement type datafusion-postgres stores per prepared statement. `None` as the plan
/// marks a catalog statement carthouse runs itself.
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

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
    cancel: Arc<PgCancel>,
}

impl PgHandlers {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(PgCompatHook),
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
        let queries = Arc::new(QueryCancels::default());
        Self {
            service: Arc::new(PgService {
                inner,
                parser,
                catalog,
                queries: queries.clone(),
            }),
            startup: Arc::new(PgStartup {
                connections: connections.clone(),
            }),
            cancel: Arc::new(PgCancel {
                pgwire: DefaultCancelHandler::new(connections),
                queries,
            }),
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

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.service.clone()
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
                        // A panic while handling one client (pgwire 0.41's message decoder
                        // panics on some truncated messages) closes that connection only.
                        let connection = std::panic::AssertUnwindSafe(CONNECTION.scope(
                            addr,
                            pgwire::tokio::process_socket(socket, None, handlers),
                        ));
                        match futures::FutureExt::catch_unwind(connection).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => {
                                debug!(%addr, error = %e, "postgres connection ended with an error")
                            }
                            // The panic hook has logged what happened and where.
                            Err(_) => debug!(%addr, "postgres connection task stopped after a panic"),
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

tokio::task_local! {
    /// The client address of the connection a task serves, for [`install_panic_hook`].
    static CONNECTION: SocketAddr;
}

/// Reports a panic inside a connection task as one error line naming the client, instead of
/// the default panic message: the panic is caught, that connection is closed, the server goes
/// on. Panics anywhere else keep the default report.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let Ok(addr) = CONNECTION.try_with(|a| *a) else {
            return default(info);
        };
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(
            client = %addr,
            %location,
            "internal error in a postgres connection, closing it (the server continues): {message}"
        );
    }));
}

/// Query handling: catalog DDL here, everything else to datafusion-postgres.
pub struct PgService {
    inner: Arc<DfSessionService>,
    parser: Arc<PgParser>,
    catalog: Arc<Catalog>,
    queries: Arc<QueryCancels>,
}

/// The key a CancelRequest names a connection by.
fn connection_key<C: ClientInfo>(client: &C) -> (i32, Vec<u8>) {
    let (pid, secret) = client.pid_and_secret_key();
    (pid, secret.to_bytes().to_vec())
}

impl PgService {
    async fn run_catalog(&self, statement: &CatalogStatement) -> PgWireResult<Response> {
        let outcome = self
            .catalog
            .execute(statement)
            .await
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let tag = match outcome {
            CatalogOutcome::Created => match statement {
                CatalogStatement::CreateLive { .. } => "CREATE TABLE",
                _ => "CREATE EXTERNAL TABLE",
            },
            CatalogOutcome::Dropped => "DROP TABLE",
        };
        Ok(Response::Execution(Tag::new(tag)))
    }

    /// Starts `COPY table FROM STDIN` when `query` is one: the decoder goes into the
    /// connection's session state and the client is told to send its data.
    async fn start_copy<C: ClientInfo>(
        &self,
        client: &C,
        query: &str,
    ) -> PgWireResult<Option<Response>> {
        let Some(parsed) = parse_copy_from_stdin(query) else {
            return Ok(None);
        };
        let (table, columns, options) = parsed.map_err(|m| user_error("42601", m))?;
        let data = self
            .catalog
            .live_table(&table)
            .await
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let decoder = CopyDecoder::new(data.def.clone(), &columns, options)
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let columns = decoder.columns();
        let slot = client
            .session_extensions()
            .get_or_insert_with(CopySlot::default);
        *slot.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(CopyIn { data, decoder });
        Ok(Some(Response::CopyIn(CopyResponse::new(
            0,
            columns,
            futures::stream::empty(),
        ))))
    }
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message,
    )))
}

/// A COPY FROM STDIN in progress on one connection.
struct CopyIn {
    data: Arc<TableData>,
    decoder: CopyDecoder,
}

/// The connection's COPY state (pgwire session extensions have no remove, so an Option).
#[derive(Default)]
struct CopySlot(std::sync::Mutex<Option<CopyIn>>);

impl CopySlot {
    fn take(&self) -> Option<CopyIn> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// `COPY t [(cols)] FROM STDIN [WITH (...)]`: the table, the column list and the format.
/// `None` when the statement is not a COPY FROM STDIN (the engine reports other COPYs).
fn parse_copy_from_stdin(
    query: &str,
) -> Option<Result<(String, Vec<String>, CopyOptions), String>> {
    use datafusion::sql::sqlparser::ast::{
        CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget,
    };
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    let head = query.trim_start();
    if head.len() < 4
        || !head[..4].eq_ignore_ascii_case("copy")
        || !query.to_ascii_lowercase().contains("stdin")
    {
        return None;
    }
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, query).ok()?;
    let Some(SqlStatement::Copy {
        source: CopySource::Table {
            table_name,
            columns,
        },
        to: false,
        target: CopyTarget::Stdin,
        options,
        legacy_options,
        ..
    }) = statements.into_iter().next()
    else {
        return None;
    };
    let mut o = CopyOptions::text();
    let mut delimiter = None;
    let mut null = None;
    let mut header = false;
    for opt in options {
        match opt {
            CopyOption::Format(f) => match f.value.to_ascii_lowercase().as_str() {
                "csv" => o = CopyOptions::csv(),
                "text" => o = CopyOptions::text(),
                other => {
                    return Some(Err(format!(
                        "COPY format {other} is not supported (use text or csv)"
                    )));
                }
            },
            CopyOption::Delimiter(c) => delimiter = Some(c),
            CopyOption::Null(n) => null = Some(n),
            CopyOption::Header(h) => header = h,
            CopyOption::Quote(_) | CopyOption::Escape(_) | CopyOption::Encoding(_) => {}
            other => return Some(Err(format!("COPY option {other} is not supported"))),
        }
    }
    for opt in legacy_options {
        match opt {
            CopyLegacyOption::Csv(csv_opts) => {
                o = CopyOptions::csv();
                for c in csv_opts {
                    if matches!(c, CopyLegacyCsvOption::Header) {
                        header = true;
                    }
                }
            }
            CopyLegacyOption::Delimiter(c) => delimiter = Some(c),
            CopyLegacyOption::Null(n) => null = Some(n),
            CopyLegacyOption::Binary => {
                return Some(Err("COPY BINARY is not supported (use text or csv)".into()));
            }
            _ => {}
        }
    }
    if let Some(d) = delimiter {
        if !d.is_ascii() {
            return Some(Err("COPY delimiter must be a single ASCII character".into()));
        }
        o.delimiter = d as u8;
    }
    if let Some(n) = null {
        o.null = n;
    }
    o.header = header;
    let table = table_name.to_string();
    let columns = columns.iter().map(|c| c.value.clone()).collect();
    Some(Ok((table, columns, o)))
}

#[async_trait]
impl CopyHandler for PgService {
    async fn on_copy_data<C>(&self, client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let slot = client
            .session_extensions()
            .get_or_insert_with(CopySlot::default);
        let mut guard = slot.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(copy) = guard.as_mut() else {
            return Err(user_error("08P01", "no COPY in progress".into()));
        };
        if let Err(e) = copy.decoder.push(&copy_data.data) {
            // pgwire drops the rest of the data after an error and never calls on_copy_done.
            *guard = None;
            let table = copy_error(&e);
            return Err(PgWireError::ApiError(Box::new(table)));
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let slot = client
            .session_extensions()
            .get_or_insert_with(CopySlot::default);
        let Some(copy) = slot.take() else {
            return Err(user_error("08P01", "no COPY in progress".into()));
        };
        let batches = copy
            .decoder
            .finish()
            .map_err(|e| PgWireError::ApiError(Box::new(copy_error(&e))))?;
        let rows = self
            .catalog
            .live()
            .ingester
            .write(&copy.data, batches)
            .await
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        client
            .send(PgWireBackendMessage::CommandComplete(
                Tag::new("COPY").with_rows(rows as usize).into(),
            ))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        client
            .session_extensions()
            .get_or_insert_with(CopySlot::default)
            .take();
        user_error("57014", format!("COPY from stdin failed: {}", fail.message))
    }
}

/// COPY errors carry their line already; the client gets them as they are.
fn copy_error(e: &crate::ingest::Error) -> crate::ingest::Error {
    match e {
        crate::ingest::Error::Malformed { location, message } => crate::ingest::Error::Malformed {
            location: *location,
            message: format!("COPY: {message}"),
        },
        crate::ingest::Error::TableNotFound { name } => {
            crate::ingest::Error::TableNotFound { name: name.clone() }
        }
        other => crate::ingest::Error::Malformed {
            location: None,
            message: other.to_string(),
        },
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
        check_statement_complexity(query).map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        if let Some(copy) = self.start_copy(client, query).await? {
            return Ok(vec![copy]);
        }
        let guard = self.queries.begin(connection_key(client));
        let Some(pieces) = split_catalog_statements(query) else {
            let responses =
                SimpleQueryHandler::do_query(self.inner.as_ref(), client, query).await?;
            return Ok(guard.wrap_all(responses));
        };
        let mut responses = Vec::with_capacity(pieces.len());
        for piece in pieces {
            match piece {
                QueryPiece::Catalog(statement) => {
                    responses.push(self.run_catalog(&statement).await?)
                }
                QueryPiece::Sql(sql) => responses
                    .extend(SimpleQueryHandler::do_query(self.inner.as_ref(), client, &sql).await?),
            }
        }
        Ok(guard.wrap_all(responses))
    }
}

#[async_trait]
impl ExtendedQueryHandler for PgService {
    type Statement = DfStatement;
    type QueryParser = PgParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    /// Streams the rows of a query portal executed to completion (`Execute` with max_rows 0,
    /// what psycopg and pgjdbc send). pgwire 0.41's default collects every row of such a
    /// portal into memory before sending the first (`Portal::fetch`), so a large result costs
    /// its whole size in server memory; this sends rows as the plan produces them. Everything
    /// else (row-limited fetches, DDL, SET, transactions) keeps pgwire's default.
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal = match client.portal_store().get_portal(name) {
            Some(Entry::Value(portal))
                if message.max_rows == 0
                    && matches!(client.state(), PgWireConnectionState::ReadyForQuery)
                    && matches!(
                        &portal.statement.statement,
                        (_, Some((SqlStatement::Query(_), _)))
                    ) =>
            {
                portal
            }
            _ => return self._on_execute(client, message).await,
        };
        if !matches!(*portal.state().lock().await, PortalExecutionState::Initial) {
            return self._on_execute(client, message).await;
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        match ExtendedQueryHandler::do_query(self, client, portal.as_ref(), 0).await? {
            Response::Query(results) => {
                *portal.state().lock().await = PortalExecutionState::Finished;
                send_query_response(client, results, false).await?;
            }
            Response::Execution(tag) => {
                client
                    .feed(PgWireBackendMessage::CommandComplete(tag.into()))
                    .await?;
            }
            _ => {
                return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                    "ERROR".into(),
                    "XX000".into(),
                    "unexpected response to a query portal".into(),
                ))));
            }
        }
        client.set_state(PgWireConnectionState::ReadyForQuery);
        Ok(())
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
            && let Some(copy) = self.start_copy(client, sql).await?
        {
            return Ok(copy);
        }
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
        let guard = self.queries.begin(connection_key(client));
        let response =
            ExtendedQueryHandler::do_query(self.inner.as_ref(), client, portal, max_rows).await?;
        Ok(guard.wrap(response))
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
        check_statement_complexity(sql).map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        if split_catalog_statements(sql).is_some() || parse_copy_from_stdin(sql).is_some() {
            return Ok(Some((sql.to_string(), None)));
        }
        match cast_typed_parameters(sql, types) {
            Some(typed) => self.inner.parse_sql(client, &typed, types).await,
            None => self.inner.parse_sql(client, sql, types).await,
        }
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

/// The SQL type to cast a parameter to when the client declared its type in Parse.
fn declared_sql_type(ty: &Type) -> Option<&'static str> {
    Some(match *ty {
        Type::INT2 => "SMALLINT",
        Type::INT4 => "INTEGER",
        Type::INT8 => "BIGINT",
        Type::FLOAT4 => "REAL",
        Type::FLOAT8 => "DOUBLE",
        Type::NUMERIC => "DECIMAL(38, 10)",
        Type::BOOL => "BOOLEAN",
        Type::DATE => "DATE",
        Type::TIMESTAMP => "TIMESTAMP",
        Type::TIMESTAMPTZ => "TIMESTAMP WITH TIME ZONE",
        _ => return None,
    })
}

/// Honours the parameter types a client declares in Parse (psycopg, pgjdbc and Npgsql do).
///
/// datafusion-postgres infers parameter types from the plan only, so `SELECT $1` with an int8
/// parameter would come back as text, and a binary-encoded parameter in a position the
/// planner cannot type would be misread. Wrapping each typed `$n` in `CAST($n AS type)` gives
/// the planner the client's type. Works on the token stream, so placeholders inside string
/// literals or comments are left alone. Returns `None` when nothing needs rewriting.
fn cast_typed_parameters(sql: &str, types: &[Option<Type>]) -> Option<String> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

    let casts: Vec<Option<&str>> = types
        .iter()
        .map(|t| t.as_ref().and_then(declared_sql_type))
        .collect();
    if casts.iter().all(Option::is_none) {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let mut out = String::with_capacity(sql.len() + 32);
    let mut changed = false;
    for token in &tokens {
        let cast = match token {
            Token::Placeholder(p) => p
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| casts.get(n.wrapping_sub(1)).copied().flatten()),
            _ => None,
        };
        match cast {
            Some(ty) => {
                changed = true;
                out.push_str(&format!("CAST({token} AS {ty})"));
            }
            None => out.push_str(&token.to_string()),
        }
    }
    changed.then_some(out)
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
        for (name, value) in [
            ("client_min_messages", "notice"),
            ("extra_float_digits", "1"),
        ] {
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
/// classified errors ([`crate::query::errors`]) become Postgres errors.
pub fn sqlstate(error: &(dyn std::error::Error + 'static)) -> (&'static str, String) {
    use ErrorKind as K;
    let (kind, message) = classify(error);
    let code = match kind {
        K::Syntax => "42601",
        K::UndefinedTable => "42P01",
        K::UndefinedColumn => "42703",
        K::AmbiguousColumn => "42702",
        K::UndefinedFunction => "42883",
        K::UndefinedPreparedStatement => "26000",
        K::DuplicateTable => "42P07",
        K::NotNullViolation => "23502",
        K::DatatypeMismatch => "42804",
        K::InvalidText => "22P02",
        K::DivisionByZero => "22012",
        K::NumericOverflow => "22003",
        K::InvalidParameter => "08P01",
        K::InvalidArgument => "22023",
        K::FileNotFound => "58P01",
        K::Io => "58030",
        K::NotSupported => "0A000",
        K::TooComplex => "54001",
        K::ResourcesExhausted => "53200",
        K::Cancelled => "57014",
        K::OtherPlanning => "42P10",
        K::Internal => "XX000",
    };
    (code, message)
}

/// Binds the Postgres listener (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_kinds_to_sqlstate() {
        let e = crate::query::guard::TooComplex { limit: 1 };
        assert_eq!(sqlstate(&e).0, "54001");
    }

    #[test]
    fn casts_declared_parameter_types() {
        let sql = "select $1, '$2' as lit, x from t where y = $2 -- $1";
        let typed = cast_typed_parameters(sql, &[Some(Type::INT8), Some(Type::TEXT)]).unwrap();
        assert_eq!(
            typed,
            "select CAST($1 AS BIGINT), '$2' as lit, x from t where y = $2 -- $1"
        );
        assert!(cast_typed_parameters(sql, &[None, Some(Type::UNKNOWN)]).is_none());
    }

    #[test]
    fn maps_catalog_errors() {
        let e = crate::catalog::Error::LocationNotFound {
            location: "/nope".into(),
        };
        let (code, msg) = sqlstate(&e);
        assert_eq!(code, "58P01");
        assert!(msg.contains("/nope"));
    }
}
