//! Decoding Postgres `COPY ... FROM STDIN` data (text and CSV formats) into a live table's
//! batches. pgwire delivers the raw bytes and has no decoder for them; the text format's
//! backslash escapes and `\N` NULLs are Postgres-specific, so this small parser is ours. CSV
//! rows are split by the `csv` crate.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::decode::conform;
use super::{Error, Location, Result};
use crate::buffer::LiveTableDef;

/// Rows decoded at a time (bounds the text held in memory during a large COPY).
const CHUNK_BYTES: usize = 8 << 20;

/// How the COPY data is formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    pub csv: bool,
    pub header: bool,
    pub delimiter: u8,
    /// The string that means NULL (`\N` in text format, empty in CSV).
    pub null: String,
}

impl CopyOptions {
    pub fn text() -> Self {
        Self {
            csv: false,
            header: false,
            delimiter: b'\t',
            null: "\\N".into(),
        }
    }

    pub fn csv() -> Self {
        Self {
            csv: true,
            header: false,
            delimiter: b',',
            null: String::new(),
        }
    }
}

/// Decodes the data of one COPY as it arrives.
#[derive(Debug)]
pub struct CopyDecoder {
    def: Arc<LiveTableDef>,
    options: CopyOptions,
    text_schema: SchemaRef,
    pending: Vec<u8>,
    /// Lines consumed so far (for error messages).
    line: usize,
    header_skipped: bool,
    finished: bool,
    batches: Vec<RecordBatch>,
}

impl CopyDecoder {
    /// `columns`: the column list of the COPY statement (empty: every column, in order).
    pub fn new(def: Arc<LiveTableDef>, columns: &[String], options: CopyOptions) -> Result<Self> {
        let names: Vec<String> = if columns.is_empty() {
            def.schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        } else {
            for c in columns {
                if def.schema.field_with_name(c).is_err() {
                    return Err(Error::Malformed {
                        location: None,
                        message: format!("column '{c}' of table '{}' does not exist", def.name),
                    });
                }
            }
            columns.to_vec()
        };
        let text_schema = Arc::new(Schema::new(
            names
                .iter()
                .map(|n| Field::new(n, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        Ok(Self {
            def,
            header_skipped: !options.header,
            options,
            text_schema,
            pending: Vec::new(),
            line: 0,
            finished: false,
            batches: Vec::new(),
        })
    }

    pub fn columns(&self) -> usize {
        self.text_schema.fields().len()
    }

    /// Takes a CopyData message's bytes.
    pub fn push(&mut self, data: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(data);
        if self.pending.len() >= CHUNK_BYTES
            && let Some(end) = self.pending.iter().rposition(|&b| b == b'\n')
        {
            let chunk: Vec<u8> = self.pending.drain(..=end).collect();
            self.decode_chunk(&chunk)?;
        }
        Ok(())
    }

    /// Ends the data (CopyDone) and returns every row as batches of the table.
    pub fn finish(mut self) -> Result<Vec<RecordBatch>> {
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.decode_chunk(&rest)?;
        }
        Ok(self.batches)
    }

    fn decode_chunk(&mut self, chunk: &[u8]) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        let first_line = self.line;
        let rows = if self.options.csv {
            self.split_csv(chunk)?
        } else {
            self.split_text(chunk)?
        };
        if rows.is_empty() {
            return Ok(());
        }
        let columns = self.columns();
        let mut builders: Vec<StringBuilder> = (0..columns).map(|_| StringBuilder::new()).collect();
        let mut lines = Vec::with_capacity(rows.len());
        for (line, fields) in rows {
            if fields.len() != columns {
                return Err(Error::Malformed {
                    location: Some(Location::Line(line)),
                    message: format!(
                        "expected {columns} column(s), got {} (COPY {} uses {})",
                        fields.len(),
                        self.def.name,
                        if self.options.csv {
                            "CSV"
                        } else {
                            "tab-separated text"
                        }
                    ),
                });
            }
            for (b, f) in builders.iter_mut().zip(fields) {
                match f {
                    Some(v) => b.append_value(v),
                    None => b.append_null(),
                }
            }
            lines.push(line);
        }
        let arrays: Vec<ArrayRef> = builders
            .into_iter()
            .map(|mut b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let batch = RecordBatch::try_new(self.text_schema.clone(), arrays).map_err(|e| {
            Error::Malformed {
                location: None,
                message: e.to_string(),
            }
        })?;
        let conformed = conform(&self.def, batch, |i| {
            Location::Line(lines.get(i).copied().unwrap_or(first_line + i + 1))
        })?;
        self.batches.push(conformed);
        Ok(())
    }

    /// Text format: one row per line, fields split by the delimiter, backslash escapes.
    fn split_text(&mut self, chunk: &[u8]) -> Result<Vec<(usize, Vec<Option<String>>)>> {
        let mut rows = Vec::new();
        for raw in chunk.split(|&b| b == b'\n') {
            // `split` yields an empty piece after a final newline.
            if raw.is_empty() && std::ptr::eq(raw.as_ptr(), chunk[chunk.len()..].as_ptr()) {
                continue;
            }
            self.line += 1;
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            if line == b"\\." {
                self.finished = true;
                break;
            }
            if !self.header_skipped {
                self.header_skipped = true;
                continue;
            }
            let mut fields = Vec::new();
            for field in line.split(|&b| b == self.options.delimiter) {
                if field == self.options.null.as_bytes() {
                    fields.push(None);
                    continue;
                }
                let value = unescape(field).map_err(|message| Error::Malformed {
                    location: Some(Location::Line(self.line)),
                    message,
                })?;
                fields.push(Some(value));
            }
            rows.push((self.line, fields));
        }
        Ok(rows)
    }

    fn split_csv(&mut self, chunk: &[u8]) -> Result<Vec<(usize, Vec<Option<String>>)>> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(self.options.delimiter)
            .from_reader(chunk);
        let mut rows = Vec::new();
        let base = self.line;
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    let line = e
                        .position()
                        .map(|p| base + p.line() as usize)
                        .unwrap_or(base + 1);
                    return Err(Error::Malformed {
                        location: Some(Location::Line(line)),
                        message: format!("invalid CSV: {e}"),
                    });
                }
            }
            let line = base + record.position().map(|p| p.line() as usize).unwrap_or(1);
            self.line = line;
            if record.len() == 1 && &record[0] == "\\." {
                self.finished = true;
                break;
            }
            if !self.header_skipped {
                self.header_skipped = true;
                continue;
            }
            let fields = record
                .iter()
                .map(|f| (f != self.options.null).then(|| f.to_string()))
                .collect();
            rows.push((line, fields));
        }
        // Count the chunk's lines exactly for the next chunk's numbering.
        self.line = base + chunk.iter().filter(|&&b| b == b'\n').count();
        Ok(rows)
    }
}

/// Undoes the text format's backslash escapes.
fn unescape(field: &[u8]) -> std::result::Result<String, String> {
    if !field.contains(&b'\\') {
        return String::from_utf8(field.to_vec()).map_err(|_| "invalid UTF-8".to_string());
    }
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' || i + 1 == field.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let next = field[i + 1];
        i += 2;
        match next {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(next - b'0');
                let mut n = 1;
                while n < 3 && i < field.len() && (b'0'..=b'7').contains(&field[i]) {
                    v = v * 8 + u32::from(field[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push((v & 0xff) as u8);
            }
            b'x' => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 && i < field.len() && field[i].is_ascii_hexdigit() {
                    v = v * 16 + (field[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    n += 1;
                }
                out.push((v & 0xff) as u8);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).map_err(|_| "invalid UTF-8 after unescaping".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type};

    /// The same `clicks` table the decoder tests use.
    fn def() -> Arc<LiveTableDef> {
        Arc::new(crate::ingest::decode::tests::def())
    }

    #[test]
    fn text_format_with_escapes_nulls_and_split_messages() {
        let mut d = CopyDecoder::new(def(), &[], CopyOptions::text()).unwrap();
        d.push(b"2026-10-01 00:00:00\t1\ta\\tb\t1.5\n2026-10-01 00:00:01\t2\t\\N\t")
            .unwrap();
        d.push(b"\\N\n\\.\n").unwrap();
        let b = d.finish().unwrap();
        assert_eq!(b[0].num_rows(), 2);
        assert_eq!(b[0].column(2).as_string::<i32>().value(0), "a\tb");
        assert!(b[0].column(2).is_null(1));
        assert!(b[0].column(3).is_null(1));
        assert_eq!(b[0].column(3).as_primitive::<Float64Type>().value(0), 1.5);
    }

    #[test]
    fn csv_with_header_and_column_list() {
        let cols = vec!["id".to_string(), "ts".to_string()];
        let mut o = CopyOptions::csv();
        o.header = true;
        let mut d = CopyDecoder::new(def(), &cols, o).unwrap();
        d.push(b"id,ts\n7,2026-10-01T00:00:00Z\n8,\"2026-10-01 00:00:01\"\n")
            .unwrap();
        let b = d.finish().unwrap();
        assert_eq!(
            b[0].column(1).as_primitive::<Int64Type>().values().to_vec(),
            vec![7, 8]
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        let mut d = CopyDecoder::new(def(), &[], CopyOptions::text()).unwrap();
        d.push(b"2026-10-01 00:00:00\t1\ta\t1\n2026-10-01 00:00:00\tx\ta\t1\n")
            .unwrap();
        let m = d.finish().unwrap_err().to_string();
        assert!(m.contains("line 2") && m.contains("'id'"), "{m}");
        let mut d = CopyDecoder::new(def(), &[], CopyOptions::text()).unwrap();
        d.push(b"2026-10-01 00:00:00\t1\n").unwrap();
        let m = d.finish().unwrap_err().to_string();
        assert!(m.contains("line 1") && m.contains("expected 4"), "{m}");
        assert!(CopyDecoder::new(def(), &["nope".into()], CopyOptions::text()).is_err());
    }

    #[test]
    fn unescape_cases() {
        assert_eq!(unescape(b"a\\\\b\\n\\101\\x41").unwrap(), "a\\b\nAA");
    }
}
