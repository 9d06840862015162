//! The reviewer console's rows (its tables are versioned by
//! `meta.console_schema`): one module per console module of the server.

pub mod accounts;
pub mod actions;
pub mod admin;
pub mod items;
pub mod pages;
pub mod text;
pub mod video;
