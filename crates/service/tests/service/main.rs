//! The service's operations, without HTTP, as one test binary: each module
//! is one area (a binary per area would link the whole dependency tree again
//! for each). Modules that touch a store run on SQLite and, when
//! `BULWARK_TEST_POSTGRES` is set, on PostgreSQL.

mod catalog_gaps;
mod content;
mod hma;
mod imports;
mod references;
mod reports;
mod review;
mod signals;
mod support;
mod vouchers;
