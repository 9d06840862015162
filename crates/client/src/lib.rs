//! bulwark-client (being built: see the crate's README and docs/).
