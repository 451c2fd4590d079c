//! RFC 6962 Merkle tree hashing (SHA-256), inclusion and consistency proofs, and the compact range
//! the writer keeps so that each append costs O(log n) and a restart does not rehash the log.
//!
//! Leaf hash: `SHA-256(0x00 ‖ data)`; interior node: `SHA-256(0x01 ‖ left ‖ right)`; the hash of a
//! list of n > 1 leaves splits at the largest power of two smaller than n (RFC 6962 §2.1). Proof
//! verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 (the same algorithms, stated iteratively).

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, an interior node or a tree root.
pub type Hash = [u8; 32];

/// Why a proof was refused or could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {old} is larger than tree size {new}")]
    SizesReversed { old: u64, new: u64 },
    #[error("proof has the wrong number of hashes for these sizes")]
    WrongLength,
    #[error("proof does not lead to the expected root")]
    RootMismatch,
}

/// `SHA-256(0x00 ‖ data)`: the hash of one leaf.
pub fn hash_leaf(data: &[u8]) -> Hash {
    let mut h = LeafHasher::new();
    h.update(data);
    h.finish()
}

/// A leaf hash fed piece by piece. It is `Clone` and can be sent to another thread half-fed, so
/// the bulk of a leaf can be hashed where it is built and finished where the rest is known.
#[derive(Clone)]
pub struct LeafHasher(Sha256);

impl LeafHasher {
    /// Starts `SHA-256(0x00 ‖ …)`.
    pub fn new() -> Self {
        let mut h = Sha256::new();
        h.update([0u8]);
        Self(h)
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(self) -> Hash {
        self.0.finalize().into()
    }
}

impl Default for LeafHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for LeafHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeafHasher")
    }
}

/// `SHA-256(0x01 ‖ left ‖ right)`: the hash of an interior node.
pub fn hash_children(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly smaller than `n` (n ≥ 2): where RFC 6962 splits a list.
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// MTH(D\[n\]) over already hashed leaves.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n);
            hash_children(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// PATH(m, D\[n\]): the audit path of leaf `index` in the tree over `leaves`, leaf level first.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, ProofError> {
    let size = leaves.len() as u64;
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut proof = Vec::new();
    path(index as usize, leaves, &mut proof);
    Ok(proof)
}

fn path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if m < k {
        path(m, &leaves[..k], out);
        out.push(root(&leaves[k..]));
    } else {
        path(m - k, &leaves[k..], out);
        out.push(root(&leaves[..k]));
    }
}

/// PROOF(m, D\[n\]): proves that the tree of the first `old_size` leaves is a prefix of the tree over
/// all `leaves`. Empty for `old_size` 0 or equal to the full size.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>, ProofError> {
    let size = leaves.len() as u64;
    if old_size > size {
        return Err(ProofError::SizesReversed {
            old: old_size,
            new: size,
        });
    }
    let mut proof = Vec::new();
    if old_size > 0 && old_size < size {
        subproof(old_size as usize, leaves, true, &mut proof);
    }
    Ok(proof)
}

fn subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            out.push(root(leaves));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        subproof(m, &leaves[..k], complete, out);
        out.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, out);
        out.push(root(&leaves[..k]));
    }
}

/// Recomputes the root from a leaf hash and its audit path (RFC 9162 §2.1.3.2).
pub fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf_hash: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = hash_children(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = hash_children(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    Ok(r)
}

/// Checks that `leaf_hash` is leaf `index` of the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf_hash: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if root_from_inclusion_proof(index, size, leaf_hash, proof)? == *root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Checks that the tree of `size1` leaves with root `root1` is a prefix of the tree of `size2`
/// leaves with root `root2` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::SizesReversed {
            old: size1,
            new: size2,
        });
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if size1 == 0 {
        // The empty tree is a prefix of every tree; its proof is empty.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::WrongLength)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if size1.is_power_of_two() {
        path.push(*root1);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (size1 - 1, size2 - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = hash_children(c, &fr);
            sr = hash_children(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = hash_children(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr == *root1 && sr == *root2 {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// The right edge of a tree: the roots of its maximal perfect subtrees, largest (leftmost)
/// first. Enough to append a leaf and to compute the root without the leaves themselves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompactRange {
    size: u64,
    nodes: Vec<Hash>,
}

impl CompactRange {
    /// The range of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds one leaf hash, merging the perfect subtrees it completes.
    pub fn append(&mut self, leaf_hash: Hash) {
        self.nodes.push(leaf_hash);
        let mut s = self.size;
        while s & 1 == 1 {
            let right = self.nodes.pop().expect("a perfect subtree per set bit");
            let left = self.nodes.pop().expect("a perfect subtree per set bit");
            self.nodes.push(hash_children(&left, &right));
            s >>= 1;
        }
        self.size += 1;
    }

    /// MTH of all leaves appended so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.nodes.iter().rev();
        match iter.next() {
            None => empty_root(),
            Some(last) => iter.fold(*last, |acc, left| hash_children(left, &acc)),
        }
    }

    /// Serialized form stored next to the log: the concatenated node hashes (the size is stored
    /// separately and fixes how many there must be).
    pub fn node_bytes(&self) -> Vec<u8> {
        self.nodes.concat()
    }

    /// Rebuilds a range from its size and [`CompactRange::node_bytes`]; `None` if they disagree.
    pub fn from_parts(size: u64, node_bytes: &[u8]) -> Option<Self> {
        if node_bytes.len() != size.count_ones() as usize * 32 {
            return None;
        }
        let nodes = node_bytes
            .chunks_exact(32)
            .map(|c| c.try_into().expect("chunk of 32"))
            .collect();
        Some(Self { size, nodes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Hash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// The 8 reference leaves and roots of transparency-dev/merkle `proof/verify_test.go`
    /// (also used by Certificate Transparency's merkle tree tests).
    fn reference_leaves() -> Vec<Vec<u8>> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|s| hex::decode(s).unwrap())
        .collect()
    }

    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn reference_hashes() -> Vec<Hash> {
        reference_leaves().iter().map(|l| hash_leaf(l)).collect()
    }

    #[test]
    fn empty_tree_root_is_sha256_of_nothing() {
        assert_eq!(
            hex::encode(root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(CompactRange::new().root(), empty_root());
    }

    #[test]
    fn reference_roots_for_every_prefix() {
        let leaves = reference_hashes();
        let mut range = CompactRange::new();
        for (i, leaf) in leaves.iter().enumerate() {
            range.append(*leaf);
            assert_eq!(
                hex::encode(root(&leaves[..=i])),
                ROOTS[i],
                "MTH size {}",
                i + 1
            );
            assert_eq!(
                hex::encode(range.root()),
                ROOTS[i],
                "compact size {}",
                i + 1
            );
        }
    }

    #[test]
    fn reference_inclusion_proofs() {
        let leaves = reference_hashes();
        // (1-based leaf, tree size, expected path) from the reference test data.
        let vectors: [(u64, usize, Vec<&str>); 5] = [
            (1, 1, vec![]),
            (
                1,
                8,
                vec![
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                vec![
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                3,
                3,
                vec!["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                2,
                5,
                vec![
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (leaf, size, expected) in vectors {
            let expected: Vec<Hash> = expected.iter().map(|s| h(s)).collect();
            let proof = inclusion_proof(&leaves[..size], leaf - 1).unwrap();
            assert_eq!(proof, expected, "PATH({leaf}, {size})");
            let root = h(ROOTS[size - 1]);
            verify_inclusion(
                leaf - 1,
                size as u64,
                &leaves[leaf as usize - 1],
                &proof,
                &root,
            )
            .unwrap();
        }
    }

    #[test]
    fn reference_consistency_proofs() {
        let leaves = reference_hashes();
        let vectors: [(u64, usize, Vec<&str>); 5] = [
            (1, 1, vec![]),
            (
                1,
                8,
                vec![
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                vec![
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                vec![
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
            (
                6,
                7,
                vec![
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for (old, new, expected) in vectors {
            let expected: Vec<Hash> = expected.iter().map(|s| h(s)).collect();
            let proof = consistency_proof(&leaves[..new], old).unwrap();
            assert_eq!(proof, expected, "PROOF({old}, {new})");
            verify_consistency(
                old,
                new as u64,
                &proof,
                &h(ROOTS[old as usize - 1]),
                &h(ROOTS[new - 1]),
            )
            .unwrap();
        }
    }

    fn synthetic_leaves(n: usize) -> Vec<Hash> {
        (0..n as u32).map(|i| hash_leaf(&i.to_be_bytes())).collect()
    }

    fn flipped(proof: &[Hash], i: usize) -> Vec<Hash> {
        let mut p = proof.to_vec();
        p[i][0] ^= 0x10;
        p
    }

    #[test]
    fn inclusion_proofs_for_all_sizes_up_to_64_verify_and_reject_tampering() {
        let all = synthetic_leaves(64);
        for size in 1..=64usize {
            let leaves = &all[..size];
            let r = root(leaves);
            for index in 0..size as u64 {
                let proof = inclusion_proof(leaves, index).unwrap();
                let leaf = &leaves[index as usize];
                verify_inclusion(index, size as u64, leaf, &proof, &r).unwrap();
                // Wrong leaf, wrong index, wrong size, wrong root, altered/short/long proof.
                assert!(verify_inclusion(index, size as u64, &empty_root(), &proof, &r).is_err());
                if size > 1 {
                    let other = (index + 1) % size as u64;
                    assert!(verify_inclusion(other, size as u64, leaf, &proof, &r).is_err());
                    assert!(
                        verify_inclusion(index, size as u64, leaf, &proof, &empty_root()).is_err()
                    );
                    assert!(verify_inclusion(index, size as u64 * 2, leaf, &proof, &r).is_err());
                    for i in 0..proof.len() {
                        assert!(
                            verify_inclusion(index, size as u64, leaf, &flipped(&proof, i), &r)
                                .is_err()
                        );
                    }
                    assert!(
                        verify_inclusion(index, size as u64, leaf, &proof[..proof.len() - 1], &r)
                            .is_err()
                    );
                }
                let mut longer = proof.clone();
                longer.push(r);
                assert!(verify_inclusion(index, size as u64, leaf, &longer, &r).is_err());
                assert!(verify_inclusion(size as u64, size as u64, leaf, &proof, &r).is_err());
            }
        }
    }

    #[test]
    fn consistency_proofs_for_all_sizes_up_to_64_verify_and_reject_tampering() {
        let all = synthetic_leaves(64);
        let roots: Vec<Hash> = (0..=64).map(|n| root(&all[..n])).collect();
        for new in 1..=64usize {
            for old in 1..=new {
                let proof = consistency_proof(&all[..new], old as u64).unwrap();
                let (r1, r2) = (&roots[old], &roots[new]);
                verify_consistency(old as u64, new as u64, &proof, r1, r2).unwrap();
                if old == new {
                    assert!(proof.is_empty());
                    continue;
                }
                assert!(verify_consistency(old as u64, new as u64, &proof, r2, r1).is_err());
                assert!(
                    verify_consistency(old as u64, new as u64, &proof, &empty_root(), r2).is_err()
                );
                assert!(
                    verify_consistency(old as u64, new as u64, &proof, r1, &empty_root()).is_err()
                );
                assert!(verify_consistency(old as u64, new as u64, &[], r1, r2).is_err());
                for i in 0..proof.len() {
                    assert!(
                        verify_consistency(old as u64, new as u64, &flipped(&proof, i), r1, r2)
                            .is_err()
                    );
                }
                assert!(
                    verify_consistency(old as u64, new as u64, &proof[..proof.len() - 1], r1, r2)
                        .is_err()
                );
                let mut longer = proof.clone();
                longer.push(*r1);
                assert!(verify_consistency(old as u64, new as u64, &longer, r1, r2).is_err());
                if old > 1 {
                    assert!(
                        verify_consistency(old as u64 - 1, new as u64, &proof, r1, r2).is_err()
                    );
                }
                assert!(verify_consistency(new as u64, old as u64, &proof, r1, r2).is_err());
            }
        }
    }

    #[test]
    fn compact_range_survives_serialization() {
        let leaves = synthetic_leaves(37);
        let mut range = CompactRange::new();
        for (i, leaf) in leaves.iter().enumerate() {
            range.append(*leaf);
            let restored = CompactRange::from_parts(range.size(), &range.node_bytes()).unwrap();
            assert_eq!(restored, range);
            assert_eq!(restored.root(), root(&leaves[..=i]));
        }
        assert!(CompactRange::from_parts(5, &[0u8; 32]).is_none());
    }
}
