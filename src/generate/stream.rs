//! `carthouse generate --to URL`: streams generated events into a running server's HTTP ingest
//! endpoint at a set rate (the seeds' load generator), creating the table if needed, and
//! reports the achieved rate and the lag behind schedule once a second.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use tokio::task::JoinSet;

use super::{LiveEvents, event_schema};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach {url}: {message}")]
    Connect { url: String, message: String },
    #[error("the server refused {what}: HTTP {status}: {body}")]
    Refused {
        what: String,
        status: u16,
        body: String,
    },
    #[error("cannot encode events: {0}")]
    Encode(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Body encodings the load generator can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    Arrow,
    NdJson,
    Csv,
}

impl StreamFormat {
    fn content_type(self) -> &'static str {
        match self {
            StreamFormat::Arrow => "application/vnd.apache.arrow.stream",
            StreamFormat::NdJson => "application/x-ndjson",
            StreamFormat::Csv => "text/csv",
        }
    }
}

#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Server base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    pub table: String,
    /// Events per second; 0 sends as fast as the server takes them.
    pub rate: u64,
    /// Stop after this many events.
    pub events: u64,
    pub format: StreamFormat,
    pub seed: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
}

/// What a streaming run achieved.
#[derive(Debug, Clone)]
pub struct StreamSummary {
    pub events: u64,
    pub elapsed: Duration,
    /// Request latency (send to acknowledgement), milliseconds.
    pub ack_p50_ms: f64,
    pub ack_p99_ms: f64,
    /// How far behind its schedule the last batch was acknowledged, milliseconds.
    pub max_lag_ms: f64,
}

/// `CREATE TABLE IF NOT EXISTS` for the generator's event schema.
pub fn create_events_table_sql(table: &str) -> String {
    let schema = event_schema();
    crate::catalog::live::create_table_sql(table, &schema).replacen(
        "CREATE TABLE",
        "CREATE TABLE IF NOT EXISTS",
        1,
    )
}

fn encode(batch: &RecordBatch, format: StreamFormat) -> Result<Vec<u8>> {
    let err = |e: datafusion::arrow::error::ArrowError| Error::Encode(e.to_string());
    let mut out = Vec::new();
    match format {
        StreamFormat::Arrow => {
            let mut w =
                datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())
                    .map_err(err)?;
            w.write(batch).map_err(err)?;
            w.finish().map_err(err)?;
        }
        StreamFormat::NdJson => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
            w.write(batch).map_err(err)?;
            w.finish().map_err(err)?;
        }
        StreamFormat::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            w.write(batch).map_err(err)?;
        }
    }
    Ok(out)
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
    what: &str,
) -> Result<()> {
    let response = client
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .map_err(|e| Error::Connect {
            url: url.to_string(),
            message: e.to_string(),
        })?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(Error::Refused {
            what: what.to_string(),
            status: status.as_u16(),
            body,
        });
    }
    Ok(())
}

/// Streams `opts.events` events; `report` is called about once a second with a status line.
pub async fn stream_events(
    opts: &StreamOptions,
    mut report: impl FnMut(&str),
) -> Result<StreamSummary> {
    let base = opts.url.trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.concurrency.max(1))
        .build()
        .map_err(|e| Error::Connect {
            url: base.clone(),
            message: e.to_string(),
        })?;
    post(
        &client,
        &format!("{base}/v1/sql"),
        "text/plain",
        create_events_table_sql(&opts.table).into_bytes(),
        "CREATE TABLE",
    )
    .await?;
    let ingest_url = format!("{base}/v1/ingest/{}", opts.table);
    // Ten batches a second at a set rate; large batches when unthrottled.
    let batch_rows = if opts.rate == 0 {
        100_000
    } else {
        (opts.rate / 10).clamp(1, 100_000)
    } as usize;
    let mut source = LiveEvents::new(opts.seed);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut acked = 0u64;
    let mut latencies: Vec<f64> = Vec::new();
    let mut max_lag_ms = 0f64;
    let mut in_flight: JoinSet<Result<(u64, Instant, Instant)>> = JoinSet::new();
    let mut last_report = Instant::now();
    let mut window: VecDeque<(Instant, u64)> = VecDeque::new();
    while acked < opts.events {
        // Keep `concurrency` requests going, each sent at its scheduled time.
        while sent < opts.events && in_flight.len() < opts.concurrency.max(1) {
            let n = batch_rows.min((opts.events - sent) as usize);
            let scheduled = if opts.rate == 0 {
                Instant::now()
            } else {
                started + Duration::from_secs_f64(sent as f64 / opts.rate as f64)
            };
            if scheduled > Instant::now() {
                if in_flight.is_empty() {
                    tokio::time::sleep_until(scheduled.into()).await;
                } else {
                    break;
                }
            }
            let now = chrono::Utc::now().timestamp_micros();
            let batch = source
                .batch(n, now)
                .map_err(|e| Error::Encode(e.to_string()))?;
            let body = encode(&batch, opts.format)?;
            let client = client.clone();
            let url = ingest_url.clone();
            let content_type = opts.format.content_type();
            sent += n as u64;
            in_flight.spawn(async move {
                let t0 = Instant::now();
                post(&client, &url, content_type, body, "the events").await?;
                Ok((n as u64, t0, scheduled))
            });
        }
        let next_due = if opts.rate == 0 || sent >= opts.events {
            None
        } else {
            Some(started + Duration::from_secs_f64(sent as f64 / opts.rate as f64))
        };
        let joined = match next_due {
            Some(due) if !in_flight.is_empty() => {
                tokio::select! {
                    j = in_flight.join_next() => j,
                    _ = tokio::time::sleep_until(due.into()) => None,
                }
            }
            _ => in_flight.join_next().await,
        };
        if let Some(joined) = joined {
            let (n, t0, scheduled) = joined.map_err(|e| Error::Encode(e.to_string()))??;
            let now = Instant::now();
            acked += n;
            latencies.push(now.duration_since(t0).as_secs_f64() * 1e3);
            max_lag_ms = max_lag_ms.max(now.duration_since(scheduled).as_secs_f64() * 1e3);
            window.push_back((now, n));
        }
        while window
            .front()
            .is_some_and(|(t, _)| t.elapsed() > Duration::from_secs(5))
        {
            window.pop_front();
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            let recent: u64 = window.iter().map(|(_, n)| n).sum();
            let span = window
                .front()
                .map(|(t, _)| t.elapsed().as_secs_f64())
                .unwrap_or(1.0)
                .max(1.0);
            let lag = latencies.last().copied().unwrap_or(0.0);
            report(&format!(
                "{acked} events acknowledged, {:.0} events/s (last 5 s), last ack {lag:.1} ms, max lag behind schedule {max_lag_ms:.0} ms",
                recent as f64 / span
            ));
        }
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Ok(StreamSummary {
        events: acked,
        elapsed: started.elapsed(),
        ack_p50_ms: pct(0.5),
        ack_p99_ms: pct(0.99),
        max_lag_ms,
    })
}
