//! Runs the `.slt` files in `sql/slt/` (sqllogictest format) against a real server over the
//! Postgres protocol. Variables: `$EVENTS_DIR` is a small generated dataset.

mod common;

use async_trait::async_trait;
use common::TestServer;
use sqllogictest::{DBOutput, DefaultColumnType};
use tokio_postgres::SimpleQueryMessage;

struct PgDb {
    client: tokio_postgres::Client,
}

#[derive(Debug)]
struct PgError(tokio_postgres::Error);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_db_error() {
            Some(db) => write!(f, "{}: {}", db.code().code(), db.message()),
            None => write!(f, "{}", self.0),
        }
    }
}

impl std::error::Error for PgError {}

#[async_trait]
impl sqllogictest::AsyncDB for PgDb {
    type Error = PgError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, PgError> {
        let messages = self.client.simple_query(sql).await.map_err(PgError)?;
        let mut rows = Vec::new();
        let mut columns = None;
        for m in messages {
            match m {
                SimpleQueryMessage::RowDescription(d) => columns = Some(d.len()),
                SimpleQueryMessage::Row(r) => {
                    columns = Some(r.len());
                    rows.push(
                        (0..r.len())
                            .map(|i| r.get(i).unwrap_or("NULL").to_string())
                            .collect(),
                    );
                }
                SimpleQueryMessage::CommandComplete(n) if columns.is_none() => {
                    return Ok(DBOutput::StatementComplete(n));
                }
                _ => {}
            }
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; columns.unwrap_or(0)],
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_logic_tests() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path()).await;
    let events = common::events_dir().display().to_string();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/slt");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    for file in files {
        let addr = server.addr;
        let mut runner = sqllogictest::Runner::new(move || async move {
            let conn_str = format!(
                "host={} port={} user=carthouse dbname=carthouse",
                addr.ip(),
                addr.port()
            );
            let (client, conn) = tokio_postgres::connect(&conn_str, tokio_postgres::NoTls)
                .await
                .map_err(PgError)?;
            tokio::spawn(conn);
            Ok::<_, PgError>(PgDb { client })
        });
        runner.set_var("EVENTS_DIR".into(), events.clone());
        runner
            .run_file_async(&file)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
    server.stop().await;
}
