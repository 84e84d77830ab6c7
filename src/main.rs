//! The `carthouse` command line: `serve` and `generate`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use carthouse::app::{Application, DemoOptions};
use carthouse::config::Config;
use carthouse::generate::{self, GenerateOptions, OutputFormat};

/// carthouse: a SQL analytics server for commerce and app event streams.
///
/// Serve Parquet/CSV event tables (local disk or S3) over the Postgres wire protocol and
/// Arrow Flight SQL, and generate realistic e-commerce event data to try it on.
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server: Postgres wire protocol (psql, JDBC, ODBC, BI tools) and Arrow Flight
    /// SQL (ADBC, pyarrow).
    Serve(ServeArgs),
    /// Write synthetic e-commerce events, one hive partition per day (date=YYYY-MM-DD/), or
    /// with --to stream them into a running server's live table at a set rate.
    Generate(GenerateArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Config file (TOML). Command-line flags and CARTHOUSE_* variables override its keys.
    #[arg(long, env = "CARTHOUSE_CONFIG")]
    config: Option<PathBuf>,
    /// Address for Postgres clients [default: 127.0.0.1:5433]. Port 0 picks a free port.
    #[arg(long, env = "CARTHOUSE_PG_ADDR")]
    pg_addr: Option<SocketAddr>,
    /// Address for Arrow Flight SQL clients (ADBC, pyarrow) [default: 127.0.0.1:50051].
    #[arg(long, env = "CARTHOUSE_FLIGHT_ADDR")]
    flight_addr: Option<SocketAddr>,
    /// Address for HTTP clients (ingest, SQL, health) [default: 127.0.0.1:8080].
    #[arg(long, env = "CARTHOUSE_HTTP_ADDR")]
    http_addr: Option<SocketAddr>,
    /// Directory for the catalog, live tables (WAL and Parquet) and the demo dataset
    /// [default: ./carthouse-data].
    #[arg(long, env = "CARTHOUSE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Generate a demo dataset on first start (reused later) and register it as `events`.
    #[arg(long)]
    demo: bool,
    /// Number of events in the demo dataset (spread over 30 days).
    #[arg(long, default_value_t = 3_000_000, requires = "demo")]
    demo_events: u64,
}

#[derive(Args)]
struct GenerateArgs {
    /// Output directory (created if missing).
    #[arg(long, required_unless_present = "to", conflicts_with = "to")]
    out: Option<PathBuf>,
    /// Stream events to a running server instead, e.g. http://127.0.0.1:8080: they go to
    /// POST /v1/ingest/TABLE as Arrow IPC (or --format ndjson / csv), the table is created if
    /// missing, and the achieved rate and lag are printed every second.
    #[arg(long)]
    to: Option<String>,
    /// With --to: the live table to stream into.
    #[arg(long, default_value = "events", requires = "to")]
    table: String,
    /// With --to: events per second (0 = as fast as the server takes them).
    #[arg(long, default_value_t = 10_000, requires = "to")]
    rate: u64,
    /// With --to: requests in flight at once.
    #[arg(long, default_value_t = 4, requires = "to")]
    concurrency: usize,
    /// Number of events to write.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// First day (UTC), YYYY-MM-DD.
    #[arg(long, default_value = "2026-10-01")]
    start: NaiveDate,
    /// Number of days; one partition per day.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Parquet)]
    format: OutputFormat,
    /// Random seed; the same seed and options give the same files.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Rows per Parquet row group.
    #[arg(long, default_value_t = 256 * 1024)]
    row_group_size: usize,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,datafusion_postgres=warn,pgwire=warn")),
        )
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Generate(args) => generate_cmd(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // carthouse's error messages already name their cause; `{e:#}` would repeat it.
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Stack size of query worker threads (virtual memory; committed only as used).
const WORKER_STACK_BYTES: usize = 64 * 1024 * 1024;

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(addr) = args.pg_addr {
        config.server.pg_addr = addr;
    }
    if let Some(addr) = args.flight_addr {
        config.server.flight_addr = addr;
    }
    if let Some(addr) = args.http_addr {
        config.server.http_addr = addr;
    }
    if let Some(dir) = args.data_dir {
        config.server.data_dir = dir;
    }
    let demo = args.demo.then_some(DemoOptions {
        events: args.demo_events,
        seed: 42,
        progress: true,
    });
    // Queries use one partition per core (target_partitions); two more workers than cores
    // keep accepting connections and cancel requests while every core runs a query.
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores + 2)
        .enable_all()
        // Planning walks expression trees recursively; a client's `1 + 1 + ... + 1` with
        // thousands of terms must get an error, not overflow a 2 MiB worker stack.
        .thread_stack_size(WORKER_STACK_BYTES)
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    carthouse::server::pg::install_panic_hook();
    runtime.block_on(async move {
        let app = Application::build(config, demo).await?;
        let addr = app.pg_addr();
        let flight_addr = app.flight_addr();
        let http_addr = app.http_addr();
        let (trigger, shutdown) = carthouse::shutdown::channel();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            trigger.trigger();
        });
        eprintln!(
            "carthouse is ready. Connect with:\n  psql -h {} -p {} -U carthouse carthouse\n  \
             adbc_driver_flightsql.dbapi.connect(\"grpc://{flight_addr}\")\n  \
             curl http://{http_addr}/health",
            addr.ip(),
            addr.port()
        );
        // The machine-readable ready line (tests and scripts wait for it).
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "carthouse ready: postgres={addr} flight={flight_addr} http={http_addr}"
        )?;
        out.flush()?;
        drop(out);
        app.run_until_stopped(shutdown).await;
        Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn stream_cmd(args: GenerateArgs, url: String) -> anyhow::Result<()> {
    use carthouse::generate::stream::{StreamFormat, StreamOptions, stream_events};
    let format = match args.format {
        OutputFormat::Ndjson => StreamFormat::NdJson,
        OutputFormat::Csv => StreamFormat::Csv,
        OutputFormat::Parquet => StreamFormat::Arrow,
    };
    let opts = StreamOptions {
        url,
        table: args.table,
        rate: args.rate,
        events: args.events,
        format,
        seed: args.seed,
        concurrency: args.concurrency,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    let summary = runtime.block_on(stream_events(&opts, |line| eprintln!("{line}")))?;
    let secs = summary.elapsed.as_secs_f64();
    eprintln!(
        "streamed {} events to table {} in {secs:.2}s ({:.0} events/s); ack latency p50 {:.1} ms, p99 {:.1} ms; max lag behind schedule {:.0} ms",
        summary.events,
        opts.table,
        summary.events as f64 / secs.max(1e-9),
        summary.ack_p50_ms,
        summary.ack_p99_ms,
        summary.max_lag_ms
    );
    Ok(())
}

fn generate_cmd(args: GenerateArgs) -> anyhow::Result<()> {
    if let Some(url) = args.to.clone() {
        return stream_cmd(args, url);
    }
    let Some(out) = args.out else {
        anyhow::bail!("--out (a directory) or --to (a server URL) is required");
    };
    let opts = GenerateOptions {
        events: args.events,
        start: args.start,
        days: args.days,
        out,
        format: args.format,
        seed: args.seed,
        row_group_size: args.row_group_size,
        threads: args.threads,
        progress: true,
    };
    let summary = generate::generate(&opts)?;
    let secs = summary.elapsed.as_secs_f64();
    eprintln!(
        "wrote {} events in {} files ({:.1} MB) to {} in {:.2}s ({:.0} events/s)",
        summary.events,
        summary.files,
        summary.bytes as f64 / 1e6,
        opts.out.display(),
        secs,
        summary.events as f64 / secs.max(1e-9)
    );
    for g in &summary.planted_groups {
        eprintln!("planted co-purchase group: products {:?}", g.product_ids);
    }
    eprintln!(
        "planted {} mispriced purchases (see {})",
        summary.planted_anomalies.len(),
        generate::manifest_path(&opts.out).display()
    );
    Ok(())
}
