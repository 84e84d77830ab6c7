//! Server front ends: protocol adapters over the one query engine ([`crate::query`]) and
//! catalog ([`crate::catalog`]). Each maps core errors to its protocol in one function.
//! Today: Postgres wire protocol ([`pg`]). Arrow Flight SQL and HTTP follow.

pub mod cancel;
pub mod pg;
pub mod pg_compat;
