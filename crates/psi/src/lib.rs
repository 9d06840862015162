//! bulwark-psi (being built: see the crate's README and docs/).
