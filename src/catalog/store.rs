//! The persisted catalog file: table definitions kept in the data directory across restarts.
//!
//! Format (version 1), one file `catalog.json` in the data directory:
//! ```text
//! CARTHOUSE-CATALOG 1 <crc32 of the body, 8 hex digits>\n
//! <body: JSON {"tables": [{"name": "...", "sql": "CREATE EXTERNAL TABLE ..."}]}>
//! ```
//! The header carries a magic string, the format version and a checksum, so a torn or edited
//! file is detected instead of trusted. Writes go to a temporary file that is fsynced and then
//! renamed over the old one, so a crash leaves either the old or the new catalog.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const MAGIC: &str = "CARTHOUSE-CATALOG";
const VERSION: u32 = 1;
pub const FILE_NAME: &str = "catalog.json";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a carthouse {kind} file (bad header)")]
    BadHeader { path: PathBuf, kind: &'static str },
    #[error("{path} has format version {found}; this carthouse reads version {VERSION}")]
    UnsupportedVersion { path: PathBuf, found: u32 },
    #[error("{path} is corrupt: checksum {found:08x}, expected {expected:08x}")]
    Checksum {
        path: PathBuf,
        expected: u32,
        found: u32,
    },
    #[error("{path} has an invalid body: {source}")]
    Body {
        path: PathBuf,
        source: serde_json::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One persisted table: its name and the statement that recreates it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableEntry {
    pub name: String,
    pub sql: String,
    /// Set for live tables (`CREATE TABLE`): what the statement alone does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveEntry>,
}

/// The persisted part of a live table's definition beyond its `CREATE TABLE` statement.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LiveEntry {
    /// Unique per creation (WAL records and Parquet files refer to it).
    pub id: String,
    pub time_column: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Body {
    tables: Vec<TableEntry>,
}

/// Reads and writes the catalog file of one data directory.
#[derive(Debug)]
pub struct CatalogStore {
    path: PathBuf,
}

impl CatalogStore {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(FILE_NAME),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the persisted tables; a missing file is an empty catalog.
    pub fn load(&self) -> Result<Vec<TableEntry>> {
        let body: Option<Body> = load_checksummed(&self.path, MAGIC, "catalog")?;
        Ok(body.map(|b| b.tables).unwrap_or_default())
    }

    /// Atomically replaces the catalog file with `tables`.
    pub fn save(&self, tables: &[TableEntry]) -> Result<()> {
        let body = Body {
            tables: tables.to_vec(),
        };
        save_checksummed(&self.path, MAGIC, &body)
    }
}

/// Atomically replaces `path` with `body` as checksummed JSON under a `MAGIC VERSION CRC`
/// header line (temporary file, fsync, rename, directory fsync): a crash leaves the old or the
/// new file, never a mix. Shared by the catalog and the live-table manifest.
pub fn save_checksummed<T: Serialize>(path: &Path, magic: &str, body: &T) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let json = serde_json::to_vec_pretty(body).map_err(|source| Error::Body {
        path: path.to_path_buf(),
        source,
    })?;
    let crc = crc32fast::hash(&json);
    let mut bytes = format!("{magic} {VERSION} {crc:08x}\n").into_bytes();
    bytes.extend_from_slice(&json);
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a file written by [`save_checksummed`]; `None` when it does not exist.
pub fn load_checksummed<T: serde::de::DeserializeOwned>(
    path: &Path,
    magic: &str,
    kind: &'static str,
) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => decode(&bytes, path, magic, kind).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    path: &Path,
    magic: &str,
    kind: &'static str,
) -> Result<T> {
    let bad = || Error::BadHeader {
        path: path.to_path_buf(),
        kind,
    };
    let nl = bytes.iter().position(|b| *b == b'\n').ok_or_else(bad)?;
    let header = std::str::from_utf8(&bytes[..nl]).map_err(|_| bad())?;
    let mut parts = header.split(' ');
    if parts.next() != Some(magic) {
        return Err(bad());
    }
    let version: u32 = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    if version != VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
        });
    }
    let expected = parts
        .next()
        .and_then(|c| u32::from_str_radix(c, 16).ok())
        .ok_or_else(bad)?;
    let body = &bytes[nl + 1..];
    let found = crc32fast::hash(body);
    if found != expected {
        return Err(Error::Checksum {
            path: path.to_path_buf(),
            expected,
            found,
        });
    }
    serde_json::from_slice(body).map_err(|source| Error::Body {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<TableEntry> {
        vec![TableEntry {
            name: "events".into(),
            sql: "CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION '/x/'".into(),
            live: None,
        }]
    }

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = CatalogStore::new(dir.path());
        assert!(store.load().unwrap().is_empty());
        store.save(&entries()).unwrap();
        assert_eq!(store.load().unwrap(), entries());
    }

    #[test]
    fn detects_corruption_and_bad_header() {
        let dir = tempfile::tempdir().unwrap();
        let store = CatalogStore::new(dir.path());
        store.save(&entries()).unwrap();
        let mut bytes = std::fs::read(store.path()).unwrap();
        let last = bytes.len() - 5;
        bytes[last] ^= 0x20;
        std::fs::write(store.path(), &bytes).unwrap();
        assert!(matches!(store.load(), Err(Error::Checksum { .. })));
        std::fs::write(store.path(), b"{\"tables\": []}").unwrap();
        assert!(matches!(store.load(), Err(Error::BadHeader { .. })));
        std::fs::write(store.path(), b"CARTHOUSE-CATALOG 9 00000000\n{}").unwrap();
        assert!(matches!(
            store.load(),
            Err(Error::UnsupportedVersion { found: 9, .. })
        ));
    }
}
