//! HTTP front end (axum): `POST /v1/ingest/{table}` (NDJSON, CSV, Arrow IPC stream bodies into
//! live tables), `POST /v1/sql` (results as JSON, CSV or Arrow by the Accept header) and
//! `GET /health`. An adapter only: bodies go to [`crate::ingest`], SQL to the one query engine,
//! and every error becomes a status code and a JSON body in [`error_response`].

use std::net::SocketAddr;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::{StreamExt, TryStreamExt};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::catalog::{Catalog, QueryPiece, split_catalog_statements};
use crate::ingest::decode::{self, BodyFormat};
use crate::query::errors::{ErrorKind, classify};
use crate::query::guard::check_statement_complexity;
use crate::shutdown::Shutdown;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "unsupported Content-Type {0:?}; send application/x-ndjson, text/csv or \
         application/vnd.apache.arrow.stream"
    )]
    UnsupportedContentType(String),
    #[error("request body is larger than the limit of {limit} bytes ([live] max_request_bytes)")]
    TooLarge { limit: usize },
    #[error("cannot read the request body: {0}")]
    Body(String),
    #[error("request body is not UTF-8 SQL text")]
    NotUtf8,
    #[error(transparent)]
    Statement(Box<dyn std::error::Error + Send + Sync>),
}

#[derive(Debug)]
struct HttpState {
    catalog: Arc<Catalog>,
    max_request_bytes: usize,
}

pub async fn serve(
    listener: TcpListener,
    catalog: Arc<Catalog>,
    max_request_bytes: usize,
    shutdown: Shutdown,
) {
    let state = Arc::new(HttpState {
        catalog,
        max_request_bytes,
    });
    let app = Router::new()
        .route("/health", get(health))
        .route("/v1/ingest/{table}", post(ingest))
        .route("/v1/sql", post(sql))
        .with_state(state);
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    info!(?addr, "http listening");
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|socket| {
        let _ = socket.set_nodelay(true);
    });
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let mut shutdown = shutdown;
            shutdown.wait().await
        })
        .await;
    if let Err(e) = result {
        warn!(error = %e, "http server stopped with an error");
    }
}

async fn health() -> Response {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        value.to_string(),
    )
        .into_response()
}

/// The one place HTTP errors are made: status code by error kind, JSON body `{"error": ...}`.
/// A statement sent to `/v1/sql` that names a missing table is a bad request (400); the
/// ingest path's table is the resource itself (404).
fn error_response(e: Error, resource: bool) -> Response {
    let (status, message) = match &e {
        Error::UnsupportedContentType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()),
        Error::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        Error::Body(_) | Error::NotUtf8 => (StatusCode::BAD_REQUEST, e.to_string()),
        Error::Statement(inner) => {
            let (kind, message) = classify(inner.as_ref());
            let status = match kind {
                ErrorKind::UndefinedTable if resource => StatusCode::NOT_FOUND,
                ErrorKind::ResourcesExhausted => StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::Io | ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            (status, message)
        }
    };
    json(status, &serde_json::json!({ "error": message }))
}

fn statement_error(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Statement(Box::new(e))
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, Error> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // axum reports an over-limit body as a length-limit error in the source chain.
        let text = format!(
            "{e} {}",
            std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_default()
        );
        if text.to_ascii_lowercase().contains("length limit") {
            Error::TooLarge { limit }
        } else {
            Error::Body(e.to_string())
        }
    })
}

async fn ingest(
    State(state): State<Arc<HttpState>>,
    Path(table): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match ingest_inner(&state, &table, &headers, body).await {
        Ok(rows) => json(StatusCode::OK, &serde_json::json!({ "rows": rows })),
        Err(e) => error_response(e, true),
    }
}

async fn ingest_inner(
    state: &HttpState,
    table: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<u64, Error> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = BodyFormat::from_content_type(content_type)
        .ok_or_else(|| Error::UnsupportedContentType(content_type.to_string()))?;
    let data = state
        .catalog
        .live_table(table)
        .await
        .map_err(statement_error)?;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > state.max_request_bytes as u64
    {
        return Err(Error::TooLarge {
            limit: state.max_request_bytes,
        });
    }
    let bytes = read_body(body, state.max_request_bytes).await?;
    let def = data.def.clone();
    let batches = tokio::task::spawn_blocking(move || decode::decode(&def, format, &bytes))
        .await
        .map_err(|e| Error::Body(e.to_string()))?
        .map_err(statement_error)?;
    state
        .catalog
        .live()
        .ingester
        .write(&data, batches)
        .await
        .map_err(statement_error)
}

/// Result encodings of `POST /v1/sql`.
#[derive(Debug, Clone, Copy)]
enum ResultFormat {
    Json,
    Csv,
    Arrow,
}

fn result_format(headers: &HeaderMap) -> ResultFormat {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if accept.contains("application/vnd.apache.arrow.stream") {
        ResultFormat::Arrow
    } else if accept.contains("text/csv") {
        ResultFormat::Csv
    } else {
        ResultFormat::Json
    }
}

async fn sql(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Body) -> Response {
    let format = result_format(&headers);
    match sql_inner(&state, body).await {
        Ok((schema, stream)) => encode_results(format, schema, stream),
        Err(e) => error_response(e, false),
    }
}

async fn sql_inner(
    state: &HttpState,
    body: Body,
) -> Result<(SchemaRef, SendableRecordBatchStream), Error> {
    let bytes = read_body(body, state.max_request_bytes).await?;
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::NotUtf8)?;
    check_statement_complexity(text).map_err(statement_error)?;
    let ctx = state.catalog.session_context();
    let pieces =
        split_catalog_statements(text).unwrap_or_else(|| vec![QueryPiece::Sql(text.to_string())]);
    let mut last: Option<(SchemaRef, SendableRecordBatchStream)> = None;
    let count = pieces.len();
    for (i, piece) in pieces.into_iter().enumerate() {
        match piece {
            QueryPiece::Catalog(statement) => {
                state
                    .catalog
                    .execute(&statement)
                    .await
                    .map_err(statement_error)?;
                last = None;
            }
            QueryPiece::Sql(sql) => {
                let df = ctx.sql(&sql).await.map_err(statement_error)?;
                let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
                if i + 1 < count {
                    df.collect().await.map_err(statement_error)?;
                } else {
                    let stream = df.execute_stream().await.map_err(statement_error)?;
                    last = Some((schema, stream));
                }
            }
        }
    }
    Ok(last.unwrap_or_else(|| {
        let schema = Arc::new(arrow::datatypes::Schema::empty());
        let stream: SendableRecordBatchStream = Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                schema.clone(),
                futures::stream::empty(),
            ),
        );
        (schema, stream)
    }))
}

/// Streams results in the asked encoding, batch by batch. An error after the first bytes were
/// sent can only end the response early (the status line is gone); it is logged.
fn encode_results(
    format: ResultFormat,
    schema: SchemaRef,
    stream: SendableRecordBatchStream,
) -> Response {
    let (content_type, encoder): (
        &str,
        Box<dyn FnMut(Option<&RecordBatch>) -> Result<Vec<u8>, arrow::error::ArrowError> + Send>,
    ) = match format {
        ResultFormat::Json => {
            let mut first = true;
            (
                "application/json",
                Box::new(move |batch| {
                    let mut out = Vec::new();
                    match batch {
                        Some(b) if b.num_rows() > 0 => {
                            let mut w = arrow::json::ArrayWriter::new(Vec::new());
                            w.write(b)?;
                            w.finish()?;
                            let array = w.into_inner();
                            // `[{..},{..}]` of this batch without its brackets, joined to the rest.
                            let inner = &array[1..array.len().saturating_sub(1)];
                            out.push(if first { b'[' } else { b',' });
                            out.extend_from_slice(inner);
                            first = false;
                        }
                        Some(_) => {}
                        None => out.extend_from_slice(if first { b"[]" } else { b"]" }),
                    }
                    Ok(out)
                }),
            )
        }
        ResultFormat::Csv => {
            let mut header = true;
            let schema = schema.clone();
            (
                "text/csv",
                Box::new(move |batch| {
                    let mut out = Vec::new();
                    let empty;
                    let b = match batch {
                        Some(b) => b,
                        None if header => {
                            empty = RecordBatch::new_empty(schema.clone());
                            &empty
                        }
                        None => return Ok(out),
                    };
                    let mut w = arrow::csv::WriterBuilder::new()
                        .with_header(header)
                        .build(&mut out);
                    w.write(b)?;
                    drop(w);
                    header = false;
                    Ok(out)
                }),
            )
        }
        ResultFormat::Arrow => {
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &schema).ok();
            (
                "application/vnd.apache.arrow.stream",
                Box::new(move |batch| {
                    let Some(w) = writer.as_mut() else {
                        return Err(arrow::error::ArrowError::IpcError(
                            "cannot start the Arrow stream".into(),
                        ));
                    };
                    match batch {
                        Some(b) => w.write(b)?,
                        None => w.finish()?,
                    }
                    Ok(std::mem::take(w.get_mut()))
                }),
            )
        }
    };
    let mut encoder = encoder;
    let body_stream = stream
        .map(Some)
        .chain(futures::stream::once(async { None }))
        .map(move |item| -> Result<Bytes, std::io::Error> {
            match item {
                Some(Ok(batch)) => encoder(Some(&batch))
                    .map(Bytes::from)
                    .map_err(std::io::Error::other),
                Some(Err(e)) => {
                    warn!(error = %e, "query failed while its results were being sent over http");
                    Err(std::io::Error::other(e.to_string()))
                }
                None => encoder(None)
                    .map(Bytes::from)
                    .map_err(std::io::Error::other),
            }
        })
        .try_filter(|b| futures::future::ready(!b.is_empty()));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        Body::from_stream(body_stream),
    )
        .into_response()
}
