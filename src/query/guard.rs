//! Guards a statement must pass before it is planned.
//!
//! DataFusion plans, optimises, names and evaluates expressions by recursion, so a client's
//! `1 + 1 + ... + 1` with ten thousand terms would overflow a worker thread's stack and take
//! the whole server down. sqlparser limits nesting of parentheses and subqueries, but not the
//! length of operator chains, which become equally deep trees. This guard counts operators on
//! the token stream (no recursion, linear time) and rejects over-long chains with a clear
//! error, the way Postgres answers with `stack depth limit exceeded`.

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// Most binary operators one statement may hold. Queries written by people and BI tools stay
/// far below; the server survives well above it (tested to 2,000 with debug builds).
pub const MAX_OPERATORS_PER_STATEMENT: usize = 1_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "statement too complex: more than {limit} operators in one statement \
     (split long AND/OR/+ chains, or use IN (...) lists)"
)]
pub struct TooComplex {
    pub limit: usize,
}

/// Checks every statement of `sql`; a query that does not tokenize is left for the parser to
/// report.
pub fn check_statement_complexity(sql: &str) -> Result<(), TooComplex> {
    // Cheap bound first: a statement with fewer characters than the limit cannot exceed it.
    if sql.len() < MAX_OPERATORS_PER_STATEMENT * 2 {
        return Ok(());
    }
    let dialect = PostgreSqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        return Ok(());
    };
    let mut operators = 0usize;
    for token in &tokens {
        let is_operator = match token {
            Token::SemiColon => {
                operators = 0;
                false
            }
            Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::StringConcat
            | Token::Eq
            | Token::DoubleEq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Spaceship
            | Token::Ampersand
            | Token::Pipe
            | Token::Caret => true,
            Token::Word(w) => matches!(w.keyword, Keyword::AND | Keyword::OR),
            _ => false,
        };
        if is_operator {
            operators += 1;
            if operators > MAX_OPERATORS_PER_STATEMENT {
                return Err(TooComplex {
                    limit: MAX_OPERATORS_PER_STATEMENT,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_ordinary_and_long_in_lists() {
        check_statement_complexity("select a + b from t where x = 1 and y > 2").unwrap();
        let in_list: Vec<String> = (0..20_000).map(|i| i.to_string()).collect();
        check_statement_complexity(&format!(
            "select * from t where x in ({})",
            in_list.join(",")
        ))
        .unwrap();
        // Many statements, each small.
        check_statement_complexity(&"select 1 + 1;".repeat(2_000)).unwrap();
    }

    #[test]
    fn rejects_long_operator_chains() {
        let sql = format!("select {}", vec!["1"; 10_000].join(" + "));
        let e = check_statement_complexity(&sql).unwrap_err();
        assert_eq!(e.limit, MAX_OPERATORS_PER_STATEMENT);
        let sql = format!("select * from t where {}", vec!["a = 1"; 800].join(" or "));
        assert!(check_statement_complexity(&sql).is_err());
    }
}
