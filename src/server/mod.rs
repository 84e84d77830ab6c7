//! Server front ends: protocol adapters over the one query engine ([`crate::query`]) and
//! catalog ([`crate::catalog`]). Each maps core errors to its protocol in one function.
//! Postgres wire protocol ([`pg`]) and Arrow Flight SQL ([`flight`]); HTTP follows.

pub mod cancel;
pub mod flight;
pub mod http;
pub mod pg;
pub mod pg_compat;
