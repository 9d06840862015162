//! Time-based one-time passwords: the service's
//! (`bulwark_service::review::totp`), which checks them at sign-in.

pub use bulwark_service::review::totp::*;
