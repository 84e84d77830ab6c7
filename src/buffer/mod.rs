//! Buffer: the rows of each live table that are durable in the WAL but not yet in Parquet, as
//! Arrow batches in memory, beside the list of the table's Parquet files.
//!
//! Fed by the WAL writer (through [`LiveTables`], the WAL's [`Applier`]) right after the sync
//! that made the rows durable, so an acknowledged row is visible to the next query. Read by the
//! query side as a [`Snapshot`] (buffer ∪ files, taken under one lock, so a row is never seen
//! twice or missed while [`crate::persist`] moves it from the buffer into a file).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::wal::Applier;

/// What every live table is defined by.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveTableDef {
    /// Unique per creation: WAL records and files are tied to it, so a table dropped and created
    /// again under the same name never sees the old rows.
    pub id: String,
    pub name: String,
    /// Timestamp columns are microsecond precision.
    pub schema: SchemaRef,
    /// Index of the time column (partitioning, pruning); NOT NULL on ingest.
    pub time_column: usize,
    /// Partitions whose newest row is older than this many days are dropped.
    pub retention_days: Option<u32>,
}

impl LiveTableDef {
    pub fn time_column_name(&self) -> &str {
        self.schema.field(self.time_column).name()
    }
}

/// One batch in the buffer.
#[derive(Debug)]
pub struct BufferedBatch {
    /// The WAL segment the rows are in; persisting segment S takes the batches with segment ≤ S.
    pub segment: u64,
    pub batch: RecordBatch,
    pub min_time: i64,
    pub max_time: i64,
    pub bytes: usize,
}

impl BufferedBatch {
    pub fn new(segment: u64, batch: RecordBatch, time_column: usize) -> Option<Self> {
        let times = batch
            .column(time_column)
            .as_primitive_opt::<TimestampMicrosecondType>()?;
        let min_time = arrow::compute::min(times)?;
        let max_time = arrow::compute::max(times)?;
        let bytes = batch.get_array_memory_size();
        Some(Self {
            segment,
            batch,
            min_time,
            max_time,
            bytes,
        })
    }
}

/// One Parquet file of a live table (also the manifest's entry for it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PersistedFile {
    /// Relative to the data directory, `/`-separated: `live/<table>/date=YYYY-MM-DD/<uuid>.parquet`.
    pub path: String,
    /// The partition date, `YYYY-MM-DD` (UTC) of every row's time.
    pub date: String,
    pub size: u64,
    pub rows: u64,
    pub min_time: i64,
    pub max_time: i64,
}

/// What a query reads: the buffer and the files at one instant.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub batches: Vec<Arc<BufferedBatch>>,
    pub files: Vec<Arc<PersistedFile>>,
}

#[derive(Debug, Default)]
struct Inner {
    batches: Vec<Arc<BufferedBatch>>,
    files: Vec<Arc<PersistedFile>>,
}

/// The data of one live table.
#[derive(Debug)]
pub struct TableData {
    pub def: Arc<LiveTableDef>,
    inner: RwLock<Inner>,
    memory: Arc<BufferMemory>,
}

impl TableData {
    pub fn new(def: Arc<LiveTableDef>, memory: Arc<BufferMemory>) -> Self {
        Self {
            def,
            inner: RwLock::default(),
            memory,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves consistent data (every update is a
        // single push or swap), so a poisoned lock is still safe to use.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> Snapshot {
        let inner = self.read();
        Snapshot {
            batches: inner.batches.clone(),
            files: inner.files.clone(),
        }
    }

    pub fn push(&self, batch: BufferedBatch) {
        self.memory.add(batch.bytes);
        self.write().batches.push(Arc::new(batch));
    }

    /// The buffered batches of segments up to `through`, for persisting.
    pub fn batches_through(&self, through: u64) -> Vec<Arc<BufferedBatch>> {
        self.read()
            .batches
            .iter()
            .filter(|b| b.segment <= through)
            .cloned()
            .collect()
    }

    /// Sets the file list (at start-up, from the manifest).
    pub fn set_files(&self, files: Vec<PersistedFile>) {
        self.write().files = files.into_iter().map(Arc::new).collect();
    }

    pub fn files(&self) -> Vec<Arc<PersistedFile>> {
        self.read().files.clone()
    }

    /// Atomically, for readers: adds `added` files, removes the files with paths in `removed`,
    /// and drops the buffered batches of segments up to `persisted_through`.
    pub fn swap(
        &self,
        added: Vec<PersistedFile>,
        removed: &[String],
        persisted_through: Option<u64>,
    ) {
        let mut freed = 0;
        {
            let mut inner = self.write();
            inner.files.retain(|f| !removed.contains(&f.path));
            inner.files.extend(added.into_iter().map(Arc::new));
            if let Some(s) = persisted_through {
                inner.batches.retain(|b| {
                    let keep = b.segment > s;
                    if !keep {
                        freed += b.bytes;
                    }
                    keep
                });
            }
        }
        self.memory.release(freed);
    }

    /// Frees the buffer's memory accounting when the table is dropped.
    pub fn clear(&self) {
        let freed: usize = {
            let mut inner = self.write();
            let freed = inner.batches.iter().map(|b| b.bytes).sum();
            inner.batches.clear();
            inner.files.clear();
            freed
        };
        self.memory.release(freed);
    }
}

/// Bytes held by all buffers together: the flush trigger and the writers' back-pressure.
#[derive(Debug, Default)]
pub struct BufferMemory {
    bytes: AtomicUsize,
    /// Woken when bytes are released (writers waiting for room) .
    pub released: Notify,
    /// Woken when bytes are added (the persister checks its size trigger).
    pub added: Notify,
}

impl BufferMemory {
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    fn add(&self, n: usize) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        self.added.notify_one();
    }

    fn release(&self, n: usize) {
        if n > 0 {
            self.bytes.fetch_sub(n, Ordering::Relaxed);
            self.released.notify_waiters();
        }
    }
}

/// Every live table's data, by table id; the WAL writer applies durable rows here.
#[derive(Debug, Default)]
pub struct LiveTables {
    tables: RwLock<HashMap<String, Arc<TableData>>>,
    pub memory: Arc<BufferMemory>,
}

impl LiveTables {
    pub fn insert(&self, def: Arc<LiveTableDef>) -> Arc<TableData> {
        let data = Arc::new(TableData::new(def.clone(), self.memory.clone()));
        self.tables
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(def.id.clone(), data.clone());
        data
    }

    pub fn remove(&self, id: &str) -> Option<Arc<TableData>> {
        let removed = self
            .tables
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if let Some(t) = &removed {
            t.clear();
        }
        removed
    }

    pub fn get(&self, id: &str) -> Option<Arc<TableData>> {
        self.tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<TableData>> {
        self.tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Applies rows read back from the WAL at start-up (same path as live writes).
    pub fn apply_replayed(&self, segment: u64, table_id: &str, batches: Vec<RecordBatch>) -> bool {
        let Some(table) = self.get(table_id) else {
            return false;
        };
        for b in batches {
            if b.num_rows() == 0 {
                continue;
            }
            if let Some(buffered) = BufferedBatch::new(segment, b, table.def.time_column) {
                table.push(buffered);
            }
        }
        true
    }
}

impl Applier for LiveTables {
    fn apply(&self, segment: u64, table_id: &str, batches: Vec<RecordBatch>) {
        // A table dropped while its write was in flight: the rows go nowhere, as if the write
        // had come after the drop.
        self.apply_replayed(segment, table_id, batches);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::TimestampMicrosecondArray;
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    fn def() -> Arc<LiveTableDef> {
        Arc::new(LiveTableDef {
            id: "id1".into(),
            name: "t".into(),
            schema: Arc::new(Schema::new(vec![Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            )])),
            time_column: 0,
            retention_days: None,
        })
    }

    fn batch(d: &LiveTableDef, ts: &[i64]) -> RecordBatch {
        RecordBatch::try_new(
            d.schema.clone(),
            vec![Arc::new(TimestampMicrosecondArray::from(ts.to_vec()))],
        )
        .unwrap()
    }

    #[test]
    fn swap_moves_rows_from_buffer_to_files_atomically() {
        let tables = LiveTables::default();
        let d = def();
        let t = tables.insert(d.clone());
        tables.apply(1, "id1", vec![batch(&d, &[5, 1, 9])]);
        tables.apply(2, "id1", vec![batch(&d, &[20])]);
        assert!(!tables.apply_replayed(2, "other", vec![batch(&d, &[1])]));
        let s = t.snapshot();
        assert_eq!(s.batches.len(), 2);
        assert_eq!((s.batches[0].min_time, s.batches[0].max_time), (1, 9));
        let used = tables.memory.bytes();
        assert!(used > 0);
        assert_eq!(t.batches_through(1).len(), 1);
        let file = PersistedFile {
            path: "live/t/date=1970-01-01/a.parquet".into(),
            date: "1970-01-01".into(),
            size: 10,
            rows: 3,
            min_time: 1,
            max_time: 9,
        };
        t.swap(vec![file], &[], Some(1));
        let s = t.snapshot();
        assert_eq!(s.batches.len(), 1);
        assert_eq!(s.files.len(), 1);
        assert!(tables.memory.bytes() < used);
        t.swap(
            vec![],
            &["live/t/date=1970-01-01/a.parquet".to_string()],
            None,
        );
        assert!(t.snapshot().files.is_empty());
        tables.remove("id1");
        assert_eq!(tables.memory.bytes(), 0);
    }
}
