//! Which KVM implementation `/dev/kvm` is: hardware (VMX/SVM) or KVM-PVM.
//!
//! The answer changes what the guest may do (on PVM, ring 0 is emulated: no SSE there, and
//! SYSCALL does not reach CPL 0), so it goes into boot-info and into every report.

use abi::Backend;
use std::path::Path;

/// Detects the backend from the host's loaded KVM modules, falling back to the CPU flags.
///
/// `kvm_pvm` loaded means PVM; `kvm_intel`/`kvm_amd` loaded, or `vmx`/`svm` in the CPU flags,
/// means hardware. When nothing tells (e.g. no `/sys` in a container), PVM is assumed: the guest
/// then uses the entry paths that work on both.
pub fn detect() -> Backend {
    detect_from(Path::new("/sys/module"), || {
        std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default()
    })
}

/// [`detect`] over a given module directory and cpuinfo source (for tests). cpuinfo is read only
/// when the modules do not tell: producing it is slow (tens of microseconds per CPU).
pub fn detect_from(modules: &Path, cpuinfo: impl FnOnce() -> String) -> Backend {
    if modules.join("kvm_pvm").exists() {
        return Backend::Pvm;
    }
    if modules.join("kvm_intel").exists() || modules.join("kvm_amd").exists() {
        return Backend::Hardware;
    }
    let has_flag = cpuinfo()
        .lines()
        .filter(|l| l.starts_with("flags"))
        .flat_map(|l| l.split_whitespace())
        .any(|f| f == "vmx" || f == "svm");
    if has_flag {
        Backend::Hardware
    } else {
        Backend::Pvm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modules(names: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for n in names {
            std::fs::create_dir(dir.path().join(n)).expect("create module dir");
        }
        dir
    }

    #[test]
    fn pvm_module_wins() {
        let m = modules(&["kvm", "kvm_pvm"]);
        assert_eq!(
            detect_from(m.path(), || "flags : vmx sse".to_owned()),
            Backend::Pvm
        );
    }

    #[test]
    fn hardware_module_or_flag_means_hardware() {
        assert_eq!(
            detect_from(modules(&["kvm", "kvm_intel"]).path(), String::new),
            Backend::Hardware
        );
        assert_eq!(
            detect_from(modules(&["kvm_amd"]).path(), || "".to_owned()),
            Backend::Hardware
        );
        assert_eq!(
            detect_from(modules(&[]).path(), || "flags\t: fpu svm lm".to_owned()),
            Backend::Hardware
        );
    }

    #[test]
    fn unknown_falls_back_to_pvm() {
        assert_eq!(
            detect_from(modules(&["kvm"]).path(), || "flags : fpu hypervisor"
                .to_owned()),
            Backend::Pvm
        );
    }
}
