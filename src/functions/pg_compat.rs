//! `version()`, `current_setting(name [, missing_ok])` and `to_regtype(name)` as Postgres
//! answers them.
//!
//! datafusion-pg-catalog provides pg_catalog and most connect-time functions; these it lacks
//! (DataFusion's own `version()` names DataFusion, which SQLAlchemy and Superset cannot parse;
//! Grafana and Metabase call `current_setting('server_version_num')`; psycopg's `TypeInfo`
//! lookups, which SQLAlchemy runs at connect, call `to_regtype`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility, create_udf,
};
use datafusion::prelude::SessionContext;

/// The Postgres version carthouse presents itself as (what pgwire announces at startup).
pub const PG_VERSION: &str = "16.6";
pub const PG_VERSION_NUM: &str = "160006";

pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(VersionUdf::new()));
    ctx.register_udf(ScalarUDF::from(CurrentSettingUdf::new()));
    ctx.register_udf(ScalarUDF::from(ToRegtypeUdf::new()));
    ctx.register_udf(ScalarUDF::from(JsonBuildObjectUdf::new()));
    // Reflection queries (SQLAlchemy's get_columns) call these; carthouse has no sequences and
    // one collation, so the answers are constant.
    ctx.register_udf(create_udf(
        "pg_get_serial_sequence",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|_args: &[ColumnarValue]| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))),
    ));
    ctx.register_udf(create_udf(
        "pg_collation_is_visible",
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))
        }),
    ));
}

/// The oid of a built-in type by any of its Postgres names, as `to_regtype` resolves them.
pub fn type_oid(name: &str) -> Option<i32> {
    let name = name
        .trim()
        .trim_start_matches("pg_catalog.")
        .to_ascii_lowercase();
    Some(match name.as_str() {
        "bool" | "boolean" => 16,
        "bytea" => 17,
        "char" => 18,
        "name" => 19,
        "int8" | "bigint" => 20,
        "int2" | "smallint" => 21,
        "int4" | "integer" | "int" => 23,
        "text" => 25,
        "oid" => 26,
        "json" => 114,
        "float4" | "real" => 700,
        "float8" | "double precision" => 701,
        "unknown" => 705,
        "bpchar" | "character" => 1042,
        "varchar" | "character varying" => 1043,
        "date" => 1082,
        "time" | "time without time zone" => 1083,
        "timestamp" | "timestamp without time zone" => 1114,
        "timestamptz" | "timestamp with time zone" => 1184,
        "interval" => 1186,
        "numeric" | "decimal" => 1700,
        "uuid" => 2950,
        "jsonb" => 3802,
        "int4[]" | "_int4" => 1007,
        "int8[]" | "_int8" => 1016,
        "text[]" | "_text" => 1009,
        "float8[]" | "_float8" => 1022,
        _ => return None,
    })
}

/// The value of a setting as a fresh Postgres 16 session reports it.
pub fn setting(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "server_version" => PG_VERSION,
        "server_version_num" => PG_VERSION_NUM,
        "server_encoding" | "client_encoding" => "UTF8",
        "standard_conforming_strings" | "integer_datetimes" => "on",
        "timezone" | "log_timezone" => "UTC",
        "datestyle" => "ISO, MDY",
        "intervalstyle" => "postgres",
        "search_path" => "\"$user\", public",
        "max_identifier_length" => "63",
        "transaction_isolation" | "default_transaction_isolation" => "read committed",
        "transaction_read_only" | "default_transaction_read_only" | "is_superuser" => "off",
        "client_min_messages" => "notice",
        "extra_float_digits" => "1",
        "application_name" => "",
        "lc_collate" | "lc_ctype" | "lc_messages" | "lc_monetary" | "lc_numeric" | "lc_time" => {
            "en_US.UTF-8"
        }
        "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => "0",
        "max_connections" => "1000",
        "block_size" => "8192",
        _ => return None,
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct VersionUdf {
    signature: Signature,
}

impl VersionUdf {
    fn new() -> Self {
        Self {
            signature: Signature::nullary(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for VersionUdf {
    fn name(&self) -> &str {
        "version"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(format!(
            "PostgreSQL {PG_VERSION} (carthouse {}, Apache DataFusion {}) on {}-linux, 64-bit",
            env!("CARGO_PKG_VERSION"),
            datafusion::DATAFUSION_VERSION,
            std::env::consts::ARCH,
        )))))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSettingUdf {
    signature: Signature,
}

impl CurrentSettingUdf {
    fn new() -> Self {
        Self {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8]),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
                ],
                Volatility::Stable,
            ),
        }
    }
}

impl ScalarUDFImpl for CurrentSettingUdf {
    fn name(&self) -> &str {
        "current_setting"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(DataType::Utf8) => Ok(DataType::Utf8),
            other => plan_err!("current_setting(name text [, missing_ok bool]): got {other:?}"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let missing_ok = match args.args.get(1) {
            Some(ColumnarValue::Scalar(ScalarValue::Boolean(Some(b)))) => *b,
            Some(ColumnarValue::Scalar(ScalarValue::Boolean(None))) | None => false,
            Some(_) => return exec_err!("current_setting: missing_ok must be a constant"),
        };
        let lookup = |name: Option<&str>| -> Result<Option<String>> {
            match name {
                None => Ok(None),
                Some(n) => match setting(n) {
                    Some(v) => Ok(Some(v.to_string())),
                    None if missing_ok => Ok(None),
                    None => exec_err!("unrecognized configuration parameter \"{n}\""),
                },
            }
        };
        match &args.args[0] {
            ColumnarValue::Scalar(ScalarValue::Utf8(name)) => Ok(ColumnarValue::Scalar(
                ScalarValue::Utf8(lookup(name.as_deref())?),
            )),
            ColumnarValue::Array(array) => {
                let names = array.as_string::<i32>();
                let mut out = StringBuilder::with_capacity(names.len(), names.len() * 8);
                for i in 0..names.len() {
                    let name = (!names.is_null(i)).then(|| names.value(i));
                    out.append_option(lookup(name)?);
                }
                Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
            }
            other => exec_err!("current_setting: unexpected argument {other:?}"),
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ToRegtypeUdf {
    signature: Signature,
}

impl ToRegtypeUdf {
    fn new() -> Self {
        Self {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for ToRegtypeUdf {
    fn name(&self) -> &str {
        "to_regtype"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match &args.args[0] {
            ColumnarValue::Scalar(ScalarValue::Utf8(name)) => Ok(ColumnarValue::Scalar(
                ScalarValue::Int32(name.as_deref().and_then(type_oid)),
            )),
            ColumnarValue::Array(array) => {
                let names = array.as_string::<i32>();
                let oids: datafusion::arrow::array::Int32Array = (0..names.len())
                    .map(|i| {
                        (!names.is_null(i))
                            .then(|| type_oid(names.value(i)))
                            .flatten()
                    })
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(oids)))
            }
            other => exec_err!("to_regtype: unexpected argument {other:?}"),
        }
    }
}

/// `json_build_object(k1, v1, k2, v2, ...)`: a JSON object as text, built row by row.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObjectUdf {
    signature: Signature,
}

impl JsonBuildObjectUdf {
    fn new() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for JsonBuildObjectUdf {
    fn name(&self) -> &str {
        "json_build_object"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if !arg_types.len().is_multiple_of(2) {
            return plan_err!("json_build_object: argument list must have even number of elements");
        }
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::compute::cast;
        let n = args.number_rows;
        let columns: Vec<(DataType, ArrayRef)> = args
            .args
            .iter()
            .map(|a| {
                let array = a.to_array(n)?;
                let text = cast(&array, &DataType::Utf8)?;
                Ok((array.data_type().clone(), text))
            })
            .collect::<Result<_>>()?;
        let mut out = StringBuilder::with_capacity(n, n * 32);
        for row in 0..n {
            let mut object = serde_json::Map::new();
            for pair in columns.chunks(2) {
                let (_, key) = &pair[0];
                let (value_type, value) = &pair[1];
                let key = key.as_string::<i32>();
                if key.is_null(row) {
                    return exec_err!("json_build_object: key must not be null");
                }
                let text = value.as_string::<i32>();
                let json = if text.is_null(row) {
                    serde_json::Value::Null
                } else if value_type.is_numeric() || *value_type == DataType::Boolean {
                    serde_json::from_str(text.value(row))
                        .unwrap_or_else(|_| serde_json::Value::String(text.value(row).into()))
                } else {
                    serde_json::Value::String(text.value(row).into())
                };
                object.insert(key.value(row).to_string(), json);
            }
            out.append_value(serde_json::Value::Object(object).to_string());
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn version_and_settings() {
        let ctx = SessionContext::new();
        register(&ctx);
        let batches = ctx
            .sql("select version(), current_setting('server_version_num'), current_setting('nope', true), to_regtype('int4'), to_regtype('hstore')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let row = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(row.contains("PostgreSQL 16.6 (carthouse"), "{row}");
        assert!(row.contains("160006"), "{row}");
        assert!(row.contains("| 23 "), "{row}");
        let batches = ctx
            .sql("select json_build_object('a', 1, 'b', 'x', 'c', null)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(text.contains(r#"{"a":1,"b":"x","c":null}"#), "{text}");
        let err = ctx
            .sql("select current_setting('nope')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("unrecognized configuration parameter"),
            "{err}"
        );
    }
}
