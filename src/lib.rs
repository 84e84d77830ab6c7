//! carthouse: a SQL analytics server for commerce and app event streams, on Apache DataFusion.
//!
//! # Layout
//! The path of an event, stage by stage (stages marked *later* are on the roadmap):
//! ```text
//!  files on disk / S3 ───────────────────────────────┐
//!  (Parquet, CSV; `generate` writes realistic ones)   │
//!                                                     ▼
//!  ingest → wal → buffer → persist ──────────→  catalog  ──→  query  ──→  server front ends
//!  (HTTP, Flight, INSERT,  group    Parquet by   file + live  one          pg (psql, JDBC, ODBC,
//!   COPY: one write path)  commit   day, compact tables       SessionCtx   BI), flight, http
//! ```
//! - [`ingest`]: decodes NDJSON / CSV / Arrow into a live table's schema; the write path.
//! - [`wal`]: the write-ahead log (checksummed segments, group commit, replay).
//! - [`buffer`]: durable-but-unpersisted rows of each live table, visible to queries.
//! - [`persist`]: buffer → time-partitioned Parquet, manifest, compaction, retention.
//! - [`config`]: typed, strict `carthouse.toml`.
//! - [`generate`]: the synthetic e-commerce event generator (CLI, demo, tests, benches).
//! - [`catalog`]: file tables, their persistence across restarts, S3 object stores.
//! - [`functions`]: SQL functions carthouse adds (Postgres compatibility, analytics).
//! - [`query`]: the DataFusion `SessionContext` with pg_catalog and engine options.
//! - [`server`]: protocol front ends; [`app`] wires them together; [`shutdown`] stops them.

pub mod app;
pub mod buffer;
pub mod catalog;
pub mod config;
pub mod functions;
pub mod generate;
pub mod ingest;
pub mod persist;
pub mod query;
pub mod server;
pub mod shutdown;
pub mod wal;
