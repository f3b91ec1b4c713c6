//! The process's one VFIO container and its groups.
//!
//! The first group attached sets the IOMMU model (TYPE1v2, or VFIO's no-IOMMU
//! model for `noiommu-N` groups); a type1 container then registers itself with
//! the env as a [`DmaMapper`], so every DMA region, present and future, is
//! mapped into it with IOVA = the env's IOVA.
//!
//! Groups live as long as a device uses them. When the last one closes, the
//! kernel drops the container's IOMMU (and every mapping in it), so the
//! container first leaves the env's mappers; the next group sets the IOMMU up
//! and maps everything again. This is what lets a device be given to the
//! kernel driver and taken back within one process.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, Weak};

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
    /// Inclusive IOVA ranges the IOMMU maps, while a type1 model is set.
    ranges: RwLock<Vec<(u64, u64)>>,
}

#[derive(Default)]
struct State {
    /// None while no group is attached; then Some(noiommu).
    noiommu: Option<bool>,
    groups: HashMap<u32, Weak<Group>>,
}

/// An open VFIO group, attached to the container until dropped.
pub(crate) struct Group {
    pub(crate) file: File,
    pub(crate) number: u32,
    pub(crate) noiommu: bool,
    container: Arc<Container>,
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
    let v =
        ioctl::get_api_version(file.as_fd()).map_err(vfio_err("GET_API_VERSION", "container"))?;
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
        ranges: RwLock::new(Vec::new()),
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

fn open_group_file(number: u32) -> Result<(File, bool), PciError> {
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
    Ok((file, noiommu))
}

impl Container {
    /// Group `number`, opened and attached on first use, shared while any device holds it.
    pub(crate) fn group(self: &Arc<Self>, number: u32) -> Result<Arc<Group>, PciError> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = st.groups.get(&number).and_then(Weak::upgrade) {
            return Ok(g);
        }
        let (file, noiommu) = open_group_file(number)?;
        let name = format!("group {number}");
        let flags =
            ioctl::group_status(file.as_fd()).map_err(vfio_err("GROUP_GET_STATUS", &*name))?;
        if flags & VFIO_GROUP_FLAGS_VIABLE == 0 {
            return Err(PciError::GroupNotViable { group: number });
        }
        if st.noiommu.is_some_and(|model| model != noiommu) {
            return Err(PciError::Vfio {
                op: "GROUP_SET_CONTAINER",
                device: name,
                source: std::io::Error::other(
                    "cannot mix no-IOMMU and IOMMU groups in one process",
                ),
            });
        }
        ioctl::group_set_container(file.as_fd(), self.file.as_fd())
            .map_err(vfio_err("GROUP_SET_CONTAINER", &*name))?;
        // From here an error drops `file`, which detaches the group again.
        if st.noiommu.is_none() {
            self.set_iommu(noiommu, &name)?;
            st.noiommu = Some(noiommu);
        }
        let g = Arc::new(Group {
            file,
            number,
            noiommu,
            container: self.clone(),
        });
        st.groups.insert(number, Arc::downgrade(&g));
        Ok(g)
    }

    /// Sets the IOMMU model for the first group and, for type1, joins the env's mappers.
    fn set_iommu(self: &Arc<Self>, noiommu: bool, name: &str) -> Result<(), PciError> {
        let model = if noiommu {
            VFIO_NOIOMMU_IOMMU
        } else {
            VFIO_TYPE1v2_IOMMU
        };
        let ok = ioctl::check_extension(self.file.as_fd(), model as _)
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
        ioctl::set_iommu(self.file.as_fd(), model as _).map_err(|source| PciError::Vfio {
            op: "SET_IOMMU",
            device: format!("{name} (with intel-iommu, interrupt remapping must be on)"),
            source,
        })?;
        if !noiommu {
            let ranges = ioctl::iova_ranges(self.file.as_fd()).unwrap_or_default();
            log::debug!("VFIO container IOVA ranges: {ranges:x?}");
            *self.ranges.write().unwrap_or_else(|p| p.into_inner()) = ranges;
            env::register_dma_mapper(self.clone())?;
        }
        Ok(())
    }

    /// Called as group `number` closes: when it is the last, leave the env's
    /// mappers while the IOMMU still exists (its file closes right after).
    fn group_closing(self: &Arc<Self>, number: u32) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st
            .groups
            .get(&number)
            .is_some_and(|w| w.strong_count() == 0)
        {
            st.groups.remove(&number);
        }
        if st.groups.values().any(|w| w.strong_count() > 0) {
            return;
        }
        st.groups.clear();
        if st.noiommu == Some(false) {
            let me: Arc<dyn DmaMapper> = self.clone();
            env::unregister_dma_mapper(&me);
        }
        st.noiommu = None;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.container.group_closing(self.number);
    }
}

impl DmaMapper for Container {
    fn dma_map(&self, vaddr: usize, iova: u64, len: usize) -> std::io::Result<()> {
        let ranges = self.ranges.read().unwrap_or_else(|p| p.into_inner());
        if !ranges.is_empty() {
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
