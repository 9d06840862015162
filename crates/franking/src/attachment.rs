//! Key-committing attachment encryption.
//!
//! An attachment is encrypted once, under a fresh random 256-bit
//! [`AttachmentKey`], and uploaded as a blob. The franked message carries an
//! [`AttachmentRef`]: blob id, key, **key commitment**, SHA-256 of the
//! ciphertext, size and media type. Because the reference sits inside the
//! franked content, a report reveals exactly the key and commitment the
//! recipient was given.
//!
//! Construction (a "commit-then-encrypt" key derivation): HKDF-SHA256 with the
//! attachment key as input keying material and the info string
//! `bulwark-attachment-v1` expands to 64 bytes: the first 32 are the AES-256-GCM
//! key, the last 32 the commitment. Opening recomputes the commitment from the
//! key and compares it (in constant time) with the one in the reference
//! **before** decrypting. Two keys with the same commitment would be an HKDF
//! (HMAC-SHA256) collision, so no ciphertext opens under two keys — which plain
//! AES-GCM does allow (see the test that builds such a ciphertext). The nonce is
//! fixed at zero: each key encrypts exactly one message.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

const INFO: &[u8] = b"bulwark-attachment-v1";
const AAD: &[u8] = b"bulwark-attachment-v1";

/// The per-attachment secret key.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct AttachmentKey(pub [u8; 32]);

impl std::fmt::Debug for AttachmentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AttachmentKey(<redacted>)")
    }
}

/// Commitment to an attachment key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Commitment(pub [u8; 32]);

/// What a franked message says about an attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentRef {
    /// Where the ciphertext is stored.
    pub blob_id: String,
    /// The key.
    pub key: AttachmentKey,
    /// The key's commitment.
    pub commitment: Commitment,
    /// SHA-256 of the ciphertext blob.
    pub ciphertext_sha256: [u8; 32],
    /// Plaintext size in bytes.
    pub size: u64,
    /// Media type, e.g. `image/jpeg`.
    pub media_type: String,
}

/// Why an attachment does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The blob is not the one the reference names.
    #[error("the ciphertext is not the one the message refers to (SHA-256 differs)")]
    DigestMismatch,
    /// The key does not match the commitment in the message.
    #[error("the key does not match the message's key commitment")]
    WrongKey,
    /// Authenticated decryption failed (tampered ciphertext).
    #[error("the ciphertext does not authenticate")]
    Corrupt,
    /// The plaintext's size differs from the reference.
    #[error("the attachment's size differs from the message's")]
    SizeMismatch,
}

fn derive(key: &AttachmentKey) -> (Zeroizing<[u8; 32]>, Commitment) {
    let hk = hkdf::Hkdf::<Sha256>::new(None, &key.0);
    let mut okm = Zeroizing::new([0u8; 64]);
    // 64 bytes is far below HKDF-SHA256's 8160-byte limit: cannot fail.
    hk.expand(INFO, &mut okm[..])
        .unwrap_or_else(|_| unreachable!());
    let mut enc = Zeroizing::new([0u8; 32]);
    enc.copy_from_slice(&okm[..32]);
    let mut c = [0u8; 32];
    c.copy_from_slice(&okm[32..]);
    (enc, Commitment(c))
}

/// Encrypts an attachment under a fresh key; returns its reference and the
/// ciphertext to upload as `blob_id`.
pub fn seal<R: RngCore + CryptoRng>(
    plaintext: &[u8],
    media_type: &str,
    blob_id: &str,
    rng: &mut R,
) -> (AttachmentRef, Vec<u8>) {
    let mut k = AttachmentKey([0; 32]);
    rng.fill_bytes(&mut k.0);
    let (enc, commitment) = derive(&k);
    let cipher = Aes256Gcm::new_from_slice(&enc[..]).unwrap_or_else(|_| unreachable!());
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&[0u8; 12]),
            Payload {
                msg: plaintext,
                aad: AAD,
            },
        )
        .unwrap_or_else(|_| unreachable!());
    let r = AttachmentRef {
        blob_id: blob_id.to_string(),
        key: k,
        commitment,
        ciphertext_sha256: Sha256::digest(&ciphertext).into(),
        size: plaintext.len() as u64,
        media_type: media_type.to_string(),
    };
    (r, ciphertext)
}

/// Opens an attachment: checks the blob's digest, then the key against the
/// commitment, then decrypts.
pub fn open(r: &AttachmentRef, ciphertext: &[u8]) -> Result<Vec<u8>, OpenError> {
    let digest: [u8; 32] = Sha256::digest(ciphertext).into();
    if !bool::from(digest.ct_eq(&r.ciphertext_sha256)) {
        return Err(OpenError::DigestMismatch);
    }
    let (enc, commitment) = derive(&r.key);
    if !bool::from(commitment.0.ct_eq(&r.commitment.0)) {
        return Err(OpenError::WrongKey);
    }
    let cipher = Aes256Gcm::new_from_slice(&enc[..]).map_err(|_| OpenError::Corrupt)?;
    let plain = cipher
        .decrypt(
            Nonce::from_slice(&[0u8; 12]),
            Payload {
                msg: ciphertext,
                aad: AAD,
            },
        )
        .map_err(|_| OpenError::Corrupt)?;
    if plain.len() as u64 != r.size {
        return Err(OpenError::SizeMismatch);
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::{BlockEncrypt, generic_array::GenericArray};
    use rand::SeedableRng;

    // ---- GF(2^128) as GCM defines it (NIST SP 800-38D), for the attack only.
    fn gmul(x: u128, y: u128) -> u128 {
        let (mut z, mut v) = (0u128, y);
        for i in 0..128 {
            if (x >> (127 - i)) & 1 == 1 {
                z ^= v;
            }
            v = if v & 1 == 1 {
                (v >> 1) ^ (0xE1u128 << 120)
            } else {
                v >> 1
            };
        }
        z
    }
    fn gpow(mut x: u128, mut e: u128) -> u128 {
        let mut r = 1u128 << 127; // the field's 1 in GCM bit order
        while e > 0 {
            if e & 1 == 1 {
                r = gmul(r, x);
            }
            x = gmul(x, x);
            e >>= 1;
        }
        r
    }
    fn ginv(x: u128) -> u128 {
        gpow(x, u128::MAX - 1) // x^(2^128 - 2)
    }
    fn aes_block(key: &[u8; 32], block: u128) -> u128 {
        let c = aes::Aes256::new(GenericArray::from_slice(key));
        let mut b = GenericArray::clone_from_slice(&block.to_be_bytes());
        c.encrypt_block(&mut b);
        u128::from_be_bytes(b.into())
    }
    fn blocks(data: &[u8]) -> Vec<u128> {
        data.chunks(16)
            .map(|c| {
                let mut b = [0u8; 16];
                b[..c.len()].copy_from_slice(c);
                u128::from_be_bytes(b)
            })
            .collect()
    }

    /// Builds one AES-GCM ciphertext (nonce 0, our AAD) that authenticates
    /// under both raw keys `k1` and `k2`: the "invisible salamanders" attack.
    /// The first ciphertext block is solved for; the rest is arbitrary.
    fn salamander(k1: &[u8; 32], k2: &[u8; 32], rest: &[u8]) -> Vec<u8> {
        let (h1, h2) = (aes_block(k1, 0), aes_block(k2, 0));
        let j0 = 1u128; // 96-bit zero nonce || 0^31 || 1
        let (s1, s2) = (aes_block(k1, j0), aes_block(k2, j0));
        let a = blocks(AAD);
        let c_rest = blocks(rest);
        let n_c = 1 + c_rest.len();
        let len_block = ((AAD.len() as u128 * 8) << 64) | ((16 * n_c) as u128 * 8);
        // All GHASH input blocks, with the free block set to zero.
        let mut all: Vec<u128> = a.clone();
        let free = all.len();
        all.push(0);
        all.extend(&c_rest);
        all.push(len_block);
        let m = all.len();
        let ghash = |h: u128| {
            all.iter().enumerate().fold(0u128, |acc, (i, &x)| {
                acc ^ gmul(x, gpow(h, (m - i) as u128))
            })
        };
        let p = (m - free) as u128;
        // tag1 == tag2  ⇔  X·(H1^p + H2^p) = G1 + S1 + G2 + S2
        let x = gmul(
            ghash(h1) ^ s1 ^ ghash(h2) ^ s2,
            ginv(gpow(h1, p) ^ gpow(h2, p)),
        );
        let tag = ghash(h1) ^ gmul(x, gpow(h1, p)) ^ s1;
        let mut out = x.to_be_bytes().to_vec();
        out.extend_from_slice(&rest[..16 * c_rest.len()]);
        out.extend_from_slice(&tag.to_be_bytes());
        out
    }

    #[test]
    fn hkdf_sha256_rfc5869_and_our_derivation() {
        // RFC 5869 test case 3 (no salt, no info), through the crate we use.
        let hk = hkdf::Hkdf::<Sha256>::new(None, &[0x0b; 22]);
        let mut okm = [0u8; 42];
        hk.expand(&[], &mut okm).expect("expand");
        assert_eq!(
            okm[..],
            *b"\x8d\xa4\xe7\x75\xa5\x63\xc1\x8f\x71\x5f\x80\x2a\x06\x3c\x5a\x31\xb8\xa1\x1f\x5c\x5e\xe1\x87\x9e\xc3\x45\x4e\x5f\x3c\x73\x8d\x2d\x9d\x20\x13\x95\xfa\xa4\xb6\x1a\x96\xc8"
        );
        // Our commitment, computed independently with Python's hmac module.
        let (_, c) = derive(&AttachmentKey([9; 32]));
        assert_eq!(
            c.0,
            *b"\x08\xdc\x0a\x1e\x63\x16\x08\x41\x4e\xe2\xa1\xfa\xb1\x02\xcc\x64\xa6\xb8\x57\xd4\xbb\x55\xbb\xb5\x4f\x41\xc5\x9a\x5f\x0a\x8c\xd7"
        );
    }

    #[test]
    fn gf128_inverse_is_an_inverse() {
        let x = 0x0388dace60b6a392f328c2b971b2fe78u128;
        assert_eq!(gmul(x, ginv(x)), 1u128 << 127);
    }

    #[test]
    fn round_trip_and_every_alteration_refused() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let photo = b"benign test bytes standing in for a photo".repeat(10);
        let (r, ct) = seal(&photo, "image/jpeg", "blob-1", &mut rng);
        assert_eq!(open(&r, &ct).expect("opens"), photo);
        let mut tampered = ct.clone();
        tampered[5] ^= 1;
        assert_eq!(open(&r, &tampered), Err(OpenError::DigestMismatch));
        let mut r2 = r.clone();
        r2.ciphertext_sha256 = Sha256::digest(&tampered).into();
        assert_eq!(open(&r2, &tampered), Err(OpenError::Corrupt));
        let mut wrong = r.clone();
        wrong.key.0[0] ^= 1;
        assert_eq!(open(&wrong, &ct), Err(OpenError::WrongKey));
        let mut size = r.clone();
        size.size += 1;
        assert_eq!(open(&size, &ct), Err(OpenError::SizeMismatch));
    }

    #[test]
    fn a_ciphertext_that_plain_gcm_opens_under_two_keys_is_refused_for_the_second() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (mut k1, mut k2) = (AttachmentKey([0; 32]), AttachmentKey([0; 32]));
        rng.fill_bytes(&mut k1.0);
        rng.fill_bytes(&mut k2.0);
        let (e1, c1) = derive(&k1);
        let (e2, c2) = derive(&k2);
        let ct = salamander(&e1, &e2, &[0x42; 48]);
        // Plain AES-GCM: the one ciphertext authenticates under both keys, to
        // two different plaintexts.
        let dec = |e: &[u8; 32]| {
            Aes256Gcm::new_from_slice(e).expect("key").decrypt(
                Nonce::from_slice(&[0u8; 12]),
                Payload { msg: &ct, aad: AAD },
            )
        };
        let (p1, p2) = (
            dec(&e1).expect("opens under key 1"),
            dec(&e2).expect("opens under key 2"),
        );
        assert_ne!(p1, p2);
        // Bulwark's reference commits to key 1: presenting key 2 is refused.
        let digest: [u8; 32] = Sha256::digest(&ct).into();
        let as_sent = AttachmentRef {
            blob_id: "b".into(),
            key: k1.clone(),
            commitment: c1,
            ciphertext_sha256: digest,
            size: p1.len() as u64,
            media_type: "image/jpeg".into(),
        };
        assert_eq!(open(&as_sent, &ct).expect("the sent key opens"), p1);
        let swapped = AttachmentRef {
            key: k2.clone(),
            ..as_sent.clone()
        };
        assert_eq!(open(&swapped, &ct), Err(OpenError::WrongKey));
        assert_ne!(c1, c2);
    }
}
