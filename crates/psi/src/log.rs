//! An append-only public log of signed roots: an RFC 6962 / RFC 9162 Merkle
//! tree over SHA-256 with leaf hash SHA-256(0x00 ‖ data) and node hash
//! SHA-256(0x01 ‖ left ‖ right), inclusion proofs (audit paths) and
//! consistency proofs, generated and verified as RFC 9162 §2.1 describes.
//!
//! The service appends each [`SignedRoot`]'s bytes; a device refuses a root
//! that is not in the log ([`SignedRoot::check_logged`]: an inclusion proof
//! against a tree head) and refuses a tree head that does not extend the one it
//! remembers ([`TreeHead::check_extends`]: a consistency proof). So the
//! service cannot show one device a root it does not show everyone who watches
//! the log — as long as devices and auditors compare tree heads (gossip or
//! witnesses: outside this crate).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::SignedRoot;

/// A log hash.
pub type Hash = [u8; 32];

/// Why a log proof is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// An index or size is out of range for the log.
    #[error("log: {0}")]
    OutOfRange(&'static str),
    /// The proof does not verify.
    #[error("log proof does not verify: {0}")]
    Invalid(&'static str),
}

/// RFC 6962 leaf hash: SHA-256(0x00 ‖ data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// RFC 6962 interior node hash: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(l: &Hash, r: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH over leaf hashes (the empty tree's is SHA-256 of nothing).
fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

fn path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(m, &leaves[..k], out);
        out.push(mth(&leaves[k..]));
    } else {
        path(m - k, &leaves[k..], out);
        out.push(mth(&leaves[..k]));
    }
}

fn subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            out.push(mth(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &leaves[..k], complete, out);
        out.push(mth(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, out);
        out.push(mth(&leaves[..k]));
    }
}

/// A tree head: the log's size and root hash at that size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeHead {
    /// Number of leaves.
    pub size: u64,
    /// The Merkle tree hash of those leaves.
    pub root: Hash,
}

/// The log (the service's side): every leaf hash, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MerkleLog {
    leaves: Vec<Hash>,
}

impl MerkleLog {
    /// An empty log.
    pub fn new() -> MerkleLog {
        MerkleLog::default()
    }

    /// A log from stored leaf hashes, oldest first.
    pub fn from_leaf_hashes(leaves: Vec<Hash>) -> MerkleLog {
        MerkleLog { leaves }
    }

    /// Appends `data` (e.g. [`SignedRoot::to_bytes`]); returns its index.
    pub fn append(&mut self, data: &[u8]) -> u64 {
        self.leaves.push(leaf_hash(data));
        self.leaves.len() as u64 - 1
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// The leaf hashes, oldest first (to store).
    pub fn leaf_hashes(&self) -> &[Hash] {
        &self.leaves
    }

    /// The tree head at `size` (≤ the current size).
    pub fn head_at(&self, size: u64) -> Result<TreeHead, LogError> {
        let n = self.check_size(size)?;
        Ok(TreeHead {
            size,
            root: mth(&self.leaves[..n]),
        })
    }

    /// The current tree head.
    pub fn head(&self) -> TreeHead {
        TreeHead {
            size: self.size(),
            root: mth(&self.leaves),
        }
    }

    fn check_size(&self, size: u64) -> Result<usize, LogError> {
        usize::try_from(size)
            .ok()
            .filter(|&n| n <= self.leaves.len())
            .ok_or(LogError::OutOfRange("tree size larger than the log"))
    }

    /// The audit path of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        let n = self.check_size(size)?;
        let m = usize::try_from(index)
            .ok()
            .filter(|&m| m < n)
            .ok_or(LogError::OutOfRange("leaf index not below the tree size"))?;
        let mut out = Vec::new();
        path(m, &self.leaves[..n], &mut out);
        Ok(out)
    }

    /// The consistency proof from the tree of `old` leaves to that of `new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogError> {
        let n = self.check_size(new)?;
        if old > new {
            return Err(LogError::OutOfRange("old size larger than the new size"));
        }
        let mut out = Vec::new();
        if old > 0 {
            subproof(old as usize, &self.leaves[..n], true, &mut out);
        }
        Ok(out)
    }
}

fn eq(a: &Hash, b: &Hash) -> bool {
    bool::from(a.ct_eq(b))
}

/// Verifies an audit path (RFC 9162 §2.1.3.2): `leaf` (a leaf hash) is at
/// `index` in the tree of `head.size` leaves whose root is `head.root`.
pub fn verify_inclusion(leaf: &Hash, index: u64, head: &TreeHead, proof: &[Hash]) -> bool {
    if index >= head.size {
        return false;
    }
    let (mut f, mut s) = (index, head.size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && eq(&r, &head.root)
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2): the tree `new` extends
/// the tree `old` (appends only).
pub fn verify_consistency(old: &TreeHead, new: &TreeHead, proof: &[Hash]) -> bool {
    if old.size > new.size {
        return false;
    }
    if old.size == new.size {
        return proof.is_empty() && eq(&old.root, &new.root);
    }
    if old.size == 0 {
        // Every tree extends the empty one.
        return proof.is_empty() && eq(&old.root, &mth(&[]));
    }
    if proof.is_empty() {
        return false;
    }
    let mut nodes: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.size.is_power_of_two() {
        nodes.push(old.root);
    }
    nodes.extend_from_slice(proof);
    let (mut f, mut s) = (old.size - 1, new.size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (nodes[0], nodes[0]);
    for c in &nodes[1..] {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && eq(&fr, &old.root) && eq(&sr, &new.root)
}

impl SignedRoot {
    /// The device's "is this root in the public log?" check: these exact
    /// signed-root bytes are leaf `index` of the tree `head`.
    pub fn check_logged(
        &self,
        index: u64,
        head: &TreeHead,
        proof: &[Hash],
    ) -> Result<(), LogError> {
        if verify_inclusion(&leaf_hash(&self.to_bytes()), index, head, proof) {
            Ok(())
        } else {
            Err(LogError::Invalid(
                "the signed root is not in the log at that tree head",
            ))
        }
    }
}

impl TreeHead {
    /// The device's append-only check: `self` (a newer head from the service)
    /// extends `remembered` (the last head this device accepted).
    pub fn check_extends(&self, remembered: &TreeHead, proof: &[Hash]) -> Result<(), LogError> {
        if verify_consistency(remembered, self, proof) {
            Ok(())
        } else {
            Err(LogError::Invalid(
                "the new tree head does not extend the remembered one",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Hash {
        hex::decode(s).expect("hex").try_into().expect("32 bytes")
    }

    /// The RFC 6962 reference leaves (certificate-transparency test data).
    fn reference() -> MerkleLog {
        let mut log = MerkleLog::new();
        for d in [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ] {
            log.append(&hex::decode(d).expect("hex"));
        }
        log
    }

    fn vectors() -> serde_free::Vectors {
        serde_free::parse(include_str!("../tests/data/rfc6962_vectors.txt"))
    }

    /// A tiny line parser for the committed vectors (no serde dependency).
    mod serde_free {
        pub struct Vectors {
            pub roots: Vec<(u64, String)>,
            pub inclusion: Vec<(u64, u64, Vec<String>)>,
            pub consistency: Vec<(u64, u64, Vec<String>)>,
        }
        pub fn parse(s: &str) -> Vectors {
            let mut v = Vectors {
                roots: vec![],
                inclusion: vec![],
                consistency: vec![],
            };
            for line in s
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            {
                let f: Vec<&str> = line.split_whitespace().collect();
                let n = |i: usize| f[i].parse::<u64>().expect("number");
                let rest = |i: usize| f[i..].iter().map(|x| x.to_string()).collect();
                match f[0] {
                    "root" => v.roots.push((n(1), f[2].to_string())),
                    "inclusion" => v.inclusion.push((n(1), n(2), rest(3))),
                    "consistency" => v.consistency.push((n(1), n(2), rest(3))),
                    _ => panic!("unknown vector line {line}"),
                }
            }
            v
        }
    }

    #[test]
    fn rfc6962_reference_roots_and_proofs() {
        let log = reference();
        let v = vectors();
        assert!(v.roots.len() == 9 && v.inclusion.len() >= 10 && v.consistency.len() >= 6);
        for (size, root) in &v.roots {
            assert_eq!(
                log.head_at(*size).expect("size").root,
                h(root),
                "size {size}"
            );
        }
        for (index, size, proof) in &v.inclusion {
            let want: Vec<Hash> = proof.iter().map(|p| h(p)).collect();
            assert_eq!(log.inclusion_proof(*index, *size).expect("proof"), want);
            let head = log.head_at(*size).expect("head");
            assert!(verify_inclusion(
                &log.leaf_hashes()[*index as usize],
                *index,
                &head,
                &want
            ));
        }
        for (old, new, proof) in &v.consistency {
            let want: Vec<Hash> = proof.iter().map(|p| h(p)).collect();
            assert_eq!(log.consistency_proof(*old, *new).expect("proof"), want);
            let (a, b) = (
                log.head_at(*old).expect("old"),
                log.head_at(*new).expect("new"),
            );
            assert!(verify_consistency(&a, &b, &want), "{old} -> {new}");
        }
    }

    #[test]
    fn every_proof_verifies_and_every_mutation_fails() {
        let mut log = MerkleLog::new();
        for i in 0..40u32 {
            log.append(&i.to_be_bytes());
        }
        for n in 1..=40u64 {
            let head = log.head_at(n).expect("head");
            for i in 0..n {
                let leaf = log.leaf_hashes()[i as usize];
                let p = log.inclusion_proof(i, n).expect("proof");
                assert!(verify_inclusion(&leaf, i, &head, &p));
                if i + 1 < n {
                    assert!(!verify_inclusion(&leaf, i + 1, &head, &p));
                }
                if let Some(first) = p.first() {
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert!(!verify_inclusion(&leaf, i, &head, &bad));
                    assert!(!verify_inclusion(&leaf, i, &head, &p[1..]));
                    let mut longer = p.clone();
                    longer.push(*first);
                    assert!(!verify_inclusion(&leaf, i, &head, &longer));
                }
                let mut other = leaf;
                other[31] ^= 1;
                assert!(!verify_inclusion(&other, i, &head, &p));
            }
            for m in 0..=n {
                let old = log.head_at(m).expect("old");
                let p = log.consistency_proof(m, n).expect("proof");
                assert!(verify_consistency(&old, &head, &p), "{m} -> {n}");
                if m > 0 && m < n {
                    let mut bad = p.clone();
                    bad[0][5] ^= 1;
                    assert!(!verify_consistency(&old, &head, &bad));
                    assert!(!verify_consistency(&old, &head, &p[..p.len() - 1]));
                    // A head whose old tree was rewritten does not extend.
                    let mut forked =
                        MerkleLog::from_leaf_hashes(log.leaf_hashes()[..n as usize].to_vec());
                    forked.leaves[0][0] ^= 1;
                    let fork_head = forked.head();
                    assert!(!verify_consistency(
                        &old,
                        &fork_head,
                        &forked.consistency_proof(m, n).expect("p")
                    ));
                }
            }
        }
        assert!(log.inclusion_proof(5, 5).is_err());
        assert!(log.consistency_proof(6, 5).is_err());
        assert!(log.head_at(41).is_err());
    }
}
