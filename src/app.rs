//! Application: builds the engine, the catalog and the listeners from a [`Config`], and runs
//! them until shutdown. Tests build it on port 0 and read the bound address back.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::catalog::{self, Catalog};
use crate::config::Config;
use crate::generate::{self, GenerateOptions};
use crate::query;
use crate::server::flight;
use crate::server::pg::{self, PgHandlers};
use crate::shutdown::Shutdown;

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
    catalog: Arc<Catalog>,
}

impl Application {
    pub async fn build(config: Config, demo: Option<DemoOptions>) -> Result<Self> {
        let data_dir = &config.server.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|source| Error::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        let ctx = query::build_session_context(&config)?;
        let catalog = Arc::new(Catalog::open(ctx, &config)?);
        for (table, e) in catalog.restore(&config).await {
            warn!(%table, error = %e, "table not registered; its definition is kept");
        }
        if let Some(demo) = demo {
            register_demo(&catalog, data_dir, &demo).await?;
        }
        let (pg_listener, pg_addr) = bind("postgres", config.server.pg_addr).await?;
        let (flight_listener, flight_addr) = bind("flight sql", config.server.flight_addr).await?;
        Ok(Self {
            pg_listener,
            pg_addr,
            flight_listener,
            flight_addr,
            catalog,
        })
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
        tokio::join!(pg::serve(self.pg_listener, handlers, shutdown), flight);
    }
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
