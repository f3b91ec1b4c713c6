//! The process's one VFIO container and its groups.
//!
//! The first group attached sets the IOMMU model (TYPE1v2, or VFIO's no-IOMMU
//! model for `noiommu-N` groups); a type1 container then registers itself with
//! the env as a [`DmaMapper`], so every DMA region, present and future, is
//! mapped into it with IOVA = the env's IOVA.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use vfio_bindings::bindings::vfio::{
    VFIO_TYPE1v2_IOMMU, VFIO_API_VERSION, VFIO_GROUP_FLAGS_VIABLE, VFIO_NOIOMMU_IOMMU,
};

use super::ioctl;
use crate::env::{self, DmaMapper};
use crate::pci::PciError;

/// A VFIO container: one IOMMU address space shared by all our devices.
pub(crate) struct Container {
    file: File,
    state: Mutex<State>,
    /// Inclusive IOVA ranges the IOMMU maps, once the IOMMU model is set.
    ranges: OnceLock<Vec<(u64, u64)>>,
}

#[derive(Default)]
struct State {
    /// None until the first group sets the IOMMU model; then Some(noiommu).
    noiommu: Option<bool>,
    groups: HashMap<u32, Arc<Group>>,
}

/// An open VFIO group, attached to the container.
pub(crate) struct Group {
    pub(crate) file: File,
    pub(crate) number: u32,
    pub(crate) noiommu: bool,
}

static CONTAINER: Mutex<Option<Arc<Container>>> = Mutex::new(None);

fn vfio_err(
    op: &'static str,
    device: impl Into<String>,
) -> impl FnOnce(std::io::Error) -> PciError {
    let device = device.into();
    move |source| PciError::Vfio { op, device, source }
}

/// The process's container, opened on first use.
pub(crate) fn container() -> Result<Arc<Container>, PciError> {
    let mut g = CONTAINER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = &*g {
        return Ok(c.clone());
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/vfio/vfio")
        .map_err(|e| {
            PciError::io(
                "opening /dev/vfio/vfio (is the vfio module loaded? modprobe vfio-pci)",
                e,
            )
        })?;
    let v = ioctl::ioctl_val(file.as_fd(), ioctl::GET_API_VERSION, 0)
        .map_err(vfio_err("GET_API_VERSION", "container"))?;
    if v != VFIO_API_VERSION as i32 {
        return Err(PciError::Vfio {
            op: "GET_API_VERSION",
            device: "container".into(),
            source: std::io::Error::other(format!(
                "kernel VFIO API {v}, expected {VFIO_API_VERSION}"
            )),
        });
    }
    let c = Arc::new(Container {
        file,
        state: Mutex::new(State::default()),
        ranges: OnceLock::new(),
    });
    *g = Some(c.clone());
    Ok(c)
}

/// The group node of IOMMU group `n`: `/dev/vfio/N`, or `/dev/vfio/noiommu-N`.
fn group_node(n: u32) -> Option<(PathBuf, bool)> {
    let normal = PathBuf::from(format!("/dev/vfio/{n}"));
    if normal.exists() {
        return Some((normal, false));
    }
    let noiommu = PathBuf::from(format!("/dev/vfio/noiommu-{n}"));
    noiommu.exists().then_some((noiommu, true))
}

impl Container {
    /// Group `number`, opened and attached on first use, shared afterwards.
    pub(crate) fn group(self: &Arc<Self>, number: u32) -> Result<Arc<Group>, PciError> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = st.groups.get(&number) {
            return Ok(g.clone());
        }
        let (path, noiommu) = group_node(number).ok_or_else(|| {
            PciError::io(
                format!("opening /dev/vfio/{number}"),
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such VFIO group node: bind the device to vfio-pci (`spdk-io setup`)",
                ),
            )
        })?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| {
                let hint = if e.raw_os_error() == Some(libc::EBUSY) {
                    " (another process has the group open)"
                } else {
                    ""
                };
                PciError::io(format!("opening {}{hint}", path.display()), e)
            })?;
        let name = format!("group {number}");
        let flags =
            ioctl::group_status(file.as_fd()).map_err(vfio_err("GROUP_GET_STATUS", &*name))?;
        if flags & VFIO_GROUP_FLAGS_VIABLE == 0 {
            return Err(PciError::GroupNotViable { group: number });
        }
        if let Some(model) = st.noiommu {
            if model != noiommu {
                return Err(PciError::Vfio {
                    op: "GROUP_SET_CONTAINER",
                    device: name,
                    source: std::io::Error::other(
                        "cannot mix no-IOMMU and IOMMU groups in one process",
                    ),
                });
            }
        }
        ioctl::group_set_container(file.as_fd(), self.file.as_fd())
            .map_err(vfio_err("GROUP_SET_CONTAINER", &*name))?;
        if st.noiommu.is_none() {
            let model = if noiommu {
                VFIO_NOIOMMU_IOMMU
            } else {
                VFIO_TYPE1v2_IOMMU
            };
            let ok = ioctl::ioctl_val(self.file.as_fd(), ioctl::CHECK_EXTENSION, model as _)
                .map_err(vfio_err("CHECK_EXTENSION", "container"))?;
            if ok != 1 {
                return Err(PciError::Vfio {
                    op: "CHECK_EXTENSION",
                    device: "container".into(),
                    source: std::io::Error::other(format!(
                        "IOMMU model {model} not supported by this kernel"
                    )),
                });
            }
            ioctl::ioctl_val(self.file.as_fd(), ioctl::SET_IOMMU, model as _).map_err(
                |source| PciError::Vfio {
                    op: "SET_IOMMU",
                    device: format!("{name} (with intel-iommu, interrupt remapping must be on)"),
                    source,
                },
            )?;
            st.noiommu = Some(noiommu);
            if !noiommu {
                let ranges = ioctl::iova_ranges(self.file.as_fd()).unwrap_or_default();
                log::debug!("VFIO container IOVA ranges: {ranges:x?}");
                let _ = self.ranges.set(ranges);
                env::register_dma_mapper(self.clone())?;
            }
        }
        let g = Arc::new(Group {
            file,
            number,
            noiommu,
        });
        st.groups.insert(number, g.clone());
        Ok(g)
    }
}

impl DmaMapper for Container {
    fn dma_map(&self, vaddr: usize, iova: u64, len: usize) -> std::io::Result<()> {
        if let Some(ranges) = self.ranges.get().filter(|r| !r.is_empty()) {
            let last = iova + len as u64 - 1;
            if !ranges.iter().any(|&(s, e)| s <= iova && last <= e) {
                let list: Vec<String> = ranges
                    .iter()
                    .map(|(s, e)| format!("{s:#x}-{e:#x}"))
                    .collect();
                return Err(std::io::Error::other(format!(
                    "IOVA {iova:#x}-{last:#x} is outside what the IOMMU can map ({})",
                    list.join(", ")
                )));
            }
        }
        ioctl::map_dma(self.file.as_fd(), vaddr as u64, iova, len as u64)
    }

    fn dma_unmap(&self, iova: u64, len: usize) -> std::io::Result<()> {
        ioctl::unmap_dma(self.file.as_fd(), iova, len as u64)
    }
}
