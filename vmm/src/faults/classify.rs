//! Every run with planned faults gets a class: what became of each fault, and of the run (the
//! worst of its faults). Pure: facts in, classes out.
//!
//! Worst first: `vmm-error` (the VMM itself failed), `propagated` (a task other than a
//! fault's target crashed, or the kernel failed under a server's fault), `silent-corruption`
//! (a client got a wrong answer, or the final sweep found a mismatch: whatever else was
//! detected), `timeout` (the VM did not end in time), `fail-stop` (detected; the VM was stopped
//! cleanly: a policy's fail-stop, or a faulted kernel that stopped the VM), `recovered-lossy`
//! (detected and recovered, and clients were told of lost state), `recovered` (detected,
//! recovered, every check passes, nothing lost), `masked` (used, nothing detected, every check
//! passes), `no-effect` (use unknown, nothing detected, every check passes), `not-activated`
//! (the corrupted code provably never ran), `not-triggered` (its message never came, or it
//! found nothing to corrupt). The last two are a fault's own facts and win over the run's: a
//! fault that tested nothing is never blamed for what another fault did.

use serde::{Deserialize, Serialize};

/// A class, worst first (the derived order: a smaller one is worse).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// The VMM failed.
    VmmError,
    /// Another task, or the kernel, failed.
    Propagated,
    /// A client saw a wrong answer.
    SilentCorruption,
    /// The VM did not end in time.
    Timeout,
    /// Detected; the VM stopped cleanly.
    FailStop,
    /// Recovered, with state lost.
    RecoveredLossy,
    /// Recovered.
    Recovered,
    /// Used, and nothing noticed.
    Masked,
    /// Use unknown, nothing noticed.
    NoEffect,
    /// Never used.
    NotActivated,
    /// Never fired.
    NotTriggered,
}

impl Class {
    /// Every class, worst first.
    pub const ALL: [Class; 11] = [
        Class::VmmError,
        Class::Propagated,
        Class::SilentCorruption,
        Class::Timeout,
        Class::FailStop,
        Class::RecoveredLossy,
        Class::Recovered,
        Class::Masked,
        Class::NoEffect,
        Class::NotActivated,
        Class::NotTriggered,
    ];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::VmmError => "vmm-error",
            Self::Propagated => "propagated",
            Self::SilentCorruption => "silent-corruption",
            Self::Timeout => "timeout",
            Self::FailStop => "fail-stop",
            Self::RecoveredLossy => "recovered-lossy",
            Self::Recovered => "recovered",
            Self::Masked => "masked",
            Self::NoEffect => "no-effect",
            Self::NotActivated => "not-activated",
            Self::NotTriggered => "not-triggered",
        }
    }
}

/// How the run ended, as classification sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The guest stopped itself (any status), or was stopped by a signal.
    Guest,
    /// The kernel failed: a fault in ring 0, a triple fault, a failed entry, a broken
    /// protocol.
    KernelFailed,
    /// `--timeout` expired.
    Timeout,
    /// A recovery policy stopped the VM.
    FailStop,
    /// The VMM failed.
    VmmError,
}

impl Ending {
    /// The ending of a run that exited with `status` (the contract of `abi::status`).
    pub fn of_status(status: i32) -> Self {
        use abi::status;
        match u8::try_from(status) {
            Ok(s) if s == status::TIMEOUT => Self::Timeout,
            Ok(s) if s == status::FAIL_STOP => Self::FailStop,
            Ok(s) if s == status::VMM_INTERNAL => Self::VmmError,
            Ok(s)
                if s == status::KERNEL_FAULT
                    || s == status::TRIPLE_FAULT
                    || s == status::GUEST_INTERNAL_ERROR
                    || s == status::GUEST_PROTOCOL =>
            {
                Self::KernelFailed
            }
            _ => Self::Guest,
        }
    }
}

/// What the run as a whole shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFacts {
    /// How it ended (`None`: it never ran).
    pub ending: Option<Ending>,
    /// Wrong answers the clients saw (the workload's mismatches and unexpected errors).
    pub wrong_answers: u64,
    /// Requests whose effect a server declared lost.
    pub lost: u64,
    /// A task that was no fault's target crashed.
    pub bystander_crashed: bool,
    /// A crash was not recovered (the VM went on without the server, or stopped).
    pub unrecovered: bool,
}

/// What one fault shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultFacts {
    /// Its message came.
    pub triggered: bool,
    /// The corrupted code or data was used (see `Injection::activated`).
    pub activated: Option<bool>,
    /// Its target crashed after it.
    pub detected: bool,
    /// Its target is the kernel.
    pub kernel: bool,
}

/// The class of one fault in a run.
///
/// A fault's own facts come first: one that never fired, or whose corrupted code provably
/// never ran (and nothing detected it), tested nothing, whatever else the run shows. What the
/// run shows as a whole (a bystander's crash, wrong answers, a timeout, a stop) is laid on
/// every fault that may have caused it.
pub fn classify(run: &RunFacts, fault: &FaultFacts) -> Class {
    if matches!(run.ending, Some(Ending::VmmError) | None) {
        return Class::VmmError;
    }
    if !fault.triggered {
        return Class::NotTriggered;
    }
    if fault.activated == Some(false) && !fault.detected {
        return Class::NotActivated;
    }
    if run.ending == Some(Ending::KernelFailed) && !fault.kernel {
        return Class::Propagated;
    }
    if run.bystander_crashed {
        return Class::Propagated;
    }
    if run.wrong_answers > 0 {
        return Class::SilentCorruption;
    }
    match run.ending {
        Some(Ending::Timeout) => return Class::Timeout,
        Some(Ending::FailStop | Ending::KernelFailed) => return Class::FailStop,
        _ => {}
    }
    if fault.detected {
        return if run.unrecovered {
            Class::FailStop
        } else if run.lost > 0 {
            Class::RecoveredLossy
        } else {
            Class::Recovered
        };
    }
    match fault.activated {
        Some(true) => Class::Masked,
        _ => Class::NoEffect,
    }
}

/// The class of a run: the worst of its faults' (`None` without faults).
pub fn of_run(classes: impl IntoIterator<Item = Class>) -> Option<Class> {
    classes.into_iter().min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> RunFacts {
        RunFacts {
            ending: Some(Ending::Guest),
            ..RunFacts::default()
        }
    }

    fn fired(activated: Option<bool>, detected: bool) -> FaultFacts {
        FaultFacts {
            triggered: true,
            activated,
            detected,
            kernel: false,
        }
    }

    #[test]
    fn the_order_is_worst_first() {
        let mut sorted = Class::ALL;
        sorted.sort();
        assert_eq!(sorted, Class::ALL);
        assert_eq!(
            of_run([Class::Masked, Class::Timeout, Class::Recovered]),
            Some(Class::Timeout)
        );
        assert_eq!(of_run([]), None);
        let names: Vec<&str> = Class::ALL.iter().map(|c| c.name()).collect();
        let json: Vec<String> = Class::ALL
            .iter()
            .map(|c| serde_json::to_string(c).expect("json"))
            .collect();
        for (n, j) in names.iter().zip(&json) {
            assert_eq!(format!("\"{n}\""), *j);
        }
    }

    /// One case per class, each from facts that differ from a clean recovered run in one way.
    #[test]
    fn each_class_from_its_facts() {
        let detected = fired(None, true);
        let with = |f: &dyn Fn(&mut RunFacts)| {
            let mut r = clean();
            f(&mut r);
            r
        };
        let cases: [(RunFacts, FaultFacts, Class); 14] = [
            (
                with(&|r| r.ending = Some(Ending::VmmError)),
                detected,
                Class::VmmError,
            ),
            (with(&|r| r.ending = None), detected, Class::VmmError),
            (
                with(&|r| r.ending = Some(Ending::KernelFailed)),
                detected,
                Class::Propagated,
            ),
            (
                with(&|r| r.bystander_crashed = true),
                detected,
                Class::Propagated,
            ),
            (
                with(&|r| r.wrong_answers = 1),
                fired(Some(true), false),
                Class::SilentCorruption,
            ),
            (
                with(&|r| r.ending = Some(Ending::Timeout)),
                detected,
                Class::Timeout,
            ),
            (
                with(&|r| r.ending = Some(Ending::FailStop)),
                detected,
                Class::FailStop,
            ),
            (with(&|r| r.unrecovered = true), detected, Class::FailStop),
            (with(&|r| r.lost = 2), detected, Class::RecoveredLossy),
            (clean(), detected, Class::Recovered),
            (clean(), fired(Some(true), false), Class::Masked),
            (clean(), fired(None, false), Class::NoEffect),
            (clean(), fired(Some(false), false), Class::NotActivated),
            (clean(), FaultFacts::default(), Class::NotTriggered),
        ];
        for (run, fault, want) in cases {
            assert_eq!(classify(&run, &fault), want, "{run:?} {fault:?}");
        }
        // A faulted kernel that stopped the VM is detected and stopped cleanly.
        let kernel = FaultFacts {
            kernel: true,
            ..fired(None, false)
        };
        let failed = with(&|r| r.ending = Some(Ending::KernelFailed));
        assert_eq!(classify(&failed, &kernel), Class::FailStop);
    }

    /// A fault that never fired, or whose code provably never ran, keeps its own class in a run
    /// another fault made bad; one that fired takes the run's.
    #[test]
    fn a_fault_that_tested_nothing_is_not_blamed() {
        let bad_runs = [
            RunFacts {
                wrong_answers: 3,
                ..clean()
            },
            RunFacts {
                ending: Some(Ending::Timeout),
                ..clean()
            },
            RunFacts {
                ending: Some(Ending::KernelFailed),
                ..clean()
            },
            RunFacts {
                bystander_crashed: true,
                ..clean()
            },
            RunFacts {
                ending: Some(Ending::FailStop),
                ..clean()
            },
        ];
        for run in &bad_runs {
            assert_eq!(
                classify(run, &FaultFacts::default()),
                Class::NotTriggered,
                "{run:?}"
            );
            assert_eq!(
                classify(run, &fired(Some(false), false)),
                Class::NotActivated,
                "{run:?}"
            );
            assert!(
                classify(run, &fired(Some(true), false)) < Class::Recovered,
                "{run:?}"
            );
        }
        // Detected though the step said it ended first: the crash wins.
        assert_eq!(
            classify(&clean(), &fired(Some(false), true)),
            Class::Recovered
        );
        // A VMM failure leaves nothing known.
        let failed = RunFacts {
            ending: Some(Ending::VmmError),
            ..clean()
        };
        assert_eq!(classify(&failed, &FaultFacts::default()), Class::VmmError);
    }

    #[test]
    fn endings_follow_the_status_contract() {
        use abi::status;
        assert_eq!(Ending::of_status(0), Ending::Guest);
        assert_eq!(Ending::of_status(1), Ending::Guest);
        assert_eq!(Ending::of_status(62), Ending::KernelFailed);
        assert_eq!(
            Ending::of_status(i32::from(status::TRIPLE_FAULT)),
            Ending::KernelFailed
        );
        assert_eq!(
            Ending::of_status(i32::from(status::TIMEOUT)),
            Ending::Timeout
        );
        assert_eq!(
            Ending::of_status(i32::from(status::FAIL_STOP)),
            Ending::FailStop
        );
        assert_eq!(
            Ending::of_status(i32::from(status::VMM_INTERNAL)),
            Ending::VmmError
        );
        assert_eq!(Ending::of_status(130), Ending::Guest);
    }
}
