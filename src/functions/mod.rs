//! SQL functions carthouse adds to every session, so they work the same from every front end.
//! Today: the Postgres compatibility functions BI tools call at connect time ([`pg_compat`]).
//! The commerce analytics functions (t-digest, association rules) join them here.

pub mod pg_compat;

use datafusion::prelude::SessionContext;

/// Registers every carthouse function on `ctx`.
pub fn register_all(ctx: &SessionContext) {
    pg_compat::register(ctx);
}
