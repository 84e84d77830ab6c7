//! WAL: the write-ahead log that makes an ingest request durable before it is acknowledged.
//!
//! Fed by [`crate::ingest`] (one record per request, so a request is all-or-nothing), read back
//! by [`replay`] at start-up into [`crate::buffer`], and truncated by [`crate::persist`] once a
//! segment's rows are safely in Parquet.
//!
//! # Format (version 1)
//! One directory of segment files `<id, 20 digits>.wal`, ids increasing. Each file:
//! ```text
//! header:  b"CARTWAL\0" | version u32 LE | segment id u64 LE
//! record:  payload length u32 LE | crc32 of payload u32 LE | payload
//! payload: kind u8 (1 = rows) | table id length u16 LE | table id (UTF-8) | Arrow IPC stream
//! ```
//! A record is trusted only when its whole payload is present and its checksum matches; the
//! first record that is not ends the log (a torn tail after a crash) and is cut off.
//!
//! # Group commit
//! One writer thread owns the open segment. Requests that arrive while it is syncing queue up and
//! are written together and covered by one `fdatasync`; each waiter is answered only after that
//! sync, and after its rows were handed to the buffer (so they are visible to the next query).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use tokio::sync::oneshot;
use tracing::{error, warn};

const MAGIC: &[u8; 8] = b"CARTWAL\0";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 8;
const RECORD_HEADER_LEN: usize = 8;
const KIND_ROWS: u8 = 1;
/// Largest payload one record may carry (the length field is 32 bits).
pub const MAX_RECORD_BYTES: usize = u32::MAX as usize - 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("write-ahead log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write-ahead log segment {path} is not a carthouse WAL file (bad header)")]
    BadHeader { path: PathBuf },
    #[error(
        "write-ahead log segment {path} has version {found}; this carthouse reads version {VERSION}"
    )]
    UnsupportedVersion { path: PathBuf, found: u32 },
    #[error(
        "write-ahead log segment {path} is corrupt at byte {offset} and is not the last segment; \
         refusing to start rather than lose the rows after it"
    )]
    CorruptSegment { path: PathBuf, offset: u64 },
    #[error("write-ahead log record in {path} at byte {offset} cannot be decoded: {message}")]
    BadRecord {
        path: PathBuf,
        offset: u64,
        message: String,
    },
    #[error("cannot encode rows for the write-ahead log: {0}")]
    Encode(#[from] arrow::error::ArrowError),
    #[error("request of {bytes} bytes is larger than one write-ahead log record can hold")]
    TooLarge { bytes: usize },
    #[error("the write-ahead log writer has stopped (an earlier write failed: see the log)")]
    Stopped,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a segment id lives.
pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.wal"))
}

/// The ids of the segments in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else {
            continue;
        };
        if let Ok(id) = stem.parse::<u64>() {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Encodes the payload of one rows record.
pub fn encode_rows(table_id: &str, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(
        64 + batches
            .iter()
            .map(|b| b.get_array_memory_size())
            .sum::<usize>(),
    );
    out.push(KIND_ROWS);
    let id = table_id.as_bytes();
    out.extend_from_slice(&(id.len() as u16).to_le_bytes());
    out.extend_from_slice(id);
    if let Some(first) = batches.first() {
        let mut writer = StreamWriter::try_new(&mut out, &first.schema())?;
        for b in batches {
            writer.write(b)?;
        }
        writer.finish()?;
    }
    if out.len() > MAX_RECORD_BYTES {
        return Err(Error::TooLarge { bytes: out.len() });
    }
    Ok(out)
}

/// One decoded rows record.
#[derive(Debug)]
pub struct RowsRecord {
    pub table_id: String,
    pub batches: Vec<RecordBatch>,
}

fn decode_rows(payload: &[u8]) -> std::result::Result<RowsRecord, String> {
    let (&kind, rest) = payload.split_first().ok_or("empty record")?;
    if kind != KIND_ROWS {
        return Err(format!("unknown record kind {kind}"));
    }
    if rest.len() < 2 {
        return Err("record too short".into());
    }
    let id_len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
    let rest = &rest[2..];
    if rest.len() < id_len {
        return Err("record too short for its table id".into());
    }
    let table_id = std::str::from_utf8(&rest[..id_len])
        .map_err(|e| e.to_string())?
        .to_string();
    let ipc = &rest[id_len..];
    let mut batches = Vec::new();
    if !ipc.is_empty() {
        let reader = StreamReader::try_new(ipc, None).map_err(|e| e.to_string())?;
        for b in reader {
            batches.push(b.map_err(|e| e.to_string())?);
        }
    }
    Ok(RowsRecord { table_id, batches })
}

/// What [`replay`] found.
#[derive(Debug, Default)]
pub struct Replay {
    /// Records of the segments after `after`, in log order, with their segment id.
    pub records: Vec<(u64, RowsRecord)>,
    /// The highest segment id present (the next writer starts after it).
    pub last_segment: u64,
    /// Bytes cut off torn tails.
    pub torn_bytes: u64,
}

/// Reads every segment with an id in `after+1 ..= upto`. A record that fails its checksum or is
/// cut short ends the log: in the last segment it is a torn tail and the file is truncated there;
/// in an earlier segment it is corruption and an error (rows after it would be lost silently).
pub fn replay(dir: &Path, after: u64, upto: u64) -> Result<Replay> {
    let ids: Vec<u64> = list_segments(dir)?
        .into_iter()
        .filter(|&id| id <= upto)
        .collect();
    let mut out = Replay {
        last_segment: ids.last().copied().unwrap_or(0),
        ..Default::default()
    };
    for (i, &id) in ids.iter().enumerate() {
        if id <= after {
            continue;
        }
        let is_last = i + 1 == ids.len();
        let path = segment_path(dir, id);
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io_err(&path))?;
        if bytes.len() < HEADER_LEN {
            if is_last {
                // Created but its header never made it to disk: nothing was acknowledged in it.
                out.torn_bytes += bytes.len() as u64;
                std::fs::remove_file(&path).map_err(io_err(&path))?;
                continue;
            }
            return Err(Error::BadHeader { path });
        }
        check_header(&bytes, &path)?;
        let mut offset = HEADER_LEN;
        while offset < bytes.len() {
            let Some(payload) = read_record(&bytes, offset) else {
                if !is_last {
                    return Err(Error::CorruptSegment {
                        path,
                        offset: offset as u64,
                    });
                }
                let torn = (bytes.len() - offset) as u64;
                warn!(path = %path.display(), offset, torn, "dropping torn write-ahead log tail");
                out.torn_bytes += torn;
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                f.set_len(offset as u64).map_err(io_err(&path))?;
                f.sync_all().map_err(io_err(&path))?;
                break;
            };
            let record = decode_rows(payload).map_err(|message| Error::BadRecord {
                path: path.clone(),
                offset: offset as u64,
                message,
            })?;
            offset += RECORD_HEADER_LEN + payload.len();
            out.records.push((id, record));
        }
    }
    Ok(out)
}

fn check_header(bytes: &[u8], path: &Path) -> Result<()> {
    if &bytes[..8] != MAGIC {
        return Err(Error::BadHeader {
            path: path.to_path_buf(),
        });
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
        });
    }
    Ok(())
}

/// The payload of the record at `offset`, or `None` when it is cut short or fails its checksum.
fn read_record(bytes: &[u8], offset: usize) -> Option<&[u8]> {
    let header = bytes.get(offset..offset + RECORD_HEADER_LEN)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let start = offset + RECORD_HEADER_LEN;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    (crc32fast::hash(payload) == crc).then_some(payload)
}

/// Deletes segments with ids up to and including `through` (their rows are in Parquet).
pub fn remove_segments_through(dir: &Path, through: u64) -> Result<usize> {
    let mut removed = 0;
    for id in list_segments(dir)? {
        if id <= through {
            let path = segment_path(dir, id);
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
    }
    Ok(removed)
}

/// Called by the writer thread, after the sync that made a record durable and before its
/// writer is answered: hands the rows to the buffer, tagged with their segment id.
pub trait Applier: Send + Sync + 'static {
    fn apply(&self, segment: u64, table_id: &str, batches: Vec<RecordBatch>);
}

enum Op {
    Append {
        table_id: String,
        payload: Vec<u8>,
        batches: Vec<RecordBatch>,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Closes the open segment and starts the next; answers with the closed segment's id.
    Rotate { reply: oneshot::Sender<Result<u64>> },
}

/// Handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct Wal {
    tx: mpsc::Sender<Op>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").finish_non_exhaustive()
    }
}

/// How many bytes one group commit writes before it syncs, at most (bounds the latency of the
/// first writer in a large group).
const GROUP_BYTES: usize = 64 << 20;

impl Wal {
    /// Starts the writer on a new segment `first_segment` in `dir`.
    pub fn start(dir: &Path, first_segment: u64, applier: Arc<dyn Applier>) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let segment = Segment::create(dir, first_segment)?;
        let (tx, rx) = mpsc::channel();
        let dir = dir.to_path_buf();
        std::thread::Builder::new()
            .name("carthouse-wal".into())
            .spawn(move || writer_loop(dir, segment, rx, applier))
            .map_err(|source| Error::Io {
                path: PathBuf::from("<wal writer thread>"),
                source,
            })?;
        Ok(Self { tx })
    }

    /// Appends one record and waits until it is durable and applied.
    pub async fn append(
        &self,
        table_id: &str,
        payload: Vec<u8>,
        batches: Vec<RecordBatch>,
    ) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Append {
                table_id: table_id.to_string(),
                payload,
                batches,
                reply,
            })
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Closes the open segment (every row in it has been applied) and returns its id.
    pub async fn rotate(&self) -> Result<u64> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Rotate { reply })
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }
}

struct Segment {
    id: u64,
    path: PathBuf,
    file: BufWriter<File>,
}

impl Segment {
    fn create(dir: &Path, id: u64) -> Result<Self> {
        let path = segment_path(dir, id);
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let mut file = BufWriter::with_capacity(1 << 20, file);
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&id.to_le_bytes());
        file.write_all(&header).map_err(io_err(&path))?;
        file.flush().map_err(io_err(&path))?;
        file.get_ref().sync_all().map_err(io_err(&path))?;
        // The new file's directory entry must be durable too.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(Self { id, path, file })
    }

    fn write_record(&mut self, payload: &[u8]) -> Result<()> {
        let mut header = [0u8; RECORD_HEADER_LEN];
        header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[4..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
        self.file.write_all(&header).map_err(io_err(&self.path))?;
        self.file.write_all(payload).map_err(io_err(&self.path))
    }

    fn sync(&mut self) -> Result<()> {
        self.file.flush().map_err(io_err(&self.path))?;
        self.file.get_ref().sync_data().map_err(io_err(&self.path))
    }
}

fn writer_loop(
    dir: PathBuf,
    mut segment: Segment,
    rx: mpsc::Receiver<Op>,
    applier: Arc<dyn Applier>,
) {
    // After a failed write or sync the file's state is unknown: stop taking writes (every later
    // request gets an error) rather than acknowledge rows that may not be on disk.
    let mut failed: Option<String> = None;
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        let mut bytes = 0usize;
        while bytes < GROUP_BYTES {
            match rx.try_recv() {
                Ok(op) => {
                    if let Op::Append { payload, .. } = &op {
                        bytes += payload.len();
                    }
                    group.push(op);
                }
                Err(_) => break,
            }
        }
        // Appends are written as they come and answered after the next sync, which happens
        // once per group, or before a rotation closes the segment they are in.
        let mut unsynced: Vec<(String, Vec<RecordBatch>, oneshot::Sender<Result<()>>)> = Vec::new();
        for op in group {
            if let Some(msg) = &failed {
                reply_err(op, msg);
                continue;
            }
            match op {
                Op::Append {
                    table_id,
                    payload,
                    batches,
                    reply,
                } => match segment.write_record(&payload) {
                    Ok(()) => unsynced.push((table_id, batches, reply)),
                    Err(e) => {
                        failed = Some(fail(&e, &mut unsynced));
                        let _ = reply.send(Err(e));
                    }
                },
                Op::Rotate { reply } => {
                    if let Err(e) = sync_and_apply(&mut segment, &mut unsynced, applier.as_ref()) {
                        failed = Some(e.to_string());
                        let _ = reply.send(Err(e));
                        continue;
                    }
                    let closed = segment.id;
                    match Segment::create(&dir, closed + 1) {
                        Ok(next) => {
                            segment = next;
                            let _ = reply.send(Ok(closed));
                        }
                        Err(e) => {
                            error!(error = %e, "cannot start a new write-ahead log segment");
                            failed = Some(e.to_string());
                            let _ = reply.send(Err(e));
                        }
                    }
                }
            }
        }
        if failed.is_none()
            && let Err(e) = sync_and_apply(&mut segment, &mut unsynced, applier.as_ref())
        {
            failed = Some(e.to_string());
        }
    }
}

/// Syncs the open segment, then hands every unsynced append to the buffer and answers it. On a
/// failed sync every unsynced writer gets the error and nothing is applied.
fn sync_and_apply(
    segment: &mut Segment,
    unsynced: &mut Vec<(String, Vec<RecordBatch>, oneshot::Sender<Result<()>>)>,
    applier: &dyn Applier,
) -> Result<()> {
    if unsynced.is_empty() {
        return Ok(());
    }
    if let Err(e) = segment.sync() {
        fail(&e, unsynced);
        return Err(e);
    }
    for (table_id, batches, reply) in unsynced.drain(..) {
        applier.apply(segment.id, &table_id, batches);
        let _ = reply.send(Ok(()));
    }
    Ok(())
}

fn fail(
    e: &Error,
    unsynced: &mut Vec<(String, Vec<RecordBatch>, oneshot::Sender<Result<()>>)>,
) -> String {
    let msg = e.to_string();
    error!(error = %msg, "write-ahead log write failed; refusing further writes");
    for (_, _, reply) in unsynced.drain(..) {
        let _ = reply.send(Err(Error::Io {
            path: PathBuf::from("<write-ahead log>"),
            source: std::io::Error::other(msg.clone()),
        }));
    }
    msg
}

fn reply_err(op: Op, msg: &str) {
    let err = || Error::Io {
        path: PathBuf::from("<write-ahead log>"),
        source: std::io::Error::other(msg.to_string()),
    };
    match op {
        Op::Append { reply, .. } => {
            let _ = reply.send(Err(err()));
        }
        Op::Rotate { reply } => {
            let _ = reply.send(Err(err()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Mutex;

    fn batch(ids: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(
                    ids.iter()
                        .map(|i| Some(format!("v{i}")))
                        .collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    #[derive(Default)]
    struct Collect(Mutex<Vec<(u64, String, usize)>>);
    impl Applier for Collect {
        fn apply(&self, segment: u64, table_id: &str, batches: Vec<RecordBatch>) {
            let rows = batches.iter().map(|b| b.num_rows()).sum();
            self.0
                .lock()
                .unwrap()
                .push((segment, table_id.to_string(), rows));
        }
    }

    fn ids_of(r: &Replay) -> Vec<i64> {
        r.records
            .iter()
            .flat_map(|(_, rec)| rec.batches.iter())
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[tokio::test]
    async fn append_rotate_replay() {
        let dir = tempfile::tempdir().unwrap();
        let applied = Arc::new(Collect::default());
        let wal = Wal::start(dir.path(), 1, applied.clone()).unwrap();
        let b = batch(&[1, 2, 3]);
        wal.append("t1", encode_rows("t1", &[b.clone()]).unwrap(), vec![b])
            .await
            .unwrap();
        assert_eq!(wal.rotate().await.unwrap(), 1);
        let b = batch(&[4]);
        wal.append("t2", encode_rows("t2", &[b.clone()]).unwrap(), vec![b])
            .await
            .unwrap();
        assert_eq!(
            *applied.0.lock().unwrap(),
            vec![(1, "t1".to_string(), 3), (2, "t2".to_string(), 1)]
        );
        let all = replay(dir.path(), 0, u64::MAX).unwrap();
        assert_eq!(ids_of(&all), vec![1, 2, 3, 4]);
        assert_eq!(all.last_segment, 2);
        let after = replay(dir.path(), 1, u64::MAX).unwrap();
        assert_eq!(ids_of(&after), vec![4]);
        assert_eq!(after.records[0].1.table_id, "t2");
        remove_segments_through(dir.path(), 1).unwrap();
        assert_eq!(list_segments(dir.path()).unwrap(), vec![2]);
    }

    #[tokio::test]
    async fn concurrent_writers_share_syncs_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let applied = Arc::new(Collect::default());
        let wal = Wal::start(dir.path(), 1, applied.clone()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..64i64 {
            let wal = wal.clone();
            tasks.push(tokio::spawn(async move {
                let b = batch(&[i]);
                wal.append("t", encode_rows("t", &[b.clone()]).unwrap(), vec![b])
                    .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let mut ids = ids_of(&replay(dir.path(), 0, u64::MAX).unwrap());
        ids.sort();
        assert_eq!(ids, (0..64).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn torn_tail_is_dropped_at_every_cut() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::start(dir.path(), 1, Arc::new(Collect::default())).unwrap();
        for i in 0..3 {
            let b = batch(&[i * 10, i * 10 + 1]);
            wal.append("t", encode_rows("t", &[b.clone()]).unwrap(), vec![b])
                .await
                .unwrap();
        }
        drop(wal);
        let path = segment_path(dir.path(), 1);
        let full = std::fs::read(&path).unwrap();
        // Record boundaries: find by replaying prefixes.
        let whole = ids_of(&replay(dir.path(), 0, u64::MAX).unwrap());
        assert_eq!(whole, vec![0, 1, 10, 11, 20, 21]);
        for cut in HEADER_LEN..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let r = replay(dir.path(), 0, u64::MAX).unwrap();
            let ids = ids_of(&r);
            // Always a whole-record prefix of the original.
            assert!(whole.starts_with(&ids), "cut {cut}: {ids:?}");
            assert_eq!(ids.len() % 2, 0, "cut {cut}: partial record trusted");
            // The file was truncated to the last good record.
            let after = std::fs::metadata(&path).unwrap().len() as usize;
            assert!(after <= cut);
        }
        // A flipped byte inside the last record is caught by the checksum.
        let mut bad = full.clone();
        let n = bad.len();
        bad[n - 5] ^= 0xff;
        std::fs::write(&path, &bad).unwrap();
        assert_eq!(
            ids_of(&replay(dir.path(), 0, u64::MAX).unwrap()),
            vec![0, 1, 10, 11]
        );
    }

    #[test]
    fn corruption_before_the_last_segment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let wal = Wal::start(dir.path(), 1, Arc::new(Collect::default())).unwrap();
            let b = batch(&[1]);
            wal.append("t", encode_rows("t", &[b.clone()]).unwrap(), vec![b])
                .await
                .unwrap();
            wal.rotate().await.unwrap();
        });
        let path = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            replay(dir.path(), 0, u64::MAX),
            Err(Error::CorruptSegment { .. })
        ));
        std::fs::write(&path, b"NOTAWAL\0\x01\0\0\0\0\0\0\0\0\0\0\0").unwrap();
        assert!(matches!(
            replay(dir.path(), 0, u64::MAX),
            Err(Error::BadHeader { .. })
        ));
    }
}
