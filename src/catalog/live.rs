//! Live tables in the catalog: their definitions (from `CREATE TABLE` or the config file), and
//! the [`LiveTableProvider`] the query engine reads them through: buffer ∪ Parquet files, pruned
//! by the time range of the query's filters, with `INSERT` going to the ingest write path.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, ScalarValue, not_impl_err, plan_err};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::expr_rewriter::unnormalize_cols;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, SendableRecordBatchStream,
};
use futures::TryStreamExt;

use crate::buffer::{LiveTableDef, TableData};
use crate::ingest::{self, Ingester, Location};
use crate::persist::Persister;

/// The live-table machinery the catalog needs: the write path and persistence.
#[derive(Debug, Clone)]
pub struct LiveRuntime {
    pub ingester: Ingester,
    pub persister: Arc<Persister>,
}

/// Normalises a declared schema for a live table: timestamps become microsecond precision (as
/// in Postgres and the Parquet files), the time column is found and made NOT NULL.
pub fn live_schema(
    name: &str,
    declared: &Schema,
    time_column: Option<&str>,
) -> Result<(SchemaRef, usize), String> {
    if declared.fields().is_empty() {
        return Err(format!("table '{name}' needs at least one column"));
    }
    let time_index = match time_column {
        Some(c) => declared
            .index_of(c)
            .map_err(|_| format!("time column '{c}' is not a column of table '{name}'"))?,
        None => declared
            .fields()
            .iter()
            .position(|f| matches!(f.data_type(), DataType::Timestamp(..)))
            .ok_or_else(|| {
                format!(
                    "live table '{name}' needs a TIMESTAMP column (its time column, used to \
                     partition and prune); none was declared"
                )
            })?,
    };
    if !matches!(
        declared.field(time_index).data_type(),
        DataType::Timestamp(..)
    ) {
        return Err(format!(
            "time column '{}' of table '{name}' must be a TIMESTAMP",
            declared.field(time_index).name()
        ));
    }
    let fields: Vec<Field> = declared
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut f = f.as_ref().clone();
            if let DataType::Timestamp(_, tz) = f.data_type().clone() {
                f = f.with_data_type(DataType::Timestamp(TimeUnit::Microsecond, tz));
            }
            if matches!(f.data_type(), DataType::Utf8View) {
                f = f.with_data_type(DataType::Utf8);
            }
            if i == time_index {
                f = f.with_nullable(false);
            }
            f
        })
        .collect();
    Ok((Arc::new(Schema::new(fields)), time_index))
}

/// A live table as the query engine sees it.
#[derive(Debug)]
pub struct LiveTableProvider {
    data: Arc<TableData>,
    runtime: LiveRuntime,
}

impl LiveTableProvider {
    pub fn new(data: Arc<TableData>, runtime: LiveRuntime) -> Self {
        Self { data, runtime }
    }

    pub fn data(&self) -> &Arc<TableData> {
        &self.data
    }

    pub fn def(&self) -> &LiveTableDef {
        &self.data.def
    }
}

#[async_trait]
impl TableProvider for LiveTableProvider {
    fn schema(&self) -> SchemaRef {
        self.data.def.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Filters prune buffered batches, files and row groups; DataFusion still applies them.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let def = &self.data.def;
        let schema = def.schema.clone();
        let (lo, hi) = time_bounds(filters, def.time_column_name());
        let in_range =
            |min: i64, max: i64| lo.is_none_or(|lo| max >= lo) && hi.is_none_or(|hi| min <= hi);
        let snapshot = self.data.snapshot();
        let partitions = state.config().target_partitions().max(1);
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();

        let files: Vec<_> = snapshot
            .files
            .iter()
            .filter(|f| in_range(f.min_time, f.max_time))
            .collect();
        if !files.is_empty() {
            let mut source = ParquetSource::new(schema.clone());
            let unqualified = unnormalize_cols(filters.iter().cloned());
            if let Some(predicate) = conjunction(unqualified) {
                let df_schema = DFSchema::try_from(schema.clone())?;
                if let Ok(p) = state.create_physical_expr(predicate, &df_schema) {
                    source = source.with_predicate(p);
                }
            }
            let data_dir = self.runtime.persister.data_dir();
            let abs_root =
                std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
            let mut groups: Vec<Vec<PartitionedFile>> =
                vec![Vec::new(); partitions.min(files.len())];
            let n = groups.len();
            for (i, f) in files.iter().enumerate() {
                let abs = abs_root.join(&f.path);
                let key = abs.to_string_lossy().trim_start_matches('/').to_string();
                groups[i % n].push(PartitionedFile::new(key, f.size));
            }
            let config =
                FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source))
                    .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
                    .with_projection_indices(projection.cloned())?
                    .with_limit(limit)
                    .build();
            inputs.push(DataSourceExec::from_data_source(config));
        }

        let batches: Vec<RecordBatch> = snapshot
            .batches
            .iter()
            .filter(|b| in_range(b.min_time, b.max_time))
            .map(|b| b.batch.clone())
            .collect();
        if !batches.is_empty() {
            let n = partitions.min(batches.len());
            let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); n];
            for (i, b) in batches.into_iter().enumerate() {
                parts[i % n].push(b);
            }
            inputs.push(MemorySourceConfig::try_new_exec(
                &parts,
                schema.clone(),
                projection.cloned(),
            )?);
        }
        if inputs.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(schema.project(p)?),
                None => schema,
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        UnionExec::try_new(inputs)
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return not_impl_err!("{insert_op} is not supported on live tables; use INSERT INTO");
        }
        // The sink declares every column nullable so DataFusion's own NOT NULL check (which
        // names a column by position) lets rows through to `conform`, whose error names it.
        let nullable = Arc::new(Schema::new(
            self.data
                .def
                .schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        ));
        let sink = LiveSink {
            data: self.data.clone(),
            ingester: self.runtime.ingester.clone(),
            schema: nullable,
        };
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}

/// `INSERT` into a live table: all rows of the statement become one durable write.
#[derive(Debug)]
struct LiveSink {
    data: Arc<TableData>,
    ingester: Ingester,
    schema: SchemaRef,
}

impl DisplayAs for LiveSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "LiveSink: table={}", self.data.def.name)
    }
}

#[async_trait]
impl DataSink for LiveSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> DfResult<u64> {
        let batches: Vec<RecordBatch> = data.try_collect().await?;
        let mut conformed = Vec::with_capacity(batches.len());
        let mut row = 0;
        for b in batches {
            let n = b.num_rows();
            let c = ingest::decode::conform(&self.data.def, b, |i| Location::Row(row + i + 1))
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            conformed.push(c);
            row += n;
        }
        self.ingester
            .write(&self.data, conformed)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))
    }
}

/// The time range `[lo, hi]` (microseconds, inclusive) the filters restrict the time column to.
fn time_bounds(filters: &[Expr], time_column: &str) -> (Option<i64>, Option<i64>) {
    let mut lo: Option<i64> = None;
    let mut hi: Option<i64> = None;
    let mut tighten_lo = |v: i64| lo = Some(lo.map_or(v, |l| l.max(v)));
    let mut tighten_hi = |v: i64| hi = Some(hi.map_or(v, |h| h.min(v)));
    let mut stack: Vec<&Expr> = filters.iter().collect();
    while let Some(e) = stack.pop() {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                if *op == Operator::And {
                    stack.push(left);
                    stack.push(right);
                    continue;
                }
                let (op, value) = match (column_name(left), column_name(right)) {
                    (Some(c), None) if c == time_column => (*op, literal_micros(right)),
                    (None, Some(c)) if c == time_column => match op.swap() {
                        Some(op) => (op, literal_micros(left)),
                        None => continue,
                    },
                    _ => continue,
                };
                let Some((floor, ceil)) = value else { continue };
                match op {
                    Operator::Eq => {
                        tighten_lo(floor);
                        tighten_hi(ceil);
                    }
                    Operator::Gt | Operator::GtEq => tighten_lo(floor),
                    Operator::Lt | Operator::LtEq => tighten_hi(ceil),
                    _ => {}
                }
            }
            Expr::Between(b) if !b.negated => {
                if column_name(&b.expr).is_some_and(|c| c == time_column) {
                    if let Some((floor, _)) = literal_micros(&b.low) {
                        tighten_lo(floor);
                    }
                    if let Some((_, ceil)) = literal_micros(&b.high) {
                        tighten_hi(ceil);
                    }
                }
            }
            _ => {}
        }
    }
    (lo, hi)
}

fn column_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.name.as_str()),
        Expr::Cast(c) => column_name(&c.expr),
        _ => None,
    }
}

/// A timestamp literal as (floor, ceil) microseconds.
fn literal_micros(e: &Expr) -> Option<(i64, i64)> {
    let Expr::Literal(v, _) = e else { return None };
    let (floor, ceil) = match v {
        ScalarValue::TimestampMicrosecond(Some(v), _) => (*v, *v),
        ScalarValue::TimestampNanosecond(Some(v), _) => (
            v.div_euclid(1000),
            v.div_euclid(1000) + i64::from(v.rem_euclid(1000) != 0),
        ),
        ScalarValue::TimestampMillisecond(Some(v), _) => {
            (v.checked_mul(1000)?, v.checked_mul(1000)?)
        }
        ScalarValue::TimestampSecond(Some(v), _) => {
            (v.checked_mul(1_000_000)?, v.checked_mul(1_000_000)?)
        }
        _ => return None,
    };
    Some((floor, ceil))
}

/// `CREATE TABLE` for an Arrow schema (bulk ingest with mode create, `generate --to`).
pub fn create_table_sql(table: &str, schema: &Schema) -> String {
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            let ty = match f.data_type() {
                DataType::Timestamp(_, Some(_)) => "TIMESTAMPTZ".to_string(),
                DataType::Utf8View | DataType::LargeUtf8 => "TEXT".to_string(),
                other => crate::ingest::decode::sql_type_name(other),
            };
            let not_null = if f.is_nullable() { "" } else { " NOT NULL" };
            format!("\"{}\" {ty}{not_null}", f.name().replace('"', "\"\""))
        })
        .collect();
    format!(
        "CREATE TABLE \"{}\" ({})",
        table.replace('"', "\"\""),
        columns.join(", ")
    )
}

/// Builds a live table's definition from a planned `CREATE TABLE` schema.
pub fn def_from_schema(
    id: String,
    name: &str,
    declared: &Schema,
    time_column: Option<&str>,
    retention_days: Option<u32>,
) -> Result<LiveTableDef, DataFusionError> {
    match live_schema(name, declared, time_column) {
        Ok((schema, time_column)) => Ok(LiveTableDef {
            id,
            name: name.to_string(),
            schema,
            time_column,
            retention_days,
        }),
        Err(msg) => plan_err!("{msg}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    #[test]
    fn bounds_from_filters() {
        let ts = |v: i64| Expr::Literal(ScalarValue::TimestampMicrosecond(Some(v), None), None);
        let f = vec![
            col("ts").gt_eq(ts(10)).and(col("ts").lt(ts(20))),
            col("x").eq(lit(1)),
        ];
        assert_eq!(time_bounds(&f, "ts"), (Some(10), Some(20)));
        assert_eq!(time_bounds(&[ts(5).lt(col("ts"))], "ts"), (Some(5), None));
        assert_eq!(
            time_bounds(&[col("ts").between(ts(1), ts(2))], "ts"),
            (Some(1), Some(2))
        );
        assert_eq!(
            time_bounds(&[col("ts").eq(ts(1)).or(col("ts").eq(ts(9)))], "ts"),
            (None, None)
        );
        assert_eq!(time_bounds(&[col("other").gt(ts(1))], "ts"), (None, None));
    }

    #[test]
    fn schema_rules() {
        let s = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        ]);
        let (schema, i) = live_schema("t", &s, None).unwrap();
        assert_eq!(i, 1);
        assert_eq!(
            schema.field(1).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert!(!schema.field(1).is_nullable());
        let no_ts = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        assert!(
            live_schema("t", &no_ts, None)
                .unwrap_err()
                .contains("TIMESTAMP")
        );
        assert!(
            live_schema("t", &s, Some("id"))
                .unwrap_err()
                .contains("must be a TIMESTAMP")
        );
        assert!(live_schema("t", &s, Some("nope")).is_err());
    }
}
