//! Metadata descriptors: a packed header `{ u8 type; u32 length }` followed
//! by `length` bytes of body. A descriptor of type 0 (padding) and length 0
//! ends a page; unknown types are skipped, as SPDK does.

use super::{get_u16, get_u32, get_u64, put_u16, put_u32, put_u64, FormatError, DESCRIPTORS_LEN};

/// SPDK_MD_DESCRIPTOR_TYPE_PADDING.
pub const TYPE_PADDING: u8 = 0;
/// SPDK_MD_DESCRIPTOR_TYPE_EXTENT_RLE.
pub const TYPE_EXTENT_RLE: u8 = 1;
/// SPDK_MD_DESCRIPTOR_TYPE_XATTR.
pub const TYPE_XATTR: u8 = 2;
/// SPDK_MD_DESCRIPTOR_TYPE_FLAGS.
pub const TYPE_FLAGS: u8 = 3;
/// SPDK_MD_DESCRIPTOR_TYPE_XATTR_INTERNAL.
pub const TYPE_XATTR_INTERNAL: u8 = 4;
/// SPDK_MD_DESCRIPTOR_TYPE_EXTENT_TABLE.
pub const TYPE_EXTENT_TABLE: u8 = 5;
/// SPDK_MD_DESCRIPTOR_TYPE_EXTENT_PAGE.
pub const TYPE_EXTENT_PAGE: u8 = 6;

/// Bytes of a descriptor header.
pub const HEADER_LEN: usize = 5;

/// One decoded descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Descriptor {
    /// Run-length encoded cluster map: `(cluster_idx, length)`; cluster 0 = unallocated run.
    ExtentRle(Vec<(u32, u32)>),
    /// A user-visible extended attribute.
    Xattr {
        /// Name (not NUL-terminated on disk).
        name: String,
        /// Value bytes.
        value: Vec<u8>,
    },
    /// An internal (hidden) extended attribute, e.g. "SNAP" = parent id.
    XattrInternal {
        /// Name.
        name: String,
        /// Value bytes.
        value: Vec<u8>,
    },
    /// The three flag words.
    Flags {
        /// Unknown bits refuse the open.
        invalid_flags: u64,
        /// Unknown bits open data and metadata read-only.
        data_ro_flags: u64,
        /// Unknown bits open metadata read-only.
        md_ro_flags: u64,
    },
    /// The blob's cluster count and the md pages holding its extent pages:
    /// `(page_idx, num_pages)` runs, page 0 = a run of unallocated extent pages.
    ExtentTable {
        /// Clusters in the blob.
        num_clusters: u64,
        /// Runs of extent page indices.
        runs: Vec<(u32, u32)>,
    },
    /// Up to 512 physical cluster indices starting at logical cluster `start_cluster_idx`; 0 = unallocated.
    ExtentPage {
        /// First logical cluster covered.
        start_cluster_idx: u32,
        /// Physical cluster per logical cluster.
        cluster_idx: Vec<u32>,
    },
}

impl Descriptor {
    /// Bytes this descriptor takes in a page, header included.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.body_len()
    }

    fn body_len(&self) -> usize {
        match self {
            Descriptor::ExtentRle(r) => 8 * r.len(),
            Descriptor::Xattr { name, value } | Descriptor::XattrInternal { name, value } => {
                4 + name.len() + value.len()
            }
            Descriptor::Flags { .. } => 24,
            Descriptor::ExtentTable { runs, .. } => 8 + 8 * runs.len(),
            Descriptor::ExtentPage { cluster_idx, .. } => 4 + 4 * cluster_idx.len(),
        }
    }

    /// Writes the descriptor at the start of `out` (which must be long enough).
    pub fn encode(&self, out: &mut [u8]) {
        let (ty, body) = (self.type_byte(), self.body_len());
        out[0] = ty;
        put_u32(out, 1, body as u32);
        let b = &mut out[HEADER_LEN..HEADER_LEN + body];
        match self {
            Descriptor::ExtentRle(runs) => {
                for (i, (c, l)) in runs.iter().enumerate() {
                    put_u32(b, 8 * i, *c);
                    put_u32(b, 8 * i + 4, *l);
                }
            }
            Descriptor::Xattr { name, value } | Descriptor::XattrInternal { name, value } => {
                put_u16(b, 0, name.len() as u16);
                put_u16(b, 2, value.len() as u16);
                b[4..4 + name.len()].copy_from_slice(name.as_bytes());
                b[4 + name.len()..].copy_from_slice(value);
            }
            Descriptor::Flags {
                invalid_flags,
                data_ro_flags,
                md_ro_flags,
            } => {
                put_u64(b, 0, *invalid_flags);
                put_u64(b, 8, *data_ro_flags);
                put_u64(b, 16, *md_ro_flags);
            }
            Descriptor::ExtentTable { num_clusters, runs } => {
                put_u64(b, 0, *num_clusters);
                for (i, (p, n)) in runs.iter().enumerate() {
                    put_u32(b, 8 + 8 * i, *p);
                    put_u32(b, 12 + 8 * i, *n);
                }
            }
            Descriptor::ExtentPage {
                start_cluster_idx,
                cluster_idx,
            } => {
                put_u32(b, 0, *start_cluster_idx);
                for (i, c) in cluster_idx.iter().enumerate() {
                    put_u32(b, 4 + 4 * i, *c);
                }
            }
        }
    }

    fn type_byte(&self) -> u8 {
        match self {
            Descriptor::ExtentRle(_) => TYPE_EXTENT_RLE,
            Descriptor::Xattr { .. } => TYPE_XATTR,
            Descriptor::Flags { .. } => TYPE_FLAGS,
            Descriptor::XattrInternal { .. } => TYPE_XATTR_INTERNAL,
            Descriptor::ExtentTable { .. } => TYPE_EXTENT_TABLE,
            Descriptor::ExtentPage { .. } => TYPE_EXTENT_PAGE,
        }
    }

    /// Decodes every descriptor of a page's descriptor region.
    pub fn decode_region(region: &[u8]) -> Result<Vec<Descriptor>, FormatError> {
        let mut out = Vec::new();
        let mut cur = 0usize;
        while cur + HEADER_LEN <= region.len() {
            let ty = region[cur];
            let len = get_u32(region, cur + 1) as usize;
            if ty == TYPE_PADDING && len == 0 {
                break;
            }
            let body_start = cur + HEADER_LEN;
            if len > region.len() - body_start {
                return Err(bad(format!(
                    "descriptor type {ty} at offset {cur} has length {len}, past the end of the page"
                )));
            }
            let body = &region[body_start..body_start + len];
            if let Some(d) = decode_one(ty, body)? {
                out.push(d);
            }
            cur = body_start + len;
        }
        Ok(out)
    }
}

fn bad(reason: String) -> FormatError {
    FormatError::Invalid {
        what: "md descriptor",
        reason,
    }
}

fn decode_one(ty: u8, b: &[u8]) -> Result<Option<Descriptor>, FormatError> {
    let len = b.len();
    Ok(Some(match ty {
        TYPE_EXTENT_RLE => {
            if len % 8 != 0 {
                return Err(bad(format!(
                    "extent RLE length {len} is not a multiple of 8"
                )));
            }
            Descriptor::ExtentRle(
                (0..len / 8)
                    .map(|i| (get_u32(b, 8 * i), get_u32(b, 8 * i + 4)))
                    .collect(),
            )
        }
        TYPE_XATTR | TYPE_XATTR_INTERNAL => {
            if len < 4 {
                return Err(bad(format!(
                    "xattr length {len} is shorter than its 4-byte header"
                )));
            }
            let nl = get_u16(b, 0) as usize;
            let vl = get_u16(b, 2) as usize;
            if 4 + nl + vl != len {
                return Err(bad(format!(
                    "xattr name {nl} + value {vl} bytes do not add up to length {len}"
                )));
            }
            let name = String::from_utf8(b[4..4 + nl].to_vec())
                .map_err(|_| bad("xattr name is not UTF-8".into()))?;
            let value = b[4 + nl..].to_vec();
            if ty == TYPE_XATTR {
                Descriptor::Xattr { name, value }
            } else {
                Descriptor::XattrInternal { name, value }
            }
        }
        TYPE_FLAGS => {
            if len != 24 {
                return Err(bad(format!("flags descriptor length {len}, expected 24")));
            }
            Descriptor::Flags {
                invalid_flags: get_u64(b, 0),
                data_ro_flags: get_u64(b, 8),
                md_ro_flags: get_u64(b, 16),
            }
        }
        TYPE_EXTENT_TABLE => {
            if len < 8 || (len - 8) % 8 != 0 {
                return Err(bad(format!("extent table length {len} is not 8 + 8*n")));
            }
            Descriptor::ExtentTable {
                num_clusters: get_u64(b, 0),
                runs: (0..(len - 8) / 8)
                    .map(|i| (get_u32(b, 8 + 8 * i), get_u32(b, 12 + 8 * i)))
                    .collect(),
            }
        }
        TYPE_EXTENT_PAGE => {
            if len < 4 || len % 4 != 0 || (len - 4) / 4 > super::EXTENTS_PER_EP {
                return Err(bad(format!(
                    "extent page length {len} is not 4 + 4*n with n <= 512"
                )));
            }
            Descriptor::ExtentPage {
                start_cluster_idx: get_u32(b, 0),
                cluster_idx: (0..(len - 4) / 4).map(|i| get_u32(b, 4 + 4 * i)).collect(),
            }
        }
        _ => return Ok(None),
    }))
}

/// Largest body a single descriptor may have (it must fit one page).
pub const MAX_DESCRIPTOR_LEN: usize = DESCRIPTORS_LEN - HEADER_LEN;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_round_trip_through_a_region() {
        let ds = vec![
            Descriptor::Flags {
                invalid_flags: 4,
                data_ro_flags: 0,
                md_ro_flags: 0,
            },
            Descriptor::Xattr {
                name: "name".into(),
                value: b"alpha\0".to_vec(),
            },
            Descriptor::XattrInternal {
                name: "SNAP".into(),
                value: vec![2, 0, 0, 0, 1, 0, 0, 0],
            },
            Descriptor::ExtentTable {
                num_clusters: 2,
                runs: vec![(1, 1)],
            },
            Descriptor::ExtentRle(vec![(1, 2), (0, 3)]),
            Descriptor::ExtentPage {
                start_cluster_idx: 0,
                cluster_idx: vec![1, 2],
            },
        ];
        let mut region = vec![0u8; DESCRIPTORS_LEN];
        let mut off = 0;
        for d in &ds {
            d.encode(&mut region[off..]);
            off += d.encoded_len();
        }
        // Offsets as in blobs-4k.img: flags at 16, xattr "name" at 45, "bin" at 64.
        assert_eq!(ds[0].encoded_len(), 29);
        assert_eq!(ds[1].encoded_len(), 19);
        assert_eq!(Descriptor::decode_region(&region).unwrap(), ds);
    }

    #[test]
    fn descriptor_longer_than_page_is_an_error() {
        let mut region = vec![0u8; DESCRIPTORS_LEN];
        region[0] = TYPE_XATTR;
        put_u32(&mut region, 1, 5000);
        assert!(Descriptor::decode_region(&region).is_err());
        put_u32(&mut region, 1, 10);
        assert!(Descriptor::decode_region(&region).is_err());
    }

    #[test]
    fn unknown_descriptor_types_are_skipped() {
        let mut region = vec![0u8; DESCRIPTORS_LEN];
        region[0] = 77;
        put_u32(&mut region, 1, 3);
        let d = Descriptor::Flags {
            invalid_flags: 1,
            data_ro_flags: 0,
            md_ro_flags: 0,
        };
        d.encode(&mut region[8..]);
        assert_eq!(Descriptor::decode_region(&region).unwrap(), vec![d]);
    }
}
