//! List providers as enrolled Ed25519 keys, and the signed root a device
//! accepts.
//!
//! A provider signs `"bulwark-psi-signed-root-v1" ‖ 0x00 ‖ root ‖
//! SHA-256(header)`. The header (inside the root anyway, and named again so a
//! signer states which parameters, epoch, quorum and bank size it vouches for)
//! carries every parameter. A device pins provider public keys in its
//! [`Policy`] and accepts a pdata only with valid signatures by at least
//! `max(2, policy.min_providers, header.min_providers)` distinct pinned keys:
//! no server setting lowers it below 2.
//!
//! # Signed root format (version 1, integers big-endian)
//!
//! ```text
//! "BWSR" | u16 version | [32] root | [32] header digest | u16 n
//!        | n × ([32] Ed25519 public key | [64] signature)
//! ```

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::pdata::{Pdata, Root};
use crate::wire::Reader;
use crate::{PdataError, Policy};

const DST_SIGNED_ROOT: &[u8] = b"bulwark-psi-signed-root-v1\0";
const SIGNED_MAGIC: &[u8; 4] = b"BWSR";
const SIGNED_VERSION: u16 = 1;
const KEY_MAGIC: &[u8; 4] = b"BWPK";
const KEY_VERSION: u16 = 1;
/// Most signatures a signed root may carry.
const MAX_SIGNATURES: usize = 64;

/// A list provider's signing key. Zeroized on drop (by ed25519-dalek);
/// `Debug` shows only the public half.
pub struct ProviderKey(SigningKey);

impl fmt::Debug for ProviderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProviderKey(public {})", self.public())
    }
}

/// A provider's public key (32-byte Ed25519), as devices pin it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProviderPublic(pub [u8; 32]);

impl fmt::Display for ProviderPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ProviderPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProviderPublic({self})")
    }
}

impl FromStr for ProviderPublic {
    type Err = PdataError;
    fn from_str(s: &str) -> Result<ProviderPublic, PdataError> {
        let v =
            hex::decode(s.trim()).map_err(|_| PdataError::Malformed("provider key is not hex"))?;
        let a: [u8; 32] = v
            .try_into()
            .map_err(|_| PdataError::Malformed("provider key is not 64 hex digits"))?;
        VerifyingKey::from_bytes(&a)
            .map_err(|_| PdataError::Malformed("provider key is not an Ed25519 point"))?;
        Ok(ProviderPublic(a))
    }
}

/// The message a provider signs for `pdata`.
fn signed_message(root: &Root, header_digest: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DST_SIGNED_ROOT.len() + 64);
    m.extend_from_slice(DST_SIGNED_ROOT);
    m.extend_from_slice(&root.0);
    m.extend_from_slice(header_digest);
    m
}

impl ProviderKey {
    /// A fresh key.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> ProviderKey {
        ProviderKey(SigningKey::generate(rng))
    }

    /// The public key to pin.
    pub fn public(&self) -> ProviderPublic {
        ProviderPublic(self.0.verifying_key().to_bytes())
    }

    /// `"BWPK" ‖ u16 version ‖ 32-byte Ed25519 seed` (38 bytes). Secret.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(Vec::with_capacity(38));
        v.extend_from_slice(KEY_MAGIC);
        v.extend_from_slice(&KEY_VERSION.to_be_bytes());
        v.extend_from_slice(self.0.as_bytes());
        v
    }

    /// Reads [`ProviderKey::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<ProviderKey, PdataError> {
        if b.len() != 38 || &b[..4] != KEY_MAGIC {
            return Err(PdataError::Malformed("not a 38-byte BWPK provider key"));
        }
        let v = u16::from_be_bytes([b[4], b[5]]);
        if v != KEY_VERSION {
            return Err(PdataError::UnsupportedVersion(v));
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&b[6..]);
        Ok(ProviderKey(SigningKey::from_bytes(&seed)))
    }

    /// Signs `pdata`'s root and header: what a provider does after checking
    /// the release (parameters, epoch, bank size) is the one it agreed to.
    pub fn sign(&self, pdata: &Pdata) -> RootSignature {
        let sig = self
            .0
            .sign(&signed_message(&pdata.root(), &pdata.header_digest()));
        RootSignature {
            key: self.public(),
            signature: sig.to_bytes(),
        }
    }
}

/// One provider's signature over a root.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RootSignature {
    /// Who signed.
    pub key: ProviderPublic,
    /// Ed25519 signature.
    pub signature: [u8; 64],
}

impl fmt::Debug for RootSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RootSignature(by {})", self.key)
    }
}

/// A pdata root with its header digest and the providers' signatures: what
/// the service publishes, appends to the log ([`crate::log`]) and devices
/// verify ([`SignedRoot::verify`], [`Pdata::from_signed`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRoot {
    /// The pdata's Merkle root.
    pub root: Root,
    /// SHA-256 of the pdata header.
    pub header_digest: [u8; 32],
    /// Signatures, at most one counted per key.
    pub signatures: Vec<RootSignature>,
}

impl SignedRoot {
    /// An unsigned root for `pdata` (add signatures with [`SignedRoot::add`]).
    pub fn new(pdata: &Pdata) -> SignedRoot {
        SignedRoot {
            root: pdata.root(),
            header_digest: pdata.header_digest(),
            signatures: Vec::new(),
        }
    }

    /// Adds a signature (one per key: a second by the same key replaces it).
    pub fn add(&mut self, sig: RootSignature) {
        self.signatures.retain(|s| s.key != sig.key);
        self.signatures.push(sig);
    }

    /// The serialised form (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(72 + 96 * self.signatures.len());
        v.extend_from_slice(SIGNED_MAGIC);
        v.extend_from_slice(&SIGNED_VERSION.to_be_bytes());
        v.extend_from_slice(&self.root.0);
        v.extend_from_slice(&self.header_digest);
        v.extend_from_slice(&(self.signatures.len() as u16).to_be_bytes());
        for s in &self.signatures {
            v.extend_from_slice(&s.key.0);
            v.extend_from_slice(&s.signature);
        }
        v
    }

    /// Parses untrusted bytes. Never panics.
    pub fn from_bytes(b: &[u8]) -> Result<SignedRoot, PdataError> {
        let m = |e: crate::wire::Short| PdataError::Malformed(e.0);
        let mut r = Reader::new(b);
        if &r.array::<4>("magic").map_err(m)? != SIGNED_MAGIC {
            return Err(PdataError::Malformed(
                "not a signed root (magic is not BWSR)",
            ));
        }
        let v = r.u16("version").map_err(m)?;
        if v != SIGNED_VERSION {
            return Err(PdataError::UnsupportedVersion(v));
        }
        let root = Root(r.array("root").map_err(m)?);
        let header_digest = r.array("header digest").map_err(m)?;
        let n = usize::from(r.u16("signature count").map_err(m)?);
        if n > MAX_SIGNATURES {
            return Err(PdataError::Malformed("more than 64 signatures"));
        }
        let mut signatures = Vec::with_capacity(n);
        for _ in 0..n {
            signatures.push(RootSignature {
                key: ProviderPublic(r.array("provider key").map_err(m)?),
                signature: r.array("signature").map_err(m)?,
            });
        }
        r.finish().map_err(m)?;
        Ok(SignedRoot {
            root,
            header_digest,
            signatures,
        })
    }

    /// The distinct pinned providers whose signature over this root verifies
    /// (strict Ed25519 verification: no small-order keys, canonical S).
    pub fn valid_signers(&self, pinned: &[ProviderPublic]) -> Vec<ProviderPublic> {
        let msg = signed_message(&self.root, &self.header_digest);
        let mut ok: Vec<ProviderPublic> = Vec::new();
        for s in &self.signatures {
            if ok.contains(&s.key) || !pinned.contains(&s.key) {
                continue;
            }
            let Ok(vk) = VerifyingKey::from_bytes(&s.key.0) else {
                continue;
            };
            if vk
                .verify_strict(&msg, &Signature::from_bytes(&s.signature))
                .is_ok()
            {
                ok.push(s.key);
            }
        }
        ok
    }

    /// Checks that this signed root names `pdata` (root and header digest,
    /// constant-time) and carries valid signatures by at least
    /// `max(2, policy, header)` distinct pinned providers.
    pub fn verify(&self, pdata: &Pdata, policy: &Policy) -> Result<(), PdataError> {
        if !self.root.ct_eq(&pdata.root()) {
            return Err(PdataError::RootMismatch);
        }
        if !bool::from(self.header_digest.ct_eq(&pdata.header_digest())) {
            return Err(PdataError::Signature(
                "header digest differs from the pdata's",
            ));
        }
        let need = usize::from(
            policy
                .min_providers()
                .max(pdata.release().min_providers)
                .max(2),
        );
        if self.valid_signers(&policy.providers).len() < need {
            return Err(PdataError::Signature(
                "fewer valid signatures by distinct pinned providers than required",
            ));
        }
        Ok(())
    }
}

impl Pdata {
    /// What a device does with downloaded pdata: parses it, checks that its
    /// root and header are the signed ones, the signatures (≥ 2 distinct
    /// pinned providers), and the parameter allowlist ([`Pdata::check_policy`]).
    /// Whether the signed root is in the public log is checked separately
    /// ([`crate::log::verify_inclusion`]).
    pub fn from_signed(
        bytes: &[u8],
        signed: &SignedRoot,
        policy: &Policy,
    ) -> Result<Pdata, PdataError> {
        let p = Pdata::from_bytes(bytes, &signed.root)?;
        signed.verify(&p, policy)?;
        p.check_policy(policy)?;
        Ok(p)
    }
}
