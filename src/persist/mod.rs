//! Persist: moves buffered rows into time-partitioned Parquet, keeps the manifest of every live
//! table's files, compacts small files, applies retention, and truncates the WAL.
//!
//! Fed by [`crate::buffer`]; its files are read by [`crate::catalog::live`] (buffer ∪ files).
//!
//! # A flush, step by step (each step crash-safe)
//! 1. Rotate the WAL: segment S closes; every row of segments ≤ S is in the buffer.
//! 2. Write those rows as Parquet, one file per table and UTC day of the time column
//!    (`live/<table>/date=YYYY-MM-DD/<uuid>.parquet`), sorted by time; fsync each file.
//! 3. Commit the manifest (`live/manifest.json`, checksummed, atomically replaced) with the new
//!    files and "WAL persisted through S". A crash before this leaves orphan files (deleted at
//!    start) and the WAL replays the rows; after it, replay starts after S.
//! 4. Swap the files in and the rows out of the buffer under one lock (queries see one or the
//!    other, never both, never neither).
//! 5. Delete WAL segments ≤ S.
//!
//! Late events need nothing special: a row's file is chosen by its own time.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch, UInt32Array};
use arrow::compute::{SortOptions, concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::TimestampMicrosecondType;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::buffer::{BufferedBatch, LiveTableDef, LiveTables, PersistedFile, TableData};
use crate::catalog::store;
use crate::shutdown::Shutdown;
use crate::wal::{self, Wal};

const MANIFEST_MAGIC: &str = "CARTHOUSE-LIVE-MANIFEST";
const MICROS_PER_DAY: i64 = 86_400_000_000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode Parquet file {path}: {source}")]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    #[error("cannot prepare rows for Parquet: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("live-table manifest: {0}")]
    Manifest(#[from] store::Error),
    #[error(transparent)]
    Wal(#[from] wal::Error),
    #[error("persistence task failed: {0}")]
    Task(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// When and how the buffer is persisted.
#[derive(Debug, Clone)]
pub struct PersistOptions {
    /// Persist at least this often while there are buffered rows.
    pub flush_interval: Duration,
    /// Persist as soon as the buffers hold this many bytes.
    pub flush_bytes: usize,
    /// Compact a partition once it has this many files smaller than `compact_file_bytes`.
    pub compact_min_files: usize,
    pub compact_file_bytes: u64,
    /// Files replaced by compaction or dropped by retention are deleted this long after, so
    /// queries that planned with them can finish.
    pub delete_delay: Duration,
}

/// The manifest: which Parquet files hold each live table's rows, and how far the WAL has been
/// persisted. Version 1, JSON under a `CARTHOUSE-LIVE-MANIFEST 1 <crc32>` header line.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Every WAL segment with an id ≤ this is in Parquet.
    pub wal_persisted_through: u64,
    /// Files by table id.
    pub tables: BTreeMap<String, Vec<PersistedFile>>,
}

/// Persists the buffers of every live table of one data directory.
#[derive(Debug)]
pub struct Persister {
    data_dir: PathBuf,
    wal_dir: PathBuf,
    tables: Arc<LiveTables>,
    options: PersistOptions,
    /// The committed manifest; the lock also makes flushes, compactions and drops take turns.
    manifest: Mutex<Manifest>,
    wal: Mutex<Option<Wal>>,
    pending_deletes: std::sync::Mutex<Vec<(Instant, PathBuf)>>,
}

pub fn manifest_path(data_dir: &Path) -> PathBuf {
    data_dir.join("live").join("manifest.json")
}

pub fn wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("wal")
}

impl Persister {
    /// Loads the manifest of `data_dir`.
    pub fn open(data_dir: &Path, tables: Arc<LiveTables>, options: PersistOptions) -> Result<Self> {
        let manifest = store::load_checksummed(
            &manifest_path(data_dir),
            MANIFEST_MAGIC,
            "live-table manifest",
        )?
        .unwrap_or_default();
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            wal_dir: wal_dir(data_dir),
            tables,
            options,
            manifest: Mutex::new(manifest),
            wal: Mutex::new(None),
            pending_deletes: Default::default(),
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The WAL segment after which replay starts.
    pub async fn wal_persisted_through(&self) -> u64 {
        self.manifest.lock().await.wal_persisted_through
    }

    pub async fn set_wal(&self, wal: Wal) {
        *self.wal.lock().await = Some(wal);
    }

    /// The persisted files of table `id` (at registration).
    pub async fn files_of(&self, id: &str) -> Vec<PersistedFile> {
        self.manifest
            .lock()
            .await
            .tables
            .get(id)
            .cloned()
            .unwrap_or_default()
    }

    /// Deletes Parquet files under `live/` that the manifest does not list (written by a flush
    /// or compaction that crashed before its manifest commit), and temporary files.
    pub async fn remove_orphans(&self) -> usize {
        let manifest = self.manifest.lock().await;
        let known: std::collections::HashSet<&str> = manifest
            .tables
            .values()
            .flatten()
            .map(|f| f.path.as_str())
            .collect();
        let root = self.data_dir.join("live");
        let mut removed = 0;
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let is_data = name.ends_with(".parquet") || name.ends_with(".parquet.tmp");
                if !is_data {
                    continue;
                }
                let rel = relative(&self.data_dir, &path);
                if !known.contains(rel.as_str()) && std::fs::remove_file(&path).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Runs flushes, compaction, retention and delayed deletes until shutdown.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        let memory = self.tables.memory.clone();
        let mut next = tokio::time::Instant::now() + self.options.flush_interval;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = memory.added.notified() => {
                    if memory.bytes() < self.options.flush_bytes {
                        continue;
                    }
                }
                _ = shutdown.wait() => break,
            }
            if let Err(e) = self.flush().await {
                warn!(error = %e, "persisting live tables failed; will retry");
            }
            if let Err(e) = self.maintain().await {
                warn!(error = %e, "compacting live tables failed; will retry");
            }
            self.delete_due(false);
            next = tokio::time::Instant::now() + self.options.flush_interval;
        }
    }

    /// Persists everything buffered now. Returns the number of rows written.
    pub async fn flush(&self) -> Result<u64> {
        let mut manifest = self.manifest.lock().await;
        if self.tables.memory.bytes() == 0 {
            return Ok(0);
        }
        let Some(wal) = self.wal.lock().await.clone() else {
            return Ok(0);
        };
        let started = Instant::now();
        let through = wal.rotate().await?;
        let mut next = manifest.clone();
        let mut changes: Vec<(Arc<TableData>, Vec<PersistedFile>)> = Vec::new();
        let mut rows = 0u64;
        for table in self.tables.all() {
            let batches = table.batches_through(through);
            if batches.is_empty() {
                continue;
            }
            let def = table.def.clone();
            let data_dir = self.data_dir.clone();
            let files =
                tokio::task::spawn_blocking(move || write_partitions(&data_dir, &def, &batches))
                    .await
                    .map_err(|e| Error::Task(e.to_string()))??;
            rows += files.iter().map(|f| f.rows).sum::<u64>();
            next.tables
                .entry(table.def.id.clone())
                .or_default()
                .extend(files.iter().cloned());
            changes.push((table, files));
        }
        next.wal_persisted_through = through;
        self.save(&next).await?;
        *manifest = next;
        for (table, files) in changes {
            table.swap(files, &[], Some(through));
        }
        // Tables whose batches were all ≤ S but which had nothing to write cannot exist (every
        // buffered batch has rows); still drop anything ≤ S everywhere for safety.
        for table in self.tables.all() {
            table.swap(Vec::new(), &[], Some(through));
        }
        let removed = wal::remove_segments_through(&self.wal_dir, through)?;
        info!(
            rows,
            wal_segments_removed = removed,
            ms = started.elapsed().as_millis() as u64,
            "persisted live tables"
        );
        Ok(rows)
    }

    async fn save(&self, manifest: &Manifest) -> Result<()> {
        let path = manifest_path(&self.data_dir);
        let m = manifest.clone();
        tokio::task::spawn_blocking(move || store::save_checksummed(&path, MANIFEST_MAGIC, &m))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        Ok(())
    }

    /// Compaction and retention for every table.
    pub async fn maintain(&self) -> Result<()> {
        for table in self.tables.all() {
            self.apply_retention(&table).await?;
            self.compact(&table).await?;
        }
        Ok(())
    }

    async fn apply_retention(&self, table: &Arc<TableData>) -> Result<()> {
        let Some(days) = table.def.retention_days else {
            return Ok(());
        };
        let now = chrono::Utc::now().timestamp_micros();
        let cutoff = now - i64::from(days) * MICROS_PER_DAY;
        let mut manifest = self.manifest.lock().await;
        let Some(files) = manifest.tables.get(&table.def.id) else {
            return Ok(());
        };
        let expired: Vec<String> = files
            .iter()
            .filter(|f| f.max_time < cutoff)
            .map(|f| f.path.clone())
            .collect();
        if expired.is_empty() {
            return Ok(());
        }
        let mut next = manifest.clone();
        if let Some(files) = next.tables.get_mut(&table.def.id) {
            files.retain(|f| !expired.contains(&f.path));
        }
        self.save(&next).await?;
        *manifest = next;
        table.swap(Vec::new(), &expired, None);
        info!(table = %table.def.name, files = expired.len(), days, "retention dropped old partitions");
        self.delete_later(&expired);
        Ok(())
    }

    /// Merges the small files of each partition once there are enough of them.
    async fn compact(&self, table: &Arc<TableData>) -> Result<()> {
        let groups: Vec<Vec<PersistedFile>> = {
            let manifest = self.manifest.lock().await;
            let mut by_date: HashMap<&str, Vec<PersistedFile>> = HashMap::new();
            for f in manifest.tables.get(&table.def.id).into_iter().flatten() {
                if f.size < self.options.compact_file_bytes {
                    by_date.entry(f.date.as_str()).or_default().push(f.clone());
                }
            }
            by_date
                .into_values()
                .filter(|g| g.len() >= self.options.compact_min_files)
                .collect()
        };
        for group in groups {
            let def = table.def.clone();
            let data_dir = self.data_dir.clone();
            let inputs = group.clone();
            let merged = tokio::task::spawn_blocking(move || merge_files(&data_dir, &def, &inputs))
                .await
                .map_err(|e| Error::Task(e.to_string()))??;
            let removed: Vec<String> = group.iter().map(|f| f.path.clone()).collect();
            let mut manifest = self.manifest.lock().await;
            let mut next = manifest.clone();
            let Some(files) = next.tables.get_mut(&table.def.id) else {
                // Dropped meanwhile.
                let _ = std::fs::remove_file(self.data_dir.join(&merged.path));
                return Ok(());
            };
            if !removed.iter().all(|p| files.iter().any(|f| &f.path == p)) {
                // Retention removed some of them meanwhile: try again next round.
                let _ = std::fs::remove_file(self.data_dir.join(&merged.path));
                continue;
            }
            files.retain(|f| !removed.contains(&f.path));
            files.push(merged.clone());
            self.save(&next).await?;
            *manifest = next;
            table.swap(vec![merged], &removed, None);
            info!(table = %table.def.name, files = removed.len(), "compacted a partition");
            self.delete_later(&removed);
        }
        Ok(())
    }

    /// Removes a dropped table's files and manifest entry.
    pub async fn drop_table(&self, def: &LiveTableDef) -> Result<()> {
        let mut manifest = self.manifest.lock().await;
        if manifest.tables.contains_key(&def.id) {
            let mut next = manifest.clone();
            next.tables.remove(&def.id);
            self.save(&next).await?;
            *manifest = next;
        }
        let dir = table_dir(&self.data_dir, &def.name);
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Ok(())
    }

    fn delete_later(&self, rel_paths: &[String]) {
        let due = Instant::now() + self.options.delete_delay;
        let mut pending = self
            .pending_deletes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        pending.extend(rel_paths.iter().map(|p| (due, self.data_dir.join(p))));
    }

    /// Deletes replaced files whose delay is over (all of them when `all`).
    pub fn delete_due(&self, all: bool) {
        let now = Instant::now();
        let mut pending = self
            .pending_deletes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        pending.retain(|(due, path)| {
            if all || *due <= now {
                let _ = std::fs::remove_file(path);
                false
            } else {
                true
            }
        });
    }
}

fn relative(base: &Path, path: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// `live/<table>` under the data directory.
pub fn table_dir(data_dir: &Path, table: &str) -> PathBuf {
    data_dir.join("live").join(table)
}

/// The UTC date of a microsecond timestamp, `YYYY-MM-DD`.
pub fn date_of(micros: i64) -> String {
    let day = micros.div_euclid(MICROS_PER_DAY);
    let date = chrono::DateTime::from_timestamp(day * 86_400, 0)
        .map(|d| d.date_naive().to_string())
        .unwrap_or_else(|| "out-of-range".into());
    date
}

/// Splits the batches by UTC day of the time column and writes one sorted Parquet file per day.
pub fn write_partitions(
    data_dir: &Path,
    def: &LiveTableDef,
    batches: &[Arc<BufferedBatch>],
) -> Result<Vec<PersistedFile>> {
    let mut by_day: BTreeMap<i64, Vec<RecordBatch>> = BTreeMap::new();
    for b in batches {
        let first = b.min_time.div_euclid(MICROS_PER_DAY);
        let last = b.max_time.div_euclid(MICROS_PER_DAY);
        if first == last {
            by_day.entry(first).or_default().push(b.batch.clone());
            continue;
        }
        // Rows of several days in one batch (late events): split by day.
        let times = b
            .batch
            .column(def.time_column)
            .as_primitive::<TimestampMicrosecondType>();
        let mut rows: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for (i, t) in times.values().iter().enumerate() {
            rows.entry(t.div_euclid(MICROS_PER_DAY))
                .or_default()
                .push(i as u32);
        }
        for (day, idx) in rows {
            let part = take_record_batch(&b.batch, &UInt32Array::from(idx))?;
            by_day.entry(day).or_default().push(part);
        }
    }
    let mut files = Vec::with_capacity(by_day.len());
    for (day, parts) in by_day {
        let date = date_of(day * MICROS_PER_DAY);
        let rel = format!(
            "live/{}/date={date}/{}.parquet",
            def.name,
            uuid::Uuid::new_v4().simple()
        );
        files.push(write_file(data_dir, def, &parts, rel, date)?);
    }
    Ok(files)
}

/// Sorts `parts` by time and writes them as one Parquet file at `rel`, fsynced.
fn write_file(
    data_dir: &Path,
    def: &LiveTableDef,
    parts: &[RecordBatch],
    rel: String,
    date: String,
) -> Result<PersistedFile> {
    let batch = concat_batches(&def.schema, parts)?;
    let indices = sort_to_indices(
        batch.column(def.time_column),
        Some(SortOptions {
            descending: false,
            nulls_first: false,
        }),
        None,
    )?;
    let batch = take_record_batch(&batch, &indices)?;
    let times = batch
        .column(def.time_column)
        .as_primitive::<TimestampMicrosecondType>();
    let min_time = arrow::compute::min(times).unwrap_or(0);
    let max_time = arrow::compute::max(times).unwrap_or(0);
    let path = data_dir.join(&rel);
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let dir = path.parent().unwrap_or(data_dir).to_path_buf();
    std::fs::create_dir_all(&dir).map_err(io)?;
    let tmp = path.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("level 1 is valid"),
        ))
        .set_max_row_group_row_count(Some(256 * 1024))
        .build();
    let pq = |source| Error::Parquet {
        path: path.clone(),
        source,
    };
    let mut writer = ArrowWriter::try_new(file, def.schema.clone(), Some(props)).map_err(pq)?;
    writer.write(&batch).map_err(pq)?;
    let file = writer.into_inner().map_err(pq)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(io)?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    let size = std::fs::metadata(&path).map_err(io)?.len();
    Ok(PersistedFile {
        path: rel,
        date,
        size,
        rows: batch.num_rows() as u64,
        min_time,
        max_time,
    })
}

/// Reads `inputs` (all of one partition) and writes them as one sorted file.
fn merge_files(
    data_dir: &Path,
    def: &LiveTableDef,
    inputs: &[PersistedFile],
) -> Result<PersistedFile> {
    let mut parts = Vec::new();
    for f in inputs {
        let path = data_dir.join(&f.path);
        let file = std::fs::File::open(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let pq = |source| Error::Parquet {
            path: path.clone(),
            source,
        };
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(pq)?
            .with_batch_size(64 * 1024)
            .build()
            .map_err(pq)?;
        for b in reader {
            let b = b?;
            // Files written by an older definition are cast to the current schema by name.
            parts.push(
                crate::ingest::decode::conform(def, b, crate::ingest::Location::Row)
                    .map_err(|e| Error::Task(format!("compacting {}: {e}", f.path)))?,
            );
        }
    }
    let date = inputs.first().map(|f| f.date.clone()).unwrap_or_default();
    let rel = format!(
        "live/{}/date={date}/{}.parquet",
        def.name,
        uuid::Uuid::new_v4().simple()
    );
    write_file(data_dir, def, &parts, rel, date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    fn def() -> LiveTableDef {
        LiveTableDef {
            id: "t1".into(),
            name: "clicks".into(),
            schema: Arc::new(Schema::new(vec![
                Field::new(
                    "ts",
                    DataType::Timestamp(TimeUnit::Microsecond, None),
                    false,
                ),
                Field::new("id", DataType::Int64, false),
            ])),
            time_column: 0,
            retention_days: None,
        }
    }

    fn buffered(d: &LiveTableDef, ts: &[i64], ids: &[i64]) -> Arc<BufferedBatch> {
        let b = RecordBatch::try_new(
            d.schema.clone(),
            vec![
                Arc::new(TimestampMicrosecondArray::from(ts.to_vec())),
                Arc::new(Int64Array::from(ids.to_vec())),
            ],
        )
        .unwrap();
        Arc::new(BufferedBatch::new(1, b, 0).unwrap())
    }

    fn read_ids(path: &Path) -> Vec<i64> {
        let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        r.flat_map(|b| {
            b.unwrap()
                .column(1)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
    }

    #[test]
    fn late_rows_land_in_their_own_day_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let d = def();
        let day = MICROS_PER_DAY;
        // Day 2 rows out of order, plus a late row from day 0 in the same batch.
        let b = buffered(&d, &[2 * day + 50, 2 * day + 10, 5], &[1, 2, 3]);
        let files = write_partitions(dir.path(), &d, &[b]).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].date, "1970-01-01");
        assert_eq!(files[1].date, "1970-01-03");
        assert!(files[1].path.starts_with("live/clicks/date=1970-01-03/"));
        assert_eq!(read_ids(&dir.path().join(&files[1].path)), vec![2, 1]);
        assert_eq!(
            (files[1].min_time, files[1].max_time),
            (2 * day + 10, 2 * day + 50)
        );
        let merged = merge_files(dir.path(), &d, &files[1..]).unwrap();
        assert_eq!(merged.rows, 2);
    }

    #[test]
    fn dates_before_the_epoch() {
        assert_eq!(date_of(-1), "1969-12-31");
        assert_eq!(date_of(0), "1970-01-01");
    }

    #[tokio::test]
    async fn flush_commits_manifest_and_truncates_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let tables = Arc::new(LiveTables::default());
        let d = Arc::new(def());
        let t = tables.insert(d.clone());
        let p = Persister::open(
            dir.path(),
            tables.clone(),
            PersistOptions {
                flush_interval: Duration::from_secs(3600),
                flush_bytes: usize::MAX,
                compact_min_files: 2,
                compact_file_bytes: u64::MAX,
                delete_delay: Duration::ZERO,
            },
        )
        .unwrap();
        let wal = Wal::start(&wal_dir(dir.path()), 1, tables.clone()).unwrap();
        p.set_wal(wal.clone()).await;
        for i in 0..2 {
            let b = buffered(&d, &[i * 10], &[i]).batch.clone();
            wal.append("t1", wal::encode_rows("t1", &[b.clone()]).unwrap(), vec![b])
                .await
                .unwrap();
            assert_eq!(p.flush().await.unwrap(), 1);
        }
        assert!(t.snapshot().batches.is_empty());
        assert_eq!(t.snapshot().files.len(), 2);
        assert_eq!(wal::list_segments(&wal_dir(dir.path())).unwrap(), vec![3]);
        let reopened = Persister::open(dir.path(), tables.clone(), p.options.clone()).unwrap();
        assert_eq!(reopened.wal_persisted_through().await, 2);
        assert_eq!(reopened.files_of("t1").await.len(), 2);
        // Compaction merges the two files of the partition.
        p.maintain().await.unwrap();
        let files = t.snapshot().files;
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].rows, 2);
        p.delete_due(true);
        std::fs::write(
            dir.path()
                .join("live/clicks/date=1970-01-01/orphan.parquet"),
            b"x",
        )
        .unwrap();
        assert_eq!(p.remove_orphans().await, 1);
        assert_eq!(read_ids(&dir.path().join(&files[0].path)), vec![0, 1]);
    }
}
