//! The fault plan the monitor page carries to the kernel: each `--fault` checked against the
//! image's tasks (a server that exists; the kernel only if the image is ours) and given its
//! task index. The kernel keeps the plan outside every state arena, so a rollback cannot re-arm
//! a fault: each fires once (or once per period).

use super::spec::{FaultSpec, FaultSpecError, Target};
use abi::fault::AFTER_SEND;
use abi::monitor::{FaultPlan, KERNEL_TARGET, MAX_PLANNED_FAULTS};

/// Most faults planned for one server (the kernel keeps one more slot per task, for the end of
/// an injected fault's message).
pub const MAX_PER_TARGET: usize = 4;

/// Most faults planned for the kernel itself.
pub const MAX_KERNEL: usize = 1;

/// The monitor page's fault plan for `specs` on an image whose tasks are `tasks` (task index =
/// position; `None` for an app, which has no server loop to take a fault in).
pub fn plan(
    specs: &[FaultSpec],
    tasks: &[Option<String>],
) -> Result<[FaultPlan; MAX_PLANNED_FAULTS], FaultSpecError> {
    let mut plan = [FaultPlan::default(); MAX_PLANNED_FAULTS];
    let mut per_task = vec![0usize; tasks.len()];
    let mut kernel = 0;
    for (i, spec) in specs.iter().enumerate() {
        let text = spec.to_string();
        if tasks.iter().all(Option::is_none) {
            return Err(FaultSpecError::NoServers(text));
        }
        let too_many = || FaultSpecError::TooMany {
            spec: text.clone(),
            most: MAX_PLANNED_FAULTS,
            per_target: MAX_PER_TARGET,
            kernel: MAX_KERNEL,
        };
        let task = match &spec.target {
            Target::Kernel => {
                kernel += 1;
                if kernel > MAX_KERNEL {
                    return Err(too_many());
                }
                KERNEL_TARGET
            }
            Target::Server(name) => {
                let index = tasks
                    .iter()
                    .position(|s| s.as_ref() == Some(name))
                    .ok_or_else(|| FaultSpecError::Server {
                        spec: text.clone(),
                        server: name.clone(),
                        known: tasks.iter().flatten().cloned().collect(),
                    })?;
                per_task[index] += 1;
                if per_task[index] > MAX_PER_TARGET {
                    return Err(too_many());
                }
                index as u32
            }
        };
        let slot = plan.get_mut(i).ok_or_else(too_many)?;
        *slot = FaultPlan {
            task,
            kind: spec.kind as u32 | if spec.after_send { AFTER_SEND } else { 0 },
            message: spec.message,
            period: spec.period,
        };
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::fault::FaultKind;

    fn servers() -> Vec<Option<String>> {
        vec![
            Some("names".into()),
            Some("kv".into()),
            Some("fs".into()),
            None,
        ]
    }

    fn spec(s: &str) -> FaultSpec {
        FaultSpec::parse(s).expect("valid")
    }

    #[test]
    fn plans_name_tasks_by_index_and_refuse_strangers_and_excess() {
        let specs = [
            spec("fs:hang@9"),
            spec("kv:panic@2"),
            spec("fs:panic@3+2:after-send"),
            spec("kernel:state-flip@40+10"),
        ];
        let plan = plan(&specs, &servers()).expect("fits");
        assert_eq!((plan[0].task, plan[0].kind, plan[0].message), (2, 5, 9));
        assert_eq!((plan[1].task, plan[1].message), (1, 2));
        assert_eq!(
            (plan[2].kind, plan[2].message, plan[2].period),
            (FaultKind::Panic as u32 | AFTER_SEND, 3, 2)
        );
        assert_eq!(
            (plan[3].task, plan[3].kind, plan[3].message, plan[3].period),
            (KERNEL_TARGET, FaultKind::StateFlip as u32, 40, 10)
        );
        assert_eq!(plan[4].message, 0, "unused");
        let e = super::plan(&[spec("kvv:panic@2")], &servers()).expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "--fault \"kvv:panic@2\": unknown server \"kvv\" (this image declares \"names\", \"kv\", \"fs\")"
        );
        assert!(
            super::plan(&[spec("names:panic@2")], &[None]).is_err(),
            "apps cannot be faulted on purpose"
        );
        let five = vec![spec("kv:panic@2"); 5];
        assert!(matches!(
            super::plan(&five, &servers()),
            Err(FaultSpecError::TooMany { .. })
        ));
        let two_kernel = [spec("kernel:text-flip@2"), spec("kernel:state-flip@9")];
        assert!(matches!(
            super::plan(&two_kernel, &servers()),
            Err(FaultSpecError::TooMany { .. })
        ));
        assert!(matches!(
            super::plan(&five[..1], &[]),
            Err(FaultSpecError::NoServers(_))
        ));
        let seventeen: Vec<FaultSpec> = (0..17)
            .map(|i| spec(&format!("{}:panic@2", ["names", "kv", "fs"][i % 3])))
            .collect();
        assert!(super::plan(&seventeen, &servers()).is_err());
    }
}
