//! bulwark-index (being built: see the crate's README and docs/).
