//! Walking a PRP data pointer (PRP Entry 1, PRP Entry 2, PRP lists) into the
//! IOVA segments of a transfer, per the NVMe Base specification's rules:
//!
//! - PRP1 may start at any dword-aligned offset in a memory page; it covers
//!   the rest of that page.
//! - If the rest fits in one page, PRP2 is that page (offset 0).
//! - Otherwise PRP2 points (qword-aligned, possibly mid-page) into a PRP list;
//!   each entry is a page (offset 0); when more entries are needed than fit
//!   in the rest of a list page, that page's last entry points to the next
//!   list page.

use super::dma::DmaFault;
use super::Status;

/// Walks the PRPs of a `len`-byte transfer with memory page size `page`,
/// calling `seg(iova, len)` for each segment in order. `read_entry` reads one
/// 8-byte PRP list entry from host memory.
pub fn walk(
    prp1: u64,
    prp2: u64,
    len: usize,
    page: usize,
    mut read_entry: impl FnMut(u64) -> Result<u64, DmaFault>,
    mut seg: impl FnMut(u64, usize) -> Result<(), Status>,
) -> Result<(), Status> {
    if len == 0 {
        return Ok(());
    }
    let page64 = page as u64;
    if prp1 & 0x3 != 0 {
        return Err(Status::PRP_OFFSET_INVALID);
    }
    let first = len.min(page - (prp1 % page64) as usize);
    seg(prp1, first)?;
    let mut rem = len - first;
    if rem == 0 {
        return Ok(());
    }
    if rem <= page {
        if prp2 % page64 != 0 {
            return Err(Status::PRP_OFFSET_INVALID);
        }
        return seg(prp2, rem);
    }
    if prp2 & 0x7 != 0 {
        return Err(Status::PRP_OFFSET_INVALID);
    }
    let mut cursor = prp2;
    let mut slots = (page64 - cursor % page64) / 8;
    while rem > 0 {
        let pages_left = rem.div_ceil(page);
        let entry = read_entry(cursor).map_err(|_| Status::DATA_TRANSFER_ERROR)?;
        if slots == 1 && pages_left > 1 {
            // Last slot of a list page: a pointer to the next list page.
            if entry & 0x7 != 0 {
                return Err(Status::PRP_OFFSET_INVALID);
            }
            cursor = entry;
            slots = (page64 - cursor % page64) / 8;
            continue;
        }
        if entry % page64 != 0 {
            return Err(Status::PRP_OFFSET_INVALID);
        }
        let n = rem.min(page);
        seg(entry, n)?;
        rem -= n;
        cursor += 8;
        slots -= 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const P: usize = 4096;

    fn run(
        prp1: u64,
        prp2: u64,
        len: usize,
        mem: &HashMap<u64, u64>,
    ) -> Result<Vec<(u64, usize)>, Status> {
        let mut out = Vec::new();
        walk(
            prp1,
            prp2,
            len,
            P,
            |a| mem.get(&a).copied().ok_or(DmaFault { iova: a, len: 8 }),
            |a, n| {
                out.push((a, n));
                Ok(())
            },
        )?;
        Ok(out)
    }

    #[test]
    fn unaligned_prp1_then_prp2_as_second_page() {
        let segs = run(0x10_0200, 0x20_0000, 4096, &HashMap::new()).unwrap();
        assert_eq!(segs, vec![(0x10_0200, 0xe00), (0x20_0000, 0x200)]);
    }

    #[test]
    fn prp_list_starting_mid_page_chains_to_next_list_page() {
        // The list starts at the last slot but one of its page: one data
        // entry, then a pointer to the next list page.
        let list = 0x50_0000 + 4096 - 16;
        let mut mem = HashMap::new();
        mem.insert(list, 0x60_0000);
        mem.insert(list + 8, 0x70_0000);
        mem.insert(0x70_0000, 0x61_0000);
        mem.insert(0x70_0008, 0x62_0000);
        let segs = run(0x40_0000, list, 4 * 4096 - 100, &mem).unwrap();
        assert_eq!(
            segs,
            vec![
                (0x40_0000, 4096),
                (0x60_0000, 4096),
                (0x61_0000, 4096),
                (0x62_0000, 4096 - 100)
            ]
        );
    }

    #[test]
    fn list_entry_with_offset_is_prp_offset_invalid() {
        let mut mem = HashMap::new();
        mem.insert(0x50_0000, 0x60_0010);
        mem.insert(0x50_0008, 0x61_0000);
        assert_eq!(
            run(0x40_0000, 0x50_0000, 3 * 4096, &mem),
            Err(Status::PRP_OFFSET_INVALID)
        );
        assert_eq!(run(0x40_0002, 0, 8, &mem), Err(Status::PRP_OFFSET_INVALID));
    }

    #[test]
    fn unreadable_list_is_data_transfer_error() {
        assert_eq!(
            run(0x40_0000, 0x50_0000, 3 * 4096, &HashMap::new()),
            Err(Status::DATA_TRANSFER_ERROR)
        );
    }
}
