//! The three bitmap regions (struct spdk_bs_md_mask): a type byte, a u32
//! length in bits, then the bits, least significant bit first, spanning as
//! many pages as the super block gives the region. Mask pages carry no crc;
//! they are only trusted after a clean unload.

use super::{get_u32, put_u32, FormatError, PAGE_SIZE};
use crate::blob::bitmap::BitArray;

/// Which bitmap a mask region holds (the type byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskKind {
    /// SPDK_MD_MASK_TYPE_USED_PAGES: one bit per metadata page.
    UsedPages = 0,
    /// SPDK_MD_MASK_TYPE_USED_CLUSTERS: one bit per cluster.
    UsedClusters = 1,
    /// SPDK_MD_MASK_TYPE_USED_BLOBIDS: one bit per metadata page that roots a blob.
    UsedBlobIds = 2,
}

/// A decoded mask region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskPage {
    /// The type byte.
    pub kind: MaskKind,
    /// The bits.
    pub bits: BitArray,
}

const HEADER: usize = 5;

impl MaskPage {
    /// Encodes into a region of `pages` pages.
    pub fn encode(&self, pages: u32) -> Vec<u8> {
        let mut buf = vec![0u8; pages as usize * PAGE_SIZE];
        buf[0] = self.kind as u8;
        put_u32(&mut buf, 1, self.bits.len());
        let bytes = self.bits.to_bytes();
        let n = bytes.len().min(buf.len() - HEADER);
        buf[HEADER..HEADER + n].copy_from_slice(&bytes[..n]);
        buf
    }

    /// Decodes a region; the type byte must be `kind` and the length at most
    /// `max_bits` (bits past the length are ignored, as SPDK does).
    pub fn decode(buf: &[u8], kind: MaskKind, max_bits: u32) -> Result<MaskPage, FormatError> {
        const WHAT: &str = "mask page";
        if buf.len() < HEADER {
            return Err(FormatError::Truncated {
                what: WHAT,
                len: buf.len(),
                need: HEADER,
            });
        }
        if buf[0] != kind as u8 {
            return Err(FormatError::Invalid {
                what: WHAT,
                reason: format!(
                    "type byte is {}, expected {} ({kind:?})",
                    buf[0], kind as u8
                ),
            });
        }
        let len = get_u32(buf, 1);
        let room = ((buf.len() - HEADER) as u64 * 8).min(u32::MAX as u64) as u32;
        if len > max_bits || len > room {
            return Err(FormatError::Invalid {
                what: WHAT,
                reason: format!(
                    "{kind:?} mask claims {len} bits; at most {} fit this store",
                    max_bits.min(room)
                ),
            });
        }
        let nbytes = (len as usize).div_ceil(8);
        Ok(MaskPage {
            kind,
            bits: BitArray::from_bytes(&buf[HEADER..HEADER + nbytes], len),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_round_trips_with_spdk_header() {
        let mut bits = BitArray::new(16);
        bits.set(0);
        bits.set(3);
        let m = MaskPage {
            kind: MaskKind::UsedClusters,
            bits,
        };
        let buf = m.encode(1);
        assert_eq!(&buf[..7], &[1, 16, 0, 0, 0, 0b1001, 0]);
        assert_eq!(
            MaskPage::decode(&buf, MaskKind::UsedClusters, 16).unwrap(),
            m
        );
    }

    #[test]
    fn mask_with_wrong_type_or_oversized_length_is_rejected() {
        let m = MaskPage {
            kind: MaskKind::UsedPages,
            bits: BitArray::new(16),
        };
        let buf = m.encode(1);
        assert!(MaskPage::decode(&buf, MaskKind::UsedBlobIds, 16).is_err());
        assert!(MaskPage::decode(&buf, MaskKind::UsedPages, 8).is_err());
    }
}
