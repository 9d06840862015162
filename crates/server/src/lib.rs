//! bulwark-server (being built: see the crate's README and docs/).
