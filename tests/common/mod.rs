//! Test helpers: a real server on port 0 over a small generated dataset.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use carthouse::app::Application;
use carthouse::config::test_config;
use carthouse::generate::{self, GenerateOptions};
use carthouse::shutdown::{self, ShutdownTrigger};

/// A small dataset generated once per test binary.
pub fn events_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("carthouse-it-{}", std::process::id()));
        let out = dir.join("events");
        let opts = GenerateOptions {
            days: 3,
            seed: 11,
            ..GenerateOptions::new(out.clone(), 30_000)
        };
        generate::generate(&opts).expect("generate test data");
        out
    })
}

/// A running server; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub flight_addr: SocketAddr,
    trigger: ShutdownTrigger,
    handle: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(data_dir: &Path) -> Self {
        let app = Application::build(test_config(data_dir), None)
            .await
            .expect("build app");
        let addr = app.pg_addr();
        let flight_addr = app.flight_addr();
        let (trigger, shutdown) = shutdown::channel();
        let handle = tokio::spawn(app.run_until_stopped(shutdown));
        Self {
            addr,
            flight_addr,
            trigger,
            handle,
        }
    }

    pub async fn stop(self) {
        self.trigger.trigger();
        let _ = self.handle.await;
    }

    /// A gRPC channel to the Flight SQL listener.
    pub async fn flight_channel(&self) -> tonic::transport::Channel {
        tonic::transport::Channel::from_shared(format!("http://{}", self.flight_addr))
            .expect("valid uri")
            .connect()
            .await
            .expect("connect to flight")
    }

    pub async fn connect(&self) -> tokio_postgres::Client {
        let conn_str = format!(
            "host={} port={} user=carthouse dbname=carthouse",
            self.addr.ip(),
            self.addr.port()
        );
        let (client, conn) = tokio_postgres::connect(&conn_str, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        client
    }
}

/// `CREATE EXTERNAL TABLE events ...` over the test dataset.
pub fn create_events_sql(name: &str) -> String {
    format!(
        "CREATE EXTERNAL TABLE {name} STORED AS PARQUET PARTITIONED BY (date) LOCATION '{}/'",
        events_dir().display()
    )
}
