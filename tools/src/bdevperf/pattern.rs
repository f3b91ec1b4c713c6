//! Verify patterns: every 8-byte word of a block carries the block number
//! and a per-write sequence number, so a misplaced or stale block shows.

/// Fills `buf` (blocks of `block_size` starting at `first_block`) with the pattern for `seq`.
pub fn fill(buf: &mut [u8], first_block: u64, block_size: usize, seq: u64) {
    for (i, blk) in buf.chunks_exact_mut(block_size).enumerate() {
        let tag = ((first_block + i as u64) << 24) ^ seq;
        for (j, w) in blk.chunks_exact_mut(8).enumerate() {
            w.copy_from_slice(&(tag.wrapping_add(j as u64)).to_le_bytes());
        }
    }
}

/// First differing byte offset of `a` and `b`, if any.
pub fn first_mismatch(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or(Some(a.len().min(b.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_of_different_blocks_or_writes_differ() {
        let mut a = vec![0u8; 1024];
        let mut b = vec![0u8; 1024];
        fill(&mut a, 10, 512, 1);
        fill(&mut b, 10, 512, 1);
        assert_eq!(first_mismatch(&a, &b), None);
        fill(&mut b, 11, 512, 1);
        assert_eq!(
            first_mismatch(&a, &b),
            Some(3),
            "the block number sits in byte 3 of each word"
        );
        fill(&mut b, 10, 512, 2);
        assert!(first_mismatch(&a, &b).is_some());
    }
}
