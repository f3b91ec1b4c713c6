//! A metadata page (struct spdk_blob_md_page): `id` (u64, the blob it
//! belongs to), `sequence_num` (u32, position in the blob's chain),
//! `reserved0` (u32), 4072 bytes of descriptors, `next` (u32, the next md
//! page of the chain or [`INVALID_MD_PAGE`]) and `crc` (crc32c of bytes 0..4092).

use super::descriptor::Descriptor;
use super::{
    get_u32, get_u64, page_array, page_crc, put_u32, put_u64, FormatError, DESCRIPTORS_LEN,
    PAGE_SIZE,
};

/// `next` of the last page of a chain (SPDK_INVALID_MD_PAGE).
pub const INVALID_MD_PAGE: u32 = u32::MAX;
const DESC_OFF: usize = 16;

/// A decoded metadata page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdPage {
    /// The blob this page belongs to.
    pub id: u64,
    /// 0 for a blob's root page and for extent pages; n for the n-th chained page.
    pub sequence_num: u32,
    /// The descriptors, in page order.
    pub descriptors: Vec<Descriptor>,
    /// Next md page of the chain, or [`INVALID_MD_PAGE`].
    pub next: u32,
}

impl MdPage {
    /// Bytes of descriptors that fit in one page.
    pub const CAPACITY: usize = DESCRIPTORS_LEN;

    /// Encodes to one page, crc included. Descriptors that do not fit are an error.
    pub fn encode(&self) -> Result<[u8; PAGE_SIZE], FormatError> {
        let mut p = [0u8; PAGE_SIZE];
        put_u64(&mut p, 0, self.id);
        put_u32(&mut p, 8, self.sequence_num);
        let mut off = DESC_OFF;
        for d in &self.descriptors {
            let n = d.encoded_len();
            if off + n > DESC_OFF + DESCRIPTORS_LEN {
                return Err(FormatError::Invalid {
                    what: "md page",
                    reason: format!("descriptors need more than {DESCRIPTORS_LEN} bytes"),
                });
            }
            d.encode(&mut p[off..off + n]);
            off += n;
        }
        put_u32(&mut p, PAGE_SIZE - 8, self.next);
        let crc = page_crc(&p);
        put_u32(&mut p, PAGE_SIZE - 4, crc);
        Ok(p)
    }

    /// Decodes and validates a page: crc first, then every descriptor.
    pub fn decode(page: &[u8]) -> Result<MdPage, FormatError> {
        let p = page_array(page, "md page")?;
        let stored = get_u32(p, PAGE_SIZE - 4);
        let computed = page_crc(p);
        if stored != computed {
            return Err(FormatError::Crc {
                what: "md page",
                stored,
                computed,
            });
        }
        Ok(MdPage {
            id: get_u64(p, 0),
            sequence_num: get_u32(p, 8),
            descriptors: Descriptor::decode_region(&p[DESC_OFF..DESC_OFF + DESCRIPTORS_LEN])?,
            next: get_u32(p, PAGE_SIZE - 8),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md_page_round_trips_and_detects_a_flipped_bit() {
        let page = MdPage {
            id: 0x1_0000_0004,
            sequence_num: 0,
            descriptors: vec![
                Descriptor::Flags {
                    invalid_flags: 4,
                    data_ro_flags: 0,
                    md_ro_flags: 0,
                },
                Descriptor::Xattr {
                    name: "name".into(),
                    value: b"gamma\0".to_vec(),
                },
                Descriptor::ExtentTable {
                    num_clusters: 0,
                    runs: vec![],
                },
            ],
            next: INVALID_MD_PAGE,
        };
        let mut bytes = page.encode().unwrap();
        // Blob c's root page of blobs-4k.img carries exactly this crc.
        assert_eq!(get_u32(&bytes, 4092), 0x19b39890);
        assert_eq!(MdPage::decode(&bytes).unwrap(), page);
        bytes[2000] ^= 0x40;
        assert!(matches!(
            MdPage::decode(&bytes),
            Err(FormatError::Crc { .. })
        ));
    }
}
