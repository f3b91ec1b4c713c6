//! Walking an SGL data pointer (SGL Entry 1 in the command, then Segment /
//! Last Segment descriptor lists in host memory) into IOVA segments.
//!
//! Descriptor (16 bytes): Address (8), Length (4), reserved (3), SGL
//! Identifier (1: type in bits 7:4, sub type in bits 3:0). Types handled:
//! Data Block (0h), Bit Bucket (1h, reads only: data discarded — here
//! refused), Segment (2h), Last Segment (3h).

use super::dma;
use super::{Sqe, Status};

const DATA_BLOCK: u8 = 0x0;
const SEGMENT: u8 = 0x2;
const LAST_SEGMENT: u8 = 0x3;

#[derive(Clone, Copy)]
struct Desc {
    addr: u64,
    len: u32,
    kind: u8,
    subtype: u8,
}

impl Desc {
    fn from_bytes(b: &[u8]) -> Self {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[0..8]);
        Self {
            addr: u64::from_le_bytes(a),
            len: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            kind: b[15] >> 4,
            subtype: b[15] & 0xf,
        }
    }
}

/// Walks the SGL of `sqe` for a `len`-byte transfer, calling `seg(iova, n)` per data block.
pub fn walk(
    sqe: &Sqe,
    len: usize,
    seg: &mut impl FnMut(u64, usize) -> Result<(), Status>,
) -> Result<(), Status> {
    let mut raw = [0u8; 16];
    raw[0..8].copy_from_slice(&sqe.prp1.to_le_bytes());
    raw[8..16].copy_from_slice(&sqe.prp2.to_le_bytes());
    let mut desc = Desc::from_bytes(&raw);
    let mut rem = len;
    let mut next = [0u8; 16];
    // Descriptors left in the current segment list (after `desc`), and where they are.
    let mut list_addr = 0u64;
    let mut list_left = 0usize;
    let mut in_last = false;
    loop {
        if desc.subtype != 0 {
            return Err(Status::SGL_DESCRIPTOR_TYPE_INVALID);
        }
        match desc.kind {
            DATA_BLOCK => {
                let n = (desc.len as usize).min(rem);
                if n < desc.len as usize {
                    return Err(Status::DATA_SGL_LENGTH_INVALID);
                }
                if n > 0 {
                    seg(desc.addr, n)?;
                }
                rem -= n;
            }
            SEGMENT | LAST_SEGMENT => {
                if in_last || list_left != 0 || desc.len == 0 || desc.len % 16 != 0 {
                    // A segment descriptor must be the last one of its list,
                    // and nothing may follow a Last Segment.
                    return Err(Status::INVALID_SGL_SEGMENT_DESCRIPTOR);
                }
                in_last = desc.kind == LAST_SEGMENT;
                list_addr = desc.addr;
                list_left = desc.len as usize / 16;
            }
            _ => return Err(Status::SGL_DESCRIPTOR_TYPE_INVALID),
        }
        if list_left == 0 {
            break;
        }
        // The next descriptor, read from host memory.
        dma::read(list_addr, &mut next).map_err(|_| Status::DATA_TRANSFER_ERROR)?;
        desc = Desc::from_bytes(&next);
        list_addr += 16;
        list_left -= 1;
    }
    if rem != 0 {
        return Err(Status::DATA_SGL_LENGTH_INVALID);
    }
    Ok(())
}
