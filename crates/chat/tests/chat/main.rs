//! The messenger's tests against real services, as one test binary: each
//! module is one area (`cargo test -p bulwark-chat --test chat e2e::`).

mod delivery;
mod e2e;
mod support;
mod tui;
mod video;
