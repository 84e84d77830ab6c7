//! Configuration: the typed, strict `carthouse.toml`, with command-line and environment
//! overrides applied by `main.rs`. Every key is documented in the README; an unknown key is an
//! error that names the key, the file and the line, never a silent default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors loading or validating a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config file {path}: table `{table}`: {message}")]
    Table {
        path: PathBuf,
        table: String,
        message: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub const DEFAULT_PG_ADDR: &str = "127.0.0.1:5433";
pub const DEFAULT_FLIGHT_ADDR: &str = "127.0.0.1:50051";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./carthouse-data";

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    /// Connection settings for `s3://` locations. Unset keys fall back to `AWS_*` variables.
    pub s3: S3Config,
    /// Tables registered at every start (not written to the persisted catalog).
    #[serde(rename = "table")]
    pub tables: Vec<TableConfig>,
    /// How live tables buffer and persist.
    pub live: LiveConfig,
    /// Live tables declared in the config file (created at first start, kept after).
    #[serde(rename = "live_table")]
    pub live_tables: Vec<LiveTableConfig>,
}

/// Buffering and persistence of live tables.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// Persist buffered rows to Parquet at least this often (milliseconds).
    pub flush_interval_ms: u64,
    /// Persist as soon as the buffers hold this many bytes.
    pub flush_bytes: u64,
    /// Writers wait (back-pressure) while the buffers hold more than this many bytes.
    pub buffer_limit_bytes: u64,
    /// HTTP ingest bodies larger than this are refused with 413.
    pub max_request_bytes: u64,
    /// Compact a day partition once it has this many small files.
    pub compact_min_files: usize,
    /// Files smaller than this count as small for compaction.
    pub compact_file_bytes: u64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            flush_interval_ms: 10_000,
            flush_bytes: 128 << 20,
            buffer_limit_bytes: 1 << 30,
            max_request_bytes: 256 << 20,
            compact_min_files: 8,
            compact_file_bytes: 64 << 20,
        }
    }
}

/// A live table declared in the config file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LiveTableConfig {
    pub name: String,
    /// Column definitions as in `CREATE TABLE t (...)`, e.g.
    /// `"ts TIMESTAMP NOT NULL, user_id BIGINT NOT NULL, page TEXT"`.
    pub columns: String,
    /// The time column (partitioning, pruning); default: the first TIMESTAMP column.
    #[serde(default)]
    pub time_column: Option<String>,
    /// Drop day partitions whose newest row is older than this many days.
    #[serde(default)]
    pub retention_days: Option<u32>,
}

impl LiveTableConfig {
    pub fn to_create_sql(&self) -> String {
        format!("CREATE TABLE \"{}\" ({})", self.name, self.columns)
    }

    /// The table's stable id: config tables are recreated at every start from the same
    /// declaration, so their WAL records and files must find them again by name.
    pub fn id(&self) -> String {
        format!("config-{}", self.name)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the Postgres wire protocol listener.
    pub pg_addr: SocketAddr,
    /// Address of the Arrow Flight SQL listener.
    pub flight_addr: SocketAddr,
    /// Address of the HTTP listener (ingest, SQL, health).
    pub http_addr: SocketAddr,
    /// Where carthouse keeps its catalog and the demo dataset.
    pub data_dir: PathBuf,
    /// Number of partitions DataFusion plans with; 0 means one per CPU core.
    pub target_partitions: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            pg_addr: DEFAULT_PG_ADDR.parse().expect("constant address parses"),
            flight_addr: DEFAULT_FLIGHT_ADDR
                .parse()
                .expect("constant address parses"),
            http_addr: DEFAULT_HTTP_ADDR.parse().expect("constant address parses"),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            target_partitions: 0,
        }
    }
}

/// S3 (or S3-compatible: MinIO, moto, Ceph, R2) connection settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// e.g. `http://127.0.0.1:9000`; unset means AWS itself (or `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Allow plain-HTTP endpoints (needed for local test servers).
    pub allow_http: Option<bool>,
    /// Use `https://bucket.endpoint/` addressing instead of `https://endpoint/bucket/`.
    pub virtual_hosted_style: Option<bool>,
}

/// File formats a file table can be stored as.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Parquet,
    Csv,
}

impl FileFormat {
    pub fn sql_name(self) -> &'static str {
        match self {
            FileFormat::Parquet => "PARQUET",
            FileFormat::Csv => "CSV",
        }
    }
}

/// A file table declared in the config file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    pub name: String,
    pub format: FileFormat,
    /// A local directory or file, or `s3://bucket/prefix/`.
    pub location: String,
    /// Hive partition columns (`date=2026-10-01/`), outermost first.
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// CSV only: whether the first line is a header (default true).
    #[serde(default)]
    pub has_header: Option<bool>,
    /// CSV only: the field delimiter, one character (default `,`).
    #[serde(default)]
    pub delimiter: Option<String>,
}

impl Config {
    /// Loads and validates a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses config text; `path` is used in error messages only.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let config: Config = toml::from_str(text).map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        // File and live tables share one namespace: a name is an identifier, declared once.
        let mut check_name = |name: &str| -> Result<()> {
            let message = if !is_identifier(name) {
                "name must be a plain identifier (letters, digits, _; not starting with a digit)"
            } else if !seen.insert(name.to_ascii_lowercase()) {
                "declared twice"
            } else {
                return Ok(());
            };
            Err(Error::Table {
                path: path.to_path_buf(),
                table: name.to_string(),
                message: message.into(),
            })
        };
        for t in &self.live_tables {
            check_name(&t.name)?;
            let err = |message: String| Error::Table {
                path: path.to_path_buf(),
                table: t.name.clone(),
                message,
            };
            if t.columns.trim().is_empty() {
                return Err(err("`columns` is empty".into()));
            }
        }
        let l = &self.live;
        let live_err = |message: String| Error::Parse {
            path: path.to_path_buf(),
            message: format!("[live] {message}"),
        };
        if l.flush_interval_ms == 0 {
            return Err(live_err("flush_interval_ms must be at least 1".into()));
        }
        if l.buffer_limit_bytes < l.flush_bytes {
            return Err(live_err(format!(
                "buffer_limit_bytes ({}) must be at least flush_bytes ({})",
                l.buffer_limit_bytes, l.flush_bytes
            )));
        }
        if l.compact_min_files < 2 {
            return Err(live_err("compact_min_files must be at least 2".into()));
        }
        for t in &self.tables {
            check_name(&t.name)?;
            let err = |message: String| Error::Table {
                path: path.to_path_buf(),
                table: t.name.clone(),
                message,
            };
            if t.location.trim().is_empty() {
                return Err(err("`location` is empty".into()));
            }
            if t.format != FileFormat::Csv && (t.has_header.is_some() || t.delimiter.is_some()) {
                return Err(err(
                    "`has_header` and `delimiter` apply to format = \"csv\" only".into(),
                ));
            }
            if let Some(d) = &t.delimiter
                && d.chars().count() != 1
            {
                return Err(err(format!("`delimiter` must be one character, got {d:?}")));
            }
            for c in &t.partition_by {
                if !is_identifier(c) {
                    return Err(err(format!("partition column {c:?} is not an identifier")));
                }
            }
        }
        Ok(())
    }
}

impl TableConfig {
    /// The `CREATE EXTERNAL TABLE` statement that registers this table, so config tables and
    /// SQL tables go through one path (DataFusion's listing table factory).
    pub fn to_create_sql(&self) -> String {
        let mut sql = format!(
            "CREATE EXTERNAL TABLE \"{}\" STORED AS {}",
            self.name,
            self.format.sql_name()
        );
        if !self.partition_by.is_empty() {
            // Unquoted: DataFusion compares these names with the directory names verbatim.
            sql.push_str(&format!(
                " PARTITIONED BY ({})",
                self.partition_by.join(", ")
            ));
        }
        sql.push_str(&format!(
            " LOCATION '{}'",
            self.location.replace('\'', "''")
        ));
        let mut options = Vec::new();
        if self.format == FileFormat::Csv {
            let header = self.has_header.unwrap_or(true);
            options.push(format!("'format.has_header' '{header}'"));
            if let Some(d) = &self.delimiter {
                options.push(format!("'format.delimiter' '{}'", d.replace('\'', "''")));
            }
        }
        if !options.is_empty() {
            sql.push_str(&format!(" OPTIONS ({})", options.join(", ")));
        }
        sql
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A config for tests: port 0 and the given data directory.
pub fn test_config(data_dir: &Path) -> Config {
    Config {
        server: ServerConfig {
            pg_addr: "127.0.0.1:0".parse().expect("constant address parses"),
            flight_addr: "127.0.0.1:0".parse().expect("constant address parses"),
            http_addr: "127.0.0.1:0".parse().expect("constant address parses"),
            data_dir: data_dir.to_path_buf(),
            target_partitions: 0,
        },
        ..Config::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_config() {
        let text = r#"
            [server]
            pg_addr = "0.0.0.0:6543"
            data_dir = "/var/lib/carthouse"

            [s3]
            endpoint = "http://127.0.0.1:9000"
            region = "us-east-1"
            allow_http = true

            [[table]]
            name = "events"
            format = "parquet"
            location = "s3://shop/events/"
            partition_by = ["date"]

            [[table]]
            name = "products"
            format = "csv"
            location = "/data/products.csv"
            delimiter = ";"
        "#;
        let c = Config::parse(text, Path::new("c.toml")).unwrap();
        assert_eq!(c.server.pg_addr.port(), 6543);
        assert_eq!(c.tables.len(), 2);
        assert_eq!(
            c.tables[0].to_create_sql(),
            "CREATE EXTERNAL TABLE \"events\" STORED AS PARQUET PARTITIONED BY (date) LOCATION 's3://shop/events/'"
        );
        assert_eq!(
            c.tables[1].to_create_sql(),
            "CREATE EXTERNAL TABLE \"products\" STORED AS CSV LOCATION '/data/products.csv' OPTIONS ('format.has_header' 'true', 'format.delimiter' ';')"
        );
    }

    #[test]
    fn unknown_key_names_key_file_and_line() {
        let text = "[server]\npg_adr = \"127.0.0.1:1\"\n";
        let e = Config::parse(text, Path::new("my.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("my.toml"), "{e}");
        assert!(e.contains("pg_adr"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn shipped_configs_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for file in ["docker/carthouse.toml", "carthouse.example.toml"] {
            let c = Config::load(&root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(!c.tables.is_empty(), "{file} declares tables");
        }
    }

    #[test]
    fn csv_options_rejected_on_parquet() {
        let text = "[[table]]\nname='t'\nformat='parquet'\nlocation='/x'\nhas_header=true\n";
        let e = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("has_header"), "{e}");
    }

    #[test]
    fn bad_format_and_duplicate_rejected() {
        let text = "[[table]]\nname='t'\nformat='orc'\nlocation='/x'\n";
        assert!(Config::parse(text, Path::new("c.toml")).is_err());
        let text = "[[table]]\nname='t'\nformat='csv'\nlocation='/x'\n[[table]]\nname='T'\nformat='csv'\nlocation='/y'\n";
        let e = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
    }
}
