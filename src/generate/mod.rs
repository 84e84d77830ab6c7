//! The synthetic event generator: realistic e-commerce events with the schema of the public
//! "eCommerce behavior data from multi category store" dataset, written as one hive partition
//! per day (`date=YYYY-MM-DD/part-0.parquet`). Used by `carthouse generate`, the demo dataset,
//! the tests and the benchmarks.
//!
//! Realism, so analytics on it mean something: Zipf-like product popularity; sessions that
//! walk view → cart → (remove) → purchase with conversion in the low percent; prices drawn per
//! category and stable per product; weekly and daily seasonality; nulls in `brand` and
//! `category_code`; planted co-purchase groups (a known answer for association rules) and
//! planted mispriced purchases (a known answer for price anomalies). Deterministic for a seed,
//! whatever the number of threads: each day has its own random stream.

pub mod model;
pub mod stream;

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder, StringDictionaryBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use indicatif::{ProgressBar, ProgressStyle};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

use model::{PlantedGroup, Shop, WEEKDAY_WEIGHT};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--events must be at least 1")]
    NoEvents,
    #[error("--days must be between 1 and 3660, got {days}")]
    BadDays { days: u32 },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode {path}: {message}")]
    Encode { path: PathBuf, message: String },
    #[error("generator worker failed: {0}")]
    Worker(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Output file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Parquet,
    Csv,
    Ndjson,
}

impl OutputFormat {
    fn extension(self) -> &'static str {
        match self {
            OutputFormat::Parquet => "parquet",
            OutputFormat::Csv => "csv",
            OutputFormat::Ndjson => "ndjson",
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub events: u64,
    pub start: NaiveDate,
    pub days: u32,
    pub out: PathBuf,
    pub format: OutputFormat,
    pub seed: u64,
    /// Rows per Parquet row group.
    pub row_group_size: usize,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Draw a progress bar on stderr (only shown when stderr is a terminal).
    pub progress: bool,
}

impl GenerateOptions {
    pub fn new(out: impl Into<PathBuf>, events: u64) -> Self {
        Self {
            events,
            start: NaiveDate::from_ymd_opt(2026, 10, 1).expect("valid date"),
            days: 30,
            out: out.into(),
            format: OutputFormat::Parquet,
            seed: 42,
            row_group_size: 256 * 1024,
            threads: 0,
            progress: false,
        }
    }
}

/// What was generated; also written to [`manifest_path`], beside the output directory (not
/// inside it: a listing table over the directory would take it for a data file).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub events: u64,
    pub files: usize,
    pub bytes: u64,
    pub seed: u64,
    pub start: NaiveDate,
    pub days: u32,
    pub format: OutputFormat,
    pub planted_groups: Vec<PlantedGroup>,
    pub planted_anomalies: Vec<PlantedAnomaly>,
    #[serde(skip)]
    pub elapsed: Duration,
}

/// A purchase whose price was set far from the product's usual price.
#[derive(Debug, Clone, Serialize)]
pub struct PlantedAnomaly {
    pub product_id: i64,
    pub user_session: String,
    pub normal_price: f64,
    pub price: f64,
}

/// The schema of generated events.
pub fn event_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("product_id", DataType::Int64, false),
        Field::new("category_id", DataType::Int64, false),
        Field::new("category_code", DataType::Utf8, true),
        Field::new("brand", DataType::Utf8, true),
        Field::new("price", DataType::Float64, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("user_session", DataType::Utf8, false),
    ]))
}

const VIEW: u8 = 0;
const CART: u8 = 1;
const REMOVE: u8 = 2;
const PURCHASE: u8 = 3;
const EVENT_TYPES: [&str; 4] = ["view", "cart", "remove_from_cart", "purchase"];

/// Session behaviour.
const CART_RATE: f64 = 0.06;
const REMOVE_RATE: f64 = 0.27;
const CHECKOUT_RATE: f64 = 0.45;
const SAME_CATEGORY_RATE: f64 = 0.72;
const MEAN_VIEWS: f64 = 4.5;
const MEAN_GAP_SECONDS: f64 = 38.0;
/// Planted anomalies: this many per million events, at least 4.
const ANOMALIES_PER_MILLION: u64 = 3;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// One generated event before it becomes Arrow columns.
#[derive(Clone, Copy)]
struct Row {
    time: i64,
    session: u128,
    product: u32,
    kind: u8,
    /// Price multiplier for planted anomalies (1.0 otherwise).
    price_factor: f32,
    user: i64,
}

/// Generates the dataset described by `opts`.
pub fn generate(opts: &GenerateOptions) -> Result<Summary> {
    if opts.events == 0 {
        return Err(Error::NoEvents);
    }
    if opts.days == 0 || opts.days > 3660 {
        return Err(Error::BadDays { days: opts.days });
    }
    let started = Instant::now();
    let shop = Shop::new(opts.seed, opts.events);
    let plan = day_plan(opts);
    std::fs::create_dir_all(&opts.out).map_err(|source| Error::Io {
        path: opts.out.clone(),
        source,
    })?;

    let progress = if opts.progress {
        let bar = ProgressBar::new(opts.events);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {human_pos}/{human_len} events ({per_sec}, eta {eta})",
            )
            .expect("valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };

    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        opts.threads
    }
    .min(plan.len());
    let next = AtomicUsize::new(0);
    let results: Vec<Result<Vec<DayResult>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(day) = plan.get(i) else { break };
                        done.push(write_day(&shop, opts, day, &progress)?);
                    }
                    Ok(done)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Worker("a generator thread panicked".into())))
            })
            .collect()
    });
    progress.finish_and_clear();

    let mut days = Vec::new();
    for r in results {
        days.extend(r?);
    }
    days.sort_by_key(|d| d.index);
    let summary = Summary {
        events: days.iter().map(|d| d.events).sum(),
        files: days.len(),
        bytes: days.iter().map(|d| d.bytes).sum(),
        seed: opts.seed,
        start: opts.start,
        days: opts.days,
        format: opts.format,
        planted_groups: shop.planted.clone(),
        planted_anomalies: days.into_iter().flat_map(|d| d.anomalies).collect(),
        elapsed: started.elapsed(),
    };
    let manifest = manifest_path(&opts.out);
    let json = serde_json::to_vec_pretty(&summary).expect("summary serializes");
    std::fs::write(&manifest, json).map_err(|source| Error::Io {
        path: manifest,
        source,
    })?;
    Ok(summary)
}

/// One day's share of the events.
struct DayPlan {
    index: usize,
    date: NaiveDate,
    events: u64,
    /// Global indices of the anomalies planted this day (even: 10×, odd: 0.1×).
    anomalies: Vec<u64>,
}

struct DayResult {
    index: usize,
    events: u64,
    bytes: u64,
    anomalies: Vec<PlantedAnomaly>,
}

/// Splits the events over the days by weekday weight, with a slow upward trend, and spreads
/// the planted anomalies over the days.
fn day_plan(opts: &GenerateOptions) -> Vec<DayPlan> {
    let weights: Vec<f64> = (0..opts.days)
        .map(|d| {
            let date = opts.start + chrono::Days::new(d as u64);
            let trend = 1.0 + 0.15 * d as f64 / opts.days.max(1) as f64;
            WEEKDAY_WEIGHT[date.weekday().num_days_from_monday() as usize] * trend
        })
        .collect();
    let total: f64 = weights.iter().sum();
    let mut plan = Vec::with_capacity(weights.len());
    let mut assigned = 0u64;
    for (d, w) in weights.iter().enumerate() {
        let events = if d + 1 == weights.len() {
            opts.events - assigned
        } else {
            ((opts.events as f64) * w / total).floor() as u64
        };
        assigned += events;
        plan.push(DayPlan {
            index: d,
            date: opts.start + chrono::Days::new(d as u64),
            events,
            anomalies: Vec::new(),
        });
    }
    let anomalies = (opts.events / 1_000_000 * ANOMALIES_PER_MILLION).max(4);
    for k in 0..anomalies {
        let d = (k as usize * 7 + 3) % plan.len();
        plan[d].anomalies.push(k);
    }
    plan
}

fn write_day(
    shop: &Shop,
    opts: &GenerateOptions,
    day: &DayPlan,
    progress: &ProgressBar,
) -> Result<DayResult> {
    let dir = opts
        .out
        .join(format!("date={}", day.date.format("%Y-%m-%d")));
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    let path = dir.join(format!("part-0.{}", opts.format.extension()));
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(
        opts.seed ^ (day.index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    let day_start = day
        .date
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp_micros();
    let mut rows = simulate_day(shop, &mut rng, day_start, day.events as usize);
    rows.sort_unstable_by_key(|r| (r.time, r.session));
    let anomalies = plant_anomalies(shop, &mut rows, &mut rng, &day.anomalies);

    let file = File::create(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let encode = |e: &dyn std::fmt::Display| Error::Encode {
        path: path.clone(),
        message: e.to_string(),
    };
    let schema = event_schema();
    let chunk = 64 * 1024;
    let mut writer = EventWriter::new(
        opts,
        BufWriter::with_capacity(1 << 20, file),
        schema.clone(),
    )
    .map_err(|e| encode(&e))?;
    for part in rows.chunks(chunk) {
        let batch = to_batch(shop, part, &schema).map_err(|e| encode(&e))?;
        writer.write(&batch).map_err(|e| encode(&e))?;
        progress.inc(part.len() as u64);
    }
    writer.finish().map_err(|e| encode(&e))?;
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    Ok(DayResult {
        index: day.index,
        events: rows.len() as u64,
        bytes,
        anomalies,
    })
}

/// Draws sessions until the day has `target` events.
fn simulate_day(shop: &Shop, rng: &mut impl Rng, day_start: i64, target: usize) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::with_capacity(target + 64);
    let day_end = day_start + MICROS_PER_DAY;
    let mut session_rows: Vec<Row> = Vec::with_capacity(64);
    let mut carted: Vec<u32> = Vec::with_capacity(8);
    while rows.len() < target {
        session_rows.clear();
        carted.clear();
        let session: u128 = rng.random();
        let user = shop.user_id(rng);
        let hour = shop.hour_of_day.sample(rng) as i64;
        let mut t = day_start + hour * 3_600_000_000 + rng.random_range(0..3_600_000_000);
        let push = |rows: &mut Vec<Row>, t: i64, product: u32, kind: u8| {
            rows.push(Row {
                time: t,
                session,
                product,
                kind,
                price_factor: 1.0,
                user,
            });
        };
        // Views: a geometric number, mostly browsing within one category.
        let views = 1 + geometric(rng, 1.0 / MEAN_VIEWS);
        let mut product = shop.popular_product(rng);
        for v in 0..views {
            if v > 0 {
                product = if rng.random::<f64>() < SAME_CATEGORY_RATE {
                    shop.related_product(product, rng)
                } else {
                    shop.popular_product(rng)
                };
                t += gap(rng, MEAN_GAP_SECONDS);
            }
            push(&mut session_rows, t, product, VIEW);
            if rng.random::<f64>() < CART_RATE && !carted.contains(&product) {
                t += gap(rng, 15.0);
                push(&mut session_rows, t, product, CART);
                carted.push(product);
            }
        }
        // A planted group, bought together.
        for (g, group) in shop.planted.iter().enumerate() {
            if rng.random::<f64>() < group.session_rate {
                for &p in &shop.planted_members[g] {
                    t += gap(rng, MEAN_GAP_SECONDS);
                    push(&mut session_rows, t, p, VIEW);
                    if !carted.contains(&p) {
                        t += gap(rng, 10.0);
                        push(&mut session_rows, t, p, CART);
                        carted.push(p);
                    }
                }
            }
        }
        let mut i = 0;
        while i < carted.len() {
            if rng.random::<f64>() < REMOVE_RATE && !is_planted(shop, carted[i]) {
                t += gap(rng, 25.0);
                push(&mut session_rows, t, carted[i], REMOVE);
                carted.swap_remove(i);
            } else {
                i += 1;
            }
        }
        let buys_group = carted.iter().any(|&p| is_planted(shop, p));
        if !carted.is_empty() && (buys_group || rng.random::<f64>() < CHECKOUT_RATE) {
            t += gap(rng, 60.0);
            for &p in &carted {
                push(&mut session_rows, t, p, PURCHASE);
                t += rng.random_range(1_000..500_000);
            }
        }
        // Events past midnight belong to tomorrow's partition; this day stops at midnight.
        let room = target - rows.len();
        rows.extend(
            session_rows
                .iter()
                .filter(|r| r.time < day_end)
                .take(room)
                .copied(),
        );
    }
    rows
}

fn is_planted(shop: &Shop, product: u32) -> bool {
    shop.planted_members.iter().any(|g| g.contains(&product))
}

/// Number of failures before the first success, success probability `p`.
fn geometric(rng: &mut impl Rng, p: f64) -> usize {
    let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    ((u.ln() / (1.0 - p).ln()).floor() as usize).min(80)
}

/// An exponential gap with the given mean, in microseconds (at least one second).
fn gap(rng: &mut impl Rng, mean_seconds: f64) -> i64 {
    let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    1_000_000 + (-u.ln() * mean_seconds * 1_000_000.0) as i64
}

/// Marks one purchase of the day per planted anomaly as mispriced: 10× the usual price for
/// even anomaly indices, a tenth of it for odd ones.
fn plant_anomalies(
    shop: &Shop,
    rows: &mut [Row],
    rng: &mut impl Rng,
    indices: &[u64],
) -> Vec<PlantedAnomaly> {
    let purchases: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind == PURCHASE)
        .map(|(i, _)| i)
        .collect();
    let mut planted = Vec::new();
    for &k in indices {
        if purchases.is_empty() {
            break;
        }
        let i = purchases[rng.random_range(0..purchases.len())];
        if rows[i].price_factor != 1.0 {
            continue;
        }
        let factor: f32 = if k % 2 == 0 { 10.0 } else { 0.1 };
        rows[i].price_factor = factor;
        let product = &shop.products[rows[i].product as usize];
        planted.push(PlantedAnomaly {
            product_id: product.product_id,
            user_session: session_string(rows[i].session),
            normal_price: product.price,
            price: price_of(product.price, factor),
        });
    }
    planted
}

fn price_of(price: f64, factor: f32) -> f64 {
    if factor == 1.0 {
        price
    } else {
        (price * factor as f64 * 100.0).round() / 100.0
    }
}

fn session_string(session: u128) -> String {
    uuid::Uuid::from_u128(session).hyphenated().to_string()
}

/// Turns rows into an Arrow batch of [`event_schema`].
fn to_batch(
    shop: &Shop,
    rows: &[Row],
    schema: &SchemaRef,
) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let n = rows.len();
    let mut time = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut kind = StringDictionaryBuilder::<Int32Type>::new();
    let mut product_id = Int64Builder::with_capacity(n);
    let mut category_id = Int64Builder::with_capacity(n);
    let mut category_code = StringBuilder::with_capacity(n, n * 16);
    let mut brand = StringBuilder::with_capacity(n, n * 6);
    let mut price = Float64Builder::with_capacity(n);
    let mut user_id = Int64Builder::with_capacity(n);
    let mut user_session = StringBuilder::with_capacity(n, n * 36);
    let mut uuid_buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    for r in rows {
        let p = &shop.products[r.product as usize];
        time.append_value(r.time);
        kind.append_value(EVENT_TYPES[r.kind as usize]);
        product_id.append_value(p.product_id);
        category_id.append_value(p.category_id);
        category_code.append_option(p.category_code.map(|c| shop.category_codes[c as usize]));
        brand.append_option(p.brand.map(|b| shop.brands[b as usize]));
        price.append_value(price_of(p.price, r.price_factor));
        user_id.append_value(r.user);
        user_session.append_value(
            uuid::Uuid::from_u128(r.session)
                .hyphenated()
                .encode_lower(&mut uuid_buf),
        );
    }
    // event_type is built as a dictionary (4 values) and cast to plain strings for the schema.
    let kind = datafusion::arrow::compute::cast(&kind.finish(), &DataType::Utf8)?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(time.finish()),
        kind,
        Arc::new(product_id.finish()),
        Arc::new(category_id.finish()),
        Arc::new(category_code.finish()),
        Arc::new(brand.finish()),
        Arc::new(price.finish()),
        Arc::new(user_id.finish()),
        Arc::new(user_session.finish()),
    ];
    RecordBatch::try_new(schema.clone(), columns)
}

/// A writer for one output file in the chosen format.
enum EventWriter<W: std::io::Write + Send> {
    Parquet(Box<ArrowWriter<W>>),
    Csv(Box<datafusion::arrow::csv::Writer<W>>),
    Ndjson(Box<datafusion::arrow::json::LineDelimitedWriter<W>>),
}

impl<W: std::io::Write + Send> EventWriter<W> {
    fn new(
        opts: &GenerateOptions,
        out: W,
        schema: SchemaRef,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(match opts.format {
            OutputFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
                    .set_max_row_group_row_count(Some(opts.row_group_size))
                    .set_statistics_enabled(EnabledStatistics::Page)
                    .set_sorting_columns(Some(vec![SortingColumn {
                        column_idx: 0,
                        descending: false,
                        nulls_first: false,
                    }]))
                    .set_created_by(format!("carthouse {}", env!("CARGO_PKG_VERSION")))
                    .build();
                EventWriter::Parquet(Box::new(ArrowWriter::try_new(out, schema, Some(props))?))
            }
            OutputFormat::Csv => EventWriter::Csv(Box::new(
                datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%S%.6fZ".to_string())
                    .build(out),
            )),
            OutputFormat::Ndjson => EventWriter::Ndjson(Box::new(
                datafusion::arrow::json::LineDelimitedWriter::new(out),
            )),
        })
    }

    fn write(
        &mut self,
        batch: &RecordBatch,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        match self {
            EventWriter::Parquet(w) => w.write(batch)?,
            EventWriter::Csv(w) => w.write(batch)?,
            EventWriter::Ndjson(w) => w.write(batch)?,
        }
        Ok(())
    }

    fn finish(self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        match self {
            EventWriter::Parquet(w) => {
                let mut inner = w.into_inner()?;
                std::io::Write::flush(&mut inner)?;
            }
            EventWriter::Csv(w) => {
                let mut inner = w.into_inner();
                std::io::Write::flush(&mut inner)?;
            }
            EventWriter::Ndjson(mut w) => {
                w.finish()?;
                let mut inner = w.into_inner();
                std::io::Write::flush(&mut inner)?;
            }
        }
        Ok(())
    }
}

/// Where the manifest of a dataset written to `out` goes: `<out>.manifest.json`. It is
/// written last, so its presence marks a complete dataset.
pub fn manifest_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "events".into());
    out.with_file_name(format!("{name}.manifest.json"))
}

/// True when `dir` holds a complete dataset written by [`generate`].
pub fn is_generated(dir: &Path) -> bool {
    manifest_path(dir).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(dir: &Path, format: OutputFormat) -> GenerateOptions {
        GenerateOptions {
            days: 3,
            format,
            ..GenerateOptions::new(dir, 20_000)
        }
    }

    #[test]
    fn writes_partitions_deterministically() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let sa = generate(&small(a.path(), OutputFormat::Csv)).unwrap();
        let sb = generate(&GenerateOptions {
            threads: 1,
            ..small(b.path(), OutputFormat::Csv)
        })
        .unwrap();
        assert_eq!(sa.events, 20_000);
        assert_eq!(sb.events, 20_000);
        assert_eq!(sa.files, 3);
        for day in ["2026-10-01", "2026-10-02", "2026-10-03"] {
            let fa = std::fs::read(a.path().join(format!("date={day}/part-0.csv"))).unwrap();
            let fb = std::fs::read(b.path().join(format!("date={day}/part-0.csv"))).unwrap();
            assert_eq!(fa, fb, "day {day} differs between runs");
        }
        assert!(is_generated(a.path()));
    }

    #[test]
    fn rejects_bad_options() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            generate(&GenerateOptions::new(d.path(), 0)),
            Err(Error::NoEvents)
        ));
        assert!(matches!(
            generate(&GenerateOptions {
                days: 0,
                ..GenerateOptions::new(d.path(), 10)
            }),
            Err(Error::BadDays { .. })
        ));
    }

    #[test]
    fn anomalies_go_both_ways() {
        let d = tempfile::tempdir().unwrap();
        let s = generate(&GenerateOptions {
            days: 10,
            ..GenerateOptions::new(d.path().join("ev"), 60_000)
        })
        .unwrap();
        let over = s
            .planted_anomalies
            .iter()
            .filter(|a| a.price > a.normal_price)
            .count();
        let under = s
            .planted_anomalies
            .iter()
            .filter(|a| a.price < a.normal_price)
            .count();
        assert!(over >= 2 && under >= 2, "over {over}, under {under}");
    }

    #[test]
    fn funnel_rates_are_realistic() {
        let shop = Shop::new(1, 200_000);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let rows = simulate_day(&shop, &mut rng, 0, 200_000);
        let count = |k| rows.iter().filter(|r| r.kind == k).count() as f64;
        let (views, purchases) = (count(VIEW), count(PURCHASE));
        let conversion = purchases / views;
        assert!(
            (0.005..0.05).contains(&conversion),
            "purchase/view {conversion}"
        );
        assert!(count(CART) > purchases && count(REMOVE) > 0.0);
    }
}

/// Generated events stamped "now", for streaming into a running server (`generate --to`).
pub struct LiveEvents {
    shop: Shop,
    rng: Xoshiro256PlusPlus,
    schema: SchemaRef,
}

impl LiveEvents {
    pub fn new(seed: u64) -> Self {
        Self {
            shop: Shop::new(seed, 10_000_000),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            schema: event_schema(),
        }
    }

    /// `n` events of simulated sessions, with event times within the second before `now`.
    pub fn batch(
        &mut self,
        n: usize,
        now_micros: i64,
    ) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
        let day_start = now_micros - now_micros.rem_euclid(MICROS_PER_DAY);
        let mut rows = simulate_day(&self.shop, &mut self.rng, day_start, n);
        rows.truncate(n);
        for r in rows.iter_mut() {
            r.time = now_micros - self.rng.random_range(0..1_000_000);
        }
        to_batch(&self.shop, &rows, &self.schema)
    }
}
