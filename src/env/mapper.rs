//! DMA mappers: IOMMU containers that every DMA region is mapped into.

/// Something that maps memory for device DMA, such as a VFIO container.
///
/// Once registered with [`register_dma_mapper`](super::register_dma_mapper),
/// it receives every existing DMA region and user-registered range, and every
/// one made later, as IOVA-contiguous extents; extents are unmapped when their
/// region goes away (`mem_unregister`, or the env's teardown).
pub trait DmaMapper: Send + Sync {
    /// Makes `len` bytes at `vaddr` reachable by devices at `iova`.
    fn dma_map(&self, vaddr: usize, iova: u64, len: usize) -> std::io::Result<()>;
    /// Removes the mapping of `len` bytes at `iova` made by `dma_map`.
    fn dma_unmap(&self, iova: u64, len: usize) -> std::io::Result<()>;
}
