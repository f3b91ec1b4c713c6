//! The super block: page 0 of a blobstore (struct spdk_bs_super_block).
//!
//! | offset | field | | offset | field |
//! |---|---|---|---|---|
//! | 0 | signature "SPDKBLOB" | | 48 | md_start |
//! | 8 | version (3) | | 52 | md_len |
//! | 12 | length (4096) | | 56 | bstype (16 bytes) |
//! | 16 | clean | | 72 | used_blobid_mask_start |
//! | 20 | super_blob (u64) | | 76 | used_blobid_mask_len |
//! | 28 | cluster_size | | 80 | size (u64, bytes) |
//! | 32 | used_page_mask_start | | 88 | io_unit_size |
//! | 36 | used_page_mask_len | | 92 | md_page_size |
//! | 40 | used_cluster_mask_start | | 96..4092 | reserved (zero) |
//! | 44 | used_cluster_mask_len | | 4092 | crc32c of bytes 0..4092 |
//!
//! Region starts and lengths count 4 KiB pages from the start of the device.

use super::{get_u32, get_u64, page_array, page_crc, put_u32, put_u64, FormatError, PAGE_SIZE};

/// The signature at byte 0 of every blobstore.
pub const SIGNATURE: &[u8; 8] = b"SPDKBLOB";
/// The on-disk format version this crate reads and writes.
pub const VERSION: u32 = 3;
/// `super_blob` when no super blob is set (SPDK_BLOBID_INVALID).
pub const BLOBID_INVALID: u64 = u64::MAX;

/// The decoded super block. Field names are SPDK's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperBlock {
    /// Format version (3).
    pub version: u32,
    /// Bytes of the super block structure (4096).
    pub length: u32,
    /// 1 after a clean unload; 0 while loaded or after a crash.
    pub clean: u32,
    /// The super blob id, or [`BLOBID_INVALID`].
    pub super_blob: u64,
    /// Cluster size in bytes.
    pub cluster_size: u32,
    /// First page of the used-md-page mask.
    pub used_page_mask_start: u32,
    /// Pages of the used-md-page mask.
    pub used_page_mask_len: u32,
    /// First page of the used-cluster mask.
    pub used_cluster_mask_start: u32,
    /// Pages of the used-cluster mask.
    pub used_cluster_mask_len: u32,
    /// First page of the metadata region.
    pub md_start: u32,
    /// Pages in the metadata region.
    pub md_len: u32,
    /// Blobstore type: 16 bytes chosen by the application (zero = none).
    pub bstype: [u8; 16],
    /// First page of the used-blob-id mask.
    pub used_blobid_mask_start: u32,
    /// Pages of the used-blob-id mask.
    pub used_blobid_mask_len: u32,
    /// Size of the blobstore in bytes.
    pub size: u64,
    /// The unit of blob I/O in bytes (the device block size at init).
    pub io_unit_size: u32,
    /// Metadata page size in bytes (4096; 0 in stores from older SPDK).
    pub md_page_size: u32,
}

impl SuperBlock {
    /// Whether the store was unloaded cleanly.
    pub fn is_clean(&self) -> bool {
        self.clean == 1
    }

    /// Encodes to one page, crc included.
    pub fn encode(&self) -> [u8; PAGE_SIZE] {
        let mut p = [0u8; PAGE_SIZE];
        p[..8].copy_from_slice(SIGNATURE);
        put_u32(&mut p, 8, self.version);
        put_u32(&mut p, 12, self.length);
        put_u32(&mut p, 16, self.clean);
        put_u64(&mut p, 20, self.super_blob);
        put_u32(&mut p, 28, self.cluster_size);
        put_u32(&mut p, 32, self.used_page_mask_start);
        put_u32(&mut p, 36, self.used_page_mask_len);
        put_u32(&mut p, 40, self.used_cluster_mask_start);
        put_u32(&mut p, 44, self.used_cluster_mask_len);
        put_u32(&mut p, 48, self.md_start);
        put_u32(&mut p, 52, self.md_len);
        p[56..72].copy_from_slice(&self.bstype);
        put_u32(&mut p, 72, self.used_blobid_mask_start);
        put_u32(&mut p, 76, self.used_blobid_mask_len);
        put_u64(&mut p, 80, self.size);
        put_u32(&mut p, 88, self.io_unit_size);
        put_u32(&mut p, 92, self.md_page_size);
        let crc = page_crc(&p);
        put_u32(&mut p, PAGE_SIZE - 4, crc);
        p
    }

    /// Decodes page 0: checks the signature, version, crc and length.
    /// Layout checks against a device are [`SuperBlock::validate_layout`].
    pub fn decode(page: &[u8]) -> Result<SuperBlock, FormatError> {
        const WHAT: &str = "super block";
        let p = page_array(page, WHAT)?;
        if &p[..8] != SIGNATURE {
            return Err(FormatError::Invalid {
                what: WHAT,
                reason: format!(
                    "signature is {:?}, not \"SPDKBLOB\": the device does not hold a blobstore (run `init` to make one)",
                    String::from_utf8_lossy(&p[..8])
                ),
            });
        }
        let version = get_u32(p, 8);
        if version != VERSION {
            return Err(FormatError::Invalid {
                what: WHAT,
                reason: format!("version {version} is not supported (only version {VERSION})"),
            });
        }
        let stored = get_u32(p, PAGE_SIZE - 4);
        let computed = page_crc(p);
        if stored != computed {
            return Err(FormatError::Crc {
                what: WHAT,
                stored,
                computed,
            });
        }
        let mut bstype = [0u8; 16];
        bstype.copy_from_slice(&p[56..72]);
        let sb = SuperBlock {
            version,
            length: get_u32(p, 12),
            clean: get_u32(p, 16),
            super_blob: get_u64(p, 20),
            cluster_size: get_u32(p, 28),
            used_page_mask_start: get_u32(p, 32),
            used_page_mask_len: get_u32(p, 36),
            used_cluster_mask_start: get_u32(p, 40),
            used_cluster_mask_len: get_u32(p, 44),
            md_start: get_u32(p, 48),
            md_len: get_u32(p, 52),
            bstype,
            used_blobid_mask_start: get_u32(p, 72),
            used_blobid_mask_len: get_u32(p, 76),
            size: get_u64(p, 80),
            io_unit_size: get_u32(p, 88),
            md_page_size: get_u32(p, 92),
        };
        if sb.length as usize != PAGE_SIZE {
            return Err(invalid(format!("length {} is not {PAGE_SIZE}", sb.length)));
        }
        Ok(sb)
    }

    /// Checks that every region lies inside a device of `dev_bytes` bytes
    /// with blocks of `block_len`, and that sizes are coherent.
    pub fn validate_layout(&self, dev_bytes: u64, block_len: u32) -> Result<(), FormatError> {
        let page = PAGE_SIZE as u64;
        if self.md_page_size != 0 && self.md_page_size as usize != PAGE_SIZE {
            return Err(invalid(format!(
                "md_page_size {} is not supported (only 4096)",
                self.md_page_size
            )));
        }
        let cs = self.cluster_size as u64;
        if cs < page || cs % page != 0 {
            return Err(invalid(format!(
                "cluster_size {cs} is not a non-zero multiple of 4096"
            )));
        }
        let io = self.io_unit_size as u64;
        if io != 0 && (io > page || page % io != 0 || io < block_len as u64) {
            return Err(invalid(format!(
                "io_unit_size {io} does not divide 4096 or is smaller than the device block size {block_len}"
            )));
        }
        if self.size > dev_bytes {
            return Err(invalid(format!(
                "blobstore size {} is larger than the device ({dev_bytes} bytes): the device is truncated",
                self.size
            )));
        }
        let size = if self.size == 0 { dev_bytes } else { self.size };
        let pages = size / page;
        let regions = [
            (
                "used_page_mask",
                self.used_page_mask_start,
                self.used_page_mask_len,
            ),
            (
                "used_cluster_mask",
                self.used_cluster_mask_start,
                self.used_cluster_mask_len,
            ),
            (
                "used_blobid_mask",
                self.used_blobid_mask_start,
                self.used_blobid_mask_len,
            ),
            ("md", self.md_start, self.md_len),
        ];
        for (name, start, len) in regions {
            if start == 0 || len == 0 || start as u64 + len as u64 > pages {
                return Err(invalid(format!(
                    "{name} region ({name}_start {start}, {name}_len {len}) is empty, overlaps the super block or lies outside the {pages}-page store"
                )));
            }
        }
        // Everything before the cluster area: its clusters are never handed
        // to a blob, so a mask or md page beyond it would share a cluster
        // with blob data.
        let md_end = self.md_start as u64 + self.md_len as u64;
        for (name, start, len) in regions {
            let end = start as u64 + len as u64;
            if end > md_end {
                return Err(invalid(format!(
                    "{name} region ({name}_start {start}, {name}_len {len}) ends at page {end}, past the end of the metadata area (md_start + md_len = page {md_end}): it would overlap the data clusters"
                )));
            }
        }
        for (i, &(a, a_start, a_len)) in regions.iter().enumerate() {
            for &(b, b_start, b_len) in &regions[i + 1..] {
                let (a0, a1) = (a_start as u64, a_start as u64 + a_len as u64);
                let (b0, b1) = (b_start as u64, b_start as u64 + b_len as u64);
                if a0 < b1 && b0 < a1 {
                    return Err(invalid(format!(
                        "{a} region (pages {a0}..{a1}, from {a}_start {a_start} and {a}_len {a_len}) overlaps the {b} region (pages {b0}..{b1}, from {b}_start {b_start} and {b}_len {b_len}): the store is corrupt and writing its masks would destroy metadata"
                    )));
                }
            }
        }
        let need = |bits: u64| (5 + bits.div_ceil(8)).div_ceil(page);
        if (self.used_page_mask_len as u64) < need(self.md_len as u64)
            || (self.used_blobid_mask_len as u64) < need(self.md_len as u64)
        {
            return Err(invalid(
                "md page / blob id mask regions too small for md_len".into(),
            ));
        }
        if (self.used_cluster_mask_len as u64) < need(size / cs) {
            return Err(invalid(
                "used cluster mask region too small for the cluster count".into(),
            ));
        }
        Ok(())
    }
}

fn invalid(reason: String) -> FormatError {
    FormatError::Invalid {
        what: "super block",
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SuperBlock {
        SuperBlock {
            version: 3,
            length: 4096,
            clean: 1,
            super_blob: BLOBID_INVALID,
            cluster_size: 1 << 20,
            used_page_mask_start: 1,
            used_page_mask_len: 1,
            used_cluster_mask_start: 2,
            used_cluster_mask_len: 1,
            md_start: 4,
            md_len: 16,
            bstype: [0; 16],
            used_blobid_mask_start: 3,
            used_blobid_mask_len: 1,
            size: 16 << 20,
            io_unit_size: 4096,
            md_page_size: 4096,
        }
    }

    #[test]
    fn super_block_round_trips_and_matches_spdk_crc() {
        let sb = sample();
        let p = sb.encode();
        // empty-4k.img made by SPDK carries exactly this crc.
        assert_eq!(get_u32(&p, 4092), 0x948fbd62);
        assert_eq!(SuperBlock::decode(&p).unwrap(), sb);
        sb.validate_layout(16 << 20, 4096).unwrap();
    }

    #[test]
    fn a_super_block_with_overlapping_regions_is_refused_naming_the_field() {
        let mut sb = sample();
        sb.used_blobid_mask_len = 2;
        let e = sb.validate_layout(16 << 20, 4096).unwrap_err().to_string();
        assert!(
            e.contains("used_blobid_mask_len 2") && e.contains("overlaps the md region"),
            "{e}"
        );
        let mut sb = sample();
        sb.used_page_mask_len = 4000;
        let e = sb.validate_layout(16 << 20, 4096).unwrap_err().to_string();
        assert!(e.contains("used_page_mask_len 4000"), "{e}");
        let mut sb = sample();
        sb.used_page_mask_start = 3;
        let e = sb.validate_layout(16 << 20, 4096).unwrap_err().to_string();
        assert!(e.contains("used_page_mask_start 3"), "{e}");
    }

    #[test]
    fn a_mask_region_in_the_data_clusters_is_refused() {
        let mut sb = sample();
        sb.used_page_mask_start = 257;
        let e = sb.validate_layout(16 << 20, 4096).unwrap_err().to_string();
        assert!(
            e.contains("used_page_mask_start 257") && e.contains("data clusters"),
            "{e}"
        );
    }

    #[test]
    fn super_block_rejects_bad_signature_crc_and_truncated_device() {
        let mut p = sample().encode();
        p[100] ^= 1;
        assert!(matches!(
            SuperBlock::decode(&p),
            Err(FormatError::Crc { .. })
        ));
        p[0] = b'X';
        assert!(matches!(
            SuperBlock::decode(&p),
            Err(FormatError::Invalid { .. })
        ));
        assert!(sample().validate_layout(8 << 20, 4096).is_err());
        assert!(SuperBlock::decode(&[0u8; 100]).is_err());
    }
}
