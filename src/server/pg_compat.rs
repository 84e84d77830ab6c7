//! Statements BI tools and drivers send that datafusion-postgres answers wrongly or not at
//! all, answered the way Postgres 16 does: `SHOW` of fixed server settings (psqlODBC's
//! `show transaction_isolation`, `standard_conforming_strings`), savepoints (`SAVEPOINT`,
//! `RELEASE`, `ROLLBACK TO`), which psycopg and SQLAlchemy issue inside transactions
//! (carthouse's file tables are read-only, so savepoints have nothing to undo), and
//! `DEALLOCATE` of protocol-level prepared statements, which psqlODBC sends.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{ParamValues, ToDFSchema};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::hooks::{HookClient, QueryHook};
use pgwire::api::ClientInfo;
use pgwire::api::Type;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::store::PortalStore;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

use crate::functions::pg_compat::setting;

/// Settings whose value is fixed for the server, so `SHOW` answers from
/// [`setting`] rather than from session state.
const FIXED_SETTINGS: &[&str] = &[
    "transaction_isolation",
    "default_transaction_isolation",
    "standard_conforming_strings",
    "server_version",
    "server_version_num",
    "server_encoding",
    "integer_datetimes",
    "max_identifier_length",
    "lc_collate",
    "lc_ctype",
    "block_size",
    "max_connections",
];

pub struct PgCompatHook;

enum Answer {
    Show {
        name: String,
        value: &'static str,
    },
    Tag(&'static str),
    /// `DEALLOCATE name` (`None` for `ALL`).
    Deallocate(Option<String>),
}

fn answer(statement: &Statement) -> Option<Answer> {
    match statement {
        Statement::ShowVariable { variable } => {
            let words: Vec<String> = variable.iter().map(|v| v.value.to_lowercase()).collect();
            let name = match words
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice()
            {
                ["transaction", "isolation", "level"] => "transaction_isolation".to_string(),
                [one] => one.to_string(),
                _ => return None,
            };
            if !FIXED_SETTINGS.contains(&name.as_str()) {
                return None;
            }
            let value = setting(&name)?;
            Some(Answer::Show { name, value })
        }
        Statement::Deallocate { name, .. } if name.value.eq_ignore_ascii_case("all") => {
            Some(Answer::Deallocate(None))
        }
        Statement::Deallocate { name, .. } => Some(Answer::Deallocate(Some(name.value.clone()))),
        Statement::Savepoint { .. } => Some(Answer::Tag("SAVEPOINT")),
        Statement::ReleaseSavepoint { .. } => Some(Answer::Tag("RELEASE")),
        Statement::Rollback {
            savepoint: Some(_), ..
        } => Some(Answer::Tag("ROLLBACK")),
        _ => None,
    }
}

/// Answers a statement, or `None` to leave it to the next hook and the engine (a `DEALLOCATE`
/// of a name that is not a protocol-level statement: DataFusion's `PREPARE` namespace).
fn respond(answer: Answer, client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
    match answer {
        Answer::Deallocate(None) => Some(Ok(Response::Execution(Tag::new("DEALLOCATE ALL")))),
        Answer::Deallocate(Some(name)) => {
            let store = client.portal_store();
            store.get_statement(&name)?;
            store.rm_statement(&name);
            Some(Ok(Response::Execution(Tag::new("DEALLOCATE"))))
        }
        other => Some(respond_fixed(other)),
    }
}

fn respond_fixed(answer: Answer) -> PgWireResult<Response> {
    match answer {
        Answer::Tag(tag) => Ok(Response::Execution(Tag::new(tag))),
        Answer::Deallocate(_) => Ok(Response::Execution(Tag::new("DEALLOCATE"))),
        Answer::Show { name, value } => {
            let fields = Arc::new(vec![FieldInfo::new(
                name,
                None,
                None,
                Type::TEXT,
                FieldFormat::Text,
            )]);
            let mut encoder = DataRowEncoder::new(fields.clone());
            encoder.encode_field(&Some(value))?;
            let row = encoder.take_row();
            Ok(Response::Query(QueryResponse::new(
                fields,
                futures::stream::once(async move { Ok(row) }),
            )))
        }
    }
}

fn plan_for(answer: &Answer) -> PgWireResult<LogicalPlan> {
    let schema = match answer {
        Answer::Show { name, .. } => Schema::new(vec![Field::new(name, DataType::Utf8, false)]),
        Answer::Tag(_) | Answer::Deallocate(_) => Schema::empty(),
    };
    let schema = Arc::new(schema)
        .to_dfschema()
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    Ok(LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: matches!(answer, Answer::Show { .. }),
        schema: Arc::new(schema),
    }))
}

#[async_trait]
impl QueryHook for PgCompatHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        respond(answer(statement)?, client)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        answer(statement).map(|a| plan_for(&a))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let answer = answer(statement)?;
        let name = match &answer {
            Answer::Deallocate(Some(name)) => Some(name.clone()),
            _ => None,
        };
        // The parse step already claimed the statement, so an unknown name is answered here.
        Some(respond(answer, client).unwrap_or_else(|| {
            Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".into(),
                "26000".into(),
                format!(
                    "prepared statement \"{}\" does not exist",
                    name.unwrap_or_default()
                ),
            ))))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn parse(sql: &str) -> Statement {
        Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0)
    }

    #[test]
    fn answers_fixed_settings_and_savepoints() {
        assert!(matches!(
            answer(&parse("SHOW TRANSACTION ISOLATION LEVEL")),
            Some(Answer::Show {
                value: "read committed",
                ..
            })
        ));
        assert!(matches!(
            answer(&parse("show standard_conforming_strings")),
            Some(Answer::Show { value: "on", .. })
        ));
        assert!(matches!(
            answer(&parse("SAVEPOINT sp1")),
            Some(Answer::Tag("SAVEPOINT"))
        ));
        assert!(matches!(
            answer(&parse("RELEASE SAVEPOINT sp1")),
            Some(Answer::Tag("RELEASE"))
        ));
        assert!(matches!(
            answer(&parse("ROLLBACK TO SAVEPOINT sp1")),
            Some(Answer::Tag("ROLLBACK"))
        ));
        assert!(matches!(
            answer(&parse("DEALLOCATE ALL")),
            Some(Answer::Deallocate(None))
        ));
        assert!(
            matches!(answer(&parse("DEALLOCATE p1")), Some(Answer::Deallocate(Some(n))) if n == "p1")
        );
        // Session settings stay with datafusion-postgres's SET/SHOW hook.
        assert!(answer(&parse("SHOW timezone")).is_none());
        assert!(answer(&parse("ROLLBACK")).is_none());
    }
}
