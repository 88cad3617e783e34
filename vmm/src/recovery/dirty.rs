//! KVM's dirty-page log of the server state slots, with manual protection when KVM offers it.
//!
//! With `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2` (enabled with `KVM_DIRTY_LOG_INITIALLY_SET` before
//! the slots exist), `KVM_GET_DIRTY_LOG` only reads the log; the pages are write-protected
//! again, and their bits cleared, by `KVM_CLEAR_DIRTY_LOG`, which the engine issues only after
//! it has copied them. A failed copy therefore never loses dirty information: the next read
//! still reports those pages. Without the capability, `KVM_GET_DIRTY_LOG` reads and clears in
//! one call (a failed copy then stops the VM, as it does anyway).
//!
//! ```text
//!  boundary:  GET (pages written since the last CLEAR) ─► copy into the store ─► CLEAR them
//!  restore:   GET ─► write the boundary's pages back ─► CLEAR them
//! ```
//!
//! kvm-ioctls has no wrapper for `KVM_CLEAR_DIRTY_LOG`; it is issued here through
//! `vmm_sys_util::ioctl`.

use kvm_bindings::{
    KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_DIRTY_LOG_INITIALLY_SET, KVMIO, kvm_clear_dirty_log,
    kvm_enable_cap,
};
use kvm_ioctls::VmFd;
use snapshot::DirtyPages;
use std::sync::Arc;
use vmm_sys_util::ioctl::ioctl_with_ref;
use vmm_sys_util::ioctl_iowr_nr;

ioctl_iowr_nr!(KVM_CLEAR_DIRTY_LOG, KVMIO, 0xc0, kvm_clear_dirty_log);

/// `KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE` (not exported by kvm-bindings).
const MANUAL_PROTECT_ENABLE: u64 = 1;

/// Where the engine reads which pages of a slot the guest wrote.
pub trait DirtyLog: Send {
    /// The pages of `slot` (`pages` long) written since they were last cleared.
    fn fetch(&self, slot: u32, pages: usize) -> Result<DirtyPages, kvm_ioctls::Error>;

    /// Write-protects `dirty`'s pages of `slot` again and clears their bits (manual protection
    /// only; a no-op when `fetch` already did it).
    fn clear(&self, slot: u32, dirty: &DirtyPages) -> Result<(), kvm_ioctls::Error>;
}

/// Enables manual dirty-log protection on `vm` (call before creating the memslots); true when
/// KVM took it.
pub fn enable_manual_protect(vm: &VmFd) -> bool {
    let mut cap = kvm_enable_cap {
        cap: KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
        ..Default::default()
    };
    cap.args[0] = MANUAL_PROTECT_ENABLE | u64::from(KVM_DIRTY_LOG_INITIALLY_SET);
    vm.enable_cap(&cap).is_ok()
}

/// KVM's dirty log of the VM.
#[derive(Debug)]
pub struct KvmDirtyLog {
    vm: Arc<VmFd>,
    manual: bool,
}

impl KvmDirtyLog {
    /// The log of `vm`; `manual` when [`enable_manual_protect`] succeeded.
    pub fn new(vm: Arc<VmFd>, manual: bool) -> Self {
        Self { vm, manual }
    }
}

impl DirtyLog for KvmDirtyLog {
    fn fetch(&self, slot: u32, pages: usize) -> Result<DirtyPages, kvm_ioctls::Error> {
        let words = self.vm.get_dirty_log(slot, pages * snapshot::PAGE_SIZE)?;
        Ok(DirtyPages::from_words(words, pages))
    }

    fn clear(&self, slot: u32, dirty: &DirtyPages) -> Result<(), kvm_ioctls::Error> {
        if !self.manual || dirty.count() == 0 {
            return Ok(());
        }
        let mut words = dirty.words().to_vec();
        let clear = kvm_clear_dirty_log {
            slot,
            num_pages: u32::try_from(dirty.pages()).unwrap_or(u32::MAX),
            first_page: 0,
            __bindgen_anon_1: kvm_bindings::kvm_clear_dirty_log__bindgen_ty_1 {
                dirty_bitmap: words.as_mut_ptr().cast(),
            },
        };
        // SAFETY: the fd is a VM fd; `clear` names a slot of it and a bitmap of one bit per
        // page of that slot (`words` outlives the call, and KVM only reads it).
        let rc = unsafe { ioctl_with_ref(&*self.vm, KVM_CLEAR_DIRTY_LOG(), &clear) };
        if rc == 0 {
            Ok(())
        } else {
            Err(kvm_ioctls::Error::last())
        }
    }
}
