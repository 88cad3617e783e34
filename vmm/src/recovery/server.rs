//! One server as the engine keeps it: its snapshots, its boot image, its history and policy,
//! what its requests mean, and the guest memory of its state arena.

use crate::memory::GuestMemory;
use crate::outcome::Stop;
use crate::recovery::declarations::Declarations;
use crate::recovery::dirty::DirtyLog;
use crate::recovery::error::RecoveryError;
use crate::recovery::hot_pages::HotPages;
use crate::recovery::translate::Peer;
use abi::requests::RequestTable;
use policies::{History, RecoveryPolicy};
use snapshot::{DirtyPages, RegionSnapshots, SnapshotError};
use std::time::{Duration, Instant};
use vm_memory::{GuestAddress, GuestMemoryBackend};

/// Guest memory region of one server's state arena.
pub(super) type Region = vm_memory::GuestRegionMmap<vm_memory::bitmap::AtomicBitmap>;

/// The VMM's own record of the pages it wrote into `region` (vm-memory marks every write made
/// through its `Bytes` API).
pub(super) fn vmm_bitmap(region: &Region) -> &vm_memory::bitmap::AtomicBitmap {
    (**region).bitmap()
}

/// A recovered server waiting for its first instruction.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pending {
    /// Its entry in the engine's records.
    pub(super) record: usize,
    /// The guest TSC at the kernel's fault entry.
    pub(super) entry_tsc: u64,
    /// When the VMM heard of the fault.
    pub(super) at: Instant,
    /// The engine's paused time (guest TSC cycles, host time) when it crashed: a pause before
    /// its restart is taken out of its latency.
    pub(super) paused: (u64, Duration),
}

/// One server's snapshots and history.
#[derive(Debug)]
pub(super) struct Server {
    pub(super) name: String,
    /// Declared an app by the manifest: never recovered, not in the report's servers.
    pub(super) app: bool,
    pub(super) slot: u32,
    pub(super) base: u64,
    pub(super) store: RegionSnapshots,
    pub(super) boot: Vec<u8>,
    pub(super) history: History,
    pub(super) policy: Box<dyn RecoveryPolicy>,
    pub(super) crashes: u64,
    pub(super) restores: u64,
    /// Times it was rolled back as the peer of a crashed server (a consistent cut).
    pub(super) peer_rollbacks: u64,
    pub(super) generation: u32,
    /// Boundaries it passed (the kernel counts the same): the number of the next one is this
    /// plus one. Not the store's newest version, which goes back when it is rolled back.
    pub(super) boundaries: u64,
    /// Pages left writable between snapshots (see [`HotPages`]).
    pub(super) hot_pages: HotPages,
    pub(super) pending: Option<Pending>,
    /// What its requests mean, from the image (`None`: nothing declared).
    pub(super) requests: Option<RequestTable>,
    /// Which of its read-only declarations the VMM has seen hold.
    pub(super) declarations: Declarations,
}

impl Server {
    /// Server `name` whose state arena is `region`, in dirty-log `slot`: its boot image taken
    /// as version 0 of a store keeping `versions`, its dirty logs cleared.
    pub(super) fn new(
        name: &str,
        app: bool,
        slot: u32,
        region: &Region,
        requests: Option<RequestTable>,
        versions: usize,
        log: &impl DirtyLog,
    ) -> Result<Self, RecoveryError> {
        let snap_err = |source| RecoveryError::Snapshot {
            server: name.to_owned(),
            source,
        };
        let (store, _) = RegionSnapshots::new(region, 0, versions).map_err(snap_err)?;
        let boot = store.image(0).map_err(snap_err)?;
        let pages = store.pages();
        log.clear(slot, &DirtyPages::all(pages))
            .map_err(|source| RecoveryError::DirtyLog {
                server: name.to_owned(),
                slot,
                source,
            })?;
        vmm_bitmap(region).reset();
        Ok(Self {
            name: name.to_owned(),
            app,
            slot,
            base: vm_memory::GuestMemoryRegion::start_addr(region).0,
            store,
            boot,
            history: History::new(),
            policy: policies::default_policy(),
            crashes: 0,
            restores: 0,
            peer_rollbacks: 0,
            generation: 0,
            boundaries: 0,
            hot_pages: HotPages::new(pages),
            pending: None,
            requests,
            declarations: Declarations::new(requests.as_ref()),
        })
    }

    /// (idempotent, state-changing) of its request `label`: what its table declares (a
    /// declaration caught false is taken as state-changing), the most cautious answer for an
    /// undeclared label or a server that declares nothing.
    pub(super) fn declared(&self, label: u64) -> (bool, bool) {
        match &self.requests {
            Some(t) => (
                t.idempotent(label),
                t.changes_state(label) || self.declarations.caught(label),
            ),
            None => (false, true),
        }
    }

    /// Its state arena in `mem`.
    pub(super) fn region<'m>(&self, mem: &'m GuestMemory) -> Result<&'m Region, Stop> {
        mem.find_region(GuestAddress(self.base))
            .ok_or_else(|| Stop::Recovery(RecoveryError::NoRegion(self.name.clone())))
    }

    /// Its state arena and its dirty pages: KVM's log ORed with the pages the VMM itself
    /// wrote (which KVM does not see).
    pub(super) fn dirty_pages<'m>(
        &self,
        mem: &'m GuestMemory,
        log: &impl DirtyLog,
    ) -> Result<(&'m Region, DirtyPages), Stop> {
        let region = self.region(mem)?;
        let pages = self.store.pages();
        let mut dirty = log.fetch(self.slot, pages).map_err(|e| self.log_error(e))?;
        let ours = vmm_bitmap(region).get_and_reset();
        dirty.union_with(&DirtyPages::from_words(ours, pages));
        Ok((region, dirty))
    }

    pub(super) fn log_error(&self, source: kvm_ioctls::Error) -> Stop {
        Stop::Recovery(RecoveryError::DirtyLog {
            server: self.name.clone(),
            slot: self.slot,
            source,
        })
    }

    pub(super) fn snapshot_error(&self, source: SnapshotError) -> Stop {
        Stop::Recovery(RecoveryError::Snapshot {
            server: self.name.clone(),
            source,
        })
    }
}

impl Peer for Server {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_server(&self) -> bool {
        !self.app
    }

    fn changes_state(&self, label: u64) -> bool {
        self.declared(label).1
    }

    fn idempotent(&self, label: u64) -> bool {
        self.declared(label).0
    }

    fn request_name(&self, label: u64) -> Option<&str> {
        self.requests.as_ref()?.name_of(label)
    }

    fn keeps(&self, version: u64) -> bool {
        self.store.versions().contains(&version)
    }
}
