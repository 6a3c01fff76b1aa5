//! Verified streaming: a file's BLAKE3 subtree hashes ("chaining values") for each group of
//! [`GROUP_LEN`] bytes — its outboard. Whoever has only the content id (the root hash) can
//! check an outboard against it, then each group against the outboard as the group arrives,
//! so a member fetching a song from a friend never keeps a byte it has not verified.
//!
//! BLAKE3 is a tree over 1 KiB chunks in which a left subtree always holds a power of two
//! of chunks; groups of 256 chunks are such subtrees, so the root is rebuilt from the group
//! hashes with the same rule (the left side takes the largest power of two of groups).

use blake3::hazmat::{
    ChainingValue, HasherExt as _, Mode, merge_subtrees_non_root, merge_subtrees_root,
};

/// Bytes per verified group: 256 BLAKE3 chunks (a power of two of chunks, so a group is
/// one subtree). The blob protocol's unit.
pub const GROUP_LEN: u64 = whatnext_protocol::blob::GROUP_LEN;
const _: () = assert!(GROUP_LEN.is_power_of_two() && GROUP_LEN >= 1024);

/// How many groups a file of `size` bytes has (one, however small).
pub fn group_count(size: u64) -> u64 {
    size.div_ceil(GROUP_LEN).max(1)
}

/// The bytes of group `index` of a file of `size`: (offset, length).
pub fn group_range(size: u64, index: u64) -> (u64, u64) {
    let offset = index * GROUP_LEN;
    (offset, GROUP_LEN.min(size.saturating_sub(offset)))
}

/// The chaining value of group `index` holding `bytes` (in a file of more than one group).
pub fn group_cv(index: u64, bytes: &[u8]) -> ChainingValue {
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(index * GROUP_LEN);
    hasher.update(bytes);
    hasher.finalize_non_root()
}

/// The outboard of what `reader` yields (`size` bytes): one chaining value per group, or
/// none for a file of one group (its root hash says everything).
pub fn outboard(mut reader: impl std::io::Read, size: u64) -> std::io::Result<Vec<ChainingValue>> {
    let groups = group_count(size);
    if groups == 1 {
        return Ok(Vec::new());
    }
    let mut cvs = Vec::with_capacity(groups as usize);
    let mut buffer = vec![0u8; GROUP_LEN as usize];
    for index in 0..groups {
        let (_, len) = group_range(size, index);
        let group = &mut buffer[..len as usize];
        reader.read_exact(group)?;
        cvs.push(group_cv(index, group));
    }
    Ok(cvs)
}

/// The root hash `cvs` (the groups' chaining values, in order) make.
fn root_of(cvs: &[ChainingValue]) -> Option<blake3::Hash> {
    fn subtree(cvs: &[ChainingValue]) -> ChainingValue {
        if cvs.len() == 1 {
            return cvs[0];
        }
        let split = left_len(cvs.len());
        merge_subtrees_non_root(&subtree(&cvs[..split]), &subtree(&cvs[split..]), Mode::Hash)
    }
    if cvs.len() < 2 {
        return None;
    }
    let split = left_len(cvs.len());
    Some(merge_subtrees_root(
        &subtree(&cvs[..split]),
        &subtree(&cvs[split..]),
        Mode::Hash,
    ))
}

/// The groups in the left subtree of `n` (n ≥ 2): the largest power of two below `n`.
fn left_len(n: usize) -> usize {
    let mut p = 1;
    while p * 2 < n {
        p *= 2;
    }
    p
}

/// Whether `cvs` is the outboard of a file of `size` bytes whose BLAKE3 is `root`.
pub fn verify_outboard(root: &blake3::Hash, size: u64, cvs: &[ChainingValue]) -> bool {
    let groups = group_count(size);
    if groups == 1 {
        return cvs.is_empty();
    }
    cvs.len() as u64 == groups && root_of(cvs).is_some_and(|r| r == *root)
}

/// Whether `bytes` is group `index` of the file of `size` bytes with BLAKE3 `root` and
/// outboard `cvs` (already verified).
pub fn verify_group(
    root: &blake3::Hash,
    size: u64,
    cvs: &[ChainingValue],
    index: u64,
    bytes: &[u8],
) -> bool {
    let (_, len) = group_range(size, index);
    if bytes.len() as u64 != len || index >= group_count(size) {
        return false;
    }
    if group_count(size) == 1 {
        return blake3::hash(bytes) == *root;
    }
    cvs.get(index as usize)
        .is_some_and(|cv| group_cv(index, bytes) == *cv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(len: u64) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn the_outboard_rebuilds_the_root_and_catches_any_altered_group() {
        for size in [
            0,
            1,
            1024,
            GROUP_LEN - 1,
            GROUP_LEN,
            GROUP_LEN + 1,
            2 * GROUP_LEN,
            3 * GROUP_LEN + 7,
            5 * GROUP_LEN,
            8 * GROUP_LEN + 1024,
        ] {
            let data = bytes(size);
            let root = blake3::hash(&data);
            let cvs = outboard(&data[..], size).expect("outboard");
            assert!(verify_outboard(&root, size, &cvs), "size {size}");
            for index in 0..group_count(size) {
                let (offset, len) = group_range(size, index);
                let group = &data[offset as usize..(offset + len) as usize];
                assert!(
                    verify_group(&root, size, &cvs, index, group),
                    "size {size} group {index}"
                );
                if !group.is_empty() {
                    let mut altered = group.to_vec();
                    altered[0] ^= 1;
                    assert!(!verify_group(&root, size, &cvs, index, &altered));
                }
            }
            if cvs.len() >= 2 {
                let mut swapped = cvs.clone();
                swapped.swap(0, 1);
                assert!(!verify_outboard(&root, size, &swapped), "size {size}");
                // A lie about the size cannot pass: the last group then has other bytes.
                let last = group_count(size) - 1;
                let (offset, _) = group_range(size, last);
                let mut longer = data[offset as usize..].to_vec();
                longer.push(0);
                assert!(!verify_group(&root, size + 1, &cvs, last, &longer));
            }
            // The root is the content id the library gives the same bytes in a file.
            let file = tempfile::NamedTempFile::new().expect("file");
            std::fs::write(file.path(), &data).expect("write");
            let (id, len) = crate::hash_file(file.path()).expect("hash");
            assert_eq!((id, len), (root.to_hex().to_string(), size));
        }
    }
}
