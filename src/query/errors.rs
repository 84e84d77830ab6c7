//! What went wrong with a statement, independent of the protocol that reports it.
//!
//! Engine, catalog and guard errors are classified here once; each front end turns an
//! [`ErrorKind`] into its own vocabulary in one function (a SQLSTATE in `server::pg`, a gRPC
//! status in `server::flight`). DataFusion reports most planning errors as `Plan(String)`, so
//! part of the classification reads the message; the variants are checked first.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;

use crate::catalog;
use crate::ingest;
use crate::query::guard::TooComplex;

/// The kind of a statement error, fine enough for Postgres SQLSTATEs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Syntax,
    UndefinedTable,
    UndefinedColumn,
    AmbiguousColumn,
    UndefinedFunction,
    UndefinedPreparedStatement,
    DuplicateTable,
    NotNullViolation,
    DatatypeMismatch,
    InvalidText,
    DivisionByZero,
    NumericOverflow,
    InvalidParameter,
    InvalidArgument,
    FileNotFound,
    Io,
    NotSupported,
    TooComplex,
    ResourcesExhausted,
    Cancelled,
    OtherPlanning,
    Internal,
}

/// Classifies an error raised while handling a statement; returns its kind and the message
/// for the client (without DataFusion backtraces).
pub fn classify(error: &(dyn std::error::Error + 'static)) -> (ErrorKind, String) {
    if let Some(e) = error.downcast_ref::<catalog::Error>() {
        let kind = match e {
            catalog::Error::LocationNotFound { .. } => ErrorKind::FileNotFound,
            catalog::Error::LocationUnreadable { .. } | catalog::Error::Store(_) => ErrorKind::Io,
            catalog::Error::S3Config { .. } => ErrorKind::InvalidArgument,
            catalog::Error::TableNotFound { .. } => ErrorKind::UndefinedTable,
            catalog::Error::TableExists { .. } => ErrorKind::DuplicateTable,
            catalog::Error::Unsupported(_) => ErrorKind::NotSupported,
            catalog::Error::Persist { .. } => ErrorKind::Io,
            catalog::Error::Query(inner) => return classify_datafusion(inner),
        };
        return (kind, e.to_string());
    }
    if let Some(e) = error.downcast_ref::<ingest::Error>() {
        return (classify_ingest(e), e.to_string());
    }
    if let Some(e) = error.downcast_ref::<TooComplex>() {
        return (ErrorKind::TooComplex, e.to_string());
    }
    if let Some(e) = error.downcast_ref::<DataFusionError>() {
        return classify_datafusion(e);
    }
    if let Some(e) = error.downcast_ref::<ParserError>() {
        return (ErrorKind::Syntax, e.to_string());
    }
    if let Some(e) = error.downcast_ref::<ArrowError>() {
        return (classify_arrow(e), e.to_string());
    }
    (ErrorKind::Internal, error.to_string())
}

/// [`classify`] for a DataFusion error.
pub fn classify_datafusion(error: &DataFusionError) -> (ErrorKind, String) {
    use ErrorKind as K;
    let root = error.find_root();
    if let DataFusionError::External(e) = root
        && let Some(i) = e.downcast_ref::<ingest::Error>()
    {
        return (classify_ingest(i), i.to_string());
    }
    let message = root.strip_backtrace();
    let lower = message.to_ascii_lowercase();
    let kind = match root {
        DataFusionError::SQL(..) => K::Syntax,
        DataFusionError::SchemaError(e, _) => match e.as_ref() {
            datafusion::common::SchemaError::FieldNotFound { .. } => K::UndefinedColumn,
            datafusion::common::SchemaError::AmbiguousReference { .. } => K::AmbiguousColumn,
            _ => K::OtherPlanning,
        },
        DataFusionError::NotImplemented(_) => K::NotSupported,
        DataFusionError::ResourcesExhausted(_) => K::ResourcesExhausted,
        DataFusionError::ObjectStore(e)
            if matches!(e.as_ref(), object_store::Error::NotFound { .. }) =>
        {
            K::FileNotFound
        }
        DataFusionError::ObjectStore(_) | DataFusionError::IoError(_) => K::Io,
        DataFusionError::ArrowError(..) if lower.contains("non-nullable") => K::NotNullViolation,
        DataFusionError::ArrowError(e, _) => classify_arrow(e),
        DataFusionError::External(e) => {
            if let Some(a) = e.downcast_ref::<ArrowError>() {
                classify_arrow(a)
            } else if let Some(i) = e.downcast_ref::<ingest::Error>() {
                classify_ingest(i)
            } else {
                K::Internal
            }
        }
        DataFusionError::Plan(_) | DataFusionError::Execution(_) => {
            if lower.contains("non-nullable") {
                K::NotNullViolation
            } else if lower.contains("unable to find factory") {
                K::NotSupported
            } else if lower.contains("prepared statement") && lower.contains("does not exist") {
                K::UndefinedPreparedStatement
            } else if (lower.contains("not found") && lower.contains("table"))
                || lower.contains("no table named")
            {
                K::UndefinedTable
            } else if lower.contains("already exists") {
                K::DuplicateTable
            } else if lower.contains("invalid function") || lower.contains("no function matches") {
                K::UndefinedFunction
            } else if lower.contains("cannot cast")
                || lower.contains("cannot be cast")
                || lower.contains("cannot parse")
                || lower.contains("invalid input syntax")
            {
                K::InvalidText
            } else if lower.contains("divide by zero") || lower.contains("division by zero") {
                K::DivisionByZero
            } else if lower.contains("coerc")
                || lower.contains("type")
                || lower.contains("does not support")
                || lower.contains("unsupported")
            {
                K::DatatypeMismatch
            } else if lower.contains("parameter") || lower.contains("placeholder") {
                K::InvalidParameter
            } else if matches!(root, DataFusionError::Plan(_)) {
                K::OtherPlanning
            } else {
                K::Internal
            }
        }
        DataFusionError::Configuration(_) => K::InvalidArgument,
        _ => K::Internal,
    };
    (kind, message)
}

/// [`classify`] for an error of the live-table write path.
pub fn classify_ingest(e: &ingest::Error) -> ErrorKind {
    match e {
        ingest::Error::Malformed { message, .. } if message.contains("is NOT NULL but") => {
            ErrorKind::NotNullViolation
        }
        ingest::Error::Malformed { .. } => ErrorKind::InvalidText,
        ingest::Error::TableNotFound { .. } => ErrorKind::UndefinedTable,
        ingest::Error::NotLive { .. } => ErrorKind::NotSupported,
        ingest::Error::Wal(_) | ingest::Error::ShuttingDown => ErrorKind::Io,
    }
}

fn classify_arrow(e: &ArrowError) -> ErrorKind {
    match e {
        ArrowError::DivideByZero => ErrorKind::DivisionByZero,
        ArrowError::CastError(_) | ArrowError::ParseError(_) => ErrorKind::InvalidText,
        ArrowError::ArithmeticOverflow(_) => ErrorKind::NumericOverflow,
        ArrowError::MemoryError(_) => ErrorKind::ResourcesExhausted,
        ArrowError::NotYetImplemented(_) => ErrorKind::NotSupported,
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn classifies_engine_errors() {
        let ctx = datafusion::prelude::SessionContext::new();
        let kind = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let e = match ctx.sql(sql).await {
                    Ok(df) => df.collect().await.unwrap_err(),
                    Err(e) => e,
                };
                classify_datafusion(&e).0
            }
        };
        assert_eq!(kind("selec 1").await, ErrorKind::Syntax);
        assert_eq!(kind("select * from nope").await, ErrorKind::UndefinedTable);
        assert_eq!(
            kind("select nope from (select 1 as a)").await,
            ErrorKind::UndefinedColumn
        );
        assert_eq!(
            kind("select cast('abc' as int)").await,
            ErrorKind::InvalidText
        );
        assert_eq!(kind("select 1/0").await, ErrorKind::DivisionByZero);
    }

    #[test]
    fn classifies_catalog_errors() {
        let e = catalog::Error::LocationNotFound {
            location: "/nope".into(),
        };
        let (kind, msg) = classify(&e);
        assert_eq!(kind, ErrorKind::FileNotFound);
        assert!(msg.contains("/nope"));
    }
}
