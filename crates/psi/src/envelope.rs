//! What the service checks of a voucher before it queues it, and what an
//! enrolled device signs.
//!
//! [`check_shape`] decides from the voucher's bytes and the published pdata
//! alone — never from any account state or opening — whether a voucher is
//! well formed: the pair count, every Q a valid non-identity ristretto255
//! point, the payload length. So the service can answer every voucher that
//! passes with the same 202 before any opening happens, and a crafted
//! voucher cannot learn from the answer whether an earlier pair opened.
//!
//! [`signing_input`] is the byte string a device signs (Ed25519) with its
//! enrolled key: `"bulwark-voucher-v1" ‖ account ‖ device ‖ voucher`, each
//! with a 4-byte big-endian length.

use curve25519_dalek::ristretto::CompressedRistretto;
use curve25519_dalek::traits::IsIdentity;

use crate::{Pdata, Rejection, Voucher};

const LABEL: &[u8] = b"bulwark-voucher-v1";

/// Checks a voucher's form against the pdata it names, without opening anything.
pub fn check_shape(v: &Voucher, pdata: &Pdata) -> Result<(), Rejection> {
    if !v.root.ct_eq(&pdata.root()) {
        return Err(Rejection::WrongPdata);
    }
    let params = pdata.params();
    if v.pairs.len() != params.pairs() || v.group() != 2 * usize::from(params.probes) {
        return Err(Rejection::Malformed("pair count differs from the pdata's"));
    }
    if v.payload.len() != crate::server::payload_len(params) {
        return Err(Rejection::Malformed(
            "payload length differs from the pdata's",
        ));
    }
    for pair in &v.pairs {
        match CompressedRistretto(pair.q).decompress() {
            Some(p) if !p.is_identity() => {}
            _ => {
                return Err(Rejection::Malformed(
                    "Q is not a non-identity ristretto255 point",
                ));
            }
        }
    }
    Ok(())
}

/// The bytes an enrolled device signs for one voucher.
pub fn signing_input(account: &str, device: &str, voucher: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(32 + account.len() + device.len() + voucher.len());
    for part in [LABEL, account.as_bytes(), device.as_bytes(), voucher] {
        v.extend_from_slice(&(part.len() as u32).to_be_bytes());
        v.extend_from_slice(part);
    }
    v
}
