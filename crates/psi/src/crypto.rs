//! The primitives as this crate composes them: hash-to-ristretto255, HKDF-SHA256,
//! a keyed PRF, and AES-256-GCM with a key commitment.
//!
//! Nothing here is a new primitive: the curve is `curve25519-dalek`
//! (ristretto255, RFC 9496), the hash SHA-512/SHA-256 (`sha2`), the KDF HKDF
//! (`hkdf`, RFC 5869), the AEAD AES-256-GCM (`aes-gcm`). Every label is a
//! distinct domain-separation string ending in `-v1`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use hkdf::Hkdf;
use rand::{CryptoRng, RngCore};
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Domain-separation tag for hashing LSH sub-keys to the group.
pub(crate) const DST_H2G: &[u8] = b"bulwark-psi-h2g-v1";
/// HKDF info for the one-time pad of one slot.
pub(crate) const INFO_SLOT: &[u8] = b"bulwark-psi-slot-v2";
/// HKDF info for the payload key and its commitment.
pub(crate) const INFO_PAYLOAD: &[u8] = b"bulwark-psi-payload-v1";
/// HKDF info for the associated-data key (from the account key).
pub(crate) const INFO_ADCT: &[u8] = b"bulwark-psi-adct-v1";

/// Bytes a slot ciphertext adds to the 32-byte random key (the GCM tag).
pub(crate) const TAG: usize = 16;
/// Bytes of a key commitment.
pub(crate) const COMMIT: usize = 32;
/// Nonce bytes of AES-GCM.
pub(crate) const NONCE: usize = 12;

/// `H(msg)`: hash to ristretto255 with our domain-separation tag:
/// `RistrettoPoint::hash_from_bytes::<Sha512>(DST ‖ msg)`, i.e. SHA-512 then
/// the RFC 9496 one-way map (`from_uniform_bytes`).
pub(crate) fn hash_to_group(msg: &[&[u8]]) -> RistrettoPoint {
    use sha2::Digest;
    let mut h = Sha512::new();
    h.update(DST_H2G);
    for m in msg {
        h.update(m);
    }
    RistrettoPoint::from_hash(h)
}

/// HKDF-SHA256 with no salt: extract from `ikm`, expand `info` into `out`.
pub(crate) fn kdf(ikm: &[u8], info: &[&[u8]], out: &mut [u8]) {
    let hk = Hkdf::<Sha256>::new(None, ikm);
    let info: Vec<u8> = info.concat();
    // Every caller asks for at most a few hundred bytes, far below HKDF-SHA256's
    // 8160-byte limit: cannot fail.
    hk.expand(&info, out).unwrap_or_else(|_| unreachable!());
}

/// A PRF keyed by a 32-byte secret: HKDF-Expand of `label ‖ data`.
pub(crate) fn prf(key: &[u8; 32], label: &[u8], data: &[u8], out: &mut [u8]) {
    kdf(key, &[label, data], out);
}

/// A scalar from the PRF (64 bytes reduced mod ℓ: statistically uniform).
pub(crate) fn prf_scalar(key: &[u8; 32], label: &[u8], data: &[u8]) -> Scalar {
    let mut wide = Zeroizing::new([0u8; 64]);
    prf(key, label, data, &mut wide[..]);
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// A uniformly random group element (the one-way map of 64 random bytes).
pub(crate) fn random_point<R: RngCore + CryptoRng>(rng: &mut R) -> RistrettoPoint {
    let mut b = [0u8; 64];
    rng.fill_bytes(&mut b);
    RistrettoPoint::from_uniform_bytes(&b)
}

/// The one-time pad of a slot: HKDF(S, "slot" ‖ Q) → 64 bytes, binding the
/// pair. Each S is fresh per pair, so each pad is used once.
pub(crate) fn slot_pad(s: &RistrettoPoint, q: &CompressedRistretto) -> Zeroizing<[u8; 64]> {
    let mut k = Zeroizing::new([0u8; 64]);
    kdf(
        s.compress().as_bytes(),
        &[INFO_SLOT, q.as_bytes()],
        &mut k[..],
    );
    k
}

/// A uniformly random 64-byte string that reduces to `y` mod ℓ: w + ((y − w)
/// mod ℓ) for uniform w, i.e. the least value ≥ w congruent to y. Every
/// 512-bit value congruent to y has exactly ℓ preimages (up to the top
/// boundary, redrawn on the 2⁻²⁵⁹-likely overflow), so the result is uniform
/// among them, and since y itself is a uniform scalar the string is uniform:
/// a share looks exactly like the random bytes a non-matching pad leaves.
pub(crate) fn wide_encoding<R: RngCore + CryptoRng>(
    y: &Scalar,
    rng: &mut R,
) -> Zeroizing<[u8; 64]> {
    loop {
        let mut w = Zeroizing::new([0u8; 64]);
        rng.fill_bytes(&mut w[..]);
        let delta = y - Scalar::from_bytes_mod_order_wide(&w);
        let d = delta.as_bytes();
        // Little-endian 512-bit addition w += delta.
        let mut carry = 0u16;
        for i in 0..64 {
            let add = if i < 32 { u16::from(d[i]) } else { 0 };
            let v = u16::from(w[i]) + add + carry;
            w[i] = v as u8;
            carry = v >> 8;
        }
        if carry == 0 {
            return w;
        }
    }
}

/// The scalar a 64-byte share encoding stands for.
pub(crate) fn wide_decoding(w: &[u8; 64]) -> Scalar {
    Scalar::from_bytes_mod_order_wide(w)
}

fn gcm(key: &[u8]) -> Aes256Gcm {
    // Keys are always 32 bytes here.
    Aes256Gcm::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// AES-256-GCM, nonce zero (each key encrypts one message).
pub(crate) fn seal_once(key: &[u8; 32], aad: &[u8], msg: &[u8]) -> Vec<u8> {
    gcm(key)
        .encrypt(Nonce::from_slice(&[0u8; NONCE]), Payload { msg, aad })
        .unwrap_or_else(|_| unreachable!())
}

/// Opens [`seal_once`]; `None` if it does not authenticate.
pub(crate) fn open_once(key: &[u8; 32], aad: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    gcm(key)
        .decrypt(Nonce::from_slice(&[0u8; NONCE]), Payload { msg: ct, aad })
        .ok()
}

/// Payload key and commitment: HKDF(rkey, "payload") → 64 bytes.
fn payload_keys(rkey: &[u8; 32]) -> (Zeroizing<[u8; 32]>, [u8; COMMIT]) {
    let mut okm = Zeroizing::new([0u8; 64]);
    kdf(rkey, &[INFO_PAYLOAD], &mut okm[..]);
    let mut enc = Zeroizing::new([0u8; 32]);
    enc.copy_from_slice(&okm[..32]);
    let mut c = [0u8; COMMIT];
    c.copy_from_slice(&okm[32..]);
    (enc, c)
}

/// Key-committing encryption of the payload under the voucher's random key:
/// `commitment ‖ AES-256-GCM(enc, nonce 0, msg)` (as crates/franking's
/// attachments): no payload opens under two keys.
pub(crate) fn seal_committed(rkey: &[u8; 32], aad: &[u8], msg: &[u8]) -> Vec<u8> {
    let (enc, c) = payload_keys(rkey);
    let mut out = Vec::with_capacity(COMMIT + msg.len() + TAG);
    out.extend_from_slice(&c);
    out.extend_from_slice(&seal_once(&enc, aad, msg));
    out
}

/// Whether `rkey`'s commitment is the one `ct` starts with (constant-time):
/// the server's test of a candidate voucher key.
pub(crate) fn commitment_matches(rkey: &[u8; 32], ct: &[u8]) -> bool {
    if ct.len() < COMMIT {
        return false;
    }
    let (_, c) = payload_keys(rkey);
    bool::from(c.ct_eq(&ct[..COMMIT]))
}

/// Opens [`seal_committed`]: the commitment first (constant-time), then GCM.
pub(crate) fn open_committed(rkey: &[u8; 32], aad: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    if ct.len() < COMMIT + TAG {
        return None;
    }
    let (enc, c) = payload_keys(rkey);
    if !bool::from(c.ct_eq(&ct[..COMMIT])) {
        return None;
    }
    open_once(&enc, aad, &ct[COMMIT..])
}

/// AES-256-GCM with a random nonce, prepended: `nonce ‖ ct ‖ tag`.
pub(crate) fn seal_random_nonce<R: RngCore + CryptoRng>(
    key: &[u8; 32],
    aad: &[u8],
    msg: &[u8],
    rng: &mut R,
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE];
    rng.fill_bytes(&mut nonce);
    let ct = gcm(key)
        .encrypt(Nonce::from_slice(&nonce), Payload { msg, aad })
        .unwrap_or_else(|_| unreachable!());
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    out
}

/// Opens [`seal_random_nonce`].
pub(crate) fn open_random_nonce(key: &[u8; 32], aad: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    if ct.len() < NONCE + TAG {
        return None;
    }
    gcm(key)
        .decrypt(
            Nonce::from_slice(&ct[..NONCE]),
            Payload {
                msg: &ct[NONCE..],
                aad,
            },
        )
        .ok()
}

/// The associated-data key derived from the account key.
pub(crate) fn adct_key(account_key: &Scalar) -> Zeroizing<[u8; 32]> {
    let mut k = Zeroizing::new([0u8; 32]);
    kdf(account_key.as_bytes(), &[INFO_ADCT], &mut k[..]);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex<const N: usize>(s: &str) -> [u8; N] {
        let v = hex::decode(s).expect("hex");
        v.try_into().expect("length")
    }

    #[test]
    fn hkdf_sha256_rfc5869() {
        // Test case 1 (salt and info), through the crate.
        let hk = Hkdf::<Sha256>::new(
            Some(&unhex::<13>("000102030405060708090a0b0c")),
            &[0x0b; 22],
        );
        let mut okm = [0u8; 42];
        hk.expand(&unhex::<10>("f0f1f2f3f4f5f6f7f8f9"), &mut okm)
            .expect("expand");
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
        // Test case 3 (no salt, no info): exactly our `kdf` with empty info.
        let mut okm = [0u8; 42];
        kdf(&[0x0b; 22], &[], &mut okm);
        assert_eq!(
            hex::encode(okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        );
    }

    #[test]
    fn aes256_gcm_known_answers() {
        // McGrew–Viega GCM spec, test cases 13 and 14 (AES-256, zero key and IV).
        let k = [0u8; 32];
        assert_eq!(
            hex::encode(seal_once(&k, b"", b"")),
            "530f8afbc74536b9a963b4f1c4cb738b"
        );
        assert_eq!(
            hex::encode(seal_once(&k, b"", &[0u8; 16])),
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
        );
    }

    #[test]
    fn payload_commitment_known_answer_and_refusal() {
        // Commitment = HKDF-SHA256(ikm = 0x09 × 32, info = "bulwark-psi-payload-v1")[32..64],
        // computed independently with Python's hmac module (see tests/data/README.md).
        let rkey = [9u8; 32];
        let ct = seal_committed(&rkey, b"aad", b"hello");
        assert_eq!(
            hex::encode(&ct[..COMMIT]),
            include_str!("../tests/data/payload_commitment.hex").trim()
        );
        assert_eq!(
            hex::encode(&ct),
            include_str!("../tests/data/payload_sealed.hex").trim()
        );
        assert_eq!(
            open_committed(&rkey, b"aad", &ct).as_deref(),
            Some(&b"hello"[..])
        );
        assert!(open_committed(&[8; 32], b"aad", &ct).is_none());
        assert!(open_committed(&rkey, b"aaX", &ct).is_none());
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert!(open_committed(&rkey, b"aad", &bad).is_none());
    }

    #[test]
    fn wide_encoding_reduces_to_the_share_and_looks_uniform() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut top_high = 0;
        for _ in 0..2000 {
            let y = Scalar::random(&mut rng);
            let w = wide_encoding(&y, &mut rng);
            assert_eq!(wide_decoding(&w), y);
            top_high += usize::from(w[63] >= 128);
        }
        // The top bit of a uniform 512-bit string is set half the time (a
        // canonical 32-byte scalar would never set bit 255): 1000 ± 5σ.
        assert!((890..=1110).contains(&top_high), "{top_high}");
    }

    #[test]
    fn ristretto255_rfc9496_vectors() {
        // RFC 9496 Appendix A.1: encodings of B and 2B.
        let b = curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
        assert_eq!(
            hex::encode(b.compress().as_bytes()),
            "e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76"
        );
        assert_eq!(
            hex::encode((b + b).compress().as_bytes()),
            "6a493210f7499cd17fecb510ae0cea23a110e8d5b901f8acadd3095c73a3b919"
        );
        // RFC 9496 Appendix A.3: the one-way map (hash-to-group's last step).
        let input: [u8; 64] = unhex(
            "5d1be09e3d0c82fc538112490e35701979d99e06ca3e2b5b54bffe8b4dc772c1\
             4d98b696a1bbfb5ca32c436cc61c16563790306c79eaca7705668b47dffe5bb6",
        );
        assert_eq!(
            hex::encode(
                RistrettoPoint::from_uniform_bytes(&input)
                    .compress()
                    .as_bytes()
            ),
            "3066f82a1a747d45120d1740f14358531a8f04bbffe6a819f86dfe50f44a0a46"
        );
        // Our H is SHA-512(DST ‖ msg) followed by that map.
        use sha2::Digest;
        let wide: [u8; 64] = Sha512::digest([DST_H2G, b"abc"].concat()).into();
        assert_eq!(
            hash_to_group(&[b"abc"]),
            RistrettoPoint::from_uniform_bytes(&wide)
        );
        // Pinned output (a regression known answer, produced by this crate).
        assert_eq!(
            hex::encode(hash_to_group(&[b"abc"]).compress().as_bytes()),
            include_str!("../tests/data/h2g_abc.hex").trim()
        );
    }
}
