//! Application: builds the engine, the catalog and the listeners from a [`Config`], and runs
//! them until shutdown. Tests build it on port 0 and read the bound address back.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::buffer::LiveTables;
use crate::catalog::live::LiveRuntime;
use crate::catalog::{self, Catalog};
use crate::config::Config;
use crate::generate::{self, GenerateOptions};
use crate::ingest::Ingester;
use crate::persist::{self, PersistOptions, Persister};
use crate::query;
use crate::server::flight;
use crate::server::http;
use crate::server::pg::{self, PgHandlers};
use crate::shutdown::Shutdown;
use crate::wal::{self, Wal};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen for {protocol} clients on {addr}: {source}")]
    Bind {
        protocol: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Query(#[from] query::Error),
    #[error(transparent)]
    Catalog(#[from] catalog::Error),
    #[error("cannot generate the demo dataset: {0}")]
    Demo(#[from] generate::Error),
    #[error("cannot recover live tables: {0}")]
    Wal(#[from] wal::Error),
    #[error("cannot recover live tables: {0}")]
    Persist(#[from] persist::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The demo dataset `serve --demo` creates on first start.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub events: u64,
    pub seed: u64,
    pub progress: bool,
}

/// The table name the demo dataset is registered as.
pub const DEMO_TABLE: &str = "events";

/// A built server, listeners bound, ready to run.
pub struct Application {
    pg_listener: TcpListener,
    pg_addr: SocketAddr,
    flight_listener: TcpListener,
    flight_addr: SocketAddr,
    http_listener: TcpListener,
    http_addr: SocketAddr,
    catalog: Arc<Catalog>,
    max_request_bytes: usize,
}

impl Application {
    pub async fn build(config: Config, demo: Option<DemoOptions>) -> Result<Self> {
        let data_dir = &config.server.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|source| Error::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        let live = start_live(&config).await?;
        let ctx = query::build_session_context(&config)?;
        let catalog = Arc::new(Catalog::open(ctx, &config, live.clone())?);
        for (table, e) in catalog.restore(&config).await {
            warn!(%table, error = %e, "table not registered; its definition is kept");
        }
        recover_live(&live, data_dir).await?;
        if let Some(demo) = demo {
            register_demo(&catalog, data_dir, &demo).await?;
        }
        let (pg_listener, pg_addr) = bind("postgres", config.server.pg_addr).await?;
        let (flight_listener, flight_addr) = bind("flight sql", config.server.flight_addr).await?;
        let (http_listener, http_addr) = bind("http", config.server.http_addr).await?;
        Ok(Self {
            pg_listener,
            pg_addr,
            flight_listener,
            flight_addr,
            http_listener,
            http_addr,
            catalog,
            max_request_bytes: usize::try_from(config.live.max_request_bytes).unwrap_or(usize::MAX),
        })
    }

    /// The address the HTTP listener is bound to.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The address the Postgres listener is bound to (the real port when 0 was asked for).
    pub fn pg_addr(&self) -> SocketAddr {
        self.pg_addr
    }

    /// The address the Flight SQL listener is bound to.
    pub fn flight_addr(&self) -> SocketAddr {
        self.flight_addr
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Serves until `shutdown` fires.
    pub async fn run_until_stopped(self, shutdown: Shutdown) {
        let handlers = Arc::new(PgHandlers::new(self.catalog.clone()));
        let flight = flight::serve(self.flight_listener, self.catalog.clone(), shutdown.clone());
        let http = http::serve(
            self.http_listener,
            self.catalog.clone(),
            self.max_request_bytes,
            shutdown.clone(),
        );
        let persister = self.catalog.live().persister.clone();
        let persist = persister.run(shutdown.clone());
        tokio::join!(
            pg::serve(self.pg_listener, handlers, shutdown),
            flight,
            http,
            persist
        );
    }
}

/// Opens the live-table machinery of the data directory: manifest, WAL writer (on a new
/// segment after every existing one), write path.
async fn start_live(config: &Config) -> Result<LiveRuntime> {
    let data_dir = &config.server.data_dir;
    let l = &config.live;
    let tables = Arc::new(LiveTables::default());
    let options = PersistOptions {
        flush_interval: std::time::Duration::from_millis(l.flush_interval_ms),
        flush_bytes: usize::try_from(l.flush_bytes).unwrap_or(usize::MAX),
        compact_min_files: l.compact_min_files,
        compact_file_bytes: l.compact_file_bytes,
        delete_delay: std::time::Duration::from_secs(60),
    };
    let persister = Arc::new(Persister::open(data_dir, tables.clone(), options)?);
    let wal_dir = persist::wal_dir(data_dir);
    let last = wal::list_segments(&wal_dir)?.last().copied().unwrap_or(0);
    // Never reuse an id at or below the persisted mark: replay would skip its rows.
    let first = last.max(persister.wal_persisted_through().await) + 1;
    let wal = Wal::start(&wal_dir, first, tables.clone())?;
    persister.set_wal(wal.clone()).await;
    let limit = usize::try_from(l.buffer_limit_bytes).unwrap_or(usize::MAX);
    Ok(LiveRuntime {
        ingester: Ingester::new(wal, tables, limit),
        persister,
    })
}

/// Replays the WAL segments written before this start into the registered live tables, and
/// removes files a crashed flush left behind.
async fn recover_live(live: &LiveRuntime, data_dir: &Path) -> Result<()> {
    let wal_dir = persist::wal_dir(data_dir);
    let after = live.persister.wal_persisted_through().await;
    let existing = wal::list_segments(&wal_dir)?;
    // The newest segment is the one this start just created; replay the ones before it.
    let upto = existing.iter().rev().nth(1).copied().unwrap_or(0);
    let replay = tokio::task::spawn_blocking(move || wal::replay(&wal_dir, after, upto))
        .await
        .map_err(|e| persist::Error::Task(e.to_string()))??;
    let tables = live.ingester.tables();
    let (mut rows, mut skipped) = (0usize, 0usize);
    for (segment, record) in replay.records {
        let n: usize = record.batches.iter().map(|b| b.num_rows()).sum();
        let Some(table) = tables.get(&record.table_id) else {
            skipped += n;
            continue;
        };
        // A config table's columns may have changed since the rows were written: cast them by
        // name; rows that no longer fit are reported and left out rather than stopping the start.
        let mut batches = Vec::with_capacity(record.batches.len());
        for b in record.batches {
            match crate::ingest::decode::conform(&table.def, b, crate::ingest::Location::Row) {
                Ok(b) => batches.push(b),
                Err(e) => {
                    warn!(table = %table.def.name, error = %e, "WAL rows do not fit the table's current columns; skipped")
                }
            }
        }
        tables.apply_replayed(segment, &record.table_id, batches);
        rows += n;
    }
    let orphans = live.persister.remove_orphans().await;
    if rows > 0 || skipped > 0 || replay.torn_bytes > 0 || orphans > 0 {
        info!(
            rows,
            rows_of_dropped_tables = skipped,
            torn_bytes = replay.torn_bytes,
            orphan_files = orphans,
            "recovered live tables from the write-ahead log"
        );
    }
    Ok(())
}

async fn bind(protocol: &'static str, addr: SocketAddr) -> Result<(TcpListener, SocketAddr)> {
    let err = |source| Error::Bind {
        protocol,
        addr,
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let local = listener.local_addr().map_err(err)?;
    Ok((listener, local))
}

/// Generates the demo dataset unless a complete one is there, and registers it as `events`.
async fn register_demo(catalog: &Catalog, data_dir: &Path, demo: &DemoOptions) -> Result<()> {
    let dir = data_dir.join("demo").join(DEMO_TABLE);
    if generate::is_generated(&dir) {
        info!(path = %dir.display(), "reusing demo dataset");
    } else {
        if dir.exists() {
            // A previous run stopped half-way: start over.
            let _ = std::fs::remove_dir_all(&dir);
        }
        info!(events = demo.events, path = %dir.display(), "generating demo dataset (first start only)");
        let opts = GenerateOptions {
            seed: demo.seed,
            progress: demo.progress,
            ..GenerateOptions::new(dir.clone(), demo.events)
        };
        let summary = tokio::task::spawn_blocking(move || generate::generate(&opts))
            .await
            .map_err(|e| generate::Error::Worker(e.to_string()))??;
        info!(
            events = summary.events,
            seconds = format!("{:.1}", summary.elapsed.as_secs_f64()),
            "demo dataset ready"
        );
    }
    if catalog
        .session_context()
        .table_exist(DEMO_TABLE)
        .map_err(catalog::Error::from)?
    {
        warn!("a table named `{DEMO_TABLE}` already exists; the demo dataset is not registered");
        return Ok(());
    }
    let abs = std::fs::canonicalize(&dir).unwrap_or(dir);
    let sql = format!(
        "CREATE EXTERNAL TABLE {DEMO_TABLE} STORED AS PARQUET PARTITIONED BY (date) LOCATION '{}/'",
        abs.display().to_string().replace('\'', "''")
    );
    catalog.register_unpersisted(&sql).await?;
    Ok(())
}
