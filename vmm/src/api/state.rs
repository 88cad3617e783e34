//! What the API serves from: the VM's live faults, published figures and records.

use crate::live::LiveFaults;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// What the API serves from.
#[derive(Debug)]
pub struct ApiState {
    /// Live faults.
    pub live: LiveFaults,
    /// The KVM backend's name.
    pub backend: &'static str,
    /// When the VM started.
    pub started: Instant,
    /// The servers and the figures they publish.
    pub progress: crate::progress::Progress,
    /// What the guest reported; the recovery summary is published there after every fault.
    pub records: Arc<std::sync::Mutex<crate::records::GuestRecords>>,
    /// Set when the VM has stopped: event streams end.
    pub stop: Arc<AtomicBool>,
    /// The pause switch (with `--api-sock`).
    pub pause: Option<Arc<crate::pause::Pause>>,
    /// Written to stop the VM (`PUT /actions` with `Stop`).
    pub stop_vm: Option<vmm_sys_util::eventfd::EventFd>,
    /// How the VM ended (`vmm run`'s exit status and its line), once it has: served until the
    /// API goes, and the event stream's last record.
    pub ended: std::sync::Mutex<Option<(u8, Option<String>)>>,
}

impl ApiState {
    /// How the VM ended, once it has.
    pub fn ended(&self) -> Option<(u8, Option<String>)> {
        self.ended.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// `Running`, `Paused` or `Stopped`.
pub fn vm_state(state: &ApiState) -> &'static str {
    if state.ended().is_some() {
        "Stopped"
    } else if state.pause.as_ref().is_some_and(|p| p.is_paused()) {
        "Paused"
    } else {
        "Running"
    }
}
