//! Translating a blob's metadata to and from SPDK's metadata pages: the
//! root chain (flags, xattrs, internal xattrs, then the extent table or RLE
//! extents, packed as SPDK's blob_serialize packs them) and the extent pages.

use super::format::{Descriptor, MdPage, DESCRIPTORS_LEN, EXTENTS_PER_EP};
use super::md::{BlobMd, BLOB_EXTENT_TABLE, MAX_BLOB_CLUSTERS};
use super::BlobId;

fn corrupt(s: impl Into<String>) -> String {
    s.into()
}

impl BlobMd {
    /// Serializes the root chain into per-page descriptor lists, packing
    /// exactly as SPDK's blob_serialize: flags, xattrs, internal xattrs,
    /// then the extent table (or RLE extents), opening a new page whenever
    /// the next descriptor does not fit.
    pub fn serialize(&self) -> Vec<Vec<Descriptor>> {
        let mut pages = vec![vec![Descriptor::Flags {
            invalid_flags: self.invalid_flags,
            data_ro_flags: self.data_ro_flags,
            md_ro_flags: self.md_ro_flags,
        }]];
        let mut remaining = DESCRIPTORS_LEN - pages[0][0].encoded_len();
        let push = |pages: &mut Vec<Vec<Descriptor>>, remaining: &mut usize, d: Descriptor| {
            if d.encoded_len() > *remaining {
                pages.push(Vec::new());
                *remaining = DESCRIPTORS_LEN;
            }
            *remaining -= d.encoded_len();
            pages.last_mut().expect("at least one page").push(d);
        };
        for (n, v) in &self.xattrs {
            push(
                &mut pages,
                &mut remaining,
                Descriptor::Xattr {
                    name: n.clone(),
                    value: v.clone(),
                },
            );
        }
        for (n, v) in &self.xattrs_internal {
            push(
                &mut pages,
                &mut remaining,
                Descriptor::XattrInternal {
                    name: n.clone(),
                    value: v.clone(),
                },
            );
        }
        if self.use_extent_table {
            self.serialize_extent_table(&mut pages, &mut remaining);
        } else {
            self.serialize_extents_rle(&mut pages, &mut remaining);
        }
        pages
    }

    fn serialize_extent_table(&self, pages: &mut Vec<Vec<Descriptor>>, remaining: &mut usize) {
        let eps = &self.extent_pages;
        let mut next = 0usize;
        loop {
            let mut runs = Vec::new();
            if *remaining >= 13 {
                let mut used = 13;
                let mut len = 1u32;
                while next < eps.len() {
                    if *remaining < used + 8 {
                        break;
                    }
                    if eps[next] == 0 && next + 1 < eps.len() && eps[next + 1] == 0 {
                        len += 1;
                        next += 1;
                        continue;
                    }
                    runs.push((eps[next], len));
                    len = 1;
                    used += 8;
                    next += 1;
                }
                let d = Descriptor::ExtentTable {
                    num_clusters: self.clusters.len() as u64,
                    runs,
                };
                *remaining -= d.encoded_len();
                pages.last_mut().expect("page").push(d);
            }
            if next == eps.len() {
                break;
            }
            pages.push(Vec::new());
            *remaining = DESCRIPTORS_LEN;
        }
    }

    fn serialize_extents_rle(&self, pages: &mut Vec<Vec<Descriptor>>, remaining: &mut usize) {
        let c = &self.clusters;
        let mut i = 0usize;
        while i < c.len() {
            let mut runs = Vec::new();
            let mut used = 5;
            while i < c.len() && *remaining >= used + 8 {
                let start = c[i];
                let mut len = 1usize;
                while i + len < c.len()
                    && ((start == 0 && c[i + len] == 0)
                        || (start != 0 && c[i + len] == start + len as u32))
                {
                    len += 1;
                }
                runs.push((start, len as u32));
                used += 8;
                i += len;
            }
            if !runs.is_empty() {
                let d = Descriptor::ExtentRle(runs);
                *remaining -= d.encoded_len();
                pages.last_mut().expect("page").push(d);
            }
            if i < c.len() {
                pages.push(Vec::new());
                *remaining = DESCRIPTORS_LEN;
            }
        }
    }

    /// Rebuilds a blob from its root chain, reading extent pages through
    /// `extent_page` (md page index -> decoded page). Every value is checked
    /// against `total_clusters` and `md_len`.
    pub fn parse(
        id: BlobId,
        chain: &[(u32, MdPage)],
        mut extent_page: impl FnMut(u32) -> Result<MdPage, String>,
        total_clusters: u32,
        md_len: u32,
    ) -> Result<BlobMd, String> {
        let mut md = BlobMd {
            id,
            ..Default::default()
        };
        let mut et_clusters: Option<u64> = None;
        let mut saw_rle = false;
        for (idx, (_, page)) in chain.iter().enumerate() {
            if page.id != id {
                return Err(corrupt(format!(
                    "page {idx} of the chain belongs to blob {:#x}",
                    page.id
                )));
            }
            if page.sequence_num as usize != idx {
                return Err(corrupt(format!(
                    "page {idx} of the chain has sequence number {}",
                    page.sequence_num
                )));
            }
            for d in &page.descriptors {
                match d {
                    Descriptor::Flags {
                        invalid_flags,
                        data_ro_flags,
                        md_ro_flags,
                    } => {
                        md.invalid_flags = *invalid_flags;
                        md.data_ro_flags = *data_ro_flags;
                        md.md_ro_flags = *md_ro_flags;
                    }
                    Descriptor::Xattr { name, value } => {
                        md.xattrs.push((name.clone(), value.clone()))
                    }
                    Descriptor::XattrInternal { name, value } => {
                        md.xattrs_internal.push((name.clone(), value.clone()))
                    }
                    Descriptor::ExtentRle(runs) => {
                        saw_rle = true;
                        for &(c, n) in runs {
                            if md.clusters.len() as u64 + n as u64 > MAX_BLOB_CLUSTERS {
                                return Err(corrupt(
                                    "extent RLE describes more clusters than supported",
                                ));
                            }
                            if c != 0 && c as u64 + n as u64 > total_clusters as u64 {
                                return Err(corrupt(format!(
                                    "extent RLE run {c}+{n} is past cluster {total_clusters}"
                                )));
                            }
                            md.clusters
                                .extend((0..n).map(|j| if c == 0 { 0 } else { c + j }));
                        }
                    }
                    Descriptor::ExtentTable { num_clusters, runs } => {
                        if *num_clusters > MAX_BLOB_CLUSTERS
                            || et_clusters.is_some_and(|n| n != *num_clusters)
                        {
                            return Err(corrupt(format!(
                                "extent table num_clusters {num_clusters} is invalid"
                            )));
                        }
                        et_clusters = Some(*num_clusters);
                        for &(p, n) in runs {
                            if md.extent_pages.len() as u64 + n as u64 > MAX_BLOB_CLUSTERS {
                                return Err(corrupt("extent table lists too many pages"));
                            }
                            if p != 0 && (p as u64 + n as u64 > md_len as u64) {
                                return Err(corrupt(format!(
                                    "extent page {p}+{n} is outside the md region"
                                )));
                            }
                            md.extent_pages
                                .extend((0..n).map(|j| if p == 0 { 0 } else { p + j }));
                        }
                    }
                    Descriptor::ExtentPage { .. } => {
                        return Err(corrupt("an extent page descriptor inside the root chain"));
                    }
                }
            }
        }
        md.use_extent_table = md.invalid_flags & BLOB_EXTENT_TABLE != 0;
        if md.use_extent_table {
            if saw_rle {
                return Err(corrupt("both extent RLE and extent table descriptors"));
            }
            let n = et_clusters.unwrap_or(0) as usize;
            md.clusters = vec![0; n];
            if md.extent_pages.len() != n.div_ceil(EXTENTS_PER_EP) {
                return Err(corrupt(format!(
                    "extent table lists {} pages for {n} clusters",
                    md.extent_pages.len()
                )));
            }
            for slot in 0..md.extent_pages.len() {
                let p = md.extent_pages[slot];
                if p == 0 {
                    continue;
                }
                let page = extent_page(p).map_err(|e| format!("extent page {p}: {e}"))?;
                let start = slot * EXTENTS_PER_EP;
                let want = (n - start).min(EXTENTS_PER_EP);
                match page.descriptors.as_slice() {
                    [Descriptor::ExtentPage {
                        start_cluster_idx,
                        cluster_idx,
                    }] if *start_cluster_idx as usize == start && cluster_idx.len() == want => {
                        for (j, &c) in cluster_idx.iter().enumerate() {
                            if c >= total_clusters {
                                return Err(corrupt(format!(
                                    "extent page {p} maps to cluster {c}, past {total_clusters}"
                                )));
                            }
                            md.clusters[start + j] = c;
                        }
                    }
                    _ => {
                        return Err(corrupt(format!(
                            "md page {p} is not the extent page for clusters {start}..{}",
                            start + want
                        )))
                    }
                }
            }
        } else if et_clusters.is_some() {
            return Err(corrupt(
                "extent table descriptor without the extent table flag",
            ));
        }
        md.disk_clusters = md.clusters.clone();
        md.disk_extent_pages = md.extent_pages.clone();
        md.chain = chain.iter().map(|(p, _)| *p).collect();
        Ok(md)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::format::INVALID_MD_PAGE;

    fn blob(clusters: Vec<u32>, extent_pages: Vec<u32>) -> BlobMd {
        BlobMd {
            id: 0x1_0000_0000,
            invalid_flags: BLOB_EXTENT_TABLE,
            use_extent_table: true,
            clusters,
            extent_pages,
            ..Default::default()
        }
    }

    #[test]
    fn unallocated_extent_pages_are_one_zero_run() {
        let md = blob(vec![0; 4 * EXTENTS_PER_EP + 1], vec![0, 0, 7, 0, 0]);
        let pages = md.serialize();
        assert_eq!(pages.len(), 1);
        assert_eq!(
            pages[0][1],
            Descriptor::ExtentTable {
                num_clusters: 4 * 512 + 1,
                runs: vec![(0, 2), (7, 1), (0, 2)]
            }
        );
    }

    #[test]
    fn an_xattr_that_does_not_fit_opens_a_new_page() {
        let mut md = blob(vec![], vec![]);
        md.xattrs = vec![("a".into(), vec![1; 3000]), ("b".into(), vec![2; 3000])];
        let pages = md.serialize();
        assert_eq!(pages.len(), 2);
        assert!(matches!(pages[1][0], Descriptor::Xattr { ref name, .. } if name == "b"));
        assert!(matches!(
            pages[1][1],
            Descriptor::ExtentTable {
                num_clusters: 0,
                ..
            }
        ));
    }

    #[test]
    fn parse_rejects_an_extent_page_for_the_wrong_clusters() {
        let md = blob(vec![3, 4], vec![1]);
        let root = MdPage {
            id: md.id,
            sequence_num: 0,
            descriptors: md.serialize().remove(0),
            next: INVALID_MD_PAGE,
        };
        let ep = |start: u32| MdPage {
            id: md.id,
            sequence_num: 0,
            descriptors: vec![Descriptor::ExtentPage {
                start_cluster_idx: start,
                cluster_idx: vec![3, 4],
            }],
            next: INVALID_MD_PAGE,
        };
        let ok = BlobMd::parse(md.id, &[(0, root.clone())], |_| Ok(ep(0)), 16, 16).unwrap();
        assert_eq!(ok.clusters, vec![3, 4]);
        assert!(BlobMd::parse(md.id, &[(0, root.clone())], |_| Ok(ep(512)), 16, 16).is_err());
        assert!(
            BlobMd::parse(md.id, &[(0, root.clone())], |_| Ok(ep(0)), 4, 16).is_err(),
            "cluster 4 is past a 4-cluster store"
        );
        assert!(
            BlobMd::parse(md.id + 1, &[(0, root)], |_| Ok(ep(0)), 16, 16).is_err(),
            "page of another blob"
        );
    }

    /// Random blobs (xattr sizes, cluster maps, extent table or RLE)
    /// serialize into a chain of pages and parse back to the same blob.
    #[test]
    fn random_blobs_round_trip_through_their_pages() {
        let mut x = 0x853c49e6748fea9bu64;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n.max(1)
        };
        for _ in 0..300 {
            let et = rnd(3) != 0;
            let n = rnd(4) as usize * rnd(700) as usize;
            let total = 4096u32;
            let mut md = blob(vec![0; n], vec![]);
            md.use_extent_table = et;
            md.invalid_flags = if et { BLOB_EXTENT_TABLE } else { 0 } | rnd(2);
            let dense = rnd(4);
            for c in md.clusters.iter_mut() {
                if rnd(4) < dense {
                    *c = 16 + rnd(total as u64 - 16) as u32;
                }
            }
            for i in 0..rnd(12) {
                let len = rnd(3) * rnd(1500);
                md.xattrs
                    .push((format!("x{i}"), vec![i as u8; len as usize]));
            }
            // Extent pages at md pages 100.., only where the slot has clusters.
            let slots = md.num_extent_pages();
            md.extent_pages = (0..slots)
                .map(|s| {
                    let r = s * EXTENTS_PER_EP..((s + 1) * EXTENTS_PER_EP).min(n);
                    if et && md.clusters[r].iter().any(|&c| c != 0) {
                        100 + s as u32
                    } else {
                        0
                    }
                })
                .collect();
            if !et {
                md.extent_pages.clear();
            }
            let chain: Vec<(u32, MdPage)> = md
                .serialize()
                .into_iter()
                .enumerate()
                .map(|(i, d)| {
                    (
                        i as u32,
                        MdPage {
                            id: md.id,
                            sequence_num: i as u32,
                            descriptors: d,
                            next: INVALID_MD_PAGE,
                        },
                    )
                })
                .collect();
            for (_, p) in &chain {
                p.encode().expect("every serialized page fits");
            }
            let ep = |p: u32| {
                Ok(MdPage {
                    id: md.id,
                    sequence_num: 0,
                    descriptors: vec![md.extent_page_descriptor((p - 100) as usize)],
                    next: INVALID_MD_PAGE,
                })
            };
            let back = BlobMd::parse(md.id, &chain, ep, total, 4096).unwrap();
            assert_eq!(back.clusters, md.clusters);
            assert_eq!(back.xattrs, md.xattrs);
            assert_eq!(back.invalid_flags, md.invalid_flags);
            if et {
                assert_eq!(back.extent_pages, md.extent_pages);
            }
        }
    }
}
