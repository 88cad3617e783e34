//! What each server's interface declares about its request types (its `*-api` crate): whether a
//! request changes the server's state. The kernel snapshots a server only at the boundaries that
//! close a state-changing request (see [`crate::ipc`]); a request declared read-only leaves the
//! server's state as its last snapshot has it, so a snapshot there would copy nothing the
//! clients could miss, and the exit to the VMM (most of a boundary's cost under KVM-PVM) is saved.
//!
//! Tasks the kernel does not know by name are taken at their most cautious: every request
//! changes state.

/// The interface a task serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Api {
    /// Not one of the bundled servers' (or an app): every request changes state.
    #[default]
    Unknown,
    /// The name server (`names-api`).
    Names,
    /// The key-value store (`kv-api`).
    Kv,
    /// The file server (`fs-api`).
    Fs,
    /// The bank (`bank-api`).
    Bank,
    /// The test server (`crasher-api`).
    Crasher,
}

impl Api {
    /// The interface of the server called `name`.
    pub fn of(name: &str) -> Self {
        match name {
            names_api::SERVER => Self::Names,
            kv_api::SERVER => Self::Kv,
            fs_api::SERVER => Self::Fs,
            bank_api::SERVER => Self::Bank,
            crasher_api::SERVER => Self::Crasher,
            _ => Self::Unknown,
        }
    }

    /// True when request `label` may change the server's state.
    pub fn changes_state(self, label: u64) -> bool {
        match self {
            Self::Unknown => true,
            Self::Names => names_api::changes_state(label),
            Self::Kv => kv_api::changes_state(label),
            Self::Fs => fs_api::changes_state(label),
            Self::Bank => bank_api::changes_state(label),
            Self::Crasher => crasher_api::changes_state(label),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_come_from_the_apis_and_strangers_change_state() {
        assert_eq!(Api::of("kv"), Api::Kv);
        assert!(!Api::Kv.changes_state(kv_api::op::GET));
        assert!(Api::Kv.changes_state(kv_api::op::PUT));
        assert!(Api::Kv.changes_state(kv_api::op::ADD));
        assert!(!Api::Fs.changes_state(fs_api::op::READ));
        assert!(Api::Bank.changes_state(bank_api::op::DEPOSIT));
        assert_eq!(Api::of("workload"), Api::Unknown);
        assert!(Api::Unknown.changes_state(0));
        assert!(Api::Unknown.changes_state(u64::MAX));
    }
}
