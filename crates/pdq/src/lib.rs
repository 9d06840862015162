//! bulwark-pdq (being built: see the crate's README and docs/).
