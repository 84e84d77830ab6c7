//! Decoding request bodies (NDJSON, CSV with a header, Arrow IPC streams) into batches of a live
//! table's schema, with errors that name the line, the column and what was expected.
//!
//! The fast path decodes straight into the table's types with arrow-json / arrow-csv. When that
//! fails, the body is decoded again with every column as text and each column is cast on its
//! own, which finds the first bad value and its line: the libraries' own errors do not say
//! which line of the body or which column name was wrong in a form a user can act on.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, new_null_array};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;

use super::{Error, Location, Result};
use crate::buffer::LiveTableDef;

/// Rows per decoded batch.
const BATCH_ROWS: usize = 65_536;

/// The body formats `POST /v1/ingest/{table}` accepts, by Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    NdJson,
    Csv,
    ArrowStream,
}

impl BodyFormat {
    pub const NDJSON_MIME: &'static str = "application/x-ndjson";
    pub const CSV_MIME: &'static str = "text/csv";
    pub const ARROW_MIME: &'static str = "application/vnd.apache.arrow.stream";

    /// The format for a Content-Type header value (parameters such as charset ignored).
    pub fn from_content_type(value: &str) -> Option<Self> {
        let mime = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/x-ndjson"
            | "application/jsonl"
            | "application/json-lines"
            | "application/jsonlines"
            | "application/json" => Some(Self::NdJson),
            "text/csv" => Some(Self::Csv),
            "application/vnd.apache.arrow.stream" => Some(Self::ArrowStream),
            _ => None,
        }
    }
}

/// Decodes a body into batches conforming to `def`'s schema.
pub fn decode(def: &LiveTableDef, format: BodyFormat, body: &[u8]) -> Result<Vec<RecordBatch>> {
    match format {
        BodyFormat::NdJson => decode_ndjson(def, body),
        BodyFormat::Csv => decode_csv(def, body),
        BodyFormat::ArrowStream => decode_arrow(def, body),
    }
}

/// SQL name of a type, for messages.
pub fn sql_type_name(t: &DataType) -> String {
    match t {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 | DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            "unsigned integer".into()
        }
        DataType::Float16 | DataType::Float32 => "REAL".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "TEXT".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMPTZ".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BYTEA".into(),
        other => other.to_string(),
    }
}

fn nullable_schema(fields: impl Iterator<Item = Field>) -> SchemaRef {
    Arc::new(Schema::new(
        fields.map(|f| f.with_nullable(true)).collect::<Vec<_>>(),
    ))
}

fn text_schema(fields: impl Iterator<Item = Field>) -> SchemaRef {
    Arc::new(Schema::new(
        fields
            .map(|f| Field::new(f.name(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

// ---------------------------------------------------------------------------------- NDJSON

fn decode_ndjson(def: &LiveTableDef, body: &[u8]) -> Result<Vec<RecordBatch>> {
    // Integer columns are read as text and cast strictly: arrow-json would truncate 1.5 to 1.
    let schema = nullable_schema(def.schema.fields().iter().map(|f| {
        let f = f.as_ref().clone();
        if f.data_type().is_integer() {
            f.with_data_type(DataType::Utf8)
        } else {
            f
        }
    }));
    match ndjson_batches(schema, body, true) {
        Ok(batches) => {
            let mut row = 0;
            let mut out = Vec::with_capacity(batches.len());
            for b in batches {
                let n = b.num_rows();
                out.push(conform(def, b, |i| {
                    Location::Line(line_of_row(body, row + i))
                })?);
                row += n;
            }
            Ok(out)
        }
        Err(fast) => Err(locate_ndjson_error(def, body).unwrap_or(fast)),
    }
}

fn ndjson_batches(schema: SchemaRef, body: &[u8], coerce: bool) -> Result<Vec<RecordBatch>> {
    let arrow_err = |e: arrow::error::ArrowError| Error::Malformed {
        location: None,
        message: e.to_string(),
    };
    let mut decoder = arrow::json::ReaderBuilder::new(schema)
        .with_batch_size(BATCH_ROWS)
        .with_strict_mode(true)
        .with_coerce_primitive(coerce)
        .build_decoder()
        .map_err(arrow_err)?;
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let used = decoder.decode(rest).map_err(arrow_err)?;
        rest = &rest[used..];
        if used == 0 || decoder.len() >= BATCH_ROWS {
            if let Some(b) = decoder.flush().map_err(arrow_err)? {
                out.push(b);
            }
            if used == 0 && !rest.is_empty() {
                // The decoder could take no more input and had nothing to flush.
                return Err(Error::Malformed {
                    location: None,
                    message: "cannot decode the body as NDJSON".into(),
                });
            }
        }
    }
    if let Some(b) = decoder.flush().map_err(arrow_err)? {
        out.push(b);
    }
    Ok(out)
}

/// Lines of the body that hold a row: (1-based line number, text).
fn data_lines(body: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| l.iter().any(|b| !b.is_ascii_whitespace()))
}

fn line_of_row(body: &[u8], row: usize) -> usize {
    data_lines(body).nth(row).map(|(n, _)| n).unwrap_or(row + 1)
}

/// Finds the first bad line of an NDJSON body the fast path rejected.
fn locate_ndjson_error(def: &LiveTableDef, body: &[u8]) -> Option<Error> {
    let text = text_schema(def.schema.fields().iter().map(|f| f.as_ref().clone()));
    for (line, bytes) in data_lines(body) {
        let batches = match ndjson_batches(text.clone(), bytes, true) {
            Ok(b) => b,
            Err(e) => {
                let message = match e {
                    Error::Malformed { message, .. } => describe_json_error(def, bytes, message),
                    other => other.to_string(),
                };
                return Some(Error::Malformed {
                    location: Some(Location::Line(line)),
                    message,
                });
            }
        };
        for b in batches {
            if let Err(e) = conform(def, b, |_| Location::Line(line)) {
                return Some(e);
            }
        }
    }
    None
}

/// arrow-json's message for a line that is not valid JSON or names an unknown field, made
/// specific: which column is unknown, with the table's columns listed.
fn describe_json_error(def: &LiveTableDef, line: &[u8], message: String) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(line) {
        for key in map.keys() {
            if def.schema.field_with_name(key).is_err() {
                return unknown_column_message(def, key);
            }
        }
        return message;
    }
    match serde_json::from_slice::<serde_json::Value>(line) {
        Err(e) => format!("invalid JSON: {e}"),
        Ok(_) => "expected a JSON object".into(),
    }
}

fn unknown_column_message(def: &LiveTableDef, name: &str) -> String {
    let columns: Vec<&str> = def
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    format!(
        "unknown column '{name}' (table {} has columns: {})",
        def.name,
        columns.join(", ")
    )
}

// ------------------------------------------------------------------------------------- CSV

fn decode_csv(def: &LiveTableDef, body: &[u8]) -> Result<Vec<RecordBatch>> {
    let mut header_reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(Cursor::new(body));
    let header = header_reader.headers().map_err(|e| Error::Malformed {
        location: Some(Location::Line(1)),
        message: format!("cannot read the CSV header: {e}"),
    })?;
    if header.is_empty() || body.is_empty() {
        return Err(Error::Malformed {
            location: Some(Location::Line(1)),
            message: "the body is empty; CSV bodies start with a header line naming the columns"
                .into(),
        });
    }
    let mut fields = Vec::with_capacity(header.len());
    for name in header.iter() {
        let name = name.trim();
        let Ok(field) = def.schema.field_with_name(name) else {
            return Err(Error::Malformed {
                location: Some(Location::Line(1)),
                message: format!("header: {}", unknown_column_message(def, name)),
            });
        };
        if fields.iter().any(|f: &Field| f.name() == name) {
            return Err(Error::Malformed {
                location: Some(Location::Line(1)),
                message: format!("header: column '{name}' appears twice"),
            });
        }
        fields.push(field.clone());
    }
    // Row i of the body is on line i + 2 (line 1 is the header); quoted fields spanning lines
    // are rare in event data and would only shift the reported line.
    let line = |row: usize| Location::Line(row + 2);
    let typed = nullable_schema(fields.iter().cloned());
    match csv_batches(typed, body) {
        Ok(batches) => {
            let mut row = 0;
            let mut out = Vec::with_capacity(batches.len());
            for b in batches {
                let n = b.num_rows();
                out.push(conform(def, b, |i| line(row + i))?);
                row += n;
            }
            Ok(out)
        }
        Err(fast) => {
            let text = text_schema(fields.iter().cloned());
            let batches = match csv_batches(text, body) {
                Ok(b) => b,
                Err(e) => return Err(e),
            };
            let mut row = 0;
            for b in batches {
                let n = b.num_rows();
                conform(def, b, |i| line(row + i))?;
                row += n;
            }
            Err(fast)
        }
    }
}

fn csv_batches(schema: SchemaRef, body: &[u8]) -> Result<Vec<RecordBatch>> {
    let reader = arrow::csv::ReaderBuilder::new(schema)
        .with_header(true)
        .with_batch_size(BATCH_ROWS)
        .build_buffered(Cursor::new(body))
        .map_err(|e| Error::Malformed {
            location: None,
            message: e.to_string(),
        })?;
    reader
        .map(|b| {
            b.map_err(|e| Error::Malformed {
                location: None,
                message: e.to_string(),
            })
        })
        .collect()
}

// ------------------------------------------------------------------------------- Arrow IPC

fn decode_arrow(def: &LiveTableDef, body: &[u8]) -> Result<Vec<RecordBatch>> {
    let reader = StreamReader::try_new(Cursor::new(body), None).map_err(|e| Error::Malformed {
        location: None,
        message: format!("not an Arrow IPC stream: {e}"),
    })?;
    let mut out = Vec::new();
    let mut row = 0;
    for b in reader {
        let b = b.map_err(|e| Error::Malformed {
            location: Some(Location::Row(row + 1)),
            message: format!("bad Arrow IPC stream: {e}"),
        })?;
        let n = b.num_rows();
        out.push(conform(def, b, |i| Location::Row(row + i + 1))?);
        row += n;
    }
    Ok(out)
}

// ----------------------------------------------------------------------------- conforming

/// Makes `batch` a batch of the table's schema: columns matched by name (missing nullable
/// columns become NULL), values cast to the column types, NOT NULL enforced. `location(i)`
/// says where row `i` of the batch came from.
pub fn conform(
    def: &LiveTableDef,
    batch: RecordBatch,
    location: impl Fn(usize) -> Location,
) -> Result<RecordBatch> {
    let input = batch.schema();
    for f in input.fields() {
        if def.schema.field_with_name(f.name()).is_err() {
            return Err(Error::Malformed {
                location: None,
                message: unknown_column_message(def, f.name()),
            });
        }
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(def.schema.fields().len());
    for field in def.schema.fields() {
        let column = match input.index_of(field.name()) {
            Ok(i) => {
                let col = batch.column(i);
                if col.data_type() == field.data_type() {
                    col.clone()
                } else {
                    match cast_with_options(col, field.data_type(), &options) {
                        Ok(c) => c,
                        Err(_) => return Err(cast_error(col, field, &location)),
                    }
                }
            }
            Err(_) if field.is_nullable() => new_null_array(field.data_type(), batch.num_rows()),
            Err(_) => {
                return Err(Error::Malformed {
                    location: (batch.num_rows() > 0).then(|| location(0)),
                    message: format!(
                        "column '{}' ({}) is NOT NULL but missing",
                        field.name(),
                        sql_type_name(field.data_type())
                    ),
                });
            }
        };
        if !field.is_nullable() && column.null_count() > 0 {
            let row = (0..column.len()).find(|&i| column.is_null(i)).unwrap_or(0);
            return Err(Error::Malformed {
                location: Some(location(row)),
                message: format!(
                    "column '{}' ({}) is NOT NULL but the value is missing or null",
                    field.name(),
                    sql_type_name(field.data_type())
                ),
            });
        }
        columns.push(column);
    }
    RecordBatch::try_new(def.schema.clone(), columns).map_err(|e| Error::Malformed {
        location: None,
        message: e.to_string(),
    })
}

/// The first value of `col` that does not convert to `field`'s type, as an error.
fn cast_error(col: &ArrayRef, field: &Field, location: &impl Fn(usize) -> Location) -> Error {
    let lenient = CastOptions {
        safe: true,
        ..Default::default()
    };
    let target = sql_type_name(field.data_type());
    let bad_row = cast_with_options(col, field.data_type(), &lenient)
        .ok()
        .and_then(|c| (0..col.len()).find(|&i| col.is_valid(i) && c.is_null(i)));
    match bad_row {
        Some(i) => {
            let value =
                arrow::util::display::ArrayFormatter::try_new(col.as_ref(), &Default::default())
                    .map(|f| f.value(i).to_string())
                    .unwrap_or_default();
            Error::Malformed {
                location: Some(location(i)),
                message: format!(
                    "column '{}': expected {target}, got {}",
                    field.name(),
                    quote_value(&value)
                ),
            }
        }
        None => Error::Malformed {
            location: None,
            message: format!(
                "column '{}': cannot convert {} to {target}",
                field.name(),
                sql_type_name(col.data_type())
            ),
        },
    }
}

fn quote_value(v: &str) -> String {
    let mut s: String = v.chars().take(80).collect();
    if v.chars().count() > 80 {
        s.push('…');
    }
    format!("\"{s}\"")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow::array::{AsArray, Float64Array, Int64Array};
    use arrow::datatypes::{Int64Type, TimeUnit, TimestampMicrosecondType};

    /// A `clicks` table: ts TIMESTAMP NOT NULL, id BIGINT NOT NULL, page TEXT, amount DOUBLE.
    pub(crate) fn def() -> LiveTableDef {
        LiveTableDef {
            id: "x".into(),
            name: "clicks".into(),
            schema: Arc::new(Schema::new(vec![
                Field::new(
                    "ts",
                    DataType::Timestamp(TimeUnit::Microsecond, None),
                    false,
                ),
                Field::new("id", DataType::Int64, false),
                Field::new("page", DataType::Utf8, true),
                Field::new("amount", DataType::Float64, true),
            ])),
            time_column: 0,
            retention_days: None,
        }
    }

    fn msg(e: Error) -> String {
        e.to_string()
    }

    #[test]
    fn ndjson_good_body() {
        let body = b"{\"ts\":\"2026-10-01T12:00:00Z\",\"id\":1,\"page\":\"a\",\"amount\":1.5}\n\n{\"ts\":\"2026-10-01 12:00:01\",\"id\":2}\n";
        let b = decode(&def(), BodyFormat::NdJson, body).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].num_rows(), 2);
        let ts = b[0].column(0).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(1) - ts.value(0), 1_000_000);
        assert_eq!(b[0].column(1).as_primitive::<Int64Type>().value(1), 2);
        assert!(b[0].column(3).is_null(1));
    }

    #[test]
    fn ndjson_errors_name_line_and_column() {
        let d = def();
        let ok = "{\"ts\":\"2026-10-01T12:00:00Z\",\"id\":1}";
        let cases = [
            (format!("{ok}\n{ok}\n{{\"ts\": oops\n"), "line 3", "JSON"),
            (
                format!("{ok}\n{{\"ts\":\"2026-10-01T12:00:00Z\",\"id\":1,\"amount\":\"abc\"}}\n"),
                "line 2",
                "'amount'",
            ),
            (
                format!("{ok}\n\n{{\"ts\":\"2026-10-01T12:00:00Z\"}}\n"),
                "line 3",
                "'id'",
            ),
            (
                format!("{{\"ts\":\"2026-10-01T12:00:00Z\",\"id\":1,\"nope\":3}}\n"),
                "line 1",
                "'nope'",
            ),
            (
                format!("{{\"ts\":\"yesterday\",\"id\":1}}\n"),
                "line 1",
                "'ts'",
            ),
            (
                format!("{ok}\n{{\"ts\":\"2026-10-01T12:00:00Z\",\"id\":1.5}}\n"),
                "line 2",
                "'id'",
            ),
        ];
        for (body, line, col) in cases {
            let m = msg(decode(&d, BodyFormat::NdJson, body.as_bytes()).unwrap_err());
            assert!(m.contains(line) && m.contains(col), "{body:?} -> {m}");
        }
    }

    #[test]
    fn csv_header_any_order_and_errors() {
        let d = def();
        let b = decode(
            &d,
            BodyFormat::Csv,
            b"id,ts,amount\n7,2026-10-01T00:00:00Z,2.5\n8,2026-10-01 00:00:01,\n",
        )
        .unwrap();
        assert_eq!(b[0].num_rows(), 2);
        let amount = b[0]
            .column(3)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(amount.value(0), 2.5);
        assert!(amount.is_null(1));
        assert!(b[0].column(2).is_null(0));
        let ids = b[0]
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(ids.values().to_vec(), vec![7, 8]);
        let m = msg(decode(
            &d,
            BodyFormat::Csv,
            b"id,ts\n1,2026-10-01T00:00:00Z\nx,2026-10-01T00:00:00Z\n",
        )
        .unwrap_err());
        assert!(m.contains("line 3") && m.contains("'id'"), "{m}");
        let m = msg(decode(&d, BodyFormat::Csv, b"id,ts,bogus\n").unwrap_err());
        assert!(m.contains("line 1") && m.contains("'bogus'"), "{m}");
        let m = msg(decode(&d, BodyFormat::Csv, b"ts,page\n2026-10-01T00:00:00Z,a\n").unwrap_err());
        assert!(m.contains("'id'") && m.contains("NOT NULL"), "{m}");
    }

    #[test]
    fn arrow_stream_is_cast_by_name() {
        let d = def();
        let input = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int32, false),
                Field::new("ts", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(arrow::array::Int32Array::from(vec![1, 2])),
                Arc::new(arrow::array::StringArray::from(vec![
                    "2026-10-01T00:00:00Z",
                    "2026-10-02T00:00:00Z",
                ])),
            ],
        )
        .unwrap();
        let mut body = Vec::new();
        {
            let mut w =
                arrow::ipc::writer::StreamWriter::try_new(&mut body, &input.schema()).unwrap();
            w.write(&input).unwrap();
            w.finish().unwrap();
        }
        let b = decode(&d, BodyFormat::ArrowStream, &body).unwrap();
        assert_eq!(b[0].schema(), d.schema);
        let m = msg(decode(&d, BodyFormat::ArrowStream, b"garbage").unwrap_err());
        assert!(m.contains("Arrow IPC"), "{m}");
    }
}
