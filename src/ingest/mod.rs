//! Ingest: the one write path of live tables. Every front end (HTTP bodies, Flight SQL bulk
//! ingest and DoPut, Postgres INSERT and COPY) turns its input into batches of the table's
//! schema ([`decode`]) and hands them to [`Ingester::write`], which makes them durable in the
//! [`crate::wal`] and visible in the [`crate::buffer`] before it returns.

pub mod copy;
pub mod decode;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;

use crate::buffer::{LiveTables, TableData};
use crate::wal::{self, Wal};

/// Where a bad value is, in the terms of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// 1-based line of a text body (NDJSON, CSV; the CSV header is line 1).
    Line(usize),
    /// 1-based row of an Arrow stream or an INSERT.
    Row(usize),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Row(n) => write!(f, "row {n}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input does not fit the table; nothing of the request was applied.
    #[error("{}{message}", location.map(|l| format!("{l}: ")).unwrap_or_default())]
    Malformed {
        location: Option<Location>,
        message: String,
    },
    #[error("table '{name}' does not exist")]
    TableNotFound { name: String },
    #[error("table '{name}' is a file table; only live tables (CREATE TABLE) take inserts")]
    NotLive { name: String },
    #[error(transparent)]
    Wal(#[from] wal::Error),
    #[error("server is shutting down")]
    ShuttingDown,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The write path shared by every front end.
#[derive(Debug, Clone)]
pub struct Ingester {
    wal: Wal,
    tables: Arc<LiveTables>,
    /// Writers wait while the buffers hold more than this many bytes.
    buffer_limit_bytes: usize,
}

impl Ingester {
    pub fn new(wal: Wal, tables: Arc<LiveTables>, buffer_limit_bytes: usize) -> Self {
        Self {
            wal,
            tables,
            buffer_limit_bytes,
        }
    }

    pub fn tables(&self) -> &Arc<LiveTables> {
        &self.tables
    }

    /// Appends conformed batches to `table` as one all-or-nothing, durable write. Returns the
    /// number of rows; when it returns they are in the WAL (synced) and visible to queries.
    pub async fn write(&self, table: &TableData, batches: Vec<RecordBatch>) -> Result<u64> {
        let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows == 0 {
            return Ok(0);
        }
        self.wait_for_room().await;
        let id = table.def.id.clone();
        let (payload, batches) = tokio::task::spawn_blocking(move || {
            wal::encode_rows(&id, &batches).map(|p| (p, batches))
        })
        .await
        .map_err(|_| Error::ShuttingDown)??;
        self.wal.append(&table.def.id, payload, batches).await?;
        Ok(rows as u64)
    }

    /// Back-pressure: while persistence is behind and the buffers are over their limit, writers
    /// wait (their clients see a slower reply, never an error), so memory stays bounded.
    async fn wait_for_room(&self) {
        let memory = &self.tables.memory;
        while memory.bytes() > self.buffer_limit_bytes {
            let released = memory.released.notified();
            // Re-check after registering, then wait; the timeout re-checks in case a wake-up
            // was missed between the check and the registration.
            if memory.bytes() <= self.buffer_limit_bytes {
                break;
            }
            memory.added.notify_one();
            let _ = tokio::time::timeout(Duration::from_millis(100), released).await;
        }
    }
}
