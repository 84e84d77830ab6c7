//! carthouse: a SQL analytics server for commerce and app event streams, on Apache DataFusion.
//!
//! # Layout
//! The path of an event, stage by stage (stages marked *later* are on the roadmap):
//! ```text
//!  files on disk / S3 ─────────────────────────────┐
//!  (Parquet, CSV; `generate` writes realistic ones) │
//!                                                   ▼
//!  ingest* → wal* → buffer* → persist* ──────→  catalog  ──→  query  ──→  server front ends
//!  (HTTP, Flight, COPY)                        table defs,    one          pg (psql, JDBC, ODBC,
//!                                              object stores  SessionCtx   BI tools); flight*, http*
//! ```
//! - [`config`]: typed, strict `carthouse.toml`.
//! - [`generate`]: the synthetic e-commerce event generator (CLI, demo, tests, benches).
//! - [`catalog`]: file tables, their persistence across restarts, S3 object stores.
//! - [`functions`]: SQL functions carthouse adds (Postgres compatibility, analytics).
//! - [`query`]: the DataFusion `SessionContext` with pg_catalog and engine options.
//! - [`server`]: protocol front ends; [`app`] wires them together; [`shutdown`] stops them.

pub mod app;
pub mod catalog;
pub mod config;
pub mod functions;
pub mod generate;
pub mod query;
pub mod server;
pub mod shutdown;
